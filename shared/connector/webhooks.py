"""What inbound deliveries mean: a Jira issue update that resolves an issue, or an Acumatica push notification.

Pure parsing after the signature was verified (``connector.signatures``). An authenticated body is authentic, not
necessarily well-formed or well-meant (a push secret is a header every Acumatica admin and customizer can read), so:
- every body is validated to its shape before anything is queued: a malformed one is ``Rejected(400)``, never an
  exception the function did not expect (which would answer 500, and Jira and Acumatica retry a 500);
- every value that is queued is bounded in length (status names, keys, ids), and ids that reach URL paths are checked
  (``connector.ids``); external ids name only the configured entities;
- the work one delivery can cause is bounded: a Jira delivery queues at most one message; a push notification of
  more than ``PUSH_ROW_BOUND`` rows queues one ``poll`` message for its entities instead of one message per row (the
  poll reads every changed document, so nothing is lost, and it runs in the poller, the one writer of watermarks);
- idempotency keys come from what the signature covers (the body), in separate namespaces for the two routes.

Anything that is not for us is ignored (``None`` / empty list).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from .documents import PROFILES
from .errors import Rejected
from .ids import CHANGELOG_ID, is_issue_id, is_issue_key
from .model import ENTITIES, POLL_NOW_GROUP, DocumentKey, WorkMessage
from .rules import is_resolved
from .signatures import verify_dynamic_webhook_jwt, verify_hub_signature

MAX_BODY_BYTES = 1_048_576
"""Jira sends the whole issue; a megabyte is plenty. Larger bodies are refused with 413 before any parsing."""
PUSH_ROW_BOUND = 200
"""A push notification of more rows than this queues one ``poll`` message instead of a message per row: 200 messages
are 20 SQS batch requests, well within the webhook's 10 s, and a larger change is cheaper read as pages by a poll."""
MAX_NAME = 255
"""Status, inquiry and notification names, and account ids: Jira's own limit for a status name is far lower."""
MAX_KEY_PART = 64
"""A document's type or number (Acumatica reference numbers are 15 characters at most)."""
MAX_STAMP = 64
MAX_EXTERNAL_ID = 2 * MAX_KEY_PART + 32
POLL_COALESCE_SECONDS = 60
"""``poll`` messages for the same entities within one such window share a deduplication id, so a flood of large
pushes asks for at most one poll a minute per set of entities (later changes are read by the next scheduled poll)."""

DEFAULT_PUSH_QUERIES: Mapping[str, str] = {
    "AJC-Bills": "Bill",
    "AJC-PurchaseOrders": "PurchaseOrder",
    "AJC-Checks": "Check",
}
"""Generic inquiry name → entity; one inquiry per entity (Acumatica push rows carry no entity name)."""


