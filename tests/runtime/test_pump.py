from __future__ import annotations

import base64
import hashlib
import threading

import pytest
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response

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
