"""One validator per table: every table of the registry, whichever way it arrives (parameter text, imported document),
is accepted or refused alike, and every refusal is one line a deployer can act on.

Every test over "all tables" iterates ``connector.tables.TABLES``: a table registered later is held to the same rules.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cfnlint.decode import decode
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.config import Settings
from connector.errors import ConfigurationError
from connector.rules import STATUS_LABELS, build_rules
from connector.tables import (RULE_NAMES, TABLES, account_ids, apply_tables, canonical, describe_effect,
                              parse_document, read_document, routing_effect)
from connector_local.stack import PARAMETER_ENV

ROOT = Path(__file__).resolve().parents[2]
BASE = {"ACUMATICA_URL": "https://acme.acumatica.com", "JIRA_PROJECT_KEY": "AP",
        "JIRA_EXTERNAL_ID_FIELD": "customfield_10050"}
PYTHON_WORDS = re.compile(r"\b(int|str|dict|NoneType|bool|float|tuple|Decimal|TypeError|ValueError|KeyError)\b|<class")
"""What a deployer should never read in a refusal: Python's names for things."""

JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
                    | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


@pytest.fixture(scope="module")
def template() -> dict:
    body, problems = decode(str(ROOT / "template.yaml"))
    assert not problems
    return body


def refusal(call) -> str:
    with pytest.raises(ConfigurationError) as refused:
        call()
    return str(refused.value)


# --- the registry and the template agree ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(TABLES))
def test_every_table_is_a_template_parameter_whose_default_is_valid(template, name):
    table = TABLES[name]
    parameter = template["Parameters"][name]
    assert table.from_parameter(str(parameter.get("Default", ""))) == table.from_parameter("")
    assert PARAMETER_ENV[name] == table.variable


@pytest.mark.parametrize("name", list(TABLES))
def test_every_table_reaches_the_functions_in_the_parameter_tables_secret_not_the_environment(template, name):
    table = TABLES[name]
    lines = template["Resources"]["ParameterTables"]["Properties"]["SecretString"]["Fn::Sub"].splitlines()
    assert f"{table.variable}=${{{name}}}" in lines
    environments = [template["Globals"]["Function"]["Environment"]["Variables"]] + [
        resource["Properties"].get("Environment", {}).get("Variables", {})
        for resource in template["Resources"].values() if resource["Type"] == "AWS::Serverless::Function"]
    assert all(table.variable not in variables for variables in environments)
    # nor under another variable's name: no value refers to the parameter (Ref, or a Sub of it)
    values = [json.dumps(value) for variables in environments for value in variables.values()]
    assert not [value for value in values if f'"Ref": "{name}"' in value or f"${{{name}}}" in value]


@pytest.mark.parametrize("name", list(TABLES))
def test_a_table_parameter_cannot_hold_a_line_break(template, name):
    """The secret is one line per table: a value's line break would forge the next table's line."""
    pattern = template["Parameters"][name]["AllowedPattern"]
    value = "acc-1,\nacc-2" if TABLES[name].listed else '{"a": "b",\n"c": "d"}'
    assert re.fullmatch(pattern, value.replace("\n", " ")) and not re.fullmatch(pattern, value)


def test_escalation_keys_are_the_exception_rules_names():
    every_label = {entity: {"add": [label for label, kind in labels.items() if kind != "exception"]}
                   for entity, labels in STATUS_LABELS.items()}
    produced = {rule.name for rules in build_rules(every_label).values() for rule in rules}
    assert produced == set(RULE_NAMES)


# --- the refusals the issues quote ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["kim@acme.com", "Kim Lee", "x" * 129])
def test_an_owner_map_entry_that_is_not_an_account_id_is_refused(value):
    message = refusal(lambda: TABLES["OwnerMap"].from_document({"buyer.kim": value}, "tables.json"))
    assert message.startswith('tables.json: OwnerMap: entry "buyer.kim" must be a Jira accountId (letters, digits')
    assert message.endswith(f"not {json.dumps(value)}")


def test_owner_map_refuses_numbers_and_nulls_as_vendor_owners_does():
    for name in ("OwnerMap", "VendorOwners"):
        for value in ('{"buyer.kim": 5}', '{"buyer.kim": null}', '{"buyer.kim": ""}', '{"buyer.kim": true}'):
            message = refusal(lambda: Settings.from_env({**BASE, TABLES[name].variable: value}))
            assert message.startswith(f"{name} ({TABLES[name].variable}): entry \"buyer.kim\" must be")


@pytest.mark.parametrize("value, says", [("[]", "not a list"), ("null", "not null"), ("3", "not a number")])
def test_exception_rules_refuse_what_is_not_an_object(value, says):
    message = refusal(lambda: Settings.from_env({**BASE, "EXCEPTION_RULES": value}))
    assert message.startswith("ExceptionRules (EXCEPTION_RULES): must be a JSON object") and says in message


def test_a_priority_table_of_levels_3_names_the_table_the_entry_and_what_is_valid():
    message = refusal(lambda: Settings.from_env({**BASE, "PRIORITY_TABLE": '{"levels": 3}'}))
    assert message == ('PriorityTable (PRIORITY_TABLE): entry "levels" must be a list of the Jira project\'s priority '
                       'names, most urgent first (e.g. ["Highest", "High", "Medium", "Low", "Lowest"]), not a number')


def test_valid_input_keeps_its_meaning():
    parsed = Settings.from_env({**BASE, "OWNER_MAP": '{"buyer.kim": "acc-kim", "*": "acc-all"}',
                                "ROUND_ROBIN_ASSIGNEES": " a, b ,", "PRIORITY_TABLE": "",
                                "APPROVE_ACTION_NAMES": '{"Bill": " approve "}', "EXCEPTION_RULES": "{}"})
    assert parsed.owner_map == {"buyer.kim": "acc-kim", "*": "acc-all"}
    assert parsed.triage.round_robin == ("a", "b") and parsed.approve_actions == {"Bill": "approve"}
    assert parsed.triage.priorities == Settings.from_env(BASE).triage.priorities
    assert parsed.exception_rules.keys() == build_rules().keys()


