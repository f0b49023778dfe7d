"""What inbound deliveries mean: a Jira issue update that resolves an issue, or an Acumatica push notification.

Pure parsing after the signature was verified (``connector.signatures``); anything that is not for us is ignored
(``None`` / empty list), anything malformed raises ``Rejected(400)``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Mapping

from .documents import PROFILES
from .errors import Rejected
from .model import DocumentKey, WorkMessage
from .rules import is_resolved
from .signatures import verify_dynamic_webhook_jwt, verify_hub_signature

MAX_BODY_BYTES = 1_048_576
"""Jira sends the whole issue; a megabyte is plenty. Larger bodies are refused with 413 before any parsing."""

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
    if not isinstance(payload, dict):
        raise Rejected(400, "body must be a JSON object")
    return payload


def jira_resolution(payload: Mapping[str, Any], *, delivery_id: str, external_id_field: str,
                    resolved_statuses: tuple[str, ...], correlation_id: str) -> WorkMessage | None:
    """A ``resolve`` message when the update moved the issue into a resolved status, else ``None``.

    Resolved means one of ``resolved_statuses`` (case-insensitive) when configured, else status category ``done``.
    """
    if payload.get("webhookEvent") != "jira:issue_updated":
        return None
    issue = payload.get("issue")
    if not isinstance(issue, dict) or not isinstance(issue.get("fields"), dict) or not issue.get("key"):
        raise Rejected(400, "jira:issue_updated without an issue")
    changelog = payload.get("changelog") if isinstance(payload.get("changelog"), dict) else {}
    items = changelog.get("items") if isinstance(changelog.get("items"), list) else []
    move = next((i for i in items if isinstance(i, dict) and (i.get("fieldId") or i.get("field")) == "status"), None)
    if move is None:
        return None
    to_name = str(move.get("toString") or "")
    if resolved_statuses:
        if not is_resolved(to_name, None, resolved_statuses) or is_resolved(str(move.get("fromString") or ""),
                                                                             None, resolved_statuses):
            return None
    else:
        status = issue["fields"].get("status") or {}
        category = (status.get("statusCategory") or {}).get("key") if isinstance(status, dict) else None
        if category is not None and category != "done":
            return None  # without a category in the payload, the worker checks the issue itself
    external_id = issue["fields"].get(external_id_field)
    if not isinstance(external_id, str) or not external_id.strip():
        return None
    try:
        DocumentKey.parse(external_id.strip())
    except ValueError:
        return None
    change = changelog.get("id")
    dedupe = f"resolve:{issue.get('id') or issue['key']}:{change}" if change else f"resolve:{delivery_id}"
    user = payload.get("user") if isinstance(payload.get("user"), dict) else {}
    return WorkMessage(kind="resolve", external_id=external_id.strip(), dedupe_id=dedupe,
                       correlation_id=correlation_id, source="jira", issue_key=str(issue["key"]),
                       status_name=to_name or None, observed_at=str(payload.get("timestamp") or "") or None,
                       reason=f"{issue['key']} moved to {to_name or 'a resolved status'} in Jira",
                       issue_id=str(issue.get("id") or "") or None, change_id=str(change) if change else None,
                       actor=str(user.get("accountId") or "") or None)


_QUERY_HINTS = (("purchase", "PurchaseOrder"), ("order", "PurchaseOrder"), ("bill", "Bill"), ("invoice", "Bill"),
                ("check", "Check"), ("payment", "Check"))


def _entity_of(payload: Mapping[str, Any], row: Mapping[str, Any], queries: Mapping[str, str]) -> str | None:
    """Which entity a push row is about: an explicit ``Entity`` column, the configured inquiry name, or (for
    inquiries named otherwise) the key columns and the inquiry's name."""
    explicit = row.get("Entity") or queries.get(str(payload.get("Query") or ""))
    if explicit in PROFILES:
        return str(explicit)
    if row.get("OrderNbr"):
        return "PurchaseOrder"
    query = str(payload.get("Query") or "").casefold()
    return next((entity for hint, entity in _QUERY_HINTS if hint in query), None)


