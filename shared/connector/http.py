"""One way to build an HTTP session for Acumatica and Jira: requests + urllib3 ``Retry``, configured for safety.

What is retried, and why:
- connection failures (nothing was sent): every method;
- 429: every method, since a throttled request was not processed; ``Retry-After`` is honoured as a *minimum* wait
  (Jira sometimes sends ``0``: clamped to 1 s) and capped, so a Lambda never sleeps away its time budget; when the
  retries run out the 429 reaches the caller, which raises ``TransientError`` and lets SQS bring the work back later;
- 5xx and read timeouts: only idempotent methods. A POST that timed out may have happened (a created issue, a released
  bill): the caller settles that by re-reading, never by resending.

What is left after the retries becomes a typed error: ``transport_error`` for a call that got no answer,
``retry_after_seconds`` for the wait a throttled or failing answer asked for.
"""

from __future__ import annotations

import email.utils
import math
from datetime import datetime, timezone

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError
from urllib3.util.retry import Retry

from .errors import ConnectorError, TransientError, UncertainOutcome

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


class PoliteRetry(Retry):
    """urllib3 ``Retry`` that also retries 429 for POST and treats ``Retry-After`` as a bounded minimum."""

    def __init__(self, *args, retry_after_cap: float = 30.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.retry_after_cap = retry_after_cap

    def new(self, **kwargs):  # urllib3 rebuilds the object on every attempt; keep our extra setting
        retry = super().new(**kwargs)
        retry.retry_after_cap = self.retry_after_cap
        return retry

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429 and self.total:
            return True
        return super().is_retry(method, status_code, has_retry_after)

    def get_retry_after(self, response) -> float | None:
        seconds = super().get_retry_after(response)
        if seconds is None:
            return None
        return min(max(seconds, 1.0), self.retry_after_cap)


def make_session(
    *,
    total: int = 4,
    backoff_factor: float = 0.5,
    backoff_max: float = 20.0,
    retry_after_cap: float = 30.0,
    pool_size: int = 4,
    user_agent: str = "acumatica-jira-connector/0.1",
    retry_statuses: tuple[int, ...] = (429, 500, 502, 503, 504),
) -> requests.Session:
    """A session whose retries follow the module's rules; ``total=0`` disables retries (tests, benchmarks)."""
    retry = PoliteRetry(
        total=total,
        connect=total,
        read=total,
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
        retry_after_cap=retry_after_cap,
    )
    adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
    session = requests.Session()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = user_agent
    return session


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
