"""``ExceptionRules`` through the template: the deployer's table decides what reaches Jira, end to end."""

from __future__ import annotations

import json

import pytest

from connector_local.stack import LocalStack
from tests.e2e.conftest import Harness

RULES = {"Bill": {"add": ["Scheduled"], "remove": ["Pending Approval"]}, "PurchaseOrder": {"unbalanced": False}}


@pytest.fixture(scope="module")
def stack():
    with LocalStack.start({"EXCEPTION_RULES": json.dumps(RULES)}, quiet=True) as running:
        yield running


@pytest.fixture(scope="module")
def harness(stack) -> Harness:
    return Harness(stack)


def test_the_template_parameter_reaches_the_functions_that_classify():
    """Through the parameter-tables secret (docs/tables.md), which the poller and the worker are given."""
    from cfnlint.decode import decode

    from connector_local.stack import TEMPLATE

    template, _ = decode(str(TEMPLATE))
    assert "ExceptionRules" in template["Parameters"]
    secret = template["Resources"]["ParameterTables"]["Properties"]["SecretString"]["Fn::Sub"]
    assert "EXCEPTION_RULES=${ExceptionRules}" in secret.splitlines()
    for function in ("PollerFunction", "WorkerFunction"):
        variables = template["Resources"][function]["Properties"]["Environment"]["Variables"]
        assert variables["PARAMETER_TABLES_ARN"] == {"Ref": "ParameterTables"}


def test_added_statuses_open_issues_removed_ones_and_switched_off_rules_do_not(stack, harness):
    acumatica = stack.acumatica
    acumatica.add_document("Bill", ReferenceNbr="810001", Hold=False, Status="Scheduled")
    acumatica.add_document("Bill", ReferenceNbr="810002", Hold=False, Status="Pending Approval", requires_approval=True)
    acumatica.add_document("Bill", ReferenceNbr="810003", Hold=True)
    acumatica.add_document("PurchaseOrder", OrderNbr="PO810004", Hold=False, OrderTotal=100, ControlTotal=90)
    harness.poll()

    (scheduled,) = harness.issues("Bill:Bill:810001")
    assert "Status is Scheduled" in str(scheduled["fields"]["description"])
    assert harness.issues("Bill:Bill:810002") == []
    assert len(harness.issues("Bill:Bill:810003")) == 1  # the rest of the default table stands
    assert harness.issues("PurchaseOrder:Normal:PO810004") == []


def test_a_malformed_value_fails_the_cold_start_naming_the_entity_and_the_label():
    from connector.errors import ConfigurationError
    from connector.wiring import Wiring

    env = {"ACUMATICA_URL": "https://acme.example.com", "JIRA_PROJECT_KEY": "AP",
           "JIRA_EXTERNAL_ID_FIELD": "customfield_10050",
           "EXCEPTION_RULES": json.dumps({"PurchaseOrder": {"remove": ["Cancelled"]}})}
    with pytest.raises(ConfigurationError, match="PurchaseOrder: status 'Cancelled'"):
        Wiring(env).poll_options
