"""Jira → Acumatica through the real handlers, with a Jira project used the way people use one: issues are cloned,
made by hand, edited, closed after Done; deliveries get lost. Only a person's decision about a document's own issue
acts, once per decision. This stack moves cleared issues to Done itself (``JiraClearedStatus``)."""

from __future__ import annotations

import pytest

from connector_local.jira_sandbox import CONNECTOR_ACCOUNT, PERSON_ACCOUNT
from connector_local.stack import LocalStack
from tests.e2e.conftest import Harness


@pytest.fixture(scope="module")
def stack():
    with LocalStack.start({"JIRA_CLEARED_STATUS": "Done"}, quiet=True) as running:
        yield running


@pytest.fixture(scope="module")
def harness(stack) -> Harness:
    return Harness(stack)


def stuck_bill(stack, harness, number: str, **fields) -> dict:
    values = {"Type": "Bill", "ReferenceNbr": number, "Vendor": "V100", "Amount": 20, "Balance": 20, "Hold": True}
    stack.acumatica.add_document("Bill", **{**values, **fields})
    harness.poll()
    (issue,) = harness.issues(f"Bill:Bill:{number}")
    return issue


def actions_on(stack, number: str) -> list:
    return [entry for entry in stack.acumatica.action_log if entry[1] == ("Bill", number)]


def comments(stack, key: str) -> str:
    return " ".join(str(c["body"]) for c in stack.jira.comments(key))


def test_resolving_a_clone_releases_nothing_and_says_which_issue_is_the_connectors(stack, harness):
    issue = stuck_bill(stack, harness, "500001")
    clone = stack.jira.clone_issue(issue["key"])
    assert stack.jira.issue(clone)["fields"][stack.jira.external_id_field] == "Bill:Bill:500001"
    stack.jira.resolve_issue(clone, "Done")
    stack.drain()
    stack.jira.resolve_issue(clone, "To Do")
    stack.jira.resolve_issue(clone, "Done")  # resolved again: still nothing, and no second comment
    stack.drain()
    assert actions_on(stack, "500001") == []
    assert stack.acumatica.document("Bill", ("Bill", "500001"))["Status"] == "On Hold"
    (told,) = stack.jira.comments(clone)
    assert issue["key"] in str(told["body"]) and "Nothing was done" in str(told["body"])


def test_a_hand_made_issue_with_a_typed_external_id_releases_nothing(stack, harness):
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="500002", Vendor="V100", Amount=20, Balance=20,
                                 Hold=False)  # healthy and balanced: never an exception, never an issue
    harness.poll()
    assert harness.issues("Bill:Bill:500002") == []
    typed = stack.jira.seed_issue("Please release 500002", external_id="Bill:Bill:500002", creator=PERSON_ACCOUNT)
    stack.jira.resolve_issue(typed, "Done")
    stack.drain()
    assert actions_on(stack, "500002") == []
    assert stack.acumatica.document("Bill", ("Bill", "500002"))["Status"] == "Balanced"
    assert "no issue for Bill:Bill:500002" in comments(stack, typed)


def test_an_issue_whose_field_was_edited_to_another_documents_id_acts_on_neither(stack, harness):
    mine = stuck_bill(stack, harness, "500003")
    other = stuck_bill(stack, harness, "500004")
    stack.jira.edit_issue(mine["key"], {stack.jira.external_id_field: "Bill:Bill:500004"})
    stack.jira.resolve_issue(mine["key"], "Done")
    stack.drain()
    assert actions_on(stack, "500003") == [] and actions_on(stack, "500004") == []
    text = comments(stack, mine["key"])
    assert other["key"] in text and "Nothing was done" in text


