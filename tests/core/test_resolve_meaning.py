"""The return flow carries out what ``decide`` answers: a "no" posts nothing and is told once, a rule's or an app's
move is told once, a person outside their authority is refused and the issue reopened for someone who may decide,
and every action's comment and audit name who decided under which rule. Fakes and moto's table from template.yaml."""

from __future__ import annotations

from dataclasses import replace

import pytest

from connector.decisions import AUTOMATION_FOR_JIRA, DecisionPolicy, parse_decision_authority
from connector.model import WorkMessage
from connector.resolve import ResolveContext, resolve_document
from connector.sync import sync_document
from tests.core.test_sync_triage import RULES, bill, context as sync_context, due_in
from tests.fakes import FakeAcumatica, FakeJira, make_doc, recorded
from tests.faults import Faults

AUTHORITY = parse_decision_authority({"ap-clerks": {"Bill": 1000}, "finance-controllers": {"*": None}})


def context(acu, jira, store, clock, **overrides):
    return ResolveContext(documents=acu, tracker=jira, store=store, approve_action="Approve", clock=clock,
                          **overrides)


def message(doc, dedupe="r1", issue_key="AP-1"):
    return WorkMessage(kind="resolve", external_id=doc.key.external_id, dedupe_id=dedupe, correlation_id="c",
                       issue_key=issue_key)


def said(jira, key="AP-1") -> list[str]:
    return [str(comment) for comment in jira.comments[key]]


def people(jira):
    jira.statuses["Won't Do"] = "done"
    jira.groups.update({"clerk": {"ap-clerks", "jira-software-users"}, "controller": {"finance-controllers"},
                        "nobody": {"jira-software-users"}})
    jira.accounts.update({AUTOMATION_FOR_JIRA: ("app", True), "other-app": ("app", True),
                          "customer": ("customer", True), "left": ("atlassian", False)})
    return jira


@pytest.mark.parametrize(("status", "resolution", "how"), [
    ("Won't Do", None, "status Won't Do"),        # team-managed: the status says no
    ("Done", "Won't Do", "resolution Won't Do"),  # company-managed: the resolution says no
])
def test_a_no_posts_nothing_tells_once_and_is_recorded(store, clock, status, resolution, how):
    doc = make_doc(status="On Hold")
    acu, jira = FakeAcumatica(doc), people(FakeJira())
    recorded(doc, store, jira)
    jira.move("AP-1", status, resolution=resolution)
    ctx = context(acu, jira, store, clock)
    assert resolve_document(message(doc), ctx) == "declined"
    assert resolve_document(message(doc, "r1-retry"), ctx) == "duplicate"
    assert acu.actions == []
    (comment,) = said(jira)
    assert "Resolved as Won't Do" in comment and "stays on hold" in comment and "nothing was posted" in comment
    declined = [r for r in store.audit_trail(doc.key) if r["outcome"] == "declined"]
    assert declined[0]["details"]["declined_as"] == how and declined[0]["details"]["decided_by"] == "person-account"
    assert store.get_state(doc.key).declined


@pytest.mark.parametrize("actor", [AUTOMATION_FOR_JIRA, "other-app", "customer", "left"])
def test_a_rule_an_app_a_customer_or_a_deactivated_account_acts_on_nothing_and_is_told_once(store, clock, actor):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira = FakeAcumatica(doc), people(FakeJira())
    recorded(doc, store, jira)
    jira.move("AP-1", "Done", actor=actor)
    ctx = context(acu, jira, store, clock)
    assert resolve_document(message(doc), ctx) == "not-a-person"
    assert resolve_document(message(doc, "sweep"), ctx) == "duplicate"
    assert acu.actions == [] and jira.issues["AP-1"]["status"] == "Done"  # no action, not even a reopen
    (comment,) = said(jira)
    assert "No action was taken" in comment and "only a person's resolution acts" in comment
    assert [r["details"]["decided_by"] for r in store.audit_trail(doc.key) if r["outcome"] == "not-a-person"] == [actor]


