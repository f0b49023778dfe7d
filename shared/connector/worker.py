"""How the worker runs one queued record and sorts what went wrong; ``functions/worker/app.py`` only wires it.

- A ``PermanentError`` (or a body that is not a work message) goes to the dead-letter queue at once, its reason in
  the ``FailureReason`` message attribute, and the record counts as processed: more attempts cannot succeed, and
  ``MaxReceiveCount`` x the visibility timeout is an hour of waiting for nothing. ``connector replay`` moves it back
  once the cause is fixed. If the DLQ cannot be written, the record fails and SQS brings it back: nothing is lost.
- Any other failure is retried by SQS. When it carries a wait (``Retry-After``) longer than the record stays
  invisible anyway, the record's visibility is set to at least that wait (``ChangeMessageVisibility``), so the work
  comes back when the system said, not earlier.
- Every failed attempt writes an audit record (event ``attempt``), so ``connector audit`` tells what failed.
- A record is started only while the time left covers the slowest record seen in this invocation (at least
  ``RECORD_RESERVE_SECONDS``); the others go back untouched, instead of being cut off mid-way by the time limit.
- Work refused because Acumatica's one session is busy with an action (``SessionBusy``, after waiting in place) is a
  definite "not now": it goes back to the queue as a new message (same group, the carried document dropped so it is
  read again) and the record counts as processed, so a burst of actions never spends a decision's attempts into the
  DLQ. After ``MAX_SESSION_DEFERRALS`` of those, a still busy session fails the record like any transient error.
- Work the webhook queued gets its ``queued`` audit record here, not from the webhook: the internet-facing function
  may write nothing under a document's partition (IAM cannot restrict a write to audit items, and a put there could
  replace a document's state or claims). The record is stamped with the time SQS took the message and keyed by its
  message id, so a retried record writes the same item again instead of a second one.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from . import timings
from .errors import PermanentError, SessionBusy, TransientError
from .model import DOCUMENT_KINDS, WorkMessage
from .ports import StateStore

logger = logging.getLogger(__name__)

DEAD_LETTERED = "dead-lettered"
DEFERRED = "deferred"
REASON_LIMIT = 1000
WEBHOOK_SOURCES = frozenset({"jira", "push"})
"""``WorkMessage.source`` of the messages the webhook function queues."""


class OutOfTime(TransientError):
    """Not started: the invocation's remaining time cannot cover one more record."""


@dataclass(frozen=True)
class Received:
    """What the worker needs from one SQS record (Powertools' ``SQSRecord`` or a raw event record)."""

    message_id: str
    receipt_handle: str
    body: str
    group_id: str
    receive_count: int
    sent_at: float | None = None
    """When SQS took the message (``SentTimestamp``), in epoch seconds."""

    @classmethod
    def from_record(cls, record: Any) -> Received:
        attributes = record.attributes
        sent = attributes.sent_timestamp
        return cls(message_id=record.message_id, receipt_handle=record.receipt_handle, body=record.body,
                   group_id=attributes.message_group_id or record.message_id,
                   receive_count=int(attributes.approximate_receive_count or 1),
                   sent_at=int(sent) / 1000 if sent and str(sent).isdigit() else None)


@dataclass(frozen=True)
class Result:
    """A record that needs no retry: the work's outcome, or ``dead-lettered`` with the error's type."""

    kind: str
    outcome: str
    error: str | None = None

    @property
    def metric(self) -> str:
        return f"{self.kind.capitalize()}{self.outcome.title().replace('-', '')}"


def visibility_for(wait: float | None) -> int | None:
    """The visibility to set for a failed record that asked for ``wait`` seconds; ``None``: the default already does.

    A failed record returns after the queue's visibility timeout counted from its receipt, of which at most one
    worker timeout has passed; only a longer wait needs a change. SQS caps visibility at 12 hours."""
    if wait is None or wait <= timings.VISIBILITY_TIMEOUT_SECONDS - timings.WORKER_TIMEOUT_SECONDS:
        return None
    return min(math.ceil(wait) + 1, timings.LONGEST_VISIBILITY_SECONDS)


