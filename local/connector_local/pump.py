"""The SQS event source mapping, locally: receive batches, invoke the function, settle each batch as Lambda would.

The worker's correctness depends on what the event source mapping does with its answer (``ReportBatchItemFailures``),
so that contract is reproduced to the letter, including the cases Lambda treats as a failure of the whole batch.
Like a mapping with ``ScalingConfig: MaximumConcurrency``, up to ``max_concurrency`` invocations run at once, each in
an execution environment of its own and each on the batch of one receive; FIFO ordering needs nothing more, since
SQS hands out no message of a group that has a message in flight.

One deliberate difference keeps tests fast: failed messages are made visible again at once instead of after the
queue's visibility timeout. That is only done when a redrive policy bounds the retries (without one, a poison
message would be received forever), and never for a message whose visibility the function itself set during the
invocation (the worker's ``ChangeMessageVisibility`` after a long ``Retry-After``): resetting that one would hammer a
throttled system, which is the very thing the worker's delay prevents. The function's calls are seen in this
process only: for functions in container processes (``quick_retries=False``) failed messages wait out the queue's
visibility timeout, exactly as on AWS.
"""

from __future__ import annotations

import base64
import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import boto3
from botocore import handlers as botocore_handlers

from .runtime import Invocable

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
    delayed: int = 0
    """Failed records left invisible because the function set their visibility itself."""
    peak_concurrency: int = 0
    """The most invocations that ran at the same moment."""

    def add(self, other: PumpStats) -> None:
        self.invocations += other.invocations
        self.processed += other.processed
        self.failed += other.failed
        self.deleted += other.deleted
        self.invocation_errors += other.invocation_errors
        self.delayed += other.delayed
        self.peak_concurrency = max(self.peak_concurrency, other.peak_concurrency)


