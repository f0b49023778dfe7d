"""The token lock is a lock: the holder writes only while it still holds the lease, every writer of a token-bearing
secret waits for it, and a refresh answered without a new refresh token is an error, never reuse of the spent one."""

from __future__ import annotations

import pytest
import responses

from connector.acumatica import acumatica_token_obtainer
from connector.errors import ReconnectNeeded, TransientError
from connector.http import make_session
from connector.tokens import RotatingTokens
from tests.fakes import MemoryLock, MemorySecret


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def tokens(secret, lock, clock, obtain, **options) -> RotatingTokens:
    return RotatingTokens(name="jira", secrets=secret, lock=lock, obtain=obtain, clock=clock, sleep=clock.sleep,
                          **options)


def test_a_holder_whose_lease_lapsed_during_the_refresh_does_not_write():
    clock = Clock()
    lock = MemoryLock(clock)
    secret = MemorySecret({"refresh_token": "r1"})

    def slow_obtain(current):
        clock.now += 31  # slower than this holder's (deliberately short) lease ...
        assert lock.acquire("token-refresh-jira", "the-other-worker", 30)  # ... so another worker took over
        secret.write({"refresh_token": "r2-other", "access_token": "a-other", "expires_at": clock.now + 3600})
        return {"access_token": "a-late", "refresh_token": "r2-late", "expires_at": clock.now + 3600}

    with pytest.raises(TransientError, match="lease expired"):
        tokens(secret, lock, clock, slow_obtain, lease_seconds=30).access_token()
    assert secret.read()["refresh_token"] == "r2-other"


def test_the_dynamodb_lease_is_confirmed_by_a_conditional_write(store, clock):
    assert store.acquire("token-refresh-jira", "me", 30)
    assert store.holds("token-refresh-jira", "me", 30)
    assert not store.holds("token-refresh-jira", "someone-else", 30)
    clock.advance(31)
    assert not store.holds("token-refresh-jira", "me", 30)  # lapsed: it may already be someone else's
    assert store.acquire("token-refresh-jira", "someone-else", 30)
    assert not store.holds("token-refresh-jira", "me", 30)


def test_other_writers_of_the_secret_wait_for_the_refresh_lease():
    clock = Clock()
    lock = MemoryLock(clock)
    secret = MemorySecret({"refresh_token": "r1", "client_id": "c"})
    assert lock.acquire("token-refresh-jira", "refreshing-worker", 300)
    writer = tokens(secret, lock, clock, obtain=lambda s: {})
    with pytest.raises(TransientError, match="being refreshed"):
        writer.update_secret(lambda current: {**current, "cloud_id": "x"})
    assert "cloud_id" not in secret.read()
    lock.release("token-refresh-jira", "refreshing-worker")
    writer.update_secret(lambda current: {**current, "cloud_id": "x"})
    assert secret.read() == {"refresh_token": "r1", "client_id": "c", "cloud_id": "x"}


def test_a_write_under_the_lease_keeps_a_refresh_token_rotated_meanwhile():
    clock = Clock()
    lock = MemoryLock(clock)
    secret = MemorySecret({"refresh_token": "r1"})
    writer = tokens(secret, lock, clock, obtain=lambda s: {})
    stale = secret.read()  # what a careless read-modify-write would have started from
    secret.write({"refresh_token": "r2"})  # a refresh rotated the chain in between
    writer.update_secret(lambda current: {**current, "webhook_ids": [7]})
    assert secret.read() == {"refresh_token": "r2", "webhook_ids": [7]} and stale["refresh_token"] == "r1"


BASE = "https://acme.example.com"


@responses.activate
def test_acumatica_refresh_without_a_new_refresh_token_is_an_error():
    responses.post(f"{BASE}/identity/connect/token", json={"access_token": "a2", "expires_in": 3600})
    obtain = acumatica_token_obtainer(BASE, make_session(total=0), clock=lambda: 1000.0)
    with pytest.raises(ReconnectNeeded, match="without a new refresh token"):
        obtain({"client_id": "c", "client_secret": "s", "refresh_token": "r1"})


@responses.activate
def test_acumatica_refresh_without_a_new_refresh_token_signs_in_again_and_drops_the_spent_one():
    responses.post(f"{BASE}/identity/connect/token", json={"access_token": "a2", "expires_in": 3600})
    responses.post(f"{BASE}/identity/connect/token", json={"access_token": "a3", "expires_in": 3600})
    obtain = acumatica_token_obtainer(BASE, make_session(total=0), clock=lambda: 1000.0)
    issued = obtain({"client_id": "c", "client_secret": "s", "refresh_token": "r1", "username": "u",
                     "password": "p"})
    assert issued["access_token"] == "a3" and issued["refresh_token"] == ""
    secret = MemorySecret({"client_id": "c", "client_secret": "s", "refresh_token": "r1", "username": "u",
                           "password": "p"})
    clock = Clock()
    tokens(secret, MemoryLock(clock), clock, obtain=lambda s: issued).access_token()
    assert secret.read()["refresh_token"] != "r1"
