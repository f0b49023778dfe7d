"""WorkerFunction: performs queued work (``sync`` and ``resolve``), one document at a time per FIFO group.

What happens to a failed record is decided by ``connector.worker.WorkRunner``: work that cannot succeed goes to the
dead-letter queue at once with its reason; other failures are reported as batch item failures (with the rest of
their message group, so order is kept) and come back, after any ``Retry-After`` they asked for. A batch whose
records all failed is reported the same way, not raised: it is the work failing, not the function.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from connector.errors import ReconnectNeeded
from connector.telemetry import capture_lambda_handler, capture_method, with_core_logs
from connector.worker import Received
from connector.wiring import Wiring

logger = with_core_logs(Logger())
metrics = Metrics()
wiring = Wiring()
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
processor.raise_on_entire_batch_failure = False


@capture_method
def record_handler(record: SQSRecord) -> str:
    received = Received.from_record(record)
    logger.append_keys(message_id=received.message_id)
    try:
        result = wiring.work_runner.run(received)
    except Exception:
        logger.exception("work failed; the message will be retried")
        raise
    if result.error == ReconnectNeeded.__name__:
        metrics.add_metric(name="ReconnectNeeded", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=result.metric, unit=MetricUnit.Count, value=1)
    logger.info("work done", extra={"outcome": result.outcome, "receive_count": received.receive_count})
    return result.outcome


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@capture_lambda_handler
def handler(event: dict, context) -> dict:
    wiring.begin_invocation(lambda: context.get_remaining_time_in_millis() / 1000)
    response = process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                        context=context)
    for name, value in wiring.request_metrics().items():  # Acumatica and Jira requests and 429s, token grants
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    undelivered = wiring.take_undelivered()
    if undelivered:  # resolutions the sweep found that no webhook delivery announced: the alarm watches this
        metrics.add_metric(name="UndeliveredResolutions", unit=MetricUnit.Count, value=undelivered)
    return response
