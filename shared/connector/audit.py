"""Audit records: what each step did and why, one item per step under the document's partition.

Layout (``AUDIT#<iso time>#<id>``, expiring after the retention): see docs/data-model.md. ``DynamoStore`` writes
them through its table resource. The webhook function writes none: the worker records the ``queued`` step of the
work the webhook queued (``connector.worker``), so the internet-facing function needs no right on a document's
partition (docs/security.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Mapping, Sequence

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
               details: Mapping[str, Any] | None, now: float, retention_seconds: int,
               record_id: str | None = None) -> dict[str, Any]:
    """One audit record (``AUDIT#<iso time>#<id>`` under the document's partition, see docs/data-model.md).

    ``record_id`` (with a ``now`` that does not change either) makes writing the record again overwrite it: a retried
    step then leaves one record, not one per attempt."""
    at = datetime.fromtimestamp(now, timezone.utc).isoformat()
    item = {
        "PK": key.pk, "SK": f"AUDIT#{at}#{record_id or uuid.uuid4().hex[:8]}", "external_id": key.external_id,
        "event": event, "outcome": outcome, "reason": reason, "correlation_id": correlation_id,
        "at": at, "expires_at": int(now + retention_seconds),
    }
    if details:
        item["details"] = storable({k: v for k, v in details.items() if v not in (None, "")})
    return item


def queued_audit_items(messages: Sequence[WorkMessage], *, now: float, retention_seconds: int,
                       record_id: str | None = None) -> list[dict[str, Any]]:
    """The ``queued`` record of each message: the first step of every piece of work, with the reason it was queued."""
    return [audit_item(m.key, "queued", m.kind, correlation_id=m.correlation_id, reason=m.reason or "",
                       details={"source": m.source, "dedupe_id": m.dedupe_id, "issue": m.issue_key}, now=now,
                       retention_seconds=retention_seconds, record_id=record_id) for m in messages]
