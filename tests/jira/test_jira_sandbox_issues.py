"""Issues, search and transitions: the client against the sandbox, whose traffic is checked against the OpenAPI spec."""

from __future__ import annotations

import time

import pytest
import requests

from connector import adf
from connector.errors import NotFoundError, TransientError, UncertainOutcome, ValidationError
from connector.jira import external_id_jql
from connector.ports import IssueDraft
from connector_local.jira_sandbox import PERSON_ACCOUNT

HOSTILE_IDS = [
    'Bill:Bill:"000123"',
    "Bill:Bill:back\\slash",
    "Bill:Bill:a:b",
    "Bill-Bill-a-b",          # the same tokens as the previous id
    "Bill:Bill:a:b:c",        # contains the previous id's tokens as a phrase
    "PurchaseOrder:Normal:PO 0045 \\\"x\\\"",
    "Check:Payment:000078*",
]


def draft(external_id: str, **extra) -> IssueDraft:
    description = adf.doc(adf.paragraph(adf.text(external_id, strong=True), " needs attention"),
                          adf.fields_table({"Reference": external_id}))
    return IssueDraft(summary=f"{external_id} | ACME | 100.00 USD", description=description,
                      external_id=external_id, labels=["acumatica"], **extra)


def raw(sandbox, tokens, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{sandbox.api_base}{path}", timeout=5,
                            headers={"Authorization": f"Bearer {tokens.access_token()}"}, **kwargs)


def test_created_issue_carries_summary_adf_external_id_labels_and_assignee(sandbox, make_client, assert_valid_adf):
    client, _, _ = make_client(sandbox)
    ref = client.create_issue(draft("Bill:Bill:000123", assignee_account_id=PERSON_ACCOUNT))
    assert ref.id.isdigit() and ref.key == f"{sandbox.project_key}-1"
    stored = sandbox.issue(ref.key)["fields"]
    assert stored[sandbox.external_id_field] == "Bill:Bill:000123"
    assert stored["labels"] == ["acumatica"] and stored["assignee"]["accountId"] == PERSON_ACCOUNT
    assert adf.plain_text(stored["description"]).startswith("Bill:Bill:000123 needs attention")
    assert_valid_adf(stored["description"])


@pytest.mark.parametrize("external_id", HOSTILE_IDS)
def test_jql_hostile_external_id_finds_exactly_its_own_issue(sandbox, make_client, external_id):
    client, _, _ = make_client(sandbox)
    refs = {other: client.create_issue(draft(other)) for other in HOSTILE_IDS}
    found = client.find_by_external_id(external_id)
    assert found is not None and found.key == refs[external_id].key and found.external_id == external_id


