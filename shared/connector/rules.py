"""Which documents need a human, and what a resolved Jira issue may do to them: both are tables, not ``if`` chains.

``EXCEPTION_RULES`` lists, per entity and in priority order, the conditions that make a document an exception; the
first that matches is the ``Finding`` (rule name plus a sentence for the clerk). ``STATUS_LABELS`` classifies every
status label Acumatica uses, and ``build_rules`` derives the table from it, tuned by the ``ExceptionRules`` parameter. ``ACTION_POLICY`` maps the status a
document has when its issue is resolved to the steps the connector may take. Status values are Acumatica's display
labels (the REST API returns labels, not codes). Everything here is pure.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
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

RuleTable = Mapping[str, tuple[ExceptionRule, ...]]

EXCEPTION, HEALTHY, IGNORED = "exception", "healthy", "ignored"

_AP_DOCUMENT_STATUSES = {
    "On Hold": EXCEPTION, "Pending Approval": EXCEPTION, "Rejected": EXCEPTION,
    "Balanced": HEALTHY, "Open": HEALTHY, "Closed": HEALTHY, "Printed": HEALTHY, "Pre-Released": HEALTHY,
    "Pending Print": HEALTHY, "Pending Processing": HEALTHY, "Pending Payment": HEALTHY, "Unapplied": HEALTHY,
    "Voided": IGNORED, "Scheduled": IGNORED, "Reserved": IGNORED, "Under Reclassification": IGNORED,
}
STATUS_LABELS: Mapping[str, Mapping[str, str]] = {
    "Bill": _AP_DOCUMENT_STATUSES,
    "Check": _AP_DOCUMENT_STATUSES,
    "PurchaseOrder": {
        "On Hold": EXCEPTION, "Pending Approval": EXCEPTION, "Rejected": EXCEPTION,
        "Open": HEALTHY, "Awaiting Link": HEALTHY, "Pending Printing": HEALTHY, "Pending Email": HEALTHY,
        "Completed": HEALTHY, "Closed": HEALTHY, "Printed": HEALTHY,
        "Canceled": IGNORED,
    },
}
"""Every ``Status`` label Acumatica uses for each entity (APDocStatus for bills and AP payments, POOrderStatus for
purchase orders) and what the default rules make of it. ``exception``: a person must act. ``healthy``: the
document is moving through its normal flow. ``ignored``: deliberately not an exception, though it stops the normal
flow: a person ended it (Voided, Canceled) or it is not a live payable (a recurring-bill template, a payment reserved
for printing, a document being reclassified). Healthy and ignored both clear an open issue. ``ExceptionRules`` may
move any of these labels in or out of the exceptions; a label not listed here is refused there."""

_STATUS_RULES = {"Rejected": _REJECTED, "Pending Approval": _PENDING, "On Hold": _ON_HOLD}
_TUNABLE = frozenset({"add", "remove", "unbalanced", "validation"})


def _other_statuses(labels: frozenset[str]) -> ExceptionRule:
    return ExceptionRule("status", _status_is(*labels), lambda d: f"Status is {d.status}")


def build_rules(overrides: Mapping[str, object] | None = None) -> RuleTable:
    """The exception rules per entity: the default table (``STATUS_LABELS``' exceptions, the unbalanced rule where
    the entity has a control total, and the validation rule), tuned by ``overrides`` (the ``ExceptionRules``
    parameter, parsed): ``{"<Entity>": {"add": [labels], "remove": [labels], "unbalanced": bool,
    "validation": bool}}``.

    Raises ``ValueError`` naming the entity and the label or key for anything it cannot apply exactly as written, and
    for an entity left with no rule at all: a typo must never turn into silently polling with no rules.
    """
    overrides = overrides or {}
    if not isinstance(overrides, Mapping):
        raise ValueError("must be a JSON object of entity -> {add, remove, unbalanced, validation}")
    unknown = sorted(set(overrides) - set(STATUS_LABELS))
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not an entity the connector polls; use one of {sorted(STATUS_LABELS)}")
    table: dict[str, tuple[ExceptionRule, ...]] = {}
    for entity, labels in STATUS_LABELS.items():
        tuning = overrides.get(entity, {})
        if not isinstance(tuning, Mapping):
            raise ValueError(f"{entity}: must be an object with add, remove, unbalanced or validation")
        extra = sorted(set(tuning) - _TUNABLE)
        if extra:
            raise ValueError(f"{entity}: {extra[0]!r} is not a setting; use add, remove, unbalanced or validation")
        changes = {name: _labels(entity, name, tuning.get(name, []), labels) for name in ("add", "remove")}
        both = sorted(changes["add"] & changes["remove"])
        if both:
            raise ValueError(f"{entity}: status {both[0]!r} is both added and removed")
        switches = {name: tuning.get(name, True) for name in ("unbalanced", "validation")}
        for name, value in switches.items():
            if not isinstance(value, bool):
                raise ValueError(f"{entity}: {name} must be true or false, got {value!r}")
        statuses = (frozenset(label for label, kind in labels.items() if kind == EXCEPTION) | changes["add"]) - \
            changes["remove"]
        rules: list[ExceptionRule] = [_INVALID] if switches["validation"] else []
        if switches["unbalanced"] and entity != "Check":  # a payment has no control total to disagree with
            rules.append(_UNBALANCED)
        rules.extend(rule for label, rule in _STATUS_RULES.items() if label in statuses)
        others = statuses - set(_STATUS_RULES)
        if others:
            rules.append(_other_statuses(frozenset(others)))
        if not rules:
            raise ValueError(f"{entity}: these settings leave no exception rule at all; "
                             "remove it from DocumentTypes instead")
        table[entity] = tuple(rules)
    return table


def _labels(entity: str, name: str, value: object, known: Mapping[str, str]) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{entity}: {name} must be a list of status labels")
    for label in value:
        if label not in known:
            raise ValueError(f"{entity}: status {label!r} is not a {entity} status label; known labels: "
                             + ", ".join(sorted(known)))
    return frozenset(value)


EXCEPTION_RULES: RuleTable = build_rules()


def classify(doc: Document, rules: RuleTable = EXCEPTION_RULES) -> Finding | None:
    """The first exception rule that matches, or ``None`` for a healthy document."""
    for rule in rules.get(doc.key.entity, ()):
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
"""The connector's name for lifting a hold. The instance decides how: its workflow action (``$adHocSchema`` lists it,
e.g. ``ReleaseFromHold``, the form's *Remove Hold*) where it offers one, else ``PUT Hold = false``."""

