"""Triage through the real handlers on the local stack: a held bill is assigned to the buyer of the purchase order
its lines reference (read by the poll for the whole page with ``$expand=Details``, the orders' owners likewise), and
carries its due date and a priority from the default table."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from connector_local.jira_sandbox import PERSON_ACCOUNT


def test_held_bill_goes_to_the_po_buyer_with_due_date_and_priority(stack, harness):
    stack.acumatica.add_document("PurchaseOrder", Type="Normal", OrderNbr="PO140001", VendorID="V140",
                                 OrderTotal=500, ControlTotal=500, Hold=False, Owner="buyer.kim")
    due = (datetime.now(timezone.utc) + timedelta(days=2)).date()
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="140002", Vendor="V140", Amount=500,
                                 Balance=500, Hold=True, DueDate=f"{due.isoformat()}T00:00:00",
                                 Details=[{"POOrderType": "Normal", "POOrderNbr": "PO140001", "POLine": 1,
                                           "Amount": 500}])
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="140003", Vendor="V140", Amount=20, Balance=20,
                                 Hold=True, DueDate=f"{(due + timedelta(days=30)).isoformat()}T00:00:00")
    harness.poll()
    (held,) = harness.issues("Bill:Bill:140002")
    assert held["fields"]["assignee"]["accountId"] == PERSON_ACCOUNT
    assert held["fields"]["duedate"] == due.isoformat()
    assert held["fields"]["priority"]["name"] == "High"
    (later,) = harness.issues("Bill:Bill:140003")
    assert later["fields"]["assignee"] is None and later["fields"]["priority"]["name"] == "Medium"
    (expanded,) = [e for e in stack.acumatica.requests_log if e.query.get("$expand")]  # one for the page
    assert expanded.path.endswith("/Bill") and expanded.query["$filter"] in (
        "ReferenceNbr eq '140002' or ReferenceNbr eq '140003'", "ReferenceNbr eq '140003' or ReferenceNbr eq '140002'")
    (owners,) = [e for e in stack.acumatica.requests_log if "OrderNbr eq" in e.query.get("$filter", "")]
    assert owners.query["$filter"] == "OrderNbr eq 'PO140001'"
    assert harness.issues("PurchaseOrder:Normal:PO140001") == []

    calls = len(stack.jira.exchanges())
    assert harness.queued(harness.poll()) == 0
    assert len(stack.jira.exchanges()) == calls


def test_a_held_bill_relates_to_its_held_purchase_orders_issue(stack, harness):
    stack.acumatica.add_document("PurchaseOrder", Type="Normal", OrderNbr="PO140010", VendorID="V141",
                                 OrderTotal=70, ControlTotal=70, Hold=True, Owner="buyer.kim")
    harness.poll()
    (order,) = harness.issues("PurchaseOrder:Normal:PO140010")
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="140011", Vendor="V141", Amount=70, Balance=70,
                                 Hold=True, Details=[{"POOrderType": "Normal", "POOrderNbr": "PO140010", "POLine": 1,
                                                      "Amount": 70}])
    harness.poll()
    (bill,) = harness.issues("Bill:Bill:140011")
    assert stack.jira.issue_links(bill["key"]) == [("Relates", bill["key"], order["key"])]
    assert bill["fields"]["assignee"]["accountId"] == PERSON_ACCOUNT
