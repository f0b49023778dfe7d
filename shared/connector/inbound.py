"""The webhook function's two routes, from an API Gateway event to the answer; ``functions/webhook/app.py`` wires it.

``POST /jira/webhook``: Jira issue updates (``X-Hub-Signature`` or a dynamic webhook's JWT).
``POST /acumatica/push``: Acumatica push notifications (shared-secret header).
Answers: 202 queued, 200 ignored, 401 unauthenticated, 400 malformed, 413 too large, 409 the same delivery is
being queued by a concurrent invocation (Jira retries 409). A rejected request leaves no trace in the queue or the
table. A 401 says only ``unauthorized``: which check failed (a header's name, an expired token) helps whoever probes
the endpoint, so the reason goes to the function's log, never to the caller. Each delivery is queued once (Powertools
idempotency on its delivery key, ``wiring.enqueue_delivery``), since Jira and Acumatica both retry and SQS FIFO only
deduplicates for five minutes.

Routing is a lookup of the HTTP API's ``routeKey``: API Gateway only invokes the function for the two routes the
template declares, and Powertools' event handler (its package imports every resolver) would add about a quarter of
``import boto3`` to every cold start for that lookup.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import DeliveryInProgress, Rejected
from .model import WorkMessage
from .webhooks import accept_jira_delivery, accept_push

UNAUTHORIZED = "unauthorized"


@dataclass(frozen=True)
class Answer:
    """What the function answers, the metric it counts, and what it logs (``log``: why, for the operator only)."""

    status: int
    body: dict[str, Any]
    metric: str
    count: int = 1
    log: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def response(self) -> dict[str, Any]:
        """A payload format 2.0 response with a JSON body."""
        return {"statusCode": self.status, "headers": {"Content-Type": "application/json"},
                "body": json.dumps(self.body), "isBase64Encoded": False}


def request_of(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """The body's exact bytes (signatures cover bytes, and a binary body must reach the 400, not a decode error)."""
    body = event.get("body") or ""
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode("utf-8")
    except (binascii.Error, ValueError):
        raise Rejected(400, "the body is not valid base64") from None
    return raw, {str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()}


def _request_id(event: dict[str, Any]) -> str:
    return str((event.get("requestContext") or {}).get("requestId", ""))


def _source_ip(event: dict[str, Any]) -> str:
    return str(((event.get("requestContext") or {}).get("http") or {}).get("sourceIp", ""))


def _queued(wiring: Any, kind: str, delivery: str, messages: list[WorkMessage]) -> Answer:
    if not messages:
        return Answer(200, {"status": "ignored"}, f"{kind}Ignored",
                      log="delivery ignored: nothing in it is a change of a configured document")
    result = wiring.enqueue_delivery(delivery, messages)
    polls = sorted({entity for m in messages if m.kind == "poll" for entity in m.entities or ()})
    answer = {"status": "queued", **result, **({"poll": polls} if polls else {})}
    return Answer(202, answer, f"{kind}Queued", count=len(messages))


def jira_webhook(event: dict[str, Any], wiring: Any, now: float) -> Answer:
    raw, headers = request_of(event)
    secrets = wiring.webhook_secrets()
    settings = wiring.settings
    delivery, message = accept_jira_delivery(
        raw, headers, webhook_secret=secrets["webhook_secret"], client_secret=secrets["client_secret"],
        cloud_id=secrets["cloud_id"], external_id_field=settings.jira_external_id_field,
        resolved_statuses=settings.jira_resolved_statuses, correlation_id=_request_id(event),
        entities=settings.document_types)
    return _queued(wiring, "Resolution", delivery, [message] if message else [])


def acumatica_push(event: dict[str, Any], wiring: Any, now: float) -> Answer:
    raw, headers = request_of(event)
    delivery, messages = accept_push(
        raw, headers, push_secret=wiring.webhook_secrets()["push_secret"],
        header_name=wiring.settings.push_secret_header, correlation_id=_request_id(event),
        entities=wiring.settings.document_types, now=now)
    return _queued(wiring, "Push", delivery, messages)


ROUTES: dict[str, Callable[[dict[str, Any], Any, float], Answer]] = {
    "POST /jira/webhook": jira_webhook, "POST /acumatica/push": acumatica_push}


def answer(event: dict[str, Any], wiring: Any, clock: Callable[[], float] = time.time) -> Answer:
    """The answer to one request: routed, verified, parsed, queued once; every refusal a 4xx with its reason logged."""
    route = ROUTES.get(str(event.get("routeKey", "")))
    if route is None:
        return Answer(404, {"message": "Not found"}, "NotFound")
    try:
        return route(event, wiring, clock())
    except Rejected as error:
        public = UNAUTHORIZED if error.status == 401 else str(error)
        return Answer(error.status, {"message": public}, f"Rejected{error.status}", log=f"request rejected: {error}",
                      details={"status": error.status, "source_ip": _source_ip(event)})
    except DeliveryInProgress:
        return Answer(409, {"message": "this delivery is being processed"}, "DeliveryInProgress")