def test_a_clerk_above_the_limit_is_refused_and_a_controller_then_releases_once(store, clock):
    doc = make_doc(status="Balanced", hold=False, amount="1250.00")
    acu, jira = FakeAcumatica(doc), people(FakeJira())
    recorded(doc, store, jira)
    ctx = context(acu, jira, store, clock, policy=DecisionPolicy(authority=AUTHORITY))
    jira.move("AP-1", "Done", actor="clerk")
    assert resolve_document(message(doc), ctx) == "refused"
    assert acu.actions == [] and jira.issues["AP-1"]["status"] == "To Do"  # reopened for someone who may decide
    (told,) = said(jira)
    assert "ap-clerks: Bill up to 1,000.00 USD" in told and "finance-controllers: any document, no limit" in told
    refused = next(r for r in store.audit_trail(doc.key) if r["outcome"] == "refused")
    assert refused["details"]["groups"] == ["ap-clerks", "jira-software-users"]
    assert refused["details"]["may_decide"] == ["finance-controllers: any document, no limit"]

    jira.move("AP-1", "Done", actor="controller")
    assert resolve_document(message(doc, "r2"), ctx) == "done"
    for again in ("r1-late", "r2-late", "sweep"):  # late copies of either decision act on nothing more
        assert resolve_document(message(doc, again), ctx) == "duplicate"
    assert acu.actions == [(doc.key.external_id, "ReleaseBill")]
    outcome = said(jira)[-1]
    assert "Acumatica updated" in outcome
    assert "Decided by controller (groups: finance-controllers) under finance-controllers: any document" in outcome
    for record in store.audit_trail(doc.key):
        if record["event"] == "action":  # every action names who decided and the rule that allowed it
            assert record["details"]["decided_by"] == "controller"
            assert record["details"]["rule"] == "finance-controllers: any document, no limit"


@pytest.mark.parametrize("doc, actor, told", [
    pytest.param(make_doc("PurchaseOrder", "PO000045", status="Pending Approval", hold=False, amount="10.00"), "clerk",
                 "may not decide this PurchaseOrder of 10.00 USD", id="a clerk whose limit covers bills only, on a PO"),
    pytest.param(make_doc(status="Balanced", hold=False, amount="1.00"), "nobody",
                 "neither their groups nor their account", id="a person in no group of the table"),
])
def test_a_person_the_authority_table_does_not_cover_is_refused(doc, actor, told, store, clock):
    acu, jira = FakeAcumatica(doc), people(FakeJira())
    recorded(doc, store, jira)
    jira.move("AP-1", "Done", actor=actor)
    assert resolve_document(message(doc), context(acu, jira, store, clock,
                                                  policy=DecisionPolicy(authority=AUTHORITY))) == "refused"
    assert acu.actions == [] and told in said(jira)[0]


