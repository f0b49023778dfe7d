"""The Jira client against mocked HTTP (``responses``): request shapes, paging, error typing, OAuth calls."""

from __future__ import annotations

import inspect
import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
import requests
import responses
from responses import matchers

from connector import adf
from connector.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    ReconnectNeeded,
    TransientError,
    UncertainOutcome,
    ValidationError,
)
from connector.http import make_session
from connector.jira import (
    JiraClient,
    escape_jql_string,
    exchange_authorization_code,
    external_id_jql,
    jira_token_obtainer,
    parse_expiration,
    resolve_cloud_id,
)
from connector.ports import IssueDraft, IssueTracker

API = "https://api.atlassian.com"
AUTH = "https://auth.atlassian.com"
CLOUD = "11223344-5566-7788-99aa-bbccddeeff00"
BASE = f"{API}/ex/jira/{CLOUD}/rest/api/3"
FIELD = "customfield_10050"


class FakeTokens:
    """Hands out tokens in order; records which ones the client declared refused."""

    def __init__(self, *tokens: str) -> None:
        self._tokens = list(tokens) or ["at-1"]
        self.invalidated: list[str] = []

    def access_token(self) -> str:
        return self._tokens[0]

    def invalidate(self, token: str) -> None:
        self.invalidated.append(token)
        if len(self._tokens) > 1:
            self._tokens.pop(0)


@pytest.fixture
def tokens() -> FakeTokens:
    return FakeTokens("at-1", "at-2")


@pytest.fixture
def client(tokens: FakeTokens) -> JiraClient:
    return JiraClient(api_url=API, cloud_id=CLOUD, project_key="AP", issue_type="Task", external_id_field=FIELD,
                      tokens=tokens, session=make_session(total=0))


def body_of(call) -> dict:
    return json.loads(call.request.body)


def issue_json(issue_id: str, key: str, external_id: str | None, status: str = "To Do", category: str = "new") -> dict:
    return {"id": issue_id, "key": key, "fields": {
        FIELD: external_id, "summary": "s",
        "status": {"name": status, "id": "1", "statusCategory": {"key": category, "id": 2, "name": status}}}}


# --- OAuth ------------------------------------------------------------------------------------------------------------

SECRET = {"client_id": "cid", "client_secret": "csecret-value", "refresh_token": "rt-old-value"}


@responses.activate
def test_refresh_sends_a_json_refresh_grant_and_returns_the_rotated_tokens():
    issued = {"access_token": "at-new", "refresh_token": "rt-new", "expires_in": 3600}
    responses.post(f"{AUTH}/oauth/token", json=issued,
                   match=[matchers.json_params_matcher({"grant_type": "refresh_token", "client_id": "cid",
                                                        "client_secret": "csecret-value",
                                                        "refresh_token": "rt-old-value"})])
    issued = jira_token_obtainer(AUTH, make_session(total=0))(SECRET)
    assert issued["access_token"] == "at-new" and issued["refresh_token"] == "rt-new"
    assert 3500 < issued["expires_at"] - datetime.now(timezone.utc).timestamp() <= 3600


@responses.activate
@pytest.mark.parametrize("answer", [{}, {"refresh_token": "rt-old-value"}], ids=["omitted", "the-spent-one"])
def test_refresh_response_without_a_new_refresh_token_is_an_error_not_reuse_of_the_spent_one(answer):
    responses.post(f"{AUTH}/oauth/token", json={"access_token": "at-new", "expires_in": 3600, **answer})
    with pytest.raises(ReconnectNeeded, match="without a new refresh token"):
        jira_token_obtainer(AUTH, make_session(total=0))(SECRET)


@pytest.mark.parametrize("status", [400, 403])
@responses.activate
def test_invalid_grant_asks_for_reconnect_and_emits_a_metric(status, capsys):
    responses.post(f"{AUTH}/oauth/token", status=status,
                   json={"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."})
    with pytest.raises(ReconnectNeeded) as caught:
        jira_token_obtainer(AUTH, make_session(total=0))(SECRET)
    assert "connector connect jira" in str(caught.value)
    assert "rt-old-value" not in str(caught.value) and "csecret-value" not in str(caught.value)
    metric = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metric["JiraReconnectNeeded"] == [1.0]


