"""Acumatica → Jira through the real handlers: exactly one issue per exception document, kept current."""

from __future__ import annotations

from connector.redrive import redrive_dead_letters
from connector_local.jira_sandbox import PERSON_ACCOUNT


def test_stuck_documents_become_one_issue_each_and_healthy_ones_none(stack, harness):
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="100001", Vendor="V100", Amount=10, Balance=10,
                                 Hold=True)
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="100002", Vendor="V100", Amount=10, Balance=10,
                                 Hold=False)
    stack.acumatica.add_document("PurchaseOrder", Type="Normal", OrderNbr="PO100003", VendorID="V200",
                                 OrderTotal=99.5, ControlTotal=99.5, Hold=False, Status="Pending Approval",
                                 Owner="buyer.kim", requires_approval=True)
    harness.poll()
    (bill,) = harness.issues("Bill:Bill:100001")
    assert "100001" in bill["fields"]["summary"] and "V100" in bill["fields"]["summary"]
    assert "10.00 USD" in bill["fields"]["summary"]
    assert bill["fields"]["description"]["type"] == "doc"
    (order,) = harness.issues("PurchaseOrder:Normal:PO100003")
    assert order["fields"]["assignee"]["accountId"] == PERSON_ACCOUNT
    assert harness.issues("Bill:Bill:100002") == []


def test_repeated_polls_and_a_lost_watermark_make_no_second_issue_and_no_jira_call(stack, harness):
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="100010", Vendor="V100", Amount=5, Balance=5,
                                 Hold=True)
    harness.poll()
    calls = len(stack.jira.exchanges())
    assert harness.queued(harness.poll()) == 0
    table = stack.aws.client("dynamodb")
    for entity in ("Bill", "PurchaseOrder", "Check"):
        table.delete_item(TableName=stack.aws.outputs["TableName"], Key={"PK": {"S": f"WM#{entity}"}, "SK": {"S": "WM"}})
    assert harness.queued(harness.poll()) == 0
    assert len(stack.jira.exchanges()) == calls
    assert len(harness.issues("Bill:Bill:100010")) == 1


def test_state_change_is_commented_old_to_new(stack, harness):
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="100020", Vendor="V100", Amount=70, Balance=70,
                                 Hold=True)
    harness.poll()
    stack.acumatica.update_document("Bill", ("Bill", "100020"), Amount=75, Balance=70)
    harness.poll()
    (issue,) = harness.issues("Bill:Bill:100020")
    text = str(stack.jira.comments(issue["key"])[-1]["body"])
    assert "70.00 USD" in text and "75.00 USD" in text
    assert "differs" in stack.jira.issue(issue["key"])["fields"]["summary"]


def test_duplicate_queue_deliveries_make_one_issue(stack, harness):
    from connector.model import WorkMessage
    from connector.queue import SqsWorkQueue

    stack.acumatica.add_document("Check", Type="Payment", ReferenceNbr="100030", Vendor="V300", PaymentAmount=12,
                                 Hold=True)
    queue = SqsWorkQueue(harness.sqs, stack.aws.outputs["WorkQueueUrl"])
    queue.send([WorkMessage(kind="sync", external_id="Check:Payment:100030", dedupe_id=f"dup-{n}",
                            correlation_id="test", source="push") for n in range(3)])
    stack.drain()
    assert len(harness.issues("Check:Payment:100030")) == 1


def test_refused_owner_map_assignee_still_creates_the_issue(stack, harness):
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="100040", Vendor="V-FORMER", Amount=1, Balance=1,
                                 Hold=True)
    harness.poll()
    (issue,) = harness.issues("Bill:Bill:100040")
    assert issue["fields"]["assignee"] is None


