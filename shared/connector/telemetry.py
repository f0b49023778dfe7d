"""X-Ray tracing for the handlers, loaded only when it is on.

Powertools' ``Tracer`` imports the X-Ray SDK even when tracing is disabled, and with tracing enabled it patches boto3
and requests at import: together about 0.15 s of every cold start, more than ``import boto3`` itself. The template
sets ``POWERTOOLS_TRACE_DISABLED`` from its ``XRayTracing`` parameter, so with tracing off these decorators return
the function unchanged and the SDK is never imported; with it on they are Powertools' own.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Callable, TypeVar

from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

Function = TypeVar("Function", bound=Callable)


def tracing_enabled() -> bool:
    """Powertools' own switch: ``POWERTOOLS_TRACE_DISABLED`` unset or false means trace."""
    return not resolve_truthy_env_var_choice(env=os.getenv("POWERTOOLS_TRACE_DISABLED", "false"))


def capture_lambda_handler(handler: Function) -> Function:
    """``Tracer().capture_lambda_handler`` when tracing is on (patching boto3 and requests at import), else ``handler``."""
    if not tracing_enabled():
        return handler
    from aws_lambda_powertools import Tracer

    return Tracer().capture_lambda_handler(handler)


def capture_method(method: Function) -> Function:
    """``Tracer().capture_method`` when tracing is on, else ``method``."""
    if not tracing_enabled():
        return method
    from aws_lambda_powertools import Tracer

    return Tracer().capture_method(method)


def with_core_logs(logger: Logger) -> Logger:
    """``logger``, now also the writer of the core's loggers (``connector.*``, plain ``logging``).

    Left alone they reach the Lambda runtime's root handler: plain text without the invocation's keys (function
    name, request id, correlation id), and below WARNING not at all, whatever ``LOG_LEVEL`` says. The ``connector``
    logger is created first so that core modules imported later (the wiring imports lazily) inherit its handler."""
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    logging.getLogger("connector")
    copy_config_to_registered_loggers(source_logger=logger, include={"connector"})
    return logger