@responses.activate
def test_refused_client_credentials_are_a_configuration_error_and_outages_are_transient():
    responses.post(f"{AUTH}/oauth/token", status=401,
                   json={"error": "access_denied", "error_description": "Unauthorized"})
    with pytest.raises(ConfigurationError):
        jira_token_obtainer(AUTH, make_session(total=0))(SECRET)
    responses.replace(responses.POST, f"{AUTH}/oauth/token", status=503, headers={"Retry-After": "7"})
    with pytest.raises(TransientError) as caught:
        jira_token_obtainer(AUTH, make_session(total=0))(SECRET)
    assert caught.value.retry_after == 7


def test_secret_without_refresh_token_asks_for_reconnect():
    with pytest.raises(ReconnectNeeded):
        jira_token_obtainer(AUTH, make_session(total=0))({"client_id": "cid", "client_secret": "x"})


@responses.activate
def test_authorization_code_exchange_posts_the_redirect_uri_and_needs_offline_access():
    expected = {"grant_type": "authorization_code", "client_id": "cid", "client_secret": "cs", "code": "c0de",
                "redirect_uri": "http://localhost:8765/callback"}
    responses.post(f"{AUTH}/oauth/token", match=[matchers.json_params_matcher(expected)],
                   json={"access_token": "at", "refresh_token": "rt", "expires_in": 3600, "scope": "offline_access"})
    tokens = exchange_authorization_code(AUTH, "cid", "cs", "c0de", "http://localhost:8765/callback",
                                         requests.Session())
    assert tokens["refresh_token"] == "rt" and tokens["scope"] == "offline_access"
    responses.replace(responses.POST, f"{AUTH}/oauth/token", json={"access_token": "at", "expires_in": 3600})
    with pytest.raises(ConfigurationError, match="offline_access"):
        exchange_authorization_code(AUTH, "cid", "cs", "c0de", "http://localhost:8765/callback", requests.Session())
    responses.replace(responses.POST, f"{AUTH}/oauth/token", status=403, json={"error": "invalid_grant"})
    with pytest.raises(AuthenticationError):
        exchange_authorization_code(AUTH, "cid", "cs", "used", "http://localhost:8765/callback", requests.Session())


@responses.activate
def test_cloud_id_is_matched_by_site_url_not_by_position():
    responses.get(f"{API}/oauth/token/accessible-resources", json=[
        {"id": "other-cloud", "url": "https://acme-sandbox.atlassian.net", "name": "acme-sandbox", "scopes": []},
        {"id": CLOUD, "url": "https://acme.atlassian.net", "name": "acme", "scopes": []},
    ], match=[matchers.header_matcher({"Authorization": "Bearer at"})])
    assert resolve_cloud_id(API, "at", "https://ACME.atlassian.net/", requests.Session()) == CLOUD
    with pytest.raises(ConfigurationError) as caught:
        resolve_cloud_id(API, "at", "https://elsewhere.atlassian.net", requests.Session())
    assert "https://acme.atlassian.net" in str(caught.value)
    assert "https://acme-sandbox.atlassian.net" in str(caught.value)


@responses.activate
def test_without_a_configured_site_only_a_single_site_grant_picks_the_cloud_id():
    url = f"{API}/oauth/token/accessible-resources"
    responses.get(url, json=[{"id": CLOUD, "url": "https://acme.atlassian.net", "name": "acme", "scopes": []}])
    assert resolve_cloud_id(API, "at", "", requests.Session()) == CLOUD
    responses.replace(responses.GET, url, json=[
        {"id": CLOUD, "url": "https://acme.atlassian.net", "name": "acme", "scopes": []},
        {"id": "other", "url": "https://acme-sandbox.atlassian.net", "name": "sandbox", "scopes": []},
    ])
    with pytest.raises(ConfigurationError, match="JiraSiteUrl"):
        resolve_cloud_id(API, "at", "", requests.Session())


# --- JQL --------------------------------------------------------------------------------------------------------------

