"""The Acumatica sandbox disagrees with a client the ways real tenants do: a hold a PUT cannot lift, approval maps with
several steps, approvers and reasons, and one session per OAuth grant that a running action blocks."""

from __future__ import annotations

import time

import pytest
import requests

from connector_local.acumatica_sandbox import (NOT_AN_APPROVER, REASON_REQUIRED, SESSION_BUSY, AcumaticaSandbox)
from tests.acumatica.conftest import CLIENT_SECRET, PASSWORD, VERSION

API = f"/entity/Default/{VERSION}"


@pytest.fixture
def token(sandbox: AcumaticaSandbox) -> str:
    return sandbox.issue_access_token()


def call(sandbox, method, path, token, headers=None, **kwargs) -> requests.Response:
    return requests.request(method, sandbox.url + path, headers={"Authorization": f"Bearer {token}", **(headers or {})},
                            timeout=5, **kwargs)


def act(sandbox, token, entity, action, keys, parameters=None) -> requests.Response:
    body = {"entity": keys, "parameters": parameters or {}}
    return call(sandbox, "POST", f"{API}/{entity}/{action}", token, json=body)


def finish(sandbox, token, accepted: requests.Response) -> int:
    """Poll the status URL until the operation ends; its final status code."""
    assert accepted.status_code == 202, accepted.text
    while True:
        answer = call(sandbox, "GET", accepted.headers["Location"], token)
        if answer.status_code != 202:
            return answer.status_code
        time.sleep(0.05)


def bill_keys(record) -> dict:
    return {"Type": {"value": "Bill"}, "ReferenceNbr": {"value": record["ReferenceNbr"]}}


def order_keys(record) -> dict:
    return {"Type": {"value": "Normal"}, "OrderNbr": {"value": record["OrderNbr"]}}


def reason(text: str) -> dict:
    return {"custom": {"ReasonApproveRejectParams": {"Reason": {"type": "CustomStringField", "value": text}}}}


def test_a_build_that_ignores_api_writes_to_hold_keeps_it_and_offers_the_forms_remove_hold(sandbox, token):
    sandbox.hold_by_workflow.add("PurchaseOrder")
    sandbox.hold_actions.add("PurchaseOrder")
    order = sandbox.add_document("PurchaseOrder")

    put = call(sandbox, "PUT", f"{API}/PurchaseOrder", token, json={**order_keys(order), "Hold": {"value": False}},
               headers={"If-Match": "*"})
    schema = call(sandbox, "GET", f"{API}/PurchaseOrder/$adHocSchema", token).json()

    assert put.status_code == 200 and put.json()["Status"] == {"value": "On Hold"}  # answered OK, kept the hold
    assert [name for item in schema["_workflowActions"] for name in item] == [
        "Approve", "Reject", "ReleaseFromHold", "PutOnHold"]
    assert finish(sandbox, token, act(sandbox, token, "PurchaseOrder", "ReleaseFromHold", order_keys(order))) == 204
    assert sandbox.document("PurchaseOrder", ("Normal", order["OrderNbr"]))["Status"] == "Open"


def test_the_forms_remove_hold_keeps_an_unbalanced_document_on_hold(sandbox, token):
    sandbox.hold_by_workflow.add("Bill")
    sandbox.hold_actions.add("Bill")
    bill = sandbox.add_document("Bill", Amount=100, Balance=90)

    assert finish(sandbox, token, act(sandbox, token, "Bill", "ReleaseFromHold", bill_keys(bill))) == 500
    assert sandbox.document("Bill", ("Bill", bill["ReferenceNbr"]))["Status"] == "On Hold"


def test_one_approval_of_a_two_step_map_leaves_it_pending_until_the_next_approver(sandbox):
    sandbox.users["controller"] = "controller-pass"
    admin, controller = sandbox.issue_access_token(user="admin"), sandbox.issue_access_token(user="controller")
    bill = sandbox.add_document("Bill", Hold=False, approvers=[["admin"], ["controller"]])
    assert bill["Status"] == "Pending Approval"

    assert finish(sandbox, admin, act(sandbox, admin, "Bill", "Approve", bill_keys(bill))) == 204
    assert sandbox.document("Bill", ("Bill", bill["ReferenceNbr"]))["Status"] == "Pending Approval"
    again = act(sandbox, admin, "Bill", "Approve", bill_keys(bill))
    assert again.status_code == 500 and again.json()["exceptionMessage"] == NOT_AN_APPROVER
    assert finish(sandbox, controller, act(sandbox, controller, "Bill", "Approve", bill_keys(bill))) == 204

    assert sandbox.document("Bill", ("Bill", bill["ReferenceNbr"]))["Status"] == "Balanced"
    assert [(a["user"], a["step"]) for a in sandbox.approvals("Bill", ("Bill", bill["ReferenceNbr"]))] == [
        ("admin", 1), ("controller", 2)]