def test_search_is_a_token_match_so_the_exact_value_check_matters(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    client.create_issue(draft("Bill-Bill-a-b"))
    jql = external_id_jql(sandbox.project_key, sandbox.external_id_field_number, "Bill:Bill:a:b")
    assert [issue.external_id for issue in client.search_issues(jql)] == ["Bill-Bill-a-b"]
    assert client.find_by_external_id("Bill:Bill:a:b") is None


def test_new_issue_is_invisible_to_search_until_reconciled_or_indexed(lagging_sandbox, make_client):
    client, _, _ = make_client(lagging_sandbox)
    ref = client.create_issue(draft("Bill:Bill:000200"))
    assert client.find_by_external_id("Bill:Bill:000200") is None
    assert client.find_by_external_id("Bill:Bill:000200", reconcile_ids=[ref.id]).key == ref.key
    lagging_sandbox.advance_clock(31)
    assert client.find_by_external_id("Bill:Bill:000200").key == ref.key


def test_edited_external_id_shows_the_old_value_to_search_until_indexed(lagging_sandbox, make_client):
    client, _, _ = make_client(lagging_sandbox)
    ref = client.create_issue(draft("Bill:Bill:old"))
    lagging_sandbox.advance_clock(31)
    client.update_issue(ref.key, IssueDraft(external_id="Bill:Bill:new"))
    assert client.find_by_external_id("Bill:Bill:new") is None
    assert client.find_by_external_id("Bill:Bill:new", reconcile_ids=[ref.id]).key == ref.key


def test_search_pages_through_every_result_with_next_page_token(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    keys = {client.create_issue(draft(f"Bill:Bill:{n:06d}")).key for n in range(7)}
    found = [issue.key for issue in client.search_issues(f'project = "{sandbox.project_key}"', page_size=3)]
    assert sorted(found) == sorted(keys) and len(found) == 7
    assert sum(1 for e in sandbox.exchanges() if e["path"] == "/rest/api/3/search/jql") == 3


@pytest.mark.parametrize("jql, message", [
    ("cf[10050] = \"Bill:Bill:1\"", "operator '='"),
    ("order by key desc", "Unbounded"),
    ("customfield_10050 ~ \"x\"", "Custom fields are written"),
    ("project = NOPE", "does not exist"),
    ("project = AP AND watchers > 1", "does not exist"),
    ('project = AP AND cf[10050] ~ "\\"unclosed"', "not valid"),
    ("project = AP AND summary ~ \"\\q\"", "illegal"),
])
def test_search_refuses_jql_jira_would_refuse(sandbox, make_client, jql, message):
    client, _, _ = make_client(sandbox)
    with pytest.raises(ValidationError, match=message):
        list(client.search_issues(jql))


def test_search_refuses_more_than_fifty_reconcile_ids_and_foreign_page_tokens(sandbox, make_client):
    _, tokens, _ = make_client(sandbox)
    too_many = raw(sandbox, tokens, "POST", "/search/jql", json={"jql": "project = AP",
                                                                 "reconcileIssues": list(range(1, 52))})
    assert too_many.status_code == 400
    foreign = raw(sandbox, tokens, "POST", "/search/jql", json={"jql": "project = AP", "nextPageToken": "bm9wZQ"})
    assert foreign.status_code == 400


def test_removed_search_endpoint_answers_410(sandbox, make_client):
    _, tokens, _ = make_client(sandbox)
    gone = raw(sandbox, tokens, "POST", "/search", json={"jql": "project = AP"})
    assert gone.status_code == 410 and "/rest/api/3/search/jql" in gone.json()["errorMessages"][0]


@pytest.mark.parametrize("description, reason", [
    ({"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}]},
     "text"),
    ({"type": "doc", "version": 1, "content": [{"type": "table", "content": []}]}, "content"),
    ({"type": "paragraph", "content": []}, "root"),
])
def test_invalid_adf_description_is_a_validation_error(sandbox, make_client, description, reason):
    client, _, _ = make_client(sandbox)
    with pytest.raises(ValidationError) as caught:
        client.create_issue(IssueDraft(summary="s", description=description))
    assert "description" in caught.value.field_errors and reason in caught.value.field_errors["description"]
    assert "not a valid Atlassian Document" in str(caught.value)
    assert sandbox.issues() == []


def test_external_id_field_takes_a_plain_string_not_adf(sandbox, make_client):
    _, tokens, _ = make_client(sandbox)
    answer = raw(sandbox, tokens, "POST", "/issue", json={"fields": {
        "project": {"key": "AP"}, "issuetype": {"name": "Task"}, "summary": "s",
        sandbox.external_id_field: adf.doc(adf.paragraph("Bill:Bill:1"))}})
    assert answer.status_code == 400 and "string" in answer.json()["errors"][sandbox.external_id_field]


def test_unknown_assignee_and_spaced_labels_are_refused(sandbox, make_client):
    client, tokens, _ = make_client(sandbox)
    with pytest.raises(ValidationError, match="user"):
        client.create_issue(IssueDraft(summary="s", assignee_account_id="nobody"))
    answer = raw(sandbox, tokens, "POST", "/issue", json={"fields": {
        "project": {"key": "AP"}, "issuetype": {"name": "Task"}, "summary": "s", "labels": ["on hold"]}})
    assert answer.status_code == 400 and "spaces" in answer.json()["errors"]["labels"]


def test_comments_must_be_non_empty_adf(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    ref = client.create_issue(draft("Bill:Bill:000300"))
    comment_id = client.add_comment(ref.key, adf.doc(adf.paragraph("Released in Acumatica")))
    assert [c["id"] for c in sandbox.comments(ref.key)] == [comment_id]
    with pytest.raises(ValidationError, match="can not be empty"):
        client.add_comment(ref.key, adf.doc(adf.paragraph("")))
    with pytest.raises(ValidationError, match="not a valid Atlassian Document"):
        client.add_comment(ref.key, {"type": "doc", "version": 1, "content": [{"type": "text", "text": "bare"}]})
    with pytest.raises(ValidationError, match="not a valid Atlassian Document"):
        client.add_comment(ref.key, adf.doc(adf.paragraph({"type": "text", "text": "x", "marks": [{"type": "bold"}]})))


def test_update_changes_fields_and_records_a_changelog(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    ref = client.create_issue(draft("Bill:Bill:000400"))
    client.update_issue(ref.key, IssueDraft(summary="new summary", labels=["acumatica", "reopened"]))
    assert sandbox.issue(ref.key)["fields"]["summary"] == "new summary"
    assert {item["field"] for item in sandbox.changelog(ref.key)[-1]["items"]} == {"summary", "labels"}
    with pytest.raises(NotFoundError):
        client.update_issue("AP-999", IssueDraft(summary="x"))


def test_transitions_reach_every_status_by_name_or_category(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    ref = client.create_issue(draft("Bill:Bill:000500"))
    assert client.transition_to(ref.key, "blocked") and client.get_issue(ref.key).status == "Blocked"
    assert client.transition_to(ref.key, "Won't Do")
    issue = client.get_issue(ref.key)
    assert (issue.status, issue.status_category) == ("Won't Do", "done")
    assert sandbox.issue(ref.key)["fields"]["resolution"]["name"] == "Won't Do"
    assert client.transition_to_category(ref.key, "new") and client.get_issue(ref.key).status == "To Do"
    assert sandbox.issue(ref.key)["fields"]["resolution"] is None
    assert client.transition_to_category(ref.key, "done") and client.get_issue(ref.key).status_category == "done"
    assert client.transition_to(ref.key, "No Such Status") is False


def test_missing_issue_reads_as_none(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    assert client.get_issue("AP-4040") is None


def test_health_checks_see_myself_project_and_external_id_field(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    assert client.myself()["accountId"]
    assert "Task" in {t["name"] for t in client.project()["issueTypes"]}
    assert client.field_exists(sandbox.external_id_field) and not client.field_exists("customfield_1")
    wrong_project, _, _ = make_client(sandbox, project_key="NOPE")
    with pytest.raises(NotFoundError):
        wrong_project.project()


def test_throttled_call_is_retried_after_retry_after(sandbox, make_client):
    client, _, _ = make_client(sandbox, retries=2)
    client.myself()
    sandbox.fail_next(1, status=429, retry_after=1, path_contains="/myself")
    started = time.monotonic()
    assert client.myself()["accountId"]
    assert time.monotonic() - started >= 1.0  # Retry-After is a minimum wait


def test_throttling_beyond_the_retries_is_transient_with_the_wait(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    client.myself()
    sandbox.set_rate_limit(1, per_seconds=60)
    client.myself()
    with pytest.raises(TransientError) as caught:
        client.myself()
    assert caught.value.retry_after >= 1 and "jira-burst-based" in str(caught.value)
    sandbox.set_rate_limit(None)


def test_server_error_on_a_read_is_retried_and_on_a_create_is_not(sandbox, make_client):
    client, _, _ = make_client(sandbox, retries=1)
    client.myself()
    sandbox.fail_next(1, status=503, path_contains="/myself")
    assert client.myself()["accountId"]
    sandbox.fail_next(1, status=503, method="POST", path_contains="/issue")
    with pytest.raises(TransientError):
        client.create_issue(draft("Bill:Bill:000600"))
    assert sandbox.issues() == []


def test_create_timing_out_is_uncertain_and_settled_by_searching(sandbox, make_client):
    client, _, _ = make_client(sandbox, timeout=(2.0, 0.3))
    client.myself()
    sandbox.slow_next(1, 1.0, method="POST", path_contains="/issue")
    with pytest.raises(UncertainOutcome):
        client.create_issue(draft("Bill:Bill:000700"))
    created = sandbox.issues_with_external_id("Bill:Bill:000700")
    assert len(created) == 1  # it did happen
    assert client.find_by_external_id("Bill:Bill:000700", reconcile_ids=[created[0]["id"]]).key == created[0]["key"]



def test_status_changes_tell_who_moved_the_issue_and_between_which_categories(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    ref = client.create_issue(draft("Bill:Bill:000700"))
    sandbox.resolve_issue(ref.key, "Done")  # a person
    sandbox.resolve_issue(ref.key, "Closed")
    assert client.transition_to(ref.key, "To Do")  # the connector
    changes = client.status_changes(ref.key)
    assert [(c.from_status, c.to_status, c.from_category, c.to_category) for c in changes] == [
        ("To Do", "Done", "new", "done"), ("Done", "Closed", "done", "done"), ("Closed", "To Do", "done", "new")]
    me = client.own_account_id()
    assert [c.author_account_id == me for c in changes] == [False, False, True]
    assert len({c.id for c in changes}) == 3
    assert client.get_issue(ref.key).creator_account_id == me


def test_changelog_pages_oldest_first(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    ref = client.create_issue(draft("Bill:Bill:000701"))
    for _ in range(60):
        sandbox.resolve_issue(ref.key, "Done")
        sandbox.resolve_issue(ref.key, "To Do")
    assert len(client.status_changes(ref.key)) == 120
    assert [e["path"].endswith("/changelog") for e in sandbox.exchanges()].count(True) == 2


def test_a_clone_keeps_the_external_id_but_is_created_by_the_person(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    ref = client.create_issue(draft("Bill:Bill:000702"))
    clone = sandbox.clone_issue(ref.key)
    copied = client.get_issue(clone)
    assert copied.external_id == "Bill:Bill:000702" and copied.creator_account_id == PERSON_ACCOUNT
    assert copied.status == "To Do"
    sandbox.edit_issue(clone, {sandbox.external_id_field: "Bill:Bill:999999"})
    assert client.get_issue(clone).external_id == "Bill:Bill:999999"
    assert sandbox.changelog(clone)[-1]["author"]["accountId"] == PERSON_ACCOUNT


def test_resolved_is_searchable_by_resolution_date(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    ref = client.create_issue(draft("Bill:Bill:000703"))
    jql = f'project = "{sandbox.project_key}" AND resolved >= "-10m"'
    assert ref.key not in [i.key for i in client.search_issues(jql, reconcile_ids=[ref.id])]
    sandbox.resolve_issue(ref.key, "Done")
    assert ref.key in [i.key for i in client.search_issues(jql, reconcile_ids=[ref.id])]


def test_expand_changelog_shows_the_newest_entries_of_the_issue(sandbox, make_client):
    client, tokens, _ = make_client(sandbox)
    ref = client.create_issue(draft("Bill:Bill:000704"))
    sandbox.resolve_issue(ref.key, "Done")
    body = requests.get(f"{sandbox.api_base}/issue/{ref.key}", params={"expand": "changelog", "fields": "status"},
                        headers={"Authorization": f"Bearer {tokens.access_token()}"}, timeout=10).json()
    (entry,) = body["changelog"]["histories"]
    assert entry["author"]["accountId"] == PERSON_ACCOUNT and body["changelog"]["total"] == 1