def test_escape_jql_string_escapes_quotes_backslashes_and_line_breaks():
    assert escape_jql_string('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_external_id_jql_is_a_quoted_phrase_inside_a_quoted_string():
    assert external_id_jql("AP", "customfield_10050", "Bill:Bill:000123") == \
        'project = "AP" AND cf[10050] ~ "\\"Bill:Bill:000123\\""'
    assert external_id_jql("AP", 10050, 'x"y\\z') == 'project = "AP" AND cf[10050] ~ "\\"x\\\\\\"y\\\\\\\\z\\""'
    with pytest.raises(ValueError):
        external_id_jql("AP", "summary", "x")


# --- search -----------------------------------------------------------------------------------------------------------

@responses.activate
def test_find_pages_with_next_page_token_and_checks_the_exact_value(client):
    wanted = "Bill:Bill:000123"
    responses.post(f"{BASE}/search/jql", json={"issues": [
        issue_json("10005", "AP-5", "Bill-Bill-000123"), issue_json("10006", "AP-6", "Bill:Bill:000123:X")],
        "nextPageToken": "page-2", "isLast": False})
    responses.post(f"{BASE}/search/jql", json={"issues": [issue_json("10007", "AP-7", wanted)], "isLast": True})
    found = client.find_by_external_id(wanted, reconcile_ids=["10007", "AP-9"])
    assert found.key == "AP-7" and found.external_id == wanted and found.status_category == "new"
    bodies = [body_of(call) for call in responses.calls]
    assert len(bodies) == 2
    assert bodies[0]["jql"] == external_id_jql("AP", "10050", wanted)
    assert set(bodies[0]["fields"]) == {FIELD, "status", "summary", "creator"}
    assert bodies[0]["reconcileIssues"] == bodies[1]["reconcileIssues"] == [10007]
    assert "nextPageToken" not in bodies[0] and bodies[1]["nextPageToken"] == "page-2"


@responses.activate
def test_find_returns_none_when_only_token_equal_ids_match(client):
    responses.post(f"{BASE}/search/jql", json={"issues": [issue_json("10005", "AP-5", "bill bill 000123")],
                                               "isLast": True})
    assert client.find_by_external_id("Bill:Bill:000123") is None


@responses.activate
def test_find_prefers_the_oldest_issue_when_several_carry_the_id(client):
    responses.post(f"{BASE}/search/jql", json={"isLast": True, "issues": [
        issue_json("10009", "AP-9", "Bill:Bill:1"), issue_json("10002", "AP-2", "Bill:Bill:1")]})
    assert client.find_by_external_id("Bill:Bill:1").key == "AP-2"


@responses.activate
def test_reconcile_ids_are_numeric_and_at_most_fifty(client):
    responses.post(f"{BASE}/search/jql", json={"issues": [], "isLast": True})
    client.find_by_external_id("Bill:Bill:1", reconcile_ids=[str(i) for i in range(10000, 10080)] + ["AP-1"])
    sent = body_of(responses.calls[0])["reconcileIssues"]
    assert len(sent) == 50 and sent[-1] == 10079 and all(isinstance(i, int) for i in sent)


@responses.activate
def test_old_search_endpoint_gone_is_a_configuration_error(client):
    responses.post(f"{BASE}/search/jql", status=410, json={"errorMessages": ["The requested API has been removed."]})
    with pytest.raises(ConfigurationError, match="removed"):
        client.find_by_external_id("Bill:Bill:1")


# --- issues -----------------------------------------------------------------------------------------------------------

@responses.activate
def test_create_writes_summary_adf_description_external_id_string_labels_and_assignee(client, assert_valid_adf):
    responses.post(f"{BASE}/issue", status=201, json={"id": "10010", "key": "AP-10", "self": f"{BASE}/issue/10010"})
    description = adf.doc(adf.paragraph("Bill 000123 is on hold"), adf.fields_table({"Vendor": "ACME"}))
    ref = client.create_issue(IssueDraft(summary="Bill 000123 | ACME | 1,200.00 USD\non hold", description=description,
                                         external_id="Bill:Bill:000123", labels=["acumatica", "on hold"],
                                         assignee_account_id="5b10ac8d82e05b22cc7d4ef5"))
    assert (ref.id, ref.key, ref.external_id) == ("10010", "AP-10", "Bill:Bill:000123")
    fields = body_of(responses.calls[0])["fields"]
    assert fields["project"] == {"key": "AP"} and fields["issuetype"] == {"name": "Task"}
    assert fields["summary"] == "Bill 000123 | ACME | 1,200.00 USD on hold"
    assert fields[FIELD] == "Bill:Bill:000123"
    assert fields["labels"] == ["acumatica", "on-hold"]
    assert fields["assignee"] == {"accountId": "5b10ac8d82e05b22cc7d4ef5"}
    assert_valid_adf(fields["description"])


@responses.activate
def test_long_summary_is_cut_to_jiras_limit(client):
    responses.post(f"{BASE}/issue", status=201, json={"id": "1", "key": "AP-1"})
    client.create_issue(IssueDraft(summary="x" * 400))
    assert len(body_of(responses.calls[0])["fields"]["summary"]) == 255


def test_create_without_summary_is_refused_before_any_call(client):
    with pytest.raises(ValidationError):
        client.create_issue(IssueDraft(summary=""))


@pytest.mark.parametrize("failure, expected", [
    (requests.ReadTimeout("read timed out"), UncertainOutcome),
    (requests.ConnectionError("connection reset by peer"), UncertainOutcome),
    (requests.ConnectTimeout("connect timed out"), TransientError),
])
@responses.activate
def test_create_failing_after_sending_is_an_uncertain_outcome(client, failure, expected):
    responses.post(f"{BASE}/issue", body=failure)
    with pytest.raises(expected) as caught:
        client.create_issue(IssueDraft(summary="s"))
    assert type(caught.value) is expected


@responses.activate
def test_read_timeout_on_a_search_is_only_transient(client):
    responses.post(f"{BASE}/search/jql", body=requests.ReadTimeout("slow"))
    with pytest.raises(TransientError) as caught:
        client.find_by_external_id("Bill:Bill:1")
    assert not isinstance(caught.value, UncertainOutcome)


@responses.activate
def test_update_sends_only_the_fields_that_are_set(client):
    responses.put(f"{BASE}/issue/AP-1", status=204)
    client.update_issue("AP-1", IssueDraft(summary="new summary"))
    client.update_issue("AP-1", IssueDraft())
    assert len(responses.calls) == 1 and body_of(responses.calls[0]) == {"fields": {"summary": "new summary"}}


@responses.activate
def test_comment_posts_the_adf_body_and_returns_its_id(client):
    body = adf.doc(adf.paragraph("Released in Acumatica"))
    responses.post(f"{BASE}/issue/AP-1/comment", status=201, json={"id": "10100", "body": body},
                   match=[matchers.json_params_matcher({"body": body})])
    assert client.add_comment("AP-1", body) == "10100"


@responses.activate
def test_get_issue_reads_status_category_and_resolution_and_none_when_missing(client):
    answer = issue_json("10001", "AP-1", "Bill:Bill:1", "Done", "done")
    answer["fields"]["resolution"] = {"id": "10001", "name": "Won't Do", "description": ""}
    responses.get(f"{BASE}/issue/AP-1", json=answer, match=[matchers.query_param_matcher(
        {"fields": f"status,resolution,summary,creator,labels,assignee,{FIELD}"})])
    responses.get(f"{BASE}/issue/AP-2", json={**answer, "fields": {**answer["fields"], "resolution": None}})
    responses.get(f"{BASE}/issue/AP-404", status=404, json={"errorMessages": ["Issue does not exist"]})
    issue = client.get_issue("AP-1")
    assert (issue.status, issue.status_category, issue.external_id) == ("Done", "done", "Bill:Bill:1")
    assert issue.resolution == "Won't Do" and client.get_issue("AP-2").resolution is None
    assert client.get_issue("AP-404") is None


TRANSITIONS = {"transitions": [
    {"id": "711", "name": "Start", "to": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}}},
    {"id": "931", "name": "Close", "to": {"name": "Done", "statusCategory": {"key": "done"}}},
]}


