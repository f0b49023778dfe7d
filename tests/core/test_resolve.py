"""Return flow: act only when the status allows it, and never twice."""

from dataclasses import replace

import pytest

from connector.errors import TransientError, ValidationError
from connector.model import WorkMessage
from connector.resolve import ResolveContext, resolve_document
from tests.fakes import FakeAcumatica, FakeJira, make_doc


def setup(doc, store, clock):
    acu, jira = FakeAcumatica(doc), FakeJira()
    jira.issues["AP-1"] = {"id": "10001", "external_id": doc.key.external_id, "status": "To Do"}
    jira.comments["AP-1"] = []
    jira.settle()
    jira.move("AP-1", "Done")
    ctx = ResolveContext(documents=acu, tracker=jira, store=store, approve_action="Approve", clock=clock)
    return acu, jira, ctx


def resolve_msg(doc, dedupe="r1"):
    return WorkMessage(kind="resolve", external_id=doc.key.external_id, dedupe_id=dedupe, correlation_id="c",
                       issue_key="AP-1")


def test_balanced_bill_is_released_once_and_the_outcome_commented(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira, ctx = setup(doc, store, clock)
    assert resolve_document(resolve_msg(doc), ctx) == "done"
    assert acu.actions == [("Bill:Bill:000123", "ReleaseBill")]
    assert "Open" in str(jira.comments["AP-1"][-1])


def test_duplicate_deliveries_and_replays_never_post_twice(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira, ctx = setup(doc, store, clock)
    for dedupe in ("r1", "r1", "r2", "replay"):
        resolve_document(resolve_msg(doc, dedupe), ctx)
    assert acu.actions == [("Bill:Bill:000123", "ReleaseBill")]


def test_bill_on_hold_leaves_hold_then_is_released(store, clock):
    doc = make_doc(status="On Hold")
    acu, jira, ctx = setup(doc, store, clock)
    assert resolve_document(resolve_msg(doc), ctx) == "done"
    assert [a for _, a in acu.actions] == ["RemoveHold", "ReleaseBill"]


def test_pending_approval_order_is_approved_with_the_configured_action(store, clock):
    doc = make_doc("PurchaseOrder", "PO000045", status="Pending Approval", hold=False)
    acu, jira, ctx = setup(doc, store, clock)
    resolve_document(resolve_msg(doc), ctx)
    assert acu.actions == [("PurchaseOrder:Normal:PO000045", "Approve")]


def test_status_that_allows_nothing_gets_a_comment_and_no_action(store, clock):
    doc = make_doc(status="Closed", hold=False)
    acu, jira, ctx = setup(doc, store, clock)
    assert resolve_document(resolve_msg(doc), ctx) == "no-action"
    assert acu.actions == [] and "Closed" in str(jira.comments["AP-1"][-1])


def test_refused_action_is_reported_the_issue_reopened_and_retried_by_resolving_again(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira, ctx = setup(doc, store, clock)
    acu.fail_action = ValidationError("Period is closed")
    assert resolve_document(resolve_msg(doc), ctx) == "failed"
    told = str(jira.comments["AP-1"][-1])
    assert "Period is closed" in told and "Acumatica updated" not in told
    assert jira.issues["AP-1"]["status"] == "To Do"  # reopened: a resolved issue must not hide the stuck bill
    assert resolve_document(resolve_msg(doc, "replay"), ctx) == "not-resolved"  # a replay repeats nothing
    acu.fail_action = None
    jira.move("AP-1", "Done")  # a person resolves it again: a new decision
    assert resolve_document(resolve_msg(doc, "r2"), ctx) == "done"
    assert acu.actions == [("Bill:Bill:000123", "ReleaseBill")]


def test_uncertain_outcome_is_settled_by_rereading_never_by_posting_again(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira, ctx = setup(doc, store, clock)
    acu.lose_response_once = True  # the release happened, but the answer was lost
    assert resolve_document(resolve_msg(doc), ctx) == "done"
    resolve_document(resolve_msg(doc, "r2"), ctx)
    assert acu.actions == [("Bill:Bill:000123", "ReleaseBill")]


def test_crash_after_the_action_took_effect_never_posts_again(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira, ctx = setup(doc, store, clock)
    original = acu.invoke_action

    def crash(key, action):
        original(key, action)
        raise RuntimeError("worker died before recording the outcome")

    acu.invoke_action = crash
    with pytest.raises(RuntimeError):
        resolve_document(resolve_msg(doc), ctx)
    acu.invoke_action = original
    assert resolve_document(resolve_msg(doc), ctx) == "no-action"  # re-read: already Open
    assert acu.actions == [("Bill:Bill:000123", "ReleaseBill")]


def test_crash_before_the_action_is_settled_by_status_and_never_resent_blindly(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira, ctx = setup(doc, store, clock)

    def crash(key, action):
        raise RuntimeError("worker died while sending the action")

    original, acu.invoke_action = acu.invoke_action, crash
    with pytest.raises(RuntimeError):
        resolve_document(resolve_msg(doc), ctx)
    acu.invoke_action = original
    with pytest.raises(TransientError):  # too early to tell: the attempt might still be running
        resolve_document(resolve_msg(doc), ctx)
    clock.advance(1000)
    assert resolve_document(resolve_msg(doc), ctx) == "failed"
    assert acu.actions == []
    assert "resolve the issue again" in str(jira.comments["AP-1"][-1])
    jira.move("AP-1", "Done")  # the issue was reopened; a new resolution retries it
    assert resolve_document(resolve_msg(doc, "r2"), ctx) == "done"
    assert acu.actions == [("Bill:Bill:000123", "ReleaseBill")]


def test_unknown_document_is_commented_and_skipped(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira, ctx = setup(doc, store, clock)
    acu.docs.clear()
    assert resolve_document(resolve_msg(doc), ctx) == "not-found"
    assert acu.actions == []


def test_a_late_delivery_for_an_issue_reopened_since_does_nothing(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira, ctx = setup(doc, store, clock)
    jira.issues["AP-1"]["status"] = "In Progress"
    assert resolve_document(resolve_msg(doc), ctx) == "not-resolved"
    assert acu.actions == [] and jira.comments["AP-1"] == []


def test_configured_resolved_statuses_replace_the_done_category(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira, ctx = setup(doc, store, clock)
    ctx = replace(ctx, resolved_statuses=("Approved",))
    assert resolve_document(resolve_msg(doc), ctx) == "not-resolved"  # "Done" is not a configured name
    jira.statuses["Approved"] = "indeterminate"
    jira.move("AP-1", "Approved")
    assert resolve_document(resolve_msg(doc), ctx) == "done"
