"""Acumatica's contract-based REST API, as the connector's ``DocumentSource``.

Every quirk of Acumatica lives here and nowhere else:

- OAuth 2.0 at ``/identity/connect/token`` (resource-owner password and rotating refresh grants); the rotation itself
  is coordinated by ``connector.tokens.RotatingTokens``, this module only knows how to call the endpoint.
- Versioned URLs ``/entity/Default/<version>/...``; the pinned version is checked once against ``GET /entity``, because
  an instance that does not serve it answers 404 to every call, which would otherwise look like "document not found".
- Value wrappers ``{"Field": {"value": ...}}`` in both directions, with field-level ``error`` strings.
- OData-style ``$filter`` literals that must be URL-encoded (a raw ``+`` in an offset would arrive as a space).
- No ``$orderby``: list results come in no defined order, so paging tolerates repeats, never assumes order, and
  re-reads the end of each page so a deletion between two page reads cannot shift a record out of sight.
- ``LastModifiedDateTime`` is Acumatica's own clock in the tenant's rendering: filters are sent in the offset they
  were derived from, and the rendered text is kept in ``Document.fields`` (the poller's watermark is made of it).
- Actions answer ``202`` with a ``Location`` to poll until ``204``; a POST that timed out may have happened, so it is
  never resent (``UncertainOutcome``) and the caller settles it by re-reading the document.

Secrets (client secret, password, access and refresh tokens) never reach logs or exception messages.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from contextlib import contextmanager
from datetime import date, datetime, timezone
from email.utils import parsedate_to_datetime
from decimal import Decimal
from typing import Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import quote, urljoin, urlsplit

import requests

from .documents import profile, to_document
from . import timings
from .errors import (
    ActionRefused,
    AuthenticationError,
    ConfigurationError,
    ConnectorError,
    NotFoundError,
    PermanentError,
    ReconnectNeeded,
    SessionBusy,
    TransientError,
    UncertainOutcome,
    ValidationError,
)
from .http import gates_of, make_session, redirect_refused, retry_after_seconds, transport_error
from .model import Document, DocumentKey
from .ports import Page
from .session import OperationLease, is_session_busy
from .tokens import ObtainTokens, RotatingTokens
from .urls import host_of, same_origin

logger = logging.getLogger(__name__)

ENDPOINT_NAME = "Default"
OAUTH_SCOPE = "api offline_access"
RECONNECT_HINT = "run `connector connect acumatica` to sign in again"

# Keys of a record that are never value-wrapped: system fields, the custom-field block (already typed by Acumatica),
# attached files, and the detail-line ``delete`` marker of a PUT.
_PLAIN_KEYS = frozenset({"id", "rowNumber", "custom", "files", "delete"})
_WRAPPER_KEYS = frozenset({"value", "error"})
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
# Key values Acumatica cannot take in a URL: ``/`` and ``|`` separate keys, and IIS strips a trailing dot.
_URL_UNSAFE_KEY = re.compile(r"[/|]|\.$")
_DETAIL_LIMIT = 500
PAGE_REREAD = 50
"""Records re-read at the start of every page after the first (at most half a page). Without ``$orderby``, a record
deleted from a page already read shifts every later record one offset lower, so the first record of the next page
would slide unseen into the range already read; re-reading the tail of the previous page catches up to this many
deletions between two page reads. More than that is caught by the next pass's overlap or the weekly full pass."""
# Left unescaped in query values for readability: quotes of string literals and the commas of $select.
_QUERY_SAFE = "',"
URL_LIMIT = 2048
"""The longest URL a batched key read sends, measured as sent (percent-escapes included). IIS refuses a query string
over 2,048 bytes by default (request filtering's ``maxQueryString``: 404.15, which a client sees as a plain 404), and
a proxy in front may limit the whole request line to about as much; bounding the whole URL keeps under both."""


# --------------------------------------------------------------------------------------------------- value wrapping