@responses.activate
def test_transition_is_found_by_target_status_name_case_insensitively(client):
    responses.get(f"{BASE}/issue/AP-1/transitions", json=TRANSITIONS)
    responses.post(f"{BASE}/issue/AP-1/transitions", status=204,
                   match=[matchers.json_params_matcher({"transition": {"id": "931"}})])
    assert client.transition_to("AP-1", "done") is True


@responses.activate
def test_transition_is_found_by_status_category(client):
    responses.get(f"{BASE}/issue/AP-1/transitions", json=TRANSITIONS)
    responses.post(f"{BASE}/issue/AP-1/transitions", status=204,
                   match=[matchers.json_params_matcher({"transition": {"id": "711"}})])
    assert client.transition_to_category("AP-1", "indeterminate") is True


@responses.activate
def test_no_transition_to_that_status_changes_nothing(client):
    responses.get(f"{BASE}/issue/AP-1/transitions", json=TRANSITIONS)
    assert client.transition_to("AP-1", "Blocked") is False
    assert [call.request.method for call in responses.calls] == ["GET"]


# --- errors -----------------------------------------------------------------------------------------------------------

@responses.activate
def test_refused_token_is_invalidated_and_the_call_retried_once(client, tokens):
    responses.get(f"{BASE}/myself", status=401, match=[matchers.header_matcher({"Authorization": "Bearer at-1"})])
    responses.get(f"{BASE}/myself", json={"accountId": "me"},
                  match=[matchers.header_matcher({"Authorization": "Bearer at-2"})])
    assert client.myself() == {"accountId": "me"}
    assert tokens.invalidated == ["at-1"]


