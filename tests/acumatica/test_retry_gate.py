"""Acumatica's Retry-After closes the gate for every request to the instance, including action-status polling and
the token endpoint, and a wait longer than affordable is handed back unshortened (sandbox over real HTTP)."""

from __future__ import annotations

import pytest

from connector.acumatica import AcumaticaClient, acumatica_token_obtainer
from connector.errors import RetryLater, TransientError
from connector.http import RetryGates, make_session
from connector.model import DocumentKey
from connector.tokens import RotatingTokens
from tests.acumatica.conftest import VERSION
from tests.fakes import MemoryLock

KEY = DocumentKey("Bill", "Bill", "000001")


class GateClock:
    def __init__(self, sandbox) -> None:
        self.now = 100.0
        self.sandbox = sandbox
        self.waits: list[tuple[float, int]] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append((seconds, len(self.sandbox.requests_log)))
        self.now += seconds


@pytest.fixture
def gated(sandbox, secret):
    clock = GateClock(sandbox)
    gates = RetryGates(clock=clock, sleep=clock.sleep)
    session = make_session(total=0, gates=gates)
    tokens = RotatingTokens(name="acumatica", secrets=secret, lock=MemoryLock(),
                            obtain=acumatica_token_obtainer(sandbox.url, session))
    client = AcumaticaClient(base_url=sandbox.url, endpoint_version=VERSION, tokens=tokens, session=session,
                             sleep=lambda s: None)
    sandbox.add_document("Bill")
    client.get(KEY)
    return client, clock


def test_the_next_document_waits_out_the_instances_retry_after(sandbox, gated):
    client, clock = gated
    sandbox.fail_next(1, status=429, retry_after=9, path_contains="/Bill/")
    with pytest.raises(TransientError):
        client.get(KEY)
    sent = len(sandbox.requests_log)
    assert client.get(KEY) is not None
    assert clock.waits == [(9.0, sent)]


def test_a_long_retry_after_is_handed_back_and_nothing_is_sent_before_it(sandbox, gated):
    client, clock = gated
    sandbox.fail_next(1, status=503, retry_after=1800, path_contains="/Bill/")
    with pytest.raises(TransientError):
        client.get(KEY)
    sent = len(sandbox.requests_log)
    with pytest.raises(RetryLater) as caught:
        client.get(KEY)
    assert caught.value.retry_after == pytest.approx(1800) and len(sandbox.requests_log) == sent