def test_failures_reach_the_dlq_and_a_replay_creates_the_issue_exactly_once(stack, harness):
    # A description too long for the work message to carry the poll's read, so every attempt reads the document.
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="100050", Vendor="V100", Amount=3, Balance=3,
                                 Hold=True, Description="Quarterly maintenance. " * 800)
    # The API user is locked out for this document's reads: refused even with a fresh token, which no retry can
    # change, so the first attempt sends the message to the DLQ with its reason (not after MaxReceiveCount tries).
    stack.acumatica.fail_next(2, status=401, path_contains="/Bill/Bill/100050")
    harness.poll()
    assert harness.issues("Bill:Bill:100050") == []
    assert harness.depth("DeadLetterQueueUrl") == 1
    (dead,) = harness.sqs.receive_message(QueueUrl=stack.aws.outputs["DeadLetterQueueUrl"], VisibilityTimeout=0,
                                          MessageAttributeNames=["All"])["Messages"]
    assert "AuthenticationError" in dead["MessageAttributes"]["FailureReason"]["StringValue"]
    # An admin fixes the API user; the replay then creates the issue.
    result = redrive_dead_letters(harness.sqs, stack.aws.outputs["DeadLetterQueueUrl"],
                                  stack.aws.outputs["WorkQueueUrl"], poll_seconds=0.1)
    assert result.moved == 1
    stack.drain()
    assert len(harness.issues("Bill:Bill:100050")) == 1
    redrive_dead_letters(harness.sqs, stack.aws.outputs["DeadLetterQueueUrl"], stack.aws.outputs["WorkQueueUrl"],
                         poll_seconds=0.1)
    stack.drain()
    assert len(harness.issues("Bill:Bill:100050")) == 1
    assert harness.depth("DeadLetterQueueUrl") == 0


def test_push_notification_with_the_secret_leads_to_the_same_issue_as_a_poll(stack, harness):
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="100060", Vendor="V100", Amount=8, Balance=8,
                                 Hold=True)
    payload = stack.acumatica.push_payload("Bill", ("Bill", "100060"))
    import json

    body = json.dumps(payload).encode()
    assert harness.post("/acumatica/push", body, {"X-Connector-Secret": "wrong"}).status_code == 401
    assert harness.post("/acumatica/push", body, {}).status_code == 401
    assert harness.depth("WorkQueueUrl") == 0
    answer = harness.post("/acumatica/push", body, {"X-Connector-Secret": "local-push-secret"})
    assert answer.status_code == 202
    stack.drain()
    (issue,) = harness.issues("Bill:Bill:100060")
    assert "100060" in issue["fields"]["summary"]
    harness.poll()  # the poll sees the same state: no second issue, nothing new
    assert len(harness.issues("Bill:Bill:100060")) == 1


def test_search_lag_cannot_duplicate_when_the_state_record_is_lost(stack, harness):
    stack.jira.search_lag_seconds = 3600
    try:
        stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="100070", Vendor="V100", Amount=2, Balance=2,
                                     Hold=True)
        harness.poll()
        dynamo = stack.aws.client("dynamodb")
        dynamo.delete_item(TableName=stack.aws.outputs["TableName"],
                           Key={"PK": {"S": "DOC#Bill#Bill#100070"}, "SK": {"S": "STATE"}})
        stack.acumatica.update_document("Bill", ("Bill", "100070"), Description="changed after the state was lost")
        stack.acumatica.update_document("Bill", ("Bill", "100070"), Amount=4, Balance=2)
        harness.poll()
        assert len(harness.issues("Bill:Bill:100070")) == 1
    finally:
        stack.jira.search_lag_seconds = 0.0


def test_the_worker_acts_on_the_polled_read_without_reading_the_document_again(stack, harness):
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="100090", Vendor="V100", Amount=4, Balance=4,
                                 Hold=True)
    del stack.acumatica.requests_log[:]
    harness.poll()
    (issue,) = harness.issues("Bill:Bill:100090")
    assert "4.00 USD" in issue["fields"]["summary"]
    reads = [r for r in stack.acumatica.requests_log if r.method == "GET" and "/Bill/Bill/100090" in r.path]
    # Neither the document nor its lines are read again: the poll read the page's lines in one list request
    # ($expand=Details, for the buyer who owns their PO) and the message carries both.
    assert reads == []
    (lines,) = [r for r in stack.acumatica.requests_log if r.query.get("$expand") == "Details"]
    assert lines.query["$filter"] == "ReferenceNbr eq '100090'"
