"""Every effect confirmed: a step is done only when the document re-read after it shows a status the step leads to.

Acumatica here is scripted: for each step it answers OK (or refuses) and then shows whatever status the test says, so
the connector's verdicts, what the issue is told, and whether it is reopened can be checked as tables, and attacked by
hypothesis with any status Acumatica may show.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from connector.effects import DONE, FAILED, PENDING, judge
from connector.errors import ActionRefused, TransientError
from connector.model import WorkMessage
from connector.ports import IssueComment
from connector.resolve import ResolveContext, resolve_document
from connector.rules import ACTION_POLICY, APPROVE, REMOVE_HOLD, STATUS_LABELS, classify, plan
from tests.core.conftest import Clock
from tests.fakes import FakeAcumatica, FakeJira, make_doc

PERSON = "person-account"


class ScriptedAcumatica(FakeAcumatica):
    """Answers every step with success (or the scripted refusal) and then shows the scripted status: HTTP says one
    thing, the document another, as a build that ignores an API write to Hold or a multi-step approval map does."""

    def __init__(self, doc, shows: list[str], *, offered=("Approve", "Reject"), parameters=(), refuse=None):
        super().__init__(doc)
        self.shows = list(shows)
        self.offered = list(offered)
        self.action_parameter_names = list(parameters)
        self.refuse = dict(refuse or {})
        self.puts: list[bool] = []

    def _step(self, key, action):
        if action in self.refuse:
            raise self.refuse[action]
        self.actions.append((key.external_id, action))
        status = self.shows.pop(0)
        doc = self.docs[key]
        self.docs[key] = replace(doc, status=status, hold=status == "On Hold")
        return self.docs[key]

    def set_hold(self, key, hold):
        self.puts.append(hold)
        return self._step(key, "PUT Hold=false")

    def invoke_action(self, key, action, parameters=None):
        self.parameters.append(dict(parameters or {}))
        return self._step(key, action)

    def workflow_actions(self, entity):
        return list(self.offered)

    def action_parameters(self, entity, action):
        return list(self.action_parameter_names) if action.casefold() == "approve" else []


def world(doc, shows, *, store, clock, **acumatica):
    acu, jira = ScriptedAcumatica(doc, shows, **acumatica), FakeJira()
    jira.issues["AP-1"] = {"id": "10001", "external_id": doc.key.external_id, "status": "To Do"}
    jira.comments["AP-1"] = []
    jira.settle()
    jira.move("AP-1", "Done", actor=PERSON)
    ctx = ResolveContext(documents=acu, tracker=jira, store=store, approve_action="Approve", clock=clock,
                         api_user="svc-jira", approval_reason="Approved in Jira")
    return acu, jira, ctx


def resolve(doc, ctx, source="webhook", dedupe="r1"):
    return resolve_document(WorkMessage(kind="resolve", external_id=doc.key.external_id, dedupe_id=dedupe,
                                        correlation_id="c", issue_key="AP-1", source=source), ctx)


def told(jira) -> str:
    return str(jira.comments["AP-1"][-1])


# --- the verdict table -------------------------------------------------------------------------------------------

VERDICTS = [
    # entity, status when resolved, step, Acumatica shows after it, verdict
    ("Bill", "On Hold", REMOVE_HOLD, "Balanced", DONE),
    ("Bill", "On Hold", REMOVE_HOLD, "Pending Approval", DONE),  # an approval map takes it from here
    ("Bill", "On Hold", REMOVE_HOLD, "On Hold", FAILED),  # a PUT the build ignores
    ("Bill", "Balanced", "ReleaseBill", "Open", DONE),
    ("Bill", "Balanced", "ReleaseBill", "Closed", DONE),
    ("Bill", "Balanced", "ReleaseBill", "Balanced", FAILED),
    ("Bill", "Pending Approval", APPROVE, "Balanced", DONE),
    ("Bill", "Pending Approval", APPROVE, "Pending Approval", PENDING),  # one step of a two-step map
    ("Bill", "Pending Approval", APPROVE, "Rejected", FAILED),
    ("PurchaseOrder", "On Hold", REMOVE_HOLD, "Open", DONE),
    ("PurchaseOrder", "On Hold", REMOVE_HOLD, "Pending Approval", DONE),
    ("PurchaseOrder", "On Hold", REMOVE_HOLD, "On Hold", FAILED),
    ("PurchaseOrder", "Pending Approval", APPROVE, "Open", DONE),
    ("PurchaseOrder", "Pending Approval", APPROVE, "Pending Approval", PENDING),
    ("Check", "On Hold", REMOVE_HOLD, "Balanced", DONE),
    ("Check", "Balanced", "ReleaseCheck", "Closed", DONE),
    ("Check", "Balanced", "ReleaseCheck", "Balanced", FAILED),
]


@pytest.mark.parametrize("entity, status, action, shows, verdict", VERDICTS)
def test_a_step_is_judged_by_the_status_acumatica_shows_afterwards(entity, status, action, shows, verdict):
    (step,) = [s for s in ACTION_POLICY[entity][status] if s.action == action]
    assert judge(step, shows) == verdict


def test_every_policy_step_leads_to_statuses_its_entity_has_and_never_to_where_it_started():
    for entity, table in ACTION_POLICY.items():
        for steps in table.values():
            for step in steps:
                assert step.leads_to, (entity, step)
                assert set(step.leads_to) | set(step.pending) <= set(STATUS_LABELS[entity]), (entity, step)
                assert step.requires_status not in step.leads_to, (entity, step)  # unchanged is never "done"


# --- what the issue is told ----------------------------------------------------------------------------------------


def test_a_hold_a_put_cannot_lift_fails_and_the_issue_is_reopened_never_told_updated(store, clock):
    doc = make_doc("PurchaseOrder", "PO000045", status="On Hold")
    acu, jira, ctx = world(doc, ["On Hold"], store=store, clock=clock)

    assert resolve(doc, ctx) == "failed"

    assert acu.puts == [False]
    text = told(jira)
    assert "Acumatica updated" not in text and "No change made in Acumatica" in text
    assert "did not take effect" in text and "still On Hold" in text and "Remove Hold" in text
    assert jira.issues["AP-1"]["status"] == "To Do"
    assert "no-effect" in [r["outcome"] for r in store.audit_trail(doc.key) if r["event"] == "action"]


def test_a_hold_is_lifted_with_the_instances_workflow_action_and_the_release_follows(store, clock):
    doc = make_doc(status="On Hold")
    acu, jira, ctx = world(doc, ["Balanced", "Open"], store=store, clock=clock,
                           offered=("Approve", "ReleaseFromHold", "PutOnHold"))

    assert resolve(doc, ctx) == "done"

    assert acu.puts == [] and [a for _, a in acu.actions] == ["ReleaseFromHold", "ReleaseBill"]
    assert "RemoveHold (ReleaseFromHold): On Hold → Balanced" in told(jira)
    assert "Acumatica updated" in told(jira) and jira.issues["AP-1"]["status"] == "Done"


def test_leaving_hold_into_pending_approval_says_what_is_left_and_reopens(store, clock):
    doc = make_doc(status="On Hold")
    acu, jira, ctx = world(doc, ["Pending Approval"], store=store, clock=clock)

    assert resolve(doc, ctx) == "partial"

    text = told(jira)
    assert "RemoveHold: On Hold → Pending Approval" in text and "ReleaseBill is not taken" in text
    assert "Acumatica partly updated" in text and "Acumatica updated:" not in text
    assert jira.issues["AP-1"]["status"] == "To Do"
    assert [a for _, a in acu.actions] == ["PUT Hold=false"]


def test_one_approval_of_a_two_step_map_says_approval_is_still_pending_and_reopens(store, clock):
    doc = make_doc(status="Pending Approval", hold=False)
    acu, jira, ctx = world(doc, ["Pending Approval"], store=store, clock=clock)

    assert resolve(doc, ctx) == "partial"

    text = told(jira)
    assert "recorded the approval of 'svc-jira'" in text and "approval is still pending" in text
    assert "Pending Approval → Pending Approval" not in text and "Acumatica updated:" not in text
    assert jira.issues["AP-1"]["status"] == "To Do"


def test_an_api_user_who_is_no_approver_is_told_with_the_user_and_the_approval_map(store, clock):
    doc = make_doc("PurchaseOrder", "PO000045", status="Pending Approval", hold=False)
    refusal = ActionRefused("Acumatica refused Approve on PurchaseOrder:Normal:PO000045: You are not an authorized "
                            "approver for this document.")
    acu, jira, ctx = world(doc, [], store=store, clock=clock, refuse={"Approve": refusal})

    assert resolve(doc, ctx) == "failed"  # told and settled: no exception, so never the DLQ

    text = told(jira)
    assert "svc-jira" in text and "EP205000" in text and "PO101000" in text
    assert jira.issues["AP-1"]["status"] == "To Do"
    assert resolve(doc, ctx, dedupe="r2") == "not-resolved"  # the reopened issue waits for a person


def test_the_approval_carries_the_persons_note_as_its_reason(store, clock):
    doc = make_doc(status="Pending Approval", hold=False)
    acu, jira, ctx = world(doc, ["Balanced"], store=store, clock=clock,
                           parameters=["ReasonApproveRejectParams.Reason"])
    decided = jira.changelogs["AP-1"][-1].created
    jira.person_comments["AP-1"] = [IssueComment("1", PERSON, decided, "Checked with  the vendor\non the phone"),
                                    IssueComment("2", "someone-else", decided, "not this one")]

    assert resolve(doc, ctx) == "done"

    assert acu.parameters == [{"ReasonApproveRejectParams.Reason": "Checked with the vendor on the phone"}]


def test_without_a_note_the_approval_reason_is_the_configured_text_and_the_issue(store, clock):
    doc = make_doc(status="Pending Approval", hold=False)
    acu, jira, ctx = world(doc, ["Balanced"], store=store, clock=clock,
                           parameters=["ReasonApproveRejectParams.Reason"])

    resolve(doc, ctx)

    assert acu.parameters == [{"ReasonApproveRejectParams.Reason": "Approved in Jira (AP-1)"}]


def test_an_unreadable_note_never_blocks_the_approval(store, clock):
    doc = make_doc(status="Pending Approval", hold=False)
    acu, jira, ctx = world(doc, ["Balanced"], store=store, clock=clock,
                           parameters=["ReasonApproveRejectParams.Reason"])
    ctx = replace(ctx, tracker=_Unreadable(jira))

    assert resolve(doc, ctx) == "done"
    assert acu.parameters == [{"ReasonApproveRejectParams.Reason": "Approved in Jira (AP-1)"}]


class _Unreadable:
    """Jira whose comments cannot be read right now; everything else as usual."""

    def __init__(self, jira):
        self._jira = jira

    def recent_comments(self, key):
        raise TransientError("Jira answered 503 to GET /comment")

    def __getattr__(self, name):
        return getattr(self._jira, name)


def test_an_action_without_a_reason_parameter_sends_none(store, clock):
    doc = make_doc(status="Pending Approval", hold=False)
    acu, jira, ctx = world(doc, ["Balanced"], store=store, clock=clock)

    resolve(doc, ctx)

    assert acu.parameters == [{}] and "comments" not in jira.calls


def test_an_unbalanced_bill_on_hold_is_not_touched_and_its_issue_is_reopened(store, clock):
    doc = make_doc(status="On Hold", amount="10", total="9")
    acu, jira, ctx = world(doc, [], store=store, clock=clock)

    assert resolve(doc, ctx) == "no-action"

    assert acu.actions == [] and "unbalanced" in told(jira) and jira.issues["AP-1"]["status"] == "To Do"


def test_a_released_bill_needs_nobody_and_its_issue_stays_resolved(store, clock):
    doc = make_doc(status="Open", hold=False)
    acu, jira, ctx = world(doc, [], store=store, clock=clock)

    assert resolve(doc, ctx) == "no-action"
    assert jira.issues["AP-1"]["status"] == "Done"


def test_a_retry_after_the_telling_failed_tells_the_recorded_verdict_without_acting_again(store, clock):
    doc = make_doc(status="Pending Approval", hold=False)
    acu, jira, ctx = world(doc, ["Pending Approval"], store=store, clock=clock)
    add_comment = jira.add_comment

    def down(key, body):
        raise TransientError("Jira answered 503")

    jira.add_comment = down
    with pytest.raises(TransientError):
        resolve(doc, ctx)
    jira.add_comment = add_comment

    assert resolve(doc, ctx) == "partial"
    assert len(acu.actions) == 1 and "approval is still pending" in told(jira)


# --- missed deliveries ----------------------------------------------------------------------------------------------


def test_a_decision_only_the_sweep_brought_is_counted_once_and_a_delivered_one_never(store, clock):
    counted: list[str] = []
    doc = make_doc(status="Balanced", hold=False)
    acu, jira, ctx = world(doc, ["Open"], store=store, clock=clock)
    ctx = replace(ctx, count_undelivered=counted.append)

    assert resolve(doc, ctx, source="sweep", dedupe="s1") == "done"
    assert resolve(doc, ctx, source="sweep", dedupe="s2") == "duplicate"
    assert counted == ["AP-1"] and store.undelivered_resolutions()["count"] == 1

    other = make_doc(status="Balanced", hold=False, number="000124")
    acu2, jira2, ctx2 = world(other, ["Open"], store=store, clock=clock)
    ctx2 = replace(ctx2, count_undelivered=counted.append)
    assert resolve(other, ctx2, source="webhook") == "done"
    assert resolve(other, ctx2, source="sweep", dedupe="s3") == "duplicate"
    assert counted == ["AP-1"]


# --- the invariant, attacked ------------------------------------------------------------------------------------

_STARTS = [(entity, status) for entity, table in ACTION_POLICY.items() for status in table]


@st.composite
def scripts(draw):
    entity, status = draw(st.sampled_from(_STARTS))
    labels = sorted(STATUS_LABELS[entity])
    shows = draw(st.lists(st.sampled_from(labels), min_size=2, max_size=2))
    offered = draw(st.sampled_from([("Approve", "Reject"), ("Approve", "Reject", "ReleaseFromHold")]))
    return entity, status, shows, offered


_numbers = itertools.count(1)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scripts())
def test_updated_is_said_and_the_issue_left_resolved_only_when_every_step_took_effect(store, script):
    entity, status, shows, offered = script
    doc = make_doc(entity, f"{next(_numbers):06d}", status=status, hold=status == "On Hold")
    acu, jira, ctx = world(doc, list(shows), store=store, clock=Clock(), offered=offered)
    steps, _ = plan(doc, "Approve")

    resolve(doc, ctx)

    taken = len(acu.actions)
    every_step_took_effect = all(judge(step, shown) == DONE for step, shown in zip(steps, shows[:taken]))
    needs_nobody = classify(acu.docs[doc.key]) is None
    assert ("Acumatica updated:" in told(jira)) == (every_step_took_effect and needs_nobody)
    assert (jira.issues["AP-1"]["status"] == "Done") == (every_step_took_effect and needs_nobody)
    assert len(set(acu.actions)) == taken <= len(steps)  # no step posted twice, none beyond the plan
