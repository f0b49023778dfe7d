"""Tests of the local Lambda plumbing (runtime, queue pump, HTTP gateway, ticker) and of the DLQ redrive.

The helpers below give each test module its own moto server and uniquely named queues: moto keeps its state in
process-wide backends, so names, not servers, keep tests apart.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

REGION = "us-east-1"


def start_moto() -> tuple[ThreadedMotoServer, str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def sqs_client(endpoint_url: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 2}),
    )


def make_fifo_queues(sqs: Any, max_receive_count: int = 2) -> tuple[str, str]:
    """A FIFO work queue whose RedrivePolicy points at a FIFO DLQ, shaped like the template's pair."""
    name = uuid.uuid4().hex[:12]
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    work_url = sqs.create_queue(
        QueueName=f"{name}-work.fifo",
        Attributes={
            "FifoQueue": "true",
            "ContentBasedDeduplication": "false",
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}),
        },
    )["QueueUrl"]
    return work_url, dlq_url


def send(sqs: Any, queue_url: str, body: str, group: str, dedupe: str | None = None, **extra: Any) -> str:
    return sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=body,
        MessageGroupId=group,
        MessageDeduplicationId=dedupe or uuid.uuid4().hex,
        **extra,
    )["MessageId"]


def peek(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Up to 10 visible messages with all attributes, made visible again at once (enough for these tests)."""
    messages = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        VisibilityTimeout=60,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])
    for message in messages:
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0)
    return messages
