"""Jira → Acumatica through the real handlers, against an Acumatica that disagrees the ways tenants do: a hold only the
form's action lifts (or that nothing the API sends lifts), a two-step approval map, an API user who is no approver, an
approval map that wants a reason. Every effect is confirmed by re-reading; "Acumatica updated" is said only when it is
true; the issue is reopened whenever the document still needs a person; nothing reaches the DLQ. And a resolution
whose delivery was lost is found by the sweep, handled, and counted."""

from __future__ import annotations

import json
import time

import pytest
import requests

from connector_cli.main import main
from connector_local.stack import LocalStack
from tests.e2e.conftest import Harness


@pytest.fixture(scope="module")
def stack():
    with LocalStack.start({}, quiet=True) as running:
        acumatica = running.acumatica
        acumatica.hold_by_workflow |= {"PurchaseOrder", "Check"}  # this build ignores API writes to Hold on both
        acumatica.hold_actions = {"PurchaseOrder"}  # and its API offers the form's Remove Hold for orders only
        acumatica.approval_reasons = True
        acumatica.users["controller"] = "controller-password"
        yield running


@pytest.fixture(scope="module")
def harness(stack) -> Harness:
    return Harness(stack)


def issue_of(stack, harness, external_id: str) -> dict:
    harness.poll()
    (issue,) = harness.issues(external_id)
    return issue


def said(stack, key: str) -> str:
    return str(stack.jira.comments(key)[-1]["body"])


def status_in_jira(stack, key: str) -> str:
    return stack.jira.issue(key)["fields"]["status"]["name"]


def actions_on(stack, keys: tuple[str, str]) -> list[str]:
    return [entry[2] for entry in stack.acumatica.action_log if entry[1] == keys]


def approve_in_acumatica(stack, user: str, entity: str, keys: dict) -> None:
    """Another approver approves on the form (their own session), as people do between polls."""
    token = stack.acumatica.issue_access_token(user=user)
    base = f"{stack.acumatica.url}/entity/Default/24.200.001"
    headers = {"Authorization": f"Bearer {token}"}
    accepted = requests.post(f"{base}/{entity}/Approve", json={"entity": keys}, headers=headers, timeout=10)
    assert accepted.status_code == 202, accepted.text
    while requests.get(stack.acumatica.url + accepted.headers["Location"], headers=headers, timeout=10).status_code \
            == 202:
        time.sleep(0.05)


def test_a_hold_the_api_cannot_write_is_lifted_with_the_forms_remove_hold_and_confirmed(stack, harness):
    stack.acumatica.add_document("PurchaseOrder", Type="Normal", OrderNbr="PO700001", VendorID="V700", OrderTotal=40,
                                 ControlTotal=40, Hold=True)
    issue = issue_of(stack, harness, "PurchaseOrder:Normal:PO700001")

    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()

    assert stack.acumatica.document("PurchaseOrder", ("Normal", "PO700001"))["Status"] == "Open"
    assert actions_on(stack, ("Normal", "PO700001")) == ["ReleaseFromHold"]
    assert not [r for r in stack.acumatica.requests_log if r.method == "PUT" and "PO700001" in json.dumps(r.body)]
    text = said(stack, issue["key"])
    assert "Acumatica updated" in text and "RemoveHold (ReleaseFromHold): On Hold → Open" in text
    assert status_in_jira(stack, issue["key"]) == "Done"
    assert harness.depth("DeadLetterQueueUrl") == 0


def test_a_hold_nothing_the_api_sends_can_lift_fails_says_so_and_reopens_the_issue(stack, harness):
    stack.acumatica.add_document("Check", Type="Payment", ReferenceNbr="700002", Vendor="V700", PaymentAmount=15,
                                 Hold=True)
    issue = issue_of(stack, harness, "Check:Payment:700002")

    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()

    assert stack.acumatica.document("Check", ("Payment", "700002"))["Status"] == "On Hold"
    assert [r.status for r in stack.acumatica.requests_log if r.method == "PUT" and "700002" in json.dumps(r.body)] \
        == [200]  # Acumatica answered OK ...
    text = said(stack, issue["key"])  # ... and the issue is told what Acumatica shows, not what HTTP said
    assert "Acumatica updated" not in text and "did not take effect" in text and "still On Hold" in text
    assert "Remove the hold in Acumatica" in text
    assert status_in_jira(stack, issue["key"]) == "To Do"
    assert harness.depth("DeadLetterQueueUrl") == 0


