"""Jira → Acumatica through the real handlers: a resolved issue acts on its document only if allowed, never twice."""

from __future__ import annotations

import json
import threading

from connector.signatures import sign_hub


def _stuck_bill(stack, harness, number: str, **fields) -> dict:
    values = {"Type": "Bill", "ReferenceNbr": number, "Vendor": "V100", "Amount": 20, "Balance": 20, "Hold": True}
    stack.acumatica.add_document("Bill", **{**values, **fields})
    harness.poll()
    (issue,) = harness.issues(f"Bill:Bill:{number}")
    return issue


def test_resolving_an_issue_releases_its_bill_once_despite_duplicate_deliveries(stack, harness):
    issue = _stuck_bill(stack, harness, "200001")
    stack.jira.duplicate_deliveries = 2
    try:
        stack.jira.resolve_issue(issue["key"], "Done")
    finally:
        stack.jira.duplicate_deliveries = 0
    stack.drain()
    assert stack.acumatica.document("Bill", ("Bill", "200001"))["Status"] == "Open"
    assert len(harness.releases("200001")) == 1
    comment = str(stack.jira.comments(issue["key"])[-1]["body"])
    assert "ReleaseBill" in comment and "Open" in comment
    assert harness.depth("DeadLetterQueueUrl") == 0


def test_resolving_again_after_release_posts_nothing(stack, harness):
    issue = _stuck_bill(stack, harness, "200002")
    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()
    stack.jira.resolve_issue(issue["key"], "To Do")
    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()
    assert len(harness.releases("200002")) == 1
    assert "allows no action" in str(stack.jira.comments(issue["key"])[-1]["body"])


def test_unbalanced_bill_is_not_touched_and_the_issue_says_why(stack, harness):
    issue = _stuck_bill(stack, harness, "200003", Amount=30, Balance=20)
    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()
    assert stack.acumatica.document("Bill", ("Bill", "200003"))["Status"] == "On Hold"
    assert [e for e in stack.acumatica.action_log if e[1] == ("Bill", "200003")] == []
    assert "unbalanced" in str(stack.jira.comments(issue["key"])[-1]["body"])


def test_pending_approval_order_is_approved_with_the_workflow_action(stack, harness):
    stack.acumatica.add_document("PurchaseOrder", Type="Normal", OrderNbr="PO200004", VendorID="V200", OrderTotal=5,
                                 ControlTotal=5, Hold=False, Status="Pending Approval", requires_approval=True)
    harness.poll()
    (issue,) = harness.issues("PurchaseOrder:Normal:PO200004")
    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()
    assert stack.acumatica.document("PurchaseOrder", ("Normal", "PO200004"))["Status"] == "Open"
    assert [e[2] for e in stack.acumatica.action_log if e[1] == ("Normal", "PO200004")] == ["Approve"]


