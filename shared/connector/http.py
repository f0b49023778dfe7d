"""One way to build an HTTP session for Acumatica and Jira: requests + urllib3 ``Retry``, configured for safety.

What is retried, and why:
- connection failures (nothing was sent): every method;
- 429: every method, since a throttled request was not processed;
- 5xx and read timeouts: only idempotent methods. A POST that timed out may have happened (a created issue, a released
  bill): the caller settles that by re-reading, never by resending.

``Retry-After`` is honoured per system, not per request: every session carries ``RetryGates``, one gate per host and
port, shared by every request through that session (the container's clients and token endpoints share one session).
After a 429, or a 503 with ``Retry-After``, no request to that host leaves before the wait has passed: urllib3's own retry
waits at the gate, and so does the next document's first request. The wait is a minimum and never shortened (Jira
sometimes sends ``0``: clamped to 1 s). A wait longer than the gates may spend in place (``longest_wait``, and the
Lambda's remaining time less a reserve) is not slept at all: ``RetryLater`` carries it to the worker, which puts the
record back on the queue for at least that long.

What is left after the retries becomes a typed error: ``transport_error`` for a call that got no answer,
``retry_after_seconds`` for the wait a throttled or failing answer asked for.

Redirects are never followed (``NoRedirectSession``): a token request carries the client secret, a user's password
or a refresh token in its body, and an API request a bearer token, and a ``307`` from a misconfigured proxy would
send them on to whatever host it names. A redirect is answered by ``redirect_refused``: a ``ConfigurationError`` that
names both hosts and the setting to correct.
"""

from __future__ import annotations

import email.utils
import math
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError
from urllib3.util.retry import Retry

from . import timings
from .errors import ConfigurationError, ConnectorError, RetryLater, TransientError, UncertainOutcome
from .urls import host_of

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


GATED_STATUSES = frozenset({429, 503})
"""Answers whose ``Retry-After`` speaks for the whole system (throttled, or down for a while), not for one request."""


class RetryGate:
    """The earliest moment a request may leave for one system; thread-safe, monotonic clock."""

    def __init__(self, system: str, clock: Callable[[], float]) -> None:
        self.system = system
        self._clock = clock
        self._not_before = 0.0
        self._guard = threading.Lock()

    def hold(self, seconds: float) -> None:
        """Nothing leaves for ``seconds`` from now (a later hold never shortens an earlier, longer one)."""
        with self._guard:
            self._not_before = max(self._not_before, self._clock() + seconds)

    def remaining(self) -> float:
        with self._guard:
            return max(0.0, self._not_before - self._clock())


