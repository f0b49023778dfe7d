"""The embedded local stack builds moto's resources from template.yaml, not from a second hand-written list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from cfnlint.decode import decode

from connector.config import Settings
from connector.errors import ConfigurationError
from connector_local.aws import LocalAws

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("PollerFunction", "WorkerFunction", "WebhookFunction", "MaintenanceFunction")
PARAMETERS = {
    "AcumaticaUrl": "http://127.0.0.1:8001",
    "JiraProjectKey": "AP",
    "JiraExternalIdField": "customfield_10050",
    "MaxReceiveCount": "3",
}


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAws]:
    with LocalAws.start(ROOT / "template.yaml", PARAMETERS) as local:
        yield local


def test_table_has_the_template_key_schema_ttl_and_recovery(aws: LocalAws) -> None:
    dynamodb = aws.client("dynamodb")
    name = aws.outputs["TableName"]
    table = dynamodb.describe_table(TableName=name)["Table"]
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {("PK", "HASH"), ("SK", "RANGE")}
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    backups = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_work_queue_is_fifo_and_redrives_to_the_dlq_after_max_receive_count(aws: LocalAws) -> None:
    sqs = aws.client("sqs")
    work = sqs.get_queue_attributes(QueueUrl=aws.outputs["WorkQueueUrl"], AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=aws.outputs["DeadLetterQueueUrl"], AttributeNames=["All"])["Attributes"]
    assert work["FifoQueue"] == dlq["FifoQueue"] == "true"
    assert work["ContentBasedDeduplication"] == "false"
    assert work["DeduplicationScope"] == "messageGroup"
    assert work["VisibilityTimeout"] == "720"
    assert json.loads(work["RedrivePolicy"]) == {"deadLetterTargetArn": dlq["QueueArn"], "maxReceiveCount": 3}
    assert aws.max_receive_count == 3
    assert aws.outputs["WorkQueueUrl"].endswith("/local-work.fifo")


def test_dlq_redrive_allow_policy_names_the_real_work_queue_arn(aws: LocalAws) -> None:
    # moto ignores RedriveAllowPolicy, so check what the template resolves to against the ARN moto assigned.
    template, _ = decode(str(ROOT / "template.yaml"))
    policy = aws.resolve(template["Resources"]["DeadLetterQueue"]["Properties"]["RedriveAllowPolicy"])
    work_arn = aws.client("sqs").get_queue_attributes(QueueUrl=aws.outputs["WorkQueueUrl"],
                                                      AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert policy == {"redrivePermission": "byQueue", "sourceQueueArns": [work_arn]}


def test_message_received_max_receive_count_times_lands_in_the_dlq(aws: LocalAws) -> None:
    sqs = aws.client("sqs")
    work, dlq = aws.outputs["WorkQueueUrl"], aws.outputs["DeadLetterQueueUrl"]
    sqs.send_message(QueueUrl=work, MessageBody='{"kind": "sync"}', MessageGroupId="Bill:Bill:000123",
                     MessageDeduplicationId="poison")
    for _ in range(aws.max_receive_count):
        assert sqs.receive_message(QueueUrl=work, VisibilityTimeout=0).get("Messages")
    assert not sqs.receive_message(QueueUrl=work, VisibilityTimeout=0).get("Messages")
    moved = sqs.receive_message(QueueUrl=dlq).get("Messages", [])
    assert [m["Body"] for m in moved] == ['{"kind": "sync"}']
    sqs.delete_message(QueueUrl=dlq, ReceiptHandle=moved[0]["ReceiptHandle"])


@pytest.mark.parametrize("output, keys", [
    ("AcumaticaSecretArn", {"client_id", "client_secret", "username", "password", "refresh_token", "push_secret"}),
    ("JiraSecretArn", {"client_id", "client_secret", "refresh_token", "cloud_id", "webhook_secret"}),
    ("WebhookSecretArn", {"webhook_secret", "client_secret", "push_secret"}),
])
def test_secrets_hold_the_template_placeholders(aws: LocalAws, output: str, keys: set[str]) -> None:
    secret = aws.client("secretsmanager").get_secret_value(SecretId=aws.outputs[output])
    assert set(json.loads(secret["SecretString"])) == keys


def test_outputs_resolve_locally_except_the_api_url(aws: LocalAws) -> None:
    assert set(aws.outputs) == {"WorkQueueUrl", "DeadLetterQueueUrl", "TableName", "AcumaticaSecretArn",
                                "JiraSecretArn", "WebhookSecretArn"}
    assert all(value.startswith(("http://127.0.0.1", "arn:aws:", "local-")) for value in aws.outputs.values())


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_function_environment_is_fully_resolved_and_parses_as_settings(aws: LocalAws, logical_id: str) -> None:
    environment = aws.function_environment(logical_id)
    assert all(isinstance(v, str) for v in environment.values())
    assert environment["TABLE_NAME"] == aws.outputs["TableName"]
    assert environment["WORK_QUEUE_URL"] == aws.outputs["WorkQueueUrl"]
    assert environment["JIRA_SECRET_ARN"] == aws.outputs["JiraSecretArn"]
    assert environment["POWERTOOLS_SERVICE_NAME"] == "acumatica-jira-connector"
    settings = Settings.from_env(environment)
    assert settings.acumatica_url == PARAMETERS["AcumaticaUrl"]
    assert settings.document_types == ("Bill", "PurchaseOrder", "Check")


def test_only_maintenance_gets_the_webhook_url(aws: LocalAws) -> None:
    assert aws.function_environment("MaintenanceFunction")["WEBHOOK_URL"].endswith("/jira/webhook")
    assert "WEBHOOK_URL" not in aws.function_environment("WebhookFunction")


@pytest.mark.parametrize("logical_id, directory, timeout, memory", [
    ("PollerFunction", "poller", 300, 512),
    ("WorkerFunction", "worker", 120, 512),
    ("WebhookFunction", "webhook", 10, 256),
    ("MaintenanceFunction", "maintenance", 120, 256),
])
def test_function_settings_come_from_the_template(aws: LocalAws, logical_id: str, directory: str, timeout: int,
                                                  memory: int) -> None:
    settings = aws.function_settings(logical_id)
    assert settings["handler_path"] == str(ROOT / "functions" / directory / "app.py")
    assert settings["handler_name"] == "handler"
    assert (settings["timeout"], settings["memory"]) == (timeout, memory)
    assert settings["events"]


def test_schedule_events_resolve_to_their_expression_and_input(aws: LocalAws) -> None:
    (event,) = aws.function_settings("PollerFunction")["events"].values()
    properties = aws.resolve(event["Properties"])
    assert properties["ScheduleExpression"] == "rate(5 minutes)"
    assert json.loads(properties["Input"]) == {"job": "poll"}


def test_clients_use_the_moto_endpoint(aws: LocalAws) -> None:
    assert aws.client("sqs").meta.endpoint_url == aws.endpoint_url
    assert aws.aws_environment()["AWS_ENDPOINT_URL"] == aws.endpoint_url


def test_unknown_function_is_refused(aws: LocalAws) -> None:
    with pytest.raises(KeyError):
        aws.function_environment("ConnectorTable")


@pytest.mark.parametrize("parameters, problem", [
    ({"JiraProjectKey": "AP", "JiraExternalIdField": "customfield_1"}, "AcumaticaUrl is required"),
    ({**PARAMETERS, "JiraExternalIdField": "summary"}, "JiraExternalIdField must look like customfield_10050"),
    ({**PARAMETERS, "WorkerMaxConcurrency": "1"}, "WorkerMaxConcurrency must be at least 2"),
    ({**PARAMETERS, "LogLevel": "TRACE"}, "LogLevel must be one of"),
    ({**PARAMETERS, "JiraProjcetKey": "AP"}, "unknown template parameters: JiraProjcetKey"),
])
def test_invalid_parameters_are_refused_before_anything_starts(parameters: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        LocalAws.start(ROOT / "template.yaml", parameters)
