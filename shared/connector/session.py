"""One Acumatica session per OAuth grant, shared by every container: actions take turns, nothing collides.

Acumatica gives an OAuth grant one session (without the ``api:concurrent_access`` scope), and every container of the
stack uses the same grant, because the rotating refresh token is one chain (``connector.tokens``). While a long
operation (an action: ReleaseBill, Approve, Remove Hold) runs in that session, "only a REST API request that retrieves
the status of this long-running operation can be executed successfully. Other requests in this session will fail"
(Integration Development Guide, Action_Execution; docs/acumatica-api.md §4). So:

- actions are serialized per grant, across containers: ``OperationLease`` holds a lease in DynamoDB (the
  ``LeaseLock`` the token refresh uses) from the action's POST until its status URL answers ``204`` or the attempt
  gives up, renewing it at every status poll. An action that cannot get the lease within what the invocation can
  afford to wait sends nothing and raises ``SessionBusy``;
- any other request refused because an operation runs (``is_session_busy``) is a definite "not now": nothing
  happened, so the client waits and sends it again (``connector.acumatica``), and past its budget raises
  ``SessionBusy``, which the worker gives back to the queue without spending one of the message's attempts.

``api:concurrent_access`` would give each container a session of its own instead, but each such session is tracked
by a cookie, holds an API-user licence slot until it is signed out or idle for 10 minutes, and Lambda gives a
container no moment to sign out: recycled containers would leak sessions into the "API Login Limit". One shared
session with actions taking turns costs only waiting.
"""

from __future__ import annotations

import re
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from . import timings
from .errors import SessionBusy
from .ports import LeaseLock

LEASE_NAME = "acumatica-session"
"""``LOCK#acumatica-session``: held by the container whose action runs in the shared session."""

_BUSY_TEXT = re.compile(r"long[- ]?operation|previous operation has not been completed|operation is in progress",
                        re.IGNORECASE)


def is_session_busy(status: int, body: Any) -> bool:
    """Whether Acumatica refused a request because a long operation runs in its session.

    The refusal is an ``HttpError`` (``exceptionType`` / ``exceptionMessage``) naming the running operation:
    ``LongOperationInProgressException``, or PXLongOperation's "The previous operation has not been completed yet."
    Any status may carry it (500 in the builds seen); a body without those words is not this refusal."""
    if status < 400 or not isinstance(body, dict):
        return False
    text = " ".join(str(body.get(name) or "") for name in ("exceptionType", "exceptionMessage", "message"))
    return bool(_BUSY_TEXT.search(text))


class OperationLease:
    """Serializes Acumatica actions across containers: one at a time in the grant's one session."""

    def __init__(self, lock: LeaseLock, *, lease_seconds: float = timings.SESSION_LEASE_SECONDS,
                 poll_seconds: float = 0.25, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._lock = lock
        self._lease = lease_seconds
        self._poll = poll_seconds
        self._clock = clock
        self._sleep = sleep

    @contextmanager
    def held(self, what: str, budget: float) -> Iterator[Callable[[], bool]]:
        """Hold the session for ``what`` (an action and its status polling); yields a callable that renews the lease
        and answers whether it is still held. Waits at most ``budget`` seconds for another holder, then raises
        ``SessionBusy`` having sent nothing."""
        owner = f"{LEASE_NAME}-{uuid.uuid4()}"
        started = self._clock()
        while not self._lock.acquire(LEASE_NAME, owner, self._lease):
            waited = self._clock() - started
            if waited >= budget:
                raise SessionBusy(f"another action holds the Acumatica session; {what} waits its turn",
                                  retry_after=self._lease)
            self._sleep(min(self._poll, max(budget - waited, 0.0)) or self._poll)
        try:
            yield lambda: self._lock.holds(LEASE_NAME, owner, self._lease)
        finally:
            self._lock.release(LEASE_NAME, owner)
