"""Credentials never follow a redirect: a token endpoint or an API answering 3xx gets a clear error naming both hosts,
and the host it points to receives nothing; an action's status ``Location`` is followed only on the instance's own
scheme, host and port."""

from __future__ import annotations

import pytest
import responses

from connector.acumatica import AcumaticaClient, acumatica_token_obtainer
from connector.errors import ConfigurationError, PermanentError
from connector.http import make_session
from connector.jira import JiraClient, accessible_sites, exchange_authorization_code, jira_token_obtainer
from connector.model import DocumentKey
from connector_local.acumatica_sandbox import AcumaticaSandbox

BASE = "https://acme.example.com"
ELSEWHERE = "https://collector.evil.example"
SECRET_VALUES = ("client-secret-value", "the-password", "refresh-1")


class FixedTokens:
    def access_token(self) -> str:
        return "bearer-token-value"

    def invalidate(self, token: str) -> None:
        pass


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.POST, ELSEWHERE + "/steal", json={"access_token": "x"})
        rsps.add(responses.GET, ELSEWHERE + "/steal", json=[])
        yield rsps


def nothing_reached_elsewhere(mocked) -> bool:
    return not any(call.request.url.startswith(ELSEWHERE) for call in mocked.calls)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_an_acumatica_token_endpoint_that_redirects_gets_no_credentials_and_a_clear_error(mocked, status):
    mocked.add(responses.POST, f"{BASE}/identity/connect/token", status=status, headers={"Location": ELSEWHERE + "/steal"})
    obtain = acumatica_token_obtainer(BASE, make_session(total=0))
    with pytest.raises(ConfigurationError) as refused:
        obtain({"client_id": "id@Company", "client_secret": SECRET_VALUES[0], "username": "api",
                "password": SECRET_VALUES[1]})
    message = str(refused.value)
    assert "acme.example.com" in message and "collector.evil.example" in message and "AcumaticaUrl" in message
    assert not any(value in message for value in SECRET_VALUES)
    assert nothing_reached_elsewhere(mocked) and len(mocked.calls) == 1


@pytest.mark.parametrize("status", [302, 307, 308])
def test_jira_token_endpoints_that_redirect_get_no_credentials(mocked, status):
    mocked.add(responses.POST, "https://auth.atlassian.com/oauth/token", status=status,
               headers={"Location": ELSEWHERE + "/steal"})
    session = make_session(total=0)
    with pytest.raises(ConfigurationError, match="JiraAuthUrl"):
        jira_token_obtainer("https://auth.atlassian.com", session)(
            {"client_id": "c", "client_secret": SECRET_VALUES[0], "refresh_token": SECRET_VALUES[2]})
    with pytest.raises(ConfigurationError, match="collector.evil.example"):
        exchange_authorization_code("https://auth.atlassian.com", "c", SECRET_VALUES[0], "code", "http://localhost/cb",
                                    session)
    assert nothing_reached_elsewhere(mocked)


def test_accessible_resources_that_redirect_get_no_bearer_token(mocked):
    mocked.add(responses.GET, "https://api.atlassian.com/oauth/token/accessible-resources", status=302,
               headers={"Location": ELSEWHERE + "/steal"})
    with pytest.raises(ConfigurationError, match="JiraApiUrl"):
        accessible_sites("https://api.atlassian.com", "bearer-token-value", make_session(total=0))
    assert nothing_reached_elsewhere(mocked)


def test_a_jira_api_call_that_redirects_is_refused_before_the_token_travels(mocked):
    base = "https://api.atlassian.com/ex/jira/cloud-1/rest/api/3"
    mocked.add(responses.GET, f"{base}/issue/AP-1", status=307, headers={"Location": ELSEWHERE + "/steal"})
    client = JiraClient(api_url="https://api.atlassian.com", cloud_id="cloud-1", project_key="AP",
                        tokens=FixedTokens(), session=make_session(total=0))
    with pytest.raises(ConfigurationError, match="redirecting to collector.evil.example"):
        client.get_issue("AP-1")
    assert nothing_reached_elsewhere(mocked)