APPROVE = "<approve>"
"""Placeholder for the workflow approval action, whose name is configurable (``ApproveActionName``)."""


@dataclass(frozen=True)
class Step:
    """One action, taken only while the document is in ``requires_status`` (re-read before every step), and done only
    when the document re-read after it is in one of ``leads_to``: an answer of 200 or 204 is Acumatica's signal, the
    status is the fact. ``pending``: statuses that mean Acumatica took the step and wants more (one approval of a
    multi-step approval map leaves the document Pending Approval). Any other status after the step means it failed.

    ``via`` and ``parameters`` are the instance's: the workflow action that lifts a hold (empty: ``PUT Hold =
    false``), and the ``View.Field`` of each parameter the step's workflow action takes (the approval's reason), both
    read from ``$adHocSchema`` before the step is taken (``resolve._named_by_the_instance``)."""

    action: str
    requires_status: str
    leads_to: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    requires_balanced: bool = False
    via: str = ""
    parameters: tuple[str, ...] = ()


# Where each step leads, from Acumatica's workflows (docs/acumatica-api.md; APInvoiceEntry_Workflow and
# APInvoiceEntry_ApprovalWorkflow, POOrderEntry's, APPaymentEntry's): leaving hold goes to the next state of the
# hold-to-balance sequence, Pending Approval under an approval map; an approval moves on only when the map's last step
# is approved (``approved`` is set then), so one approval of several leaves it Pending Approval; a release opens the
# document, or closes it when nothing is left to pay or apply.
_BILL_RELEASED = ("Open", "Closed", "Pending Payment")
_ORDER_OPEN = ("Open", "Pending Printing", "Pending Email", "Awaiting Link")
_STILL_PENDING = ("Pending Approval",)

ACTION_POLICY: Mapping[str, Mapping[str, tuple[Step, ...]]] = {
    "Bill": {
        "Balanced": (Step("ReleaseBill", "Balanced", _BILL_RELEASED),),
        "On Hold": (Step(REMOVE_HOLD, "On Hold", ("Balanced", "Pending Approval"), requires_balanced=True),
                    Step("ReleaseBill", "Balanced", _BILL_RELEASED)),
        "Pending Approval": (Step(APPROVE, "Pending Approval", ("Balanced",), _STILL_PENDING),),
    },
    "PurchaseOrder": {
        "On Hold": (Step(REMOVE_HOLD, "On Hold", ("Pending Approval", *_ORDER_OPEN), requires_balanced=True),),
        "Pending Approval": (Step(APPROVE, "Pending Approval", _ORDER_OPEN, _STILL_PENDING),),
    },
    "Check": {
        "Balanced": (Step("ReleaseCheck", "Balanced", ("Closed", "Open")),),
        "On Hold": (Step(REMOVE_HOLD, "On Hold", ("Balanced", "Pending Print")),
                    Step("ReleaseCheck", "Balanced", ("Closed", "Open"))),
    },
}



DECLINED = ("Rejected",)
"""Where a decline action (``DeclineAction``, e.g. ``Reject``) leads a document pending approval: a rejection at any
step of an approval map rejects the document (every entity's workflow has the Rejected state)."""


def decline_step(action: str) -> Step:
    """The step a person's "no" takes when ``DeclineAction`` names ``action`` for the entity: from Pending Approval to
    Rejected, confirmed by the re-read like any other step."""
    return Step(action, "Pending Approval", DECLINED)

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
    resolved = tuple(replace(s, action=approve_action) if s.action == APPROVE else s for s in steps)
    return resolved, " then ".join(s.action for s in resolved)
