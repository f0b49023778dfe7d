"""The sample events in events/ drive the real handlers on the embedded stack exactly as AWS would deliver them."""

from __future__ import annotations

import json

import pytest

from connector_local.stack import ROOT, LocalStack


def sample(name: str) -> dict:
    return json.loads((ROOT / "events" / name).read_text())


@pytest.fixture(scope="module")
def stack():
    with LocalStack.start({}, quiet=True) as running:
        running.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="000123", Vendor="V000001", Amount=100,
                                       Balance=100, Hold=True)
        yield running


def test_schedule_event_polls_and_queues_the_stuck_bill(stack):
    result = stack.functions["PollerFunction"].invoke(sample("poll-schedule.json"))
    assert sum(report["enqueued"] for report in result["reports"]) == 1


def test_worker_batch_creates_the_issue_and_skips_a_resolution_of_an_unknown_issue(stack):
    response = stack.functions["WorkerFunction"].invoke(sample("worker-sqs-batch.json"))
    assert response == {"batchItemFailures": []}
    assert len(stack.jira.issues_with_external_id("Bill:Bill:000123")) == 1
    assert stack.acumatica.document("Bill", ("Bill", "000123"))["Status"] == "On Hold"  # AP-7 is not ours


def test_resolve_record_for_the_real_issue_releases_the_bill(stack):
    (issue,) = stack.jira.issues_with_external_id("Bill:Bill:000123")
    stack.jira.resolve_issue(issue["key"], "Done")
    event = sample("worker-sqs-batch.json")
    record = event["Records"][1]
    record["body"] = json.dumps({**json.loads(record["body"]), "issue_key": issue["key"]})
    event["Records"] = [record]
    assert stack.functions["WorkerFunction"].invoke(event) == {"batchItemFailures": []}
    assert stack.acumatica.document("Bill", ("Bill", "000123"))["Status"] == "Open"


def test_signed_jira_webhook_sample_is_accepted(stack):
    response = stack.functions["WebhookFunction"].invoke(sample("jira-webhook.json"))
    assert response["statusCode"] == 202


def test_acumatica_push_sample_is_accepted_and_a_tampered_copy_rejected(stack):
    event = sample("acumatica-push.json")
    assert stack.functions["WebhookFunction"].invoke(event)["statusCode"] == 202
    event["headers"] = {**event["headers"], "x-connector-secret": "guess"}
    assert stack.functions["WebhookFunction"].invoke(event)["statusCode"] == 401


def test_malformed_worker_message_goes_to_the_dlq_at_once_and_does_not_block_other_documents(stack):
    event = sample("worker-sqs-batch.json")
    broken, healthy = event["Records"]
    broken["body"], broken["attributes"]["MessageGroupId"] = "{not json", "Bill:Bill:999999"
    event["Records"] = [broken, healthy]
    response = stack.functions["WorkerFunction"].invoke(event)
    assert response == {"batchItemFailures": []}  # no retry can parse it: dead-lettered, not retried five times
    sqs, dlq = stack.aws.client("sqs"), stack.aws.outputs["DeadLetterQueueUrl"]
    (dead,) = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"],
                                  MessageSystemAttributeNames=["All"])["Messages"]
    assert dead["Body"] == "{not json" and dead["Attributes"]["MessageGroupId"] == "Bill:Bill:999999"
    assert "not a work message" in dead["MessageAttributes"]["FailureReason"]["StringValue"]
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=dead["ReceiptHandle"])


def test_a_binary_body_is_refused_as_unsigned_or_malformed_never_a_server_error(stack):
    import base64

    from connector.signatures import sign_hub

    event = sample("jira-webhook.json")
    raw = b"\xff\xfe not utf-8"
    event.update(body=base64.b64encode(raw).decode(), isBase64Encoded=True)
    assert stack.functions["WebhookFunction"].invoke(event)["statusCode"] == 401
    event["headers"] = {**event["headers"], "x-hub-signature": sign_hub("local-webhook-secret", raw)}
    assert stack.functions["WebhookFunction"].invoke(event)["statusCode"] == 400


def test_a_delivery_arriving_while_its_twin_is_being_queued_gets_409_so_jira_retries(stack):
    import sys

    function = stack.functions["WebhookFunction"]
    module = sys.modules[function.handler.__module__]
    from connector.signatures import sign_hub

    event = sample("jira-webhook.json")
    body = json.loads(event["body"])
    body["changelog"]["id"] = "77777"  # another change: a delivery of its own (the key comes from the signed body)
    event["body"] = json.dumps(body)
    event["headers"] = {**event["headers"], "x-hub-signature": sign_hub("local-webhook-secret", event["body"].encode())}
    queue, twin_answers = module.wiring.queue, []

    class TwinArrivesMidSend:
        def send(self, messages):  # the first invocation is inside its idempotent enqueue right now
            twin_answers.append(module.handler(event, function.new_context()))
            queue.send(messages)

    module.wiring.queue = TwinArrivesMidSend()
    try:
        first = function.invoke(event)
    finally:
        module.wiring.queue = queue
    assert first["statusCode"] == 202
    assert [answer["statusCode"] for answer in twin_answers] == [409]
    assert function.invoke(event)["statusCode"] == 202  # Jira's retry gets the first result, nothing queued twice
