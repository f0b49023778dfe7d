"""The sample events are real-shaped and agree with the template, the signature recipe and the queue format."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

from connector.model import WorkMessage
from connector.queue import dedupe_token, group_token

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def _schedule_inputs() -> dict[str, Any]:
    """Schedule ``Input`` by event name (``PollTick``, ``MaintenanceTick``, ``ResolutionSweepTick``)."""
    template, _ = decode(str(ROOT / "template.yaml"))
    return {
        name: json.loads(event["Properties"]["Input"])
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
        for name, event in resource["Properties"].get("Events", {}).items()
        if event["Type"] == "ScheduleV2"
    }


def test_schedule_events_are_the_template_inputs() -> None:
    inputs = _schedule_inputs()
    assert _event("poll-schedule.json") == inputs["PollTick"]
    assert _event("maintenance-schedule.json") == inputs["MaintenanceTick"]
    assert _event("resolution-sweep-schedule.json") == inputs["ResolutionSweepTick"]


def test_jira_webhook_is_signed_over_the_exact_body_with_the_sample_secret() -> None:
    event = _event("jira-webhook.json")
    assert event["isBase64Encoded"] is False
    body = event["body"].encode()
    digest = hmac.new(b"local-webhook-secret", body, hashlib.sha256).hexdigest()
    assert event["headers"]["x-hub-signature"] == f"sha256={digest}"
    assert event["headers"]["content-length"] == str(len(body))


def test_http_events_have_the_payload_v2_shape_with_lower_case_headers() -> None:
    for name, route in (("jira-webhook.json", "POST /jira/webhook"), ("acumatica-push.json", "POST /acumatica/push")):
        event = _event(name)
        assert event["version"] == "2.0"
        assert event["routeKey"] == event["requestContext"]["routeKey"] == route
        assert event["rawPath"] == event["requestContext"]["http"]["path"] == route.split()[1]
        assert all(header == header.lower() for header in event["headers"])


def test_jira_webhook_moves_an_issue_with_an_external_id_to_done() -> None:
    event = _event("jira-webhook.json")
    payload = json.loads(event["body"])
    assert payload["webhookEvent"] == "jira:issue_updated"
    assert payload["issue"]["fields"]["customfield_10050"] == "Bill:Bill:000123"
    assert payload["issue"]["fields"]["status"]["statusCategory"]["key"] == "done"
    assert payload["changelog"]["items"][0]["toString"] == "Done"
    assert event["headers"]["x-atlassian-webhook-identifier"]


def test_acumatica_push_carries_the_default_secret_header_and_dotnet_ticks() -> None:
    event = _event("acumatica-push.json")
    assert event["headers"]["x-connector-secret"] == "local-push-secret"
    payload = json.loads(event["body"])
    assert payload["Inserted"][0] == {**payload["Inserted"][0], "Type": "Bill", "ReferenceNbr": "000123",
                                      "Hold": True}
    unix_seconds = (payload["TimeStamp"] - 621_355_968_000_000_000) / 10_000_000
    assert 1_700_000_000 < unix_seconds < 1_800_000_000


def test_worker_batch_carries_work_messages_with_queue_attributes() -> None:
    records = _event("worker-sqs-batch.json")["Records"]
    messages = [WorkMessage.from_json(record["body"]) for record in records]
    assert [m.kind for m in messages] == ["sync", "resolve"]
    for record, message in zip(records, messages):
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"].endswith(".fifo")
        assert record["attributes"]["MessageGroupId"] == group_token(message.external_id)
        assert record["attributes"]["MessageDeduplicationId"] == dedupe_token(message.dedupe_id)
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert messages[1].issue_key == json.loads(_event("jira-webhook.json")["body"])["issue"]["key"]
