"""Running the real handlers in this process the way the Lambda Python runtime runs them.

The local stack must exercise the same code paths as AWS, so the details that handlers and Powertools rely on are
reproduced rather than approximated: each ``functions/<name>/app.py`` is imported once, like a container's cold
start; every invocation gets a fresh context with a new request id and a deadline; the event and the response cross a
JSON boundary (a handler that returns a ``datetime`` fails here as it would in Lambda); and a handler that finishes
after its timeout counts as a failed invocation, whatever it returned.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Protocol

logger = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Any]

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account, so ARNs line up with the local AWS


class Invocable(Protocol):
    """What the gateway, the queue pump and the schedules need of a function, in-process or in a container."""

    name: str
    timeout_seconds: float

    def invoke(self, event: Any) -> Any: ...


class InvocationFailed(RuntimeError):
    """The invocation failed for a reason of the runtime's, not an exception of the handler's (timeout, bad JSON)."""


def _module_name_for(path: Path) -> str:
    """A module name unique to the file: every function's file is called ``app.py``, and they must not collide."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    return f"_lambda_{path.parent.name}_{path.stem}_{digest}"


def load_handler(handler_path: str | Path, handler_name: str = "handler") -> Handler:
    """Import ``handler_path`` under a name of its own and return its ``handler_name`` callable.

    The module is registered in ``sys.modules`` (dataclasses, pickling and Powertools look modules up there) but its
    directory is not put on ``sys.path``: the handlers import only the ``connector`` package, as in the layer.
    Loading the same file again re-executes it, which is what a new container does.
    """
    path = Path(handler_path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"handler file not found: {path}")
    name = _module_name_for(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path} as a Python module")
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    handler = getattr(module, handler_name, None)
    if not callable(handler):
        raise AttributeError(f"{path} has no callable named {handler_name!r}")
    return handler


class LambdaContext:
    """The context object of the Lambda Python runtime, with the same attributes and types.

    ``memory_limit_in_mb`` is a string, as in the real runtime (it comes from an environment variable there).
    """

    def __init__(
        self,
        *,
        function_name: str,
        memory_limit_in_mb: int,
        timeout_seconds: float,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> None:
        started = time.time()
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.memory_limit_in_mb = str(memory_limit_in_mb)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        day = datetime.fromtimestamp(started, tz=timezone.utc).strftime("%Y/%m/%d")
        self.log_stream_name = f"{day}/[$LATEST]{uuid.uuid4().hex}"
        self.client_context = None
        self.identity = None
        self.tenant_id = None
        self._deadline = started + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until the function's timeout, never negative (the real runtime clamps at 0 too)."""
        return max(0, int((self._deadline - time.time()) * 1000))

    def log(self, message: str) -> None:
        """Write to the function's log, like ``context.log`` of the real runtime."""
        sys.stdout.write(message)

    def __repr__(self) -> str:
        return (
            f"LambdaContext(function_name={self.function_name!r}, aws_request_id={self.aws_request_id!r}, "
            f"remaining_ms={self.get_remaining_time_in_millis()})"
        )


class LocalFunction:
    """One deployed function: a handler plus its configuration, invoked synchronously.

    Invocations run one at a time, like a single execution environment: the handler module's globals (cached
    clients, Powertools state) are shared by every call, and Lambda never runs two events in one environment at once.
    """

    def __init__(
        self,
        name: str,
        handler: Handler,
        timeout_seconds: float,
        memory_mb: int,
        *,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> None:
        self.name = name
        self.handler = handler
        self.timeout_seconds = timeout_seconds
        self.memory_mb = memory_mb
        self.region = region
        self.account_id = account_id
        self._one_at_a_time = threading.Lock()

    def new_context(self) -> LambdaContext:
        return LambdaContext(
            function_name=self.name,
            memory_limit_in_mb=self.memory_mb,
            timeout_seconds=self.timeout_seconds,
            region=self.region,
            account_id=self.account_id,
        )

    def invoke(self, event: Any) -> Any:
        """Run the handler on a JSON copy of ``event`` and return its JSON-round-tripped response.

        A handler exception propagates unchanged; a late finish or a response that is not JSON raises
        ``InvocationFailed``. Either way the caller sees a failed invocation, as the event source would.
        """
        payload = json.loads(json.dumps(event))
        with self._one_at_a_time:
            context = self.new_context()
            logger.debug("START %s RequestId: %s", self.name, context.aws_request_id)
            started = time.monotonic()
            try:
                result = self.handler(payload, context)
            finally:
                elapsed = time.monotonic() - started
                logger.debug("END %s RequestId: %s Duration: %.2f ms", self.name, context.aws_request_id,
                             elapsed * 1000)
        if elapsed > self.timeout_seconds:
            raise InvocationFailed(f"{self.name}: Task timed out after {self.timeout_seconds:.2f} seconds")
        try:
            return json.loads(json.dumps(result))
        except (TypeError, ValueError) as error:
            raise InvocationFailed(
                f"{self.name}: Runtime.MarshalError: response is not JSON serializable: {error}"
            ) from error

    def __repr__(self) -> str:
        return f"LocalFunction({self.name!r}, timeout={self.timeout_seconds}s, memory={self.memory_mb}MB)"
