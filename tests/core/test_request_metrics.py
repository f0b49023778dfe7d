"""The dashboard's view of what the connector costs each system: requests, 429s and token grants per invocation."""

from __future__ import annotations

import responses

from connector.wiring import REQUEST_METRICS, Wiring

ENV = {"ACUMATICA_URL": "https://acme.acumatica.com", "JIRA_PROJECT_KEY": "AP",
       "JIRA_EXTERNAL_ID_FIELD": "customfield_10050", "JIRA_API_URL": "https://api.atlassian.com"}


@responses.activate
def test_requests_and_429s_are_counted_per_system_and_start_again_each_invocation():
    wiring = Wiring(ENV)
    responses.get("https://acme.acumatica.com/entity", json=[])
    responses.get("https://api.atlassian.com/ex/jira/c/rest/api/3/myself", status=429, headers={"Retry-After": "0"})
    responses.get("https://api.atlassian.com/ex/jira/c/rest/api/3/myself", json={})
    responses.get("https://elsewhere.example.com/", json={})
    wiring.http.get("https://acme.acumatica.com/entity", timeout=5)
    wiring.http.get("https://acme.acumatica.com/entity", timeout=5)
    assert wiring.http.get("https://api.atlassian.com/ex/jira/c/rest/api/3/myself", timeout=5).status_code == 200
    wiring.http.get("https://elsewhere.example.com/", timeout=5)  # no system of ours: not counted

    counts = wiring.request_metrics()
    assert set(counts) == set(REQUEST_METRICS)
    assert counts["AcumaticaRequests"] == 2 and counts["AcumaticaThrottled"] == 0
    assert counts["JiraRequests"] == 2 and counts["JiraThrottled"] == 1  # the 429 was waited out and retried
    assert counts["AcumaticaTokenRefreshes"] == counts["JiraTokenRefreshes"] == 0
    assert all(value == 0 for value in wiring.request_metrics().values())


def test_token_grants_are_reported_once_each():
    wiring = Wiring(ENV)

    class Secret:
        value = {"client_id": "c", "client_secret": "s"}

        def read(self):
            return dict(self.value)

        def write(self, value):
            self.value = dict(value)

    class Lock:
        def acquire(self, *args):
            return True

        def release(self, *args):
            pass

        def holds(self, *args):
            return True

    from connector.tokens import RotatingTokens

    tokens = RotatingTokens(name="jira", secrets=Secret(), lock=Lock(),
                            obtain=lambda secret: {"access_token": "a", "expires_at": 4e9, "refresh_token": "r"})
    wiring.__dict__["jira_tokens"] = tokens  # what the cached property holds once a container has built it
    tokens.access_token()
    assert wiring.request_metrics()["JiraTokenRefreshes"] == 1
    assert wiring.request_metrics()["JiraTokenRefreshes"] == 0
