"""Dynamic-webhook JWTs: HS256 only, a bounded life (``exp`` at most an hour ahead, ``iat`` not in the future), the
connected site's cloud id where the token names one; and the idempotency key of a Jira delivery comes from what the
signature covers, never from the unsigned ``X-Atlassian-Webhook-Identifier``."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.errors import Rejected
from connector.signatures import MAX_JWT_LIFETIME_SECONDS, sign_hub, verify_dynamic_webhook_jwt
from connector.webhooks import accept_jira_delivery, accept_push

CLIENT_SECRET = "client-secret-value-long-enough-for-every-hmac-algorithm-0123456789"
CLOUD = "2a3f5a83-0b3e-4c9a-9c1e-6f1d7c1b9e21"
FIELD = "customfield_10050"


def token(secret: str = CLIENT_SECRET, **claims) -> str:
    now = int(time.time())
    body = {"iss": "client", "iat": now, "exp": now + 180, "context": {"cloudId": CLOUD}, **claims}
    return "Bearer " + jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm="HS256")


def verify(header: str, cloud_id: str = CLOUD) -> dict:
    return verify_dynamic_webhook_jwt(CLIENT_SECRET, header, cloud_id=cloud_id)


def test_a_short_lived_token_for_the_connected_site_is_accepted() -> None:
    assert verify(token())["context"]["cloudId"] == CLOUD


def test_a_token_valid_for_thirty_years_is_refused() -> None:
    with pytest.raises(Rejected) as refused:
        verify(token(exp=int(time.time()) + 30 * 365 * 86400))
    assert refused.value.status == 401 and "minutes ahead" in str(refused.value)


@settings(max_examples=60, deadline=None)
@given(ahead=st.integers(min_value=-10, max_value=10 * 86400))
def test_exp_is_accepted_exactly_when_it_is_at_most_an_hour_ahead(ahead: int) -> None:
    now = int(time.time())
    header = token(iat=now, exp=now + ahead)
    if 0 <= ahead <= MAX_JWT_LIFETIME_SECONDS:
        verify(header)
    elif ahead > MAX_JWT_LIFETIME_SECONDS + 60:
        with pytest.raises(Rejected):
            verify(header)


@pytest.mark.parametrize("claims, reason", [
    (lambda now: {"iat": None}, "lacks the 'iat' claim"),
    (lambda now: {"exp": None}, "lacks the 'exp' claim"),
    (lambda now: {"iat": now + 3600}, "issued in the future"),
    (lambda now: {"exp": str(now + 60)}, "must be numbers"),  # PyJWT takes a numeric string: a 401, never a 500
    (lambda now: {"iat": str(now)}, "must be numbers"),
    (lambda now: {"context": {"cloudId": "another-site"}}, "another Jira site"),
    (lambda now: {"context": "site"}, "context is not an object"),
    (lambda now: {"context": {"cloudId": 7}}, "names a Jira site"),
])
def test_claims_that_do_not_bound_the_token_or_name_another_site_are_refused(claims, reason: str) -> None:
    """The claims are made when the test runs, not when it is collected: a full run outlasts a minute's ``exp``."""
    with pytest.raises(Rejected, match=reason) as refused:
        verify(token(**claims(int(time.time()))))
    assert refused.value.status == 401


def test_a_token_naming_a_site_is_refused_while_the_connected_site_is_unknown() -> None:
    with pytest.raises(Rejected, match="cloud id is not known"):
        verify(token(), cloud_id="")


def test_a_token_without_a_context_is_judged_by_signature_and_lifetime_alone() -> None:
    assert "context" not in verify(token(context=None))


def test_hs256_is_pinned_whatever_the_header_claims() -> None:
    now = int(time.time())
    for algorithm in ("HS384", "HS512"):
        header = "Bearer " + jwt.encode({"iat": now, "exp": now + 60}, CLIENT_SECRET, algorithm=algorithm)
        with pytest.raises(Rejected, match="HS256"):
            verify(header)


def jira_body(issue_id: str = "10001", change: str | None = "555") -> bytes:
    payload = {"webhookEvent": "jira:issue_updated", "timestamp": 1795000000000,
               "issue": {"id": issue_id, "key": "AP-1", "fields": {"status": {"name": "Done", "statusCategory": {
                   "key": "done"}}, FIELD: "Bill:Bill:000123"}},
               "changelog": {"items": [{"fieldId": "status", "fromString": "To Do", "toString": "Done"}]}}
    if change is not None:
        payload["changelog"]["id"] = change
    return json.dumps(payload).encode()


def delivery_key(body: bytes, identifier: str) -> str:
    headers = {"x-hub-signature": sign_hub("hub-secret", body), "x-atlassian-webhook-identifier": identifier}
    key, _ = accept_jira_delivery(body, headers, webhook_secret="hub-secret", client_secret=CLIENT_SECRET,
                                  cloud_id=CLOUD, external_id_field=FIELD, resolved_statuses=(), correlation_id="c")
    return key


@given(first=st.text(min_size=1, max_size=40), second=st.text(min_size=1, max_size=40))
def test_a_replayed_signed_body_is_the_same_delivery_whatever_identifier_it_carries(first: str, second: str) -> None:
    assert delivery_key(jira_body(), first) == delivery_key(jira_body(), second) == "jira:10001:555"


def test_an_admin_and_a_dynamic_webhook_announcing_one_change_are_one_delivery() -> None:
    body = jira_body()
    key, _ = accept_jira_delivery(body, {"authorization": token()}, webhook_secret="hub-secret",
                                  client_secret=CLIENT_SECRET, cloud_id=CLOUD, external_id_field=FIELD,
                                  resolved_statuses=(), correlation_id="c")
    assert key == delivery_key(body, "other-identifier")


def test_without_a_changelog_id_the_key_is_the_signed_bodys_digest_never_the_header() -> None:
    one, two = delivery_key(jira_body(change=None), "a"), delivery_key(jira_body(change=None), "b")
    assert one == two and one.startswith("jira:sha256:")
    assert delivery_key(jira_body(issue_id="10002", change=None), "a") != one


def test_push_and_jira_keys_live_in_separate_namespaces() -> None:
    push_body = json.dumps({"Query": "AJC-Bills", "Id": "10001:555", "Inserted": []}).encode()
    push_key, _ = accept_push(push_body, {"x-connector-secret": "p" * 32}, push_secret="p" * 32,
                              header_name="X-Connector-Secret", correlation_id="c")
    assert push_key.startswith("push:") and delivery_key(jira_body(), "x").startswith("jira:")
    assert push_key != delivery_key(jira_body(), "x")
