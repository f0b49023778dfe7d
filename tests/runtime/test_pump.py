from __future__ import annotations

import base64
import hashlib
import threading
import time
from types import SimpleNamespace

import pytest
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from botocore.exceptions import ClientError

from connector.errors import RetryLater, TransientError
from connector.model import WorkMessage
from connector.worker import Received, WorkRunner

from connector_local.pump import QueuePump, failed_message_ids
from connector_local.runtime import LocalFunction

from . import REGION, make_fifo_queues, peek, send, sqs_client, start_moto


@pytest.fixture(scope="module")
def sqs():
    server, endpoint = start_moto()
    yield sqs_client(endpoint)
    server.stop()


class Recorder:
    """A worker stand-in: records each event and reports the bodies it was told to fail."""

    def __init__(self, fail_bodies=(), raise_error=False):
        self.fail_bodies = set(fail_bodies)
        self.raise_error = raise_error
        self.events = []

    def __call__(self, event, context):
        self.events.append(event)
        if self.raise_error:
            raise RuntimeError("worker crashed")
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]
                                      if r["body"] in self.fail_bodies]}

    @property
    def bodies(self):
        return [record["body"] for event in self.events for record in event["Records"]]


def pump_for(sqs, queue_url, handler, **kwargs):
    return QueuePump(sqs, queue_url, LocalFunction("WorkerFunction", handler, 30, 512), **kwargs)


def test_event_has_exactly_the_lambda_sqs_record_shape(sqs):
    work_url, _ = make_fifo_queues(sqs)
    message_id = send(sqs, work_url, '{"kind": "sync"}', "Bill:Bill:000001", dedupe="d-1",
                      MessageAttributes={"origin": {"DataType": "String", "StringValue": "poller"},
                                         "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}})
    recorder = Recorder()

    pump_for(sqs, work_url, recorder).drain()

    record = recorder.events[0]["Records"][0]
    assert set(record) == {"messageId", "receiptHandle", "body", "attributes", "messageAttributes",
                           "md5OfMessageAttributes", "md5OfBody", "eventSource", "eventSourceARN", "awsRegion"}
    assert record["messageId"] == message_id
    assert record["body"] == '{"kind": "sync"}'
    assert record["md5OfBody"] == hashlib.md5(b'{"kind": "sync"}').hexdigest()
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].startswith(f"arn:aws:sqs:{REGION}:") and record["eventSourceARN"].endswith(
        "-work.fifo")
    assert record["awsRegion"] == REGION
    attributes = record["attributes"]
    assert {"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp",
            "SequenceNumber", "MessageGroupId", "MessageDeduplicationId"} <= set(attributes)
    assert attributes["ApproximateReceiveCount"] == "1"
    assert attributes["MessageGroupId"] == "Bill:Bill:000001"
    assert attributes["MessageDeduplicationId"] == "d-1"
    assert all(isinstance(value, str) for value in attributes.values())
    assert record["messageAttributes"]["origin"] == {"stringValue": "poller", "stringListValues": [],
                                                    "binaryListValues": [], "dataType": "String"}
    assert record["messageAttributes"]["blob"]["binaryValue"] == base64.b64encode(b"\x00\x01").decode()


def test_reported_failure_reaches_the_dlq_after_max_receive_count_and_the_rest_is_deleted(sqs):
    work_url, dlq_url = make_fifo_queues(sqs, max_receive_count=2)
    for index, body in enumerate(["ok-1", "poison", "ok-2"]):
        send(sqs, work_url, body, f"group-{index}")
    recorder = Recorder(fail_bodies={"poison"})

    stats = pump_for(sqs, work_url, recorder).drain()

    assert recorder.bodies.count("poison") == 2
    assert sorted(b for b in recorder.bodies if b != "poison") == ["ok-1", "ok-2"]
    assert (stats.processed, stats.failed, stats.deleted) == (4, 2, 2)
    assert peek(sqs, work_url) == []
    dead = peek(sqs, dlq_url)
    assert [m["Body"] for m in dead] == ["poison"]
    assert dead[0]["Attributes"]["MessageGroupId"] == "group-1"


def test_fifo_messages_the_handler_reports_after_a_failure_in_their_group_are_kept_in_order(sqs):
    work_url, _ = make_fifo_queues(sqs, max_receive_count=5)
    for body, group in [("a1", "A"), ("a2", "A"), ("b1", "B")]:
        send(sqs, work_url, body, group)
    calls = []

    def stop_group_on_first_failure(event, context):
        calls.append([r["body"] for r in event["Records"]])
        failed_groups, failures = set(), []
        for record in event["Records"]:
            group = record["attributes"]["MessageGroupId"]
            if record["body"] == "a1" and len(calls) == 1 or group in failed_groups:
                failed_groups.add(group)
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    stats = pump_for(sqs, work_url, stop_group_on_first_failure).drain()

    assert calls[0] == ["a1", "a2", "b1"]
    assert calls[1] == ["a1", "a2"]
    assert (stats.invocations, stats.failed, stats.deleted) == (2, 2, 3)


def test_powertools_fifo_processor_through_the_pump_retries_the_failed_group_only(sqs):
    work_url, dlq_url = make_fifo_queues(sqs, max_receive_count=2)
    for body, group in [("a1", "A"), ("a2", "A"), ("b1", "B")]:
        send(sqs, work_url, body, group)
    handled = []

    def record_handler(record):
        if record.body == "a1":
            raise ValueError("a1 always fails")
        handled.append(record.body)

    def handler(event, context):
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                        context=context)

    pump_for(sqs, work_url, handler).drain()

    assert handled == ["b1"]
    assert sorted(m["Body"] for m in peek(sqs, dlq_url)) == ["a1", "a2"]


