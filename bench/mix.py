"""The documents every benchmark works on: a deterministic mix of Acumatica Bills, half of them exceptions.

Deterministic by index, so the process that seeds the sandbox and the process that checks the queue agree on which
documents must be queued without passing 50,000 keys between them. The mix cycles through every Bill exception
rule and through healthy statuses, with varied vendors, amounts and descriptions, so the rules, the snapshot and the
fingerprint do the same work they do on a real backlog.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from connector.documents import to_document
from connector.model import Document

_KINDS: tuple[tuple[str, dict[str, Any], str | None], ...] = (
    ("on hold", {"Hold": True}, "on-hold"),
    ("balanced", {"Hold": False, "Status": "Balanced"}, None),
    ("pending approval", {"Hold": False, "Status": "Pending Approval"}, "pending-approval"),
    ("open", {"Hold": False, "Status": "Open"}, None),
    ("rejected", {"Hold": False, "Status": "Rejected"}, "rejected"),
    ("balanced", {"Hold": False, "Status": "Balanced"}, None),
    ("unbalanced on hold", {"Hold": True, "unbalanced": True}, "unbalanced"),
    ("closed", {"Hold": False, "Status": "Closed"}, None),
)
"""(kind, fields, the exception rule it must trigger or ``None`` for a healthy document), cycled by index."""


def reference_number(index: int) -> str:
    return f"{index + 1:06d}"


def index_of(reference: str) -> int:
    return int(reference) - 1


def expected_rule(index: int) -> str | None:
    """The exception rule the index-th document triggers; ``None`` when it is healthy (every odd index)."""
    return _KINDS[index % len(_KINDS)][2]


def is_exception(index: int) -> bool:
    return expected_rule(index) is not None


def bill_fields(index: int, modified: datetime) -> dict[str, Any]:
    """The index-th Bill as ``AcumaticaSandbox.add_document("Bill", **fields)`` takes it (plain values)."""
    _, kind_fields, _ = _KINDS[index % len(_KINDS)]
    amount = Decimal(10_000 + (index * 7919) % 2_500_000) / 100
    fields: dict[str, Any] = {
        "ReferenceNbr": reference_number(index),
        "Vendor": f"V{index % 250 + 1:06d}",
        "VendorRef": f"INV-{2026_00000 + index}",
        "Description": f"Services for cost centre {index % 40 + 100}, period {index % 12 + 1:02d}",
        "Amount": amount,
        "Balance": amount + Decimal("12.50") if kind_fields.get("unbalanced") else amount,
        "Hold": kind_fields["Hold"],
        "LastModifiedDateTime": modified.isoformat(timespec="milliseconds"),
    }
    if "Status" in kind_fields:
        fields["Status"] = kind_fields["Status"]
    return fields


def modified_at(index: int, count: int, now: datetime, spread: timedelta = timedelta(days=20)) -> datetime:
    """Modification times spread evenly over ``spread`` before ``now``: a backlog built up over weeks."""
    return now - spread + spread * (index / max(count, 1))


def bill_document(index: int, modified: datetime) -> Document:
    """The index-th Bill as the connector sees it after reading it from Acumatica (for the pure benchmarks)."""
    record = {"id": f"00000000-0000-4000-8000-{index:012d}", "Type": "Bill", "CurrencyID": "USD",
              **bill_fields(index, modified)}
    record.setdefault("Status", "On Hold" if record["Hold"] else "Balanced")
    return to_document("Bill", record)
