"""MaintenanceFunction: on the MaintenanceSchedule, refresh the Jira webhook and check tokens and configuration."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from connector.maintenance import run_maintenance
from connector.telemetry import capture_lambda_handler
from connector.wiring import Wiring

logger = Logger()
metrics = Metrics()
wiring = Wiring()


class MaintenanceFailed(Exception):
    """A health check failed; raised so the invocation counts as an error and the alarm sees it."""


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@capture_lambda_handler
def handler(event: dict, context) -> dict:
    report = run_maintenance(wiring.settings, acumatica=wiring.acumatica, jira=wiring.jira,
                             acumatica_tokens=wiring.acumatica_tokens, jira_tokens=wiring.jira_tokens,
                             jira_secret=wiring.jira_secret, dead_letters=wiring.dead_letter_count)
    logger.info("maintenance", extra={"checks": report.checks, "failures": report.failures})
    metrics.add_metric(name="MaintenanceFailures", unit=MetricUnit.Count, value=len(report.failures))
    if report.failures:
        raise MaintenanceFailed(f"maintenance checks failed: {sorted(report.failures)}")
    return {"checks": report.checks}