def wrap(record: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a plain record into Acumatica's wire form: every field becomes ``{"value": ...}`` (``None`` included).

    Nested mappings are linked entities and lists hold detail lines; both are wrapped recursively. ``id``,
    ``rowNumber``, ``custom``, ``files``, ``delete`` and ``_``-prefixed keys pass through unchanged.
    """
    wrapped: dict[str, Any] = {}
    for name, value in record.items():
        if name in _PLAIN_KEYS or name.startswith("_"):
            wrapped[name] = copy.deepcopy(value)
        elif isinstance(value, Mapping):
            wrapped[name] = wrap(value)
        elif isinstance(value, (list, tuple)):
            wrapped[name] = [wrap(item) if isinstance(item, Mapping) else item for item in value]
        else:
            wrapped[name] = {"value": value}
    return wrapped


def unwrap(payload: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Turn an Acumatica record into ``(plain record, field errors)``.

    Errors are keyed by field path: ``"Amount"``, ``"Details[0].InventoryID"``, ``"custom.Document.Approved"``; the
    entity's own ``error`` is keyed ``""`` (``"Details[0]"`` for a detail line). An empty wrapper ``{}`` is ``None``,
    which is how Acumatica sends a field without a value.
    """
    errors: dict[str, str] = {}
    return _unwrap_entity(payload, "", errors), errors


def _unwrap_entity(payload: Mapping[str, Any], prefix: str, errors: dict[str, str]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, raw in payload.items():
        path = f"{prefix}{name}"
        if name == "error":
            if raw:
                errors[prefix.rstrip(".")] = str(raw)
        elif name in _PLAIN_KEYS or name.startswith("_"):
            record[name] = copy.deepcopy(raw)
            if name == "custom" and isinstance(raw, Mapping):
                _collect_custom_errors(raw, f"{path}.", errors)
        elif isinstance(raw, list):
            record[name] = [
                _unwrap_entity(item, f"{path}[{index}].", errors) if isinstance(item, Mapping) else item
                for index, item in enumerate(raw)
            ]
        elif isinstance(raw, Mapping) and set(raw) <= _WRAPPER_KEYS:
            record[name] = raw.get("value")
            if raw.get("error"):
                errors[path] = str(raw["error"])
        elif isinstance(raw, Mapping):
            record[name] = _unwrap_entity(raw, f"{path}.", errors)
        else:
            record[name] = raw
    return record


def _collect_custom_errors(custom: Mapping[str, Any], prefix: str, errors: dict[str, str]) -> None:
    for view, fields in custom.items():
        if not isinstance(fields, Mapping):
            continue
        for field_name, field in fields.items():
            if isinstance(field, Mapping) and field.get("error"):
                errors[f"{prefix}{view}.{field_name}"] = str(field["error"])


def _json_default(value: Any) -> Any:
    """JSON for the values ``wrap`` leaves typed: decimals as numbers, dates and datetimes as ISO-8601."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} to Acumatica")


# ------------------------------------------------------------------------------------------------------- filters


def datetimeoffset_literal(dt: datetime) -> str:
    """``datetimeoffset'2024-01-01T10:00:00.000+10:00'`` in the datetime's own offset, truncated to milliseconds.

    The offset is kept, not converted to UTC: a filter derived from a stamp Acumatica rendered goes back in the form
    Acumatica rendered it (OData compares datetimeoffsets by instant, so any offset means the same instant).
    Naive datetimes are refused: the instance's time zone is unknown, so an offset must always be explicit.
    Truncation only moves the instant earlier, which keeps a ``ge`` watermark filter from missing records.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("naive datetime: Acumatica filters need an explicit offset (use an aware datetime)")
    return f"datetimeoffset'{dt.isoformat(timespec='milliseconds')}'"


def odata_literal(value: Any) -> str:
    """The ``$filter`` literal for a typed Python value (OData v3 conventions, as Acumatica uses them)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return datetimeoffset_literal(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot filter on {value}")
        return format(value, "f")
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no $filter literal for {type(value).__name__}")


def comparison(field: str, operator: str, value: Any) -> str:
    """``<Field> <op> <literal>``; the field name is checked so a value can never inject filter syntax."""
    if not _NAME.match(field):
        raise ValueError(f"not a field name: {field!r}")
    if operator not in _COMPARISONS:
        raise ValueError(f"unsupported comparison {operator!r}; use one of {sorted(_COMPARISONS)}")
    return f"{field} {operator} {odata_literal(value)}"


def all_of(*conditions: str) -> str:
    """Conditions joined with ``and``."""
    if not conditions:
        raise ValueError("a filter needs at least one condition")
    return " and ".join(f"({c})" if " or " in c else c for c in conditions)


def query_string(params: Mapping[str, Any]) -> str:
    """Percent-encode parameter values (``+`` → ``%2B``, space → ``%20``); ``$``-names stay literal."""
    return "&".join(f"{name}={quote(str(value), safe=_QUERY_SAFE)}" for name, value in params.items())


# ------------------------------------------------------------------------------------------------- OAuth tokens


class _GrantRefused(Exception):
    """The token endpoint refused the grant itself (``invalid_grant`` and friends): retrying cannot help."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def acumatica_token_obtainer(
    base_url: str,
    session: requests.Session | None = None,
    *,
    clock: Callable[[], float] = time.time,
    timeout_seconds: float = timings.ACUMATICA_TOKEN_TIMEOUT_SECONDS,
) -> ObtainTokens:
    """The ``obtain`` callable of ``RotatingTokens`` for an Acumatica instance.

    Tries the refresh grant first (the rotated refresh token is written back by ``RotatingTokens``). When the refresh
    chain is dead (expired after its absolute lifetime, revoked, or burned by a lost write-back) and the secret holds
    a username and password, it falls back to the resource-owner password grant; otherwise a person has to sign in
    again, which ``ReconnectNeeded`` says.
    """
    token_url = f"{base_url.rstrip('/')}/identity/connect/token"
    http = session or make_session()

    def obtain(secret: Mapping[str, Any]) -> Mapping[str, Any]:
        client_id, client_secret = secret.get("client_id"), secret.get("client_secret")
        if not client_id or not client_secret:
            raise ConfigurationError("the Acumatica secret lacks client_id or client_secret; " + RECONNECT_HINT)
        credentials = {"client_id": str(client_id), "client_secret": str(client_secret)}
        has_password = bool(secret.get("username") and secret.get("password"))
        if secret.get("refresh_token"):
            try:
                issued = _grant(http, token_url, {"grant_type": "refresh_token", **credentials,
                                                  "refresh_token": str(secret["refresh_token"])}, clock,
                                timeout_seconds)
            except _GrantRefused as refused:
                if refused.code != "invalid_grant" or not has_password:
                    raise ReconnectNeeded(f"Acumatica refused the refresh grant ({refused.code}): "
                                          f"{_refusal_reason(refused.code)}; " + RECONNECT_HINT) from None
                logger.warning("Acumatica refresh chain is dead (%s); signing in with the password grant", refused.code)
            else:
                if issued.get("refresh_token") and issued["refresh_token"] != secret["refresh_token"]:
                    return issued
                # Refresh tokens rotate: the one used is spent, so an answer without a new one must not keep it.
                if not has_password:
                    raise ReconnectNeeded("Acumatica answered the refresh without a new refresh token; the one used "
                                          "is spent and is not kept; " + RECONNECT_HINT)
                logger.warning("Acumatica answered the refresh without a new refresh token; signing in again")
        if has_password:
            try:
                issued = _grant(http, token_url, {"grant_type": "password", **credentials,
                                                  "username": str(secret["username"]),
                                                  "password": str(secret["password"]), "scope": OAUTH_SCOPE},
                                clock, timeout_seconds)
                # A new sign-in: a refresh token from the old chain must not outlive it in the secret.
                return {**issued, "refresh_token": issued.get("refresh_token") or ""}
            except _GrantRefused as refused:
                raise ReconnectNeeded(f"Acumatica refused the password grant ({refused.code}): "
                                      f"{_refusal_reason(refused.code)}; " + RECONNECT_HINT) from None
        raise ReconnectNeeded("the Acumatica secret holds neither a refresh token nor a username and password; "
                              + RECONNECT_HINT)

    return obtain


def _refusal_reason(code: str) -> str:
    return {
        "invalid_grant": "the refresh chain is dead or the username/password is wrong",
        "invalid_client": "client_id or client_secret is wrong, or the connected application is disabled",
        "invalid_scope": "the connected application may not request 'api offline_access'",
    }.get(code, "the grant was refused")


def _grant(session: requests.Session, token_url: str, form: Mapping[str, str], clock: Callable[[], float],
           timeout_seconds: float) -> dict[str, Any]:
    grant_type = form["grant_type"]
    try:
        response = session.post(token_url, data=dict(form), headers={"Accept": "application/json"},
                                timeout=timeout_seconds, allow_redirects=False)
    except requests.RequestException as exc:
        raise TransientError(f"Acumatica token endpoint unreachable ({type(exc).__name__})") from None
    refused = redirect_refused("Acumatica's token endpoint", "AcumaticaUrl", response)
    if refused is not None:  # the form holds the client secret and the password: never re-posted anywhere
        raise refused
    body = _json_or_none(response)
    if response.status_code in (400, 401) and isinstance(body, dict) and body.get("error"):
        raise _GrantRefused(str(body["error"]))
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientError(f"Acumatica token endpoint answered {response.status_code}",
                             retry_after=retry_after_seconds(response))
    if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
        raise PermanentError(f"Acumatica token endpoint answered {response.status_code} to the {grant_type} grant "
                             "without an access token")
    logger.info("Acumatica issued an access token via the %s grant", grant_type)
    return {
        "access_token": body["access_token"],
        "refresh_token": body.get("refresh_token"),
        "expires_at": clock() + float(body.get("expires_in") or 3600),
    }


# ------------------------------------------------------------------------------------------------ request limits


class RequestLimiter:
    """Keeps one container within the license: at most ``max_concurrent`` requests in flight and, optionally, at
    most ``per_minute`` requests per rolling minute (Acumatica delays, then declines, requests beyond its limits)."""

    def __init__(self, max_concurrent: int = 4, per_minute: int | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if max_concurrent < 1 or (per_minute is not None and per_minute < 1):
            raise ValueError("request limits must be positive")
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._per_minute = per_minute
        self._starts: deque[float] = deque()
        self._guard = threading.Lock()
        self._clock = clock
        self._sleep = sleep

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._slots:
            self._wait_for_minute_budget()
            yield

    def _wait_for_minute_budget(self) -> None:
        if self._per_minute is None:
            return
        with self._guard:
            now = self._clock()
            while self._starts and now - self._starts[0] >= 60.0:
                self._starts.popleft()
            wait = 60.0 - (now - self._starts.popleft()) if len(self._starts) >= self._per_minute else 0.0
            self._starts.append(now + wait)  # reserve the slot at the time it will actually start
        if wait > 0:
            self._sleep(wait)


# ------------------------------------------------------------------------------------------------------- client


class AcumaticaClient:
    """The ``DocumentSource`` adapter for one Acumatica instance and one pinned ``Default`` endpoint version.

    Built once per container. ``tokens`` hands out bearer tokens (``RotatingTokens``); ``session`` defaults to
    ``connector.http.make_session()``, whose urllib3 policy already retries 429/5xx/timeouts where that is safe;
    ``sleep`` paces action polling (tests pass a fake).
    """

    def __init__(
        self,
        *,
        base_url: str,
        endpoint_version: str,
        tokens: RotatingTokens,
        session: requests.Session | None = None,
        page_size: int = 500,
        action_timeout_seconds: float = timings.ACUMATICA_ACTION_TIMEOUT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        request_timeout_seconds: float = timings.ACUMATICA_TIMEOUT[1],
        max_concurrent_requests: int = 4,
        requests_per_minute: int | None = None,
        operation_lease: OperationLease | None = None,
        schema_ttl_seconds: float = 300.0,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be positive")
        self.base_url = base_url.rstrip("/")
        self.endpoint_version = endpoint_version
        self._tokens = tokens
        self._session = session or make_session()
        # A 500 from an action's status URL is the action's failure, not a glitch: answer it at once, unretried.
        # It waits at the same Retry-After gate as every other request to this Acumatica.
        self._status_session = make_session(retry_statuses=(429, 502, 503, 504), gates=gates_of(self._session))
        self.page_size = page_size
        self._action_timeout = action_timeout_seconds
        self._sleep = sleep
        # Throttled requests are delayed by Acumatica rather than refused, so the read timeout is generous.
        self._timeout = (timings.ACUMATICA_TIMEOUT[0], request_timeout_seconds)
        self._limiter = RequestLimiter(max_concurrent_requests, requests_per_minute, sleep=sleep)
        self._version_guard = threading.Lock()
        self._version_checked = False
        self._version_error: str | None = None
        # Actions take turns in the grant's one session (connector.session); without a lease (a single process) they
        # still wait out a busy session, they just do not reserve it.
        self._operation_lease = operation_lease
        self._schemas: dict[str, tuple[float, dict[str, list[str]]]] = {}
        self._schema_ttl = schema_ttl_seconds

    def __repr__(self) -> str:
        return f"AcumaticaClient(base_url={self.base_url!r}, endpoint_version={self.endpoint_version!r})"

    @property
    def endpoint_url(self) -> str:
        return f"{self.base_url}/entity/{ENDPOINT_NAME}/{self.endpoint_version}"

    # ---------------------------------------------------------------------------------------- endpoint version

    def check_endpoint_version(self) -> None:
        """Fail with one clear ``ConfigurationError`` if the instance does not serve ``Default/<pinned version>``.

        Asked once per client (``GET /entity`` needs no sign-in); a wrong version is remembered, a transient failure
        is not.
        """
        with self._version_guard:
            if self._version_error is not None:
                raise ConfigurationError(self._version_error)
            if self._version_checked:
                return
            response = self._send("GET", f"{self.base_url}/entity", authenticated=False)
            if response.status_code in (401, 403):  # documented as open, but an instance may be locked down
                response = self._send("GET", f"{self.base_url}/entity")
            if response.status_code != 200:
                raise self._error_for(response, "GET /entity")
            body = _json_or_none(response)
            endpoints = body.get("endpoints") if isinstance(body, dict) else None
            if not isinstance(endpoints, list):
                raise PermanentError(f"{self.base_url}/entity did not list endpoints: is AcumaticaUrl an Acumatica "
                                     "instance?")
            served = sorted({str(e.get("version")) for e in endpoints
                             if isinstance(e, dict) and e.get("name") == ENDPOINT_NAME})
            if self.endpoint_version not in served:
                self._version_error = (
                    f"Acumatica at {self.base_url} does not serve endpoint {ENDPOINT_NAME}/{self.endpoint_version}; "
                    f"it serves {ENDPOINT_NAME} versions {', '.join(served) or '(none)'}. "
                    "Set AcumaticaEndpointVersion to one of them.")
                raise ConfigurationError(self._version_error)
            self._version_checked = True
            logger.info("Acumatica serves %s/%s", ENDPOINT_NAME, self.endpoint_version)

    # ---------------------------------------------------------------------------------------- DocumentSource

    def changed_pages(self, entity: str, since: datetime, *, skip: int = 0,
                      page_size: int | None = None) -> Iterator[Page]:
        """Documents with ``LastModifiedDateTime ge since``, one HTTP call per page, lazily.

        Acumatica has no ``$orderby``, so records can shift between pages while the poll runs. A deletion shifts
        later records to lower offsets, so every page after the first starts ``PAGE_REREAD`` records early (at most
        half a page) and the records of the previous page are not yielded again; an insertion shifts them higher, and
        the repeats it causes are not yielded either. Only one page of ids is kept, so memory stays flat however long
        the backlog; an older repeat is harmless (same state, same dedupe id).
        """
        prof = profile(entity)
        size = page_size or self.page_size
        reread = min(PAGE_REREAD, size // 2)
        params = {"$filter": comparison("LastModifiedDateTime", "ge", since), "$select": ",".join(prof.select)}
        previous_page: set[str] = set()
        while True:
            url = f"{self._entity_url(entity)}?{query_string({**params, '$top': size, '$skip': skip})}"
            payload, response = self._list(url, f"{entity} list")
            documents, this_page = [], set()
            for item in payload:
                try:
                    document = self._document(entity, item)
                except PermanentError as exc:  # one unusable record must not stop the entity's pass every run
                    logger.error("skipped an unusable %s record: %s", entity, exc)
                    continue
                identity = document.id or document.key.external_id
                if identity not in previous_page and identity not in this_page:
                    documents.append(document)
                this_page.add(identity)
            previous_page = this_page
            is_last = len(payload) < size
            page = Page(documents=documents, next_skip=skip + len(payload) - (0 if is_last else reread),
                        is_last=is_last, server_time=_server_time(response))
            yield page
            if page.is_last:
                return
            skip = page.next_skip

    def get(self, key: DocumentKey) -> Document | None:
        """The document by its keys in the URL; a key Acumatica cannot take in a URL is found with ``$filter``."""
        if any(_URL_UNSAFE_KEY.search(value) for value in (key.type, key.number)):
            return self._find_by_key_filter(key)
        url = f"{self._entity_url(key.entity, key.type, key.number)}?{self._select_query(key.entity)}"
        return self._read_one(key.entity, url, str(key))

    def referenced_orders(self, key: DocumentKey) -> list[DocumentKey]:
        """Purchase orders the bill's lines reference (``Details/POOrderType`` and ``POOrderNbr``), once each.

        One GET by key with ``$expand=Details`` and only the two line fields: the worker's read when the poller's
        batched one (``bill_orders``) is not at hand or failed, since list queries that expand details can fail on
        Acumatica's query optimizer where a read by key does not. Anything but a bill references none."""
        if key.entity != "Bill" or any(_URL_UNSAFE_KEY.search(value) for value in (key.type, key.number)):
            return []
        query = query_string({"$expand": "Details",
                              "$select": ",".join([*profile(key.entity).key_fields, "Details/POOrderType",
                                                   "Details/POOrderNbr"])})
        response = self._request("GET", f"{self._entity_url(key.entity, key.type, key.number)}?{query}")
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            raise self._error_for(response, f"GET {key} details")
        record, _ = unwrap(_json_or_none(response) or {})
        return _orders_of(record)

    # ---------------------------------------------------------------------------------------- batched key reads

    def bill_orders(self, bills: Sequence[DocumentKey]) -> dict[DocumentKey, list[DocumentKey]]:
        """The purchase orders each bill's lines reference, for many bills in as few requests as the URL allows:
        one list request per chunk with ``$filter`` of their numbers, ``$expand=Details`` and ``$select`` of the keys
        and the two line fields. A bill absent from the answer does not exist (any failure raises instead)."""
        prof = profile("Bill")
        records = self.read_by_keys(bills, (*prof.key_fields, "Details/POOrderType", "Details/POOrderNbr"),
                                    expand="Details")
        return {key: _orders_of(record) for key, record in records.items()}

    def order_owners(self, orders: Sequence[DocumentKey]) -> dict[DocumentKey, str | None]:
        """Each purchase order's ``Owner`` (the buyer), many orders per request; absent orders do not exist."""
        prof = profile("PurchaseOrder")
        records = self.read_by_keys(orders, (*prof.key_fields, "Owner"))
        return {key: (str(record["Owner"]) if record.get("Owner") else None) for key, record in records.items()}

    def existing(self, keys: Sequence[DocumentKey]) -> set[DocumentKey]:
        """Which of ``keys`` Acumatica still has: their key fields only, many documents per request."""
        found: set[DocumentKey] = set()
        for entity in dict.fromkeys(key.entity for key in keys):
            found.update(self.read_by_keys([k for k in keys if k.entity == entity], profile(entity).key_fields))
        return found

    def _list(self, url: str, what: str) -> tuple[list[Any], requests.Response]:
        """The records of one list request (``what``: ``Bill list``) and its answer (its ``Date``), or the error the
        answer means."""
        response = self._request("GET", url)
        if response.status_code != 200:
            raise self._error_for(response, f"GET {what}")
        payload = _json_or_none(response)
        if not isinstance(payload, list):
            raise PermanentError(f"Acumatica answered a {what} request with {type(payload).__name__}")
        return payload, response

    def read_by_keys(self, keys: Sequence[DocumentKey], select: Sequence[str], *,
                     expand: str | None = None) -> dict[DocumentKey, dict[str, Any]]:
        """The unwrapped records of ``keys`` (one entity), by list requests filtered on their numbers.

        Each request's ``$filter`` joins ``<Number> eq '<n>'`` with ``or``, in chunks whose whole URL stays within
        ``URL_LIMIT`` (measured on the URL sent, escapes included). Records come back matched on both keys, so a
        document of another type with the same number is ignored. No ``$top``: a 200 answer lists every match, so a
        key missing from it is missing from Acumatica; an error, or an answer that is not a list, raises and proves
        nothing about any key of the chunk.
        """
        entities = {key.entity for key in keys}
        if len(entities) > 1:
            raise ValueError(f"read_by_keys reads one entity at a time, got {sorted(entities)}")
        if not keys:
            return {}
        entity = next(iter(entities))
        wanted = set(keys)
        found: dict[DocumentKey, dict[str, Any]] = {}
        for url in self.key_filter_urls(entity, [key.number for key in keys], select, expand=expand):
            for item in self._list(url, f"{entity} list by keys")[0]:
                record, _ = unwrap(item) if isinstance(item, dict) else ({}, {})
                try:
                    key = profile(entity).key_of(record)
                except ValueError:
                    continue
                if key in wanted:
                    found[key] = record
        return found

    def key_filter_urls(self, entity: str, numbers: Sequence[str], select: Sequence[str], *,
                        expand: str | None = None) -> list[str]:
        """The list URLs that read documents of ``entity`` by ``numbers``, each within ``URL_LIMIT`` as sent."""
        number_field = profile(entity).key_fields[1]
        fixed = {"$select": ",".join(select), **({"$expand": expand} if expand else {})}

        def url(chunk: Sequence[str]) -> str:
            condition = " or ".join(comparison(number_field, "eq", number) for number in chunk)
            return f"{self._entity_url(entity)}?{query_string({'$filter': condition, **fixed})}"

        return [url(chunk) for chunk in chunks_within(list(dict.fromkeys(numbers)), lambda c: len(url(c)), URL_LIMIT)]

    def get_by_id(self, entity: str, id: str) -> Document | None:
        """The document by its session ``id`` (the only way to address keys that contain ``/``)."""
        try:
            record_id = str(uuid.UUID(id))
        except ValueError:
            raise ValueError(f"not an Acumatica record id: {id!r}") from None
        url = f"{self._entity_url(entity, record_id)}?{self._select_query(entity)}"
        return self._read_one(entity, url, f"{entity} {record_id}")

    def set_hold(self, key: DocumentKey, hold: bool) -> Document:
        """PUT ``Hold`` (update only: ``If-Match: *``), then GET the document: the re-read, not the PUT's answer, says
        what Acumatica kept (recent builds ignore API writes to ``Hold`` on some entities and still answer 200).

        Acumatica answers 422 with field ``error``s when it refuses (an unbalanced document cannot leave hold):
        those become ``ValidationError.field_errors``.
        """
        body = wrap({**self._key_fields(key), "Hold": bool(hold)})
        url = f"{self._entity_url(key.entity)}?{self._select_query(key.entity)}"
        response = self._request("PUT", url, body=body, headers={"If-Match": "*"})
        if response.status_code != 200:
            raise self._error_for(response, f"Hold={str(hold).lower()} on {key}")
        document = self._reread(key, f"Hold={str(hold).lower()}")
        logger.info("Acumatica %s: Hold=%s saved, status now %s", key, hold, document.status)
        return document

    def invoke_action(self, key: DocumentKey, action: str, parameters: Mapping[str, str] | None = None) -> Document:
        """Run a named action (``ReleaseBill``) or a workflow action (``Approve``) and return the re-read document.

        Both are ``POST <Entity>/<action>`` with ``{"entity": {keys}, "parameters": {...}}``; ``parameters`` maps a
        workflow action's ``View.Field`` (as ``action_parameters`` lists them) to a text value, sent as
        ``parameters.custom.<View>.<Field>`` (a ``CustomStringField``). The action holds the grant's one session
        (``connector.session``) from the POST until its status URL answers ``204``. A ``202`` is followed to ``204``
        through its ``Location`` with bounded, backed-off polling. The POST is never resent: if its outcome is
        unknown (timeout, dropped connection, a gateway's 5xx, polling that outlasts ``action_timeout_seconds``) this
        raises ``UncertainOutcome`` and the caller re-reads the status. An answer in which Acumatica names its own
        exception is a definite refusal (``ActionRefused``): nothing was done; a 429 is a "not now"
        (``TransientError``).
        """
        profile(key.entity)
        if not _NAME.match(action):
            raise ValueError(f"not an action name: {action!r}")
        url = self._entity_url(key.entity, action)
        body = {"entity": wrap(self._key_fields(key)), "parameters": _custom_parameters(parameters or {})}
        with self._session_held(f"{action} on {key}") as renew:
            response = self._request("POST", url, body=body)
            if response.status_code == 202:
                location = response.headers.get("Location")
                if not location:
                    raise UncertainOutcome(f"Acumatica accepted {action} on {key} without a status Location; "
                                           "re-read it")
                self._await_completion(url, location, key, action, renew)
            elif response.status_code != 204:
                raise self._action_error(response, action, key)
        document = self._reread(key, action)
        logger.info("Acumatica %s: %s completed, status now %s", key, action, document.status)
        return document

    def workflow_actions(self, entity: str) -> list[str]:
        """Workflow action names from ``GET <Entity>/$adHocSchema`` (``_workflowActions``)."""
        return list(self._workflow_schema(entity))

    def action_parameters(self, entity: str, action: str) -> list[str]:
        """``View.Field`` of each parameter the workflow ``action`` takes, as ``$adHocSchema`` lists them (the
        boxes of the dialog the form shows, e.g. ``ReasonApproveRejectParams.Reason``); ``[]`` when it takes none
        or the instance does not offer it. Compared without regard to case, as action names are."""
        schema = self._workflow_schema(entity)
        return next((parameters for name, parameters in schema.items() if name.casefold() == action.casefold()), [])

    # ---------------------------------------------------------------------------------------- helpers

    def _entity_url(self, entity: str, *segments: str) -> str:
        path = "/".join(quote(segment, safe="") for segment in (entity, *segments))
        return f"{self.endpoint_url}/{path}"

    @staticmethod
    def _select_query(entity: str) -> str:
        """``$select`` of only the fields the connector reads (``documents.profile``), never whole documents."""
        return query_string({"$select": ",".join(profile(entity).select)})

    @staticmethod
    def _key_fields(key: DocumentKey) -> dict[str, str]:
        type_field, number_field = profile(key.entity).key_fields
        return {type_field: key.type, number_field: key.number}

    def _document(self, entity: str, payload: Any) -> Document:
        if not isinstance(payload, dict):
            raise PermanentError(f"Acumatica answered a {entity} read with {type(payload).__name__}, not a record")
        record, errors = unwrap(payload)
        try:
            return to_document(entity, record, errors, read_at=datetime.now(timezone.utc))
        except ValueError as exc:  # a record without its keys: nothing downstream could address it
            raise PermanentError(f"Acumatica sent an unusable {entity} record: {exc}") from None

    def _read_one(self, entity: str, url: str, what: str) -> Document | None:
        response = self._request("GET", url)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._error_for(response, f"GET {what}")
        return self._document(entity, _json_or_none(response))

    def _find_by_key_filter(self, key: DocumentKey) -> Document | None:
        conditions = [comparison(name, "eq", value) for name, value in self._key_fields(key).items()]
        url = f"{self._entity_url(key.entity)}?" + query_string(
            {"$filter": all_of(*conditions), "$select": ",".join(profile(key.entity).select)})
        response = self._request("GET", url)
        if response.status_code != 200:
            raise self._error_for(response, f"GET {key}")
        payload = _json_or_none(response)
        for item in payload if isinstance(payload, list) else []:
            document = self._document(key.entity, item)
            if document.key == key:
                return document
        return None

    def _reread(self, key: DocumentKey, after: str) -> Document:
        """The document as Acumatica has it after ``after``: the fact a step is judged by."""
        try:
            document = self.get(key)
        except TransientError as exc:  # it completed: a failed re-read (even "not now") must not read as "nothing
            # happened", or the caller would give its claim back and act again
            raise UncertainOutcome(f"{after} on {key} completed but re-reading it failed ({exc}); re-read it") from None
        if document is None:
            raise NotFoundError(f"{key} vanished after {after}")
        return document

    @contextmanager
    def _session_held(self, what: str) -> Iterator[Callable[[], bool]]:
        if self._operation_lease is None:
            yield lambda: True
            return
        with self._operation_lease.held(what, self._affordable_wait()) as renew:
            yield renew

    def _affordable_wait(self) -> float:
        """How long a request may wait in place for the session: what the invocation can afford (the gates know)."""
        gates = gates_of(self._session)
        return gates.affordable() if gates is not None else timings.LONGEST_WAIT_IN_PLACE_SECONDS

    def _workflow_schema(self, entity: str) -> dict[str, list[str]]:
        """``$adHocSchema``'s workflow actions: name → ``View.Field`` of each parameter; read once per
        ``schema_ttl_seconds`` per entity (a burst of resolutions asks once)."""
        profile(entity)
        cached = self._schemas.get(entity)
        if cached is not None and time.monotonic() - cached[0] < self._schema_ttl:
            return cached[1]
        response = self._request("GET", f"{self._entity_url(entity)}/$adHocSchema")
        if response.status_code != 200:
            raise self._error_for(response, f"GET {entity}/$adHocSchema")
        body = _json_or_none(response)
        actions = body.get("_workflowActions") if isinstance(body, dict) else None
        schema: dict[str, list[str]] = {}
        for item in actions or []:
            for name, definition in (item.items() if isinstance(item, dict) else ()):
                custom = ((definition or {}).get("parameters") or {}).get("custom") if isinstance(definition, dict) \
                    else None
                schema[name] = [f"{view}.{field}" for view, fields in (custom or {}).items()
                                if isinstance(fields, dict) for field in fields]
        self._schemas[entity] = (time.monotonic(), schema)
        return schema

    def _action_error(self, response: requests.Response, action: str, key: DocumentKey) -> ConnectorError:
        """What an action's POST answer other than 202/204 means. Acumatica naming its own exception is a refusal
        (nothing was done); a 5xx without one (a gateway, a reset) may hide an action that started. A 429 (the
        licence's request limit, left after the transport's retries) is neither: the action was not run, and it is
        a "not now" to retry, whatever its body says, never a refusal a person has to answer."""
        status = response.status_code
        body = _json_or_none(response)
        if status == 429:
            return self._error_for(response, f"{action} on {key}")
        if status >= 400 and isinstance(body, dict) and body.get("exceptionMessage"):
            detail, _ = _error_detail(response)
            return ActionRefused(f"Acumatica refused {action} on {key}: {detail}")
        if status >= 500:
            return UncertainOutcome(f"Acumatica answered {status} to {action} on {key}; it may have run: re-read the "
                                    "document to settle it", retry_after_seconds(response))
        return self._error_for(response, f"{action} on {key}")

    def _await_completion(self, action_url: str, location: str, key: DocumentKey, action: str,
                          renew: Callable[[], bool] = lambda: True) -> None:
        status_url = urljoin(action_url, location)
        if not same_origin(status_url, self.base_url):  # scheme too: an http Location would expose the token
            raise PermanentError(f"Acumatica sent a status Location on another host, scheme or port "
                                 f"({urlsplit(status_url).scheme or 'no scheme'}://{host_of(status_url)}) for {action} "
                                 f"on {key}; not following it with our token")
        started, waited, delay = time.monotonic(), 0.0, 0.5
        while True:
            self._sleep(delay)
            waited += delay
            renew()  # the lease lapses only if this holder falls silent for its whole length
            response = self._request("GET", status_url, session=self._status_session)
            status = response.status_code
            if status == 204:
                return
            if status == 202:
                if max(waited, time.monotonic() - started) >= self._action_timeout:
                    raise UncertainOutcome(f"{action} on {key} still running after {self._action_timeout:.0f}s; "
                                           "re-read the document to settle it")
                delay = min(delay * 2, timings.ACUMATICA_STATUS_POLL_MAX_SECONDS)
                continue
            detail, field_errors = _error_detail(response)
            if status in (400, 422):
                raise ValidationError(f"Acumatica refused {action} on {key}: {detail}", field_errors)
            if status in (404, 429) or status >= 502:
                raise UncertainOutcome(f"lost track of {action} on {key} (status URL answered {status}); "
                                       "re-read the document to settle it")
            raise PermanentError(f"Acumatica could not complete {action} on {key}: {detail}")

    def _request(self, method: str, url: str, *, body: Any = None, headers: Mapping[str, str] | None = None,
                 session: requests.Session | None = None) -> requests.Response:
        """An authenticated call to the entity API; a refused token (401) is replaced once, then it is an error."""
        self.check_endpoint_version()
        response = self._send(method, url, body=body, headers=headers, session=session)
        if response.status_code == 401:
            response = self._send(method, url, body=body, headers=headers, session=session)
            if response.status_code == 401:
                raise AuthenticationError(f"Acumatica refused a fresh access token (401) for {method} "
                                          f"{_path(url)}; check the API user and the connected application")
        if response.status_code >= 400 and is_session_busy(response.status_code, _json_or_none(response)):
            response = self._after_the_running_operation(method, url, body=body, headers=headers, session=session)
        return response

    def _after_the_running_operation(self, method: str, url: str, **send: Any) -> requests.Response:
        """Acumatica refused the request because an action runs in the grant's session: nothing happened, so wait
        (backing off) and send it again, for as long as the invocation can afford; then ``SessionBusy``."""
        budget, started, waited, delay = self._affordable_wait(), time.monotonic(), 0.0, 0.5
        while True:
            left = budget - max(waited, time.monotonic() - started)
            if left <= 0:
                raise SessionBusy(f"an action is running in the Acumatica session; {method} {_path(url)} waits for "
                                  "it to end", retry_after=delay)
            pause = min(delay, left)
            self._sleep(pause)
            waited += pause
            response = self._send(method, url, **send)
            if response.status_code < 400 or not is_session_busy(response.status_code, _json_or_none(response)):
                return response
            delay = min(delay * 2, timings.ACUMATICA_STATUS_POLL_MAX_SECONDS)

    def _send(self, method: str, url: str, *, body: Any = None, headers: Mapping[str, str] | None = None,
              authenticated: bool = True, session: requests.Session | None = None) -> requests.Response:
        request_headers = {"Accept": "application/json", **(headers or {})}
        data = None
        if body is not None:
            request_headers["Content-Type"] = "application/json"
            data = json.dumps(body, default=_json_default).encode()
        token = None
        if authenticated:
            token = self._tokens.access_token()
            request_headers["Authorization"] = f"Bearer {token}"
        started = time.monotonic()
        try:
            with self._limiter.slot():
                response = (session or self._session).request(method, url, data=data, headers=request_headers,
                                                              timeout=self._timeout, allow_redirects=False)
        except requests.RequestException as exc:
            # Any POST may have happened (a created document, a started action); other methods are safe to repeat.
            raise transport_error("Acumatica", method, _path(url), exc, may_have_happened=method == "POST") from None
        logger.debug("Acumatica %s %s -> %s in %.2fs", method, _path(url), response.status_code,
                     time.monotonic() - started)
        refused = redirect_refused("Acumatica", "AcumaticaUrl", response)
        if refused is not None:  # the bearer token stays with the instance
            raise refused
        if response.status_code == 401 and token is not None:
            self._tokens.invalidate(token)
        return response

    def _error_for(self, response: requests.Response, what: str) -> ConnectorError:
        status = response.status_code
        detail, field_errors = _error_detail(response)
        message = f"Acumatica answered {status} to {what}: {detail}"
        if status in (401, 403):
            return AuthenticationError(message)
        if status in (404, 412):
            return NotFoundError(message)
        if status in (400, 422):
            return ValidationError(message, field_errors)
        if status == 429 or status >= 500:
            return TransientError(message, retry_after=retry_after_seconds(response))
        return PermanentError(message)


# ------------------------------------------------------------------------------------------------- module helpers


def chunks_within(items: Sequence[str], length: Callable[[Sequence[str]], int], limit: int) -> Iterator[list[str]]:
    """``items`` in order, in consecutive chunks as long as ``length(chunk)`` stays within ``limit``.

    The length is measured on what is sent (the caller renders the URL), not estimated from the items. An item too
    long to fit even alone travels alone: the server's refusal of it is then an error of that one chunk."""
    chunk: list[str] = []
    for item in items:
        if chunk and length([*chunk, item]) > limit:
            yield chunk
            chunk = []
        chunk.append(item)
    if chunk:
        yield chunk


def _orders_of(record: Mapping[str, Any]) -> list[DocumentKey]:
    """Purchase orders a bill's lines reference (``Details/POOrderType`` and ``POOrderNbr``), once each, in order."""
    orders: dict[DocumentKey, None] = {}
    for line in record.get("Details") or []:
        if isinstance(line, dict) and line.get("POOrderType") and line.get("POOrderNbr"):
            orders[DocumentKey("PurchaseOrder", str(line["POOrderType"]), str(line["POOrderNbr"]))] = None
    return list(orders)


def _server_time(response: requests.Response) -> datetime | None:
    """The instance's own clock, from the ``Date`` header an origin server with a clock must send (RFC 9110 6.6.1;
    IIS does, from the machine Acumatica runs on); ``None`` when it is absent or unreadable."""
    try:
        moment = parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _custom_parameters(values: Mapping[str, str]) -> dict[str, Any]:
    """``{"View.Field": text}`` as a custom action's ``parameters`` (``{"custom": {View: {Field: CustomStringField}}}``,
    Integration Development Guide, "Execute a Custom Action"); ``{}`` when there are none."""
    custom: dict[str, dict[str, Any]] = {}
    for path, value in values.items():
        view, _, field = path.partition(".")
        if not _NAME.match(view) or not _NAME.match(field):
            raise ValueError(f"not an action parameter View.Field: {path!r}")
        custom.setdefault(view, {})[field] = {"type": "CustomStringField", "value": value}
    return {"custom": custom} if custom else {}


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _path(url: str) -> str:
    return urlsplit(url).path


def _error_detail(response: requests.Response) -> tuple[str, dict[str, str]]:
    """A short reason from Acumatica's body (``HttpError`` or a record with field ``error``s), and the field errors."""
    body = _json_or_none(response)
    if isinstance(body, dict) and ("exceptionMessage" in body or "message" in body):
        detail = str(body.get("exceptionMessage") or body.get("message") or "")
        model_state = body.get("modelState")
        field_errors = {str(name): "; ".join(map(str, messages)) for name, messages in model_state.items()
                        if isinstance(messages, list)} if isinstance(model_state, dict) else {}
        return (detail or response.reason or "no detail")[:_DETAIL_LIMIT], field_errors
    if isinstance(body, dict):
        _, field_errors = unwrap(body)
        if field_errors:
            detail = "; ".join(f"{name or 'document'}: {text}" for name, text in field_errors.items())
            return detail[:_DETAIL_LIMIT], field_errors
    return (response.reason or "no detail")[:_DETAIL_LIMIT], {}
