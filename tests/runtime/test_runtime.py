from __future__ import annotations

import io
import json
import logging
import sys
import time

import pytest
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from connector_local.pump import lambda_sqs_event
from connector_local.runtime import InvocationFailed, LambdaContext, LocalFunction, load_handler


def write_app(directory, source: str):
    directory.mkdir(parents=True)
    path = directory / "app.py"
    path.write_text(source)
    return path


def test_same_named_handler_files_load_as_distinct_modules_without_touching_sys_path(tmp_path):
    first = write_app(tmp_path / "poller", "NAME = 'poller'\ndef handler(event, context):\n    return NAME\n")
    second = write_app(tmp_path / "worker", "NAME = 'worker'\ndef handler(event, context):\n    return NAME\n")
    path_before = list(sys.path)

    poller, worker = load_handler(first), load_handler(second)

    assert (poller({}, None), worker({}, None)) == ("poller", "worker")
    assert poller.__module__ != worker.__module__
    assert sys.modules[poller.__module__].__file__ == str(first.resolve())
    assert sys.path == path_before


def test_handler_name_other_than_handler_is_honoured(tmp_path):
    path = write_app(tmp_path / "fn", "def lambda_handler(event, context):\n    return 'custom'\n")

    assert load_handler(path, "lambda_handler")({}, None) == "custom"


def test_missing_handler_callable_raises_naming_it(tmp_path):
    path = write_app(tmp_path / "fn", "handler = 42\n")

    with pytest.raises(AttributeError, match="'handler'"):
        load_handler(path)


def test_module_that_fails_at_import_is_not_left_registered(tmp_path):
    path = write_app(tmp_path / "broken", "raise RuntimeError('cold start failed')\n")
    modules_before = set(sys.modules)

    with pytest.raises(RuntimeError, match="cold start failed"):
        load_handler(path)

    assert set(sys.modules) == modules_before


def test_context_carries_the_lambda_runtime_attributes():
    context = LocalFunction("WorkerFunction", lambda e, c: None, 120, 512).new_context()

    assert context.function_name == "WorkerFunction"
    assert context.function_version == "$LATEST"
    assert context.invoked_function_arn == "arn:aws:lambda:us-east-1:123456789012:function:WorkerFunction"
    assert context.memory_limit_in_mb == "512"
    assert context.log_group_name == "/aws/lambda/WorkerFunction"
    assert "[$LATEST]" in context.log_stream_name
    assert context.client_context is None and context.identity is None


def test_remaining_time_counts_down_from_the_function_timeout():
    context = LambdaContext(function_name="f", memory_limit_in_mb=128, timeout_seconds=2)
    first = context.get_remaining_time_in_millis()
    time.sleep(0.05)
    second = context.get_remaining_time_in_millis()

    assert 1900 <= first <= 2000
    assert first - second >= 40


def test_remaining_time_never_goes_negative():
    context = LambdaContext(function_name="f", memory_limit_in_mb=128, timeout_seconds=0.01)
    time.sleep(0.02)

    assert context.get_remaining_time_in_millis() == 0


def test_every_invocation_gets_a_fresh_context_and_request_id():
    seen = []
    function = LocalFunction("f", lambda event, context: seen.append(context) or None, 3, 128)

    function.invoke({})
    function.invoke({})

    assert seen[0] is not seen[1]
    assert seen[0].aws_request_id != seen[1].aws_request_id


def test_handler_exception_propagates_to_the_caller():
    def handler(event, context):
        raise KeyError("boom")

    with pytest.raises(KeyError):
        LocalFunction("f", handler, 3, 128).invoke({})


def test_finishing_after_the_timeout_is_a_failed_invocation():
    function = LocalFunction("slow", lambda event, context: time.sleep(0.06), 0.05, 128)

    with pytest.raises(InvocationFailed, match="timed out after 0.05 seconds"):
        function.invoke({})


def test_response_that_is_not_json_fails_like_a_marshal_error():
    function = LocalFunction("f", lambda event, context: {"at": object()}, 3, 128)

    with pytest.raises(InvocationFailed, match="MarshalError"):
        function.invoke({})


def test_handler_works_on_a_json_copy_of_the_event():
    event = {"items": [1]}
    LocalFunction("f", lambda e, c: e["items"].append(2), 3, 128).invoke(event)

    assert event == {"items": [1]}


def test_powertools_logger_and_batch_processor_accept_the_context():
    stream = io.StringIO()
    logger = Logger(service="runtime-test", logger_handler=logging.StreamHandler(stream))
    processor = BatchProcessor(event_type=EventType.SQS)

    def record_handler(record):
        if record.body == "bad":
            raise ValueError("bad record")
        logger.info("processed")

    @logger.inject_lambda_context
    def handler(event, context):
        return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                        context=context)

    messages = [_sqs_message("1", "good"), _sqs_message("2", "bad")]
    function = LocalFunction("WorkerFunction", handler, 3, 512)

    response = function.invoke(lambda_sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1"))

    assert response == {"batchItemFailures": [{"itemIdentifier": "2"}]}
    line = json.loads(stream.getvalue().splitlines()[0])
    assert line["function_name"] == "WorkerFunction"
    assert line["function_memory_size"] == "512"
    assert line["function_arn"].endswith(":function:WorkerFunction")
    assert len(line["function_request_id"]) == 36


def _sqs_message(message_id: str, body: str) -> dict:
    return {
        "MessageId": message_id,
        "ReceiptHandle": f"handle-{message_id}",
        "Body": body,
        "MD5OfBody": "0" * 32,
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "x",
                       "ApproximateFirstReceiveTimestamp": "1"},
    }