class RetryGates:
    """The gates of one container, by host, and how long a request may wait at one in place.

    ``bind(seconds_left)`` ties the waiting to the current invocation's remaining time (the worker and poller call it
    with the Lambda context); ``reserve_seconds`` is kept for finishing the record after the wait.
    """

    def __init__(self, *, longest_wait: float = timings.LONGEST_WAIT_IN_PLACE_SECONDS, reserve_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.longest_wait = longest_wait
        self.reserve_seconds = reserve_seconds
        self._clock = clock
        self._sleep = sleep
        self._seconds_left: Callable[[], float] | None = None
        self._gates: dict[str, RetryGate] = {}
        self._guard = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def count(self, gate: RetryGate, what: str) -> None:
        """One more ``what`` (``requests``, ``throttled``) for the gate's system, for the handler's metrics."""
        with self._guard:
            self._counts[(gate.system, what)] += 1

    def take_counts(self) -> dict[tuple[str, str], int]:
        """``{(host:port, what): n}`` since the last call, and start again (one invocation's worth)."""
        with self._guard:
            counts, self._counts = dict(self._counts), Counter()
        return counts

    def bind(self, seconds_left: Callable[[], float] | None) -> None:
        self._seconds_left = seconds_left

    def for_url(self, url: str) -> RetryGate:
        parts = urlsplit(url)
        host = f"{(parts.hostname or url).lower()}:{parts.port or parts.scheme}"  # a system is a host and port
        with self._guard:
            if host not in self._gates:
                self._gates[host] = RetryGate(host, self._clock)
            return self._gates[host]

    def affordable(self) -> float:
        """The longest wait to spend in place now: ``longest_wait``, bounded by the invocation's remaining time."""
        if self._seconds_left is None:
            return self.longest_wait
        return max(0.0, min(self.longest_wait, self._seconds_left() - self.reserve_seconds))

    def pass_through(self, gate: RetryGate) -> None:
        """Wait until ``gate`` opens, or raise ``RetryLater`` (sending nothing) if that is longer than affordable."""
        wait = gate.remaining()
        if wait <= 0:
            return
        if wait > self.affordable():
            raise RetryLater(f"{gate.system} asked to wait {wait:.0f} s before the next request; "
                             "the work goes back on the queue until then", retry_after=wait)
        self._sleep(wait)

    def observe(self, gate: RetryGate, status: int, seconds: float | None) -> None:
        if status in GATED_STATUSES and seconds is not None:
            gate.hold(seconds)


_passing = threading.local()
"""The gate of the request being sent on this thread, for ``PoliteRetry`` (urllib3 rebuilds it on every attempt)."""


class GatedAdapter(HTTPAdapter):
    """Every request waits at its system's gate first; a 429/503 answer with ``Retry-After`` closes the gate.

    ``max_timeout`` (connect, read), when given, caps whatever timeout the caller asked for: the command-line tool
    runs the functions' clients, whose timeouts suit a Lambda, with the short ones a person at a prompt needs."""

    def __init__(self, gates: RetryGates, max_timeout: tuple[float, float] | None = None, **kwargs) -> None:
        self.gates = gates
        self.max_timeout = max_timeout
        super().__init__(**kwargs)

    def send(self, request, *args, **kwargs):
        if self.max_timeout is not None:
            kwargs["timeout"] = _capped(kwargs.get("timeout"), self.max_timeout)
        gate = self.gates.for_url(request.url)
        self.gates.pass_through(gate)
        _passing.current = (self.gates, gate)
        self.gates.count(gate, "requests")
        try:
            response = super().send(request, *args, **kwargs)
        finally:
            _passing.current = None
        if response.status_code == 429:  # the last answer: retried 429s were counted as they were waited out
            self.gates.count(gate, "throttled")
        self.gates.observe(gate, response.status_code, retry_after_seconds(response, minimum=1.0))
        return response


class PoliteRetry(Retry):
    """urllib3 ``Retry`` that also retries 429 for POST and waits out ``Retry-After`` at the system's gate."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429 and self.total:
            return True
        return super().is_retry(method, status_code, has_retry_after)

    def increment(self, *args, **kwargs) -> Retry:
        """Count the attempt about to be made again, and a 429 that caused it: a license counts attempts, not calls
        (the first attempt and the last answer are counted by ``GatedAdapter``)."""
        retried = super().increment(*args, **kwargs)  # raises once the retries are spent: then nothing is retried
        current = getattr(_passing, "current", None)
        if current is not None:
            gates, gate = current
            gates.count(gate, "requests")
            response = kwargs.get("response")
            if response is not None and getattr(response, "status", None) == 429:
                gates.count(gate, "throttled")
        return retried

    def get_retry_after(self, response) -> float | None:
        seconds = super().get_retry_after(response)
        return None if seconds is None else max(seconds, 1.0)

    def sleep_for_retry(self, response) -> bool:
        """Hold the gate for the full wait, then pass it (or raise ``RetryLater``): the retry never goes early."""
        seconds = self.get_retry_after(response)
        if seconds is None:
            return False
        current = getattr(_passing, "current", None)
        if current is None:  # used outside a GatedAdapter: plain urllib3 behaviour
            time.sleep(seconds)
            return True
        gates, gate = current
        gate.hold(seconds)
        gates.pass_through(gate)
        return True


REDIRECT_STATUSES = frozenset({300, 301, 302, 303, 307, 308})


class NoRedirectSession(requests.Session):
    """A session that hands every redirect back to the caller instead of following it, whatever a call asks.

    Every call site also says ``allow_redirects=False`` where credentials travel; this makes a call that forgot it
    safe as well."""

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


def redirect_refused(system: str, setting: str, response: requests.Response) -> ConfigurationError | None:
    """The error for an answer that redirects (3xx with a ``Location``), else ``None``: nothing is sent on to it."""
    if response.status_code not in REDIRECT_STATUSES:
        return None
    target = response.headers.get("Location") or ""
    where = host_of(urljoin(response.url or "", target)) if target else "nowhere"
    return ConfigurationError(
        f"{system} at {host_of(response.url or '')} answered {response.status_code} redirecting to {where}; "
        f"credentials and tokens are never sent on to a redirect: set {setting} to the address that answers itself")


def make_session(
    *,
    total: int = timings.HTTP_RETRIES,
    backoff_factor: float = 0.5,
    backoff_max: float = 20.0,
    gates: RetryGates | None = None,
    pool_size: int = 4,
    user_agent: str = "acumatica-jira-connector/0.1",
    retry_statuses: tuple[int, ...] = (429, 500, 502, 503, 504),
    connect_retries: int | None = None,
    read_retries: int | None = None,
    max_timeout: tuple[float, float] | None = None,
) -> requests.Session:
    """A session whose retries follow the module's rules; ``total=0`` disables retries (tests, benchmarks).

    Sessions made with the same ``gates`` share them (``gates_of`` hands out a session's own). ``connect_retries``
    and ``read_retries`` default to ``total``; ``max_timeout`` caps every request's (connect, read) timeout."""
    retry = PoliteRetry(
        total=total,
        connect=total if connect_retries is None else connect_retries,
        read=total if read_retries is None else read_retries,
        status=total,
        other=0,
        allowed_methods=IDEMPOTENT_METHODS,
        status_forcelist=retry_statuses,
        backoff_factor=backoff_factor,
        backoff_max=backoff_max,
        backoff_jitter=backoff_factor,
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
    )
    adapter = GatedAdapter(gates or RetryGates(), max_timeout, max_retries=retry, pool_connections=pool_size,
                           pool_maxsize=pool_size)
    session = NoRedirectSession()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


def _capped(timeout: object, cap: tuple[float, float]) -> tuple[float, float]:
    """The (connect, read) timeout ``timeout`` (a number, a pair, or ``None`` for none), no longer than ``cap``."""
    if isinstance(timeout, tuple):
        connect, read = timeout
    elif isinstance(timeout, (int, float)):
        connect = read = timeout
    else:  # none given (or a urllib3 Timeout, which this project never passes): the cap itself
        return cap
    return (cap[0] if connect is None else min(float(connect), cap[0]),
            cap[1] if read is None else min(float(read), cap[1]))


def gates_of(session: requests.Session) -> RetryGates | None:
    """The gates a ``make_session`` session waits at (``None`` for any other session)."""
    adapter = session.get_adapter("https://")
    return adapter.gates if isinstance(adapter, GatedAdapter) else None


def retry_after_seconds(response: requests.Response, minimum: float = 0.0) -> float | None:
    """``Retry-After`` in seconds, from either of its forms (delta-seconds or HTTP-date), never below ``minimum``.

    ``None`` when the header is missing or unreadable, so the caller can fall back to its own default wait.
    """
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:  # "-0000": UTC with no claim about local time
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = (moment - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, minimum)


def transport_error(system: str, method: str, where: str, exc: requests.RequestException, *,
                    may_have_happened: bool) -> ConnectorError:
    """The error for a call that got no answer, deciding whether it may be resent.

    A connect failure or connect timeout sent nothing, so it is plainly transient. Otherwise the request may have
    arrived: when its side effect matters (``may_have_happened``, typically a POST) it is an ``UncertainOutcome``,
    which the caller settles by re-reading. ``where`` is a path, never a URL with a query: messages must stay free of
    secrets, so neither headers nor tokens go in.
    """
    call = f"{system} {method} {where}"
    failure = type(exc).__name__
    if may_have_happened and not _never_sent(exc):
        return UncertainOutcome(f"{call} got no answer after sending ({failure}); it may have happened: re-read "
                                "before trying again, do not resend")
    return TransientError(f"{call} got no answer ({failure})")


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether the connection was never made (urllib3's ``NewConnectionError`` is a ``ConnectTimeoutError``)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, ConnectTimeoutError)
