from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from connector.redrive import queue_depths, redrive_dead_letters, replay_deduplication_id
from connector_local.pump import QueuePump
from connector_local.runtime import LocalFunction

from . import make_fifo_queues, peek, send, sqs_client, start_moto


@pytest.fixture(scope="module")
def endpoint():
    server, url = start_moto()
    yield url
    server.stop()


@pytest.fixture
def sqs(endpoint):
    return sqs_client(endpoint)


def fail_body(poison: str):
    def handler(event, context):
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]
                                      if r["body"] == poison]}
    return handler


def kill(sqs, work_url, body, group, dedupe):
    """Send a message the worker always fails, and pump until SQS has moved it to the DLQ."""
    send(sqs, work_url, body, group, dedupe=dedupe)
    QueuePump(sqs, work_url, LocalFunction("WorkerFunction", fail_body(body), 30, 512)).drain()


def test_dead_letter_is_moved_back_with_body_and_group_and_a_new_deduplication_id(sqs):
    work_url, dlq_url = make_fifo_queues(sqs)
    body = '{"kind":"resolve","key":"Bill:Bill:000123"}'
    kill(sqs, work_url, body, "Bill:Bill:000123", "resolve-1")
    assert [m["Body"] for m in peek(sqs, dlq_url)] == [body]
    reports = []

    result = redrive_dead_letters(sqs, dlq_url, work_url, progress=lambda moved, total: reports.append((moved, total)))

    assert (result.moved, result.failed, result.method) == (1, 0, "portable")
    assert reports == [(1, 1)]
    assert peek(sqs, dlq_url) == []
    [replayed] = peek(sqs, work_url)
    assert replayed["Body"] == body
    assert replayed["Attributes"]["MessageGroupId"] == "Bill:Bill:000123"
    assert replayed["Attributes"]["MessageDeduplicationId"] not in ("resolve-1", "")


def test_quick_second_redrive_of_the_same_message_is_not_swallowed(sqs):
    work_url, dlq_url = make_fifo_queues(sqs)
    kill(sqs, work_url, "poison", "G", "original")
    redrive_dead_letters(sqs, dlq_url, work_url)
    first_copy_id = peek(sqs, work_url)[0]["Attributes"]["MessageDeduplicationId"]
    QueuePump(sqs, work_url, LocalFunction("WorkerFunction", fail_body("poison"), 30, 512)).drain()
    assert [m["Body"] for m in peek(sqs, dlq_url)] == ["poison"]

    result = redrive_dead_letters(sqs, dlq_url, work_url)

    assert result.moved == 1
    [again] = peek(sqs, work_url)
    assert again["Body"] == "poison"
    assert again["Attributes"]["MessageDeduplicationId"] not in (first_copy_id, "original")


def test_replay_deduplication_ids_are_stable_within_a_run_and_differ_across_runs():
    assert replay_deduplication_id("d-1", "run-a") == replay_deduplication_id("d-1", "run-a")
    assert replay_deduplication_id("d-1", "run-a") != replay_deduplication_id("d-1", "run-b")
    assert len(replay_deduplication_id("x" * 128, "run-a")) <= 128


class FailingSends:
    """The real client, except that sending ``poisoned_body`` fails like a throttled SendMessage."""

    def __init__(self, client, poisoned_body):
        self._client = client
        self._poisoned_body = poisoned_body

    def __getattr__(self, name):
        return getattr(self._client, name)

    def send_message(self, **request):
        if request["MessageBody"] == self._poisoned_body:
            raise ClientError({"Error": {"Code": "RequestThrottled", "Message": "slow down"}}, "SendMessage")
        return self._client.send_message(**request)


def test_message_whose_send_fails_stays_in_the_dlq_visible_and_later_ones_of_its_group_wait(sqs):
    work_url, dlq_url = make_fifo_queues(sqs)
    for body, group in [("g1-first", "G1"), ("g1-second", "G1"), ("g2-only", "G2")]:
        sqs.send_message(QueueUrl=dlq_url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=body)

    result = redrive_dead_letters(FailingSends(sqs, "g1-first"), dlq_url, work_url)

    assert (result.moved, result.failed) == (1, 2)
    assert [m["Body"] for m in peek(sqs, work_url)] == ["g2-only"]
    assert [m["Body"] for m in peek(sqs, dlq_url)] == ["g1-first", "g1-second"]


