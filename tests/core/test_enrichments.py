"""Escalation and the overdue comment are enrichments of an issue that already exists: Jira refusing or failing them
is audited, the update itself stands and is recorded, and the message ends normally (never in the DLQ)."""

from __future__ import annotations

import pytest

from connector.errors import AuthenticationError, PermanentError, TransientError, UncertainOutcome
from connector.sync import sync_document
from tests.core.test_sync_triage import ESCALATING, bill, context, due_in, msg
from tests.fakes import FakeAcumatica, FakeJira, make_doc

DAY = 86400.0


class RefusingJira(FakeJira):
    """Refuses labels and comments on existing issues while ``refusal`` is set (a 403, a 413, a timeout...)."""

    def __init__(self) -> None:
        super().__init__()
        self.refusal: Exception | None = None
        self.refuse = {"label", "comment"}

    def add_label(self, key, label):
        if self.refusal is not None and "label" in self.refuse:
            raise self.refusal
        return super().add_label(key, label)

    def add_comment(self, key, body):
        if self.refusal is not None and "comment" in self.refuse:
            raise self.refusal
        return super().add_comment(key, body)


def enrichment_failures(store, key) -> list[dict]:
    return [r for r in store.audit_trail(key) if r["outcome"] == "enrichment-failed"]


@pytest.mark.parametrize("refusal", [AuthenticationError("Jira PUT /issue/AP-1 answered 403"),
                                     PermanentError("Jira PUT /issue/AP-1 answered 413"),
                                     TransientError("Jira answered 503")])
def test_a_refused_escalation_leaves_the_update_recorded_and_the_message_done(store, clock, refusal):
    acu, jira = FakeAcumatica(bill(due_in(clock, 60))), RefusingJira()
    ctx = context(acu, jira, store, clock, triage=ESCALATING)
    assert sync_document(msg(), ctx) == "created"
    jira.refusal, jira.refuse = refusal, {"label"}
    clock.advance(8 * DAY)
    assert sync_document(msg(2), ctx) == "retriaged"  # no exception: the message is done
    key = make_doc().key
    (failure,) = enrichment_failures(store, key)
    assert "escalation after 7 days" in failure["reason"]
    assert store.get_state(key).snapshot["escalation"] == "7"  # the update is recorded
    assert store.get_claim(key, "ESCALATE#7").state == "failed"
    assert sync_document(msg(3), ctx) == "unchanged"


def test_a_refused_overdue_comment_leaves_the_priority_set_and_the_message_done(store, clock):
    acu, jira = FakeAcumatica(bill(due_in(clock, 1))), RefusingJira()
    ctx = context(acu, jira, store, clock)
    assert sync_document(msg(), ctx) == "created"
    (issue_key,) = jira.issues
    jira.refusal = AuthenticationError("Jira POST /issue/AP-1/comment answered 403")
    clock.advance(2 * DAY)
    assert sync_document(msg(2), ctx) == "retriaged"
    assert jira.issues[issue_key]["priority"] == "Highest" and jira.comments[issue_key] == []
    (failure,) = enrichment_failures(store, make_doc().key)
    assert "overdue comment" in failure["reason"] and "403" in failure["reason"]


def test_an_escalation_comment_that_may_have_been_posted_keeps_its_claim(store, clock):
    acu, jira = FakeAcumatica(bill(due_in(clock, 60))), RefusingJira()
    ctx = context(acu, jira, store, clock, triage=ESCALATING)
    sync_document(msg(), ctx)
    jira.refusal, jira.refuse = UncertainOutcome("timed out after sending"), {"comment"}
    clock.advance(8 * DAY)
    assert sync_document(msg(2), ctx) == "retriaged"
    assert store.get_claim(make_doc().key, "ESCALATE#7").state == "claimed"  # its retake window guards a repeat

