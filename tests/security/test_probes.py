"""The independent probes, against the local stack (HTTP API gateway, the real handlers, moto, the sandboxes): a large
push, a long-lived JWT, a malformed signed body, a redirecting token endpoint. Each must hold on every landing."""

from __future__ import annotations

import json
import time

import jwt
import pytest
import requests

from connector.signatures import sign_hub
from connector_local.acumatica_sandbox import AcumaticaSandbox
from connector_local.stack import PUSH_SECRET, WEBHOOK_SECRET, LocalStack


@pytest.fixture(scope="module")
def stack():
    with LocalStack.start({}, quiet=True) as running:
        yield running


def post(stack: LocalStack, path: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{stack.gateway.url}{path}", data=body, headers=headers, timeout=30)


def queued(stack: LocalStack) -> list[dict]:
    """Take every message off the work queue (the probes look, then nothing of it is worked)."""
    sqs, url, bodies = stack.aws.client("sqs"), stack.aws.outputs["WorkQueueUrl"], []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_a_push_of_3000_rows_answers_within_the_limit_queues_one_poll_and_loses_nothing(stack):
    held = [stack.acumatica.add_document("Bill", Hold=True)["ReferenceNbr"] for _ in range(12)]
    rows = [{"Type": "Bill", "ReferenceNbr": f"{9_000_000 + n}"} for n in range(3000 - len(held))]
    rows += [{"Type": "Bill", "ReferenceNbr": number} for number in held]
    body = json.dumps({"Query": "AJC-Bills", "Id": "bulk-import-1", "Inserted": rows}).encode()

    started = time.monotonic()
    answer = post(stack, "/acumatica/push", body, {"X-Connector-Secret": PUSH_SECRET})
    assert answer.status_code == 202 and time.monotonic() - started < 10  # the webhook function's timeout
    assert answer.json() == {"status": "queued", "queued": 1, "poll": ["Bill"]}
    assert stack.drain()  # the worker asks the poller, through Lambda's Invoke API
    assert stack.lambda_api.invocations[-1]["type"] == "Event"
    assert stack.lambda_api.invocations[-1]["event"]["entities"] == ["Bill"]
    assert stack.lambda_api.wait_idle()
    stack.drain()
    for number in held:
        assert len(stack.jira.issues_with_external_id(f"Bill:Bill:{number}")) == 1


def dynamic_delivery(stack: LocalStack, **claims) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"webhookEvent": "jira:issue_updated", "timestamp": int(time.time() * 1000),
                       "issue": {"id": "10999", "key": "AP-999", "fields": {
                           "status": {"name": "Done", "statusCategory": {"key": "done"}},
                           stack.jira.external_id_field: "Bill:Bill:000999"}},
                       "changelog": {"id": "99999", "items": [{"fieldId": "status", "fromString": "To Do",
                                                              "toString": "Done"}]}}).encode()
    now = int(time.time())
    token = jwt.encode({"iss": stack.jira.client_id, "iat": now, "exp": now + 180,
                        "context": {"cloudId": stack.jira.cloud_id}, **claims}, stack.jira.client_secret,
                       algorithm="HS256")
    return body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def test_a_jwt_valid_for_thirty_years_is_refused_with_a_bare_401_and_leaves_no_trace(stack):
    queued(stack)
    body, headers = dynamic_delivery(stack, exp=int(time.time()) + 30 * 365 * 86400)
    answer = post(stack, "/jira/webhook", body, headers)
    assert answer.status_code == 401 and answer.json() == {"message": "unauthorized"}
    assert queued(stack) == []


def test_a_short_lived_jwt_for_the_connected_site_is_accepted_and_one_for_another_site_is_not(stack):
    queued(stack)
    body, headers = dynamic_delivery(stack, context={"cloudId": "another-site"})
    assert post(stack, "/jira/webhook", body, headers).status_code == 401
    body, headers = dynamic_delivery(stack)
    assert post(stack, "/jira/webhook", body, headers).status_code == 202
    (message,) = queued(stack)
    assert message["dedupe_id"] == "resolve:10999:99999" and message["source"] == "jira"


@pytest.mark.parametrize("route, body", [
    ("/jira/webhook", {"webhookEvent": "jira:issue_updated", "issue": {"id": "10001", "key": "AP-1", "fields": {
        "status": {"name": "Done", "statusCategory": "done"}}}}),
    ("/jira/webhook", {"webhookEvent": "jira:issue_updated", "issue": {"id": "../../myself", "key": "AP-1",
                                                                       "fields": {}}}),
    ("/acumatica/push", {"Query": "AJC-Bills", "Id": "n-1", "Inserted": [{"Entity": ["Bill"], "ReferenceNbr": "1"}]}),
    ("/acumatica/push", {"Query": "AJC-Bills", "Id": ["n-1"], "Inserted": []}),
])
def test_a_malformed_but_authentic_body_gets_400_never_500(stack, route, body):
    queued(stack)
    raw = json.dumps(body).encode()
    headers = ({"X-Hub-Signature": sign_hub(WEBHOOK_SECRET, raw)} if route == "/jira/webhook"
               else {"X-Connector-Secret": PUSH_SECRET})
    answer = post(stack, route, raw, {**headers, "Content-Type": "application/json"})
    assert answer.status_code == 400 and queued(stack) == []


def test_a_redirecting_token_endpoint_gets_no_credentials_and_the_poll_says_where_it_pointed(stack):
    with AcumaticaSandbox() as collector:
        stack.acumatica.redirect_token_endpoint(f"{collector.url}/identity/connect/token")
        stack.acumatica.expire_access_tokens()  # the next request needs a new token
        try:
            with pytest.raises(Exception, match="redirecting to 127.0.0.1") as failed:
                stack.tick("PollerFunction")
        finally:
            stack.acumatica.redirect_token_endpoint(None)
        assert collector.requests_log == []
    assert "AcumaticaUrl" in str(failed.value)
    stack.tick("PollerFunction")  # the proxy fixed: polling resumes
