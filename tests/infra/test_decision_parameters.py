"""The five decision parameters (docs/decisions.md) in template.yaml: their names and defaults, a MaxLength each,
tables of the registry (connector.tables), so tests/core/test_tables.py holds them, with every table, to the
parameter-tables secret and out of every function's environment, and accepted by the parsers at their defaults."""

from __future__ import annotations

from typing import Any

import pytest
from cfnlint.decode import decode

from connector.config import Settings
from connector.tables import TABLES
from connector_local.stack import PARAMETER_ENV
from tests.infra.test_template import TEMPLATE

DECISION_PARAMETERS = {
    "ApprovingResolutions": ("APPROVING_RESOLUTIONS", "Done, Fixed, Resolved, Approved"),
    "DecliningStatuses": ("DECLINING_STATUSES", "Won't Do, Rejected, Declined, Canceled, Cancelled, Duplicate"),
    "NonPersonAccounts": ("NON_PERSON_ACCOUNTS", "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"),
    "DeclineAction": ("DECLINE_ACTION", "{}"),
    "DecisionAuthority": ("DECISION_AUTHORITY", "{}"),
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    body, problems = decode(str(TEMPLATE))
    assert not problems
    return body


@pytest.mark.parametrize("parameter", DECISION_PARAMETERS)
def test_each_decision_parameter_has_its_name_default_and_a_max_length(template, parameter):
    variable, default = DECISION_PARAMETERS[parameter]
    declared = template["Parameters"][parameter]
    assert declared["Default"] == default and declared["Description"]
    assert 0 < declared["MaxLength"] <= 4096 and len(default) <= declared["MaxLength"]
    assert PARAMETER_ENV[parameter] == variable
    assert TABLES[parameter].variable == variable
    grouped = {name for group in template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
               for name in group["Parameters"]}
    assert parameter in grouped


def test_the_defaults_parse_to_the_documented_policy():
    env = {"ACUMATICA_URL": "https://acme.example.com", "JIRA_PROJECT_KEY": "AP",
           "JIRA_EXTERNAL_ID_FIELD": "customfield_10050",
           **{variable: default for variable, default in DECISION_PARAMETERS.values()}}
    policy = Settings.from_env(env).decision_policy
    assert policy == Settings.from_env({k: v for k, v in env.items() if k in ("ACUMATICA_URL", "JIRA_PROJECT_KEY",
                                                                              "JIRA_EXTERNAL_ID_FIELD")}
                                       ).decision_policy
    assert not policy.authority and not policy.decline_actions
