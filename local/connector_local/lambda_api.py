"""Lambda's ``Invoke`` API for the local stack's functions, and their reserved concurrency.

moto holds no functions of this stack (they run here, in-process or in containers), so a handler that invokes
another function (the worker asking the poller to poll now, ``connector.pollnow``) reaches this endpoint instead,
through ``AWS_ENDPOINT_URL_LAMBDA``, with boto3's own request: ``POST /2015-03-31/functions/<name>/invocations``.

What AWS does and this reproduces: ``InvocationType: Event`` answers 202 at once and the event runs later, in the
background; ``RequestResponse`` runs it and answers its result. A function with ``ReservedConcurrentExecutions``
never runs more invocations at once than that (``ReservedConcurrency``): the schedule and an asynchronous invoke of
the poller take turns, as Lambda's throttling and async retries make them take turns on AWS.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Any, Mapping

from werkzeug.wrappers import Request, Response

from .runtime import Invocable
from .serving import LoopbackServer, Served

logger = logging.getLogger(__name__)

class ReservedConcurrency:
    """An ``Invocable`` that runs at most ``limit`` invocations of ``function`` at once; the others wait their turn."""

    def __init__(self, function: Invocable, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"reserved concurrency must be at least 1, got {limit}")
        self.function = function
        self.name = function.name
        self.timeout_seconds = function.timeout_seconds
        self._slots = threading.BoundedSemaphore(limit)

    def invoke(self, event: Any) -> Any:
        with self._slots:
            return self.function.invoke(event)

    def __getattr__(self, name: str) -> Any:  # stop(), containers: whatever the wrapped function offers
        return getattr(self.function, name)


class LambdaInvokeApi(Served):
    """Serves ``Invoke`` for ``functions`` (physical name → function); ``wait_idle()`` waits for queued events."""

    def __init__(self, functions: Mapping[str, Invocable]) -> None:
        self.functions = dict(functions)
        self.invocations: list[dict[str, Any]] = []
        self._events: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self._idle = threading.Condition()
        self._pending = 0
        self._runner: threading.Thread | None = None
        self._server = LoopbackServer(self._wsgi, name="lambda-invoke-api")

    def start(self) -> LambdaInvokeApi:
        super().start()
        if self._runner is None:
            self._runner = threading.Thread(target=self._run_events, name="lambda-async-invocations", daemon=True)
            self._runner.start()
        return self

    def stop(self) -> None:
        super().stop()
        if self._runner is not None:
            self._events.put(None)
            self._runner.join(timeout=30)
            self._runner = None

    def wait_idle(self, timeout: float = 120.0) -> bool:
        """Wait until every accepted asynchronous event has run; ``False`` if that took longer than ``timeout``."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self._handle(Request(environ))(environ, start_response)

    def _handle(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if request.method != "POST" or len(parts) != 4 or parts[:2] != ["2015-03-31", "functions"] \
                or parts[3] != "invocations":
            return _error(404, "UnknownOperationException", f"unknown operation {request.method} {request.path}")
        name = parts[2].rsplit(":", 1)[-1]  # a name, or an ARN ending in it
        if name not in self.functions:
            return _error(404, "ResourceNotFoundException", f"Function not found: {name}")
        try:
            event = json.loads(request.get_data() or b"{}")
        except ValueError:
            return _error(400, "InvalidRequestContentException", "Could not parse request body into json")
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        self.invocations.append({"function": name, "type": kind, "event": event})
        if kind == "Event":
            with self._idle:
                self._pending += 1
            self._events.put((name, event))
            return Response(status=202)
        if kind != "RequestResponse":
            return _error(400, "InvalidParameterValueException", f"unsupported invocation type {kind}")
        try:
            result = self.functions[name].invoke(event)
        except Exception as error:  # noqa: BLE001 - the function's error, answered as Lambda answers it
            body = json.dumps({"errorMessage": str(error), "errorType": type(error).__name__})
            return Response(body, status=200, headers={"X-Amz-Function-Error": "Unhandled"},
                            content_type="application/json")
        return Response(json.dumps(result), status=200, content_type="application/json")

    def _run_events(self) -> None:
        while (item := self._events.get()) is not None:
            name, event = item
            try:
                self.functions[name].invoke(event)
            except Exception:  # noqa: BLE001 - an async invocation's failure is logged, as Lambda logs it
                logger.warning("asynchronous invocation of %s failed", name, exc_info=True)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()


def _error(status: int, kind: str, message: str) -> Response:
    return Response(json.dumps({"Type": "User", "message": message}), status=status,
                    headers={"X-Amzn-ErrorType": kind}, content_type="application/json")