def test_the_connectors_own_move_to_done_and_a_later_done_to_closed_act_on_nothing(stack, harness):
    issue = stuck_bill(stack, harness, "500005")
    stack.acumatica.update_document("Bill", ("Bill", "500005"), Hold=False, Status="Balanced")  # off hold
    harness.poll()  # cleared: the connector moves the issue to Done, and Jira tells the webhook
    assert stack.jira.issue(issue["key"])["fields"]["status"]["name"] == "Done"
    own_moves = [d for d in stack.jira.deliveries() if d["kind"] == "admin"]
    assert own_moves and own_moves[-1]["status"] == 202  # delivered and queued: the worker decides it is no decision
    stack.drain()
    stack.jira.resolve_issue(issue["key"], "Closed")  # a person closes it: Done → Closed is no decision either
    stack.drain()
    assert actions_on(stack, "500005") == []
    assert stack.acumatica.document("Bill", ("Bill", "500005"))["Status"] == "Balanced"
    assert [c["author"]["accountId"] for c in stack.jira.changelog(issue["key"])
            if any(i["field"] == "status" for i in c["items"])] == [CONNECTOR_ACCOUNT, PERSON_ACCOUNT]


def test_done_to_closed_after_a_release_repeats_nothing(stack, harness):
    issue = stuck_bill(stack, harness, "500006")
    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()
    said = len(stack.jira.comments(issue["key"]))
    stack.jira.resolve_issue(issue["key"], "Closed")
    stack.drain()
    assert len(harness.releases("500006")) == 1 and len(stack.jira.comments(issue["key"])) == said


def test_a_second_legitimate_resolution_after_the_document_returned_to_hold_acts_once_more(stack, harness):
    stack.acumatica.add_document("PurchaseOrder", Type="Normal", OrderNbr="PO500007", VendorID="V200", OrderTotal=5,
                                 ControlTotal=5, Hold=True)
    harness.poll()
    (issue,) = harness.issues("PurchaseOrder:Normal:PO500007")
    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()
    stack.acumatica.update_document("PurchaseOrder", ("Normal", "PO500007"), Hold=True,
                                    Status="On Hold")  # back on hold, same fields
    harness.poll()  # the exception is back: the issue is reopened, not only commented
    assert stack.jira.issue(issue["key"])["fields"]["status"]["statusCategory"]["key"] == "new"
    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()
    stack.jira.resolve_issue(issue["key"], "Closed")
    stack.drain()
    removals = [r for r in stack.acumatica.requests_log if r.method == "PUT" and r.path.endswith("/PurchaseOrder")
                and isinstance(r.body, dict) and (r.body.get("OrderNbr") or {}).get("value") == "PO500007"
                and (r.body.get("Hold") or {}).get("value") is False and 200 <= r.status < 300]
    assert len(removals) == 2
    assert stack.acumatica.document("PurchaseOrder", ("Normal", "PO500007"))["Hold"] is False


def test_a_bill_changed_after_the_issue_showed_it_is_not_released_and_the_issue_reopens(stack, harness):
    issue = stuck_bill(stack, harness, "500008")
    stack.acumatica.update_document("Bill", ("Bill", "500008"), Amount=25, Balance=25)  # before the next poll
    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()
    assert actions_on(stack, "500008") == []
    assert stack.jira.issue(issue["key"])["fields"]["status"]["statusCategory"]["key"] == "new"
    text = str(stack.jira.comments(issue["key"])[-1]["body"])
    assert "20.00" in text and "25.00" in text and "resolve the issue again" in text


def test_a_resolution_whose_delivery_was_dropped_is_acted_on_by_the_sweep_once(stack, harness):
    issue = stuck_bill(stack, harness, "500009")
    stack.jira.move_issue(issue["key"], "Done")  # its deliveries are handed back and never sent: lost
    stack.drain()
    assert harness.releases("500009") == []
    stack.jira.advance_clock(180)  # past the grace the sweep leaves deliveries on their way
    result = stack.tick("MaintenanceFunction/ResolutionSweepTick")
    assert "resolution_sweep" in result["checks"], result
    stack.drain()
    assert len(harness.releases("500009")) == 1
    said = len(stack.jira.comments(issue["key"]))
    stack.tick("MaintenanceFunction/ResolutionSweepTick")  # the next sweep sees it again: already handled
    stack.drain()
    assert len(harness.releases("500009")) == 1 and len(stack.jira.comments(issue["key"])) == said
    assert harness.depth("DeadLetterQueueUrl") == 0