class WorkRunner:
    """Runs records with ``perform(message, receive count)`` and sorts their failures; one per container, ``begin``
    once per invocation."""

    def __init__(self, *, perform: Callable[[WorkMessage, int], str], store: StateStore, sqs: Any, queue_url: str,
                 dead_letter_url: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._perform = perform
        self._store = store
        self._sqs = sqs
        self._queue_url = queue_url
        self._dead_letter_url = dead_letter_url
        self._clock = clock
        self._seconds_left: Callable[[], float] = lambda: math.inf
        self._slowest = 0.0

    def begin(self, seconds_left: Callable[[], float]) -> None:
        self._seconds_left = seconds_left
        self._slowest = 0.0

    def run(self, record: Received) -> Result:
        """The work's outcome, or ``dead-lettered``; raises for a record SQS must bring back."""
        needed = max(timings.RECORD_RESERVE_SECONDS, self._slowest)
        left = self._seconds_left()
        if left < needed:
            raise OutOfTime(f"not started: {left:.0f} s left, a record may need {needed:.0f} s")
        try:
            message = WorkMessage.from_json(record.body)
        except ValueError as exc:
            return self._dead_letter(record, None, PermanentError(f"not a work message: {exc}"))
        if message.kind in DOCUMENT_KINDS and message.source in WEBHOOK_SOURCES:
            self._store.audit_queued([message], at=record.sent_at or time.time(),
                                     record_id=hashlib.sha256(record.message_id.encode()).hexdigest()[:8])
        started = self._clock()
        try:
            return Result(message.kind, self._perform(message, record.receive_count))
        except PermanentError as exc:
            return self._dead_letter(record, message, exc)
        except Exception as exc:
            if isinstance(exc, SessionBusy) and (message.deferrals or 0) < timings.MAX_SESSION_DEFERRALS:
                return self._defer(record, message, exc)
            wait = exc.retry_after if isinstance(exc, TransientError) else None
            visibility = visibility_for(wait)
            self._audit_failure(message, record, exc, "failed", retry_in=visibility)
            if visibility is not None:
                self._delay(record, visibility)
            raise
        finally:
            self._slowest = max(self._slowest, self._clock() - started)

    def _dead_letter(self, record: Received, message: WorkMessage | None, exc: Exception) -> Result:
        reason = _reason(exc)
        self._sqs.send_message(
            QueueUrl=self._dead_letter_url, MessageBody=record.body, MessageGroupId=record.group_id,
            # A new id per attempt: a replayed message that fails again must not be dropped as a duplicate.
            MessageDeduplicationId=hashlib.sha256(f"{record.message_id}:{record.receive_count}".encode()).hexdigest(),
            MessageAttributes={"FailureReason": {"DataType": "String", "StringValue": reason},
                               "FailureType": {"DataType": "String", "StringValue": type(exc).__name__}})
        logger.warning("work cannot succeed; sent to the DLQ at once", extra={"reason": reason})
        if message is not None:
            self._audit_failure(message, record, exc, DEAD_LETTERED)
        return Result(message.kind if message else "work", DEAD_LETTERED, type(exc).__name__)

    def _defer(self, record: Received, message: WorkMessage, exc: SessionBusy) -> Result:
        """Put the work back as a new message: Acumatica said "not now", nothing happened, no attempt is spent."""
        deferred = replace(message, deferrals=(message.deferrals or 0) + 1, document=None)
        self._sqs.send_message(
            QueueUrl=self._queue_url, MessageBody=deferred.to_json(), MessageGroupId=record.group_id,
            # Stable per received copy: a repeated send of this deferral is dropped by SQS, a later one is not.
            MessageDeduplicationId=hashlib.sha256(
                f"{record.message_id}:{record.receive_count}:deferred".encode()).hexdigest())
        logger.info("Acumatica's session is busy; the work goes back to the queue", extra={
            "deferrals": deferred.deferrals, "external_id": message.external_id})
        self._audit_failure(message, record, exc, DEFERRED)
        return Result(message.kind, DEFERRED, type(exc).__name__)

    def _audit_failure(self, message: WorkMessage, record: Received, exc: Exception, outcome: str,
                       retry_in: int | None = None) -> None:
        """Best effort: an audit write failing (DynamoDB throttled) must not hide the failure being recorded. A ``poll``
        message is about no document: its failures are in the log and the DLQ only."""
        if message.kind not in DOCUMENT_KINDS:
            return
        try:
            self._store.audit(message.key, "attempt", outcome, correlation_id=message.correlation_id,
                              reason=_reason(exc), details={"kind": message.kind, "error": type(exc).__name__,
                                                            "attempt": record.receive_count, "retry_in": retry_in})
        except Exception:  # noqa: BLE001 - logged; the original error is what the caller must see
            logger.warning("could not audit a failed attempt", exc_info=True)

    def _delay(self, record: Received, seconds: int) -> None:
        try:
            self._sqs.change_message_visibility(QueueUrl=self._queue_url, ReceiptHandle=record.receipt_handle,
                                                VisibilityTimeout=seconds)
        except Exception:  # noqa: BLE001 - the record still comes back, only sooner than asked
            logger.warning("could not delay the record by %d s", seconds, exc_info=True)


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:REASON_LIMIT]