def test_concurrent_resolution_deliveries_release_once(stack, harness):
    issue = _stuck_bill(stack, harness, "200005")
    stack.jira.resolve_issue(issue["key"], "Done")  # the real delivery, queued but not yet worked
    bodies = []
    for n in range(4):  # plus late copies under other identifiers, arriving at once
        body, headers = stack.jira.build_issue_updated_event(issue["key"], "To Do", "Done")
        headers["X-Atlassian-Webhook-Identifier"] = f"concurrent-{n}"
        bodies.append((body, headers))
    answers = []
    threads = [threading.Thread(target=lambda b=b, h=h: answers.append(harness.post("/jira/webhook", b, h)))
               for b, h in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [202] * 4
    stack.drain()
    assert len(harness.releases("200005")) == 1


def test_a_delivery_claiming_done_for_an_issue_not_resolved_now_does_nothing(stack, harness):
    issue = _stuck_bill(stack, harness, "200010")
    late_body, late_headers = stack.jira.build_issue_updated_event(issue["key"], "To Do", "Done")
    assert harness.post("/jira/webhook", late_body, late_headers).status_code == 202
    stack.drain()
    assert [e for e in stack.acumatica.action_log if e[1] == ("Bill", "200010")] == []


def test_a_refused_action_is_commented_and_retried_by_resolving_again(stack, harness):
    issue = _stuck_bill(stack, harness, "200006")
    stack.acumatica.fail_next(1, status=422, retry_after=None, path_contains="/Bill/ReleaseBill")
    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()
    assert harness.releases("200006") == []
    assert "refused" in str(stack.jira.comments(issue["key"])[-1]["body"])
    stack.jira.resolve_issue(issue["key"], "To Do")
    stack.jira.resolve_issue(issue["key"], "Done")
    stack.drain()
    assert len(harness.releases("200006")) == 1


def test_webhook_rejections_leave_no_trace(stack, harness):
    issue = _stuck_bill(stack, harness, "200007")
    body, headers = stack.jira.build_issue_updated_event(issue["key"], "To Do", "Done")
    before_items = stack.aws.client("dynamodb").scan(TableName=stack.aws.outputs["TableName"])["Count"]
    cases = {
        "missing": ({k: v for k, v in headers.items() if k.lower() != "x-hub-signature"}, body, 401),
        "malformed": ({**headers, "X-Hub-Signature": "sha256=zz"}, body, 401),
        "wrong secret": ({**headers, "X-Hub-Signature": sign_hub("not-the-secret", body)}, body, 401),
        "tampered": (headers, body.replace(b"Done", b"Dona", 1), 401),
        "not json": ({**headers, "X-Hub-Signature": sign_hub("local-webhook-secret", b"{nope")}, b"{nope", 400),
        "too large": ({**headers, "X-Hub-Signature": sign_hub("local-webhook-secret", b" " * 1_100_000)},
                      b" " * 1_100_000, 413),
    }
    for name, (case_headers, case_body, status) in cases.items():
        assert harness.post("/jira/webhook", case_body, case_headers).status_code == status, name
    assert harness.depth("WorkQueueUrl") == 0
    assert stack.aws.client("dynamodb").scan(TableName=stack.aws.outputs["TableName"])["Count"] == before_items
    assert harness.releases("200007") == []


def test_updates_that_are_not_resolutions_are_acknowledged_and_ignored(stack, harness):
    issue = _stuck_bill(stack, harness, "200008")
    body, headers = stack.jira.build_issue_updated_event(issue["key"], "To Do", "In Progress")
    answer = harness.post("/jira/webhook", body, headers)
    assert answer.status_code == 200 and json.loads(answer.text)["status"] == "ignored"
    assert harness.depth("WorkQueueUrl") == 0


def test_maintenance_registers_and_refreshes_the_dynamic_webhook_whose_jwt_deliveries_are_accepted(stack, harness):
    stack.tick("MaintenanceFunction")
    (hook,) = [h for h in stack.jira.webhooks() if h["url"] == stack.environment["WEBHOOK_URL"]]
    secret = json.loads(stack.aws.client("secretsmanager").get_secret_value(
        SecretId=stack.aws.outputs["JiraSecretArn"])["SecretString"])
    assert secret["webhook_ids"] == [hook["id"]]
    stack.jira.advance_clock(25 * 86400)
    stack.tick("MaintenanceFunction")
    (refreshed,) = [h for h in stack.jira.webhooks() if h["url"] == stack.environment["WEBHOOK_URL"]]
    assert refreshed["id"] == hook["id"] and refreshed["expirationDate"] != hook["expirationDate"]
    issue = _stuck_bill(stack, harness, "200009")
    attempts = stack.jira.resolve_issue(issue["key"], "Done")
    dynamic = [a for a in attempts if a["kind"] == "dynamic"]
    assert dynamic and all(a["status"] == 202 for a in dynamic)
    stack.drain()
    assert len(harness.releases("200009")) == 1
