"""Which documents need a human, and what a resolved Jira issue may do to them: both are tables, not ``if`` chains.

``EXCEPTION_RULES`` lists, per entity and in priority order, the conditions that make a document an exception; the
first that matches is the ``Finding`` (rule name plus a sentence for the clerk). ``ACTION_POLICY`` maps the status a
document has when its issue is resolved to the steps the connector may take. Status values are Acumatica's display
labels (the REST API returns labels, not codes). Everything here is pure.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Callable, Mapping

from .model import Document, Finding

Condition = Callable[[Document], bool]

UNRELEASED = frozenset({"On Hold", "Balanced", "Pending Approval"})


def money(value: Decimal | None, currency: str) -> str:
    """An amount as clerks read it (``1,250.00 USD``); rules, fingerprints and Jira text all use this one form."""
    return f"{value:,.2f} {currency}".strip() if value is not None else "(none)"


def _unbalanced(doc: Document) -> bool:
    """Control amount differs from the computed total while the document is not yet released."""
    if doc.status not in UNRELEASED or doc.control_amount is None or doc.total_amount is None:
        return False
    return doc.control_amount != doc.total_amount


@dataclass(frozen=True)
class ExceptionRule:
    name: str
    applies: Condition
    explain: Callable[[Document], str]


def _status_is(*labels: str) -> Condition:
    wanted = frozenset(labels)
    return lambda doc: doc.status in wanted


_UNBALANCED = ExceptionRule(
    "unbalanced",
    _unbalanced,
    lambda d: (f"Unbalanced: control amount {money(d.control_amount, d.currency)} differs from the document total "
               f"{money(d.total_amount, d.currency)}"),
)
_REJECTED = ExceptionRule("rejected", _status_is("Rejected"), lambda d: "Rejected in the approval workflow")
_PENDING = ExceptionRule("pending-approval", _status_is("Pending Approval"), lambda d: "Waiting for approval")
_ON_HOLD = ExceptionRule("on-hold", lambda d: d.status == "On Hold" or (d.hold and d.status in UNRELEASED),
                         lambda d: "On hold")
_INVALID = ExceptionRule(
    "failed-validation",
    lambda d: bool(d.errors),
    lambda d: "Acumatica reports errors: " + "; ".join(f"{k or 'document'}: {v}" for k, v in sorted(d.errors.items())),
)

EXCEPTION_RULES: Mapping[str, tuple[ExceptionRule, ...]] = {
    "Bill": (_INVALID, _UNBALANCED, _REJECTED, _PENDING, _ON_HOLD),
    "PurchaseOrder": (_INVALID, _UNBALANCED, _REJECTED, _PENDING, _ON_HOLD),
    "Check": (_INVALID, _ON_HOLD),
}


def classify(doc: Document) -> Finding | None:
    """The first exception rule that matches, or ``None`` for a healthy document."""
    for rule in EXCEPTION_RULES.get(doc.key.entity, ()):
        if rule.applies(doc):
            return Finding(rule.name, rule.explain(doc))
    return None


def snapshot(doc: Document, finding: Finding | None) -> dict[str, str]:
    """The state that matters, as strings: fingerprinted, stored, and diffed into "old → new" comments."""
    return {
        "status": doc.status,
        "hold": "yes" if doc.hold else "no",
        "vendor": doc.vendor,
        "amount": money(doc.amount, doc.currency),
        "control amount": money(doc.control_amount, doc.currency) if doc.control_amount is not None else "",
        "total": money(doc.total_amount, doc.currency) if doc.total_amount is not None else "",
        "owner": doc.owner or "",
        "errors": "; ".join(f"{k}: {v}" for k, v in sorted(doc.errors.items())),
        "rule": finding.rule if finding else "healthy",
    }


def fingerprint(state: Mapping[str, str]) -> str:
    """Stable digest of a snapshot; equal fingerprints mean nothing a person cares about changed."""
    canonical = json.dumps(dict(state), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """``(field, old, new)`` for each field whose value differs, in a stable order."""
    return [(name, old.get(name, ""), new.get(name, "")) for name in new if old.get(name, "") != new.get(name, "")]


# --- Return flow -----------------------------------------------------------------------------------------------


def is_resolved(status_name: str, category_key: str | None, resolved_statuses: tuple[str, ...]) -> bool:
    """A Jira status counts as resolved if it is one of the configured names, else if its category is ``done``."""
    if resolved_statuses:
        return status_name.casefold() in {name.casefold() for name in resolved_statuses}
    return category_key == "done"


REMOVE_HOLD = "RemoveHold"
"""Not an Acumatica action: the connector's name for ``PUT Hold = false`` (the documented way to leave hold)."""

APPROVE = "<approve>"
"""Placeholder for the workflow approval action, whose name is configurable (``ApproveActionName``)."""


@dataclass(frozen=True)
class Step:
    """One action, taken only while the document is in ``requires_status`` (re-read before every step)."""

    action: str
    requires_status: str
    requires_balanced: bool = False


ACTION_POLICY: Mapping[str, Mapping[str, tuple[Step, ...]]] = {
    "Bill": {
        "Balanced": (Step("ReleaseBill", "Balanced"),),
        "On Hold": (Step(REMOVE_HOLD, "On Hold", requires_balanced=True), Step("ReleaseBill", "Balanced")),
        "Pending Approval": (Step(APPROVE, "Pending Approval"),),
    },
    "PurchaseOrder": {
        "On Hold": (Step(REMOVE_HOLD, "On Hold", requires_balanced=True),),
        "Pending Approval": (Step(APPROVE, "Pending Approval"),),
    },
    "Check": {
        "Balanced": (Step("ReleaseCheck", "Balanced"),),
        "On Hold": (Step(REMOVE_HOLD, "On Hold"), Step("ReleaseCheck", "Balanced")),
    },
}


REVIEWED_FIELDS = ("amount", "vendor", "total")
"""What a person's decision is about: if one of these changed after the issue last showed it, the decision was made
about another document (status, hold and errors are what the decision is expected to change or fix)."""


def reviewed_changes(shown: Mapping[str, str], doc: Document) -> list[tuple[str, str, str]]:
    """``(field, shown, now)`` for each reviewed field whose value differs from what the issue last showed.

    Nothing to compare (the ledger lost its snapshot) is no difference: the issue is then the only record."""
    now = snapshot(doc, None)
    return [(name, shown[name], now[name]) for name in REVIEWED_FIELDS if name in shown and shown[name] != now[name]]


def plan(doc: Document, approve_action: str) -> tuple[tuple[Step, ...], str]:
    """The steps a resolution may take for ``doc`` as it is now, and a sentence saying what or why not."""
    steps = ACTION_POLICY.get(doc.key.entity, {}).get(doc.status, ())
    if not steps:
        return (), f"status {doc.status!r} allows no action from the connector"
    if steps[0].requires_balanced and _unbalanced(doc):
        return (), (f"it cannot leave hold while unbalanced (control amount {money(doc.control_amount, doc.currency)}"
                    f" vs total {money(doc.total_amount, doc.currency)})")
    resolved = tuple(Step(approve_action if s.action == APPROVE else s.action, s.requires_status, s.requires_balanced)
                     for s in steps)
    return resolved, " then ".join(s.action for s in resolved)
