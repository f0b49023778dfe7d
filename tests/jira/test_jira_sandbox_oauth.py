"""OAuth 2.0 (3LO) against the sandbox: rotating refresh tokens, the reuse leeway, cloud ids, concurrent refreshes."""

from __future__ import annotations

import threading

import pytest
import requests

from connector.errors import AuthenticationError, ReconnectNeeded, TransientError
from connector.http import make_session
from connector.jira import JiraClient, exchange_authorization_code, jira_token_obtainer, resolve_cloud_id
from connector.tokens import RotatingTokens
from connector_local.jira_sandbox import JiraSandbox
from tests.fakes import MemoryLock, MemorySecret


def secret_for(sandbox: JiraSandbox) -> dict:
    return {"client_id": sandbox.client_id, "client_secret": sandbox.client_secret,
            "refresh_token": sandbox.issue_refresh_token()}


def test_accessible_resources_lists_several_sites_and_the_connector_finds_its_own(sandbox):
    tokens = jira_token_obtainer(sandbox.url, make_session(total=0))(secret_for(sandbox))
    listed = requests.get(f"{sandbox.url}/oauth/token/accessible-resources",
                          headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=5).json()
    assert len(listed) >= 2 and listed[0]["url"] != sandbox.site_url  # the list has no useful order
    found = resolve_cloud_id(sandbox.url, tokens["access_token"], sandbox.site_url, requests.Session())
    assert found == sandbox.cloud_id


def test_every_refresh_rotates_the_refresh_token(sandbox):
    obtain = jira_token_obtainer(sandbox.url, make_session(total=0))
    first = secret_for(sandbox)
    second = obtain(first)
    third = obtain({**first, **second})
    assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3
    assert sandbox.refresh_count == 2 and sandbox.grant_alive(third["refresh_token"])


def test_old_refresh_token_works_within_the_leeway(sandbox):
    obtain = jira_token_obtainer(sandbox.url, make_session(total=0))
    original = secret_for(sandbox)
    rotated = obtain(original)
    sandbox.advance_clock(sandbox.refresh_leeway_seconds - 60)
    assert obtain(original)["access_token"]  # a client that missed the response may retry
    assert sandbox.grant_alive(rotated["refresh_token"])


def test_replaying_an_old_refresh_token_after_the_leeway_kills_the_whole_chain(sandbox):
    obtain = jira_token_obtainer(sandbox.url, make_session(total=0))
    original = secret_for(sandbox)
    rotated = obtain(original)
    sandbox.advance_clock(sandbox.refresh_leeway_seconds + 1)
    with pytest.raises(ReconnectNeeded, match="connector connect jira"):
        obtain(original)
    with pytest.raises(ReconnectNeeded):  # even the newest token is revoked now
        obtain({**original, **rotated})
    assert not sandbox.grant_alive(rotated["refresh_token"])


def test_expired_access_token_is_refused_then_refreshed_once_by_the_client(sandbox, make_client):
    client, _, secret = make_client(sandbox)
    assert client.myself()["accountId"]
    refresh_token = secret.read()["refresh_token"]
    sandbox.advance_clock(sandbox.access_token_lifetime + 1)  # the sandbox expires it; the container does not know
    assert client.myself()["accountId"]
    assert secret.read()["refresh_token"] != refresh_token
    assert sandbox.refresh_count == 2


def test_rotated_refresh_token_is_stored_before_the_access_token_is_used(sandbox):
    store = MemorySecret(secret_for(sandbox))
    consented = store.read()["refresh_token"]
    tokens = RotatingTokens(name="jira", secrets=store, lock=MemoryLock(),
                            obtain=jira_token_obtainer(sandbox.url, make_session(total=0)))
    api_session = make_session(total=0)
    stored_when_used: list[str] = []
    api_session.hooks["response"].append(lambda response, **_: stored_when_used.append(store.read()["refresh_token"]))
    client = JiraClient(api_url=sandbox.url, cloud_id=sandbox.cloud_id, project_key=sandbox.project_key,
                        tokens=tokens, session=api_session)
    client.myself()
    assert store.writes == 1
    assert stored_when_used[0] != consented and sandbox.grant_alive(stored_when_used[0])
    assert sandbox.refresh_count == 1


