"""WebhookFunction: verifies inbound deliveries and queues the work they imply; it never calls Jira or Acumatica.

``POST /jira/webhook`` (Jira issue updates) and ``POST /acumatica/push`` (Acumatica push notifications): what each
answers, and why, is ``connector.inbound``; this handler wires it to Powertools' logger and metrics. A refusal's
reason is logged here, never told to the caller.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from connector import inbound
from connector.telemetry import capture_lambda_handler, with_core_logs
from connector.wiring import Wiring

logger = with_core_logs(Logger())
metrics = Metrics()
wiring = Wiring()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@capture_lambda_handler
def handler(event: dict, context) -> dict:
    wiring.delivery_idempotency.register_lambda_context(context)
    answer = inbound.answer(event, wiring)
    if answer.log and answer.status >= 400:
        logger.warning(answer.log, extra=answer.details)
    elif answer.log:
        logger.info(answer.log)
    if answer.metric != "NotFound":
        metrics.add_metric(name=answer.metric, unit=MetricUnit.Count, value=answer.count)
    return answer.response()
