"""Which Jira accountIds exist: ``JiraClient.account_states`` against the sandbox, every exchange checked against the
official OpenAPI description (``GET /rest/api/3/user/bulk``, ``PageBeanUser``)."""

from __future__ import annotations

from connector.jira import USER_BULK_BATCH
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
