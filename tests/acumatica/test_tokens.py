"""OAuth against /identity/connect/token: refresh first, password grant as fallback, re-connect when neither works."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

import pytest
import responses

from connector.acumatica import acumatica_token_obtainer
from connector.errors import ConfigurationError, ReconnectNeeded, TransientError
from connector.http import make_session
from connector.model import DocumentKey
from tests.acumatica.conftest import CLIENT_SECRET, PASSWORD
from tests.fakes import MemorySecret

BASE = "https://acme.example.com"
TOKEN_URL = f"{BASE}/identity/connect/token"
CREDENTIALS = {"client_id": "GUID@Company", "client_secret": "shh"}


@pytest.fixture
def mocked():
    with responses.RequestsMock() as rsps:
        yield rsps


def obtainer():
    return acumatica_token_obtainer(BASE, make_session(total=0), clock=lambda: 1000.0)


def form(call) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def test_refresh_grant_sends_the_rotating_token_and_returns_expiry(mocked):
    mocked.post(TOKEN_URL, json={"access_token": "a-2", "refresh_token": "r-2", "expires_in": 3600,
                                 "token_type": "Bearer", "scope": "api offline_access"})

    issued = obtainer()({**CREDENTIALS, "refresh_token": "r-1"})

    assert issued == {"access_token": "a-2", "refresh_token": "r-2", "expires_at": 4600.0}
    assert form(mocked.calls[0]) == {"grant_type": "refresh_token", "client_id": "GUID@Company",
                                     "client_secret": "shh", "refresh_token": "r-1"}
    assert mocked.calls[0].request.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_password_grant_asks_for_api_and_offline_access(mocked):
    mocked.post(TOKEN_URL, json={"access_token": "a-1", "refresh_token": "r-1", "expires_in": 600})

    issued = obtainer()({**CREDENTIALS, "username": "admin", "password": "pw"})

    assert form(mocked.calls[0]) == {"grant_type": "password", "client_id": "GUID@Company", "client_secret": "shh",
                                     "username": "admin", "password": "pw", "scope": "api offline_access"}
    assert issued["expires_at"] == 1600.0


def test_dead_refresh_chain_falls_back_to_the_password_grant(mocked):
    mocked.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})
    mocked.post(TOKEN_URL, json={"access_token": "a-9", "refresh_token": "r-9", "expires_in": 3600})

    issued = obtainer()({**CREDENTIALS, "refresh_token": "r-dead", "username": "admin", "password": "pw"})

    assert [form(c)["grant_type"] for c in mocked.calls] == ["refresh_token", "password"]
    assert issued["refresh_token"] == "r-9"


def test_dead_refresh_chain_without_password_needs_a_reconnect(mocked):
    mocked.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})

    with pytest.raises(ReconnectNeeded, match="connector connect acumatica") as dead:
        obtainer()({**CREDENTIALS, "refresh_token": "r-dead"})
    assert "r-dead" not in str(dead.value)


def test_refused_client_credentials_do_not_fall_back(mocked):
    mocked.post(TOKEN_URL, status=400, json={"error": "invalid_client"})

    with pytest.raises(ReconnectNeeded, match="invalid_client"):
        obtainer()({**CREDENTIALS, "refresh_token": "r-1", "username": "admin", "password": "pw"})
    assert len(mocked.calls) == 1


def test_refused_password_needs_a_reconnect(mocked):
    mocked.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})

    with pytest.raises(ReconnectNeeded) as refused:
        obtainer()({**CREDENTIALS, "username": "admin", "password": "wrong-pw"})
    assert "wrong-pw" not in str(refused.value)


def test_unavailable_token_endpoint_is_transient(mocked):
    mocked.post(TOKEN_URL, status=503, headers={"Retry-After": "3"})

    with pytest.raises(TransientError) as failed:
        obtainer()({**CREDENTIALS, "refresh_token": "r-1"})
    assert failed.value.retry_after == 3.0


def test_secret_without_client_credentials_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        obtainer()({"refresh_token": "r-1"})


def test_secret_without_any_grant_needs_a_reconnect():
    with pytest.raises(ReconnectNeeded):
        obtainer()(dict(CREDENTIALS))


# ----------------------------------------------------------------------------------------- against the sandbox


def test_rotated_refresh_token_is_written_back_and_the_old_one_is_dead(sandbox, make_client):
    first = sandbox.issue_refresh_token()
    secret = MemorySecret({"client_id": sandbox.client_id, "client_secret": CLIENT_SECRET, "refresh_token": first})
    client = make_client(secrets=secret)
    sandbox.add_document("Bill")

    assert client.get(DocumentKey("Bill", "Bill", "000001")) is not None

    stored = secret.read()
    assert stored["refresh_token"] != first and stored["access_token"]
    replay = acumatica_token_obtainer(sandbox.url, make_session(total=0))
    with pytest.raises(ReconnectNeeded):
        replay({"client_id": sandbox.client_id, "client_secret": CLIENT_SECRET, "refresh_token": first})


def test_expired_access_token_is_refreshed_transparently(sandbox, client, secret):
    sandbox.add_document("Bill")
    key = DocumentKey("Bill", "Bill", "000001")
    client.get(key)
    before = secret.read()["access_token"]

    sandbox.expire_access_tokens()

    assert client.get(key) is not None
    assert secret.read()["access_token"] != before
    grants = [entry.body["grant_type"] for entry in sandbox.requests_log if entry.path.endswith("/token")]
    assert grants == ["password", "refresh_token"]


def test_dead_refresh_chain_produces_one_reconnect_error(sandbox, make_client):
    secret = MemorySecret({"client_id": sandbox.client_id, "client_secret": CLIENT_SECRET,
                           "refresh_token": sandbox.issue_refresh_token()})
    client = make_client(secrets=secret)
    sandbox.add_document("Bill")
    client.get(DocumentKey("Bill", "Bill", "000001"))
    sandbox.revoke_refresh_chain()
    sandbox.expire_access_tokens()

    with pytest.raises(ReconnectNeeded, match="connector connect acumatica"):
        client.get(DocumentKey("Bill", "Bill", "000001"))


def test_dead_refresh_chain_recovers_with_the_password_grant(sandbox, client, secret):
    sandbox.add_document("Bill")
    client.get(DocumentKey("Bill", "Bill", "000001"))
    sandbox.revoke_refresh_chain()
    sandbox.expire_access_tokens()

    assert client.get(DocumentKey("Bill", "Bill", "000001")) is not None
    grants = [entry.body["grant_type"] for entry in sandbox.requests_log if entry.path.endswith("/token")]
    assert grants == ["password", "refresh_token", "password"]


class RecordingSecret(MemorySecret):
    """Keeps every value ever written, so the test knows every token that was issued."""

    def __init__(self, value):
        super().__init__(value)
        self.history = [dict(value)]

    def write(self, value):
        super().write(value)
        self.history.append(dict(value))


def test_no_token_or_password_reaches_any_log_line_or_error(sandbox, make_client, caplog):
    caplog.set_level(logging.DEBUG)
    secret = RecordingSecret({"client_id": sandbox.client_id, "client_secret": CLIENT_SECRET, "username": "admin",
                              "password": PASSWORD, "refresh_token": sandbox.issue_refresh_token()})
    client = make_client(secrets=secret)
    sandbox.add_document("Bill", Amount=10, Balance=9)
    key = DocumentKey("Bill", "Bill", "000001")
    errors = []
    client.get(key)
    sandbox.expire_access_tokens()
    client.get(key)
    sandbox.revoke_refresh_chain()
    sandbox.expire_access_tokens()
    for action in (lambda: client.set_hold(key, False), lambda: client.invoke_action(key, "ReleaseBill")):
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - the messages themselves are under test
            errors.append(f"{exc!r} {exc}")
    secret.write({**secret.read(), "password": "wrong"})
    sandbox.revoke_refresh_chain()
    sandbox.expire_access_tokens()
    with pytest.raises(ReconnectNeeded) as dead:
        client.get(key)
    errors.append(f"{dead.value!r} {dead.value}")

    secrets = {PASSWORD, CLIENT_SECRET} | {value[name] for value in secret.history
                                           for name in ("access_token", "refresh_token") if value.get(name)}
    assert len(secrets) >= 6
    text = caplog.text + "\n".join(errors) + repr(client)
    assert "Acumatica" in caplog.text
    assert [s for s in secrets if s in text] == []