def test_any_session_the_connector_makes_hands_redirects_back_even_when_asked_to_follow(mocked):
    mocked.add(responses.GET, f"{BASE}/somewhere", status=302, headers={"Location": ELSEWHERE + "/steal"})
    answer = make_session(total=0).get(f"{BASE}/somewhere", allow_redirects=True,
                                       headers={"Authorization": "Bearer bearer-token-value"})
    assert answer.status_code == 302 and nothing_reached_elsewhere(mocked)


@pytest.fixture
def sandbox():
    with AcumaticaSandbox() as running:
        yield running


def test_the_sandbox_token_endpoint_redirecting_elsewhere_is_refused_and_the_other_host_sees_nothing(sandbox):
    with AcumaticaSandbox() as other:  # the host the misconfigured proxy points to, listening for credentials
        sandbox.redirect_token_endpoint(f"{other.url}/identity/connect/token")
        user, password = next(iter(sandbox.users.items()))
        obtain = acumatica_token_obtainer(sandbox.url, make_session(total=0))
        with pytest.raises(ConfigurationError, match="redirecting to 127.0.0.1"):
            obtain({"client_id": sandbox.client_id, "client_secret": sandbox.client_secret, "username": user,
                    "password": password})
        assert other.requests_log == []
    sandbox.redirect_token_endpoint(None)
    assert obtain({"client_id": sandbox.client_id, "client_secret": sandbox.client_secret, "username": user,
                   "password": password})["access_token"]


@pytest.mark.parametrize("location", [
    "http://acme.example.com/entity/Default/24.200.001/Bill/ReleaseBill/status/1",   # downgraded to http
    "https://acme.example.com:8443/entity/Default/24.200.001/Bill/ReleaseBill/status/1",  # another port
    "https://evil.example/entity/Default/24.200.001/Bill/ReleaseBill/status/1",  # another host
    "//evil.example/status/1",  # scheme-relative: another host
])
def test_an_action_location_off_the_instances_origin_is_never_followed_with_the_token(location):
    client = AcumaticaClient(base_url=BASE, endpoint_version="24.200.001", tokens=FixedTokens(),
                             session=make_session(total=0), sleep=lambda seconds: None)
    client._version_checked = True  # the version check is another test's subject
    with responses.RequestsMock() as mocked:
        mocked.add(responses.POST, f"{BASE}/entity/Default/24.200.001/Bill/ReleaseBill", status=202,
                   headers={"Location": location})
        with pytest.raises(PermanentError, match="another host, scheme or port"):
            client.invoke_action(DocumentKey("Bill", "Bill", "000101"), "ReleaseBill")
        assert len(mocked.calls) == 1


def test_an_action_location_on_the_instance_is_followed():
    client = AcumaticaClient(base_url=BASE, endpoint_version="24.200.001", tokens=FixedTokens(),
                             session=make_session(total=0), sleep=lambda seconds: None)
    client._version_checked = True
    with responses.RequestsMock() as mocked:
        mocked.add(responses.POST, f"{BASE}/entity/Default/24.200.001/Bill/ReleaseBill", status=202,
                   headers={"Location": "/entity/Default/24.200.001/Bill/ReleaseBill/status/abc"})
        mocked.add(responses.GET, f"{BASE}/entity/Default/24.200.001/Bill/ReleaseBill/status/abc", status=204)
        mocked.add(responses.GET, f"{BASE}/entity/Default/24.200.001/Bill/Bill/000101",
                   json={"Type": {"value": "Bill"}, "ReferenceNbr": {"value": "000101"}, "Status": {"value": "Open"}})
        assert client.invoke_action(DocumentKey("Bill", "Bill", "000101"), "ReleaseBill").status == "Open"
