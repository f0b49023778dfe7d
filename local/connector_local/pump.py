"""The SQS event source mapping, locally: receive a batch, invoke the function, settle the batch as Lambda would.

The worker's correctness depends on what the event source mapping does with its answer (``ReportBatchItemFailures``),
so that contract is reproduced to the letter, including the cases Lambda treats as a failure of the whole batch.
One deliberate difference keeps tests fast: failed messages are made visible again at once instead of after the
queue's visibility timeout. That is only done when a redrive policy bounds the retries; without one, a poison
message would otherwise be received forever.
"""

from __future__ import annotations

import base64
import logging
import threading
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .runtime import LocalFunction

logger = logging.getLogger(__name__)

MAX_BATCH_SIZE = 10  # an SQS receive returns at most 10 messages, and FIFO sources cap the batch there too


@dataclass
class PumpStats:
    """What a drain did. ``processed`` counts records handed to the function, so a retried message counts again."""

    invocations: int = 0
    processed: int = 0
    failed: int = 0
    deleted: int = 0
    invocation_errors: int = 0

    def add(self, other: PumpStats) -> None:
        self.invocations += other.invocations
        self.processed += other.processed
        self.failed += other.failed
        self.deleted += other.deleted
        self.invocation_errors += other.invocation_errors


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    """SQS API shape (``StringValue``, bytes) to the Lambda event shape (``stringValue``, base64 text)."""
    converted: dict[str, Any] = {}
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    converted["stringListValues"] = list(value.get("StringListValues", []))
    converted["binaryListValues"] = [
        base64.b64encode(item).decode("ascii") for item in value.get("BinaryListValues", [])
    ]
    converted["dataType"] = value["DataType"]
    return converted


def lambda_sqs_event(messages: Iterable[Mapping[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda builds from a ``ReceiveMessage`` answer (requested with all attributes)."""
    records = []
    for message in messages:
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": dict(message.get("Attributes", {})),
            "messageAttributes": {
                name: _lambda_message_attribute(value)
                for name, value in message.get("MessageAttributes", {}).items()
            },
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        record.update(
            {
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
        records.append(record)
    return {"Records": records}


def failed_message_ids(response: Any, message_ids: set[str]) -> set[str] | None:
    """The ids to keep, per Lambda's ``ReportBatchItemFailures`` rules; ``None`` means the whole batch failed.

    Success: ``None``, a dict without ``batchItemFailures``, a null or empty list. Whole-batch failure: any other
    shape, or an ``itemIdentifier`` that is missing, empty, or not a message of this batch.
    """
    if response is None:
        return set()
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    kept: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return None
        kept.add(identifier)
    return kept


class QueuePump:
    """Feeds one queue to one function, like an SQS event source mapping with ``ReportBatchItemFailures``."""

    def __init__(
        self,
        sqs_client: Any,
        queue_url: str,
        function: LocalFunction,
        batch_size: int = MAX_BATCH_SIZE,
        wait_seconds: int = 0,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}")
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.function = function
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        attributes = sqs_client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn", "RedrivePolicy"]
        )["Attributes"]
        self.queue_arn: str = attributes["QueueArn"]
        self.retries_are_bounded = "RedrivePolicy" in attributes
        self.region: str = sqs_client.meta.region_name
        self.stats = PumpStats()

    def drain(self, max_batches: int | None = None, until_empty: bool = True) -> PumpStats:
        """Pump batches until a receive comes back empty (or ``max_batches``); ``until_empty=False`` pumps one.

        Receiving until empty matters beyond delivery: SQS moves a message to the DLQ on the receive *after* its
        ``maxReceiveCount``-th, so a drain that stopped earlier would leave a spent message in the work queue.
        """
        limit = max_batches if max_batches is not None else (None if until_empty else 1)
        stats = PumpStats()
        batches = 0
        while limit is None or batches < limit:
            if not self.pump_once(self.wait_seconds, stats):
                break
            batches += 1
        self.stats.add(stats)
        return stats

    def run_forever(self, stop_event: threading.Event, wait_seconds: int = 1) -> None:
        """Long-poll and pump until ``stop_event`` is set; meant for a daemon thread of ``connector local``."""
        while not stop_event.is_set():
            stats = PumpStats()
            try:
                self.pump_once(wait_seconds, stats)
            except Exception:  # the local stack must keep running through a hiccup of the local AWS
                logger.warning("receiving from %s failed; retrying", self.queue_url, exc_info=True)
                stop_event.wait(1)
            self.stats.add(stats)

    def pump_once(self, wait_seconds: int, stats: PumpStats) -> bool:
        """Receive one batch, invoke, settle; ``False`` when the receive returned nothing."""
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return False
        message_ids = {message["MessageId"] for message in messages}
        stats.invocations += 1
        stats.processed += len(messages)
        try:
            response = self.function.invoke(lambda_sqs_event(messages, self.queue_arn, self.region))
        except Exception:
            logger.warning("%s failed on a batch of %d; all return to the queue", self.function.name,
                           len(messages), exc_info=True)
            stats.invocation_errors += 1
            failed = message_ids
        else:
            reported = failed_message_ids(response, message_ids)
            if reported is None:
                logger.warning("%s returned an invalid batchItemFailures response; the whole batch returns",
                               self.function.name)
                failed = message_ids
            else:
                failed = reported
        stats.failed += len(failed)
        stats.deleted += self._delete([m for m in messages if m["MessageId"] not in failed])
        if self.retries_are_bounded:
            self._make_visible([m for m in messages if m["MessageId"] in failed])
        return True

    def _delete(self, messages: list[Mapping[str, Any]]) -> int:
        deleted = 0
        for start in range(0, len(messages), MAX_BATCH_SIZE):
            chunk = messages[start : start + MAX_BATCH_SIZE]
            answer = self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            deleted += len(answer.get("Successful", []))
            for failure in answer.get("Failed", []):
                logger.warning("could not delete a processed message (%s); it will be delivered again",
                               failure.get("Code"))
        return deleted

    def _make_visible(self, messages: list[Mapping[str, Any]]) -> None:
        for start in range(0, len(messages), MAX_BATCH_SIZE):
            chunk = messages[start : start + MAX_BATCH_SIZE]
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(chunk)
                ],
            )
