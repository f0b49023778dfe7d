"""WebhookFunction: verifies inbound deliveries and queues the work they imply; it never calls Jira or Acumatica.

``POST /jira/webhook``: Jira issue updates (``X-Hub-Signature`` or a dynamic webhook's JWT).
``POST /acumatica/push``: Acumatica push notifications (shared-secret header).
Answers: 202 queued, 200 ignored, 401 unauthenticated, 400 malformed, 413 too large, 409 the same delivery is
being queued by a concurrent invocation (Jira retries 409). A rejected request leaves no
trace in the queue or the table. Each delivery is queued once (Powertools idempotency on its delivery id), since
Jira and Acumatica both retry and SQS FIFO only deduplicates for five minutes.

Routing is a lookup of the HTTP API's ``routeKey``: API Gateway only invokes the function for the two routes the
template declares, and Powertools' event handler (its package imports every resolver, asyncio among them) would add
about a quarter of ``import boto3`` to every cold start for that lookup.
"""

from __future__ import annotations

import base64
import json

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from connector.errors import DeliveryInProgress, Rejected
from connector.model import WorkMessage
from connector.telemetry import capture_lambda_handler, with_core_logs
from connector.webhooks import accept_jira_delivery, accept_push, delivery_id
from connector.wiring import Wiring

logger = with_core_logs(Logger())
metrics = Metrics()
wiring = Wiring()


def _response(status: int, body: dict) -> dict:
    """A payload format 2.0 response with a JSON body."""
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body),
            "isBase64Encoded": False}


def _request(event: dict) -> tuple[bytes, dict[str, str]]:
    """The body's exact bytes (signatures cover bytes, and a binary body must reach the 400, not a decode error)."""
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")
    return raw, {name.lower(): value for name, value in (event.get("headers") or {}).items()}


def _request_id(event: dict) -> str:
    return (event.get("requestContext") or {}).get("requestId", "")


def _queued(kind: str, delivery: str, messages: list[WorkMessage]) -> dict:
    if not messages:
        metrics.add_metric(name=f"{kind}Ignored", unit=MetricUnit.Count, value=1)
        return _response(200, {"status": "ignored"})
    result = wiring.enqueue_delivery(delivery, messages)
    metrics.add_metric(name=f"{kind}Queued", unit=MetricUnit.Count, value=len(messages))
    return _response(202, {"status": "queued", **result})


def jira_webhook(event: dict) -> dict:
    raw, headers = _request(event)
    secrets = wiring.webhook_secrets()
    message = accept_jira_delivery(
        raw, headers, webhook_secret=secrets["webhook_secret"], client_secret=secrets["client_secret"],
        external_id_field=wiring.settings.jira_external_id_field,
        resolved_statuses=wiring.settings.jira_resolved_statuses,
        correlation_id=_request_id(event),
    )
    return _queued("Resolution", delivery_id(headers, raw), [message] if message else [])


def acumatica_push(event: dict) -> dict:
    raw, headers = _request(event)
    notification_id, messages = accept_push(
        raw, headers, push_secret=wiring.webhook_secrets()["push_secret"],
        header_name=wiring.settings.push_secret_header, correlation_id=_request_id(event),
    )
    return _queued("Push", f"push:{notification_id}", messages)


ROUTES = {"POST /jira/webhook": jira_webhook, "POST /acumatica/push": acumatica_push}


def rejected(error: Rejected) -> dict:
    logger.warning("request rejected", extra={"status": error.status, "reason": str(error)})
    metrics.add_metric(name=f"Rejected{error.status}", unit=MetricUnit.Count, value=1)
    return _response(error.status, {"message": str(error)})


def in_progress(error: DeliveryInProgress) -> dict:
    """The same delivery is being queued right now by another invocation: 409 makes Jira retry it later."""
    return _response(409, {"message": "this delivery is being processed"})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@capture_lambda_handler
def handler(event: dict, context) -> dict:
    wiring.delivery_idempotency.register_lambda_context(context)
    route = ROUTES.get(event.get("routeKey", ""))
    if route is None:
        return _response(404, {"message": "Not found"})
    try:
        return route(event)
    except Rejected as error:
        return rejected(error)
    except DeliveryInProgress as error:
        return in_progress(error)
