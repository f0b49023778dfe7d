"""The Acumatica sandbox behaves like an instance: OAuth, versions, wire format, queries, PUT rules, actions, push."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from connector_local.acumatica_sandbox import AcumaticaSandbox
from tests.acumatica.conftest import CLIENT_SECRET, PASSWORD, VERSION

API = f"/entity/Default/{VERSION}"


@pytest.fixture
def token(sandbox: AcumaticaSandbox) -> str:
    return sandbox.issue_access_token()


def call(sandbox: AcumaticaSandbox, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.request(method, sandbox.url + path, headers=headers, timeout=5, **kwargs)


def token_request(sandbox: AcumaticaSandbox, **form) -> requests.Response:
    body = {"client_id": sandbox.client_id, "client_secret": CLIENT_SECRET, **form}
    return requests.post(f"{sandbox.url}/identity/connect/token", data=body, timeout=5)


def uid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


# ------------------------------------------------------------------------------------------------------ OAuth


def test_password_grant_with_offline_access_issues_a_refresh_token(sandbox):
    response = token_request(sandbox, grant_type="password", username="admin", password=PASSWORD,
                             scope="api offline_access")

    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["refresh_token"]


def test_password_grant_without_offline_access_issues_no_refresh_token(sandbox):
    body = token_request(sandbox, grant_type="password", username="admin", password=PASSWORD, scope="api").json()

    assert "refresh_token" not in body and body["access_token"]


@pytest.mark.parametrize(("form", "error"), [
    ({"grant_type": "password", "username": "admin", "password": "nope", "scope": "api"}, "invalid_grant"),
    ({"grant_type": "password", "username": "admin", "password": PASSWORD, "scope": "offline_access"},
     "invalid_scope"),
    ({"grant_type": "client_credentials", "scope": "api"}, "unsupported_grant_type"),
    ({"grant_type": "refresh_token", "refresh_token": "never-issued"}, "invalid_grant"),
])
def test_token_endpoint_refuses_bad_grants(sandbox, form, error):
    response = token_request(sandbox, **form)

    assert (response.status_code, response.json()) == (400, {"error": error})


def test_token_endpoint_refuses_wrong_client_and_json_bodies(sandbox):
    wrong = requests.post(f"{sandbox.url}/identity/connect/token", timeout=5, data={
        "client_id": sandbox.client_id, "client_secret": "guess", "grant_type": "password", "username": "admin",
        "password": PASSWORD, "scope": "api"})
    as_json = requests.post(f"{sandbox.url}/identity/connect/token", timeout=5, json={
        "client_id": sandbox.client_id, "client_secret": CLIENT_SECRET, "grant_type": "password"})

    assert wrong.json() == {"error": "invalid_client"}
    assert as_json.json() == {"error": "invalid_request"}


def test_refresh_tokens_rotate_and_a_used_one_is_dead(sandbox):
    first = sandbox.issue_refresh_token()

    rotated = token_request(sandbox, grant_type="refresh_token", refresh_token=first)
    replayed = token_request(sandbox, grant_type="refresh_token", refresh_token=first)

    assert rotated.status_code == 200 and rotated.json()["refresh_token"] != first
    assert (replayed.status_code, replayed.json()) == (400, {"error": "invalid_grant"})


def test_access_tokens_expire():
    now = [1000.0]
    with AcumaticaSandbox(token_lifetime_seconds=60, clock=lambda: now[0]) as sandbox:
        token = sandbox.issue_access_token()
        assert call(sandbox, "GET", f"{API}/Bill", token).status_code == 200
        now[0] += 61
        assert call(sandbox, "GET", f"{API}/Bill", token).status_code == 401


def test_missing_bearer_is_401(sandbox):
    response = call(sandbox, "GET", f"{API}/Bill")

    assert response.status_code == 401 and response.json()["message"]


# -------------------------------------------------------------------------------------------- versions and reads


def test_entity_lists_served_endpoints_without_authentication():
    with AcumaticaSandbox(versions=("23.200.001", "24.200.001")) as sandbox:
        body = call(sandbox, "GET", "/entity").json()

    defaults = [e["version"] for e in body["endpoints"] if e["name"] == "Default"]
    assert defaults == ["23.200.001", "24.200.001"]
    assert body["version"]["acumaticaBuildVersion"]


def test_unserved_endpoint_version_is_404(sandbox, token):
    assert call(sandbox, "GET", "/entity/Default/25.200.001/Bill", token).status_code == 404


def test_records_are_value_wrapped_with_plain_system_fields_and_empty_wrappers_for_null(sandbox, token):
    record = sandbox.add_document("PurchaseOrder", Owner=None, Description="Chairs")

    body = call(sandbox, "GET", f"{API}/PurchaseOrder/Normal/{record['OrderNbr']}", token).json()

    assert body["id"] == record["id"] and body["rowNumber"] == 1
    assert body["Description"] == {"value": "Chairs"} and body["Owner"] == {}
    assert body["Hold"] == {"value": True} and body["Status"] == {"value": "On Hold"}
    assert body["OrderTotal"] == {"value": 100}


def test_read_by_id_by_pipe_separated_keys_and_missing_record(sandbox, token):
    record = sandbox.add_document("Bill")

    by_id = call(sandbox, "GET", f"{API}/Bill/{record['id']}", token)
    by_pipe = call(sandbox, "GET", f"{API}/Bill/Bill|{record['ReferenceNbr']}", token)
    missing = call(sandbox, "GET", f"{API}/Bill/Bill/999999", token)

    assert by_id.json()["ReferenceNbr"] == {"value": record["ReferenceNbr"]}
    assert by_pipe.json()["id"] == record["id"]
    assert missing.status_code == 404


def test_list_filters_selects_pages_and_is_not_ordered_by_time(sandbox, token):
    base = datetime(2024, 5, 1, tzinfo=timezone.utc)
    for n in range(1, 9):
        sandbox.add_document("Bill", id=uid(n), Hold=n % 2 == 0,
                             LastModifiedDateTime=(base + timedelta(hours=n)).isoformat(timespec="milliseconds"))
    since = "datetimeoffset'2024-05-01T03:00:00.000+00:00'"

    everything = call(sandbox, "GET", f"{API}/Bill", token, params={"$filter": f"LastModifiedDateTime ge {since}"})
    held = call(sandbox, "GET", f"{API}/Bill", token, params={
        "$filter": f"LastModifiedDateTime ge {since} and Status eq 'On Hold'", "$select": "Status,Hold",
        "$top": "2", "$skip": "1"})

    times = [r["LastModifiedDateTime"]["value"] for r in everything.json()]
    assert len(times) == 6 and times != sorted(times) and times != sorted(times, reverse=True)
    page = held.json()
    assert len(page) == 2 and [r["rowNumber"] for r in page] == [2, 3]
    assert all(set(r) == {"id", "rowNumber", "note", "custom", "Status", "Hold"} for r in page)
    assert all(r["Status"] == {"value": "On Hold"} for r in page)


@pytest.mark.parametrize("params", [
    {"$orderby": "LastModifiedDateTime"},
    {"$filter": "LastModifiedDateTime ge datetime'2024-05-01T00:00:00'"},
    {"$filter": "LastModifiedDateTime ge datetimeoffset'2024-05-01T00:00:00'"},
    {"$filter": "Colour eq 'red'"},
    {"$select": "Colour"},
    {"$top": "-1"},
])
def test_list_refuses_what_acumatica_does_not_support(sandbox, token, params):
    assert call(sandbox, "GET", f"{API}/Bill", token, params=params).status_code == 400


def test_unencoded_plus_in_an_offset_is_refused(sandbox, token):
    raw = f"{API}/Bill?$filter=LastModifiedDateTime%20ge%20datetimeoffset'2024-05-01T00:00:00+00:00'"

    assert call(sandbox, "GET", raw, token).status_code == 400


# ------------------------------------------------------------------------------------------------------- PUT


def put(sandbox, token, entity, body, **headers):
    return call(sandbox, "PUT", f"{API}/{entity}", token, json=body, headers=headers)


def bill_keys(record):
    return {"Type": {"value": record["Type"]}, "ReferenceNbr": {"value": record["ReferenceNbr"]}}


def test_unbalanced_bill_cannot_leave_hold(sandbox, token):
    record = sandbox.add_document("Bill", Amount=100, Balance=90)

    response = put(sandbox, token, "Bill", {**bill_keys(record), "Hold": {"value": False}})

    assert response.status_code == 422
    assert response.json()["Amount"] == {"value": 100, "error": "The document is out of balance."}
    assert sandbox.document("Bill", ("Bill", record["ReferenceNbr"]))["Status"] == "On Hold"


def test_balanced_bill_leaves_hold_to_balanced_or_pending_approval(sandbox, token):
    plain = sandbox.add_document("Bill")
    approval = sandbox.add_document("Bill", requires_approval=True)

    first = put(sandbox, token, "Bill", {**bill_keys(plain), "Hold": {"value": False}})
    second = put(sandbox, token, "Bill", {**bill_keys(approval), "Hold": {"value": False}})

    assert first.json()["Status"] == {"value": "Balanced"} and first.json()["Hold"] == {"value": False}
    assert second.json()["Status"] == {"value": "Pending Approval"}


def test_purchase_order_control_total_must_match_to_leave_hold(sandbox, token):
    unbalanced = sandbox.add_document("PurchaseOrder", OrderTotal=50, ControlTotal=40)
    balanced = sandbox.add_document("PurchaseOrder")
    keys = lambda r: {"Type": {"value": "Normal"}, "OrderNbr": {"value": r["OrderNbr"]}}  # noqa: E731

    refused = put(sandbox, token, "PurchaseOrder", {**keys(unbalanced), "Hold": {"value": False}})
    opened = put(sandbox, token, "PurchaseOrder", {**keys(balanced), "Hold": {"value": False}})

    assert refused.status_code == 422 and refused.json()["ControlTotal"]["error"]
    assert opened.json()["Status"] == {"value": "Open"}


def test_fixing_the_control_amount_in_the_same_put_lets_the_bill_leave_hold(sandbox, token):
    record = sandbox.add_document("Bill", Amount=100, Balance=90)

    response = put(sandbox, token, "Bill", {**bill_keys(record), "Amount": {"value": 90}, "Hold": {"value": False}})

    assert response.status_code == 200 and response.json()["Status"] == {"value": "Balanced"}


def test_put_refuses_unwrapped_and_unknown_fields(sandbox, token):
    record = sandbox.add_document("Bill")

    unwrapped = put(sandbox, token, "Bill", {**bill_keys(record), "Hold": False})
    unknown = put(sandbox, token, "Bill", {**bill_keys(record), "Colour": {"value": "red"}})
    mistyped = put(sandbox, token, "Bill", {**bill_keys(record), "Hold": {"value": "false"}})

    assert [unwrapped.status_code, unknown.status_code, mistyped.status_code] == [400, 400, 400]
    assert "Hold" in unwrapped.json()["message"]


def test_update_only_put_of_missing_record_is_412(sandbox, token):
    response = put(sandbox, token, "Bill", {"Type": {"value": "Bill"}, "ReferenceNbr": {"value": "404404"},
                                            "Hold": {"value": False}}, **{"If-Match": "*"})

    assert response.status_code == 412
    assert sandbox.documents("Bill") == []


def test_released_document_cannot_be_edited(sandbox, token):
    record = sandbox.add_document("Bill", Hold=False, Status="Open")

    response = put(sandbox, token, "Bill", {**bill_keys(record), "Description": {"value": "changed"}})

    assert response.status_code == 422 and "Open" in response.json()["Description"]["error"]


def test_every_change_bumps_last_modified(sandbox, token):
    record = sandbox.add_document("Bill")

    put(sandbox, token, "Bill", {**bill_keys(record), "Hold": {"value": False}})

    after = sandbox.document("Bill", ("Bill", record["ReferenceNbr"]))
    assert after["LastModifiedDateTime"] > record["LastModifiedDateTime"]


# ---------------------------------------------------------------------------------------------------- actions


def act(sandbox, token, entity, action, keys):
    return call(sandbox, "POST", f"{API}/{entity}/{action}", token, json={"entity": keys, "parameters": {}})


def follow(sandbox, token, response, limit=5):
    statuses = [response.status_code]
    while response.status_code == 202 and len(statuses) <= limit:
        response = call(sandbox, "GET", response.headers["Location"], token)
        statuses.append(response.status_code)
    return statuses, response


def test_release_bill_goes_through_202_location_to_204_and_opens_the_bill(sandbox, token):
    record = sandbox.add_document("Bill", Hold=False)

    statuses, _ = follow(sandbox, token, act(sandbox, token, "Bill", "ReleaseBill", bill_keys(record)))

    assert statuses == [202, 202, 204]
    assert sandbox.document("Bill", ("Bill", record["ReferenceNbr"]))["Status"] == "Open"


def test_releasing_twice_fails_during_the_operation_with_an_http_error(sandbox, token):
    record = sandbox.add_document("Bill", Hold=False)
    follow(sandbox, token, act(sandbox, token, "Bill", "ReleaseBill", bill_keys(record)))

    statuses, final = follow(sandbox, token, act(sandbox, token, "Bill", "ReleaseBill", bill_keys(record)))

    assert statuses == [202, 202, 500]
    assert "Open" in final.json()["exceptionMessage"]
    assert [(a, o) for _, _, a, o in sandbox.action_log] == [("ReleaseBill", "completed"), ("ReleaseBill", "failed")]


def test_releasing_an_unbalanced_or_held_bill_fails(sandbox, token):
    record = sandbox.add_document("Bill")

    statuses, final = follow(sandbox, token, act(sandbox, token, "Bill", "ReleaseBill", bill_keys(record)))

    assert statuses[-1] == 500 and "On Hold" in final.json()["exceptionMessage"]
    assert sandbox.document("Bill", ("Bill", record["ReferenceNbr"]))["Status"] == "On Hold"


def test_approve_and_reject_follow_the_approval_workflow(sandbox, token):
    bill = sandbox.add_document("Bill", Hold=False, Status="Pending Approval", requires_approval=True)
    order = sandbox.add_document("PurchaseOrder", Hold=False, Status="Pending Approval", requires_approval=True)
    other = sandbox.add_document("PurchaseOrder", Hold=False, Status="Pending Approval", requires_approval=True)
    held = sandbox.add_document("Bill")
    po_keys = lambda r: {"Type": {"value": "Normal"}, "OrderNbr": {"value": r["OrderNbr"]}}  # noqa: E731

    follow(sandbox, token, act(sandbox, token, "Bill", "Approve", bill_keys(bill)))
    follow(sandbox, token, act(sandbox, token, "PurchaseOrder", "Approve", po_keys(order)))
    follow(sandbox, token, act(sandbox, token, "PurchaseOrder", "Reject", {"id": other["id"]}))
    statuses, _ = follow(sandbox, token, act(sandbox, token, "Bill", "Approve", bill_keys(held)))

    assert sandbox.document("Bill", ("Bill", bill["ReferenceNbr"]))["Status"] == "Balanced"
    assert sandbox.document("PurchaseOrder", ("Normal", order["OrderNbr"]))["Status"] == "Open"
    assert sandbox.document("PurchaseOrder", ("Normal", other["OrderNbr"]))["Status"] == "Rejected"
    assert statuses[-1] == 500


def test_release_check_closes_a_balanced_check(sandbox, token):
    check = sandbox.add_document("Check", Hold=False)

    follow(sandbox, token, act(sandbox, token, "Check", "ReleaseCheck",
                               {"Type": {"value": "Payment"}, "ReferenceNbr": {"value": check["ReferenceNbr"]}}))

    assert sandbox.document("Check", ("Payment", check["ReferenceNbr"]))["Status"] == "Closed"


def test_unknown_action_is_404_and_workflow_actions_are_listed(sandbox, token):
    record = sandbox.add_document("Check")

    missing = act(sandbox, token, "Check", "Approve", {"id": record["id"]})
    schema = call(sandbox, "GET", f"{API}/PurchaseOrder/$adHocSchema", token).json()

    assert missing.status_code == 404
    assert [name for item in schema["_workflowActions"] for name in item] == ["Approve", "Reject"]


# ------------------------------------------------------------------------------------------------------- push


def test_push_payload_has_acumaticas_format_with_old_and_new_rows(sandbox, token):
    record = sandbox.add_document("PurchaseOrder")
    put(sandbox, token, "PurchaseOrder", {"Type": {"value": "Normal"}, "OrderNbr": {"value": record["OrderNbr"]},
                                          "Hold": {"value": False}})

    payload = sandbox.push_payload("PurchaseOrder", ("Normal", record["OrderNbr"]))

    assert set(payload) == {"Query", "CompanyId", "Id", "TimeStamp", "AdditionalInfo", "Inserted", "Deleted"}
    assert (payload["Query"], payload["CompanyId"], payload["AdditionalInfo"]) == ("AJC-PurchaseOrders", "Company", {})
    new, old = payload["Inserted"][0], payload["Deleted"][0]
    assert (new["Type"], new["OrderNbr"], new["Status"], new["Hold"]) == ("Normal ", f"{record['OrderNbr']} ", "Open",
                                                                          False)  # keys padded, as documented
    assert (old["Status"], old["Hold"]) == ("On Hold", True)
    ticks = payload["TimeStamp"]
    moment = datetime(1, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=ticks // 10)
    assert moment.replace(tzinfo=None).isoformat(timespec="milliseconds") == new["LastModifiedDateTime"]


# ------------------------------------------------------------------------------------------------------ faults


def test_fail_next_answers_with_status_and_retry_after_then_recovers(sandbox, token):
    sandbox.fail_next(1, status=429, retry_after=2, path_contains="/Bill")

    throttled = call(sandbox, "GET", f"{API}/Bill", token)
    normal = call(sandbox, "GET", f"{API}/Bill", token)

    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "2")
    assert normal.status_code == 200


def test_reset_next_drops_the_connection(sandbox, token):
    sandbox.reset_next(1)

    with pytest.raises(requests.ConnectionError):
        call(sandbox, "GET", f"{API}/Bill", token)
    assert call(sandbox, "GET", f"{API}/Bill", token).status_code == 200


def test_latency_delays_answers(sandbox, token):
    sandbox.set_latency(0.2)

    started = time.monotonic()
    call(sandbox, "GET", "/entity")

    assert time.monotonic() - started >= 0.2


def test_requests_log_redacts_token_endpoint_secrets(sandbox):
    token_request(sandbox, grant_type="password", username="admin", password=PASSWORD, scope="api")

    entry = sandbox.requests_log[-1]
    assert entry.body["grant_type"] == "password"
    assert PASSWORD not in repr(sandbox.requests_log) and CLIENT_SECRET not in repr(sandbox.requests_log)


def test_requests_log_redacts_issued_tokens(sandbox):
    body = token_request(sandbox, grant_type="password", username="admin", password=PASSWORD,
                         scope="api offline_access").json()

    logged = repr(sandbox.requests_log)
    assert body["access_token"] not in logged and body["refresh_token"] not in logged
