"""The sandbox's webhooks: dynamic registration (30-day expiry, JQL filters), admin webhooks, and deliveries with
retries."""

from __future__ import annotations

import json
import re
import time
from typing import Any, Mapping

import jwt
import requests
from werkzeug.wrappers import Request, Response

from connector.signatures import sign_hub

from .common import (
    CONNECTOR_ACCOUNT, Delivery, HttpError, Issue, RETRIED_DELIVERY_STATUSES, WEBHOOK_EVENTS, WEBHOOK_LIFETIME,
    _json_body, _json_response
)


class WebhooksMixin:
    """``/rest/api/3/webhook`` and the delivery of events; state lives on the ``JiraSandbox`` that mixes this in."""

    # REST: webhooks ---------------------------------------------------------------------------------------------------

    def _list_webhooks(self, request: Request) -> Response:
        start = int(request.args.get("startAt", 0))
        limit = int(request.args.get("maxResults", 100))
        hooks = [self._webhook_json(hook) for hook in sorted(self._webhooks.values(), key=lambda h: h["id"])]
        page = hooks[start: start + limit]
        return _json_response(200, {"startAt": start, "maxResults": limit, "total": len(hooks),
                                    "isLast": start + limit >= len(hooks), "values": page})

    def _register_webhooks(self, request: Request) -> Response:
        body = _json_body(request)
        url, entries = body.get("url"), body.get("webhooks")
        if not isinstance(url, str) or not re.match(r"https?://", url) or not isinstance(entries, list):
            raise HttpError(400, ["'url' (an absolute URL) and 'webhooks' (a list) are required."])
        others = {hook["url"] for hook in self._webhooks.values()} - {url}
        if others:
            raise HttpError(400, ["Only a single URL per app is allowed to be registered."])
        results = []
        for entry in entries:
            results.append(self._register_one(url, entry if isinstance(entry, dict) else {}))
        return _json_response(200, {"webhookRegistrationResult": results})

    def _register_one(self, url: str, entry: Mapping[str, Any]) -> dict[str, Any]:
        events = entry.get("events")
        if not isinstance(events, list) or not events or any(e not in WEBHOOK_EVENTS for e in events):
            return {"errors": [f"events must be a non-empty list of {', '.join(WEBHOOK_EVENTS)}"]}
        jql = entry.get("jqlFilter")
        if not isinstance(jql, str) or not jql.strip():
            return {"errors": ["The JQL filter is required."]}
        try:
            clause, _ = self._parse_jql(jql, for_search=False)
        except HttpError as error:
            return {"errors": list(error.body.get("errorMessages") or ["Invalid JQL filter."])}
        live = [hook for hook in self._webhooks.values() if hook["expires_at"] > self.now()]
        if len(live) >= self.max_dynamic_webhooks:
            return {"errors": [f"The app has reached the limit of {self.max_dynamic_webhooks} webhooks per user "
                               f"and site."]}
        hook_id = next(self._webhook_ids)
        self._webhooks[hook_id] = {
            "id": hook_id, "url": url, "events": list(events), "jqlFilter": jql, "clause": clause,
            "fieldIdsFilter": list(entry["fieldIdsFilter"]) if entry.get("fieldIdsFilter") else None,
            "expires_at": self.now() + WEBHOOK_LIFETIME.total_seconds(),
        }
        return {"createdWebhookId": hook_id}

    def _delete_webhooks(self, request: Request) -> Response:
        for hook_id in self._webhook_id_list(request):
            self._webhooks.pop(hook_id, None)
        return Response(status=202)

    def _refresh_webhooks(self, request: Request) -> Response:
        expires_at = self.now() + WEBHOOK_LIFETIME.total_seconds()
        for hook_id in self._webhook_id_list(request):
            hook = self._webhooks.get(hook_id)
            if hook is not None and hook["expires_at"] > self.now():  # expired webhooks cannot be revived
                hook["expires_at"] = expires_at
        return _json_response(200, {"expirationDate": int(expires_at * 1000)})

    def _webhook_id_list(self, request: Request) -> list[int]:
        ids = _json_body(request).get("webhookIds")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise HttpError(400, ["'webhookIds' must be a list of integers."])
        return ids

    def _webhook_json(self, hook: Mapping[str, Any]) -> dict[str, Any]:
        shown = {"id": hook["id"], "url": hook["url"], "events": list(hook["events"]), "jqlFilter": hook["jqlFilter"],
                 "expirationDate": int(hook["expires_at"] * 1000)}
        if hook["fieldIdsFilter"]:
            shown["fieldIdsFilter"] = list(hook["fieldIdsFilter"])
        return shown

    # webhook deliveries -----------------------------------------------------------------------------------------------

    def _plan_deliveries(self, issue: Issue, change: Mapping[str, Any]) -> list[Delivery]:
        planned: list[Delivery] = []
        moment = self.now()
        changed_fields = {item["fieldId"] for item in change["items"]}
        for hook in self._admin_webhooks:
            if "jira:issue_updated" in hook["events"] and (
                    hook["jql"] is None or self._evaluate(hook["jql"], issue, issue.fields, moment)):
                body = self._event_body(issue, change, ())
                planned.append(Delivery(str(next(self._delivery_ids)), hook["url"], body, "admin", hook["secret"]))
        matched: dict[str, list[int]] = {}
        for hook in sorted(self._webhooks.values(), key=lambda h: h["id"]):
            if (hook["expires_at"] > moment and "jira:issue_updated" in hook["events"]
                    and (not hook["fieldIdsFilter"] or changed_fields & set(hook["fieldIdsFilter"]))
                    and self._evaluate(hook["clause"], issue, issue.fields, moment)):
                matched.setdefault(hook["url"], []).append(hook["id"])
        for url, ids in matched.items():
            body = self._event_body(issue, change, tuple(ids))
            planned.append(Delivery(str(next(self._delivery_ids)), url, body, "dynamic", webhook_ids=tuple(ids)))
        return planned

    def _event_body(self, issue: Issue, change: Mapping[str, Any], matched_ids: tuple[int, ...]) -> bytes:
        payload: dict[str, Any] = {
            "timestamp": int(self.now() * 1000),
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
            "user": self._user_json(change["author"]["accountId"]),
            "issue": {"id": str(issue.id), "self": self._issue_url(issue), "key": issue.key,
                      "fields": self._render_fields(issue, issue.fields, None)},
            "changelog": {"id": change["id"], "items": change["items"]},
        }
        if matched_ids:
            payload["matchedWebhookIds"] = list(matched_ids)
        return json.dumps(payload).encode("utf-8")

    def _delivery_headers(self, delivery: Delivery, retry: int) -> dict[str, str]:
        headers = {"Content-Type": "application/json; charset=UTF-8", "User-Agent": "Atlassian Webhook HTTP Client",
                   "X-Atlassian-Webhook-Identifier": delivery.identifier, "X-Atlassian-Webhook-Flow": "Primary"}
        if retry:
            headers["X-Atlassian-Webhook-Retry"] = str(retry)
        if delivery.kind == "admin" and delivery.secret:
            headers["X-Hub-Signature"] = sign_hub(delivery.secret, delivery.body)
        elif delivery.kind == "dynamic":
            issued = int(time.time())  # the receiver's clock judges the JWT, not the sandbox clock
            claims = {"iss": self.client_id, "aud": self.client_id, "sub": CONNECTOR_ACCOUNT, "iat": issued,
                      "exp": issued + 180, "context": {"cloudId": self.cloud_id}}
            headers["Authorization"] = "Bearer " + jwt.encode(claims, self.client_secret, algorithm="HS256")
        return headers

    def _deliver(self, delivery: Delivery) -> list[dict[str, Any]]:
        """At-least-once: retry on 408/409/425/429/5xx or a failed connection; then ``duplicate_deliveries`` copies."""
        attempts = []
        while len(attempts) < self.delivery_attempts:
            attempts.append(self._send_once(delivery, len(attempts)))
            if not attempts[-1]["will_retry"]:
                break
            if self.delivery_retry_delay:
                time.sleep(self.delivery_retry_delay)
        if 200 <= attempts[-1].get("status", 0) < 300:
            for _ in range(self.duplicate_deliveries):
                attempts.append(self._send_once(delivery, len(attempts)))
        return attempts

    def _send_once(self, delivery: Delivery, retry: int) -> dict[str, Any]:
        record: dict[str, Any] = {"identifier": delivery.identifier, "url": delivery.url, "kind": delivery.kind,
                                  "attempt": retry + 1, "retry": retry, "webhook_ids": list(delivery.webhook_ids)}
        try:
            answer = requests.post(delivery.url, data=delivery.body, headers=self._delivery_headers(delivery, retry),
                                   timeout=(5, 20))
            record["status"] = answer.status_code
            record["will_retry"] = answer.status_code in RETRIED_DELIVERY_STATUSES or answer.status_code >= 500
        except requests.RequestException as exc:
            record["error"] = type(exc).__name__
            record["will_retry"] = True
        with self._lock:
            self._deliveries.append(record)
        return record