def test_one_approval_of_a_two_step_map_is_partial_and_the_issue_waits_for_the_next_approver(stack, harness):
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="700003", Vendor="V700", Amount=25, Balance=25,
                                 Hold=False, approvers=[["admin"], ["controller"]])
    issue = issue_of(stack, harness, "Bill:Bill:700003")

    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()

    assert stack.acumatica.document("Bill", ("Bill", "700003"))["Status"] == "Pending Approval"
    assert [(a["user"], a["step"]) for a in stack.acumatica.approvals("Bill", ("Bill", "700003"))] == [("admin", 1)]
    text = said(stack, issue["key"])
    assert "approval is still pending" in text and "Acumatica updated:" not in text
    assert "Pending Approval → Pending Approval" not in text
    assert status_in_jira(stack, issue["key"]) == "To Do"

    approve_in_acumatica(stack, "controller", "Bill", {"Type": {"value": "Bill"}, "ReferenceNbr": {"value": "700003"}})
    harness.poll()
    assert "no longer an exception" in said(stack, issue["key"])


def test_an_api_user_who_is_no_approver_is_named_with_the_approval_map_to_change(stack, harness):
    stack.acumatica.add_document("PurchaseOrder", Type="Normal", OrderNbr="PO700004", VendorID="V700", OrderTotal=9,
                                 ControlTotal=9, Hold=False, approvers=[["buyer.kim"]])
    issue = issue_of(stack, harness, "PurchaseOrder:Normal:PO700004")

    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()

    text = said(stack, issue["key"])
    assert "not an authorized approver" in text and "'admin'" in text and "EP205000" in text and "PO101000" in text
    assert stack.acumatica.document("PurchaseOrder", ("Normal", "PO700004"))["Status"] == "Pending Approval"
    assert status_in_jira(stack, issue["key"]) == "To Do"
    assert harness.depth("DeadLetterQueueUrl") == 0


def test_an_approval_that_requires_a_reason_carries_the_persons_comment(stack, harness):
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="700005", Vendor="V700", Amount=30, Balance=30,
                                 Hold=False, requires_approval=True, reason_required=True)
    issue = issue_of(stack, harness, "Bill:Bill:700005")

    stack.jira.resolve_issue(issue["key"], "Done", comment="Vendor confirmed the price by phone")
    stack.drain()

    assert stack.acumatica.document("Bill", ("Bill", "700005"))["Status"] == "Balanced"
    (approval,) = stack.acumatica.approvals("Bill", ("Bill", "700005"))
    assert approval["reason"] == "Vendor confirmed the price by phone"
    assert "Acumatica updated" in said(stack, issue["key"])


def test_without_a_comment_the_approval_reason_is_the_configured_text_and_the_issue(stack, harness):
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="700006", Vendor="V700", Amount=31, Balance=31,
                                 Hold=False, requires_approval=True, reason_required=True)
    issue = issue_of(stack, harness, "Bill:Bill:700006")

    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()

    (approval,) = stack.acumatica.approvals("Bill", ("Bill", "700006"))
    assert approval["reason"] == f"Approved in Jira ({issue['key']})"


def test_a_resolution_no_delivery_announced_is_found_by_the_sweep_handled_and_counted(stack, harness, capsys):
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="700007", Vendor="V700", Amount=12, Balance=12,
                                 Hold=True)
    issue = issue_of(stack, harness, "Bill:Bill:700007")
    stack.jira.move_issue(issue["key"], "Done")  # its deliveries are handed back and never sent: lost
    stack.drain()
    assert actions_on(stack, ("Bill", "700007")) == []

    stack.jira.advance_clock(180)  # past the grace left to deliveries on their way
    stack.tick("MaintenanceFunction/ResolutionSweepTick")
    stack.drain()
    stack.tick("MaintenanceFunction/ResolutionSweepTick")  # the next sweep finds it again: already handled
    stack.drain()

    assert actions_on(stack, ("Bill", "700007")) == ["ReleaseBill"]
    assert stack.acumatica.document("Bill", ("Bill", "700007"))["Status"] == "Open"
    capsys.readouterr()
    assert main(["status", "--format", "json"]) == 0
    sweep = json.loads(capsys.readouterr().out)["resolution_sweep"]
    assert sweep["undelivered"] == 1 and sweep["last_undelivered_issue"] == issue["key"]
    assert sweep["last_ran"] is not None