def test_an_api_user_outside_the_map_is_refused_outright_and_nothing_changes(sandbox, token):
    order = sandbox.add_document("PurchaseOrder", Hold=False, approvers=[["buyer.kim"]])

    refused = act(sandbox, token, "PurchaseOrder", "Approve", order_keys(order))

    assert refused.status_code == 500 and refused.json()["exceptionMessage"] == NOT_AN_APPROVER
    assert sandbox.document("PurchaseOrder", ("Normal", order["OrderNbr"]))["Status"] == "Pending Approval"
    assert sandbox.action_log[-1][2:] == ("Approve", "refused")


def test_a_map_that_requires_a_reason_refuses_an_approval_without_one_and_keeps_the_reason_given(sandbox, token):
    sandbox.approval_reasons = True
    bill = sandbox.add_document("Bill", Hold=False, requires_approval=True, reason_required=True)
    schema = call(sandbox, "GET", f"{API}/Bill/$adHocSchema", token).json()

    bare = act(sandbox, token, "Bill", "Approve", bill_keys(bill))
    given = act(sandbox, token, "Bill", "Approve", bill_keys(bill), reason("Checked with the vendor"))

    approve = next(item["Approve"] for item in schema["_workflowActions"] if "Approve" in item)
    assert approve["parameters"]["custom"] == {"ReasonApproveRejectParams": {"Reason": {
        "type": "CustomStringField", "value": None}}}
    assert bare.status_code == 500 and bare.json()["exceptionMessage"] == REASON_REQUIRED
    assert finish(sandbox, token, given) == 204
    assert sandbox.approvals("Bill", ("Bill", bill["ReferenceNbr"]))[0]["reason"] == "Checked with the vendor"


def test_a_parameter_the_actions_dialog_does_not_have_is_refused(sandbox, token):
    bill = sandbox.add_document("Bill", Hold=False)

    answer = act(sandbox, token, "Bill", "ReleaseBill", bill_keys(bill), reason("please"))

    assert answer.status_code == 400 and sandbox.document("Bill", ("Bill", bill["ReferenceNbr"]))["Status"] == \
        "Balanced"


def test_a_running_action_blocks_every_other_request_of_its_session_but_its_own_status(sandbox):
    sandbox.long_operation_seconds = 0.5
    mine, other_grant = sandbox.issue_access_token(), sandbox.issue_access_token()
    bill = sandbox.add_document("Bill", Hold=False)
    path = f"{API}/Bill/Bill/{bill['ReferenceNbr']}"

    accepted = act(sandbox, mine, "Bill", "ReleaseBill", bill_keys(bill))
    blocked = call(sandbox, "GET", path, mine)
    own_status = call(sandbox, "GET", accepted.headers["Location"], mine)
    elsewhere = call(sandbox, "GET", path, other_grant)

    assert blocked.status_code == 500 and blocked.json()["exceptionMessage"] == SESSION_BUSY
    assert own_status.status_code == 202 and elsewhere.status_code == 200
    assert finish(sandbox, mine, accepted) == 204
    assert call(sandbox, "GET", path, mine).status_code == 200 and sandbox.busy_refusals == 1


def test_a_refreshed_token_keeps_the_session_of_its_grant(sandbox):
    sandbox.long_operation_seconds = 0.5
    form = {"client_id": sandbox.client_id, "client_secret": CLIENT_SECRET}
    first = requests.post(f"{sandbox.url}/identity/connect/token", timeout=5, data={
        **form, "grant_type": "password", "username": "admin", "password": PASSWORD,
        "scope": "api offline_access"}).json()
    second = requests.post(f"{sandbox.url}/identity/connect/token", timeout=5, data={
        **form, "grant_type": "refresh_token", "refresh_token": first["refresh_token"]}).json()
    bill = sandbox.add_document("Bill", Hold=False)

    accepted = act(sandbox, first["access_token"], "Bill", "ReleaseBill", bill_keys(bill))
    blocked = call(sandbox, "GET", f"{API}/Bill/Bill/{bill['ReferenceNbr']}", second["access_token"])

    assert blocked.status_code == 500 and blocked.json()["exceptionMessage"] == SESSION_BUSY
    assert finish(sandbox, first["access_token"], accepted) == 204


def test_a_workflow_that_does_not_expose_remove_hold_leaves_the_api_no_way_to_lift_it(sandbox, token):
    sandbox.hold_by_workflow.add("Check")
    check = sandbox.add_document("Check")
    keys = {"Type": {"value": "Payment"}, "ReferenceNbr": {"value": check["ReferenceNbr"]}}

    put = call(sandbox, "PUT", f"{API}/Check", token, json={**keys, "Hold": {"value": False}}, headers={"If-Match": "*"})
    action = act(sandbox, token, "Check", "ReleaseFromHold", keys)

    assert put.status_code == 200 and put.json()["Status"] == {"value": "On Hold"}
    assert action.status_code == 404