def parse_json_object(raw_body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Rejected(400, "body is not valid JSON") from None
    except RecursionError:
        raise Rejected(400, "body nests JSON too deeply") from None
    if not isinstance(payload, dict):
        raise Rejected(400, "body must be a JSON object")
    return payload


def body_digest(raw_body: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw_body).hexdigest()


def _text(value: Any, what: str, limit: int = MAX_NAME) -> str | None:
    """``value`` as bounded text (``None`` when absent); anything else is a malformed body."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Rejected(400, f"{what} must be text")
    if len(value) > limit:
        raise Rejected(400, f"{what} is longer than {limit} characters")
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    """``value`` as an object (``{}`` when absent)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Rejected(400, f"{what} must be an object")
    return value


def jira_resolution(payload: Mapping[str, Any], *, external_id_field: str, resolved_statuses: tuple[str, ...],
                    correlation_id: str, digest: str = "",
                    entities: Sequence[str] = ENTITIES) -> WorkMessage | None:
    """A ``resolve`` message when the update moved the issue into a resolved status, else ``None``.

    Resolved means one of ``resolved_statuses`` (case-insensitive) when configured, else status category ``done``.
    Only issues whose external id names a document of ``entities`` (``DocumentTypes``) are for us. The message's
    dedupe id is the issue id and changelog id the body names (``digest``, the body's, when it names no changelog).
    """
    event = _text(payload.get("webhookEvent"), "webhookEvent")
    if event != "jira:issue_updated":
        return None
    issue = payload.get("issue")
    if not isinstance(issue, dict) or not isinstance(issue.get("fields"), dict):
        raise Rejected(400, "jira:issue_updated without an issue and its fields")
    if not is_issue_key(issue.get("key")):
        raise Rejected(400, "the issue key must look like AP-123")
    if not is_issue_id(issue.get("id")):
        raise Rejected(400, "the issue id must be digits")
    issue_key, issue_id, fields = str(issue["key"]), str(issue["id"]), issue["fields"]
    changelog = _object(payload.get("changelog"), "changelog")
    items = changelog.get("items", [])
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise Rejected(400, "changelog items must be a list of objects")
    change = changelog.get("id")
    if change is not None and not (isinstance(change, (str, int)) and not isinstance(change, bool)
                                   and CHANGELOG_ID.fullmatch(str(change))):
        raise Rejected(400, "the changelog id must be digits")
    timestamp = payload.get("timestamp")
    if timestamp is not None and (isinstance(timestamp, bool) or not isinstance(timestamp, (int, str))
                                  or len(str(timestamp)) > MAX_STAMP):
        raise Rejected(400, "timestamp must be epoch milliseconds")
    status_moves = [item for item in items if (_text(item.get("fieldId"), "changelog item fieldId")
                                               or _text(item.get("field"), "changelog item field")) == "status"]
    for item in status_moves:
        _text(item.get("toString"), "the status moved to")
        _text(item.get("fromString"), "the status moved from")
    status = _object(fields.get("status"), "fields.status")
    category = _text(_object(status.get("statusCategory"), "fields.status.statusCategory").get("key"),
                     "the status category key")
    external_id = fields.get(external_id_field)
    if external_id is not None and not isinstance(external_id, str):
        raise Rejected(400, f"{external_id_field} must be text")
    if not status_moves:
        return None
    move = status_moves[0]
    to_name = move.get("toString") or ""
    if resolved_statuses:
        if not is_resolved(to_name, None, resolved_statuses) or is_resolved(move.get("fromString") or "", None,
                                                                            resolved_statuses):
            return None
    elif category is not None and category != "done":
        return None  # without a category in the payload, the worker checks the issue itself
    key = _document_key(external_id, entities)
    if key is None:
        return None
    dedupe = f"resolve:{issue_id}:{change}" if change is not None else f"resolve:{digest}"
    return WorkMessage(kind="resolve", external_id=key.external_id, dedupe_id=dedupe,
                       correlation_id=correlation_id, source="jira", issue_key=issue_key,
                       status_name=to_name or None, observed_at=str(timestamp) if timestamp is not None else None,
                       reason=f"{issue_key} moved to {to_name or 'a resolved status'} in Jira",
                       issue_id=issue_id, change_id=str(change) if change is not None else None)


def _document_key(external_id: str | None, entities: Sequence[str]) -> DocumentKey | None:
    """The document an external id names, when it is one of ``entities`` and fits the bounds; else ``None``."""
    if not external_id or not external_id.strip() or len(external_id) > MAX_EXTERNAL_ID:
        return None
    try:
        key = DocumentKey.parse(external_id.strip())
    except ValueError:
        return None
    if key.entity not in entities or len(key.type) > MAX_KEY_PART or len(key.number) > MAX_KEY_PART:
        return None
    return key


_QUERY_HINTS = (("purchase", "PurchaseOrder"), ("order", "PurchaseOrder"), ("bill", "Bill"), ("invoice", "Bill"),
                ("check", "Check"), ("payment", "Check"))


def _entity_of(query: str, row: Mapping[str, Any], queries: Mapping[str, str]) -> str | None:
    """Which entity a push row is about: an explicit ``Entity`` column, the configured inquiry name, or (for
    inquiries named otherwise) the key columns and the inquiry's name."""
    explicit = _text(row.get("Entity"), "a push row's Entity") or queries.get(query)
    if explicit in PROFILES:
        return str(explicit)
    if row.get("OrderNbr"):
        return "PurchaseOrder"
    folded = query.casefold()
    return next((entity for hint, entity in _QUERY_HINTS if hint in folded), None)


def _key_value(row: Mapping[str, Any], name: str) -> str:
    """A key column of a push row, trimmed (Acumatica pads them): text or a number, bounded."""
    value = row.get(name)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Rejected(400, f"a push row's {name} must be text")
    text = str(value).strip()
    if len(text) > MAX_KEY_PART:
        raise Rejected(400, f"a push row's {name} is longer than {MAX_KEY_PART} characters")
    return text


def push_changes(payload: Mapping[str, Any], *, correlation_id: str,
                 queries: Mapping[str, str] = DEFAULT_PUSH_QUERIES, entities: Sequence[str] = ENTITIES,
                 bound: int = PUSH_ROW_BOUND, now: float = 0.0) -> list[WorkMessage]:
    """One ``sync`` message per document an Acumatica push notification names, in ``Inserted`` or ``Deleted``; or,
    for more than ``bound`` rows, one ``poll`` message for the entities they are about.

    ``Deleted`` holds the old row of an update and the only row of a document that left the inquiry's results
    (deleted, or no longer matching its conditions): either way the worker re-reads the document and brings its issue
    up to date. Key values are trimmed (Acumatica pads them). The dedupe id carries the inquiry and the transaction
    id: one transaction notifies every inquiry it touches with the same ``Id``. Rows of entities outside
    ``entities`` (``DocumentTypes``) are skipped. ``now`` only windows the ``poll`` messages' dedupe ids.
    """
    notification_id = _text(payload.get("Id"), "push notification Id")
    inserted, deleted = payload.get("Inserted", []), payload.get("Deleted", [])
    if not notification_id or not isinstance(inserted, list):
        raise Rejected(400, "not an Acumatica push notification (needs Id and Inserted[])")
    if not isinstance(deleted, list):
        raise Rejected(400, "push notification Deleted must be a list of rows")
    query = (_text(payload.get("Query"), "push notification Query") or "").strip()
    rows = [(row, False) for row in inserted] + [(row, True) for row in deleted]
    named: dict[str, tuple[DocumentKey, str | None, bool]] = {}
    wanted: set[str] = set()
    for row, removed in rows:
        if not isinstance(row, dict):
            raise Rejected(400, "push notification rows must be objects")
        entity = _entity_of(query, row, queries)
        stamp = _text(row.get("LastModifiedDateTime"), "a push row's LastModifiedDateTime", MAX_STAMP)
        if entity is None or entity not in entities:
            continue
        type_label, number = (_key_value(row, name) for name in PROFILES[entity].key_fields)
        if not type_label or not number:
            continue
        by_code = {code: label for label, code in PROFILES[entity].type_codes.items()}
        try:
            key = DocumentKey(entity, by_code.get(type_label, type_label), number)
        except ValueError:  # a type no document can have (":"): nothing to sync, and no reason to refuse the rest
            continue
        wanted.add(entity)
        named.setdefault(key.external_id, (key, stamp, removed))  # an update's Deleted row names it again
    source = f"Acumatica push notification {notification_id} from {query or 'an inquiry'}"
    if len(rows) > bound:
        if not wanted:
            return []
        chosen = sorted(wanted)
        window = math.floor(now / POLL_COALESCE_SECONDS)
        return [WorkMessage(
            kind="poll", external_id=POLL_NOW_GROUP, dedupe_id=f"poll:{','.join(chosen)}:{window}",
            correlation_id=correlation_id, source="push", entities=chosen,
            observed_at=datetime.fromtimestamp(now, timezone.utc).isoformat(),
            reason=f"{source}: {len(rows)} rows, more than {bound}; a poll reads every changed document")]
    return [WorkMessage(kind="sync", external_id=external_id, dedupe_id=f"push:{query}:{notification_id}:{external_id}",
                        correlation_id=correlation_id, source="push", observed_at=stamp or None,
                        reason=source + (": no longer in the inquiry's results" if removed else ""))
            for external_id, (_, stamp, removed) in named.items()]


def accept_jira_delivery(raw_body: bytes, headers: Mapping[str, str], *, webhook_secret: str, client_secret: str,
                         external_id_field: str, resolved_statuses: tuple[str, ...], cloud_id: str = "",
                         correlation_id: str, entities: Sequence[str] = ENTITIES
                         ) -> tuple[str, WorkMessage | None]:
    """Verify, then parse a Jira delivery; returns its idempotency key and the message (``None``: ignored).

    ``headers`` have lower-case names (API Gateway delivers them so). ``X-Hub-Signature`` (admin webhook) is checked
    when present, else the dynamic webhook's bearer JWT. The key is ``jira:<issue id>:<changelog id>`` from the body
    (an admin and a dynamic webhook announcing one change are one delivery), else the body's digest: the unsigned
    ``X-Atlassian-Webhook-Identifier`` cannot choose it, so a replayed body with a new identifier is a duplicate."""
    if len(raw_body) > MAX_BODY_BYTES:
        raise Rejected(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if headers.get("x-hub-signature") is not None or not headers.get("authorization"):
        verify_hub_signature(webhook_secret, raw_body, headers.get("x-hub-signature"))
    else:
        verify_dynamic_webhook_jwt(client_secret, headers.get("authorization"), cloud_id=cloud_id)
    payload = parse_json_object(raw_body)
    digest = body_digest(raw_body)
    message = jira_resolution(payload, external_id_field=external_id_field, resolved_statuses=resolved_statuses,
                              correlation_id=correlation_id, digest=digest, entities=entities)
    if message is not None and message.change_id is not None:
        return f"jira:{message.issue_id}:{message.change_id}", message
    return f"jira:{digest}", message


def accept_push(raw_body: bytes, headers: Mapping[str, str], *, push_secret: str, header_name: str,
                correlation_id: str, entities: Sequence[str] = ENTITIES, bound: int = PUSH_ROW_BOUND,
                now: float = 0.0) -> tuple[str, list[WorkMessage]]:
    """Check the shared-secret header in constant time, then parse; returns the delivery key and the messages.

    The key is ``push:<Query>:<Id>``: one data transaction notifies each inquiry it touches with the same ``Id``, and
    each of those notifications is a delivery of its own."""
    if len(raw_body) > MAX_BODY_BYTES:
        raise Rejected(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if not push_secret:
        raise Rejected(401, "no push secret is configured, so no push notification can be trusted")
    presented = headers.get(header_name.lower())
    if not presented or not hmac.compare_digest(presented.encode(), push_secret.encode()):
        raise Rejected(401, f"missing or wrong {header_name} header")
    payload = parse_json_object(raw_body)
    messages = push_changes(payload, correlation_id=correlation_id, entities=entities, bound=bound, now=now)
    return f"push:{str(payload.get('Query') or '').strip()}:{payload['Id']}", messages
