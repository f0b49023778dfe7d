"""Audit records: what each step did and why, one item per step under the document's partition.

Layout (``AUDIT#<iso time>#<id>``, expiring after the retention): see docs/data-model.md. ``DynamoStore`` writes
them through its table resource; the webhook, which writes nothing else, through ``QueuedAudit``. This module
imports only the model and boto3's light DynamoDB helpers, so the webhook's cold start loads neither the store's
ports nor its condition builders.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

from boto3.dynamodb.table import BatchWriter
from boto3.dynamodb.types import TypeSerializer

from .model import DocumentKey, WorkMessage


def storable(value: Any) -> Any:
    """What DynamoDB stores: floats as Decimal (boto3 refuses floats), ``None`` members left out."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: storable(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value


def audit_item(key: DocumentKey, event: str, outcome: str, *, correlation_id: str, reason: str,
               details: Mapping[str, Any] | None, now: float, retention_seconds: int) -> dict[str, Any]:
    """One audit record (``AUDIT#<iso time>#<id>`` under the document's partition, see docs/data-model.md)."""
    at = datetime.fromtimestamp(now, timezone.utc).isoformat()
    item = {
        "PK": key.pk, "SK": f"AUDIT#{at}#{uuid.uuid4().hex[:8]}", "external_id": key.external_id,
        "event": event, "outcome": outcome, "reason": reason, "correlation_id": correlation_id,
        "at": at, "expires_at": int(now + retention_seconds),
    }
    if details:
        item["details"] = storable({k: v for k, v in details.items() if v not in (None, "")})
    return item


def queued_audit_items(messages: Sequence[WorkMessage], *, now: float, retention_seconds: int) -> list[dict[str, Any]]:
    """The ``queued`` record of each message: the first step of every piece of work, with the reason it was queued."""
    return [audit_item(m.key, "queued", m.kind, correlation_id=m.correlation_id, reason=m.reason or "",
                       details={"source": m.source, "dedupe_id": m.dedupe_id, "issue": m.issue_key}, now=now,
                       retention_seconds=retention_seconds) for m in messages]


class QueuedAudit:
    """Writes the ``queued`` audit records through a low-level DynamoDB client: the webhook's audit path.

    The webhook writes nothing else but its idempotency records, and the DynamoDB *resource* that ``DynamoStore`` is
    built on costs a cold request more than anything else the connector adds to the plain-boto3 handler: it scans
    botocore's data directory for resource models, loads the table's and builds its classes (about 30 ms of 310 in
    BENCHMARKS.md). boto3's own ``TypeSerializer`` and ``BatchWriter`` (25 items a request, unprocessed items resent)
    write the very items ``DynamoStore.audit_queued`` writes, so ``connector audit`` and every other reader of the
    trail read them alike."""

    def __init__(self, client: Any, table_name: str, *, audit_retention_days: int = 400,
                 clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._table_name = table_name
        self._retention = audit_retention_days * 86400
        self._clock = clock
        self._serialize = TypeSerializer().serialize

    def write(self, messages: Sequence[WorkMessage]) -> None:
        with BatchWriter(self._table_name, self._client) as batch:  # wire-format items: any client will do
            for item in queued_audit_items(messages, now=self._clock(), retention_seconds=self._retention):
                batch.put_item(Item={name: self._serialize(value) for name, value in item.items()})
