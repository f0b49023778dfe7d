"""Deleted documents, noticed daily: the maintenance run's check of the documents behind the open issues.

Polling never returns a deleted record (it is in no list), so without push notifications the issue of a bill deleted
in Acumatica would stay open for ever. Once a run, the documents whose exception is open (the table's sparse
``OpenDocuments`` index, read without a Scan) are looked up in Acumatica with batched key reads (one list request per
chunk of numbers, not one per issue). A document missing from a complete answer is queued as ``sync`` work; the
worker reads it by its keys, and only a 404 there, with a list request by keys agreeing, gives it the
deleted-document treatment (one comment, cleared like a healed exception; ``connector.sync``). So absence is
concluded from two answers, and never from an error, a refusal or a partial answer: those end the check of that
entity, which the next run repeats. Nothing is ever posted to Acumatica for a deleted one.
Pure: Acumatica, DynamoDB and SQS through the ports.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Callable, Sequence

from . import timings
from .errors import ConnectorError
from .model import DocumentKey, WorkMessage
from .ports import DocumentSource, StateStore, WorkQueue

logger = logging.getLogger(__name__)

SOURCE = "deletion-check"
SLICE = 250
"""Documents looked up between two looks at the time left (and queued, if missing): about five list requests."""


class DeletionCheckFailed(ConnectorError):
    """Some open issues' documents could not be looked up; the ones that could were checked and queued."""


def check_deleted(entities: Sequence[str], *, documents: DocumentSource, store: StateStore, queue: WorkQueue,
                  now: datetime, correlation_id: str, seconds_left: Callable[[], float]) -> str:
    """Queue a ``sync`` for every open issue's document Acumatica no longer has; returns what it did, in a line.

    The open documents are checked slice by slice while time allows, starting at a place that moves with the day,
    so a backlog larger than one run's time is still covered over a few days rather than its tail never. A lookup
    that fails ends its entity's check (what was found missing before it is queued already) and the check reports
    the failure (``DeletionCheckFailed``), for the run's health report and its alarm."""
    checked = unchecked = 0
    missing: list[DocumentKey] = []
    failures: list[str] = []
    day = now.strftime("%Y%m%d")
    for entity in entities:
        keys = store.open_documents(entity)
        slices = [keys[start:start + SLICE] for start in range(0, len(keys), SLICE)]
        first = _rotation(now, len(slices))
        ordered = slices[first:] + slices[:first]
        for index, chunk in enumerate(ordered):
            if seconds_left() < timings.DELETION_CHECK_RESERVE_SECONDS:
                unchecked += sum(len(rest) for rest in ordered[index:])
                break
            try:
                found = documents.existing(chunk)
            except ConnectorError as exc:  # proves nothing about any document: neither absent nor present
                failures.append(f"{entity}: {exc}")
                unchecked += sum(len(rest) for rest in ordered[index:])
                break
            checked += len(chunk)
            gone = [key for key in chunk if key not in found]
            _queue(gone, queue, store, correlation_id, day)  # at once: a run cut short keeps what it found
            missing.extend(gone)
    summary = f"{checked} open issues' documents looked up, {len(missing)} not found and queued for a read by key"
    if unchecked:
        summary += f"; {unchecked} left for the next run"
    if failures:
        raise DeletionCheckFailed(f"{summary}; lookups failed: {'; '.join(failures)}")
    return summary


def _queue(missing: list[DocumentKey], queue: WorkQueue, store: StateStore, correlation_id: str, day: str) -> None:
    """A ``sync`` per missing document, for the worker to read by its keys (once a day: the dedupe id)."""
    if not missing:
        return
    messages = [WorkMessage(kind="sync", external_id=key.external_id, source=SOURCE, correlation_id=correlation_id,
                            dedupe_id=f"{SOURCE}:{key.external_id}:{day}",
                            reason="not found in Acumatica by the daily check of open issues' documents")
                for key in missing]
    queue.send(messages)
    store.audit_queued(messages)
    logger.info("documents behind open issues not found in Acumatica; queued to be read by key",
                extra={"missing": [key.external_id for key in missing]})


def _rotation(now: datetime, count: int) -> int:
    """Which slice goes first today: spread by a digest of the date, so each comes first some day."""
    if count <= 1:
        return 0
    return int.from_bytes(hashlib.sha256(now.strftime("%Y-%m-%d").encode()).digest()[:8], "big") % count