def test_the_groups_are_read_only_when_a_table_limits_who_decides(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira = FakeAcumatica(doc), people(FakeJira())
    recorded(doc, store, jira)
    jira.move("AP-1", "Done", actor="clerk")
    assert resolve_document(message(doc), context(acu, jira, store, clock)) == "done"
    assert "groups" not in jira.calls
    assert "no DecisionAuthority table limits who decides" in said(jira)[-1]


def test_decline_action_rejects_a_purchase_order_pending_approval_through_the_instance_check(store, clock):
    doc = make_doc("PurchaseOrder", "PO000046", status="Pending Approval", hold=False)
    acu, jira = FakeAcumatica(doc), people(FakeJira())
    recorded(doc, store, jira)
    jira.move("AP-1", "Done", actor="controller", resolution="Won't Do")
    policy = DecisionPolicy(decline_actions={"PurchaseOrder": "REJECT"}, authority=AUTHORITY)
    ctx = context(acu, jira, store, clock, policy=policy)
    assert resolve_document(message(doc), ctx) == "done"
    assert resolve_document(message(doc, "again"), ctx) == "duplicate"
    assert acu.actions == [(doc.key.external_id, "Reject")]  # as the instance spells it
    assert acu.docs[doc.key].status == "Rejected" and "Reject: Pending Approval → Rejected" in said(jira)[-1]
    assert store.get_state(doc.key).declined  # a "no" carried out: polls leave the closed issue alone


def test_a_decline_action_the_instance_does_not_offer_is_not_sent(store, clock):
    doc = make_doc("PurchaseOrder", "PO000047", status="Pending Approval", hold=False)
    acu, jira = FakeAcumatica(doc), people(FakeJira())
    recorded(doc, store, jira)
    jira.move("AP-1", "Won't Do")
    ctx = context(acu, jira, store, clock, policy=DecisionPolicy(decline_actions={"PurchaseOrder": "Disapprove"}))
    assert resolve_document(message(doc), ctx) == "no-action"
    assert acu.actions == [] and "set DeclineAction" in said(jira)[-1]


def test_a_crash_between_the_answer_and_the_mark_does_not_answer_twice(store, clock):
    doc = make_doc(status="On Hold")
    acu, jira = FakeAcumatica(doc), people(FakeJira())
    recorded(doc, store, jira)
    jira.move("AP-1", "Won't Do")
    faulty = Faults(store).fail("finish_claim", lambda: RuntimeError("container died"), skip=1)  # the DECISION mark
    with pytest.raises(RuntimeError):
        resolve_document(message(doc), context(acu, jira, faulty, clock))
    assert resolve_document(message(doc), context(acu, jira, store, clock)) == "declined"
    assert len(said(jira)) == 1 and acu.actions == []


def test_after_a_decline_polls_leave_the_closed_issue_alone_until_the_document_changes(store, clock):
    acu, jira = FakeAcumatica(bill(due_in(clock, 5))), people(FakeJira())
    sync = sync_context(acu, jira, store, clock, triage=RULES)
    sync_document(WorkMessage(kind="sync", external_id="Bill:Bill:000123", dedupe_id="d1", correlation_id="c"), sync)
    (key,) = jira.issues
    jira.move(key, "Won't Do")
    doc = acu.docs[next(iter(acu.docs))]
    assert resolve_document(message(doc, issue_key=key), context(acu, jira, store, clock)) == "declined"
    told = len(jira.comments[key])
    calls = len(jira.calls)
    clock.advance(10 * 86400)  # overdue now: the calendar alone would re-prioritise and comment
    assert sync_document(WorkMessage(kind="sync", external_id="Bill:Bill:000123", dedupe_id="d2",
                                     correlation_id="c"), sync) == "declined"
    assert len(jira.calls) == calls and len(jira.comments[key]) == told
    acu.put(replace(doc, amount=doc.amount * 2))  # the document itself changes: told as any change is
    assert sync_document(WorkMessage(kind="sync", external_id="Bill:Bill:000123", dedupe_id="d3",
                                     correlation_id="c"), sync) == "updated"
    assert "2,500.00 USD" in str(jira.comments[key][-1]) and not store.get_state(doc.key).declined


def test_without_the_group_scope_a_decision_waits_in_the_dlq_and_acts_once_after_the_fix(store, clock):
    from connector.errors import ConfigurationError, PermanentError

    doc = make_doc(status="Balanced", hold=False, amount="500.00")
    acu, jira = FakeAcumatica(doc), people(FakeJira())
    recorded(doc, store, jira)
    jira.move("AP-1", "Done", actor="clerk")
    policy = DecisionPolicy(authority=AUTHORITY)
    lacking = Faults(jira).fail("user_groups", lambda: ConfigurationError("group membership needs the "
                                                                          "read:jira-user scope"))
    with pytest.raises(PermanentError, match="read:jira-user"):  # PermanentError: the worker dead-letters it
        resolve_document(message(doc), context(acu, lacking, store, clock, policy=policy))
    assert acu.actions == [] and said(jira) == []
    assert resolve_document(message(doc), context(acu, jira, store, clock, policy=policy)) == "done"  # the replay
    assert resolve_document(message(doc), context(acu, jira, store, clock, policy=policy)) == "duplicate"
    assert acu.actions == [(doc.key.external_id, "ReleaseBill")]
