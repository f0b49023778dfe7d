"""SQS adapter for the FIFO work queue (``connector.ports.WorkQueue``).

``MessageGroupId`` is the document key, so all work on one document is serialized (no two workers can race to
create its issue); ``MessageDeduplicationId`` is the message's own ``dedupe_id`` (hashed to SQS's 128-character
limit), so re-reading an unchanged state or a webhook retry within five minutes is dropped by SQS itself.
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

from .errors import TransientError
from .model import WorkMessage

BATCH_LIMIT = 10


def dedupe_token(value: str) -> str:
    """SQS allows 128 characters of ``[A-Za-z0-9!-~]``; a digest always fits and stays stable."""
    return hashlib.sha256(value.encode()).hexdigest()


def group_token(external_id: str) -> str:
    """``MessageGroupId`` allows the same alphabet as dedupe ids, up to 128 characters."""
    if len(external_id) <= 128 and all(33 <= ord(c) <= 126 for c in external_id):
        return external_id
    return dedupe_token(external_id)


class SqsWorkQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    @classmethod
    def from_url(cls, queue_url: str) -> SqsWorkQueue:
        import boto3

        return cls(boto3.client("sqs"), queue_url)

    def send(self, messages: Sequence[WorkMessage]) -> None:
        for start in range(0, len(messages), BATCH_LIMIT):
            chunk = messages[start:start + BATCH_LIMIT]
            entries = [
                {"Id": str(index), "MessageBody": message.to_json(),
                 "MessageGroupId": group_token(message.external_id),
                 "MessageDeduplicationId": dedupe_token(message.dedupe_id)}
                for index, message in enumerate(chunk)
            ]
            retry = entries
            for _ in range(3):
                response = self._client.send_message_batch(QueueUrl=self._url, Entries=retry)
                failed = {f["Id"] for f in response.get("Failed", [])}
                retry = [e for e in retry if e["Id"] in failed]
                if not retry:
                    break
            else:
                raise TransientError(f"{len(retry)} work message(s) could not be queued")