@responses.activate
def test_second_refusal_is_an_authentication_error():
    tokens = FakeTokens("at-1", "at-2")
    client = JiraClient(api_url=API, cloud_id=CLOUD, project_key="AP", tokens=tokens, session=make_session(total=0))
    responses.get(f"{BASE}/myself", status=401)
    with pytest.raises(AuthenticationError):
        client.myself()
    assert len(responses.calls) == 2


@responses.activate
def test_rate_limit_left_after_retries_is_transient_with_the_wait(client):
    responses.get(f"{BASE}/myself", status=429, headers={"Retry-After": "0", "RateLimit-Reason": "jira-burst-based"})
    with pytest.raises(TransientError) as caught:
        client.myself()
    assert caught.value.retry_after == 1.0  # Retry-After is a minimum; 0 is clamped to 1 s
    assert "jira-burst-based" in str(caught.value)


@responses.activate
def test_rate_limit_without_retry_after_waits_until_the_reset_time(client):
    reset = (datetime.now(timezone.utc) + timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%MZ")
    responses.get(f"{BASE}/myself", status=429, headers={"X-RateLimit-Reset": reset})
    with pytest.raises(TransientError) as caught:
        client.myself()
    assert 1 <= caught.value.retry_after <= 180


@pytest.mark.parametrize("status, expected", [
    (500, TransientError), (503, TransientError), (409, TransientError), (403, AuthenticationError),
    (404, NotFoundError), (422, ConfigurationError),
])
@responses.activate
def test_http_statuses_map_to_typed_errors(client, status, expected):
    responses.put(f"{BASE}/issue/AP-1", status=status, json={"errorMessages": [f"status {status}"], "errors": {}})
    with pytest.raises(expected, match=f"status {status}"):
        client.update_issue("AP-1", IssueDraft(summary="s"))


@responses.activate
def test_bad_request_is_a_validation_error_with_field_errors(client):
    responses.post(f"{BASE}/issue", status=400, json={
        "errorMessages": [], "errors": {FIELD: "Operation value must be a string"}})
    with pytest.raises(ValidationError) as caught:
        client.create_issue(IssueDraft(summary="s", external_id="x"))
    assert caught.value.field_errors == {FIELD: "Operation value must be a string"}


@responses.activate
def test_tokens_and_secrets_never_reach_the_logs(caplog, tokens):
    caplog.set_level(logging.DEBUG)
    client = JiraClient(api_url=API, cloud_id=CLOUD, project_key="AP", tokens=tokens, session=make_session(total=0))
    responses.get(f"{BASE}/myself", status=401)
    responses.post(f"{AUTH}/oauth/token", status=403, json={"error": "invalid_grant"})
    with pytest.raises(AuthenticationError):
        client.myself()
    with pytest.raises(ReconnectNeeded):
        jira_token_obtainer(AUTH, make_session(total=0))(SECRET)
    for secret in ("at-1", "at-2", "rt-old-value", "csecret-value"):
        assert secret not in caplog.text
    assert "at-1" not in repr(client)


# --- webhooks and health ----------------------------------------------------------------------------------------------

@responses.activate
def test_register_webhook_sends_events_jql_and_field_filter(client):
    expected = {"url": "https://hooks.example/jira/webhook", "webhooks": [
        {"events": ["jira:issue_updated"], "jqlFilter": "project = AP", "fieldIdsFilter": ["status"]}]}
    responses.post(f"{BASE}/webhook", json={"webhookRegistrationResult": [{"createdWebhookId": 1000}]},
                   match=[matchers.json_params_matcher(expected)])
    assert client.register_webhook("https://hooks.example/jira/webhook", "project = AP") == [1000]


@responses.activate
def test_refused_webhook_registration_is_a_validation_error(client):
    responses.post(f"{BASE}/webhook", json={"webhookRegistrationResult": [
        {"errors": ["The clause watchCount is unsupported"]}]})
    with pytest.raises(ValidationError, match="watchCount"):
        client.register_webhook("https://hooks.example/jira/webhook", "watchCount > 1")


@pytest.mark.parametrize("value", ["2026-06-01T12:42:30.000+0000", 1780317750000, "1780317750000"])
@responses.activate
def test_webhook_refresh_accepts_iso_and_epoch_millisecond_expiry(client, value):
    responses.put(f"{BASE}/webhook/refresh", json={"expirationDate": value},
                  match=[matchers.json_params_matcher({"webhookIds": [1000]})])
    assert client.refresh_webhooks([1000]) == datetime(2026, 6, 1, 12, 42, 30, tzinfo=timezone.utc)


def test_unreadable_expiry_is_a_permanent_error():
    with pytest.raises(Exception, match="expirationDate"):
        parse_expiration("next tuesday")


@responses.activate
def test_ensure_webhook_refreshes_live_ids_and_replaces_expired_ones(client):
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    url, jql = "https://hooks.example/jira/webhook", "project = AP"
    expired = {"id": 7, "url": url, "jqlFilter": jql, "events": ["jira:issue_updated"],
               "expirationDate": int((now - timedelta(days=1)).timestamp() * 1000)}
    responses.get(f"{BASE}/webhook", json={"isLast": True, "values": [expired], "startAt": 0, "maxResults": 100})
    responses.delete(f"{BASE}/webhook", status=202, match=[matchers.json_params_matcher({"webhookIds": [7]})])
    responses.post(f"{BASE}/webhook", json={"webhookRegistrationResult": [{"createdWebhookId": 8}]})
    responses.put(f"{BASE}/webhook/refresh", json={"expirationDate": "2026-01-31T00:00:00.000+0000"},
                  match=[matchers.json_params_matcher({"webhookIds": [8]})])
    ids, expiry = client.ensure_webhook(url, jql, known_ids=[7], now=now)
    assert ids == [8] and expiry == datetime(2026, 1, 31, tzinfo=timezone.utc)


@responses.activate
def test_ensure_webhook_adopts_a_live_webhook_whose_id_was_lost(client):
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    url, jql = "https://hooks.example/jira/webhook", "project = AP"
    live = {"id": 9, "url": url, "jqlFilter": jql, "events": ["jira:issue_updated"],
            "expirationDate": int((now + timedelta(days=20)).timestamp() * 1000)}
    responses.get(f"{BASE}/webhook", json={"isLast": True, "values": [live]})
    responses.put(f"{BASE}/webhook/refresh", json={"expirationDate": 1769817600000},
                  match=[matchers.json_params_matcher({"webhookIds": [9]})])
    ids, _ = client.ensure_webhook(url, jql, known_ids=[], now=now)
    assert ids == [9]
    assert [call.request.method for call in responses.calls] == ["GET", "PUT"]


@responses.activate
def test_health_checks_read_myself_project_and_fields(client):
    responses.get(f"{BASE}/myself", json={"accountId": "me"})
    responses.get(f"{BASE}/project/AP", json={"key": "AP", "issueTypes": [{"name": "Task"}]})
    responses.get(f"{BASE}/field", json=[{"id": "summary"}, {"id": FIELD}])
    assert client.myself()["accountId"] == "me"
    assert client.project()["key"] == "AP"
    assert client.field_exists(FIELD) and not client.field_exists("customfield_99999")


def test_misconfigured_field_or_cloud_id_is_refused_at_construction(tokens):
    with pytest.raises(ConfigurationError):
        JiraClient(api_url=API, cloud_id=CLOUD, project_key="AP", external_id_field="Acumatica ID", tokens=tokens)
    with pytest.raises(ConfigurationError):
        JiraClient(api_url=API, cloud_id="", project_key="AP", tokens=tokens)


def test_client_offers_every_issue_tracker_method_with_the_ports_parameters():
    methods = [(name, member) for name, member in inspect.getmembers(IssueTracker, inspect.isfunction)
               if not name.startswith("_")]
    assert {name for name, _ in methods} >= {"find_by_external_id", "create_issue", "transition_to"}
    for name, member in methods:
        expected = list(inspect.signature(member).parameters)
        assert list(inspect.signature(getattr(JiraClient, name)).parameters) == expected, name


def _history(entry_id, author, frm, to, other_items=()):
    return {"id": entry_id, "author": {"accountId": author}, "created": "2026-11-02T10:00:00.000+0000",
            "items": [*other_items, {"field": "status", "fieldtype": "jira", "fieldId": "status", "from": frm[0],
                                     "fromString": frm[1], "to": to[0], "toString": to[1]}]}


@responses.activate
def test_status_changes_page_the_changelog_and_learn_a_new_status_once(client):
    """Pages by startAt until isLast; categories come from GET /status by status id (names may be localised), read
    again once when the changelog names a status added since."""
    responses.get(f"{BASE}/issue/AP-1/changelog", json={
        "startAt": 0, "maxResults": 1, "total": 2, "isLast": False,
        "values": [_history("1", "person", ("1", "Offen"), ("6", "Erledigt"),
                            [{"field": "labels", "fieldId": "labels", "fromString": "", "toString": "x"}])]},
        match=[matchers.query_param_matcher({"startAt": "0", "maxResults": "100"})])
    responses.get(f"{BASE}/issue/AP-1/changelog", json={
        "startAt": 1, "maxResults": 1, "total": 2, "isLast": True,
        "values": [_history("2", "me", ("6", "Erledigt"), ("77", "Archived"))]},
        match=[matchers.query_param_matcher({"startAt": "1", "maxResults": "100"})])
    known = [{"id": "1", "name": "Open", "statusCategory": {"key": "new"}},
             {"id": "6", "name": "Resolved", "statusCategory": {"key": "done"}}]
    responses.get(f"{BASE}/status", json=known)  # answered first; the second read sees the new status
    responses.get(f"{BASE}/status", json=[*known, {"id": "77", "name": "Archived", "statusCategory": {"key": "done"}}])
    changes = client.status_changes("AP-1")
    assert [(c.id, c.author_account_id, c.from_category, c.to_category) for c in changes] == [
        ("1", "person", "new", "done"), ("2", "me", "done", "done")]
    assert [c.to_status for c in changes] == ["Erledigt", "Archived"]
    assert len([call for call in responses.calls if call.request.url.endswith("/status")]) == 2


@responses.activate
def test_status_changes_carry_who_moved_the_issue_and_the_resolution_the_move_set(client):
    """The changelog's ``author`` is a ``UserDetails``: its accountType and active are what tell a person from an
    app, a customer or a deactivated account; an entry without them is never taken for a person."""
    resolution = {"field": "resolution", "fieldtype": "jira", "fieldId": "resolution", "to": "10001",
                  "toString": "Won't Do"}
    entries = [_history("1", "person", ("1", "Open"), ("6", "Resolved"), [resolution]),
               _history("2", "app", ("6", "Resolved"), ("1", "Open")),
               _history("3", "gone", ("1", "Open"), ("6", "Resolved"))]
    entries[0]["author"].update({"accountType": "atlassian", "active": True, "displayName": "Pat"})
    entries[1]["author"].update({"accountType": "app", "active": True, "displayName": "Automation for Jira"})
    responses.get(f"{BASE}/issue/AP-1/changelog", json={"startAt": 0, "maxResults": 100, "total": 3, "isLast": True,
                                                       "values": entries})
    responses.get(f"{BASE}/status", json=[{"id": "1", "name": "Open", "statusCategory": {"key": "new"}},
                                          {"id": "6", "name": "Resolved", "statusCategory": {"key": "done"}}])
    changes = client.status_changes("AP-1")
    assert [(c.author_account_type, c.author_active, c.author_name, c.resolution) for c in changes] == [
        ("atlassian", True, "Pat", "Won't Do"), ("app", True, "Automation for Jira", None), ("", False, "", None)]


@responses.activate
def test_group_membership_is_read_once_per_few_minutes_and_an_unknown_account_has_none():
    clock = [1000.0]
    client = JiraClient(api_url=API, cloud_id=CLOUD, project_key="AP", external_id_field=FIELD,
                        tokens=FakeTokens("at-1"), session=make_session(total=0), clock=lambda: clock[0])
    responses.get(f"{BASE}/user/groups", json=[{"name": "ap-clerks", "groupId": "g1", "self": f"{BASE}/group"},
                                               {"name": "jira-software-users", "groupId": "g2"}],
                  match=[matchers.query_param_matcher({"accountId": "person"})])
    responses.get(f"{BASE}/user/groups", status=404, json={"errorMessages": ["User not found"]},
                  match=[matchers.query_param_matcher({"accountId": "nobody"})])
    assert client.user_groups("person") == {"ap-clerks", "jira-software-users"}
    assert client.user_groups("person") == {"ap-clerks", "jira-software-users"}
    assert client.user_groups("nobody") == frozenset()
    assert len(responses.calls) == 2
    clock[0] += 301  # GROUP_MEMBERSHIP_CACHE_SECONDS later, a removal from a group counts
    client.user_groups("person")
    assert len(responses.calls) == 3


@responses.activate
def test_a_grant_without_read_jira_user_is_told_once_not_refreshed_for():
    tokens = FakeTokens("at-1", "at-2")
    client = JiraClient(api_url=API, cloud_id=CLOUD, project_key="AP", external_id_field=FIELD, tokens=tokens,
                        session=make_session(total=0))
    responses.get(f"{BASE}/user/groups", status=401, json={"code": 401, "message": "Unauthorized; scope does not match"})
    with pytest.raises(ConfigurationError, match="read:jira-user"):
        client.user_groups("person")
    assert tokens.invalidated == [] and len(responses.calls) == 1


@responses.activate
def test_existing_groups_asks_for_every_name_at_once_and_pages(client):
    responses.get(f"{BASE}/group/bulk", json={"startAt": 0, "maxResults": 1, "total": 2, "isLast": False,
                                              "values": [{"name": "ap-clerks", "groupId": "g1"}]},
                  match=[matchers.query_param_matcher({"groupName": ["ap-clerks", "controlers", "finance"],
                                                       "startAt": "0", "maxResults": "50"})])
    responses.get(f"{BASE}/group/bulk", json={"startAt": 1, "maxResults": 1, "total": 2, "isLast": True,
                                              "values": [{"name": "finance", "groupId": "g3"}]},
                  match=[matchers.query_param_matcher({"groupName": ["ap-clerks", "controlers", "finance"],
                                                       "startAt": "1", "maxResults": "50"})])
    assert client.existing_groups(["ap-clerks", "controlers", "finance"]) == {"ap-clerks", "finance"}


@responses.activate
def test_own_account_id_is_read_once(client):
    responses.get(f"{BASE}/myself", json={"accountId": "557058:me"})
    assert client.own_account_id() == client.own_account_id() == "557058:me"
    assert len(responses.calls) == 1
