"""A stateful stand-in for an Acumatica ERP instance, for ``make demo``, ``connector local`` and end-to-end tests.

It is deliberately as strict as the real service is documented to be (``docs/acumatica-api.md`` and the vendored
``specs/acumatica-default-openapi.json``), so that a client which passes against it also follows the official docs:

- ``POST /identity/connect/token``: form-encoded ``password`` and ``refresh_token`` grants; scope must contain ``api``;
  ``offline_access`` adds a refresh token; refresh tokens rotate (a used one answers ``400 invalid_grant``); access
  tokens expire.
- ``GET /entity`` lists the served endpoints; any other ``Default`` version answers 404.
- ``Bill``, ``PurchaseOrder`` and ``Check`` with the spec's field names, Acumatica's status labels, value-wrapped JSON
  in both directions (an unwrapped field is refused), ``$filter``/``$select``/``$top``/``$skip`` (no ``$orderby``;
  results are ordered by a hash of the id, never by time), reads by keys or id, ``PUT`` with the business rules below,
  named and workflow actions answering ``202`` + ``Location`` until ``204`` (or ``500`` with an ``HttpError``).
- Push notifications in Acumatica's format, and switchable faults (429 with ``Retry-After``, 5xx, latency, resets).
- IIS's request limits in front of it: a query string over ``max_query_string`` (2,048 bytes, IIS's default
  ``maxQueryString``, counted as sent, percent-escapes included) answers 404 (IIS logs it as 404.15), a path over
  4,096 bytes 404 (404.14), a URL over 16 KB 414 (HTTP.sys); an API user without rights to an entity (``forbid``)
  gets 403 on every request for it; list queries that expand details can fail as Acumatica's query optimizer
  documents (``fail_expanded_lists``).

Business rules: leaving hold needs a balanced document (Bill ``Amount`` = ``Balance``, PO ``ControlTotal`` =
``OrderTotal``), else 422 with the field ``error``; it leads to Pending Approval when the document requires approval,
else Balanced (Bill, Check) or Open (PO). ``Approve``: Pending Approval → Balanced / Open; ``Reject`` → Rejected;
``ReleaseBill``: Balanced → Open; ``ReleaseCheck``: Balanced → Closed; anything else fails during the long-running
operation, so releasing twice fails. Every change bumps ``LastModifiedDateTime``.

It can disagree with a client the ways real tenants do (docs/actions.md):

- ``hold_by_workflow``: entities whose ``Hold`` ignores API writes (a PUT answers 200 and keeps the hold), as recent
  builds do; ``$adHocSchema`` then offers the form's ``ReleaseFromHold`` and ``PutOnHold`` workflow actions, which
  lift or set the hold (APInvoiceEntry and POOrderEntry name them so in 2025 R2), unless ``hold_actions`` leaves the
  entity out (a workflow that does not expose them): then nothing the API can send lifts the hold.
- Approval maps (``add_document(approvers=[[users of step 1], [users of step 2]], reason_required=...)``): an approval
  by a user outside the current step is refused ("You are not an authorized approver"), one approval of a two-step
  map leaves the document Pending Approval, and a map that requires a reason refuses an approval without one. With
  ``approval_reasons``, ``$adHocSchema`` lists the approval dialog's ``ReasonApproveRejectParams.Reason`` parameter.
- One session per OAuth grant (a password grant, or a refresh chain): with ``long_operation_seconds``, an action runs
  that long, its status URL answers 202 meanwhile, and every other request of the same session is refused with
  "The previous operation has not been completed yet." (500), as Acumatica refuses them.

Its own clock: ``LastModifiedDateTime`` is stamped by the sandbox's clock, which runs ``skew`` apart from the wall
clock (hours behind, days ahead), and rendered with the tenant's ``render_offset`` (``+10:00``), or without an offset
at all (``render_naive``). ``$filter`` compares ``datetimeoffset`` literals with the stamps by instant, as OData
defines it, whatever offset either side is written in. Every answer's ``Date`` header comes from the same clock, as a
real server's does, unless ``web_skew`` gives the web node a clock of its own: on a hosted tenant the ``Date`` header
comes from the web node (or a proxy) while the database server stamps ``LastModifiedDateTime``, and the two differ.
So a client that trusts its own clock, the UTC rendering of anything, or the ``Date`` header for the database's
clock, disagrees with this sandbox the way it would disagree with a real tenant.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from werkzeug.wrappers import Request, Response

from .serving import LoopbackServer, Served

ENDPOINT_NAME = "Default"

# Scalar fields of each entity in Default/24.200.001, with the value-wrapper type the spec gives them. Detail arrays
# and linked entities (Details, Applications, TaxDetails, History, ShippingInstructions) are not modelled, except a
# bill's Details for reading (DETAIL_FIELDS).
FIELDS: dict[str, dict[str, str]] = {
    "Bill": {
        "Amount": "decimal", "ApprovedForPayment": "boolean", "Balance": "decimal", "BranchID": "string",
        "CashAccount": "string", "CurrencyID": "string", "Date": "datetime", "Description": "string",
        "DueDate": "datetime", "Hold": "boolean", "IsTaxValid": "boolean", "LastModifiedDateTime": "datetime",
        "LocationID": "string", "PostPeriod": "string", "Project": "string", "ReferenceNbr": "string",
        "Status": "string", "TaxTotal": "decimal", "Terms": "string", "Type": "string", "Vendor": "string",
        "VendorRef": "string",
    },
    "PurchaseOrder": {
        "BaseCurrencyID": "string", "Branch": "string", "ControlTotal": "decimal", "CurrencyEffectiveDate": "datetime",
        "CurrencyID": "string", "CurrencyRate": "decimal", "CurrencyRateTypeID": "string",
        "CurrencyReciprocalRate": "decimal", "Date": "datetime", "Description": "string", "Hold": "boolean",
        "IsTaxValid": "boolean", "LastModifiedDateTime": "datetime", "LineTotal": "decimal", "Location": "string",
        "OrderNbr": "string", "OrderTotal": "decimal", "Owner": "string", "Project": "string",
        "PromisedOn": "datetime", "Status": "string", "TaxTotal": "decimal", "Terms": "string", "Type": "string",
        "VendorID": "string", "VendorRef": "string", "VendorTaxZone": "string",
    },
    "Check": {
        "ApplicationDate": "datetime", "CashAccount": "string", "CurrencyID": "string", "Description": "string",
        "Hold": "boolean", "LastModifiedDateTime": "datetime", "PaymentAmount": "decimal", "PaymentMethod": "string",
        "PaymentRef": "string", "ReferenceNbr": "string", "Status": "string", "Type": "string",
        "UnappliedBalance": "decimal", "Vendor": "string",
    },
}
DETAIL_FIELDS: dict[str, dict[str, str]] = {
    # BillDetail in Default/24.200.001 (a subset): read with $expand=Details, seeded with add_document(Details=[...]).
    "Bill": {
        "Amount": "decimal", "Description": "string", "ExtendedCost": "decimal", "InventoryID": "string",
        "POLine": "int", "POOrderNbr": "string", "POOrderType": "string", "POReceiptNbr": "string",
        "Qty": "decimal", "TransactionDescription": "string", "UnitCost": "decimal",
    },
}
KEY_FIELDS: dict[str, tuple[str, str]] = {
    "Bill": ("Type", "ReferenceNbr"),
    "PurchaseOrder": ("Type", "OrderNbr"),
    "Check": ("Type", "ReferenceNbr"),
}
# Calculated or workflow-owned fields: Acumatica ignores values sent for them.
READ_ONLY: dict[str, frozenset[str]] = {
    "Bill": frozenset({"Status", "LastModifiedDateTime", "Balance", "TaxTotal"}),
    "PurchaseOrder": frozenset({"Status", "LastModifiedDateTime", "OrderTotal", "LineTotal", "TaxTotal"}),
    "Check": frozenset({"Status", "LastModifiedDateTime", "UnappliedBalance"}),
}
NAMED_ACTIONS: dict[str, frozenset[str]] = {
    "Bill": frozenset({"ReleaseBill"}),
    "PurchaseOrder": frozenset(),
    "Check": frozenset({"ReleaseCheck"}),
}
WORKFLOW_ACTIONS: dict[str, tuple[str, ...]] = {
    "Bill": ("Approve", "Reject"),
    "PurchaseOrder": ("Approve", "Reject"),
    "Check": (),
}
HOLD_ACTIONS = ("ReleaseFromHold", "PutOnHold")
"""The form's Remove Hold and Hold, offered as workflow actions where ``hold_by_workflow`` says the field ignores API
writes (``releaseFromHold`` / ``putOnHold`` on APInvoiceEntry, APPaymentEntry and POOrderEntry)."""
REASON_PARAMETER = ("ReasonApproveRejectParams", "Reason")
"""The view and field of the reason box the approval and rejection dialogs show (EPApprovalList)."""
SESSION_BUSY = "The previous operation has not been completed yet."
NOT_AN_APPROVER = "You are not an authorized approver for this document."
REASON_REQUIRED = "The approval map requires a reason: enter one in the Reason box."
PUSH_QUERIES = {"Bill": "AJC-Bills", "PurchaseOrder": "AJC-PurchaseOrders", "Check": "AJC-Checks"}
LIST_PARAMETERS = frozenset({"$select", "$filter", "$expand", "$custom", "$skip", "$top"})
PUT_PARAMETERS = frozenset({"$select", "$filter", "$expand", "$custom"})
SYSTEM_KEYS = frozenset({"id", "rowNumber", "note", "custom", "files", "error", "_links"})
UNMODELLED = {
    "Bill": frozenset({"Applications", "Details", "TaxDetails"}),
    "PurchaseOrder": frozenset({"Details", "TaxDetails", "ShippingInstructions"}),
    "Check": frozenset({"Details", "History"}),
}
_DOTNET_EPOCH_TICKS = 621355968000000000
MAX_QUERY_STRING = 2048
"""IIS request filtering's default ``maxQueryString`` (bytes of the query string as sent): longer answers 404.15."""
MAX_URL_PATH = 4096
"""IIS request filtering's default ``maxUrl`` (the path): longer answers 404.14."""
MAX_REQUEST_URL = 16384
"""HTTP.sys refuses a longer request URL with 414 before IIS sees it."""
_SENSITIVE_FORM_KEYS = frozenset({"client_secret", "password", "refresh_token", "access_token"})


