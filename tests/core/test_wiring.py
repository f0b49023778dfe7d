"""Configuration reaches the adapters the handlers build."""

from __future__ import annotations


def test_the_acumatica_request_budget_reaches_the_client_from_the_environment():
    from connector.wiring import Wiring

    env = {"ACUMATICA_URL": "https://acme.example.com", "JIRA_PROJECT_KEY": "AP",
           "JIRA_EXTERNAL_ID_FIELD": "customfield_10050", "ACUMATICA_SECRET_ARN": "arn:secret", "TABLE_NAME": "t",
           "ACUMATICA_REQUESTS_PER_MINUTE": "60"}
    assert Wiring(env).acumatica._limiter._per_minute == 60
    assert Wiring({**env, "ACUMATICA_REQUESTS_PER_MINUTE": "0"}).acumatica._limiter._per_minute is None
