"""A throttled Jira is not hammered by the rest of the batch: through the real worker handler on the embedded stack,
one 429 with a long Retry-After stops every later request to Jira in that container, the batch reports every record
as an item failure (not a Lambda error), and each attempt is in the audit trail."""

from __future__ import annotations

import boto3
import pytest

from connector.model import DocumentKey
from connector.store import DynamoStore
from connector_local.pump import lambda_sqs_event
from connector_local.stack import LocalStack


@pytest.fixture(scope="module")
def stack():
    with LocalStack.start({}, quiet=True) as running:
        yield running


def test_one_long_retry_after_holds_back_every_later_jira_request_of_the_batch(stack):
    numbers = ("300001", "300002", "300003")
    for number in numbers:
        stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr=number, Vendor="V100", Amount=5, Balance=5,
                                     Hold=True)
    stack.tick("PollerFunction")  # queued, not yet worked
    sqs, queue = stack.aws.client("sqs"), stack.aws.outputs["WorkQueueUrl"]
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"],
                                   MessageAttributeNames=["All"])["Messages"]
    assert len(messages) == len(numbers)
    stack.jira.fail_next(1, status=429, retry_after=1847, path_contains="/search")
    before = len(stack.jira.exchanges())

    response = stack.functions["WorkerFunction"].invoke(
        lambda_sqs_event(messages, stack.pump.queue_arn, stack.pump.region))

    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(
        m["MessageId"] for m in messages)
    assert len(stack.jira.exchanges()) - before == 1  # the throttled call itself; nothing after it
    assert stack.jira.issues() == []
    table = boto3.resource("dynamodb", endpoint_url=stack.aws.endpoint_url, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing").Table(
        stack.aws.outputs["TableName"])
    for number in numbers:
        attempts = [a for a in DynamoStore(table).audit_trail(DocumentKey("Bill", "Bill", number))
                    if a["event"] == "attempt"]
        assert [a["outcome"] for a in attempts] == ["failed"]
        assert "429" in attempts[0]["reason"] or "asked to wait 1847 s" in attempts[0]["reason"]
