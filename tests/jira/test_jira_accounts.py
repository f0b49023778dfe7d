"""What the client reads about people, against the sandbox, every exchange checked against the official OpenAPI
description: which accountIds exist and are active (``JiraClient.account_states``, ``GET /rest/api/3/user/bulk``,
``PageBeanUser``), and the comments people leave (``recent_comments``, ``GET /issue/{key}/comment``)."""

from __future__ import annotations

from connector import adf
from connector.jira import COMMENTS_READ, USER_BULK_BATCH
from connector_local.jira_sandbox import CONNECTOR_ACCOUNT, PERSON_ACCOUNT


def test_known_accounts_are_found_and_unknown_ones_are_absent(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    states = client.account_states([PERSON_ACCOUNT, "5b10ac8d82e05b22cc7d4e00", CONNECTOR_ACCOUNT, PERSON_ACCOUNT])
    assert states == {PERSON_ACCOUNT: True, CONNECTOR_ACCOUNT: True}


def test_many_accounts_are_asked_in_batches_and_pages_and_none_is_lost(sandbox, make_client):
    buyers = [f"5b10ac8d82e05b22cc7d{n:04x}" for n in range(3 * USER_BULK_BATCH + 7)]
    for account in buyers[::2]:
        sandbox.add_user(account, f"Buyer {account[-4:]}")
    client, _, _ = make_client(sandbox)
    states = client.account_states(buyers)
    assert set(states) == set(buyers[::2])
    asked = [e for e in sandbox.exchanges() if e["path"] == "/rest/api/3/user/bulk"]
    assert len(asked) >= 4 and all(e["query"].count("accountId=") <= USER_BULK_BATCH for e in asked)


def test_no_accounts_asks_jira_nothing(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    assert client.account_states([]) == {}
    assert not [e for e in sandbox.exchanges() if e["path"] == "/rest/api/3/user/bulk"]


def test_a_deactivated_account_is_found_and_said_to_be_inactive(sandbox, make_client):
    """``connector config import`` refuses a table routing to it: issues cannot be assigned to a deactivated account."""
    sandbox.add_user("5b10ac8d82e05b22cc7d0001", "Left the company", active=False)
    client, _, _ = make_client(sandbox)
    assert client.account_states(["5b10ac8d82e05b22cc7d0001", PERSON_ACCOUNT]) == {
        "5b10ac8d82e05b22cc7d0001": False, PERSON_ACCOUNT: True}


def test_recent_comments_are_the_newest_page_oldest_first_as_plain_text(sandbox, make_client):
    """The return flow takes the last of the deciding person's comments around the decision as the approval's reason:
    the order must be the order they were written in, though Jira is asked for the newest first."""
    key = sandbox.seed_issue("Bill 000123")
    client, _, _ = make_client(sandbox)
    for n in range(COMMENTS_READ + 2):
        client.add_comment(key, adf.doc(adf.paragraph(f"note {n}")))
        sandbox.advance_clock(1.0)
    comments = client.recent_comments(key)
    assert [c.text for c in comments] == [f"note {n}" for n in range(2, COMMENTS_READ + 2)]
    assert len({c.created for c in comments}) == COMMENTS_READ  # distinct stamps: the order is the client's doing
