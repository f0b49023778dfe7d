"""The five decision parameters (docs/decisions.md) in template.yaml: their names and defaults, a MaxLength each, on
the worker's environment only, accepted by the parsers at their defaults, and small enough that the worker's whole
environment stays under Lambda's 4 KB with every one of them at its MaxLength."""

from __future__ import annotations

from typing import Any

import pytest
from cfnlint.decode import decode

from connector.config import Settings
from connector_local.stack import PARAMETER_ENV
from tests.infra.test_template import FUNCTIONS, TEMPLATE

DECISION_PARAMETERS = {
    "ApprovingResolutions": ("APPROVING_RESOLUTIONS", "Done, Fixed, Resolved, Approved"),
    "DecliningStatuses": ("DECLINING_STATUSES", "Won't Do, Rejected, Declined, Canceled, Cancelled, Duplicate"),
    "NonPersonAccounts": ("NON_PERSON_ACCOUNTS", "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"),
    "DeclineAction": ("DECLINE_ACTION", "{}"),
    "DecisionAuthority": ("DECISION_AUTHORITY", "{}"),
}
LAMBDA_ENVIRONMENT_LIMIT = 4096
"""Lambda refuses a function whose environment variables (names and values) exceed 4 KB in all."""
RESOURCE_VALUE_LENGTH = 128
"""Room for what a resource reference resolves to (an ARN, a queue URL of a long stack name)."""
REQUIRED_VALUE_LENGTH = 64
"""Room for a parameter without a default (a URL, a project key, a field id)."""


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    body, problems = decode(str(TEMPLATE))
    assert not problems
    return body


def _variables(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return template["Resources"][logical_id]["Properties"].get("Environment", {}).get("Variables", {})


@pytest.mark.parametrize("parameter", DECISION_PARAMETERS)
def test_each_decision_parameter_has_its_name_default_and_a_max_length(template, parameter):
    variable, default = DECISION_PARAMETERS[parameter]
    declared = template["Parameters"][parameter]
    assert declared["Default"] == default and declared["Description"]
    assert 0 < declared["MaxLength"] <= 512 and len(default) <= declared["MaxLength"]
    assert PARAMETER_ENV[parameter] == variable
    grouped = {name for group in template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
               for name in group["Parameters"]}
    assert parameter in grouped


def test_only_the_worker_reads_the_decision_parameters(template):
    variables = {variable for variable, _ in DECISION_PARAMETERS.values()}
    assert not variables & set(template["Globals"]["Function"]["Environment"]["Variables"])
    for logical_id in FUNCTIONS:
        own = {name for name, value in _variables(template, logical_id).items()
               if isinstance(value, dict) and value.get("Ref") in DECISION_PARAMETERS}
        assert own == (variables if logical_id == "WorkerFunction" else set()), logical_id


def test_the_defaults_parse_to_the_documented_policy():
    env = {"ACUMATICA_URL": "https://acme.example.com", "JIRA_PROJECT_KEY": "AP",
           "JIRA_EXTERNAL_ID_FIELD": "customfield_10050",
           **{variable: default for variable, default in DECISION_PARAMETERS.values()}}
    policy = Settings.from_env(env).decision_policy
    assert policy == Settings.from_env({k: v for k, v in env.items() if k in ("ACUMATICA_URL", "JIRA_PROJECT_KEY",
                                                                              "JIRA_EXTERNAL_ID_FIELD")}
                                       ).decision_policy
    assert not policy.authority and not policy.decline_actions


def test_the_workers_environment_fits_lambdas_4_kb_with_every_decision_parameter_at_its_max_length(template):
    parameters = template["Parameters"]

    def value_length(value: Any) -> int:
        if isinstance(value, dict) and value.get("Ref") in parameters:
            name = value["Ref"]
            if name in DECISION_PARAMETERS:
                return parameters[name]["MaxLength"]
            return len(str(parameters[name].get("Default", ""))) or REQUIRED_VALUE_LENGTH
        if isinstance(value, dict) and "Fn::If" in value:
            return max(len(str(branch)) for branch in value["Fn::If"][1:])
        if isinstance(value, dict):
            return RESOURCE_VALUE_LENGTH
        return len(str(value))

    environment = {**template["Globals"]["Function"]["Environment"]["Variables"],
                   **_variables(template, "WorkerFunction")}
    size = sum(len(name) + value_length(value) for name, value in environment.items())
    assert size < LAMBDA_ENVIRONMENT_LIMIT, size
