"""The worker sorts failures: permanent ones to the DLQ at once with their reason, long waits put back for at least
that long, every failed attempt audited, records not started without the time to finish them, and a batch that
failed entirely reported as item failures rather than as a Lambda error (which would fire the error alarm).

SQS is moto's (real visibility and FIFO semantics), the store is the moto table from template.yaml.
"""

from __future__ import annotations

import json
import time

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector import timings
from connector.errors import AuthenticationError, RetryLater, SessionBusy, TransientError, ValidationError
from connector.model import WorkMessage
from connector.worker import OutOfTime, Received, WorkRunner, visibility_for
from connector_local.runtime import LambdaContext, load_handler
from tests.conftest import ROOT

EXTERNAL_ID = "Bill:Bill:000123"


@pytest.fixture
def queues(store):
    sqs = boto3.client("sqs", region_name="us-east-1")
    common = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    dlq = sqs.create_queue(QueueName="dlq.fifo", Attributes=common)["QueueUrl"]
    work = sqs.create_queue(QueueName="work.fifo", Attributes={**common, "VisibilityTimeout": "1"})["QueueUrl"]
    return sqs, work, dlq


def message(kind="sync") -> WorkMessage:
    return WorkMessage(kind=kind, external_id=EXTERNAL_ID, dedupe_id="d1", correlation_id="corr-7")


def receive_one(sqs, url, body: str | None = None) -> Received:
    if body is not None:
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=EXTERNAL_ID, MessageDeduplicationId="x")
    (raw,) = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["All"])["Messages"]
    return Received(raw["MessageId"], raw["ReceiptHandle"], raw["Body"], raw["Attributes"]["MessageGroupId"],
                    int(raw["Attributes"]["ApproximateReceiveCount"]))


def runner(store, queues, perform) -> WorkRunner:
    sqs, work, dlq = queues
    return WorkRunner(perform=perform, store=store, sqs=sqs, queue_url=work, dead_letter_url=dlq)


def failing(exc):
    def perform(_message, _attempt):
        raise exc

    return perform


@pytest.mark.parametrize("error", [AuthenticationError("Jira GET /issue answered 403 (scopes)"),
                                   ValidationError("Jira POST /issue answered 400: summary: too long", {})])
def test_a_permanent_error_goes_to_the_dlq_at_once_with_its_reason(store, queues, error):
    sqs, work, dlq = queues
    record = receive_one(sqs, work, message().to_json())
    result = runner(store, queues, failing(error)).run(record)
    assert result.outcome == "dead-lettered" and result.error == type(error).__name__
    (dead,) = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"],
                                  MessageSystemAttributeNames=["All"])["Messages"]
    assert dead["Body"] == record.body and dead["Attributes"]["MessageGroupId"] == EXTERNAL_ID
    assert str(error) in dead["MessageAttributes"]["FailureReason"]["StringValue"]
    (audit,) = [a for a in store.audit_trail(message().key) if a["event"] == "attempt"]
    assert audit["outcome"] == "dead-lettered" and str(error) in audit["reason"]
    assert audit["correlation_id"] == "corr-7" and audit["details"]["attempt"] == 1


def test_a_body_that_is_not_a_work_message_goes_to_the_dlq_at_once(store, queues):
    sqs, work, dlq = queues
    record = receive_one(sqs, work, '{"kind": "sync"}')
    assert runner(store, queues, failing(AssertionError("not called"))).run(record).outcome == "dead-lettered"
    assert len(sqs.receive_message(QueueUrl=dlq)["Messages"]) == 1


def test_a_transient_failure_is_audited_and_raised_for_sqs_to_bring_back(store, queues):
    sqs, work, _ = queues
    record = receive_one(sqs, work, message().to_json())
    with pytest.raises(TransientError):
        runner(store, queues, failing(TransientError("Jira POST /search/jql answered 503"))).run(record)
    (audit,) = [a for a in store.audit_trail(message().key) if a["event"] == "attempt"]
    assert audit["outcome"] == "failed" and "503" in audit["reason"] and audit["details"]["error"] == "TransientError"


def test_a_wait_longer_than_the_visibility_puts_the_record_back_for_at_least_that_long(store, queues):
    sqs, work, _ = queues
    record = receive_one(sqs, work, message().to_json())
    with pytest.raises(RetryLater):
        runner(store, queues, failing(RetryLater("api.atlassian.com asked to wait 1847 s", 1847.0))).run(record)
    time.sleep(1.2)  # the queue's own visibility (1 s) has passed: only the extension keeps it away
    assert sqs.receive_message(QueueUrl=work).get("Messages", []) == []


