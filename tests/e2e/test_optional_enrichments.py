"""Optional never blocks essential, through the real handlers on the local stack: routing, links, priority and due
date are enrichments. Acumatica refusing a purchase order (403) or Jira refusing a link (413, 403, 404) or a field
(400) is audited; the issue is still created, its message is done, and nothing waits in the dead-letter queue."""

from __future__ import annotations

import boto3
import pytest

from connector.model import DocumentKey
from connector.store import DynamoStore


def trail(stack, external_id: str) -> list[dict]:
    table = boto3.resource("dynamodb", endpoint_url=stack.aws.endpoint_url, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing").Table(
        stack.aws.outputs["TableName"])
    return DynamoStore(table).audit_trail(DocumentKey.parse(external_id))


def billing(stack, number: str, order: str, **fields) -> None:
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr=number, Vendor="V150", Amount=70, Balance=70,
                                 Hold=True, Details=[{"POOrderType": "Normal", "POOrderNbr": order, "POLine": 1,
                                                     "Amount": 70}], **fields)


@pytest.mark.parametrize("status", [413, 403, 404])
def test_a_refused_link_leaves_the_bills_issue_created_and_its_message_done(stack, harness, status):
    order = f"PO15{status}"
    stack.acumatica.add_document("PurchaseOrder", Type="Normal", OrderNbr=order, VendorID="V150", OrderTotal=70,
                                 ControlTotal=70, Hold=True, Owner="buyer.kim")
    harness.poll()
    (order_issue,) = harness.issues(f"PurchaseOrder:Normal:{order}")
    billing(stack, f"15{status}0", order)
    stack.jira.fail_next(1, status=status, method="POST", path_contains="/issueLink")
    harness.poll()
    (bill_issue,) = harness.issues(f"Bill:Bill:15{status}0")
    assert stack.jira.issue_links(bill_issue["key"]) == []
    assert harness.depth("DeadLetterQueueUrl") == 0 and harness.depth("WorkQueueUrl") == 0
    records = trail(stack, f"Bill:Bill:15{status}0")
    (link,) = [r for r in records if r["event"] == "link"]
    assert link["outcome"] == "failed" and str(status) in link["reason"]
    assert [r["outcome"] for r in records if r["event"] == "issue"] == ["created"]
    assert not [r for r in records if r["event"] == "attempt"]  # done at the first attempt, never failed
    assert order_issue["key"] != bill_issue["key"]


def test_a_purchase_order_the_api_user_may_not_read_still_gives_the_bill_its_issue(stack, harness):
    stack.acumatica.add_document("PurchaseOrder", Type="Normal", OrderNbr="PO150403", VendorID="V151",
                                 OrderTotal=70, ControlTotal=70, Hold=False, Owner="buyer.kim")
    billing(stack, "150403", "PO150403")
    stack.acumatica.forbid("PurchaseOrder")
    try:
        try:
            stack.tick("PollerFunction")
        except Exception as exc:  # noqa: BLE001 - the poll of purchase orders fails, as it would on Acumatica
            assert "PurchaseOrder" in str(exc)
        stack.drain()
    finally:
        stack.acumatica.forbid("PurchaseOrder", False)
    (issue,) = harness.issues("Bill:Bill:150403")
    assert issue["fields"]["assignee"] is None  # the buyer could not be known: nobody else routes V151
    assert harness.depth("DeadLetterQueueUrl") == 0
    records = trail(stack, "Bill:Bill:150403")
    (routing,) = [r for r in records if r["event"] == "routing"]
    assert routing["outcome"] == "unavailable" and "403" in routing["reason"]
    forbidden = [e for e in stack.acumatica.requests_log if e.status == 403]
    assert forbidden and all("/PurchaseOrder" in e.path for e in forbidden)
    assert not [e for e in stack.acumatica.requests_log if "/PurchaseOrder/Normal/PO150403" in e.path]


def test_fields_the_jira_screen_lacks_leave_the_issue_created_without_them(stack, harness):
    stack.jira.hide_fields("duedate", "priority")
    try:
        stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="150500", Vendor="V152", Amount=5,
                                     Balance=5, Hold=True)
        harness.poll()
    finally:
        stack.jira.hide_fields("duedate", "priority", hidden=False)
    (issue,) = harness.issues("Bill:Bill:150500")
    assert issue["fields"]["duedate"] is None
    outcomes = {r["outcome"] for r in trail(stack, "Bill:Bill:150500") if r["event"] == "issue"}
    assert {"duedate-refused", "priority-refused", "created"} <= outcomes
    assert harness.depth("DeadLetterQueueUrl") == 0


def test_a_refusal_naming_no_field_drops_the_optional_fields_and_creates_the_issue(stack, harness):
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="150600", Vendor="V153", Amount=6, Balance=6,
                                 Hold=True)
    stack.jira.fail_next(1, status=400, method="POST", path_contains="/rest/api/3/issue")
    harness.poll()
    (issue,) = harness.issues("Bill:Bill:150600")
    assert issue["fields"]["duedate"] is None
    assert harness.depth("DeadLetterQueueUrl") == 0
