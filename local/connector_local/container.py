"""Each function in a process of its own, as each runs in execution environments of its own on Lambda.

In one interpreter the four handlers share what Lambda keeps apart: Powertools' Logger formatter (one per service
name, so a poller line logged while the maintenance function was being invoked carried ``MaintenanceFunction``), its
module-level cold-start flag (the second function's first invocation said ``cold_start: false``), and every cached
client and secret. ``connector local`` therefore runs each function in a container process: it is started at the
function's first invocation (a cold start), keeps its globals between invocations (a warm start), is killed when an
invocation overruns the function's timeout or the process dies, and the next invocation starts a new one, as Lambda
replaces a broken environment. Its stdout and stderr are the function's log stream.

The parent writes one JSON line per invocation on the container's stdin; the container answers on a pipe of its
own, so nothing the handler prints can be mistaken for an answer. The end-to-end tests keep ``LocalFunction``
(in-process), because they reach into handler modules to time or fault them.

Run as ``python -m connector_local.container HANDLER_PATH HANDLER_NAME ANSWER_FD``; nothing else should start it.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import IO, Any, Mapping

from .runtime import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, InvocationFailed, LambdaContext, load_handler

STOP_GRACE_SECONDS = 2.0
"""How long a container may take to exit once its stdin closes, before it is killed."""


class HandlerError(RuntimeError):
    """The handler raised in its container: the type and message Lambda reports as ``errorType``/``errorMessage``."""

    def __init__(self, function_name: str, error_type: str, message: str) -> None:
        super().__init__(f"{function_name}: {error_type}: {message}")
        self.error_type = error_type
        self.error_message = message


class _Container:
    """One container process: one invocation at a time, warm between invocations, discarded once broken."""

    def __init__(self, function: ContainerFunction) -> None:
        self.function = function
        answer_read, answer_write = os.pipe()
        environment = {
            **os.environ,
            **function.environment,
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            "LAMBDA_TASK_ROOT": str(function.handler_path.parent),
            "PYTHONUNBUFFERED": "1",  # log lines reach the terminal as they are written, as in CloudWatch
        }
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "connector_local.container", str(function.handler_path),
                 function.handler_name, str(answer_write), function.name, str(function.timeout_seconds),
                 str(function.memory_mb), function.region, function.account_id],
                stdin=subprocess.PIPE, stdout=function.log_stream, stderr=function.log_stream, env=environment,
                pass_fds=(answer_write,), text=True,
            )
        finally:
            os.close(answer_write)
        self.answers = os.fdopen(answer_read, "r", encoding="utf-8")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def invoke(self, event: Any) -> Any:
        name, timeout = self.function.name, self.function.timeout_seconds
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps({"event": event}) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass  # it died at cold start; its answer (an init error) or its end is read below
        ready, _, _ = select.select([self.answers], [], [], timeout + STOP_GRACE_SECONDS)
        line = self.answers.readline() if ready else None
        if line is None:  # killed, as Lambda ends an overrun environment; the pool drops what is not alive
            self.process.kill()
            self.process.wait()
            raise InvocationFailed(f"{name}: Task timed out after {timeout:.2f} seconds")
        if not line:
            code = self.process.wait()
            raise InvocationFailed(f"{name}: Runtime.ExitError: the container exited with status {code}")
        answer = json.loads(line)
        if "result" in answer:
            return answer["result"]
        error = answer["error"]
        if error["runtime"]:  # the runtime's failure (init, marshalling), not an exception of the handler's
            raise InvocationFailed(f"{name}: {error['type']}: {error['message']}")
        raise HandlerError(name, error["type"], error["message"])

    def discard(self) -> None:
        """Kill the process if it still runs (an overrun) and release its pipes."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdin:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        self.answers.close()

    def stop(self) -> None:
        """Close stdin (the container exits between invocations), then reap it."""
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.process.wait(timeout=STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        self.discard()


class ContainerFunction:
    """One deployed function whose invocations run in container processes, as many as are invoked at once.

    An invocation takes an idle container or, when every one is busy, starts a new one (a cold start), as Lambda
    scales a function; a container that overran or crashed is dropped and never reused. The same interface as
    ``LocalFunction`` (``name``, ``timeout_seconds``, ``memory_mb``, ``invoke``), so the gateway, the queue pump
    and the schedules cannot tell them apart.
    """

    def __init__(
        self,
        name: str,
        handler_path: str | Path,
        handler_name: str,
        timeout_seconds: float,
        memory_mb: int,
        environment: Mapping[str, str],
        *,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
        log_stream: IO[str] | None = None,
    ) -> None:
        self.name = name
        self.handler_path = Path(handler_path).resolve()
        self.handler_name = handler_name
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self.region = region
        self.account_id = account_id
        self.environment = dict(environment)
        self.log_stream = log_stream
        self._idle: list[_Container] = []
        self._pool = threading.Lock()
        self._stopped = False
        self.cold_starts = 0

    @property
    def warm_pids(self) -> list[int]:
        """Process ids of the idle containers, ready for a warm start."""
        with self._pool:
            return [container.process.pid for container in self._idle if container.alive]

    def invoke(self, event: Any) -> Any:
        """Run the handler on ``event`` in a container and return its JSON response.

        A handler exception raises ``HandlerError`` and leaves the container warm, as Lambda does; an overrun, a
        crash, an import failure or a response that is not JSON raises ``InvocationFailed``.
        """
        payload = json.loads(json.dumps(event))
        with self._pool:
            if self._stopped:
                raise InvocationFailed(f"{self.name}: the function was stopped")
            while self._idle and not self._idle[-1].alive:
                self._idle.pop().discard()
            if self._idle:
                container = self._idle.pop()
            else:
                container = _Container(self)
                self.cold_starts += 1
        try:
            return container.invoke(payload)
        finally:
            with self._pool:
                keep = container.alive and not self._stopped
                if keep:
                    self._idle.append(container)
            if not keep:
                container.stop()

    def stop(self) -> None:
        """Stop every idle container; a busy one is stopped when its invocation returns."""
        with self._pool:
            self._stopped = True
            idle, self._idle = self._idle, []
        for container in idle:
            container.stop()

    def __repr__(self) -> str:
        return f"ContainerFunction({self.name!r}, timeout={self.timeout_seconds}s, memory={self.memory_mb}MB)"


def serve(handler_path: str, handler_name: str, answers: IO[str], function_name: str, timeout_seconds: float,
          memory_mb: int, region: str, account_id: str) -> int:
    """The container's loop: import the handler (init), then one invocation per line of stdin until it closes."""

    def answer(message: dict[str, Any]) -> None:
        answers.write(json.dumps(message) + "\n")
        answers.flush()

    try:
        handler = load_handler(handler_path, handler_name)
    except Exception as error:  # Lambda reports an init failure as the first invocation's error
        traceback.print_exc()
        answer({"error": {"type": "Runtime.ImportModuleError", "message": f"{type(error).__name__}: {error}",
                          "runtime": True}})
        return 1
    for line in sys.stdin:
        event = json.loads(line)["event"]
        context = LambdaContext(function_name=function_name, memory_limit_in_mb=memory_mb,
                                timeout_seconds=timeout_seconds, region=region, account_id=account_id)
        try:
            result = handler(event, context)
        except Exception as error:
            traceback.print_exc()  # what Lambda writes to the log stream beside the error it returns
            answer({"error": {"type": type(error).__name__, "message": str(error), "runtime": False}})
            continue
        try:
            answer({"result": json.loads(json.dumps(result))})
        except (TypeError, ValueError) as error:
            answer({"error": {"type": "Runtime.MarshalError",
                              "message": f"response is not JSON serializable: {error}", "runtime": True}})
    return 0


def main(argv: list[str]) -> int:
    # Ctrl-C in a terminal reaches the whole process group; the parent stops its containers by closing their stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    handler_path, handler_name, answer_fd, function_name, timeout, memory, region, account_id = argv
    with os.fdopen(int(answer_fd), "w", encoding="utf-8") as answers:
        return serve(handler_path, handler_name, answers, function_name, float(timeout), int(memory), region,
                     account_id)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
