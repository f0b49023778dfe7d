"""The routing and tuning tables: one registry, one validator per table, for every place a table is read.

A table (``OwnerMap``, ``VendorOwners``, ``PriorityTable``...) reaches the connector three ways: as a template
parameter (its text, in the stack's parameter-tables secret or in an upper-snake-case environment variable of a local
run), as a key of a document imported with ``connector config import``, and back out through ``connector config
show``/``export``. Each table is parsed by ONE function, here, whichever way it came: a cold start refuses what an
import refuses, with the same sentence. Every refusal is one line that names the table (parameter and environment
variable), the entry and what would be valid, in words a deployer reads (never a Python type name), and a bad value
is a ``ConfigurationError``.

Two forms of one table: the *parameter form* is text (JSON, or comma-separated for a list); the *document form* is the
JSON value itself (an object, or a list of text for a list table). ``Table.decode`` turns the first into the second;
``Table.parse`` validates the second and returns what the connector uses (a mapping, a ``PriorityTable``, a rule
table). Registering a table is one entry in ``_REGISTRY``: its parser (given the document form), the ``Settings``
attribute it fills, what an empty parameter means, and where its Jira accountIds are (for ``connector config
import``'s check against Jira). Everything here is pure.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from .decisions import (parse_approving_resolutions, parse_decision_authority, parse_decline_action,
                        parse_declining_statuses, parse_non_person_accounts)
from .documents import PROFILES
from .errors import ConfigurationError
from .model import Document, DocumentKey
from .rules import build_rules
from .triage import DEFAULT_LEVELS, PriorityTable, route

if TYPE_CHECKING:
    from .config import Settings

ACCOUNT_ID_LIMIT = 128
"""The longest Jira accountId (the Jira REST API's ``maxLength`` for ``accountId``)."""

RULE_NAMES = ("failed-validation", "unbalanced", "rejected", "pending-approval", "on-hold", "status")
"""The exception rules' names (``connector.rules``), which ``EscalationDays`` keys must be (or ``*``)."""


class TableError(ValueError):
    """One problem with one table: ``entry`` (``"buyer.kim"``, ``levels``, ``#3``) or ``None`` for the whole table."""

    def __init__(self, problem: str, entry: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.entry = entry

    def sentence(self, where: str) -> str:
        return f"{where}: {'entry ' + self.entry + ' ' if self.entry else ''}{self.problem}"


def kind(value: Any) -> str:
    """What a JSON value is, in a deployer's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "empty text" if not value.strip() else "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "something JSON cannot hold"


def quoted(text: Any) -> str:
    """An entry's name as it is written in JSON, so the sentence points at what the deployer typed."""
    return json.dumps(text, ensure_ascii=False)


def decode_json(text: str) -> Any:
    """JSON text as the tables read it: a key given twice, ``NaN`` or ``Infinity`` is an error, not a silent pick."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key, value in items:
            if key in found:
                raise TableError("appears twice; give each entry once", quoted(key))
            found[key] = value
        return found

    def constant(name: str) -> Any:
        raise TableError(f"{name} is not a number JSON allows")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise TableError(f"is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None


# --- the parsers (document form in, what the connector uses out) ----------------------------------------------------


def _object(value: Any, shape: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TableError(f"must be a JSON object of {shape}, not {kind(value)}")
    for key in value:
        if not key.strip():
            raise TableError(f"has an entry with an empty name; every entry is {shape}")
    return value


def _text(value: Any, entry: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TableError(f"must be {what}, not {kind(value)}", entry)
    return value


ACCOUNT = 'a Jira accountId (text such as "5b10ac8d82e05b22cc7d4ef5")'
ACCOUNT_ID = re.compile(r"[A-Za-z0-9:_-]+")
"""What Jira accountIds are made of (``5b10ac8d82e05b22cc7d4ef5``, ``557058:f58131cb-b67d-...``): an email address or a
display name in their place is the usual mistake, and Jira would refuse every assignment to it."""


def _account(value: Any, entry: str) -> str:
    account = _text(value, entry, ACCOUNT).strip()
    if len(account) > ACCOUNT_ID_LIMIT or not ACCOUNT_ID.fullmatch(account):
        raise TableError(f"must be a Jira accountId (letters, digits, ':', '-' and '_', at most {ACCOUNT_ID_LIMIT} "
                         f'characters, such as "5b10ac8d82e05b22cc7d4ef5"), not {quoted(value)}', entry)
    return account


def parse_owner_map(value: Any) -> dict[str, str]:
    """``{"<Acumatica owner, vendor or *>": "<Jira accountId>"}``: who gets the issue."""
    table = _object(value, "Acumatica owner or vendor (or *) -> Jira accountId")
    return {name: _account(account, quoted(name)) for name, account in table.items()}


def parse_vendor_owners(value: Any) -> dict[str, str]:
    """``{"<vendor>": "<Acumatica owner>"}``: the buyer who deals with a vendor, mapped through ``OwnerMap``."""
    table = _object(value, "Acumatica vendor -> Acumatica owner (the buyer, mapped through OwnerMap)")
    return {vendor: _text(owner, quoted(vendor), "an Acumatica owner name (text)") for vendor, owner in table.items()}


def parse_round_robin(value: Any) -> tuple[str, ...]:
    """``["<accountId>", ...]``: who shares documents nothing else routes (a member may appear twice, for weight)."""
    if not isinstance(value, list):
        raise TableError(f"must be a list of Jira accountIds, not {kind(value)}")
    return tuple(_account(account, f"#{index}") for index, account in enumerate(value, 1))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()


def parse_priority_table(value: Any) -> PriorityTable:
    """``{"levels": [...], "bands": [[3, "High"], [14, "Medium"]], "otherwise": "Low", "amountOver": 10000}``; every
    key is optional (Jira's scheme; due within 3 days or overdue: High, else Medium; over 10,000 one step up).
    ``amountOver: null`` turns the amount step off."""
    table = _object(value, "levels, bands, otherwise and amountOver")
    unknown = sorted(set(table) - {"levels", "bands", "otherwise", "amountOver"})
    if unknown:
        raise TableError("is not a setting of the table; use levels, bands, otherwise or amountOver", quoted(unknown[0]))
    default = PriorityTable()
    levels = table.get("levels", list(default.levels))
    if not isinstance(levels, list) or not levels or not all(isinstance(n, str) and n.strip() for n in levels):
        raise TableError("must be a list of the Jira project's priority names, most urgent first (e.g. "
                         f"{quoted(list(DEFAULT_LEVELS))}), not {kind(levels)}", '"levels"')
    bands = table.get("bands", [list(band) for band in default.bands])
    if not isinstance(bands, list):
        raise TableError(f'must be a list of [days, priority] pairs such as [[3, "High"]], not {kind(bands)}',
                         '"bands"')
    for index, band in enumerate(bands, 1):
        if not (isinstance(band, list) and len(band) == 2 and _whole(band[0]) and isinstance(band[1], str)):
            raise TableError(f'must be a pair [whole days, priority name] such as [3, "High"], not '
                             f"{quoted(band) if isinstance(band, list) else kind(band)}", f'"bands" #{index}')
    otherwise = table.get("otherwise", default.otherwise)
    if not isinstance(otherwise, str):
        raise TableError(f"must be a priority name, not {kind(otherwise)}", '"otherwise"')
    amount = table.get("amountOver", default.amount_over)
    try:
        if isinstance(amount, bool) or not (amount is None or isinstance(amount, (int, float, str, Decimal))):
            raise InvalidOperation
        threshold = None if amount is None else Decimal(str(amount))
        if threshold is not None and not threshold.is_finite():
            raise InvalidOperation
    except InvalidOperation:
        shown = quoted(amount) if isinstance(amount, str) else kind(amount)
        raise TableError(f"must be an amount (a number) or null, not {shown}", '"amountOver"') from None
    try:
        return PriorityTable(levels=tuple(levels), bands=tuple((int(days), name) for days, name in bands),
                             otherwise=otherwise, amount_over=threshold)
    except ValueError as exc:  # the table's own consistency rules (``PriorityTable.problems``): the first one
        raise TableError(str(exc).split("; ")[0]) from None


def parse_escalation_days(value: Any) -> dict[str, tuple[int, ...]]:
    """``{"*": [7, 14], "rejected": [2]}``: days an issue may stay open per exception rule before escalating."""
    table = _object(value, "exception rule (or *) -> list of days")
    parsed: dict[str, tuple[int, ...]] = {}
    for rule, days in table.items():
        if rule != "*" and rule not in RULE_NAMES:
            raise TableError(f"is not an exception rule; use * or one of {', '.join(RULE_NAMES)}", quoted(rule))
        if (not isinstance(days, list) or not days
                or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in days)):
            raise TableError(f"must be a non-empty list of positive whole days such as [7, 14], not "
                             f"{quoted(days) if isinstance(days, list) else kind(days)}", quoted(rule))
        parsed[rule] = tuple(sorted(set(days)))
    return parsed


def parse_exception_rules(value: Any):
    """``{"<Entity>": {"add": [...], "remove": [...], "unbalanced": bool, "validation": bool}}`` tuning the default
    exception rules (``connector.rules.build_rules``); ``{}`` keeps them."""
    table = _object(value, "entity -> {add, remove, unbalanced, validation}")
    try:
        return build_rules(table)
    except ValueError as exc:
        raise TableError(str(exc)) from None


def parse_approve_actions(value: Any) -> dict[str, str]:
    """``{"Bill": "approve"}``: the approval action of an entity whose workflow names it differently."""
    table = _object(value, f"entity ({', '.join(PROFILES)}) -> workflow action name")
    for entity, action in table.items():
        if entity not in PROFILES:
            raise TableError(f"is not an entity the connector polls; use {', '.join(PROFILES)}", quoted(entity))
        _text(action, quoted(entity), "a workflow action name (text)")
    return {entity: action.strip() for entity, action in table.items()}


# --- the registry ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    name: str
    """The template parameter, and the table's key in an imported document."""
    variable: str
    """The environment variable (and the line of the parameter-tables secret) that carries the parameter."""
    parse: Callable[[Any], Any]
    """Validates the document form; returns what ``setting`` holds. Raises ``TableError`` (or ``ValueError``)."""
    setting: str
    """The ``Settings`` attribute the table fills; a dotted path reaches into a nested value (``triage.priorities``)."""
    description: str
    listed: bool = False
    """A list: comma-separated text as a parameter, a JSON list of text in a document."""
    accounts: Callable[[Any], Iterable[tuple[str, str]]] | None = None
    """``(entry, accountId)`` pairs of the document form: what ``connector config import`` asks Jira about."""

    @property
    def empty(self) -> Any:
        """What an empty parameter stands for: the table's defaults."""
        return [] if self.listed else {}

    @property
    def where(self) -> str:
        return f"{self.name} ({self.variable})"

    def decode(self, text: str | None) -> Any:
        """The parameter form (text) as the document form; blank text is the empty table."""
        if text is None or not text.strip():
            return self.empty
        if self.listed:
            return [part.strip() for part in text.split(",") if part.strip()]
        return decode_json(text)

    def from_parameter(self, text: str | None) -> Any:
        """The value of the parameter's text; a ``ConfigurationError`` naming parameter and variable otherwise."""
        return self._parsed(lambda: self.parse(self.decode(text)), self.where)

    def from_document(self, value: Any, source: str) -> Any:
        return self._parsed(lambda: self.parse(value), f"{source}: {self.name}")

    @staticmethod
    def _parsed(parse: Callable[[], Any], where: str) -> Any:
        """A parser's ``TableError`` (or plain ``ValueError``: a parser written elsewhere) as one line naming where."""
        try:
            return parse()
        except TableError as error:
            raise ConfigurationError(error.sentence(where)) from None
        except ValueError as error:
            raise ConfigurationError(f"{where}: {str(error).splitlines()[0] if str(error) else 'is not valid'}") \
                from None

    def read(self, settings: Settings) -> Any:
        value: Any = settings
        for part in self.setting.split("."):
            value = getattr(value, part)
        return value

    def size(self, value: Any) -> int:
        """Entries of a document-form value (for people: "OwnerMap, 2,300 entries")."""
        return len(value) if isinstance(value, (dict, list)) else 1


def _pairs(value: Any) -> Iterable[tuple[str, str]]:
    return [(quoted(name), account) for name, account in value.items()] if isinstance(value, dict) else []


def _members(value: Any) -> Iterable[tuple[str, str]]:
    return [(f"#{index}", account) for index, account in enumerate(value, 1)] if isinstance(value, list) else []


_REGISTRY = (
    Table("OwnerMap", "OWNER_MAP", parse_owner_map, "owner_map",
          "Acumatica owner or vendor (or * for everything else) -> the Jira accountId that gets the issue",
          accounts=_pairs),
    Table("VendorOwners", "VENDOR_OWNERS", parse_vendor_owners, "triage.vendor_owners",
          "Acumatica vendor -> the owner (buyer) who deals with it, mapped through OwnerMap"),
    Table("RoundRobinAssignees", "ROUND_ROBIN_ASSIGNEES", parse_round_robin, "triage.round_robin",
          "Jira accountIds sharing the documents nothing else routes (stable per document)", listed=True,
          accounts=_members),
    Table("PriorityTable", "PRIORITY_TABLE", parse_priority_table, "triage.priorities",
          "Jira priority from days to the due date, one step up over an amount"),
    Table("EscalationDays", "ESCALATION_DAYS", parse_escalation_days, "triage.escalation_days",
          "exception rule (or *) -> days an issue may stay open before it escalates"),
    Table("ExceptionRules", "EXCEPTION_RULES", parse_exception_rules, "exception_rules",
          "per entity: status labels added to or removed from the exceptions, the unbalanced and validation rules"),
    Table("ApproveActionNames", "APPROVE_ACTION_NAMES", parse_approve_actions, "approve_actions",
          "entity -> the workflow action that approves it, where it differs from ApproveActionName"),
    Table("ApprovingResolutions", "APPROVING_RESOLUTIONS", parse_approving_resolutions,
          "decision_policy.approving_resolutions",
          "Jira resolutions that approve; any other resolution is a no (docs/decisions.md)", listed=True),
    Table("DecliningStatuses", "DECLINING_STATUSES", parse_declining_statuses, "decision_policy.declining_statuses",
          "Jira statuses that decline whatever the resolution", listed=True),
    Table("NonPersonAccounts", "NON_PERSON_ACCOUNTS", parse_non_person_accounts, "decision_policy.non_person_accounts",
          "Jira accountIds whose moves are never decisions (Automation for Jira by default)", listed=True),
    Table("DeclineAction", "DECLINE_ACTION", parse_decline_action, "decision_policy.decline_actions",
          "entity -> the workflow action a person's no runs on a document pending approval"),
    Table("DecisionAuthority", "DECISION_AUTHORITY", parse_decision_authority, "decision_policy.authority",
          "Jira group or accountId -> {entity or *: the largest amount it may decide, or null}"),
)

TABLES: Mapping[str, Table] = {table.name: table for table in _REGISTRY}
"""Every table, by name (the template parameter, the key in an imported document), in the registry's order."""


def tables_from_parameters(env: Mapping[str, str]) -> dict[str, Any]:
    """Every table's value from its parameter text (``env`` by variable name); absent means the defaults."""
    return {table.name: table.from_parameter(env.get(table.variable)) for table in TABLES.values()}


def apply_tables(settings: Settings, values: Mapping[str, Any]) -> Settings:
    """``settings`` with each table in ``values`` (by name, parsed) in place of its own."""
    for name, value in values.items():
        settings = _replace(settings, TABLES[name].setting.split("."), value)
    return settings


def _replace(holder: Any, path: list[str], value: Any) -> Any:
    head, *rest = path
    return dataclasses.replace(holder, **{head: _replace(getattr(holder, head), rest, value) if rest else value})


# --- imported documents ---------------------------------------------------------------------------------------------


def parse_document(document: Any, source: str) -> dict[str, Any]:
    """Every table of an imported document, parsed; the first problem is a one-line ``ConfigurationError`` that names
    ``source`` (the file, or ``version 7``), the table and the entry."""
    if not isinstance(document, dict):
        raise ConfigurationError(f"{source}: must be a JSON object whose keys are table names "
                                 f"({', '.join(TABLES)}), not {kind(document)}")
    parsed = {}
    for name, value in document.items():
        table = TABLES.get(name)
        if table is None:
            close = difflib.get_close_matches(name, TABLES, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigurationError(f"{source}: {quoted(name)} is not a table; {hint}tables: {', '.join(TABLES)}")
        if value is None:
            raise ConfigurationError(f"{source}: {name} is null; leave the key out to use the {name} parameter")
        parsed[name] = table.from_document(value, source)
    return parsed


def read_document(text: str, source: str) -> dict[str, Any]:
    """A document's JSON text (``connector config import FILE``) as its tables, validated; see ``parse_document``."""
    try:
        document = decode_json(text)
    except TableError as error:
        raise ConfigurationError(error.sentence(source)) from None
    parse_document(document, source)
    return document


def canonical(document: Mapping[str, Any]) -> bytes:
    """The one byte form of a document: what is stored, digested and compared (key order and spacing do not count)."""
    return json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False).encode("utf-8")


def digest(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(document)).hexdigest()


def account_ids(document: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(table, entry, accountId)`` for every Jira accountId a document routes to."""
    return [(name, entry, account) for name, value in document.items()
            for entry, account in (TABLES[name].accounts(value) if TABLES[name].accounts else ())]


# --- what a change does to routing ----------------------------------------------------------------------------------


def _vendor_route(vendor: str, settings: Settings) -> str | None:
    """Who a bill of ``vendor`` with no owner and no buyer goes to under ``settings`` (``connector.triage.route``)."""
    bill = Document(key=DocumentKey("Bill", "Bill", f"vendor:{vendor}"), status="On Hold", hold=True, vendor=vendor,
                    amount=None, currency="")
    return route(bill, settings.owner_map, settings.triage).account_id


def routing_effect(before: Settings, after: Settings) -> dict[str, Any]:
    """What replacing ``before``'s tables with ``after``'s does to routing, for the audit and the operator: the
    tables whose value changed, the owners (``OwnerMap`` keys) whose accountId changed, and the vendors (of
    ``VendorOwners``, before or after) whose bills would now go to someone else."""
    changed = [table.name for table in TABLES.values() if table.read(before) != table.read(after)]
    owners = (set(before.owner_map) | set(after.owner_map)) - {"*"}
    vendors = set(before.triage.vendor_owners) | set(after.triage.vendor_owners)
    return {
        "tables_changed": changed,
        "owners_remapped": sum(before.owner_map.get(o) != after.owner_map.get(o) for o in owners),
        "vendors_reassigned": sum(_vendor_route(v, before) != _vendor_route(v, after) for v in vendors),
        "vendors": len(vendors),
        "default_changed": before.owner_map.get("*") != after.owner_map.get("*"),
    }


def describe_effect(effect: Mapping[str, Any]) -> str:
    """One sentence of ``routing_effect``."""
    if not effect.get("tables_changed"):
        return "no table changes"
    parts = [f"{effect['vendors_reassigned']:,} of {effect['vendors']:,} vendors change assignee",
             f"{effect['owners_remapped']:,} owners remapped"]
    if effect.get("default_changed"):
        parts.append("the default (*) assignee changes")
    return f"{', '.join(parts)} (tables changed: {', '.join(effect['tables_changed'])})"