@pytest.mark.parametrize("name", list(TABLES))
@given(value=JSON)
@settings(max_examples=60, deadline=None)
def test_any_value_is_accepted_or_refused_in_one_line_naming_the_table_in_a_deployers_words(name, value):
    table = TABLES[name]
    text = ",".join(map(str, value)) if table.listed and isinstance(value, list) else json.dumps(value)
    for attempt in (lambda: table.from_parameter(text), lambda: table.from_document(value, "tables.json")):
        try:
            attempt()
        except ConfigurationError as refused:
            message = str(refused)
            assert "\n" not in message and name in message
            assert not PYTHON_WORDS.search(message), message


@pytest.mark.parametrize("name", [name for name, table in TABLES.items() if not table.listed])
@given(value=JSON)
@settings(max_examples=60, deadline=None)
def test_a_parameter_and_an_imported_table_mean_the_same(name, value):
    table = TABLES[name]
    outcomes = []
    for attempt in (lambda: table.from_parameter(json.dumps(value)), lambda: table.from_document(value, "doc")):
        try:
            outcomes.append(attempt())
        except ConfigurationError:
            outcomes.append("refused")
    assert outcomes[0] == outcomes[1]


def test_a_table_parameter_names_its_variable_and_an_import_its_source():
    assert refusal(lambda: TABLES["OwnerMap"].from_parameter("{nope")).startswith(
        "OwnerMap (OWNER_MAP): is not valid JSON (Expecting property name")
    assert refusal(lambda: parse_document({"OwnerMap": {"a": 1}}, "june.json")).startswith(
        'june.json: OwnerMap: entry "a" must be a Jira accountId')


# --- documents ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, says", [
    ('{"OwnerMaps": {}}', '"OwnerMaps" is not a table; did you mean OwnerMap?'),
    ('{"OwnerMap": null}', "OwnerMap is null; leave the key out to use the OwnerMap parameter"),
    ("[1]", "must be a JSON object whose keys are table names"),
    ('{"OwnerMap": {"a": "x", "a": "y"}}', 'entry "a" appears twice'),
    ('{"PriorityTable": {"amountOver": NaN}}', "NaN is not a number JSON allows"),
    ('{"OwnerMap": {"a": "x"},}', "is not valid JSON"),
])
def test_a_bad_document_is_refused_in_one_line(text, says):
    message = refusal(lambda: read_document(text, "tables.json"))
    assert message.startswith("tables.json: ") and says in message and "\n" not in message


def test_an_empty_document_is_valid_and_leaves_every_table_to_its_parameter():
    assert read_document("{}", "x") == {} and parse_document({}, "x") == {}


def test_the_canonical_form_ignores_key_order_and_spacing():
    assert canonical(json.loads('{"b": 1, "a": {"y": 2, "x": 3}}')) == canonical({"a": {"x": 3, "y": 2}, "b": 1})


def test_account_ids_are_found_where_the_registry_says():
    found = account_ids({"OwnerMap": {"kim": "acc-1"}, "RoundRobinAssignees": ["acc-2", "acc-3"],
                         "VendorOwners": {"V1": "kim"}})
    assert found == [("OwnerMap", '"kim"', "acc-1"), ("RoundRobinAssignees", "#1", "acc-2"),
                     ("RoundRobinAssignees", "#2", "acc-3")]


# --- routing effect ----------------------------------------------------------------------------------------------------


def test_the_routing_effect_counts_the_vendors_and_owners_that_change_hands():
    before = Settings.from_env(BASE)
    tables = {"VendorOwners": {"V1": "kim", "V2": "lee", "V3": "kim"},
              "OwnerMap": {"kim": "acc-kim", "lee": "acc-lee"}}
    first = apply_tables(before, parse_document(tables, "x"))
    effect = routing_effect(before, first)
    assert (effect["vendors_reassigned"], effect["owners_remapped"]) == (3, 2)
    second = apply_tables(before, parse_document({**tables, "OwnerMap": {"kim": "acc-kim", "lee": "acc-new"}}, "x"))
    effect = routing_effect(first, second)
    assert effect == {"tables_changed": ["OwnerMap"], "owners_remapped": 1, "vendors_reassigned": 1, "vendors": 3,
                      "default_changed": False}
    assert describe_effect(effect) == "1 of 3 vendors change assignee, 1 owners remapped (tables changed: OwnerMap)"
    assert describe_effect(routing_effect(second, second)) == "no table changes"


def test_a_table_registered_with_a_parser_written_elsewhere_refuses_in_the_same_voice():
    """A parser that raises a plain ValueError (another module's) still refuses in one line naming the table."""
    from connector.tables import Table

    def statuses(value):
        if "Won't Do" in value:
            raise ValueError("Won't Do is a declining resolution, not an approving one\n(details)")
        return tuple(value)

    table = Table("ApprovingResolutions", "APPROVING_RESOLUTIONS", statuses, "jira_labels", "approving", listed=True)
    assert table.from_parameter("Done, Fixed") == ("Done", "Fixed")
    assert refusal(lambda: table.from_parameter("Done,Won't Do")) == (
        "ApprovingResolutions (APPROVING_RESOLUTIONS): Won't Do is a declining resolution, not an approving one")
    assert refusal(lambda: table.from_document(["Won't Do"], "t.json")).startswith("t.json: ApprovingResolutions: ")