def push_changes(payload: Mapping[str, Any], *, correlation_id: str,
                 queries: Mapping[str, str] = DEFAULT_PUSH_QUERIES) -> list[WorkMessage]:
    """One ``sync`` message per document an Acumatica push notification names, in ``Inserted`` or ``Deleted``.

    ``Deleted`` holds the old row of an update and the only row of a document that left the inquiry's results
    (deleted, or no longer matching its conditions): either way the worker re-reads the document and brings its issue
    up to date. Key values are trimmed (Acumatica pads them). The dedupe id carries the inquiry and the transaction
    id: one transaction notifies every inquiry it touches with the same ``Id``.
    """
    notification_id = payload.get("Id")
    inserted, deleted = payload.get("Inserted", []), payload.get("Deleted", [])
    if not isinstance(notification_id, str) or not notification_id or not isinstance(inserted, list):
        raise Rejected(400, "not an Acumatica push notification (needs Id and Inserted[])")
    if not isinstance(deleted, list):
        raise Rejected(400, "push notification Deleted must be a list of rows")
    query = str(payload.get("Query") or "").strip()
    messages: dict[str, WorkMessage] = {}
    for row, removed in [(row, False) for row in inserted] + [(row, True) for row in deleted]:
        if not isinstance(row, dict):
            raise Rejected(400, "push notification rows must be objects")
        entity = _entity_of(payload, row, queries)
        if entity is None:
            continue
        prof = PROFILES[entity]
        type_label, number = (str(row.get(name) or "").strip() for name in prof.key_fields)
        if not type_label or not number:
            continue
        by_code = {code: label for label, code in prof.type_codes.items()}
        try:
            key = DocumentKey(entity, by_code.get(str(type_label), str(type_label)), str(number))
        except ValueError:  # a type no document can have (":"): nothing to sync, and no reason to refuse the rest
            continue
        if key.external_id in messages:
            continue  # an update's Deleted row names the document its Inserted row already queued
        messages[key.external_id] = WorkMessage(
            kind="sync", external_id=key.external_id, dedupe_id=f"push:{query}:{notification_id}:{key.external_id}",
            correlation_id=correlation_id, source="push",
            observed_at=str(row.get("LastModifiedDateTime") or "") or None,
            reason=(f"Acumatica push notification {notification_id} from {query or 'an inquiry'}"
                    + (": no longer in the inquiry's results" if removed else "")),
        )
    return list(messages.values())


def delivery_id(headers: Mapping[str, str], raw_body: bytes) -> str:
    """Jira's ``X-Atlassian-Webhook-Identifier`` (stable across retries), else a digest of the body."""
    return headers.get("x-atlassian-webhook-identifier") or "sha256:" + hashlib.sha256(raw_body).hexdigest()


def accept_jira_delivery(raw_body: bytes, headers: Mapping[str, str], *, webhook_secret: str, client_secret: str,
                         external_id_field: str, resolved_statuses: tuple[str, ...],
                         correlation_id: str) -> WorkMessage | None:
    """Verify, then parse a Jira delivery. ``headers`` have lower-case names (API Gateway delivers them so).

    ``X-Hub-Signature`` (admin webhook) is checked when present, else the dynamic webhook's bearer JWT."""
    if len(raw_body) > MAX_BODY_BYTES:
        raise Rejected(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if headers.get("x-hub-signature") is not None or not headers.get("authorization"):
        verify_hub_signature(webhook_secret, raw_body, headers.get("x-hub-signature"))
    else:
        verify_dynamic_webhook_jwt(client_secret, headers.get("authorization"))
    payload = parse_json_object(raw_body)
    return jira_resolution(payload, delivery_id=delivery_id(headers, raw_body), external_id_field=external_id_field,
                           resolved_statuses=resolved_statuses, correlation_id=correlation_id)


def accept_push(raw_body: bytes, headers: Mapping[str, str], *, push_secret: str, header_name: str,
                correlation_id: str) -> tuple[str, list[WorkMessage]]:
    """Check the shared-secret header in constant time, then parse; returns the delivery key and the messages.

    The key is the inquiry and the transaction id together (``<Query>:<Id>``): one data transaction notifies each
    inquiry it touches with the same ``Id``, and each of those notifications is a delivery of its own."""
    if len(raw_body) > MAX_BODY_BYTES:
        raise Rejected(413, f"body larger than {MAX_BODY_BYTES} bytes")
    if not push_secret:
        raise Rejected(401, "no push secret is configured, so no push notification can be trusted")
    presented = headers.get(header_name.lower())
    if not presented or not hmac.compare_digest(presented.encode(), push_secret.encode()):
        raise Rejected(401, f"missing or wrong {header_name} header")
    payload = parse_json_object(raw_body)
    messages = push_changes(payload, correlation_id=correlation_id)
    return f"{str(payload.get('Query') or '').strip()}:{payload['Id']}", messages
