"""End-to-end: the real handlers on the embedded stack (moto from template.yaml, Acumatica and Jira sandboxes),
driven the way AWS would drive them. One stack per module: moto's state is per process."""

from __future__ import annotations

import json

import pytest

from connector_local.jira_sandbox import PERSON_ACCOUNT
from connector_local.stack import LocalStack


@pytest.fixture(scope="module")
def stack():
    env = {"OWNER_MAP": json.dumps({"V-FORMER": "account-that-left", "buyer.kim": PERSON_ACCOUNT})}
    with LocalStack.start(env, quiet=True) as running:
        yield running


class Harness:
    """Small verbs over the stack so tests read like the scenario they check."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.sqs = stack.aws.client("sqs")

    def poll(self) -> dict:
        result = self.stack.tick("PollerFunction")
        self.stack.drain()
        return result

    def queued(self, result: dict) -> int:
        return sum(report["enqueued"] for report in result["reports"])

    def issues(self, external_id: str) -> list[dict]:
        return self.stack.jira.issues_with_external_id(external_id)

    def depth(self, output: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.stack.aws.outputs[output],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def post(self, path: str, body: bytes, headers: dict[str, str]):
        import requests

        return requests.post(f"{self.stack.gateway.url}{path}", data=body, headers=headers, timeout=30)

    def releases(self, number: str) -> list:
        return [entry for entry in self.stack.acumatica.action_log
                if entry[1] == ("Bill", number) and entry[2] == "ReleaseBill" and entry[3] == "completed"]


@pytest.fixture(scope="module")
def harness(stack) -> Harness:
    return Harness(stack)