def test_max_messages_limits_the_move(sqs):
    work_url, dlq_url = make_fifo_queues(sqs)
    for index in range(3):
        sqs.send_message(QueueUrl=dlq_url, MessageBody=f"m{index}", MessageGroupId=f"g{index}",
                         MessageDeduplicationId=f"m{index}")
    reports = []

    result = redrive_dead_letters(sqs, dlq_url, work_url, max_messages=2, progress=lambda *args: reports.append(args))

    assert (result.moved, result.method) == (2, "portable")
    assert reports == [(1, 2), (2, 2)]
    assert len(peek(sqs, dlq_url)) == 1


def test_native_move_task_is_preferred_and_followed_to_completion():
    sqs = sqs_client("http://127.0.0.1:9")  # never reached: the stubber answers
    dlq_url, work_url = "https://sqs.us-east-1.amazonaws.com/1/dlq.fifo", "https://sqs.us-east-1.amazonaws.com/1/w.fifo"
    dlq_arn, work_arn = "arn:aws:sqs:us-east-1:1:dlq.fifo", "arn:aws:sqs:us-east-1:1:w.fifo"
    reports = []
    with Stubber(sqs) as stub:
        stub.add_response("get_queue_attributes", {"Attributes": {"QueueArn": dlq_arn}})
        stub.add_response("get_queue_attributes", {"Attributes": {"ApproximateNumberOfMessages": "4"}})
        stub.add_response("get_queue_attributes", {"Attributes": {"QueueArn": work_arn}})
        stub.add_response("start_message_move_task", {"TaskHandle": "task-1"},
                          {"SourceArn": dlq_arn, "DestinationArn": work_arn})
        for status, moved in [("RUNNING", 1), ("COMPLETED", 4)]:
            stub.add_response("list_message_move_tasks", {"Results": [
                {"Status": status, "SourceArn": dlq_arn, "ApproximateNumberOfMessagesMoved": moved,
                 "ApproximateNumberOfMessagesToMove": 4}]}, {"SourceArn": dlq_arn, "MaxResults": 1})

        result = redrive_dead_letters(sqs, dlq_url, work_url, progress=lambda *args: reports.append(args),
                                      poll_seconds=0)

        stub.assert_no_pending_responses()
    assert (result.moved, result.failed, result.method) == (4, 0, "native")
    assert reports == [(1, 4), (4, 4)]


def test_native_move_refused_for_a_reason_other_than_support_is_raised():
    sqs = sqs_client("http://127.0.0.1:9")
    with Stubber(sqs) as stub:
        stub.add_response("get_queue_attributes", {"Attributes": {"QueueArn": "arn:aws:sqs:us-east-1:1:d"}})
        stub.add_response("get_queue_attributes", {"Attributes": {"ApproximateNumberOfMessages": "1"}})
        stub.add_response("get_queue_attributes", {"Attributes": {"QueueArn": "arn:aws:sqs:us-east-1:1:w"}})
        stub.add_client_error("start_message_move_task", "AccessDenied", http_status_code=403)

        with pytest.raises(ClientError, match="AccessDenied"):
            redrive_dead_letters(sqs, "https://q/d", "https://q/w")


def test_queue_depths_reports_visible_in_flight_and_delayed(sqs):
    work_url, dlq_url = make_fifo_queues(sqs)
    send(sqs, work_url, "a", "A")
    send(sqs, work_url, "b", "B")
    sqs.receive_message(QueueUrl=work_url, MaxNumberOfMessages=1, VisibilityTimeout=60)

    depths = queue_depths(sqs, [work_url, dlq_url])

    assert depths[work_url] == {"ApproximateNumberOfMessages": 1, "ApproximateNumberOfMessagesNotVisible": 1,
                                "ApproximateNumberOfMessagesDelayed": 0}
    assert depths[dlq_url]["ApproximateNumberOfMessages"] == 0