class FreeForAllLock:
    """A lock that never excludes anyone: what happens without the DynamoDB lease."""

    def acquire(self, name: str, owner: str, lease_seconds: float) -> bool:
        return True

    def release(self, name: str, owner: str) -> None:
        pass


def refresh_concurrently(sandbox: JiraSandbox, lock) -> tuple[MemorySecret, list[object]]:
    """Two containers (threads, each with its own RotatingTokens) need a token at the same moment."""
    store = MemorySecret(secret_for(sandbox))
    sandbox.slow_next(2, 0.3, path_contains="/oauth/token")  # keep the first refresh in flight while the other starts
    start = threading.Barrier(2)
    results: list[object] = [None, None]

    def container(index: int) -> None:
        tokens = RotatingTokens(name="jira", secrets=store, lock=lock,
                                obtain=jira_token_obtainer(sandbox.url, make_session(total=0)), poll_seconds=0.02)
        start.wait()
        try:
            results[index] = tokens.access_token()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each container got
            results[index] = exc

    threads = [threading.Thread(target=container, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    return store, results


def test_two_containers_refreshing_at_once_never_invalidate_the_chain():
    with JiraSandbox(refresh_leeway_seconds=0) as sandbox:  # any second use of a refresh token kills the grant
        store, results = refresh_concurrently(sandbox, MemoryLock())
        assert all(isinstance(token, str) for token in results), results
        assert results[0] == results[1]
        assert sandbox.refresh_count == 1
        assert sandbox.grant_alive(store.read()["refresh_token"])
        response = requests.get(f"{sandbox.api_base}/myself", timeout=5,
                                headers={"Authorization": f"Bearer {results[0]}"})
        assert response.status_code == 200


def test_without_the_lock_concurrent_refreshes_burn_the_chain():
    """The control experiment: it shows the previous test would catch a missing lock."""
    with JiraSandbox(refresh_leeway_seconds=0) as sandbox:
        store, results = refresh_concurrently(sandbox, FreeForAllLock())
        assert any(isinstance(result, ReconnectNeeded) for result in results), results
        assert not sandbox.grant_alive(store.read()["refresh_token"])


def test_token_endpoint_outage_is_transient_and_spends_nothing(sandbox):
    obtain = jira_token_obtainer(sandbox.url, make_session(total=0))
    secret = secret_for(sandbox)
    sandbox.fail_next(1, status=503, path_contains="/oauth/token")
    with pytest.raises(TransientError):
        obtain(secret)
    assert obtain(secret)["access_token"] and sandbox.grant_alive(secret["refresh_token"])


def test_authorization_code_is_single_use(sandbox):
    redirect = "http://127.0.0.1:8765/callback"
    code = sandbox.issue_authorization_code(redirect)
    tokens = exchange_authorization_code(sandbox.url, sandbox.client_id, sandbox.client_secret, code, redirect,
                                         requests.Session())
    assert tokens["refresh_token"] and "offline_access" in tokens["scope"]
    with pytest.raises(AuthenticationError):
        exchange_authorization_code(sandbox.url, sandbox.client_id, sandbox.client_secret, code, redirect,
                                    requests.Session())


def test_token_endpoint_takes_json_only_and_checks_the_client(sandbox):
    form = requests.post(f"{sandbox.url}/oauth/token", timeout=5,
                         data={"grant_type": "refresh_token", "client_id": sandbox.client_id})
    assert form.status_code == 400
    wrong = requests.post(f"{sandbox.url}/oauth/token", timeout=5, json={
        "grant_type": "refresh_token", "client_id": sandbox.client_id, "client_secret": "wrong",
        "refresh_token": sandbox.issue_refresh_token()})
    assert wrong.status_code == 401


def test_api_refuses_missing_or_unknown_tokens_and_unknown_sites(sandbox, make_client):
    assert requests.get(f"{sandbox.api_base}/myself", timeout=5).status_code == 401
    _, tokens, _ = make_client(sandbox)
    token = tokens.access_token()
    other = requests.get(f"{sandbox.url}/ex/jira/00000000-0000-0000-0000-000000000000/rest/api/3/myself",
                         headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert other.status_code == 404
