"""Webhooks against the sandbox: signed deliveries, retries and duplicates, dynamic webhooks with JWTs and expiry."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from connector import adf
from connector.errors import Rejected, ValidationError
from connector.ports import IssueDraft
from connector.signatures import verify_dynamic_webhook_jwt, verify_hub_signature

DAY = 86400


def create(client, external_id: str = "Bill:Bill:000123") -> str:
    return client.create_issue(IssueDraft(summary=f"{external_id} on hold", external_id=external_id,
                                          description=adf.doc(adf.paragraph("on hold")))).key


def test_resolving_delivers_a_signed_issue_updated_event_to_the_admin_webhook(sandbox, make_client, receiver):
    client, _, _ = make_client(sandbox)
    key = create(client)
    sandbox.add_admin_webhook(receiver.url, sandbox.webhook_secret)
    sandbox.resolve_issue(key, "Done")
    [delivery] = receiver.requests
    verify_hub_signature(sandbox.webhook_secret, delivery["body"], delivery["headers"]["X-Hub-Signature"])
    assert "Authorization" not in delivery["headers"]
    event = json.loads(delivery["body"])
    assert event["webhookEvent"] == "jira:issue_updated" and event["issue"]["key"] == key
    assert event["issue"]["fields"]["status"]["statusCategory"]["key"] == "done"
    assert event["issue"]["fields"][sandbox.external_id_field] == "Bill:Bill:000123"
    status_change = next(item for item in event["changelog"]["items"] if item["fieldId"] == "status")
    assert (status_change["fromString"], status_change["toString"]) == ("To Do", "Done")
    assert "X-Atlassian-Webhook-Retry" not in delivery["headers"]
    assert client.get_issue(key).status == "Done"


def test_signature_made_with_another_secret_is_rejected_by_the_verifier(sandbox, make_client, receiver):
    client, _, _ = make_client(sandbox)
    key = create(client)
    sandbox.add_admin_webhook(receiver.url, "a-secret-the-connector-does-not-have")
    sandbox.resolve_issue(key)
    delivery = receiver.requests[0]
    with pytest.raises(Rejected):
        verify_hub_signature(sandbox.webhook_secret, delivery["body"], delivery["headers"]["X-Hub-Signature"])


def test_retryable_answers_are_retried_with_a_stable_identifier(sandbox, make_client, receiver):
    client, _, _ = make_client(sandbox)
    key = create(client)
    sandbox.add_admin_webhook(receiver.url)
    receiver.answers[:] = [503, 429, 408]
    attempts = sandbox.resolve_issue(key)
    assert [a["status"] for a in attempts] == [503, 429, 408, 204]
    identifiers = {r["headers"]["X-Atlassian-Webhook-Identifier"] for r in receiver.requests}
    assert len(identifiers) == 1
    assert [r["headers"].get("X-Atlassian-Webhook-Retry") for r in receiver.requests] == [None, "1", "2", "3"]
    assert len({r["body"] for r in receiver.requests}) == 1


def test_other_client_errors_are_not_retried(sandbox, make_client, receiver):
    client, _, _ = make_client(sandbox)
    key = create(client)
    sandbox.add_admin_webhook(receiver.url)
    receiver.answers[:] = [401]
    assert [a["status"] for a in sandbox.resolve_issue(key)] == [401]


def test_unreachable_receiver_is_retried_up_to_the_attempt_limit(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    key = create(client)
    sandbox.add_admin_webhook("http://127.0.0.1:9/unreachable")
    attempts = sandbox.resolve_issue(key)
    assert len(attempts) == sandbox.delivery_attempts and all(a["will_retry"] for a in attempts)


def test_duplicate_deliveries_repeat_the_same_identifier(sandbox, make_client, receiver):
    client, _, _ = make_client(sandbox)
    key = create(client)
    sandbox.add_admin_webhook(receiver.url)
    sandbox.duplicate_deliveries = 2
    sandbox.resolve_issue(key)
    assert len(receiver.requests) == 3
    assert len({r["headers"]["X-Atlassian-Webhook-Identifier"] for r in receiver.requests}) == 1


def test_dynamic_webhook_delivery_carries_a_jwt_signed_with_the_client_secret(sandbox, make_client, receiver):
    client, _, _ = make_client(sandbox)
    key = create(client)
    [webhook_id] = client.register_webhook(receiver.url, f"project = {sandbox.project_key}")
    sandbox.resolve_issue(key)
    [delivery] = receiver.requests
    assert "X-Hub-Signature" not in delivery["headers"]
    verify_dynamic_webhook_jwt(sandbox.client_secret, delivery["headers"]["Authorization"], cloud_id=sandbox.cloud_id)
    with pytest.raises(Rejected):
        verify_dynamic_webhook_jwt("not-the-client-secret-0123456789abcdef", delivery["headers"]["Authorization"])
    assert json.loads(delivery["body"])["matchedWebhookIds"] == [webhook_id]


def test_dynamic_webhook_filters_by_jql_and_changed_fields(sandbox, make_client, receiver):
    client, _, _ = make_client(sandbox)
    key = create(client)
    client.register_webhook(receiver.url, "project = AP AND status = Blocked")
    client.register_webhook(receiver.url, "project = AP", field_ids=("summary",))
    sandbox.resolve_issue(key, "Done")
    assert receiver.requests == []
    sandbox.resolve_issue(key, "Blocked")
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("jql", [
    'cf[10050] ~ "Bill"',
    "project = AP ORDER BY created",
    "summary ~ hold",
    "project = AP AND NOT status = Done",
    "updated >= -1d",
])
def test_webhook_jql_outside_the_supported_subset_is_refused(sandbox, make_client, jql):
    client, _, _ = make_client(sandbox)
    with pytest.raises(ValidationError):
        client.register_webhook("https://hooks.example/jira/webhook", jql)


def test_webhook_jql_inside_the_subset_is_accepted(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    ids = client.register_webhook("https://hooks.example/jira/webhook",
                                  "project IN (AP) AND issuetype = Task AND status != \"Won't Do\" OR assignee = x")
    assert len(ids) == 1


def test_an_app_gets_five_webhooks_and_one_url(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    for _ in range(5):
        client.register_webhook("https://hooks.example/jira/webhook", "project = AP")
    with pytest.raises(ValidationError, match="limit"):
        client.register_webhook("https://hooks.example/jira/webhook", "project = AP")
    client.delete_webhooks([w["id"] for w in client.list_webhooks()])
    client.register_webhook("https://hooks.example/jira/webhook", "project = AP")
    with pytest.raises(ValidationError, match="single URL"):
        client.register_webhook("https://elsewhere.example/hook", "project = AP")


def test_webhooks_expire_after_thirty_days_unless_refreshed(sandbox, make_client, receiver):
    client, _, _ = make_client(sandbox)
    key = create(client)
    ids = client.register_webhook(receiver.url, "project = AP")
    sandbox.advance_clock(20 * DAY)
    expiry = client.refresh_webhooks(ids)
    expected = datetime.fromtimestamp(sandbox.now(), tz=timezone.utc) + timedelta(days=30)
    assert abs((expiry - expected).total_seconds()) < 5
    sandbox.advance_clock(29 * DAY)
    sandbox.resolve_issue(key, "In Progress")
    assert len(receiver.requests) == 1  # still alive 49 days after registration thanks to the refresh
    sandbox.advance_clock(2 * DAY)
    sandbox.resolve_issue(key, "Done")
    assert len(receiver.requests) == 1  # expired: nothing delivered
    client.refresh_webhooks(ids)
    sandbox.resolve_issue(key, "To Do")
    assert len(receiver.requests) == 1  # a refresh cannot revive an expired webhook


def test_ensure_webhook_replaces_an_expired_webhook_and_deliveries_resume(sandbox, make_client, receiver):
    client, _, _ = make_client(sandbox)
    key = create(client)
    first = client.register_webhook(receiver.url, "project = AP")
    sandbox.advance_clock(31 * DAY)
    ids, expiry = client.ensure_webhook(receiver.url, "project = AP", first,
                                        now=datetime.fromtimestamp(sandbox.now(), tz=timezone.utc))
    assert ids != first and [w["id"] for w in client.list_webhooks()] == ids
    assert expiry > datetime.fromtimestamp(sandbox.now(), tz=timezone.utc) + timedelta(days=29)
    sandbox.resolve_issue(key)
    assert len(receiver.requests) == 1


def test_ensure_webhook_twice_keeps_one_webhook(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    now = datetime.fromtimestamp(sandbox.now(), tz=timezone.utc)
    first, _ = client.ensure_webhook("https://hooks.example/jira/webhook", "project = AP", (), now=now)
    again, _ = client.ensure_webhook("https://hooks.example/jira/webhook", "project = AP", (), now=now)
    assert first == again and len(client.list_webhooks()) == 1


def test_built_event_is_signed_like_a_real_delivery(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    key = create(client)
    body, headers = sandbox.build_issue_updated_event(key, "To Do", "Done")
    verify_hub_signature(sandbox.webhook_secret, body, headers["X-Hub-Signature"])
    event = json.loads(body)
    assert event["issue"]["fields"]["status"]["name"] == "Done" and headers["X-Atlassian-Webhook-Identifier"]
    assert client.get_issue(key).status == "To Do"  # building an event changes nothing
    body, headers = sandbox.build_issue_updated_event(key, "To Do", "Won't Do", kind="dynamic")
    verify_dynamic_webhook_jwt(sandbox.client_secret, headers["Authorization"], cloud_id=sandbox.cloud_id)
    assert json.loads(body)["issue"]["fields"]["status"]["statusCategory"]["key"] == "done"