def test_a_short_wait_leaves_the_default_visibility_alone(store, queues):
    sqs, work, _ = queues
    record = receive_one(sqs, work, message().to_json())
    with pytest.raises(TransientError):
        runner(store, queues, failing(TransientError("429", retry_after=5.0))).run(record)
    time.sleep(1.2)
    assert len(sqs.receive_message(QueueUrl=work)["Messages"]) == 1


@given(st.one_of(st.none(), st.floats(min_value=0, max_value=10**7, allow_nan=False)))
def test_visibility_is_never_shorter_than_the_wait_and_stays_within_sqs_limits(wait):
    visibility = visibility_for(wait)
    if visibility is None:  # the queue's own visibility, less one worker timeout already spent, covers it
        assert wait is None or wait <= timings.VISIBILITY_TIMEOUT_SECONDS - timings.WORKER_TIMEOUT_SECONDS
    else:
        assert visibility <= timings.LONGEST_VISIBILITY_SECONDS
        assert visibility >= wait or visibility == timings.LONGEST_VISIBILITY_SECONDS


def test_no_record_is_started_without_the_time_to_finish_it(store, queues):
    sqs, work, _ = queues
    record = receive_one(sqs, work, message().to_json())
    calls = []
    work_runner = runner(store, queues, lambda m, attempt: calls.append(m) or "created")
    work_runner.begin(lambda: 12.0)
    with pytest.raises(OutOfTime):
        work_runner.run(record)
    assert calls == []
    work_runner.begin(lambda: 100.0)
    assert work_runner.run(record).outcome == "created"


def test_the_slowest_record_so_far_is_kept_in_reserve(store, queues):
    sqs, work, _ = queues
    record = receive_one(sqs, work, message().to_json())
    ticks = iter([0.0, 70.0, 100.0, 100.0])
    work_runner = WorkRunner(perform=lambda m, attempt: "created", store=store, sqs=sqs, queue_url=work,
                             dead_letter_url=queues[2], clock=lambda: next(ticks))
    work_runner.begin(lambda: 60.0)
    assert work_runner.run(record).outcome == "created"  # took 70 s
    with pytest.raises(OutOfTime):  # 60 s left cannot cover another 70 s record
        work_runner.run(record)


@pytest.mark.filterwarnings("ignore:No application metrics")  # every record failed: nothing to count
def test_a_batch_whose_records_all_failed_is_item_failures_not_a_lambda_error(monkeypatch):
    handler = load_handler(ROOT / "functions" / "worker" / "app.py")
    module = __import__(handler.__module__)

    class Failing:
        def run(self, received):
            raise TransientError("Acumatica answered 503")

    class StubWiring:
        work_runner = Failing()

        def begin_invocation(self, seconds_left):
            assert seconds_left() > 0

        def request_metrics(self):
            return {"AcumaticaRequests": 0}

        def take_undelivered(self):
            return 0

    monkeypatch.setattr(module, "wiring", StubWiring())
    event = json.loads((ROOT / "events" / "worker-sqs-batch.json").read_text())
    context = LambdaContext(function_name="WorkerFunction", memory_limit_in_mb=512, timeout_seconds=120)
    response = handler(event, context)
    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(
        r["messageId"] for r in event["Records"])


def test_a_busy_acumatica_session_puts_the_work_back_as_new_without_spending_an_attempt(store, queues):
    sqs, work, dlq = queues
    carried = WorkMessage(kind="resolve", external_id=EXTERNAL_ID, dedupe_id="d1", correlation_id="corr-7",
                          document={"key": EXTERNAL_ID})
    record = receive_one(sqs, work, carried.to_json())
    result = runner(store, queues, failing(SessionBusy("an action runs in the Acumatica session"))).run(record)

    assert result.outcome == "deferred"  # processed: this copy is deleted and nothing counts against the work
    sqs.delete_message(QueueUrl=work, ReceiptHandle=record.receipt_handle)
    again = receive_one(sqs, work)
    assert again.receive_count == 1 and again.message_id != record.message_id
    deferred = WorkMessage.from_json(again.body)
    assert (deferred.deferrals, deferred.document, deferred.dedupe_id) == (1, None, "d1")
    assert sqs.receive_message(QueueUrl=dlq).get("Messages") is None
    assert [r["outcome"] for r in store.audit_trail(carried.key)] == ["deferred"]


def test_a_session_busy_for_too_long_fails_the_record_like_any_transient_error(store, queues):
    sqs, work, _ = queues
    tired = WorkMessage(kind="resolve", external_id=EXTERNAL_ID, dedupe_id="d1", correlation_id="corr-7",
                        deferrals=timings.MAX_SESSION_DEFERRALS)
    record = receive_one(sqs, work, tired.to_json())
    with pytest.raises(SessionBusy):
        runner(store, queues, failing(SessionBusy("still busy"))).run(record)
