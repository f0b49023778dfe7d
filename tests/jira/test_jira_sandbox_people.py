"""Who moved an issue, what the move said, and who belongs to which group: the client against the sandbox, whose
every exchange is checked against the official OpenAPI description (``sandbox`` fixture)."""

from __future__ import annotations

import pytest

from connector.errors import ConfigurationError
from connector_local.jira_sandbox import AUTOMATION_ACCOUNT, PERSON_ACCOUNT, USER_SCOPE, JiraSandbox
from tests.jira.test_jira_sandbox_issues import draft


def test_the_changelog_tells_a_person_from_automation_an_app_a_customer_and_a_deactivated_account(sandbox,
                                                                                                     make_client):
    client, _, _ = make_client(sandbox)
    sandbox.add_user("557058:other-app", "Other app", account_type="app")
    sandbox.add_user("qm:customer", "A customer", account_type="customer")
    sandbox.add_user("5b10-left", "Left the company", active=False)
    ref = client.create_issue(draft("Bill:Bill:000800"))
    for actor in (PERSON_ACCOUNT, AUTOMATION_ACCOUNT, "557058:other-app", "qm:customer", "5b10-left"):
        sandbox.resolve_issue(ref.key, "Done", actor=actor)
        sandbox.resolve_issue(ref.key, "To Do")
    moves = [c for c in client.status_changes(ref.key) if c.to_status == "Done"]
    assert [(c.author_account_id, c.author_account_type, c.author_active) for c in moves] == [
        (PERSON_ACCOUNT, "atlassian", True), (AUTOMATION_ACCOUNT, "app", True), ("557058:other-app", "app", True),
        ("qm:customer", "customer", True), ("5b10-left", "atlassian", False)]
    assert moves[1].author_name == "Automation for Jira"


def test_company_managed_declines_with_a_resolution_on_done(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    ref = client.create_issue(draft("Bill:Bill:000801"))
    sandbox.resolve_issue(ref.key, "Done", resolution="Won't Do")
    issue = client.get_issue(ref.key)
    assert (issue.status, issue.resolution) == ("Done", "Won't Do")
    (move,) = client.status_changes(ref.key)
    assert (move.to_status, move.resolution) == ("Done", "Won't Do")


def test_team_managed_declines_with_a_status_whatever_resolution_jira_sets(assert_conforms_to_openapi, make_client):
    with JiraSandbox(project_style="team-managed") as team:
        client, _, _ = make_client(team)
        ref = client.create_issue(draft("Bill:Bill:000802"))
        team.resolve_issue(ref.key, "Won't Do")
        issue = client.get_issue(ref.key)
        assert (issue.status, issue.status_category, issue.resolution) == ("Won't Do", "done", "Done")
        assert client.status_changes(ref.key)[0].resolution == "Done"
        with pytest.raises(ValueError, match="team-managed"):
            team.resolve_issue(ref.key, "Done", resolution="Won't Do")  # no resolution screen to pick it on
        assert_conforms_to_openapi(team.exchanges())


def test_groups_of_a_person_and_which_named_groups_exist(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    sandbox.add_user("clerk-1", "Casey Clerk", groups=["ap-clerks"])
    sandbox.add_to_group("clerk-1", "AP-Reviewers")
    assert client.user_groups("clerk-1") == {"ap-clerks", "AP-Reviewers"}
    assert client.user_groups(PERSON_ACCOUNT) == {"jira-software-users"}
    assert client.user_groups("never-seen") == frozenset()  # 404: an account the site does not know
    assert client.existing_groups(["ap-clerks", "ap-reviewers", "controlers"]) == {"ap-clerks", "AP-Reviewers"}
    assert client.user("clerk-1")["displayName"] == "Casey Clerk" and client.user("never-seen") is None


def test_a_grant_without_read_jira_user_is_refused_groups_and_told_why(sandbox, make_client):
    client, tokens, _ = make_client(sandbox)
    sandbox.set_grant_scopes([scope for scope in sandbox.granted_scopes if scope != USER_SCOPE])
    refreshes = sandbox.refresh_count
    with pytest.raises(ConfigurationError, match="read:jira-user"):
        client.user_groups(PERSON_ACCOUNT)
    with pytest.raises(ConfigurationError, match="read:jira-user"):
        client.existing_groups(["ap-clerks"])
    assert sandbox.refresh_count - refreshes <= 1  # the first token only: a scope is not fixed by refreshing
    assert client.get_issue("AP-1") is None  # the rest of the grant still works


def test_the_sandbox_ui_lets_a_person_pick_the_resolution(sandbox, make_client):
    """What `connector sandbox resolve AP-1 --resolution "Won't Do"` posts, for trying a "no" by hand."""
    import requests

    from connector_cli.main import build_parser

    client, _, _ = make_client(sandbox)
    ref = client.create_issue(draft("Bill:Bill:000803"))
    args = build_parser().parse_args(["sandbox", "resolve", ref.key, "--resolution", "Won't Do"])
    answer = requests.post(f"{sandbox.url}/sandbox-ui/issue/{ref.key}/transition",
                           json={"status": args.status, "resolution": args.resolution}, timeout=10)
    assert answer.status_code == 200
    assert client.get_issue(ref.key).resolution == "Won't Do"
    refused = requests.post(f"{sandbox.url}/sandbox-ui/issue/{ref.key}/transition",
                            json={"status": "Done", "resolution": "Nope"}, timeout=10)
    assert refused.status_code == 400
