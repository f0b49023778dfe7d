"""Retry-After is honoured per system, not per request, and a long one is never shortened.

Driven through the Jira sandbox over real HTTP (urllib3 retries included). The gates run on their own fake clock, and
the fake ``sleep`` checks, at the moment it is asked to wait, that the sandbox has received nothing meanwhile.
"""

from __future__ import annotations

import pytest

from connector.errors import RetryLater, TransientError
from connector.http import RetryGates, make_session
from connector.jira import JiraClient, jira_token_obtainer
from connector.ports import IssueDraft
from connector.tokens import RotatingTokens
from tests.fakes import MemoryLock, MemorySecret


class GateClock:
    """The gates' monotonic clock; ``sleep`` advances it and records each wait with the sandbox's request count."""

    def __init__(self, sandbox) -> None:
        self.now = 5_000.0
        self.sandbox = sandbox
        self.waits: list[tuple[float, int]] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append((seconds, len(self.sandbox.exchanges())))
        self.now += seconds


def gated_client(sandbox, clock: GateClock, *, retries: int = 0, longest_wait: float = 30.0,
                 seconds_left=None) -> tuple[JiraClient, RetryGates]:
    gates = RetryGates(longest_wait=longest_wait, clock=clock, sleep=clock.sleep)
    gates.bind(seconds_left)
    session = make_session(total=retries, backoff_factor=0, gates=gates)
    secret = MemorySecret({"client_id": sandbox.client_id, "client_secret": sandbox.client_secret,
                           "refresh_token": sandbox.issue_refresh_token(), "cloud_id": sandbox.cloud_id})
    tokens = RotatingTokens(name="jira", secrets=secret, lock=MemoryLock(),
                            obtain=jira_token_obtainer(sandbox.url, session), poll_seconds=0.02)
    client = JiraClient(api_url=sandbox.url, cloud_id=sandbox.cloud_id, project_key=sandbox.project_key,
                        external_id_field=sandbox.external_id_field, tokens=tokens, session=session)
    client.myself()  # token obtained, connection warm
    return client, gates


def test_after_a_429_no_request_to_that_system_leaves_before_the_wait(sandbox):
    clock = GateClock(sandbox)
    client, _ = gated_client(sandbox, clock)
    sandbox.fail_next(1, status=429, retry_after=7, path_contains="/myself")
    with pytest.raises(TransientError):
        client.myself()
    sent = len(sandbox.exchanges())
    client.project()  # the next document's first request, on another path
    assert clock.waits == [(7.0, sent)]  # it waited the full 7 s, and nothing left meanwhile
    assert len(sandbox.exchanges()) == sent + 1


def test_a_503_with_retry_after_closes_the_gate_too(sandbox):
    clock = GateClock(sandbox)
    client, _ = gated_client(sandbox, clock)
    sandbox.fail_next(1, status=503, retry_after=4, method="POST", path_contains="/issue")
    with pytest.raises(TransientError):
        client.create_issue(IssueDraft(summary="s", description={"type": "doc", "version": 1, "content": []},
                                       external_id="Bill:Bill:1"))
    client.myself()
    assert [seconds for seconds, _ in clock.waits] == [4.0]


def test_urllib3_retries_wait_at_the_same_gate_for_the_full_wait(sandbox):
    clock = GateClock(sandbox)
    client, _ = gated_client(sandbox, clock, retries=2)
    sandbox.fail_next(1, status=429, retry_after=12, path_contains="/myself")
    assert client.myself()["accountId"]
    assert [seconds for seconds, _ in clock.waits] == [12.0]


def test_a_wait_longer_than_affordable_is_never_shortened_and_nothing_is_resent(sandbox):
    clock = GateClock(sandbox)
    client, _ = gated_client(sandbox, clock, retries=3)
    sandbox.fail_next(1, status=429, retry_after=1847, path_contains="/myself")
    before = len(sandbox.exchanges())
    with pytest.raises(RetryLater) as caught:
        client.myself()
    assert caught.value.retry_after == pytest.approx(1847)
    assert len(sandbox.exchanges()) == before + 1  # no early resend
    with pytest.raises(RetryLater) as again:  # the rest of the batch is not sent either
        client.project()
    assert again.value.retry_after == pytest.approx(1847)
    assert len(sandbox.exchanges()) == before + 1 and clock.waits == []
    clock.now += 1847
    assert client.project()


def test_the_wait_is_bounded_by_the_lambdas_remaining_time(sandbox):
    clock = GateClock(sandbox)
    client, gates = gated_client(sandbox, clock, seconds_left=lambda: 20.0)  # 10 s reserve: 10 s affordable
    sandbox.fail_next(1, status=429, retry_after=15, path_contains="/myself")
    with pytest.raises(TransientError):
        client.myself()
    with pytest.raises(RetryLater):
        client.myself()
    gates.bind(lambda: 300.0)
    assert client.myself()["accountId"]
    assert [round(seconds) for seconds, _ in clock.waits] == [15]



@pytest.mark.parametrize("retries, outcome", [(2, "answered"), (0, "refused")])
def test_every_429_is_counted_once_whether_urllib3_retried_it_or_it_was_the_last_answer(sandbox, retries, outcome):
    """Through real urllib3 retries (not a mock of them): the dashboard's counts match what Jira received."""
    clock = GateClock(sandbox)
    client, gates = gated_client(sandbox, clock, retries=retries)
    gates.take_counts()  # the token grant and the warm-up call are not this test's
    before = len(sandbox.exchanges())
    sandbox.fail_next(1, status=429, retry_after=1, path_contains="/myself")
    if outcome == "answered":
        client.myself()
    else:
        with pytest.raises(TransientError):
            client.myself()
    received = sandbox.exchanges()[before:]
    counts = {what: n for (_, what), n in gates.take_counts().items()}
    assert counts["throttled"] == sum(1 for e in received if e["status"] == 429) == 1
    assert counts["requests"] == len(received) == (2 if outcome == "answered" else 1)  # attempts, as a license counts
    assert gates.take_counts() == {}  # the next invocation starts from zero