def test_raised_exception_returns_the_whole_batch(sqs):
    work_url, _ = make_fifo_queues(sqs, max_receive_count=5)
    send(sqs, work_url, "one", "A")
    send(sqs, work_url, "two", "B")

    stats = pump_for(sqs, work_url, Recorder(raise_error=True)).drain(max_batches=1)

    assert (stats.invocation_errors, stats.failed, stats.deleted) == (1, 2, 0)
    assert sorted(m["Body"] for m in peek(sqs, work_url)) == ["one", "two"]


@pytest.mark.parametrize("response", [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}])
def test_empty_or_missing_failure_list_deletes_the_whole_batch(sqs, response):
    work_url, _ = make_fifo_queues(sqs)
    send(sqs, work_url, "one", "A")
    send(sqs, work_url, "two", "B")

    stats = pump_for(sqs, work_url, lambda event, context: response).drain()

    assert (stats.invocations, stats.deleted, stats.failed) == (1, 2, 0)
    assert peek(sqs, work_url) == []


@pytest.mark.parametrize(
    "response",
    [
        {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"id": "wrong-key"}]},
        {"batchItemFailures": "all"},
        "done",
    ],
)
def test_invalid_batch_response_is_a_failure_of_the_whole_batch(response):
    assert failed_message_ids(response, {"m-1", "m-2"}) is None


def test_valid_failure_list_names_only_the_reported_ids():
    response = {"batchItemFailures": [{"itemIdentifier": "m-2"}]}

    assert failed_message_ids(response, {"m-1", "m-2"}) == {"m-2"}


def test_drain_without_until_empty_pumps_a_single_batch(sqs):
    work_url, _ = make_fifo_queues(sqs)
    for index in range(3):
        send(sqs, work_url, f"m{index}", f"g{index}")
    recorder = Recorder()

    stats = pump_for(sqs, work_url, recorder, batch_size=2).drain(until_empty=False)

    assert (stats.invocations, stats.deleted) == (1, 2)
    assert len(peek(sqs, work_url)) == 1


def test_batch_size_above_ten_is_refused(sqs):
    work_url, _ = make_fifo_queues(sqs)

    with pytest.raises(ValueError, match="batch_size"):
        pump_for(sqs, work_url, Recorder(), batch_size=11)


def test_run_forever_delivers_messages_until_stopped(sqs):
    work_url, _ = make_fifo_queues(sqs)
    delivered = threading.Event()

    def handler(event, context):
        delivered.set()

    pump = pump_for(sqs, work_url, handler)
    stop = threading.Event()
    thread = threading.Thread(target=pump.run_forever, args=(stop,), daemon=True)
    thread.start()
    send(sqs, work_url, "late arrival", "A")

    assert delivered.wait(5)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert pump.stats.deleted == 1


def worker_like(sqs, queue_url, dead_letter_url, outcomes):
    """A handler that runs each record through the real ``WorkRunner``: ``outcomes`` maps a body to what its work
    raises (``None``: it succeeds), so the worker itself decides on the DLQ and on ``ChangeMessageVisibility``."""

    def perform(message, attempt):
        error = outcomes[message.dedupe_id]
        if error is not None:
            raise error
        return "done"

    runner = WorkRunner(perform=perform, store=SimpleNamespace(audit=lambda *args, **kwargs: None), sqs=sqs,
                        queue_url=queue_url, dead_letter_url=dead_letter_url)
    received: list[str] = []

    def handler(event, context):
        failures = []
        for record in event["Records"]:
            received.append(WorkMessage.from_json(record["body"]).dedupe_id)
            try:
                runner.run(Received(message_id=record["messageId"], receipt_handle=record["receiptHandle"],
                                    body=record["body"], group_id=record["attributes"]["MessageGroupId"],
                                    receive_count=int(record["attributes"]["ApproximateReceiveCount"])))
            except Exception:  # noqa: BLE001 - reported to the pump, as the worker's processor does
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    return handler, received


