"""Each inbound delivery is queued once, and never lost: the webhook's wiring (Powertools idempotency over the
delivery key, the FIFO send) against moto's DynamoDB and SQS. It writes nothing but its idempotency records: the
worker records the "queued" step (docs/security.md).

Jira retries a delivery for hours while SQS FIFO deduplicates for five minutes, so the idempotency record is what
stops a late retry; and since the record is written before the send, a failed send or a crash between the two must
leave a retry able to queue the delivery, never a record that swallows it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Iterator

import pytest
from moto import mock_aws

from connector.errors import DeliveryInProgress
from connector.model import WorkMessage
from connector.store import DynamoStore
from connector.wiring import Wiring
from tests.conftest import ROOT
from tests.core.conftest import table_definition

TABLE = "connector-test"


class Context:
    """The part of Lambda's context idempotency reads: how long the invocation may still run."""

    def __init__(self, remaining_ms: int = 10_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class Killed(BaseException):
    """The invocation dies (timeout, out of memory): no ``except Exception`` runs, no clean-up happens."""


def resolve_message(number: str = "000123") -> WorkMessage:
    return WorkMessage(kind="resolve", external_id=f"Bill:Bill:{number}", dedupe_id=f"resolve:10042:{number}",
                       correlation_id="request-1", source="jira-webhook", issue_key="AP-7", issue_id="10042",
                       reason="AP-7 moved to Done")


@pytest.fixture
def aws() -> Iterator[dict]:
    import boto3

    with mock_aws():
        table = boto3.resource("dynamodb").create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                                                         **table_definition())
        queue_url = boto3.client("sqs").create_queue(
            QueueName="work.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"})["QueueUrl"]
        yield {"table": table, "queue_url": queue_url}


def webhook_wiring(aws: dict, context: Context | None = None) -> Wiring:
    """A webhook container's wiring, its Lambda context registered as the handler does at every invocation."""
    wiring = Wiring({"TABLE_NAME": TABLE, "WORK_QUEUE_URL": aws["queue_url"], "ACUMATICA_URL": "https://a.example",
                     "JIRA_PROJECT_KEY": "AP", "JIRA_EXTERNAL_ID_FIELD": "customfield_10050"})
    wiring.delivery_idempotency.register_lambda_context(context or Context())
    return wiring


def queued(aws: dict) -> list[dict]:
    import boto3

    sqs = boto3.client("sqs")
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=aws["queue_url"], ReceiptHandle=message["ReceiptHandle"])


def queued_audit(aws: dict, message: WorkMessage) -> list[dict]:
    return [r for r in DynamoStore(aws["table"]).audit_trail(message.key) if r["event"] == "queued"]


def partitions(aws: dict) -> set[str]:
    return {item["PK"] for item in aws["table"].scan()["Items"]}


def test_the_webhook_writes_only_its_idempotency_records_never_a_documents_partition(aws):
    messages = [resolve_message(f"{n:06d}") for n in range(30)]
    webhook_wiring(aws).enqueue_delivery("push:1", messages)
    assert len(queued(aws)) == 30 and partitions(aws) == {"IDEMPOTENCY#deliveries"}
    assert all(queued_audit(aws, m) == [] for m in messages)


def test_a_late_duplicate_gets_the_first_answer_and_queues_nothing(aws):
    wiring, message = webhook_wiring(aws), resolve_message()
    assert wiring.enqueue_delivery("delivery-1", [message]) == {"queued": 1}
    assert queued(aws) == [json.loads(message.to_json())]
    # After SQS's five-minute deduplication window: only the idempotency record stops Jira's retry.
    assert webhook_wiring(aws).enqueue_delivery("delivery-1", [message]) == {"queued": 1}
    assert queued(aws) == [] and queued_audit(aws, message) == []


def test_a_failed_send_leaves_no_mark_so_the_retry_queues_the_delivery(aws):
    wiring, message = webhook_wiring(aws), resolve_message()
    queue = wiring.queue

    class Refusing:
        def send(self, messages):
            raise ConnectionError("SQS unreachable")

    wiring.queue = Refusing()
    with pytest.raises(ConnectionError):
        wiring.enqueue_delivery("delivery-1", [message])
    assert queued_audit(aws, message) == []
    wiring.queue = queue
    assert wiring.enqueue_delivery("delivery-1", [message]) == {"queued": 1}  # Jira's retry
    assert len(queued(aws)) == 1 and queued_audit(aws, message) == []


def test_a_crash_between_mark_and_send_blocks_retries_only_while_the_invocation_could_still_run(aws):
    message = resolve_message()
    # Long enough that the retry below comes within it even on a loaded machine, short enough to wait out.
    crashing = webhook_wiring(aws, Context(remaining_ms=3000))

    class Dying:
        def send(self, messages):
            raise Killed()

    crashing.queue = Dying()
    with pytest.raises(Killed):
        crashing.enqueue_delivery("delivery-1", [message])
    with pytest.raises(DeliveryInProgress):  # the crashed invocation might still be sending: 409, Jira retries
        webhook_wiring(aws).enqueue_delivery("delivery-1", [message])
    time.sleep(3.2)  # past the crashed invocation's remaining time: its in-progress mark has expired
    assert webhook_wiring(aws).enqueue_delivery("delivery-1", [message]) == {"queued": 1}
    assert len(queued(aws)) == 1 and queued_audit(aws, message) == []


def test_a_concurrent_duplicate_is_told_to_retry_and_the_first_one_queues(aws):
    first, twin, message = webhook_wiring(aws), webhook_wiring(aws), resolve_message()
    queue, answers = first.queue, []

    class TwinArrivesMidSend:
        def send(self, messages):
            try:
                twin.enqueue_delivery("delivery-1", [message])
            except DeliveryInProgress as error:
                answers.append(error)
            queue.send(messages)

    first.queue = TwinArrivesMidSend()
    assert first.enqueue_delivery("delivery-1", [message]) == {"queued": 1}
    assert len(answers) == 1 and len(queued(aws)) == 1


def test_the_webhook_handler_leaves_boto3_and_idempotency_to_its_first_request():
    """Its import is Lambda's init; the first request reads the secret and needs boto3 then (BENCHMARKS.md)."""
    directory = ROOT / "functions" / "webhook"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA", "LAMBDA_", "PYTHONPATH"))}
    env.update(LAMBDA_TASK_ROOT=str(directory), AWS_LAMBDA_FUNCTION_NAME="local-webhook")
    program = ("import json, sys, app; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'boto3'"
               " or m.startswith('aws_lambda_powertools.utilities.idempotency'))))")
    completed = subprocess.run([sys.executable, "-c", program], cwd=directory, env=env, capture_output=True,
                               text=True, timeout=120, check=True)
    assert json.loads(completed.stdout) == []
