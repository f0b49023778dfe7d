"""Who acts on an exception, by when, and how urgently: routing, due date, priority and escalation, as tables.

An issue that exists is not yet an issue someone acts on. The AP team triages by who bought (the purchase order's
``Owner``, or for a bill the owner of the purchase order its lines reference), by when the vendor must be paid (the
document's due date) and by size. Every decision here is a lookup in data the deployer configures through template
parameters or imports with ``connector config`` (parsed and validated by ``connector.tables``, so a typo fails with the
table's name, not a Jira 400 at three in the morning). Everything here is pure: no clock, no I/O; ``today`` is passed
in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Mapping, Sequence

from .model import Document

DUE_FIELDS: Mapping[str, str] = {"Bill": "DueDate", "PurchaseOrder": "PromisedOn", "Check": "ApplicationDate"}
"""The Acumatica field that says when each entity must be acted on (all three are in the entity profiles' $select)."""

DEFAULT_LEVELS = ("Highest", "High", "Medium", "Low", "Lowest")
"""Jira's default priority scheme, most urgent first."""


# --- due date ---------------------------------------------------------------------------------------------------


def parse_acumatica_date(value: Any) -> date | None:
    """The calendar date of an Acumatica date value, ``None`` when empty or unreadable.

    Acumatica writes dates as ISO timestamps, with an offset (``2026-12-01T00:00:00+03:00``) or without one
    (``2026-12-01T00:00:00``, the company's local time). The due date is the calendar day Acumatica means, so the
    date is taken in the value's own offset: converting to UTC would move a midnight due date to the day before.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            return None


def due_date(doc: Document) -> date | None:
    """When the document must be acted on: a bill's ``DueDate``, a PO's ``PromisedOn``, a payment's date."""
    name = DUE_FIELDS.get(doc.key.entity)
    return parse_acumatica_date(doc.fields.get(name)) if name else None


# --- priority ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriorityTable:
    """Priority from days-to-due, then one step up for large amounts.

    ``bands`` are ``(days, priority)`` in ascending days: a document due within ``days`` (overdue counts as due
    within any band) gets that priority; past the last band, or with no due date, ``otherwise``. ``levels`` are the
    Jira project's priority names, most urgent first, and define what "one step up" means. Validation guarantees
    a later due date is never more urgent than an earlier one for the same amount.
    """

    levels: tuple[str, ...] = DEFAULT_LEVELS
    bands: tuple[tuple[int, str], ...] = ((3, "High"),)
    otherwise: str = "Medium"
    amount_over: Decimal | None = Decimal("10000")

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        rank = {name: index for index, name in enumerate(self.levels)}
        found = []
        if not self.levels or len(rank) != len(self.levels):
            found.append("levels must be a non-empty list of distinct priority names, most urgent first")
        for name in [p for _, p in self.bands] + [self.otherwise]:
            if name not in rank:
                found.append(f"priority {json.dumps(name)} is not one of the levels {json.dumps(list(self.levels))}")
        if found:
            return found
        days = [d for d, _ in self.bands]
        if days != sorted(set(days)):
            found.append("bands must be in strictly ascending days")
        urgency = [rank[p] for _, p in self.bands] + [rank[self.otherwise]]
        if urgency != sorted(urgency):
            found.append("a band for later due dates may not be more urgent than one for earlier dates "
                         "(nor may 'otherwise' be more urgent than the last band)")
        if self.amount_over is not None and self.amount_over < 0:
            found.append("amountOver must not be negative")
        return found

    def priority(self, days_to_due: int | None, amount: Decimal | None) -> str:
        base = self.otherwise
        if days_to_due is not None:
            base = next((name for days, name in self.bands if days_to_due <= days), self.otherwise)
        index = self.levels.index(base)
        if self.amount_over is not None and amount is not None and amount > self.amount_over:
            index = max(0, index - 1)
        return self.levels[index]

    def more_urgent(self, a: str, b: str) -> bool:
        """``a`` outranks ``b`` (names outside the levels rank below all of them)."""
        rank = {name: index for index, name in enumerate(self.levels)}
        return rank.get(a, len(rank)) < rank.get(b, len(rank))


# --- routing ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Who gets the issue and why; ``unmapped`` names owners found on the document that ``OwnerMap`` lacks."""

    account_id: str | None
    source: str
    unmapped: tuple[str, ...] = ()


def round_robin_pick(external_id: str, pool: Sequence[str]) -> str | None:
    """A member of ``pool`` chosen by the document, not by the clock: replays and previews pick the same person."""
    if not pool:
        return None
    digest = int.from_bytes(hashlib.sha256(external_id.encode()).digest()[:8], "big")
    return pool[digest % len(pool)]


# --- escalation -------------------------------------------------------------------------------------------------


def escalation_thresholds(table: Mapping[str, Sequence[int]], rule: str) -> tuple[int, ...]:
    """Day thresholds for a rule: its own entry, else the ``*`` entry, else none."""
    return tuple(sorted(table.get(rule, table.get("*", ()))))


def reached_thresholds(table: Mapping[str, Sequence[int]], rule: str, days_open: int) -> tuple[int, ...]:
    """Thresholds an issue open ``days_open`` days has reached, ascending (each escalates once, by claim)."""
    return tuple(t for t in escalation_thresholds(table, rule) if days_open >= t)


# --- the rules as one value -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TriageRules:
    priorities: PriorityTable = field(default_factory=PriorityTable)
    vendor_owners: Mapping[str, str] = field(default_factory=dict)
    """Vendor → Acumatica owner (the buyer who deals with that vendor), consulted after the document's own owner."""
    round_robin: tuple[str, ...] = ()
    """Jira accountIds that share documents nobody is routed to (after ``OwnerMap``'s ``*`` default)."""
    escalation_days: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    escalation_user: str | None = None
    escalation_label: str = "escalated"


@dataclass(frozen=True)
class Triage:
    """The evaluated triage of one document on one day: what the issue's fields should say."""

    due_date: date | None
    days_to_due: int | None
    priority: str

    @property
    def overdue(self) -> bool:
        return self.days_to_due is not None and self.days_to_due < 0

    @property
    def due_text(self) -> str:
        """Jira's ``duedate`` format, ``YYYY-MM-DD``, or empty."""
        return self.due_date.isoformat() if self.due_date else ""


def evaluate(doc: Document, rules: TriageRules, today: date) -> Triage:
    due = due_date(doc)
    days = (due - today).days if due else None
    return Triage(due_date=due, days_to_due=days, priority=rules.priorities.priority(days, doc.amount))


def route(doc: Document, owner_map: Mapping[str, str], rules: TriageRules, buyer: str | None = None) -> Route:
    """The assignee, in order: the document's owner (a PO's ``Owner``), the buyer (for a bill, the owner of the PO
    its lines reference), the vendor → owner table, the vendor itself in ``OwnerMap`` (as before), ``OwnerMap``'s
    ``*`` default, then round robin. Owners are Acumatica names mapped to accountIds through ``OwnerMap``."""
    unmapped: list[str] = []
    owners = ((doc.owner, "owner"), (buyer, "buyer"), (rules.vendor_owners.get(doc.vendor), "vendor owner"))
    for owner, source in owners:
        if not owner:
            continue
        if owner in owner_map:
            return Route(owner_map[owner], source, tuple(unmapped))
        if owner not in unmapped:
            unmapped.append(owner)
    if doc.vendor and doc.vendor in owner_map:
        return Route(owner_map[doc.vendor], "vendor", tuple(unmapped))
    if "*" in owner_map:
        return Route(owner_map["*"], "default", tuple(unmapped))
    picked = round_robin_pick(doc.key.external_id, rules.round_robin)
    return Route(picked, "round robin" if picked else "unassigned", tuple(unmapped))
