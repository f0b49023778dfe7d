"""Each function in a container process of its own: the isolation ``connector local`` relies on for its logs."""

from __future__ import annotations

import json
import threading

import pytest

from connector_local.container import ContainerFunction, HandlerError
from connector_local.runtime import InvocationFailed

LOGGING_APP = """
import logging, time
from aws_lambda_powertools import Logger
from connector.telemetry import with_core_logs

logger = with_core_logs(Logger(service="container-test"))
core = logging.getLogger("connector.example")

@logger.inject_lambda_context(clear_state=True)
def handler(event, context):
    time.sleep(event.get("sleep", 0))
    logger.info("handled", extra={"said": event["say"]})
    core.info("core line")
    if event.get("fail"):
        raise ValueError("the handler refused")
    if event.get("exit"):
        import os; os._exit(3)
    if event.get("marshal"):
        return {"when": object()}
    return {"said": event["say"]}
"""


@pytest.fixture
def app(tmp_path):
    def write(name: str, source: str = LOGGING_APP):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "app.py").write_text(source)
        return directory / "app.py"
    return write


@pytest.fixture
def log_file(tmp_path):
    with open(tmp_path / "log", "w+", encoding="utf-8") as stream:
        yield stream


def container(name: str, path, log_file) -> ContainerFunction:
    return ContainerFunction(name, path, "handler", 20.0, 256, {"LOG_LEVEL": "INFO"}, log_stream=log_file)


def log_lines(log_file) -> list[dict]:
    log_file.flush()
    log_file.seek(0)
    return [json.loads(line) for line in log_file if line.startswith("{")]


def test_concurrent_functions_log_their_own_name_and_their_own_cold_start(app, log_file):
    poller = container("PollerFunction", app("poller"), log_file)
    maintenance = container("MaintenanceFunction", app("maintenance"), log_file)
    try:
        # Overlapping invocations: in one process the second one's keys would be on the first one's lines.
        threads = [threading.Thread(target=poller.invoke, args=({"say": "poll", "sleep": 0.5},)),
                   threading.Thread(target=maintenance.invoke, args=({"say": "maintain"},))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert poller.invoke({"say": "poll again"}) == {"said": "poll again"}
    finally:
        poller.stop()
        maintenance.stop()

    handled = [line for line in log_lines(log_file) if line["message"] == "handled"]
    assert {(line["said"], line["function_name"], line["cold_start"]) for line in handled} == {
        ("poll", "PollerFunction", True), ("maintain", "MaintenanceFunction", True),
        ("poll again", "PollerFunction", False)}


def test_core_loggers_write_json_with_the_invocation_keys_at_the_configured_level(app, log_file):
    function = container("WorkerFunction", app("worker"), log_file)
    try:
        function.invoke({"say": "x"})
    finally:
        function.stop()

    core = [line for line in log_lines(log_file) if line["message"] == "core line"]
    assert len(core) == 1  # INFO reaches the log: LOG_LEVEL, not the root logger's WARNING
    assert core[0]["function_name"] == "WorkerFunction" and core[0]["level"] == "INFO"


def test_a_handler_exception_is_reported_and_the_container_stays_warm(app, log_file):
    function = container("WorkerFunction", app("worker"), log_file)
    try:
        with pytest.raises(HandlerError, match="ValueError: the handler refused") as raised:
            function.invoke({"say": "x", "fail": True})
        warm = function.warm_pids
        assert function.invoke({"say": "y"}) == {"said": "y"}
    finally:
        function.stop()
    assert raised.value.error_type == "ValueError"
    assert len(warm) == 1 and function.cold_starts == 1


def test_an_overrun_kills_the_container_and_the_next_invocation_is_a_cold_start(app, log_file):
    function = container("WorkerFunction", app("worker"), log_file)
    try:
        function.invoke({"say": "warm up"})  # the cold start's import is not timed against the short timeout
        function.timeout_seconds = 0.5
        with pytest.raises(InvocationFailed, match="Task timed out"):
            function.invoke({"say": "slow", "sleep": 10})
        assert function.warm_pids == []
        function.timeout_seconds = 20.0
        assert function.invoke({"say": "again"}) == {"said": "again"}
    finally:
        function.stop()
    assert function.cold_starts == 2


def test_a_crash_fails_the_invocation_and_a_new_container_takes_the_next(app, log_file):
    function = container("WorkerFunction", app("worker"), log_file)
    try:
        with pytest.raises(InvocationFailed, match="exited with status 3"):
            function.invoke({"say": "x", "exit": True})
        assert function.invoke({"say": "y"}) == {"said": "y"}
    finally:
        function.stop()
    assert function.cold_starts == 2


def test_an_import_failure_and_an_unserializable_answer_fail_the_invocation(app, log_file):
    broken = container("Broken", app("broken", "raise RuntimeError('cold start failed')\n"), log_file)
    function = container("WorkerFunction", app("worker"), log_file)
    try:
        with pytest.raises(InvocationFailed, match="ImportModuleError: RuntimeError: cold start failed"):
            broken.invoke({})
        with pytest.raises(InvocationFailed, match="MarshalError"):
            function.invoke({"say": "x", "marshal": True})
        assert function.invoke({"say": "y"}) == {"said": "y"}  # marshalling failed, the container did not
    finally:
        broken.stop()
        function.stop()
    assert function.cold_starts == 1


def test_overlapping_invocations_of_one_function_run_in_containers_of_their_own(app, log_file):
    function = container("WorkerFunction", app("worker"), log_file)
    try:
        threads = [threading.Thread(target=function.invoke, args=({"say": n, "sleep": 1},)) for n in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        function.invoke({"say": "c"})
    finally:
        function.stop()

    assert function.cold_starts == 2  # one container each for the overlapping two; the third found one warm
    handled = {line["said"]: line for line in log_lines(log_file) if line["message"] == "handled"}
    assert handled["a"]["function_request_id"] != handled["b"]["function_request_id"]
    assert handled["c"]["cold_start"] is False


def test_a_container_busy_when_the_function_stops_is_stopped_when_its_invocation_returns(app, log_file):
    function = container("WorkerFunction", app("worker"), log_file)
    function.invoke({"say": "warm up"})
    answers = []
    busy = threading.Thread(target=lambda: answers.append(function.invoke({"say": "late", "sleep": 1})))
    busy.start()
    while function.warm_pids:  # the busy invocation has taken the warm container
        pass
    function.stop()
    busy.join()

    assert answers == [{"said": "late"}] and function.warm_pids == []
    with pytest.raises(InvocationFailed, match="stopped"):
        function.invoke({"say": "after"})