@dataclass
class LoggedRequest:
    """One request the sandbox answered. Token-endpoint secrets are redacted; bearer tokens are not kept."""

    method: str
    path: str
    raw_query: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int = 0
    response: Any = None


@dataclass
class _Document:
    record: dict[str, Any]
    requires_approval: bool
    previous: dict[str, Any] | None = None
    approvers: tuple[frozenset[str], ...] = ()
    """The approval map's steps: who may approve at each (an empty map: one step anybody may approve)."""
    reason_required: bool = False
    approved_steps: int = 0
    approvals: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Operation:
    entity: str
    action: str
    polls_left: int
    error: str | None
    grant: str = ""
    until: float = 0.0
    """Monotonic time the long operation ends; until then it blocks the other requests of its session."""


@dataclass
class _Fault:
    remaining: int
    status: int | None  # None: reset the connection
    retry_after: float | None
    path_contains: str | None = None


@dataclass
class _SandboxError(Exception):
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _http_error(status: int, message: str, exception_message: str | None = None) -> _SandboxError:
    body: dict[str, Any] = {"message": message}
    if exception_message is not None:
        body.update(exceptionMessage=exception_message, exceptionType="PX.Data.PXException", stackTrace="")
    return _SandboxError(status, body)


def _iis_refusal(substatus: int, why: str) -> _SandboxError:
    """What a client sees of IIS request filtering: a plain 404 (the substatus is only in IIS's log and its page)."""
    return _SandboxError(404, {"message": f"HTTP Error 404.{substatus} - Not Found: the request filtering module is "
                                          f"configured to deny a request where {why}."})


def _now_iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def _parse_offset_datetime(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"datetime without offset: {text!r}")
    return moment


