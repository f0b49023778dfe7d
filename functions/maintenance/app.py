"""MaintenanceFunction: on the MaintenanceSchedule (``{"job": "maintenance"}``), refresh the Jira webhook, check
tokens and configuration, keep the webhook function's verification material in step, and look up the open issues'
documents in Acumatica to notice the deleted ones; every ResolutionSweepMinutes (``{"job": "sweep"}``), sweep Jira
for resolutions whose delivery was lost."""

from __future__ import annotations

from datetime import datetime, timezone

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from connector.deletions import check_deleted
from connector.maintenance import copy_verification_material, run_maintenance, sweep_resolutions
from connector.telemetry import capture_lambda_handler, with_core_logs
from connector.wiring import Wiring

logger = with_core_logs(Logger())
metrics = Metrics()
wiring = Wiring()


class MaintenanceFailed(Exception):
    """A health check failed; raised so the invocation counts as an error and the alarm sees it."""


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@capture_lambda_handler
def handler(event: dict, context) -> dict:
    if (event or {}).get("job") == "sweep":  # its own, frequent schedule: one Jira search, nothing else
        swept = sweep_resolutions(wiring.settings, jira=wiring.jira, store=wiring.store, queue=wiring.queue,
                                  now=datetime.now(timezone.utc), correlation_id=context.aws_request_id)
        logger.info("resolution sweep", extra={"swept": swept})
        for name, value in wiring.request_metrics().items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return {"checks": {"resolution_sweep": swept}}
    report = run_maintenance(
        wiring.settings, acumatica=wiring.acumatica, jira=wiring.jira, acumatica_tokens=wiring.acumatica_tokens,
        jira_tokens=wiring.jira_tokens, jira_secret=wiring.jira_secret, dead_letters=wiring.dead_letter_count,
        verification=lambda: copy_verification_material(wiring.jira_secret, wiring.acumatica_secret,
                                                        wiring.webhook_secret),
        deletions=lambda: check_deleted(wiring.settings.document_types, documents=wiring.acumatica,
                                        store=wiring.store, queue=wiring.queue, now=datetime.now(timezone.utc),
                                        correlation_id=context.aws_request_id,
                                        seconds_left=lambda: context.get_remaining_time_in_millis() / 1000))
    for name, value in wiring.request_metrics().items():  # Acumatica and Jira requests and 429s, token grants
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    logger.info("maintenance", extra={"checks": report.checks, "failures": report.failures})
    metrics.add_metric(name="MaintenanceFailures", unit=MetricUnit.Count, value=len(report.failures))
    if report.failures:
        raise MaintenanceFailed(f"maintenance checks failed: {sorted(report.failures)}")
    return {"checks": report.checks}
