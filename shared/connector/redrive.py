"""Moving dead letters back to the work queue (``connector replay``), and queue depths (``connector status``).

The native ``StartMessageMoveTask`` is preferred: SQS moves the messages itself. Where the endpoint cannot run it (moto
answers 500; others answer ``UnsupportedOperation``), a portable move does the same with receive, send and
delete, in an order that can duplicate a message but never lose one: a message leaves the DLQ only after the work
queue accepted its copy. Duplicates are harmless because the worker claim-checks every side effect.

On a FIFO queue the copy must not reuse the original ``MessageDeduplicationId``: SQS would silently drop it as a
duplicate for five minutes after the first send, so a quick replay of a message that failed fast would vanish. Each
run derives a new id from the old one and a per-run nonce, which also keeps SDK-level retries of one send within a
run deduplicated.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Literal, Mapping

from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]

DEPTH_ATTRIBUTES = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)
_NATIVE_UNAVAILABLE_CODES = frozenset(
    {
        "UnsupportedOperation",
        "AWS.SimpleQueueService.UnsupportedOperation",
        "NotImplemented",
        "InvalidAction",
        "UnknownOperationException",
    }
)
_FINISHED_TASK_STATUSES = frozenset({"COMPLETED", "CANCELLED", "FAILED"})
_RECEIVE_BATCH = 10
_IN_FLIGHT_SECONDS = 120  # long enough that a message this run could not move is not received again by it


@dataclass(frozen=True)
class RedriveResult:
    """How many messages reached the source queue, how many stayed in the DLQ, and which mechanism moved them."""

    moved: int
    failed: int
    method: Literal["native", "portable"]
    why: str = ""
    """Why the messages were moved one by one (empty for the native task), in words for the operator."""


def redrive_dead_letters(
    sqs_client: Any,
    dlq_url: str,
    source_url: str,
    *,
    max_messages: int | None = None,
    only_group: str | None = None,
    progress: Progress | None = None,
    poll_seconds: float = 2.0,
) -> RedriveResult:
    """Move the DLQ's messages back to ``source_url`` and wait until done; ``progress(moved, total_estimate)``.

    ``max_messages`` limits the move and ``only_group`` keeps it to one message group (one document: its
    ``MessageGroupId``); the native task can do neither, so such a move always takes the portable path.
    """
    if max_messages is not None and max_messages < 1:
        raise ValueError(f"max_messages must be positive, got {max_messages}")
    report = progress or (lambda moved, total: None)
    dlq_arn = _queue_arn(sqs_client, dlq_url)
    total = int(
        sqs_client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"
        ]["ApproximateNumberOfMessages"]
    )
    if max_messages is None and only_group is None:
        task_handle, unavailable = _start_native_move(sqs_client, dlq_arn, _queue_arn(sqs_client, source_url))
        if task_handle is not None:
            return _follow_native_move(sqs_client, dlq_arn, total, report, poll_seconds)
        why = f"this SQS endpoint does not run StartMessageMoveTask ({unavailable})"
    else:
        why = "a native move task takes the whole queue, not some messages or one document's"
        if max_messages is not None:
            total = min(total, max_messages)
    moved = _portable_move(sqs_client, dlq_url, source_url, max_messages, total, report, only_group)
    return replace(moved, why=why)


@dataclass(frozen=True)
class DeadLetter:
    """One message waiting in the DLQ, as an operator reads it (``connector replay --dry-run``)."""

    message_id: str
    group: str | None
    body: str
    receive_count: int
    sent_at: float


def list_dead_letters(sqs_client: Any, dlq_url: str, *, max_messages: int | None = None) -> list[DeadLetter]:
    """What waits in the DLQ, without moving or consuming anything: every message is made visible again at once.

    A FIFO queue hands out no further message of a group while one of it is in flight, so each pass of receives is
    kept invisible until the listing ends, then released together.
    """
    found: list[DeadLetter] = []
    handles: list[str] = []
    try:
        while max_messages is None or len(found) < max_messages:
            wanted = _RECEIVE_BATCH if max_messages is None else min(_RECEIVE_BATCH, max_messages - len(found))
            messages = sqs_client.receive_message(
                QueueUrl=dlq_url, MaxNumberOfMessages=wanted, WaitTimeSeconds=0, VisibilityTimeout=_IN_FLIGHT_SECONDS,
                MessageSystemAttributeNames=["All"]).get("Messages", [])
            if not messages:
                break
            for message in messages:
                attributes = message.get("Attributes", {})
                handles.append(message["ReceiptHandle"])
                found.append(DeadLetter(message_id=message["MessageId"], group=attributes.get("MessageGroupId"),
                                        body=message["Body"],
                                        receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
                                        sent_at=int(attributes.get("SentTimestamp", 0)) / 1000))
    finally:
        _release(sqs_client, dlq_url, handles)
    return found


def _release(sqs_client: Any, dlq_url: str, receipt_handles: Iterable[str]) -> None:
    """Make received messages visible again, so whatever this run did not move stays in the DLQ for the next."""
    for receipt_handle in receipt_handles:
        try:
            sqs_client.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)
        except (ClientError, BotoCoreError):
            logger.warning("a message that was not replayed stays invisible in the DLQ for %d s", _IN_FLIGHT_SECONDS)


def queue_depths(sqs_client: Any, urls: Iterable[str]) -> dict[str, dict[str, int]]:
    """``{url: {ApproximateNumberOfMessages, ...NotVisible, ...Delayed}}`` as integers."""
    depths: dict[str, dict[str, int]] = {}
    for url in urls:
        attributes = sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=list(DEPTH_ATTRIBUTES))["Attributes"]
        depths[url] = {name: int(attributes.get(name, 0)) for name in DEPTH_ATTRIBUTES}
    return depths


def replay_deduplication_id(original: str, nonce: str) -> str:
    """A new FIFO deduplication id for a replayed copy: stable within one run, different across runs."""
    return hashlib.sha256(f"{original}\x00{nonce}".encode()).hexdigest()


def _queue_arn(sqs_client: Any, url: str) -> str:
    return sqs_client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _start_native_move(sqs_client: Any, dlq_arn: str, source_arn: str) -> tuple[str | None, str]:
    """The task handle, or ``None`` and the reason when this endpoint cannot run a message move task."""
    try:
        answer = sqs_client.start_message_move_task(SourceArn=dlq_arn, DestinationArn=source_arn)
    except NotImplementedError:
        reason = "not implemented by this endpoint"
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code not in _NATIVE_UNAVAILABLE_CODES and status < 500:
            raise
        reason = f"{code or status}"
    else:
        logger.info("started a native message move task")
        return answer["TaskHandle"], ""
    logger.info("StartMessageMoveTask unavailable (%s); moving messages one by one", reason)
    return None, reason


def _follow_native_move(
    sqs_client: Any, dlq_arn: str, total: int, report: Progress, poll_seconds: float
) -> RedriveResult:
    while True:
        tasks = sqs_client.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=1)["Results"]
        task = tasks[0]
        moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
        to_move = int(task.get("ApproximateNumberOfMessagesToMove", total))
        report(moved, max(to_move, moved))
        if task["Status"] in _FINISHED_TASK_STATUSES:
            break
        time.sleep(poll_seconds)
    if task["Status"] != "COMPLETED":
        logger.warning("message move task ended %s: %s", task["Status"], task.get("FailureReason", "no reason given"))
    return RedriveResult(moved=moved, failed=max(0, to_move - moved), method="native")


def _sendable_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Received message attributes in the shape ``SendMessage`` accepts (the list fields are reserved)."""
    return {
        name: {key: value[key] for key in ("DataType", "StringValue", "BinaryValue") if key in value}
        for name, value in attributes.items()
    }


