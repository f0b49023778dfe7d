"""A worker may die between any two side effects. Crash after the n-th call to Jira, Acumatica or DynamoDB, for
every n, then let SQS redeliver: still exactly one issue, and never a second Acumatica action."""

from __future__ import annotations

import pytest

from connector.errors import TransientError
from connector.model import WorkMessage
from connector.resolve import ResolveContext, resolve_document
from connector.sync import SyncContext, sync_document
from tests.fakes import FakeAcumatica, FakeJira, make_doc


class Crash(Exception):
    """The container died."""


class Crashing:
    """Proxies an adapter; the shared countdown raises ``Crash`` right after the chosen call has taken effect."""

    def __init__(self, target, countdown: list[int]) -> None:
        self._target, self._countdown = target, countdown

    def __getattr__(self, name):
        attribute = getattr(self._target, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute

        def call(*args, **kwargs):
            result = attribute(*args, **kwargs)
            self._countdown[0] -= 1
            if self._countdown[0] == 0:
                raise Crash(f"died after {name}")
            return result

        return call


def redeliver(work, clock, attempts: int = 6):
    """SQS brings the message back after the visibility timeout (720 s), up to MaxReceiveCount times."""
    for _ in range(attempts):
        clock.advance(720)
        try:
            return work()
        except (Crash, TransientError):
            continue
    raise AssertionError("the message would have reached the DLQ")


def test_sync_crashing_after_any_call_still_makes_exactly_one_issue(store, clock):
    calls = 0
    crash_points = range(1, 40)
    for crash_after in crash_points:
        acu, jira = FakeAcumatica(make_doc(number=f"{crash_after:06d}")), FakeJira()
        countdown = [crash_after]
        ctx = SyncContext(documents=Crashing(acu, countdown), tracker=Crashing(jira, countdown),
                          store=Crashing(store, countdown), acumatica_url="https://x", owner_map={},
                          labels=("acumatica",), cleared_status="", clock=clock)
        message = WorkMessage(kind="sync", external_id=f"Bill:Bill:{crash_after:06d}", dedupe_id="d",
                              correlation_id="c")
        try:
            sync_document(message, ctx)
            calls = crash_after
            break
        except Crash:
            jira.settle()  # by the time SQS redelivers, search has caught up
            redeliver(lambda: sync_document(message, ctx), clock)
        assert len(jira.issues) == 1, f"crash after call {crash_after}"
        assert store.get_state(message.key).issue_key in jira.issues
    assert calls > 5, "the flow never completed without a crash: the sweep proves nothing"


@pytest.mark.parametrize("status", ["Balanced", "On Hold"])
def test_resolve_crashing_after_any_call_never_posts_an_action_twice(store, clock, status):
    for crash_after in range(1, 40):
        doc = make_doc(number=f"{crash_after:06d}", status=status)
        acu, jira = FakeAcumatica(doc), FakeJira()
        jira.issues["AP-1"] = {"id": "10001", "external_id": doc.key.external_id, "status": "To Do"}
        jira.comments["AP-1"] = []
        jira.settle()
        jira.move("AP-1", "Done")
        countdown = [crash_after]
        ctx = ResolveContext(documents=Crashing(acu, countdown), tracker=Crashing(jira, countdown),
                             store=Crashing(store, countdown), approve_action="Approve", clock=clock)
        message = WorkMessage(kind="resolve", external_id=doc.key.external_id, dedupe_id="r", correlation_id="c",
                              issue_key="AP-1")
        try:
            resolve_document(message, ctx)
            break
        except Crash:
            outcome = redeliver(lambda: resolve_document(message, ctx), clock)
            if outcome == "failed":  # an interrupted attempt left nothing done: the person resolves again
                jira.move("AP-1", "To Do")
                jira.move("AP-1", "Done")
                redeliver(lambda: resolve_document(
                    WorkMessage(kind="resolve", external_id=doc.key.external_id, dedupe_id="r2",
                                correlation_id="c", issue_key="AP-1"), ctx), clock)
        posted = [action for _, action in acu.actions]
        assert len(posted) == len(set(posted)), f"crash after call {crash_after}: {posted}"
        assert acu.docs[doc.key].status == "Open", f"crash after call {crash_after}"
    else:
        pytest.fail("the flow never completed without a crash")