class AcumaticaSandbox(Served):
    """One in-process Acumatica instance on 127.0.0.1. Start it, seed documents, point the client at ``url``.

    ``hold_by_workflow``, ``hold_actions``, ``approval_reasons``, ``long_operation_seconds``: the disagreements above (attributes of the
    same names change them while running). ``versions``: the ``Default`` endpoint versions served. ``client_id`` (``GUID@Tenant``; the tenant becomes the push
    ``CompanyId``) and ``client_secret``: the connected application. ``users``: name → password for the password
    grant. ``action_polls``: how many ``202`` answers an action's status URL gives before its outcome. ``clock``:
    the time source of token expiry. ``skew``, ``render_offset``, ``render_naive``: the instance's own clock and time
    zone for ``LastModifiedDateTime`` (see the module docstring; ``set_clock`` changes them while running).
    """

    def __init__(
        self,
        versions: Iterable[str] = ("24.200.001",),
        client_id: str = "6A1C3D0E-9B2F-4E57-8C41-1F2E3D4C5B6A@Company",
        client_secret: str = "sandbox-client-secret",
        users: Mapping[str, str] | None = None,
        token_lifetime_seconds: float = 3600,
        action_polls: int = 1,
        clock: Callable[[], float] = time.time,
        skew: timedelta = timedelta(0),
        render_offset: timedelta = timedelta(0),
        render_naive: bool = False,
        hold_by_workflow: Iterable[str] = (),
        hold_actions: Iterable[str] | None = None,
        approval_reasons: bool = False,
        long_operation_seconds: float = 0.0,
        web_skew: timedelta | None = None,
        max_query_string: int = MAX_QUERY_STRING,
    ) -> None:
        self.versions = tuple(versions)
        self.client_id = client_id
        self.client_secret = client_secret
        self.company = client_id.rpartition("@")[2] or "Company"
        self.users = dict(users if users is not None else {"admin": "sandbox-password"})
        self.token_lifetime_seconds = token_lifetime_seconds
        self.action_polls = action_polls
        self._clock = clock
        self._lock = threading.RLock()
        self._documents: dict[str, dict[tuple[str, str], _Document]] = {entity: {} for entity in FIELDS}
        self._numbers: dict[str, int] = {entity: 0 for entity in FIELDS}
        self._access_tokens: dict[str, float] = {}
        self._refresh_tokens: dict[str, str] = {}  # token -> scope
        # One session per grant: a password grant or an issued refresh token starts one, refreshing keeps it.
        self._access_grants: dict[str, str] = {}
        self._refresh_grants: dict[str, str] = {}
        self._grant_users: dict[str, str] = {}
        self._running: dict[str, str] = {}  # grant -> id of the long operation running in its session
        self.hold_by_workflow = set(hold_by_workflow)
        self.hold_actions = set(self.hold_by_workflow if hold_actions is None else hold_actions)
        """Entities whose ``$adHocSchema`` offers ``ReleaseFromHold`` and ``PutOnHold`` (default: ``hold_by_workflow``)."""
        self.approval_reasons = approval_reasons
        self.long_operation_seconds = long_operation_seconds
        self.busy_refusals = 0
        """Requests refused because a long operation ran in their session (what a client must never lose work to)."""
        self._operations: dict[str, _Operation] = {}
        self._faults: list[_Fault] = []
        self._latency = 0.0
        self._token_redirect: tuple[int, str] | None = None
        self.skew, self.render_offset, self.render_naive = skew, render_offset, render_naive
        self.web_skew = web_skew
        self.max_query_string = max_query_string
        self._forbidden: set[str] = set()
        self._fail_expanded_lists = False
        self._last_modified = self.now() - timedelta(days=1)
        self._list_hooks: list[Callable[[str, int], None]] = []
        self._deleted: dict[str, dict[tuple[str, str], dict[str, Any]]] = {entity: {} for entity in FIELDS}
        self.action_log: list[tuple[str, tuple[str, str], str, str]] = []
        self.requests_log: list[LoggedRequest] = []
        # Quiet: tests and the demo read ``requests_log`` instead of an access log.
        self._server = LoopbackServer(self._wsgi, name="acumatica-sandbox", clock=self.web_now)

    # ------------------------------------------------------------------------------------------- clock

    def now(self) -> datetime:
        """The instance's clock: the wall clock moved by ``skew``."""
        return datetime.now(timezone.utc) + self.skew

    def web_now(self) -> datetime:
        """The web node's clock, which writes the ``Date`` header: the database's clock unless ``web_skew`` is set."""
        return self.now() if self.web_skew is None else datetime.now(timezone.utc) + self.web_skew

    def set_clock(self, *, skew: timedelta | None = None, render_offset: timedelta | None = None,
                  render_naive: bool | None = None, web_skew: timedelta | None = None) -> None:
        """Move the instance's clock or change how it renders stamps. Stamps follow the clock, backwards too, as they
        would on a server whose clock was corrected. ``web_skew`` moves the web node's clock alone (the ``Date``
        header); while it is unset, the web node and the database share one clock."""
        with self._lock:
            if web_skew is not None:
                self.web_skew = web_skew
            if skew is not None:
                self.skew = skew
                self._last_modified = min(self._last_modified, self.now())
            if render_offset is not None:
                self.render_offset = render_offset
            if render_naive is not None:
                self.render_naive = render_naive

    def render(self, stamp: str) -> str:
        """A stored stamp as the tenant renders it: in ``render_offset``, without the offset if ``render_naive``."""
        local = _parse_offset_datetime(stamp).astimezone(timezone(self.render_offset))
        return (local.replace(tzinfo=None) if self.render_naive else local).isoformat(timespec="milliseconds")

    def _instant(self, text: str) -> datetime:
        """A rendered stamp's instant; one without an offset is in the tenant's offset, as the tenant wrote it."""
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment.replace(tzinfo=timezone(self.render_offset)) if moment.tzinfo is None else moment

    # ------------------------------------------------------------------------------------------- seeding

    def add_document(self, entity: str, *, requires_approval: bool = False,
                     approvers: Iterable[Iterable[str]] | None = None, reason_required: bool = False,
                     **fields: Any) -> dict[str, Any]:
        """Create a document with sensible defaults; returns its plain record.

        ``Status`` follows ``Hold`` unless given (On Hold; else Balanced, or Open for a PO); the number is assigned
        when not given; ``Balance`` / ``ControlTotal`` default to the amount so the document is balanced.
        ``approvers``: the approval map's steps, each the users who may approve it (implies ``requires_approval``);
        ``reason_required``: the map refuses an approval without a reason.
        """
        with self._lock:
            lines = fields.pop("Details", None)
            self._check_fields(entity, fields)
            record = self._defaults(entity, fields)
            record.update(fields)
            if lines is not None:
                record["Details"] = self._detail_lines(entity, lines)
            if "Status" not in fields:
                record["Status"] = "On Hold" if record["Hold"] else self._released_from_hold_status(
                    entity, requires_approval or bool(approvers))
            for name, kind in FIELDS[entity].items():
                if kind == "decimal" and record.get(name) is not None:
                    record[name] = Decimal(str(record[name]))
            key = self._record_key(entity, record)
            if key in self._documents[entity]:
                raise ValueError(f"{entity} {key} already exists")
            record["LastModifiedDateTime"] = fields.get("LastModifiedDateTime") or self._next_modified()
            steps = tuple(frozenset(step) for step in approvers or ())
            self._documents[entity][key] = _Document(record=record, requires_approval=requires_approval or bool(steps),
                                                     approvers=steps, reason_required=reason_required)
            self._deleted[entity].pop(key, None)
            return copy.deepcopy(record)

    def update_document(self, entity: str, keys: Any, **fields: Any) -> dict[str, Any]:
        """Change fields directly, as a user on the screen would (no business rules); bumps LastModifiedDateTime."""
        with self._lock:
            self._check_fields(entity, fields)
            document = self._get(entity, keys)
            self._change(document, {name: Decimal(str(v)) if FIELDS[entity][name] == "decimal" and v is not None
                                    else v for name, v in fields.items()})
            return copy.deepcopy(document.record)

    def document(self, entity: str, keys: Any) -> dict[str, Any]:
        """The plain record of one document (``keys``: ``(type, number)`` or a ``DocumentKey``)."""
        with self._lock:
            return copy.deepcopy(self._get(entity, keys).record)

    def documents(self, entity: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(d.record) for d in self._documents[entity].values()]

    def approvals(self, entity: str, keys: Any) -> list[dict[str, Any]]:
        """Who approved the document so far, at which step, with which reason (the form's Approvals tab)."""
        with self._lock:
            return copy.deepcopy(self._get(entity, keys).approvals)

    # ------------------------------------------------------------------------------------------- tokens

    def issue_refresh_token(self, scope: str = "api offline_access", *, user: str = "admin",
                            grant: str | None = None) -> str:
        """A refresh token as if ``user`` had connected the application (authorization code flow): a new grant, or
        the next token of ``grant``'s chain."""
        with self._lock:
            token = secrets.token_urlsafe(24)
            self._refresh_tokens[token] = scope
            self._refresh_grants[token] = grant or self._new_grant(user)
            return token

    def issue_access_token(self, *, user: str = "admin", grant: str | None = None) -> str:
        """An access token of ``grant`` (default: a new grant of ``user``, with a session of its own)."""
        with self._lock:
            token = secrets.token_urlsafe(24)
            self._access_tokens[token] = self._clock() + self.token_lifetime_seconds
            self._access_grants[token] = grant or self._new_grant(user)
            return token

    def _new_grant(self, user: str) -> str:
        grant = str(uuid.uuid4())
        self._grant_users[grant] = user
        return grant

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access_tokens.clear()

    def revoke_refresh_chain(self) -> None:
        """Every refresh token dies, as when the chain's absolute lifetime (30 days by default) ends."""
        with self._lock:
            self._refresh_tokens.clear()

    # ------------------------------------------------------------------------------------------- faults

    def fail_next(self, n: int, status: int = 429, retry_after: float | None = 1,
                  path_contains: str | None = None) -> None:
        """Answer the next ``n`` requests (whose path contains ``path_contains``, if given) with ``status``."""
        with self._lock:
            self._faults.append(_Fault(n, status, retry_after, path_contains))

    def reset_next(self, n: int, path_contains: str | None = None) -> None:
        """Drop the connection of the next ``n`` requests without answering."""
        with self._lock:
            self._faults.append(_Fault(n, None, None, path_contains))

    def forbid(self, entity: str, forbidden: bool = True) -> None:
        """The API user loses (or regains) its rights to ``entity``: every request for it answers 403."""
        with self._lock:
            (self._forbidden.add if forbidden else self._forbidden.discard)(entity)

    def fail_expanded_lists(self, failing: bool = True) -> None:
        """List queries with ``$expand`` answer 500 with the query optimizer's error, as Acumatica documents they can;
        reads of one record by its keys still expand."""
        with self._lock:
            self._fail_expanded_lists = failing

    def set_latency(self, seconds: float) -> None:
        with self._lock:
            self._latency = seconds

    def redirect_token_endpoint(self, location: str | None, status: int = 307) -> None:
        """Answer every token request with ``status`` and ``Location: location`` (a misconfigured proxy in front of
        the instance), until called with ``None``. A 307 asks the client to repeat the POST, body and all, there."""
        with self._lock:
            self._token_redirect = (status, location) if location else None

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._latency = 0.0
            self._token_redirect = None

    # ------------------------------------------------------------------------------------------- push

    def push_payload(self, entity: str, keys: Any, *, transaction_id: str | None = None,
                     query: str | None = None) -> dict[str, Any]:
        """The push notification Acumatica sends for the last change of one document (generic-inquiry rows).

        Rows hold plain values, and datetimes the way generic inquiries show them (no offset). An update shows the
        new row in ``Inserted`` and the old one in ``Deleted``; a deleted document only its old row in ``Deleted``.
        ``Id`` identifies the data transaction, so one transaction seen by two inquiries (``query``) shares it.
        """
        with self._lock:
            key = (keys.type, keys.number) if hasattr(keys, "number") else tuple(keys)
            deleted = self._deleted[entity].get(key)  # type: ignore[arg-type]
            document = None if deleted is not None else self._get(entity, keys)
            record = deleted if deleted is not None else document.record  # type: ignore[union-attr]
            modified = _parse_offset_datetime(record["LastModifiedDateTime"])
            ticks = _DOTNET_EPOCH_TICKS + int((modified - datetime(1970, 1, 1, tzinfo=timezone.utc))
                                              / timedelta(microseconds=1)) * 10
            inserted = [] if document is None else [self._push_row(entity, document.record)]
            old = record if document is None else document.previous
            return {
                "Query": query or PUSH_QUERIES[entity],
                "CompanyId": self.company,
                "Id": transaction_id or str(uuid.uuid4()),
                "TimeStamp": ticks,
                "AdditionalInfo": {},
                "Inserted": inserted,
                "Deleted": [self._push_row(entity, old)] if old else [],
            }

    def _push_row(self, entity: str, record: Mapping[str, Any]) -> dict[str, Any]:
        """A generic-inquiry row: key values padded with a trailing blank and the stamp in the tenant's local time
        without an offset, as the documented examples show them."""
        type_field, number_field = KEY_FIELDS[entity]
        modified = _parse_offset_datetime(record["LastModifiedDateTime"]).astimezone(timezone(self.render_offset))
        return {
            type_field: f"{record[type_field]} ",
            number_field: f"{record[number_field]} ",
            "Status": record["Status"],
            "Hold": record["Hold"],
            "LastModifiedDateTime": modified.replace(tzinfo=None).isoformat(timespec="milliseconds"),
        }

    # ------------------------------------------------------------------------------------------- deletion

    def delete_document(self, entity: str, keys: Any) -> dict[str, Any]:
        """Delete a document, as a user on the screen would; later reads answer 404 and lists no longer hold it."""
        with self._lock:
            document = self._get(entity, keys)
            key = self._record_key(entity, document.record)
            del self._documents[entity][key]
            self._deleted[entity][key] = document.record
            return copy.deepcopy(document.record)

    def on_list(self, hook: Callable[[str, int], None]) -> None:
        """Call ``hook(entity, skip)`` after every list query has been answered, before the next request: the place
        to delete or change documents between two page reads. Runs under the sandbox lock."""
        with self._lock:
            self._list_hooks.append(hook)

    def clear_list_hooks(self) -> None:
        with self._lock:
            self._list_hooks.clear()

    # ------------------------------------------------------------------------------------------- WSGI

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        entry = LoggedRequest(method=request.method, path=request.path,
                              raw_query=request.query_string.decode("latin-1"), query=dict(request.args),
                              headers={k: v for k, v in request.headers.items() if k.lower() != "authorization"},
                              body=self._logged_body(request))
        refused = self._request_limits(environ)  # IIS refuses before Acumatica (or a fault of it) sees anything
        with self._lock:
            self.requests_log.append(entry)
            latency = self._latency
            fault = None if refused is not None else self._take_fault(request.path)
        if refused is not None:
            return self._respond(refused, entry)(environ, start_response)
        if latency:
            time.sleep(latency)
        if fault is not None and fault.status is None:
            connection = environ.get("werkzeug.socket")
            if connection is not None:
                connection.shutdown(socket.SHUT_RDWR)
            entry.status = -1
            return Response(status=500)(environ, start_response)
        if fault is not None:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            error = _SandboxError(fault.status, {"message": "Injected fault"}, headers)  # type: ignore[arg-type]
            return self._respond(error, entry)(environ, start_response)
        try:
            status, body, headers = self._route(request)
            result: _SandboxError | tuple[int, Any, dict[str, str]] = (status, body, headers)
        except _SandboxError as error:
            result = error
        response = self._respond(result, entry)
        if isinstance(entry.response, dict) and request.path == "/identity/connect/token":
            entry.response = {k: ("***" if k in _SENSITIVE_FORM_KEYS else v) for k, v in entry.response.items()}
        return response(environ, start_response)

    @staticmethod
    def _respond(result: _SandboxError | tuple[int, Any, dict[str, str]], entry: LoggedRequest) -> Response:
        status, body, headers = ((result.status, result.body, result.headers) if isinstance(result, _SandboxError)
                                 else result)
        payload = None if body is None else json.dumps(body, default=_json_default)
        entry.status, entry.response = status, None if payload is None else json.loads(payload)  # as sent
        return Response(payload, status=status, headers=headers,
                        mimetype="application/json" if payload is not None else None)

    @staticmethod
    def _logged_body(request: Request) -> Any:
        if request.mimetype == "application/x-www-form-urlencoded":
            return {k: ("***" if k in _SENSITIVE_FORM_KEYS else v) for k, v in request.form.items()}
        data = request.get_data(cache=True)
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data.decode("utf-8", "replace")

    def _request_limits(self, environ: dict[str, Any]) -> _SandboxError | None:
        """IIS's request filtering and HTTP.sys, in front of Acumatica: lengths as sent (escapes not decoded)."""
        raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or ""
        path, _, query = raw_path.partition("?")
        if len(raw_path) > MAX_REQUEST_URL:
            return _SandboxError(414, None)
        if len(path) > MAX_URL_PATH:
            return _iis_refusal(14, "the request URL is too long")
        if len(query) > self.max_query_string:
            return _iis_refusal(15, "the query string is too long")
        return None

    def _take_fault(self, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining > 0 and (fault.path_contains is None or fault.path_contains in path):
                fault.remaining -= 1
                return fault
        return None

    def _route(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        parts = [p for p in request.path.split("/") if p]
        if parts == ["identity", "connect", "token"]:
            if request.method != "POST":
                raise _http_error(405, "The requested resource does not support this HTTP method.")
            with self._lock:
                redirect = self._token_redirect
            if redirect is not None:
                return redirect[0], None, {"Location": redirect[1]}
            return self._token(request)
        if parts == ["entity"]:
            if request.method != "GET":
                raise _http_error(405, "The requested resource does not support this HTTP method.")
            return 200, self._endpoints(), {}
        if len(parts) < 4 or parts[0] != "entity" or parts[1] != ENDPOINT_NAME or parts[2] not in self.versions:
            raise _http_error(404, f"No HTTP resource was found that matches the request URI '{request.path}'.")
        grant = self._authenticate(request)
        version, entity, rest = parts[2], parts[3], parts[4:]
        if entity not in FIELDS:
            raise _http_error(404, f"No HTTP resource was found that matches the request URI '{request.path}'.")
        with self._lock:
            self._refuse_while_running(grant, request, rest)
            if entity in self._forbidden:
                raise _http_error(403, f"You have insufficient rights to access the object ({entity}).")
            return self._entity_route(request, version, entity, rest, grant)

    def _entity_route(self, request: Request, version: str, entity: str, rest: list[str],
                      grant: str) -> tuple[int, Any, dict[str, str]]:
        method = request.method
        if method == "GET" and not rest:
            return 200, self._list(request, entity), {}
        if method == "GET" and rest == ["$adHocSchema"]:
            return 200, self._ad_hoc_schema(entity), {}
        if method == "GET" and len(rest) == 3 and rest[1] == "status":
            return self._operation_status(version, entity, rest[0], rest[2])
        if method == "GET":
            return 200, self._read_one(request, entity, rest), {}
        if method == "PUT" and not rest:
            return self._put(request, entity)
        if method == "POST" and len(rest) == 1:
            return self._action(request, version, entity, rest[0], grant)
        raise _http_error(405, "The requested resource does not support this HTTP method.")

    # ------------------------------------------------------------------------------------------- OAuth

    def _token(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        def refuse(code: str) -> _SandboxError:
            return _SandboxError(400, {"error": code})

        if request.mimetype != "application/x-www-form-urlencoded":
            raise refuse("invalid_request")
        form = request.form
        with self._lock:
            if form.get("client_id") != self.client_id or not secrets.compare_digest(
                    form.get("client_secret", ""), self.client_secret):
                raise refuse("invalid_client")
            grant_type = form.get("grant_type")
            if grant_type == "password":
                user, password = form.get("username", ""), form.get("password", "")
                if user not in self.users or not secrets.compare_digest(password, self.users[user]):
                    raise refuse("invalid_grant")
                scope = form.get("scope", "")
                grant = self._new_grant(user)  # access granted anew: a session of its own
            elif grant_type == "refresh_token":
                used = form.get("refresh_token", "")
                scope = self._refresh_tokens.pop(used, None)  # rotation: single use
                if scope is None:
                    raise refuse("invalid_grant")
                grant = self._refresh_grants.pop(used)  # "the same session ID when the token is refreshed"
            else:
                raise refuse("unsupported_grant_type")
            scopes = scope.split()
            if "api" not in scopes or not set(scopes) <= {"api", "offline_access", "api:concurrent_access"}:
                raise refuse("invalid_scope")
            body: dict[str, Any] = {"access_token": self.issue_access_token(grant=grant), "token_type": "Bearer",
                                    "expires_in": int(self.token_lifetime_seconds), "scope": scope}
            if "offline_access" in scopes:
                body["refresh_token"] = self.issue_refresh_token(scope, grant=grant)
        return 200, body, {"Cache-Control": "no-store"}

    def _authenticate(self, request: Request) -> str:
        """The grant (and so the session) of the request's bearer token; 401 without a live one."""
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        with self._lock:
            expires_at = self._access_tokens.get(token)
            if expires_at is None or expires_at <= self._clock():
                self._access_tokens.pop(token, None)
                raise _http_error(401, "You are not logged in.")
            return self._access_grants[token]

    def _refuse_while_running(self, grant: str, request: Request, rest: list[str]) -> None:
        """While a long operation runs in the grant's session, only its own status may be asked for."""
        running = self._operations.get(self._running.get(grant, ""))
        if running is None or time.monotonic() >= running.until:
            self._running.pop(grant, None)
            return
        if request.method == "GET" and len(rest) == 3 and rest[1] == "status" and rest[2] == self._running[grant]:
            return
        self.busy_refusals += 1
        raise _http_error(500, "An error has occurred.", SESSION_BUSY)

    def _endpoints(self) -> dict[str, Any]:
        endpoints = []
        for version in self.versions:
            for name in (ENDPOINT_NAME, "eCommerce"):
                endpoints.append({"name": name, "version": version, "href": f"/entity/{name}/{version}/"})
        return {"version": {"acumaticaBuildVersion": "24.209.0010", "databaseVersion": "24.209.0010"},
                "endpoints": endpoints}

    # ------------------------------------------------------------------------------------------- reads

    def _list(self, request: Request, entity: str) -> list[dict[str, Any]]:
        self._check_parameters(request, LIST_PARAMETERS)
        select = self._select(request, entity)
        predicate = _FilterParser(request.args.get("$filter", ""), entity).parse()
        skip = self._non_negative(request, "$skip", 0)
        top = self._non_negative(request, "$top", None)
        matching = [d.record for d in self._documents[entity].values() if predicate(d.record)]
        matching.sort(key=lambda r: hashlib.sha256(r["id"].encode()).hexdigest())  # no defined order, not by time
        window = matching[skip:] if top is None else matching[skip:skip + top]
        expand = self._expand(request, entity)
        if expand and self._fail_expanded_lists:
            raise _http_error(500, "An error has occurred.", "Optimization cannot be performed. The following fields "
                                   "cause the error: Details. Please remove the fields from the query.")
        answer = [self._wire(entity, record, select, row, expand=expand)
                  for row, record in enumerate(window, start=skip + 1)]
        for hook in list(self._list_hooks):
            hook(entity, skip or 0)
        return answer

    def _read_one(self, request: Request, entity: str, segments: list[str]) -> dict[str, Any]:
        self._check_parameters(request, PUT_PARAMETERS)
        select = self._select(request, entity)
        document = self._find_by_segments(entity, segments)
        if document is None:
            raise _http_error(404, "No entity satisfies the condition.")
        return self._wire(entity, document.record, select, 1, expand=self._expand(request, entity))

    def _find_by_segments(self, entity: str, segments: list[str]) -> _Document | None:
        if len(segments) == 1:
            try:
                record_id = str(uuid.UUID(segments[0]))
            except ValueError:
                segments = segments[0].split("|")
            else:
                return self._by_id(entity, record_id)
        if len(segments) != len(KEY_FIELDS[entity]):
            return None
        return self._documents[entity].get((segments[0], segments[1]))

    def _by_id(self, entity: str, record_id: str) -> _Document | None:
        return next((d for d in self._documents[entity].values() if d.record["id"] == record_id), None)

    def _workflow_actions(self, entity: str) -> tuple[str, ...]:
        return WORKFLOW_ACTIONS[entity] + (HOLD_ACTIONS if entity in self.hold_actions else ())

    def _action_parameters(self, entity: str, action: str) -> dict[str, dict[str, Any]]:
        """The dialog boxes a workflow action takes, as ``$adHocSchema`` lists them: ``{View: {Field: {...}}}``."""
        if self.approval_reasons and action in ("Approve", "Reject") and action in WORKFLOW_ACTIONS[entity]:
            view, name = REASON_PARAMETER
            return {view: {name: {"type": "CustomStringField", "value": None}}}
        return {}

    def _ad_hoc_schema(self, entity: str) -> dict[str, Any]:
        return {"custom": {},
                "_workflowActions": [{name: {"parameters": {"custom": self._action_parameters(entity, name)}}}
                                     for name in self._workflow_actions(entity)]}

    # ------------------------------------------------------------------------------------------- PUT

    def _put(self, request: Request, entity: str) -> tuple[int, Any, dict[str, str]]:
        self._check_parameters(request, PUT_PARAMETERS)
        select = self._select(request, entity)
        plain = self._unwrap_body(entity, self._json_body(request))
        document = self._locate(entity, plain)
        if document is None:
            if request.headers.get("If-Match") == "*":
                raise _http_error(412, "The entity to update does not exist.")
            record = self.add_document(entity, **{k: v for k, v in plain.items()
                                                  if k not in READ_ONLY[entity] and k != "id"})
            return 200, self._wire(entity, record, select, 1), {}
        if request.headers.get("If-None-Match") == "*":
            raise _http_error(412, "An entity with these keys already exists.")
        changes = {name: value for name, value in plain.items()
                   if name in FIELDS[entity] and name not in READ_ONLY[entity] and name not in KEY_FIELDS[entity]
                   and value != document.record.get(name)}
        if entity in self.hold_by_workflow:
            changes.pop("Hold", None)  # this build ignores API writes to Hold: only the workflow actions move it
        errors = self._put_errors(entity, document, changes)
        if errors:
            return 422, self._wire(entity, document.record, select, 1, errors), {}
        if "Hold" in changes:
            changes["Status"] = ("On Hold" if changes["Hold"]
                                 else self._released_from_hold_status(entity, document.requires_approval))
            self._restart_approval(document)
        if changes:
            self._change(document, changes)
        return 200, self._wire(entity, document.record, select, 1), {}

    def _put_errors(self, entity: str, document: _Document, changes: dict[str, Any]) -> dict[str, str]:
        record, status = document.record, document.record["Status"]
        editable = {name for name in changes if name != "Hold"}
        if editable and status != "On Hold":
            return {name: f"The document cannot be edited in the '{status}' status." for name in editable}
        if "Hold" not in changes:
            return {}
        if changes["Hold"]:
            allowed = ("Open", "Pending Approval", "Rejected") if entity == "PurchaseOrder" else (
                "Balanced", "Pending Approval", "Rejected")
            if status not in allowed:
                return {"Hold": f"A document in the '{status}' status cannot be put on hold."}
            return {}
        merged = {**record, **changes}
        if entity == "Bill" and merged.get("Amount") != merged.get("Balance"):
            return {"Amount": "The document is out of balance."}
        if entity == "PurchaseOrder" and merged.get("ControlTotal") != merged.get("OrderTotal"):
            return {"ControlTotal": "The document is out of balance."}
        return {}

    # ------------------------------------------------------------------------------------------- actions

    def _action(self, request: Request, version: str, entity: str, action: str,
                grant: str) -> tuple[int, Any, dict[str, str]]:
        if action not in NAMED_ACTIONS[entity] and action not in self._workflow_actions(entity):
            raise _http_error(404, f"The action {action} does not exist.")
        body = self._json_body(request)
        if not isinstance(body.get("entity"), dict):
            raise _http_error(400, "The request body must hold the entity to which the action applies.")
        if "parameters" in body and not isinstance(body["parameters"], dict):
            raise _http_error(400, "The parameters of the action must be an object.")
        parameters = self._parameters_sent(entity, action, body.get("parameters") or {})
        document = self._locate(entity, self._unwrap_body(entity, body["entity"]))
        if document is None:
            raise _http_error(404, "No entity satisfies the condition.")
        key = self._record_key(entity, document.record)
        refusal = self._refusal(document, action, grant, parameters)
        if refusal is not None:
            self.action_log.append((entity, key, action, "refused"))
            raise _http_error(500, "An error has occurred.", refusal)
        error = self._perform(entity, document, action, self._grant_users.get(grant, ""), parameters)
        self.action_log.append((entity, key, action, "failed" if error else "completed"))
        operation_id = str(uuid.uuid4())
        self._operations[operation_id] = _Operation(entity, action, self.action_polls, error, grant,
                                                    time.monotonic() + self.long_operation_seconds)
        if self.long_operation_seconds > 0:
            self._running[grant] = operation_id
        location = f"/entity/{ENDPOINT_NAME}/{version}/{entity}/{action}/status/{operation_id}"
        return 202, None, {"Location": location}

    def _parameters_sent(self, entity: str, action: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """``parameters.custom`` as ``{"View.Field": value}``; a box the action's dialog does not have is refused."""
        unknown = sorted(set(parameters) - {"custom"})
        if unknown:
            raise _http_error(400, f"The parameter {unknown[0]} is not defined for the action {action}.")
        known = self._action_parameters(entity, action)
        sent: dict[str, Any] = {}
        for view, fields in (parameters.get("custom") or {}).items():
            for name, wrapper in (fields or {}).items() if isinstance(fields, dict) else ():
                if name not in known.get(view, {}):
                    raise _http_error(400, f"The action {action} has no parameter {view}.{name}.")
                if not isinstance(wrapper, dict) or wrapper.get("type") != "CustomStringField":
                    raise _http_error(400, f"The parameter {view}.{name} must be a CustomStringField.")
                sent[f"{view}.{name}"] = wrapper.get("value")
        return sent

    def _refusal(self, document: _Document, action: str, grant: str, parameters: Mapping[str, Any]) -> str | None:
        """Why Acumatica refuses an approval outright (an exception from the action, before anything happens)."""
        if action not in ("Approve", "Reject") or document.record["Status"] != "Pending Approval":
            return None
        step = document.approvers[document.approved_steps] if document.approved_steps < len(document.approvers) \
            else frozenset()
        if step and self._grant_users.get(grant, "") not in step:
            return NOT_AN_APPROVER
        reason = parameters.get(".".join(REASON_PARAMETER))
        if action == "Approve" and document.reason_required and not (isinstance(reason, str) and reason.strip()):
            return REASON_REQUIRED
        return None

    def _perform(self, entity: str, document: _Document, action: str, user: str,
                 parameters: Mapping[str, Any]) -> str | None:
        """Apply the action's transition; returns the failure Acumatica's long-running operation would report."""
        status = document.record["Status"]
        if action in HOLD_ACTIONS:
            return self._workflow_hold(entity, document, action == "PutOnHold")
        transitions = {
            "ReleaseBill": ("Balanced", "Open"),
            "ReleaseCheck": ("Balanced", "Closed"),
            "Approve": ("Pending Approval", "Open" if entity == "PurchaseOrder" else "Balanced"),
            "Reject": ("Pending Approval", "Rejected"),
        }
        source, target = transitions[action]
        if status != source:
            return f"The document cannot be processed by {action} because its status is '{status}', not '{source}'."
        if action == "Approve":
            document.approvals.append({"user": user, "step": document.approved_steps + 1,
                                       "reason": parameters.get(".".join(REASON_PARAMETER))})
            document.approved_steps += 1
            if document.approved_steps < len(document.approvers):
                self._change(document, {})  # this step is approved; the map's next step decides
                return None
        self._change(document, {"Status": target})
        return None

    def _workflow_hold(self, entity: str, document: _Document, hold: bool) -> str | None:
        """The form's Hold and Remove Hold: the same business rules as a PUT of ``Hold`` that the build honours."""
        errors = self._put_errors(entity, document, {"Hold": hold})
        if errors:
            return "; ".join(errors.values())
        status = "On Hold" if hold else self._released_from_hold_status(entity, document.requires_approval)
        self._restart_approval(document)
        self._change(document, {"Hold": hold, "Status": status})
        return None

    @staticmethod
    def _restart_approval(document: _Document) -> None:
        """Putting a document on hold, or taking it off, starts its approval over (``putOnHold`` resets
        ``approved``)."""
        document.approved_steps = 0

    def _operation_status(self, version: str, entity: str, action: str,
                          operation_id: str) -> tuple[int, Any, dict[str, str]]:
        operation = self._operations.get(operation_id)
        if operation is None or operation.entity != entity or operation.action != action:
            raise _http_error(404, "The long-running operation was not found.")
        if operation.polls_left > 0 or time.monotonic() < operation.until:
            operation.polls_left = max(operation.polls_left - 1, 0)
            return 202, None, {"Location": f"/entity/{ENDPOINT_NAME}/{version}/{entity}/{action}/status/{operation_id}"}
        if operation.error:
            raise _http_error(500, "An error has occurred.", operation.error)
        return 204, None, {}

    # ------------------------------------------------------------------------------------------- wire format

    def _wire(self, entity: str, record: Mapping[str, Any], select: frozenset[str] | None, row: int,
              errors: Mapping[str, str] | None = None, expand: frozenset[str] = frozenset()) -> dict[str, Any]:
        """A record as Acumatica sends it: system fields plain, every other field wrapped, no value as ``{}``."""
        wire: dict[str, Any] = {"id": record["id"], "rowNumber": row, "note": {}, "custom": {}}
        for name in FIELDS[entity]:
            if select is not None and name not in select:
                continue
            value = record.get(name)
            if name == "LastModifiedDateTime" and value is not None:
                value = self.render(value)
            wrapper: dict[str, Any] = {} if value is None else {"value": value}
            if errors and name in errors:
                wrapper["error"] = errors[name]
            wire[name] = wrapper
        if "Details" in expand:
            chosen = {name.split("/", 1)[1] for name in select or () if name.startswith("Details/")}
            wire["Details"] = [
                {"id": line["id"], "rowNumber": index, "note": {}, "custom": {},
                 **{name: ({} if line.get(name) is None else {"value": line[name]})
                    for name in DETAIL_FIELDS[entity] if not chosen or name in chosen}}
                for index, line in enumerate(record.get("Details") or [], start=1)]
        return wire

    @staticmethod
    def _detail_lines(entity: str, lines: Any) -> list[dict[str, Any]]:
        if entity not in DETAIL_FIELDS or not isinstance(lines, list):
            raise ValueError(f"the sandbox models Details as a list, on {sorted(DETAIL_FIELDS)} only")
        plain = []
        for line in lines:
            unknown = sorted(set(line) - set(DETAIL_FIELDS[entity]))
            if unknown:
                raise ValueError(f"{entity}Detail has no fields {unknown} in Default/24.200.001")
            plain.append({"id": str(uuid.uuid4()), **{name: Decimal(str(value)) if value is not None
                                                      and DETAIL_FIELDS[entity][name] == "decimal" else value
                                                      for name, value in line.items()}})
        return plain

    @staticmethod
    def _expand(request: Request, entity: str) -> frozenset[str]:
        """``$expand``: the detail entities to include; only a bill's ``Details`` is modelled."""
        names = frozenset(part.strip() for part in request.args.get("$expand", "").split(",") if part.strip())
        unmodelled = sorted(names - {"Details"} if entity in DETAIL_FIELDS else names)
        if unmodelled:
            if unmodelled[0] not in UNMODELLED.get(entity, ()):
                raise _http_error(400, f"The entity {unmodelled[0]} in $expand is not defined in the {entity} entity.")
            raise _http_error(400, f"The sandbox does not model $expand={unmodelled[0]}.")
        return names

    def _unwrap_body(self, entity: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _http_error(400, "The request body must be a JSON object.")
        plain: dict[str, Any] = {}
        for name, raw in body.items():
            if name in UNMODELLED[entity]:
                raise _http_error(400, f"The sandbox does not model {entity}.{name}.")
            if name in SYSTEM_KEYS:
                if name == "id" and raw is not None:
                    try:
                        plain["id"] = str(uuid.UUID(str(raw)))
                    except ValueError:
                        raise _http_error(400, f"'{raw}' is not a valid record id.") from None
                continue
            if name not in FIELDS[entity]:
                raise _http_error(400, f"The field {name} is not defined in the {entity} entity.")
            if not isinstance(raw, dict) or "value" not in raw or not set(raw) <= {"value", "error"}:
                raise _http_error(400, f"The value of {name} must be wrapped as {{\"value\": ...}}.")
            plain[name] = self._typed(entity, name, raw["value"])
        return plain

    @staticmethod
    def _typed(entity: str, name: str, value: Any) -> Any:
        if value is None:
            return None
        kind = FIELDS[entity][name]
        valid = {
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "decimal": isinstance(value, (int, float)) and not isinstance(value, bool),
            "datetime": isinstance(value, str),
        }[kind]
        if kind == "datetime" and valid:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                valid = False
        if not valid:
            raise _http_error(400, f"The value of {entity}.{name} is not a valid {kind}.")
        return Decimal(str(value)) if kind == "decimal" else value

    def _locate(self, entity: str, plain: Mapping[str, Any]) -> _Document | None:
        if plain.get("id"):
            return self._by_id(entity, plain["id"])
        type_field, number_field = KEY_FIELDS[entity]
        if plain.get(type_field) is None or plain.get(number_field) is None:
            return None
        return self._documents[entity].get((plain[type_field], plain[number_field]))

    @staticmethod
    def _json_body(request: Request) -> dict[str, Any]:
        if request.mimetype not in ("application/json", "text/json"):
            raise _http_error(415, "The request body must be application/json.")
        try:
            body = json.loads(request.get_data(cache=True) or b"null")
        except ValueError:
            raise _http_error(400, "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise _http_error(400, "The request body must be a JSON object.")
        return body

    @staticmethod
    def _check_parameters(request: Request, allowed: frozenset[str]) -> None:
        unknown = sorted(name for name in request.args if name.startswith("$") and name not in allowed)
        if unknown:
            raise _http_error(400, f"The query parameter '{unknown[0]}' is not supported.")

    @staticmethod
    def _select(request: Request, entity: str) -> frozenset[str] | None:
        if request.args.get("$custom"):
            raise _http_error(400, "The sandbox does not model $custom.")
        expand = AcumaticaSandbox._expand(request, entity)
        raw = request.args.get("$select")
        if raw is None:
            return None
        names = frozenset(part.strip() for part in raw.split(",") if part.strip())
        for name in (n for n in names if "/" in n):
            detail, field_name = name.split("/", 1)
            if detail not in expand:
                raise _http_error(400, f"The field {name} in $select needs {detail} in $expand.")
            if field_name not in DETAIL_FIELDS.get(entity, {}):
                raise _http_error(400, f"The field {field_name} in $select is not defined in {entity}.{detail}.")
        unknown = sorted(n for n in names - set(FIELDS[entity]) - {"id", "rowNumber", "note"} if "/" not in n)
        if unknown:
            raise _http_error(400, f"The field {unknown[0]} in $select is not defined in the {entity} entity.")
        return names

    @staticmethod
    def _non_negative(request: Request, name: str, default: int | None) -> int | None:
        raw = request.args.get(name)
        if raw is None:
            return default
        if not raw.isdigit():
            raise _http_error(400, f"The value of {name} must be a non-negative integer.")
        return int(raw)

    # ------------------------------------------------------------------------------------------- state helpers

    def _get(self, entity: str, keys: Any) -> _Document:
        if entity not in FIELDS:
            raise ValueError(f"the sandbox models {sorted(FIELDS)}, not {entity!r}")
        key = (keys.type, keys.number) if hasattr(keys, "number") else tuple(keys)
        try:
            return self._documents[entity][key]  # type: ignore[index]
        except KeyError:
            raise KeyError(f"no {entity} {key} in the sandbox") from None

    @staticmethod
    def _check_fields(entity: str, fields: Mapping[str, Any]) -> None:
        if entity not in FIELDS:
            raise ValueError(f"the sandbox models {sorted(FIELDS)}, not {entity!r}")
        unknown = sorted(set(fields) - set(FIELDS[entity]) - {"id"})
        if unknown:
            raise ValueError(f"{entity} has no fields {unknown} in Default/24.200.001")

    def _change(self, document: _Document, changes: Mapping[str, Any]) -> None:
        document.previous = copy.deepcopy(document.record)
        document.record.update(changes)
        if "LastModifiedDateTime" not in changes:
            document.record["LastModifiedDateTime"] = self._next_modified()

    def _next_modified(self) -> str:
        """Now, strictly after every earlier modification (millisecond precision, like Acumatica)."""
        now = self.now()
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        self._last_modified = max(now, self._last_modified + timedelta(milliseconds=1))
        return _now_iso(self._last_modified)

    @staticmethod
    def _released_from_hold_status(entity: str, requires_approval: bool) -> str:
        if requires_approval and entity != "Check":
            return "Pending Approval"
        return "Open" if entity == "PurchaseOrder" else "Balanced"

    @staticmethod
    def _record_key(entity: str, record: Mapping[str, Any]) -> tuple[str, str]:
        type_field, number_field = KEY_FIELDS[entity]
        return str(record[type_field]), str(record[number_field])

    def _defaults(self, entity: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        self._numbers[entity] += 1
        number = f"{self._numbers[entity]:06d}"
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        common = {"id": str(uuid.uuid4()), "CurrencyID": "USD", "Description": "", "Hold": True}
        if entity == "Bill":
            amount = fields.get("Amount", Decimal("100.00"))
            return {**common, "Type": "Bill", "ReferenceNbr": number, "Vendor": "V000001", "Amount": amount,
                    "Balance": fields.get("Balance", amount), "TaxTotal": Decimal("0"), "Date": _now_iso(today),
                    "DueDate": _now_iso(today + timedelta(days=30)), "VendorRef": f"INV-{number}",
                    "BranchID": "HQ", "Terms": "30D", "ApprovedForPayment": False}
        if entity == "PurchaseOrder":
            total = fields.get("OrderTotal", Decimal("100.00"))
            return {**common, "Type": "Normal", "OrderNbr": f"PO{number}", "VendorID": "V000001",
                    "OrderTotal": total, "ControlTotal": fields.get("ControlTotal", total), "LineTotal": total,
                    "TaxTotal": Decimal("0"), "Date": _now_iso(today),
                    "PromisedOn": _now_iso(today + timedelta(days=14)), "Owner": None, "VendorRef": "",
                    "BaseCurrencyID": "USD", "Branch": "HQ"}
        amount = fields.get("PaymentAmount", Decimal("100.00"))
        return {**common, "Type": "Payment", "ReferenceNbr": number, "Vendor": "V000001", "PaymentAmount": amount,
                "UnappliedBalance": amount, "PaymentMethod": "CHECK", "PaymentRef": f"CHK{number}",
                "CashAccount": "10200", "ApplicationDate": _now_iso(today)}


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


class _FilterParser:
    """The part of Acumatica's OData v3 ``$filter`` the connector needs: comparisons joined by ``and``/``or``, with
    parentheses. Datetime fields only take ``datetimeoffset'...'`` literals that carry an explicit offset."""

    _TOKEN = re.compile(r"""\s*(?:
        (?P<paren>[()])
      | datetimeoffset'(?P<dto>[^']*)'
      | (?P<bad_datetime>datetime'[^']*')
      | '(?P<string>(?:[^']|'')*)'
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""", re.VERBOSE)
    _OPERATORS = {
        "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a > b,
        "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
    }

    def __init__(self, text: str, entity: str) -> None:
        self._entity = entity
        self._tokens = self._tokenize(text)
        self._position = 0

    def parse(self) -> Callable[[Mapping[str, Any]], bool]:
        if not self._tokens:
            return lambda record: True
        predicate = self._or()
        if self._position != len(self._tokens):
            raise self._error("unexpected text after the end of the expression")
        return predicate

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        tokens, position = [], 0
        while position < len(text):
            if text[position:].strip() == "":
                break
            match = self._TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise self._error(f"cannot read the filter at {text[position:position + 20]!r}")
            kind = match.lastgroup
            if kind == "bad_datetime":
                raise self._error("datetime literals need an explicit offset: use datetimeoffset'...'")
            tokens.append((kind, match.group(kind)))  # type: ignore[arg-type]
            position = match.end()
        return tokens

    def _error(self, message: str) -> _SandboxError:
        return _http_error(400, f"Invalid $filter: {message}.")

    def _peek(self) -> tuple[str, str] | None:
        return self._tokens[self._position] if self._position < len(self._tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise self._error("the expression ends too early")
        self._position += 1
        return token

    def _or(self) -> Callable[[Mapping[str, Any]], bool]:
        terms = [self._and()]
        while self._peek() == ("word", "or"):
            self._take()
            terms.append(self._and())
        return terms[0] if len(terms) == 1 else (lambda record: any(term(record) for term in terms))

    def _and(self) -> Callable[[Mapping[str, Any]], bool]:
        terms = [self._atom()]
        while self._peek() == ("word", "and"):
            self._take()
            terms.append(self._atom())
        return terms[0] if len(terms) == 1 else (lambda record: all(term(record) for term in terms))

    def _atom(self) -> Callable[[Mapping[str, Any]], bool]:
        kind, text = self._take()
        if (kind, text) == ("paren", "("):
            inner = self._or()
            if self._take() != ("paren", ")"):
                raise self._error("missing ')'")
            return inner
        if kind != "word" or text not in FIELDS[self._entity]:
            raise self._error(f"'{text}' is not a field of {self._entity}")
        field_name, field_kind = text, FIELDS[self._entity][text]
        operator_kind, operator = self._take()
        if operator_kind != "word" or operator not in self._OPERATORS:
            raise self._error(f"'{operator}' is not a supported comparison")
        literal = self._literal(field_name, field_kind)
        compare = self._OPERATORS[operator]

        def predicate(record: Mapping[str, Any]) -> bool:
            value = record.get(field_name)
            if value is None or literal is None:
                return operator in ("eq", "ne") and compare(value, literal)
            if field_kind == "datetime":
                value = _parse_offset_datetime(value)
            return bool(compare(value, literal))

        return predicate

    def _literal(self, field_name: str, field_kind: str) -> Any:
        kind, text = self._take()
        if kind == "word" and text == "null":
            return None
        expected = {"datetime": "dto", "string": "string", "decimal": "number"}.get(field_kind)
        if field_kind == "boolean" and kind == "word" and text in ("true", "false"):
            return text == "true"
        if kind != expected:
            raise self._error(f"{field_name} needs a {field_kind} literal")
        if kind == "dto":
            try:
                return _parse_offset_datetime(text)
            except ValueError:
                raise self._error(f"'{text}' is not a datetimeoffset with an explicit offset") from None
        if kind == "string":
            return text.replace("''", "'")
        return Decimal(text)
