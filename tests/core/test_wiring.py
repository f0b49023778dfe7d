"""Configuration reaches the adapters the handlers build."""

from __future__ import annotations


def test_the_acumatica_request_budget_reaches_the_client_from_the_environment():
    from connector.wiring import Wiring

    env = {"ACUMATICA_URL": "https://acme.example.com", "JIRA_PROJECT_KEY": "AP",
           "JIRA_EXTERNAL_ID_FIELD": "customfield_10050", "ACUMATICA_SECRET_ARN": "arn:secret", "TABLE_NAME": "t",
           "ACUMATICA_REQUESTS_PER_MINUTE": "60"}
    assert Wiring(env).acumatica._limiter._per_minute == 60
    assert Wiring({**env, "ACUMATICA_REQUESTS_PER_MINUTE": "0"}).acumatica._limiter._per_minute is None


def test_approval_actions_per_entity_and_the_reopen_status_reach_the_contexts():
    import pytest

    from connector.config import Settings
    from connector.errors import ConfigurationError

    env = {"ACUMATICA_URL": "https://acme.example.com", "JIRA_PROJECT_KEY": "AP",
           "JIRA_EXTERNAL_ID_FIELD": "customfield_10050", "APPROVE_ACTION_NAMES": '{"Bill": "approve"}',
           "JIRA_REOPEN_STATUS": "Reopened", "WEBHOOK_SECRET_ARN": "arn:webhook"}
    settings = Settings.from_env(env)
    assert settings.approve_actions == {"Bill": "approve"} and settings.jira_reopen_status == "Reopened"
    assert settings.webhook_secret_id == "arn:webhook"
    for bad in ('{"Invoice": "approve"}', '["approve"]', '{"Bill": ""}', "{nope"):
        with pytest.raises(ConfigurationError, match="APPROVE_ACTION_NAMES"):
            Settings.from_env({**env, "APPROVE_ACTION_NAMES": bad})


def test_exception_rules_reach_the_poller_the_worker_and_the_return_flow_and_a_bad_value_fails_at_start():
    import json

    import pytest

    from connector.errors import ConfigurationError
    from connector.wiring import Wiring

    env = {"ACUMATICA_URL": "https://acme.example.com", "JIRA_PROJECT_KEY": "AP",
           "JIRA_EXTERNAL_ID_FIELD": "customfield_10050",
           "EXCEPTION_RULES": json.dumps({"Check": {"remove": ["Pending Approval"], "add": ["Reserved"]}})}
    wiring = Wiring(env)
    rules = wiring.settings.exception_rules
    assert [r.name for r in rules["Check"]] == ["failed-validation", "rejected", "on-hold", "status"]
    def names(table):
        return {entity: [rule.name for rule in entity_rules] for entity, entity_rules in table.items()}

    assert names(wiring.poll_options.rules) == names(rules)
    with pytest.raises(ConfigurationError, match="Check: status 'Pending approval' is not a Check status label"):
        Wiring({**env, "EXCEPTION_RULES": '{"Check": {"add": ["Pending approval"]}}'}).settings
    with pytest.raises(ConfigurationError, match="ExceptionRules.*not valid JSON"):
        Wiring({**env, "EXCEPTION_RULES": "{Check"}).settings


def test_an_invocation_routes_on_one_version_and_the_next_one_on_the_new_version(monkeypatch):
    """The worker's contexts are built from the tables read at the start of the invocation; an import lands in the
    next invocation after the cache's age, with contexts rebuilt, and nothing is rebuilt while nothing changed."""
    import boto3
    from moto import mock_aws

    import connector.table_versions
    from connector.table_store import DynamoTableVersions
    from connector.timings import TABLES_CACHE_SECONDS
    from connector.wiring import Wiring
    from tests.core.conftest import table_definition

    clock = [1000.0]
    monkeypatch.setattr(connector.table_versions, "monotonic", lambda: clock[0])
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName="t", BillingMode="PAY_PER_REQUEST", **table_definition())
        versions = DynamoTableVersions(client, "t")
        env = {"ACUMATICA_URL": "https://acme.example.com", "JIRA_PROJECT_KEY": "AP",
               "JIRA_EXTERNAL_ID_FIELD": "customfield_10050", "TABLE_NAME": "t", "OWNER_MAP": '{"*": "acc-param"}'}
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        wiring = Wiring(env)
        wiring.refresh_tables()
        first = wiring.poll_options
        assert wiring.settings_in_effect().owner_map == {"*": "acc-param"} and wiring.poll_options is first
        versions.publish({"OwnerMap": {"*": "acc-version"}}, expected=None, by="ops", action="import", effect={})
        clock[0] += TABLES_CACHE_SECONDS + 1
        assert wiring.settings_in_effect().owner_map == {"*": "acc-param"}  # the invocation keeps what it read
        wiring.refresh_tables()  # the next invocation
        assert wiring.settings_in_effect().owner_map == {"*": "acc-version"} and wiring.poll_options is not first
        assert wiring.settings.owner_map == {"*": "acc-param"}  # what the container started with
        second = wiring.poll_options
        clock[0] += TABLES_CACHE_SECONDS + 1
        wiring.refresh_tables()  # the pointer read again, nothing moved: nothing is rebuilt
        assert wiring.poll_options is second
