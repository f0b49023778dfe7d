"""EventBridge Scheduler, locally: invoke a function every N seconds with the schedule's ``Input``.

A Scheduler target that has an ``Input`` receives exactly that JSON as its event (no EventBridge envelope), which
is how the template's schedules name their job (``{"job": "poll"}``). Only ``rate(...)`` expressions are understood:
a cron schedule has no single interval, so ``connector local`` must be told one.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any

from .runtime import Invocable

logger = logging.getLogger(__name__)

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def parse_rate(expression: str) -> int:
    """Seconds between runs of ``rate(<n> minute[s]|hour[s]|day[s])``; ``ValueError`` for anything else."""
    text = expression.strip()
    match = _RATE.match(text)
    if match is None:
        if text.startswith(("cron(", "at(")):
            raise ValueError(
                f"schedule {expression!r} is not a fixed rate; the local run only follows rate(...) expressions, "
                "so give it an interval in seconds instead"
            )
        raise ValueError(f"schedule {expression!r} is not of the form rate(<n> minutes|hours|days)")
    value = int(match.group(1))
    if value < 1:
        raise ValueError(f"schedule {expression!r} must have a rate of at least 1")
    return value * _UNIT_SECONDS[match.group(2).rstrip("s")]


class ScheduleTicker:
    """Invokes ``function`` with the parsed ``input_json`` now and then every ``rate_seconds``."""

    def __init__(self, function: Invocable, input_json: str | dict[str, Any], rate_seconds: float) -> None:
        if rate_seconds <= 0:
            raise ValueError(f"rate_seconds must be positive, got {rate_seconds}")
        self.function = function
        self.event: Any = json.loads(input_json) if isinstance(input_json, str) else input_json
        self.rate_seconds = rate_seconds
        self.ticks = 0
        self.failures = 0

    def tick(self) -> Any:
        """One scheduled invocation; returns the function's response, raises what the invocation raised."""
        self.ticks += 1
        try:
            return self.function.invoke(self.event)
        except Exception:
            self.failures += 1
            raise

    def run_forever(self, stop_event: threading.Event) -> None:
        """Tick at once, then every ``rate_seconds`` until ``stop_event`` is set; a failed run waits for the next."""
        while not stop_event.is_set():
            try:
                self.tick()
            except Exception:
                logger.warning("scheduled run of %s failed; the next tick retries", self.function.name,
                               exc_info=True)
            stop_event.wait(self.rate_seconds)
