""""Poll now": a push notification too large to queue row by row becomes one poll, run by the poller.

The poller is the only writer of the watermarks and checkpoints: its reserved concurrency of 1 keeps two passes from
interleaving their cursor writes. So the worker never polls itself. It asks the poller to run now with an
asynchronous invoke (``InvocationType=Event``): Lambda queues the event and, while a scheduled pass is running, the
poller's reserved concurrency throttles it and Lambda retries it after, so it never runs beside another pass. The
event names the entities to read (``{"job": "poll-now", "entities": [...]}``); ``requested_entities`` keeps only
those the deployment polls. The pass reads every document changed since the watermark, so the rows of the push are
read whatever their number, and the watermark moves exactly as it does on a scheduled tick.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from .errors import TransientError
from .model import WorkMessage

POLL_NOW_JOB = "poll-now"


class LambdaPollTrigger:
    """Invokes the poller asynchronously with a ``poll-now`` event; ``client`` is a boto3 Lambda client."""

    def __init__(self, client: Any, function_name: str) -> None:
        self._client = client
        self._function_name = function_name

    def request(self, message: WorkMessage) -> str:
        event = {"job": POLL_NOW_JOB, "entities": list(message.entities or ()), "reason": message.reason or "",
                 "correlation_id": message.correlation_id}
        answer = self._client.invoke(FunctionName=self._function_name, InvocationType="Event",
                                     Payload=json.dumps(event).encode())
        if answer.get("StatusCode") != 202:
            raise TransientError(f"the poller did not accept the poll-now event ({answer.get('StatusCode')})")
        return "requested"


def requested_entities(event: Mapping[str, Any] | None, configured: Iterable[str]) -> tuple[str, ...]:
    """The entities a poller invocation reads: all configured ones on a scheduled tick; on a ``poll-now`` event only
    the configured ones it names (an event naming none of them reads nothing)."""
    configured = tuple(configured)
    if not isinstance(event, Mapping) or event.get("job") != POLL_NOW_JOB:
        return configured
    named = event.get("entities")
    wanted = {str(entity) for entity in named} if isinstance(named, list) else set()
    return tuple(entity for entity in configured if entity in wanted)
