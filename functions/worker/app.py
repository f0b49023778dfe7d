"""WorkerFunction: performs queued work (``sync`` and ``resolve``), one document at a time per FIFO group.

A failed record is reported as a batch item failure (with the rest of its message group, so order is kept); SQS
brings it back, and after MaxReceiveCount attempts moves it, body intact, to the dead-letter queue for replay.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from connector.errors import ReconnectNeeded
from connector.model import WorkMessage
from connector.resolve import resolve_document
from connector.sync import sync_document
from connector.telemetry import capture_lambda_handler, capture_method
from connector.wiring import Wiring

logger = Logger()
metrics = Metrics()
wiring = Wiring()
processor = SqsFifoPartialProcessor(skip_group_on_error=True)


@capture_method
def record_handler(record: SQSRecord) -> str:
    message = WorkMessage.from_json(record.body)
    logger.append_keys(correlation_id=message.correlation_id, external_id=message.external_id, kind=message.kind)
    try:
        if message.kind == "sync":
            outcome = sync_document(message, wiring.sync_context,
                                    attempt=int(record.attributes.approximate_receive_count))
        else:
            outcome = resolve_document(message, wiring.resolve_context)
    except ReconnectNeeded:
        metrics.add_metric(name="ReconnectNeeded", unit=MetricUnit.Count, value=1)
        logger.exception("re-connect needed; the message will reach the DLQ after its retries")
        raise
    except Exception:
        logger.exception("work failed; the message will be retried")
        raise
    metrics.add_metric(name=f"{message.kind.capitalize()}{outcome.title().replace('-', '')}",
                       unit=MetricUnit.Count, value=1)
    logger.info("work done", extra={"outcome": outcome, "receive_count": record.attributes.approximate_receive_count})
    return outcome


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@capture_lambda_handler
def handler(event: dict, context) -> dict:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
