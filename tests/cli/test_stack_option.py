"""``--stack NAME``: the resources of the named stack, whatever the shell still exports, and its parameters unless
the shell sets one."""

from __future__ import annotations

import boto3
import pytest

from connector_cli.main import _environment

DESCRIBED = {
    "Outputs": [{"OutputKey": "TableName", "OutputValue": "prod-ConnectorTable"},
                {"OutputKey": "WorkQueueUrl", "OutputValue": "https://sqs.eu-west-1.amazonaws.com/1/prod-work.fifo"},
                {"OutputKey": "JiraSecretArn", "OutputValue": "arn:aws:secretsmanager:eu-west-1:1:secret:prod-Jira"},
                {"OutputKey": "DashboardUrl", "OutputValue": "https://console.aws.amazon.com/cloudwatch/dashboard"}],
    "Parameters": [{"ParameterKey": "AcumaticaUrl", "ParameterValue": "https://acme.acumatica.com"},
                   {"ParameterKey": "OwnerMap", "ParameterValue": '{"buyer.kim": "5b10ac8d82e05b22cc7d4ef5"}'},
                   {"ParameterKey": "AlarmEmail", "ParameterValue": ""}],
}


@pytest.fixture
def asked(monkeypatch) -> list[str]:
    """CloudFormation answering ``DESCRIBED`` for any stack; the names asked for, in order."""
    names: list[str] = []

    class CloudFormation:
        def describe_stacks(self, StackName: str) -> dict:  # noqa: N803 - boto3's keyword
            names.append(StackName)
            return {"Stacks": [DESCRIBED]}

    monkeypatch.setattr(boto3, "client", lambda service, **_: CloudFormation() if service == "cloudformation"
                        else pytest.fail(f"--stack asked {service}"))
    return names


def test_the_named_stacks_resources_replace_what_the_shell_still_exports(asked, monkeypatch):
    monkeypatch.setenv("TABLE_NAME", "staging-ConnectorTable")  # left from a session against another stack
    monkeypatch.delenv("WORK_QUEUE_URL", raising=False)
    env = _environment("prod")
    assert asked == ["prod"]
    assert env["TABLE_NAME"] == "prod-ConnectorTable"
    assert env["WORK_QUEUE_URL"] == "https://sqs.eu-west-1.amazonaws.com/1/prod-work.fifo"
    assert env["JIRA_SECRET_ARN"].endswith(":prod-Jira")


def test_the_stacks_parameters_fill_in_and_a_shells_own_setting_wins(asked, monkeypatch):
    monkeypatch.delenv("ACUMATICA_URL", raising=False)
    monkeypatch.delenv("ALARM_EMAIL", raising=False)
    monkeypatch.setenv("OWNER_MAP", '{"buyer.kim": "5b10-tried-here"}')  # a table tried against the stack first
    env = _environment("prod")
    assert env["ACUMATICA_URL"] == "https://acme.acumatica.com"
    assert env["OWNER_MAP"] == '{"buyer.kim": "5b10-tried-here"}'
    assert "ALARM_EMAIL" not in env  # an empty parameter sets nothing


def test_without_stack_the_environment_is_the_shells(asked, monkeypatch):
    monkeypatch.setenv("TABLE_NAME", "local-ConnectorTable")
    assert _environment(None)["TABLE_NAME"] == "local-ConnectorTable" and asked == []
