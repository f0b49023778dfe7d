"""template.yaml itself: lint-clean, the public parameters and outputs of docs/contract.md, least privilege, buildability."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import decode

from connector.documents import PROFILES

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
FUNCTIONS = ("PollerFunction", "WorkerFunction", "WebhookFunction", "MaintenanceFunction")

CONTRACT_PARAMETERS = {
    "AcumaticaUrl": None,
    "AcumaticaEndpointVersion": "24.200.001",
    "JiraApiUrl": "https://api.atlassian.com",
    "JiraAuthUrl": "https://auth.atlassian.com",
    "JiraProjectKey": None,
    "JiraIssueType": "Task",
    "JiraExternalIdField": None,
    "JiraResolvedStatuses": "",
    "DocumentTypes": "Bill,PurchaseOrder,Check",
    "PollSchedule": "rate(5 minutes)",
    "MaintenanceSchedule": "rate(1 day)",
    "MaxReceiveCount": 5,
    "JiraSiteUrl": "",
    "JiraClearedStatus": "",
    "OwnerMap": "{}",
    "ExceptionRules": "{}",
    "ApproveActionName": "Approve",
    "PushSecretHeader": "X-Connector-Secret",
    "PollOverlapMinutes": 10,
    "WorkerMaxConcurrency": 2,
    "LogLevel": "INFO",
    "AlarmEmail": "",
}
CONTRACT_OUTPUTS = {"ApiUrl", "WorkQueueUrl", "DeadLetterQueueUrl", "TableName", "AcumaticaSecretArn", "JiraSecretArn",
                    "WebhookSecretArn"}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    body, problems = decode(str(TEMPLATE))
    assert not problems
    return body


def _function(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]["Properties"]


def _pattern(template: dict[str, Any], name: str) -> str:
    return template["Parameters"][name]["AllowedPattern"]


def test_template_is_cfn_lint_clean() -> None:
    matches = lint_file(TEMPLATE, ManualArgs(regions=["us-east-1"]))
    assert [str(m) for m in matches] == []


def test_every_contract_parameter_exists_with_its_default(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    for name, default in CONTRACT_PARAMETERS.items():
        assert name in parameters, name
        if default is None:
            assert "Default" not in parameters[name], f"{name} must be required"
        else:
            assert str(parameters[name]["Default"]) == str(default), name


def test_every_contract_output_exists(template: dict[str, Any]) -> None:
    assert CONTRACT_OUTPUTS <= set(template["Outputs"])


@pytest.mark.parametrize("value, accepted", [("customfield_10050", True), ("customfield_", False), ("summary", False)])
def test_external_id_field_pattern_accepts_only_custom_field_ids(template: dict[str, Any], value: str,
                                                                 accepted: bool) -> None:
    assert bool(re.fullmatch(_pattern(template, "JiraExternalIdField"), value)) is accepted


def test_document_types_pattern_accepts_every_supported_entity_and_nothing_else(template: dict[str, Any]) -> None:
    pattern = _pattern(template, "DocumentTypes")
    assert re.fullmatch(pattern, ",".join(PROFILES))
    assert re.fullmatch(pattern, "Bill, Check")
    for entity in PROFILES:
        assert re.fullmatch(pattern, entity)
    assert not re.fullmatch(pattern, "Bill,Invoice")


def test_worker_concurrency_is_bounded_by_a_parameter_with_sqs_floor(template: dict[str, Any]) -> None:
    event = _function(template, "WorkerFunction")["Events"]["WorkQueueMessages"]["Properties"]
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "WorkerMaxConcurrency"}
    assert template["Parameters"]["WorkerMaxConcurrency"]["MinValue"] == 2


def test_poll_runs_never_overlap(template: dict[str, Any]) -> None:
    assert _function(template, "PollerFunction")["ReservedConcurrentExecutions"] == 1


def test_work_queue_visibility_covers_six_worker_timeouts(template: dict[str, Any]) -> None:
    visibility = template["Resources"]["WorkQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * _function(template, "WorkerFunction")["Timeout"]


@pytest.mark.parametrize("logical_id, event_name, job", [("PollerFunction", "PollTick", "poll"),
                                                          ("MaintenanceFunction", "MaintenanceTick", "maintenance"),
                                                          ("MaintenanceFunction", "ResolutionSweepTick", "sweep")])
def test_schedules_omit_names_and_name_their_job(template: dict[str, Any], logical_id: str, event_name: str,
                                                 job: str) -> None:
    event = _function(template, logical_id)["Events"][event_name]
    assert event["Type"] == "ScheduleV2"
    assert event["Properties"]["OmitName"] is True
    assert event["Properties"]["Input"] == f'{{"job": "{job}"}}'


def test_http_api_routes_match_the_contract(template: dict[str, Any]) -> None:
    routes = {(e["Properties"]["Method"], e["Properties"]["Path"])
              for e in _function(template, "WebhookFunction")["Events"].values()}
    assert routes == {("POST", "/jira/webhook"), ("POST", "/acumatica/push")}


def _hand_written_statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (logical_id, statement)
        for logical_id in FUNCTIONS
        for policy in _function(template, logical_id)["Policies"]
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
    ]


def test_hand_written_statements_name_their_resources_and_actions(template: dict[str, Any]) -> None:
    statements = _hand_written_statements(template)
    assert statements
    for logical_id, statement in statements:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all(not isinstance(r, str) or "*" not in r for r in resources), logical_id
        assert all("*" not in a for a in actions), logical_id


def test_policy_templates_are_scoped_to_this_stacks_resources(template: dict[str, Any]) -> None:
    resources = set(template["Resources"])
    for logical_id in FUNCTIONS:
        for policy in _function(template, logical_id)["Policies"]:
            if isinstance(policy, dict) and "Statement" not in policy:
                ((name, arguments),) = policy.items()
                for value in arguments.values():
                    target = value.get("Ref") or value.get("Fn::GetAtt", [None])[0]
                    assert target in resources, f"{logical_id}: {name} is not scoped to a resource of the stack"


def _secret_access(template: dict[str, Any], logical_id: str) -> tuple[set[str], set[str]]:
    reads: set[str] = set()
    writes: set[str] = set()
    for policy in _function(template, logical_id)["Policies"]:
        if "AWSSecretsManagerGetSecretValuePolicy" in policy:
            reads.add(policy["AWSSecretsManagerGetSecretValuePolicy"]["SecretArn"]["Ref"])
    for policy in _function(template, logical_id)["Policies"]:
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            if statement["Action"] == "secretsmanager:PutSecretValue":
                targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                writes |= {t["Ref"] for t in targets}
    return reads, writes


@pytest.mark.parametrize("logical_id, reads, writes", [
    ("PollerFunction", {"AcumaticaSecret", "ParameterTables"}, {"AcumaticaSecret"}),
    ("WorkerFunction", {"AcumaticaSecret", "JiraSecret", "ParameterTables"}, {"AcumaticaSecret", "JiraSecret"}),
    ("WebhookFunction", {"WebhookSecret"}, set()),
    ("MaintenanceFunction", {"AcumaticaSecret", "JiraSecret", "WebhookSecret"},
     {"AcumaticaSecret", "JiraSecret", "WebhookSecret"}),
])
def test_each_function_reaches_only_the_secrets_it_needs(template: dict[str, Any], logical_id: str,
                                                         reads: set[str], writes: set[str]) -> None:
    assert _secret_access(template, logical_id) == (reads, writes)


def test_runtime_matches_the_layer_wheels_the_makefile_fetches(template: dict[str, Any]) -> None:
    runtime = template["Globals"]["Function"]["Runtime"]
    makefile = (ROOT / "Makefile").read_text()
    version = re.search(r"^LAMBDA_PYTHON_VERSION := (\S+)$", makefile, re.MULTILINE).group(1)
    assert runtime == f"python{version}"
    assert template["Resources"]["ConnectorLayer"]["Properties"]["CompatibleRuntimes"] == [runtime]


def test_every_function_and_the_layer_have_a_makefile_build_target(template: dict[str, Any]) -> None:
    makefile = (ROOT / "Makefile").read_text()
    for logical_id in (*FUNCTIONS, "ConnectorLayer"):
        assert template["Resources"][logical_id]["Metadata"]["BuildMethod"] == "makefile"
        assert re.search(rf"^(\S+ )*build-{logical_id}( \S+)*:", makefile, re.MULTILINE), logical_id


# What each SAM policy template grants (docs.aws.amazon.com/serverless-application-model, policy template list).
POLICY_TEMPLATE_ACTIONS = {
    "DynamoDBCrudPolicy": {"dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Scan",
                           "dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem", "dynamodb:BatchGetItem",
                           "dynamodb:DescribeTable", "dynamodb:ConditionCheckItem"},
    "SQSSendMessagePolicy": {"sqs:SendMessage*"},
    "AWSSecretsManagerGetSecretValuePolicy": {"secretsmanager:GetSecretValue"},
}
CRUD = POLICY_TEMPLATE_ACTIONS["DynamoDBCrudPolicy"]
READ_SECRET, WRITE_SECRET = "secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"
GRANTS = {
    "PollerFunction": {"ConnectorTable": CRUD, "WorkQueue": {"sqs:SendMessage*"},
                       "AcumaticaSecret": {READ_SECRET, WRITE_SECRET}, "ParameterTables": {READ_SECRET}},
    # ChangeMessageVisibility: a long Retry-After puts the record back for that long; the DLQ takes a permanent
    # failure at once.
    # InvokeFunction: a push too large to queue row by row asks the poller to poll now (connector.pollnow).
    "WorkerFunction": {"ConnectorTable": CRUD, "WorkQueue": {"sqs:SendMessage*", "sqs:ChangeMessageVisibility"},
                       "DeadLetterQueue": {"sqs:SendMessage*"}, "PollerFunction": {"lambda:InvokeFunction"},
                       "AcumaticaSecret": {READ_SECRET, WRITE_SECRET}, "JiraSecret": {READ_SECRET, WRITE_SECRET},
                       "ParameterTables": {READ_SECRET}},
    "WebhookFunction": {"ConnectorTable": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                                           "dynamodb:DeleteItem"},
                        "WorkQueue": {"sqs:SendMessage*"}, "WebhookSecret": {READ_SECRET}},
    "MaintenanceFunction": {"ConnectorTable": CRUD, "WorkQueue": {"sqs:SendMessage*", "sqs:GetQueueAttributes"},
                            "DeadLetterQueue": {"sqs:GetQueueAttributes"},
                            "AcumaticaSecret": {READ_SECRET, WRITE_SECRET}, "JiraSecret": {READ_SECRET, WRITE_SECRET},
                            "WebhookSecret": {READ_SECRET, WRITE_SECRET}},
}
"""Every function held to its list: resource (logical id) -> the actions it may perform there, nothing more."""


def _target(value: Any) -> str:
    """The logical id a policy argument or statement resource names (``!Ref X``, ``!GetAtt X.Arn``)."""
    if isinstance(value, dict) and "Ref" in value:
        return value["Ref"]
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        attribute = value["Fn::GetAtt"]
        return attribute[0] if isinstance(attribute, list) else attribute.split(".")[0]
    raise AssertionError(f"policy resource {value!r} names no resource of the stack")


def _grants(template: dict[str, Any], logical_id: str) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for policy in _function(template, logical_id)["Policies"]:
        if "Statement" in policy:
            for statement in policy["Statement"]:
                assert statement["Effect"] == "Allow"
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                resources = statement["Resource"] if isinstance(statement["Resource"], list) \
                    else [statement["Resource"]]
                for resource in resources:
                    grants.setdefault(_target(resource), set()).update(actions)
            continue
        ((name, arguments),) = policy.items()
        (argument,) = arguments.values()
        grants.setdefault(_target(argument), set()).update(POLICY_TEMPLATE_ACTIONS[name])
    return grants


@pytest.mark.parametrize("logical_id", FUNCTIONS)
def test_each_function_is_held_to_its_action_list(template: dict[str, Any], logical_id: str) -> None:
    assert _grants(template, logical_id) == GRANTS[logical_id]


def test_the_internet_facing_function_cannot_read_credentials_or_tokens(template: dict[str, Any]) -> None:
    grants = _grants(template, "WebhookFunction")
    assert "AcumaticaSecret" not in grants and "JiraSecret" not in grants
    assert not any(action.startswith("secretsmanager:") and action != READ_SECRET
                   for actions in grants.values() for action in actions)
    assert "dynamodb:Scan" not in grants["ConnectorTable"] and "dynamodb:Query" not in grants["ConnectorTable"]
    environment = {**template["Globals"]["Function"]["Environment"]["Variables"],
                   **_function(template, "WebhookFunction").get("Environment", {}).get("Variables", {})}
    assert environment["WEBHOOK_SECRET_ARN"] == {"Ref": "WebhookSecret"}


def test_the_webhook_functions_table_access_is_limited_to_its_own_records(template: dict[str, Any]) -> None:
    """Item rights (delete included) only on the idempotency records' static partition: never a document's state,
    claims or audit, cursors, locks, the issue ledger or the recent-ids list (the worker records "queued")."""
    (policy,) = [p for p in _function(template, "WebhookFunction")["Policies"] if "Statement" in p]
    conditions = {statement["Sid"]: statement.get("Condition") for statement in policy["Statement"]
                  if any(str(a).startswith("dynamodb:") for a in statement["Action"])}
    assert conditions == {"DeliveryIdempotencyRecords": {
        "ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["IDEMPOTENCY#deliveries"]}}}



def test_the_resolution_sweep_runs_every_resolution_sweep_minutes_by_default_15(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["ResolutionSweepMinutes"]
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 15, 2)
    schedule = _function(template, "MaintenanceFunction")["Events"]["ResolutionSweepTick"]["Properties"]
    assert schedule["ScheduleExpression"] == {"Fn::Sub": "rate(${ResolutionSweepMinutes} minutes)"}


def test_resolutions_no_delivery_announced_raise_an_alarm(template: dict[str, Any]) -> None:
    alarm = template["Resources"]["UndeliveredResolutionsAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AcumaticaJiraConnector", "UndeliveredResolutions")
    assert (alarm["ComparisonOperator"], alarm["Threshold"], alarm["TreatMissingData"]) == (
        "GreaterThanThreshold", 0, "notBreaching")


def test_only_the_worker_gets_the_approval_reason(template: dict[str, Any]) -> None:
    assert "APPROVAL_REASON" not in template["Globals"]["Function"]["Environment"]["Variables"]
    assert _function(template, "WorkerFunction")["Environment"]["Variables"]["APPROVAL_REASON"] == {
        "Ref": "ApprovalReason"}


def test_every_template_parameter_can_be_given_locally_as_its_upper_snake_case_variable(template):
    """docs/contract.md: every parameter has a local override, spelled as the parameter in upper snake case."""
    from connector_local.stack import PARAMETER_ENV

    assert set(PARAMETER_ENV) == set(template["Parameters"])
    for parameter, variable in PARAMETER_ENV.items():
        assert variable == re.sub(r"(?<=[a-z])(?=[A-Z])", "_", parameter).upper(), parameter
