"""Return flow: only a person's decision about the document's own issue, as reviewed, acts; once per decision."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.model import WorkMessage
from connector.resolve import ResolveContext, resolve_document
from tests.fakes import FakeAcumatica, FakeJira, make_doc, recorded


def context(acu, jira, store, clock, **overrides):
    return ResolveContext(documents=acu, tracker=jira, store=store, approve_action="Approve", clock=clock,
                          **overrides)


def message(doc, issue_key="AP-1", dedupe="r1", **extra):
    return WorkMessage(kind="resolve", external_id=doc.key.external_id, dedupe_id=dedupe, correlation_id="c",
                       issue_key=issue_key, **extra)


def test_a_clone_keeping_the_field_releases_nothing_and_says_so_once(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira = FakeAcumatica(doc), FakeJira()
    recorded(doc, store, jira)
    jira.issues["AP-2"] = {"id": "10002", "external_id": doc.key.external_id, "status": "To Do",
                           "creator": "person-account"}
    jira.comments["AP-2"] = []
    jira.move("AP-2", "Done")
    ctx = context(acu, jira, store, clock)
    assert resolve_document(message(doc, "AP-2"), ctx) == "foreign-issue"
    assert resolve_document(message(doc, "AP-2", "sweep"), ctx) == "foreign-issue"
    assert acu.actions == [] and acu.gets == 0
    (comment,) = jira.comments["AP-2"]
    assert "AP-1" in str(comment) and "Nothing was done" in str(comment)
    assert [r["outcome"] for r in store.audit_trail(doc.key)].count("foreign-issue") == 2


def test_with_the_ledger_lost_a_hand_made_issue_is_not_the_documents(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira = FakeAcumatica(doc), FakeJira()
    jira.issues["AP-9"] = {"id": "10009", "external_id": doc.key.external_id, "status": "To Do",
                           "creator": "person-account"}
    jira.comments["AP-9"] = []
    jira.settle()
    jira.move("AP-9", "Done")
    assert resolve_document(message(doc, "AP-9"), context(acu, jira, store, clock)) == "foreign-issue"
    assert acu.actions == [] and "no issue for" in str(jira.comments["AP-9"])


def test_with_the_ledger_lost_the_oldest_issue_the_connector_created_acts(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira = FakeAcumatica(doc), FakeJira()
    jira.issues["AP-1"] = {"id": "10001", "external_id": doc.key.external_id, "status": "To Do"}
    jira.comments["AP-1"] = []
    jira.settle()
    jira.move("AP-1", "Done")
    assert resolve_document(message(doc), context(acu, jira, store, clock)) == "done"
    assert acu.actions == [("Bill:Bill:000123", "ReleaseBill")]


def test_an_issue_whose_field_was_edited_to_another_documents_id_acts_on_neither(store, clock):
    mine, other = make_doc(number="000001", status="Balanced", hold=False), make_doc(number="000002",
                                                                                     status="Balanced", hold=False)
    acu, jira = FakeAcumatica(mine, other), FakeJira()
    recorded(mine, store, jira)
    jira.issues["AP-1"]["external_id"] = other.key.external_id  # a person typed the other bill's id
    jira.move("AP-1", "Done")
    ctx = context(acu, jira, store, clock)
    assert resolve_document(message(other), ctx) == "foreign-issue"
    assert acu.actions == [] and "Bill:Bill:000001" in str(jira.comments["AP-1"])


def test_the_connectors_own_transition_is_never_a_decision(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira = FakeAcumatica(doc), FakeJira()
    recorded(doc, store, jira)
    jira.transition_to("AP-1", "Done")  # e.g. JiraClearedStatus = Done
    ctx = context(acu, jira, store, clock)
    assert resolve_document(message(doc), ctx) == "not-a-decision"
    jira.move("AP-1", "Closed")  # a person closing it afterwards decides nothing either
    assert resolve_document(message(doc, dedupe="r2"), ctx) == "not-a-decision"
    assert acu.actions == [] and jira.comments["AP-1"] == []


def test_done_to_closed_is_not_a_second_decision(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira = FakeAcumatica(doc), FakeJira()
    recorded(doc, store, jira)
    jira.move("AP-1", "Done")
    ctx = context(acu, jira, store, clock)
    assert resolve_document(message(doc), ctx) == "done"
    comments = len(jira.comments["AP-1"])
    acu.put(replace(acu.docs[doc.key], status="Balanced"))  # even if the document could be released again
    jira.move("AP-1", "Closed")
    assert resolve_document(message(doc, dedupe="r2"), ctx) == "duplicate"
    assert acu.actions == [("Bill:Bill:000123", "ReleaseBill")] and len(jira.comments["AP-1"]) == comments


def test_a_second_decision_after_the_document_returned_to_hold_acts_once_more(store, clock):
    doc = make_doc("PurchaseOrder", "PO000045", status="On Hold")
    acu, jira = FakeAcumatica(doc), FakeJira()
    recorded(doc, store, jira)
    ctx = context(acu, jira, store, clock)
    jira.move("AP-1", "Done")
    assert resolve_document(message(doc), ctx) == "done"
    acu.put(doc)  # put back on hold with the same fields
    jira.move("AP-1", "To Do")
    jira.move("AP-1", "Done")
    assert resolve_document(message(doc, dedupe="r2"), ctx) == "done"
    assert resolve_document(message(doc, dedupe="r2-copy"), ctx) == "duplicate"
    assert acu.actions == [(doc.key.external_id, "RemoveHold")] * 2


def test_a_document_changed_since_the_issue_showed_it_is_not_acted_on_and_the_issue_reopens(store, clock):
    doc = make_doc(status="Balanced", hold=False)
    acu, jira = FakeAcumatica(doc), FakeJira()
    recorded(doc, store, jira)
    acu.put(make_doc(status="Balanced", hold=False, amount="9999.00"))
    jira.move("AP-1", "Done")
    ctx = context(acu, jira, store, clock, reopen_status="In Progress")
    assert resolve_document(message(doc), ctx) == "reopened"
    assert acu.actions == [] and jira.issues["AP-1"]["status"] == "In Progress"
    text = str(jira.comments["AP-1"][-1])
    assert "1,250.00 USD" in text and "9,999.00 USD" in text and "resolve the issue again" in text


def test_the_approval_action_is_chosen_per_entity(store, clock):
    doc = make_doc("PurchaseOrder", "PO000046", status="Pending Approval", hold=False)
    acu, jira = FakeAcumatica(doc), FakeJira()
    recorded(doc, store, jira)
    jira.move("AP-1", "Done")
    ctx = context(acu, jira, store, clock, approve_actions={"PurchaseOrder": "APPROVE", "Bill": "approveBill"})
    assert resolve_document(message(doc), ctx) == "done"
    assert acu.actions == [(doc.key.external_id, "Approve")]  # as the instance's $adHocSchema spells it


def test_an_approval_action_the_instance_does_not_offer_is_not_sent(store, clock):
    doc = make_doc("PurchaseOrder", "PO000047", status="Pending Approval", hold=False)
    acu, jira = FakeAcumatica(doc), FakeJira()
    recorded(doc, store, jira)
    jira.move("AP-1", "Done")
    ctx = context(acu, jira, store, clock, approve_actions={"PurchaseOrder": "ApproveOrder"})
    assert resolve_document(message(doc), ctx) == "no-action"
    assert acu.actions == [] and "ApproveOrder" in str(jira.comments["AP-1"][-1])


MOVES = st.lists(st.tuples(st.sampled_from(["To Do", "In Progress", "Done", "Closed"]),
                           st.sampled_from(["person-account", "connector-account"]), st.booleans()),
                 min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=MOVES)
def test_each_persons_decision_acts_exactly_once_and_nothing_else_acts(store, clock, moves):
    """Any history of moves by people and by the connector, each delivered twice or lost, the document put back on
    hold after every step, and a sweep at the end: the actions are exactly the people's decisions (moves from a
    not-resolved into a resolved status) that some delivery or the sweep reached while the issue was still resolved
    by them, each acted on once."""
    doc = make_doc("PurchaseOrder", f"PO{abs(hash(tuple(moves))) % 10**9:09d}", status="On Hold")
    acu, jira = FakeAcumatica(doc), FakeJira()
    recorded(doc, store, jira)
    ctx = context(acu, jira, store, clock)
    expected, standing = 0, None  # the person's decision behind the current resolved status, if any
    acted: set[int] = set()

    def work(dedupe: str) -> None:
        nonlocal expected
        resolve_document(message(doc, dedupe=dedupe), ctx)
        if standing is not None and standing not in acted:
            acted.add(standing)
            expected += 1
        acu.put(replace(acu.docs[doc.key], status="On Hold", hold=True))

    for n, (status, actor, delivered) in enumerate(moves):
        before = jira.issues["AP-1"]["status"]
        if before == status:
            continue
        jira.move("AP-1", status, actor)
        into, out_of = jira.statuses[status] == "done", jira.statuses[before] == "done"
        if not into:
            standing = None
        elif not out_of:
            standing = n if actor == "person-account" else None
        for copy in range(2 if delivered else 0):
            work(f"m{n}-{copy}")
    work("sweep")
    assert len(acu.actions) == expected == len(acted)
