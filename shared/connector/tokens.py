"""Access tokens from OAuth clients whose refresh tokens rotate (Acumatica and Jira both do).

A rotated refresh token is single-use: if two Lambda containers refresh at once, one of them burns the chain (Jira
invalidates the whole grant when an old refresh token is replayed outside its 10-minute leeway). So exactly one
container refreshes, under a DynamoDB lease lock, and it writes the new refresh token back to Secrets Manager
*before* it uses the new access token. Every other container waits and re-reads the secret. Tokens are cached per
container and never logged: this module logs nothing but lock timing.

The lock is a lock: its lease outlasts the slowest refresh (``timings.TOKEN_LEASE_SECONDS``), the holder confirms
with a conditional write that it still holds the lease before it writes the new tokens, and every other writer of a
token-bearing secret (maintenance, ``connector connect``, the cloud id) goes through ``update_secret``, under the same
lease, so no read-modify-write can put back a refresh token that was spent meanwhile.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Callable, Mapping

from . import timings
from .errors import TransientError
from .ports import LeaseLock, SecretStore

TOKEN_FIELDS = ("access_token", "refresh_token", "expires_at")

ObtainTokens = Callable[[Mapping[str, Any]], Mapping[str, Any]]
"""Given the current secret, call the token endpoint and return the fields to write back:
``access_token``, ``expires_at`` (epoch seconds) and, when the server rotated it, ``refresh_token``.
Raises ``ReconnectNeeded`` when the grant is dead, ``TransientError`` when the endpoint is unavailable."""


class RotatingTokens:
    """Hands out a valid access token, refreshing it at most once at a time across all containers."""

    def __init__(
        self,
        *,
        name: str,
        secrets: SecretStore,
        lock: LeaseLock,
        obtain: ObtainTokens,
        refresh_margin_seconds: float = 120.0,
        lease_seconds: float = timings.TOKEN_LEASE_SECONDS,
        wait_seconds: float = timings.TOKEN_WAIT_SECONDS,
        poll_seconds: float = 0.25,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._name = name
        self._secrets = secrets
        self._lock = lock
        self._obtain = obtain
        self._margin = refresh_margin_seconds
        self._lease = lease_seconds
        self._wait = wait_seconds
        self._poll = poll_seconds
        self._clock = clock
        self._sleep = sleep
        self._owner = f"{name}-{uuid.uuid4()}"
        self._token: str | None = None
        self._expires_at = 0.0
        self._rejected: str | None = None
        self._unsaved: dict[str, Any] | None = None
        self.refreshes = 0
        """Token grants this container obtained (the handlers report them as a metric)."""

    @property
    def lock_name(self) -> str:
        return f"token-refresh-{self._name}"

    def access_token(self) -> str:
        """A token that is valid for at least the refresh margin; refreshes (once, cluster-wide) when needed."""
        if self._unsaved is not None:  # the only copy of the rotated chain: write it back first, under the lease
            unsaved = self._unsaved
            self.update_secret(lambda current: {**current, **{k: unsaved[k] for k in TOKEN_FIELDS if k in unsaved}})
        if self._token and self._token != self._rejected and self._fresh(self._expires_at):
            return self._token
        if self._adopt(self._secrets.read()):
            return self._token  # type: ignore[return-value]
        deadline = self._clock() + self._wait
        while True:
            if self._lock.acquire(self.lock_name, self._owner, self._lease):
                try:
                    return self._refresh_holding_lock()
                finally:
                    self._lock.release(self.lock_name, self._owner)
            # Someone else is refreshing: wait for the token they write back.
            while self._clock() < deadline:
                self._sleep(self._poll)
                if self._adopt(self._secrets.read()):
                    return self._token  # type: ignore[return-value]
                if self._lock.acquire(self.lock_name, self._owner, self._lease):
                    try:
                        return self._refresh_holding_lock()
                    finally:
                        self._lock.release(self.lock_name, self._owner)
            raise TransientError(f"{self._name} token refresh is held by another worker; try again shortly")

    def update_secret(self, change: Callable[[dict[str, Any]], Mapping[str, Any]]) -> dict[str, Any]:
        """Write ``change(current secret)`` as the whole secret, under the refresh lease; returns what was written."""
        deadline = self._clock() + self._wait
        while not self._lock.acquire(self.lock_name, self._owner, self._lease):
            if self._clock() >= deadline:
                raise TransientError(f"{self._name} secret is being refreshed by another worker; try again shortly")
            self._sleep(self._poll)
        try:
            updated = dict(change(self._secrets.read()))
            self._confirm_lease()
            self._persist(updated)
        finally:
            self._lock.release(self.lock_name, self._owner)
        self._adopt(updated)
        return updated

    def invalidate(self, token: str) -> None:
        """The server refused ``token`` (401): never hand it out again, refresh on the next call."""
        self._rejected = token
        if self._token == token:
            self._token = None
            self._expires_at = 0.0

    def _fresh(self, expires_at: float) -> bool:
        return expires_at - self._margin > self._clock()

    def _adopt(self, secret: Mapping[str, Any]) -> bool:
        token = secret.get("access_token")
        expires_at = float(secret.get("expires_at") or 0)
        if token and token != self._rejected and self._fresh(expires_at):
            self._token, self._expires_at = str(token), expires_at
            return True
        return False

    def _refresh_holding_lock(self) -> str:
        current = self._secrets.read()
        if self._adopt(current):  # refreshed by someone else between our read and our lock
            return self._token  # type: ignore[return-value]
        issued = dict(self._obtain(current))  # ReconnectNeeded / TransientError propagate to the caller
        self.refreshes += 1
        updated = {**current, **{k: v for k, v in issued.items() if v is not None}}
        self._confirm_lease()
        self._persist(updated)
        self._token = str(updated["access_token"])
        self._expires_at = float(updated["expires_at"])
        self._rejected = None
        return self._token

    def _confirm_lease(self) -> None:
        """Still the holder? Otherwise another worker took over the expired lease, and its write is the one to keep."""
        if not self._lock.holds(self.lock_name, self._owner, self._lease):
            raise TransientError(f"the {self._name} token lease expired during the refresh; not writing over the "
                                 "worker that took it over")

    def _persist(self, secret: dict[str, Any]) -> None:
        """Write the rotated tokens back; if that fails, keep them to retry, since the old refresh token is spent."""
        try:
            self._secrets.write(secret)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the new chain only in memory
            self._unsaved = secret
            raise TransientError(f"could not store the rotated {self._name} tokens: {type(exc).__name__}") from None
        self._unsaved = None
