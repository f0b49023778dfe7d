"""WebhookFunction: verifies inbound deliveries and queues the work they imply; it never calls Jira or Acumatica.

``POST /jira/webhook``: Jira issue updates (``X-Hub-Signature`` or a dynamic webhook's JWT).
``POST /acumatica/push``: Acumatica push notifications (shared-secret header).
Answers: 202 queued, 200 ignored, 401 unauthenticated, 400 malformed, 413 too large, 409 the same delivery is
being queued by a concurrent invocation (Jira retries 409). A rejected request leaves no
trace in the queue or the table. Each delivery is queued once (Powertools idempotency on its delivery id), since
Jira and Acumatica both retry and SQS FIFO only deduplicates for five minutes.
"""

from __future__ import annotations

import base64

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from connector.errors import Rejected
from connector.model import WorkMessage
from connector.webhooks import accept_jira_delivery, accept_push, delivery_id
from connector.wiring import Wiring

logger = Logger()
metrics = Metrics()
tracer = Tracer()
app = APIGatewayHttpResolver()
wiring = Wiring()


def _request() -> tuple[bytes, dict[str, str]]:
    """The body's exact bytes (signatures cover bytes, and a binary body must reach the 400, not a decode error)."""
    event = app.current_event
    body = event.body or ""
    raw = base64.b64decode(body) if event.is_base64_encoded else body.encode("utf-8")
    return raw, {name.lower(): value for name, value in (event.headers or {}).items()}


def _queued(kind: str, delivery: str, messages: list[WorkMessage]) -> Response:
    if not messages:
        metrics.add_metric(name=f"{kind}Ignored", unit=MetricUnit.Count, value=1)
        return Response(200, content_types.APPLICATION_JSON, {"status": "ignored"})
    result = wiring.enqueue_delivery(delivery, messages)
    metrics.add_metric(name=f"{kind}Queued", unit=MetricUnit.Count, value=len(messages))
    return Response(202, content_types.APPLICATION_JSON, {"status": "queued", **result})


@app.post("/jira/webhook")
def jira_webhook() -> Response:
    raw, headers = _request()
    secrets = wiring.webhook_secrets()
    message = accept_jira_delivery(
        raw, headers, webhook_secret=secrets["webhook_secret"], client_secret=secrets["client_secret"],
        external_id_field=wiring.settings.jira_external_id_field,
        resolved_statuses=wiring.settings.jira_resolved_statuses,
        correlation_id=app.current_event.request_context.request_id,
    )
    return _queued("Resolution", delivery_id(headers, raw), [message] if message else [])


@app.post("/acumatica/push")
def acumatica_push() -> Response:
    raw, headers = _request()
    notification_id, messages = accept_push(
        raw, headers, push_secret=wiring.webhook_secrets()["push_secret"],
        header_name=wiring.settings.push_secret_header, correlation_id=app.current_event.request_context.request_id,
    )
    return _queued("Push", f"push:{notification_id}", messages)


@app.exception_handler(Rejected)
def rejected(error: Rejected) -> Response:
    logger.warning("request rejected", extra={"status": error.status, "reason": str(error)})
    metrics.add_metric(name=f"Rejected{error.status}", unit=MetricUnit.Count, value=1)
    return Response(error.status, content_types.APPLICATION_JSON, {"message": str(error)})


@app.exception_handler(IdempotencyAlreadyInProgressError)
def in_progress(error: IdempotencyAlreadyInProgressError) -> Response:
    """The same delivery is being queued right now by another invocation: 409 makes Jira retry it later."""
    return Response(409, content_types.APPLICATION_JSON, {"message": "this delivery is being processed"})


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict, context) -> dict:
    wiring.delivery_idempotency.register_lambda_context(context)
    return app.resolve(event, context)