def _send_copy(sqs_client: Any, source_url: str, message: Mapping[str, Any], nonce: str) -> bool:
    system = message.get("Attributes", {})
    request: dict[str, Any] = {"QueueUrl": source_url, "MessageBody": message["Body"]}
    if message.get("MessageAttributes"):
        request["MessageAttributes"] = _sendable_attributes(message["MessageAttributes"])
    if source_url.endswith(".fifo"):
        request["MessageGroupId"] = system["MessageGroupId"]
        original = system.get("MessageDeduplicationId") or message["MessageId"]
        request["MessageDeduplicationId"] = replay_deduplication_id(original, nonce)
    try:
        sqs_client.send_message(**request)
    except (ClientError, BotoCoreError) as error:
        logger.warning("could not send message %s back to the work queue: %s", message["MessageId"], error)
        return False
    return True


def _portable_move(
    sqs_client: Any,
    dlq_url: str,
    source_url: str,
    max_messages: int | None,
    total: int,
    report: Progress,
    only_group: str | None = None,
) -> RedriveResult:
    nonce = uuid.uuid4().hex
    moved = failed = 0
    kept: list[str] = []  # receipt handles of messages left in the DLQ, made visible again at the end
    blocked_groups: set[str] = set()  # a group whose earlier message failed: moving later ones would reorder it
    try:
        while max_messages is None or moved + failed < max_messages:
            wanted = _RECEIVE_BATCH if max_messages is None else min(_RECEIVE_BATCH, max_messages - moved - failed)
            messages = sqs_client.receive_message(
                QueueUrl=dlq_url,
                MaxNumberOfMessages=wanted,
                WaitTimeSeconds=0,
                VisibilityTimeout=_IN_FLIGHT_SECONDS,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                group = message.get("Attributes", {}).get("MessageGroupId")
                if only_group is not None and group != only_group:
                    kept.append(message["ReceiptHandle"])  # another document's: left where it is, not a failure
                    continue
                if group in blocked_groups or not _send_copy(sqs_client, source_url, message, nonce):
                    failed += 1
                    kept.append(message["ReceiptHandle"])
                    if group is not None:
                        blocked_groups.add(group)
                    continue
                moved += 1
                try:
                    sqs_client.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
                except (ClientError, BotoCoreError) as error:
                    logger.warning("message %s was replayed but stays in the DLQ too (delete failed: %s)",
                                   message["MessageId"], error)
                report(moved, max(total, moved + failed))
    finally:
        _release(sqs_client, dlq_url, kept)
    return RedriveResult(moved=moved, failed=failed, method="portable")