class VisibilityJournal:
    """Receipt handles whose visibility someone in this process set to a wait, through any botocore client.

    Why a botocore event hook, and why registered for every session: the worker builds its SQS client itself (boto3's
    default session, lazily, inside the handler), so the pump cannot hand it a client to watch, and SQS offers no
    way to read a message's visibility back. The functions run in this process, so their calls pass through botocore
    here. ``BUILTIN_HANDLERS`` are registered on every session created afterwards (the default session included) and
    each client copies its session's handlers when it is built, so the hook reaches every client built after this
    module is imported (the local stack imports it before loading any handler); an existing default session is
    hooked too. A call is noted only once SQS accepted it (``after-call``, status 200; for the batch call, only its
    ``Successful`` entries), so a refused change is reset like any other failure. A zero visibility is not noted:
    it is no wait to protect (and it is what the pump itself sends). Receipt handles are unique per receive, so
    concurrent invocations, or pumps of other queues, cannot mistake each other's notes.
    """

    _PARAMS = "connector_local.visibility_params"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waits: dict[str, int] = {}

    def take(self, receipt_handles: Iterable[str]) -> dict[str, int]:
        """The waits noted for these handles (removed from the journal: a handle is settled once)."""
        with self._lock:
            return {handle: self._waits.pop(handle) for handle in receipt_handles if handle in self._waits}

    def install(self) -> None:
        hooks: list[tuple[str, Callable[..., None]]] = [
            (f"before-parameter-build.sqs.{operation}", self._keep_params)
            for operation in ("ChangeMessageVisibility", "ChangeMessageVisibilityBatch")]
        hooks += [("after-call.sqs.ChangeMessageVisibility", self._note_one),
                  ("after-call.sqs.ChangeMessageVisibilityBatch", self._note_batch)]
        botocore_handlers.BUILTIN_HANDLERS.extend(hooks)
        if boto3.DEFAULT_SESSION is not None:
            for event, hook in hooks:
                boto3.DEFAULT_SESSION.events.register(event, hook)

    def _keep_params(self, params: Mapping[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[self._PARAMS] = dict(params)

    def _note_one(self, http_response: Any, context: Mapping[str, Any], **_: Any) -> None:
        params = context.get(self._PARAMS) or {}
        if http_response.status_code == 200:
            self._note([params])

    def _note_batch(self, http_response: Any, parsed: Mapping[str, Any], context: Mapping[str, Any],
                    **_: Any) -> None:
        entries = {entry.get("Id"): entry for entry in (context.get(self._PARAMS) or {}).get("Entries", [])}
        if http_response.status_code == 200:
            self._note([entries[done["Id"]] for done in parsed.get("Successful", []) if done.get("Id") in entries])

    def _note(self, entries: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            for entry in entries:
                if entry.get("ReceiptHandle") and int(entry.get("VisibilityTimeout") or 0) > 0:
                    self._waits[entry["ReceiptHandle"]] = int(entry["VisibilityTimeout"])


VISIBILITY = VisibilityJournal()
VISIBILITY.install()


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
    """Feeds one queue to one function, like an SQS event source mapping with ``ReportBatchItemFailures`` and
    ``MaximumConcurrency``.

    ``function`` is the first execution environment; with ``max_concurrency`` above 1, ``scale_out`` builds each
    further one when a batch finds every existing one busy (Lambda's scale-out, a cold start each). Environments are
    never shared by two invocations at once, as in Lambda, so a handler's per-container state stays its own.
    """

    def __init__(
        self,
        sqs_client: Any,
        queue_url: str,
        function: Invocable,
        batch_size: int = MAX_BATCH_SIZE,
        wait_seconds: int = 0,
        *,
        max_concurrency: int = 1,
        scale_out: Callable[[], Invocable] | None = None,
        quick_retries: bool = True,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}")
        if max_concurrency < 1 or (max_concurrency > 1 and scale_out is None):
            raise ValueError("max_concurrency must be at least 1, and above 1 it needs scale_out")
        self.sqs = sqs_client
        self.queue_url = queue_url
        self.function = function
        self.batch_size = batch_size
        self.wait_seconds = wait_seconds
        self.max_concurrency = max_concurrency
        self._scale_out = scale_out
        self._idle: list[Invocable] = [function]
        self._running = 0
        self._lock = threading.Lock()
        attributes = sqs_client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["QueueArn", "RedrivePolicy"]
        )["Attributes"]
        self.queue_arn: str = attributes["QueueArn"]
        self.retries_are_bounded = "RedrivePolicy" in attributes
        self.quick_retries = quick_retries
        self.region: str = sqs_client.meta.region_name
        self.stats = PumpStats()

    def drain(self, max_batches: int | None = None, until_empty: bool = True) -> PumpStats:
        """Pump batches until a receive comes back empty with nothing in flight (or ``max_batches``);
        ``until_empty=False`` pumps one.

        Receiving until empty matters beyond delivery: SQS moves a message to the DLQ on the receive *after* its
        ``maxReceiveCount``-th, so a drain that stopped earlier would leave a spent message in the work queue. An
        empty receive while invocations run is no end: their failures come back.
        """
        limit = max_batches if max_batches is not None else (None if until_empty else 1)
        stats = self._pump(self.wait_seconds, limit, stop_event=None)
        self.stats.add(stats)
        return stats

    def run_forever(self, stop_event: threading.Event, wait_seconds: int = 1) -> None:
        """Long-poll and pump until ``stop_event`` is set; meant for a daemon thread of ``connector local``."""
        while not stop_event.is_set():
            try:
                stats = self._pump(wait_seconds, None, stop_event)
            except Exception:  # the local stack must keep running through a hiccup of the local AWS
                logger.warning("receiving from %s failed; retrying", self.queue_url, exc_info=True)
                stop_event.wait(1)
                continue
            self.stats.add(stats)

    def pump_once(self, wait_seconds: int, stats: PumpStats) -> bool:
        """Receive one batch, invoke, settle; ``False`` when the receive returned nothing."""
        messages = self._receive(wait_seconds)
        if not messages:
            return False
        stats.add(self._invoke_and_settle(messages))
        return True

    def _pump(self, wait_seconds: int, limit: int | None, stop_event: threading.Event | None) -> PumpStats:
        """Receive while an environment may take a batch, invoke concurrently, and stop once a receive is empty
        and nothing is in flight (``stop_event``: only when it is set, after the in-flight batches settle)."""
        stats = PumpStats()
        batches = 0
        in_flight: set[Future[PumpStats]] = set()
        with ThreadPoolExecutor(self.max_concurrency, thread_name_prefix=f"{self.function.name}-esm") as pool:
            try:
                while True:
                    received_nothing = False
                    while (len(in_flight) < self.max_concurrency and (limit is None or batches < limit)
                           and not (stop_event is not None and stop_event.is_set())):
                        messages = self._receive(wait_seconds if not in_flight else 0)
                        if not messages:
                            received_nothing = True
                            break
                        batches += 1
                        in_flight.add(pool.submit(self._invoke_and_settle, messages))
                    if not in_flight:
                        if stop_event is None or received_nothing or stop_event.is_set():
                            return stats
                        continue
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        stats.add(future.result())
            finally:
                for future in wait(in_flight).done:
                    stats.add(future.result())

    def _receive(self, wait_seconds: int) -> list[dict[str, Any]]:
        return self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])

    def _environment(self) -> Invocable:
        """An idle environment, or a new one: ``_pump`` never runs more invocations than ``max_concurrency``, and
        each holds its environment until it ends, so at most that many are ever built."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        assert self._scale_out is not None  # more than one invocation at once only with max_concurrency > 1
        return self._scale_out()

    def _invoke_and_settle(self, messages: list[dict[str, Any]]) -> PumpStats:
        stats = PumpStats(invocations=1, processed=len(messages))
        message_ids = {message["MessageId"] for message in messages}
        environment = self._environment()
        with self._lock:
            self._running += 1
            stats.peak_concurrency = self._running
        try:
            response = environment.invoke(lambda_sqs_event(messages, self.queue_arn, self.region))
        except Exception:
            logger.warning("%s failed on a batch of %d; all return to the queue", environment.name,
                           len(messages), exc_info=True)
            stats.invocation_errors += 1
            failed = message_ids
        else:
            reported = failed_message_ids(response, message_ids)
            if reported is None:
                logger.warning("%s returned an invalid batchItemFailures response; the whole batch returns",
                               environment.name)
                failed = message_ids
            else:
                failed = reported
        finally:
            with self._lock:
                self._running -= 1
                self._idle.append(environment)
        delayed = VISIBILITY.take(m["ReceiptHandle"] for m in messages)
        stats.failed += len(failed)
        stats.delayed += sum(1 for m in messages if m["MessageId"] in failed and m["ReceiptHandle"] in delayed)
        stats.deleted += self._delete([m for m in messages if m["MessageId"] not in failed])
        if self.quick_retries and self.retries_are_bounded:
            self._make_visible([m for m in messages
                                if m["MessageId"] in failed and m["ReceiptHandle"] not in delayed])
        return stats
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