def test_a_visibility_the_worker_set_after_a_long_retry_after_is_not_shortened(sqs):
    work_url, dlq_url = make_fifo_queues(sqs, max_receive_count=2)
    outcomes = {"throttled": RetryLater("Jira asked to wait 1847 s", 1847.0),
                "flaky": TransientError("Jira answered 503"), "fine": None}
    for group, dedupe in enumerate(outcomes):
        send(sqs, work_url, WorkMessage(kind="sync", external_id=f"Bill:Bill:00000{group}", dedupe_id=dedupe,
                                        correlation_id="c").to_json(), f"g{group}")
    handler, received = worker_like(sqs, work_url, dlq_url, outcomes)
    pump = pump_for(sqs, work_url, handler)

    first = pump.drain()
    pump.drain()
    pump.drain()

    # The throttled record waits out its Retry-After; the ordinary failure came back at once until it was spent.
    assert received.count("throttled") == 1 and received.count("flaky") == 2 and received.count("fine") == 1
    assert (first.failed, first.delayed, first.deleted) == (3, 1, 1)
    dead = [WorkMessage.from_json(m["Body"]).dedupe_id for m in peek(sqs, dlq_url)]
    assert dead == ["flaky"]
    assert peek(sqs, work_url) == []  # the throttled record is in the queue, invisible for its wait


def test_a_refused_or_zero_visibility_change_is_reset_like_any_failure(sqs):
    work_url, _ = make_fifo_queues(sqs, max_receive_count=3)
    send(sqs, work_url, "asks for nothing", "A")
    calls = []

    def handler(event, context):
        record = event["Records"][0]
        calls.append(record["receiptHandle"])
        if len(calls) == 1:  # zero is no wait to protect; a handle SQS refuses changes nothing
            sqs.change_message_visibility(QueueUrl=work_url, ReceiptHandle=record["receiptHandle"],
                                          VisibilityTimeout=0)
            with pytest.raises(ClientError):
                sqs.change_message_visibility(QueueUrl=work_url, ReceiptHandle="not-a-handle",
                                              VisibilityTimeout=600)
        return {"batchItemFailures": [{"itemIdentifier": record["messageId"]}] if len(calls) == 1 else []}

    stats = pump_for(sqs, work_url, handler).drain()

    assert len(calls) == 2 and stats.delayed == 0 and stats.deleted == 1


def test_concurrent_invocations_reach_the_maximum_and_never_share_a_group_or_an_environment(sqs):
    work_url, _ = make_fifo_queues(sqs)
    for n in range(12):
        send(sqs, work_url, f"{n % 4}:{n}", f"g{n % 4}")
    lock = threading.Lock()
    running_groups: list[str] = []
    seen: dict[str, list[int]] = {}
    overlaps = []
    environments = []

    def handler(event, context):
        groups = {r["attributes"]["MessageGroupId"] for r in event["Records"]}
        with lock:
            overlaps.extend(groups & set(running_groups))
            running_groups.extend(groups)
        time.sleep(0.15)
        with lock:
            for record in event["Records"]:
                group, n = record["body"].split(":")
                seen.setdefault(group, []).append(int(n))
            for group in groups:
                running_groups.remove(group)

    def scale_out():
        environments.append(LocalFunction("WorkerFunction", handler, 30, 512))
        return environments[-1]

    stats = pump_for(sqs, work_url, handler, batch_size=1, max_concurrency=3, scale_out=scale_out).drain()

    assert stats.peak_concurrency == 3 and len(environments) == 2  # the first environment plus two scale-outs
    assert stats.deleted == 12 and overlaps == []
    assert seen == {str(g): [n for n in range(12) if n % 4 == g] for g in range(4)}  # FIFO order per group


def test_more_than_one_concurrent_invocation_needs_a_way_to_build_environments(sqs):
    work_url, _ = make_fifo_queues(sqs)

    with pytest.raises(ValueError, match="scale_out"):
        pump_for(sqs, work_url, Recorder(), max_concurrency=2)


def test_a_wait_set_through_the_batch_call_is_kept_for_its_accepted_entries_only(sqs):
    work_url, _ = make_fifo_queues(sqs, max_receive_count=3)
    send(sqs, work_url, "waits", "A")
    send(sqs, work_url, "refused", "B")
    seen = []

    def handler(event, context):
        handles = {r["body"]: r["receiptHandle"] for r in event["Records"]}
        seen.extend(handles)
        entries = [{"Id": "0", "ReceiptHandle": handles["waits"], "VisibilityTimeout": 600}] if "waits" in handles else []
        if "refused" in handles and seen.count("refused") == 1:
            entries.append({"Id": "1", "ReceiptHandle": "not-a-handle", "VisibilityTimeout": 600})
        if entries:
            sqs.change_message_visibility_batch(QueueUrl=work_url, Entries=entries)
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]
                                      if seen.count(r["body"]) == 1]}

    stats = pump_for(sqs, work_url, handler).drain()

    assert seen.count("waits") == 1 and seen.count("refused") == 2  # the refused entry protected nothing
    assert stats.delayed == 1


def test_without_quick_retries_a_failed_message_waits_out_the_queue_visibility_timeout(sqs):
    """Functions in container processes: the pump cannot see their visibility changes, so it changes none."""
    work_url, _ = make_fifo_queues(sqs, max_receive_count=2)
    send(sqs, work_url, "poison", "group-1")
    recorder = Recorder(fail_bodies={"poison"})

    stats = pump_for(sqs, work_url, recorder, quick_retries=False).drain()

    assert (recorder.bodies, stats.failed, stats.deleted) == (["poison"], 1, 0)
    assert sqs.get_queue_attributes(QueueUrl=work_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])[
        "Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "1"
