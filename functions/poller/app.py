"""PollerFunction: on the PollSchedule, queue every Acumatica document whose exception state changed."""

from __future__ import annotations

from datetime import datetime, timezone

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from connector.pollnow import requested_entities
from connector.sync import run_poll
from connector.telemetry import capture_lambda_handler, with_core_logs
from connector.wiring import Wiring

logger = with_core_logs(Logger())
metrics = Metrics()
wiring = Wiring()


class PollIncomplete(Exception):
    """Some entity could not be polled; raised so the invocation counts as an error and the alarm sees it."""


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@capture_lambda_handler
def handler(event: dict, context) -> dict:
    logger.append_keys(correlation_id=context.aws_request_id, job=(event or {}).get("job", "poll"))
    wiring.gates.bind(lambda: context.get_remaining_time_in_millis() / 1000)
    settings = wiring.refresh_tables().settings  # the tables this run classifies and triages with
    reports, failures = run_poll(
        requested_entities(event, settings.document_types), documents=wiring.acumatica, store=wiring.store,
        queue=wiring.queue,
        options=wiring.poll_options, now=lambda: datetime.now(timezone.utc),
        seconds_left=lambda: context.get_remaining_time_in_millis() / 1000, correlation_id=context.aws_request_id,
        triage=settings.triage, owner_map=settings.owner_map,
    )
    for name, value in wiring.request_metrics().items():  # Acumatica requests and 429s, token grants
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for report in reports:
        metrics.add_metric(name="DocumentsSeen", unit=MetricUnit.Count, value=report.seen)
        metrics.add_metric(name="DocumentsQueued", unit=MetricUnit.Count, value=report.enqueued)
        metrics.add_metric(name="ClockRewinds", unit=MetricUnit.Count, value=report.rewinds)
        metrics.add_metric(name="ClockRewindSeconds", unit=MetricUnit.Seconds, value=report.rewound_seconds)
        logger.info("polled", extra={"report": vars(report)})
    if failures:
        metrics.add_metric(name="PollFailures", unit=MetricUnit.Count, value=len(failures))
        raise PollIncomplete(f"poll incomplete: {failures}")
    # A run that stopped early to resume next tick still succeeded; the "nothing polled" alarm counts these.
    metrics.add_metric(name="PollSucceeded", unit=MetricUnit.Count, value=1)
    return {"reports": [vars(r) for r in reports]}
