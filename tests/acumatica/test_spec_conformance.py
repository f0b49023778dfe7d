"""Drift checks against the official OpenAPI description (specs/acumatica-default-openapi.json, Default/24.200.001).

The sandbox's fields and actions, its responses, and the client's URLs, query parameters and request bodies are all
checked against the spec, so neither side can agree with the other on something Acumatica does not do.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest

from connector.documents import PROFILES
from connector.errors import ConnectorError
from connector.model import DocumentKey
from connector_local.acumatica_sandbox import DETAIL_FIELDS, FIELDS, NAMED_ACTIONS, UNMODELLED, WORKFLOW_ACTIONS
from tests.acumatica.conftest import VERSION

WRAPPERS = {"string": "StringValue", "decimal": "DecimalValue", "boolean": "BooleanValue",
            "datetime": "DateTimeValue", "int": "IntValue"}
# The spec's Entity properties, plus the documented extras it omits: ``_links`` on records and ``_workflowActions``
# in ``$adHocSchema`` answers (Integration Development Guide, "Retrieve the Schema of Custom Fields and Workflow
# Actions").
ENTITY_KEYS = {"id", "rowNumber", "note", "custom", "error", "files", "_links", "_workflowActions"}


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def properties(spec: dict[str, Any], name: str) -> dict[str, Any]:
    """Every property of a component schema, ``allOf`` parts merged."""
    schema = resolve(spec, {"$ref": f"#/components/schemas/{name}"})
    merged: dict[str, Any] = {}
    for part in schema.get("allOf", [schema]):
        part = resolve(spec, part)
        merged.update(part.get("properties", {}))
    return merged


def operation_parameters(spec: dict[str, Any], path: str, method: str) -> set[str]:
    parameters = spec["paths"][path][method].get("parameters", [])
    return {spec["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]]["name"] for p in parameters}


def unknown_fields(spec: dict[str, Any], entity: str, body: dict[str, Any]) -> list[str]:
    known = properties(spec, entity)
    return sorted(name for name in body if name not in known and name not in ENTITY_KEYS)


# ----------------------------------------------------------------------------------------------- static drift


def test_spec_server_path_is_the_pinned_endpoint_and_the_client_uses_it(spec, client):
    assert urlsplit(spec["servers"][0]["url"]).path.endswith(f"/entity/Default/{VERSION}")
    assert client.endpoint_url.endswith(f"/entity/Default/{VERSION}")


@pytest.mark.parametrize("entity", sorted(FIELDS))
def test_sandbox_fields_are_exactly_the_specs_scalar_fields_with_the_same_types(spec, entity):
    spec_fields = properties(spec, entity)
    scalar = {name: prop["$ref"].rsplit("/", 1)[1] for name, prop in spec_fields.items()
              if "$ref" in prop and prop["$ref"].endswith("Value") and name != "note"}

    assert {name: WRAPPERS[kind] for name, kind in FIELDS[entity].items()} == scalar
    assert set(spec_fields) - set(scalar) - ENTITY_KEYS == set(UNMODELLED[entity])


@pytest.mark.parametrize("entity", sorted(DETAIL_FIELDS))
def test_sandbox_detail_fields_are_spec_fields_with_the_same_types(spec, entity):
    detail = properties(spec, entity)["Details"]["items"]["$ref"].rsplit("/", 1)[1]
    spec_fields = properties(spec, detail)
    for name, kind in DETAIL_FIELDS[entity].items():
        assert spec_fields[name]["$ref"].rsplit("/", 1)[1] == WRAPPERS[kind], name


@pytest.mark.parametrize("entity", sorted(FIELDS))
def test_sandbox_actions_exist_in_the_spec(spec, entity):
    for action in NAMED_ACTIONS[entity]:
        assert "post" in spec["paths"][f"/{entity}/{action}"]
        assert action in spec["components"]["schemas"]
    if WORKFLOW_ACTIONS[entity]:
        assert "post" in spec["paths"][f"/{entity}/{{actionName}}"]
    assert "get" in spec["paths"][f"/{entity}/$adHocSchema"]


@pytest.mark.parametrize("entity", sorted(PROFILES))
def test_client_selects_only_fields_the_spec_defines(spec, entity):
    assert set(PROFILES[entity].select) <= set(properties(spec, entity))


@pytest.mark.parametrize("entity", sorted(PROFILES))
def test_client_query_parameters_are_declared_by_the_spec(spec, entity):
    assert {"$filter", "$select", "$top", "$skip"} <= operation_parameters(spec, f"/{entity}", "get")
    assert "$select" in operation_parameters(spec, f"/{entity}", "put")
    assert "$select" in operation_parameters(spec, f"/{entity}/{{ids}}", "get")
    assert "$orderby" not in operation_parameters(spec, f"/{entity}", "get")


# -------------------------------------------------------------------------------------------- wire validation


@pytest.fixture
def exercised(sandbox, client):
    """Drive every kind of request through the client to the sandbox, failures included."""
    sandbox.approval_reasons = True  # the approval carries its reason as a custom parameter
    sandbox.hold_by_workflow.add("PurchaseOrder")
    sandbox.hold_actions.add("PurchaseOrder")
    sandbox.add_document("Bill", requires_approval=True)
    sandbox.add_document("Bill", Amount=10, Balance=5)
    sandbox.add_document("PurchaseOrder", requires_approval=True)
    sandbox.add_document("Check")
    sandbox.add_document("Bill", ReferenceNbr="000099", Details=[
        {"POOrderType": "Normal", "POOrderNbr": "PO000001", "POLine": 1, "Amount": 10, "Qty": 1},
        {"InventoryID": "FREIGHT", "Amount": 2}])
    bill, unbalanced = DocumentKey("Bill", "Bill", "000001"), DocumentKey("Bill", "Bill", "000002")
    order, check = DocumentKey("PurchaseOrder", "Normal", "PO000001"), DocumentKey("Check", "Payment", "000001")
    for entity in FIELDS:
        list(client.changed_pages(entity, datetime(2020, 1, 1, tzinfo=timezone.utc), page_size=1))
        client.workflow_actions(entity)
    steps = [lambda: client.set_hold(bill, False),
             lambda: client.invoke_action(bill, "Approve",
                                          parameters={"ReasonApproveRejectParams.Reason": "Approved in Jira (AP-1)"}),
             lambda: client.invoke_action(bill, "ReleaseBill"), lambda: client.invoke_action(bill, "ReleaseBill"),
             lambda: client.set_hold(unbalanced, False), lambda: client.set_hold(order, False),
             lambda: client.invoke_action(order, "ReleaseFromHold"),
             lambda: client.invoke_action(order, "Reject"), lambda: client.set_hold(check, False),
             lambda: client.invoke_action(check, "ReleaseCheck"),
             lambda: client.get(DocumentKey("Bill", "Bill", "x/y")),
             lambda: client.get(DocumentKey("Bill", "Bill", "404")),
             lambda: client.referenced_orders(DocumentKey("Bill", "Bill", "000099")),
             lambda: client.bill_orders([DocumentKey("Bill", "Bill", "000099"), bill]),
             lambda: client.order_owners([order]), lambda: client.existing([bill, check, order])]
    for step in steps:
        try:
            step()
        except ConnectorError:
            pass
    sandbox.expire_access_tokens()
    client.get(bill)
    return [entry for entry in sandbox.requests_log if entry.path.startswith(f"/entity/Default/{VERSION}/")]


def response_schema(entry) -> tuple[str, bool] | None:
    """(component schema name, is a list) that the spec declares for this response."""
    entity = entry.path.split("/")[4]
    if entry.status in (401, 500) or (entry.status == 404 and entry.response):
        return "HttpError", False
    if entry.status in (202, 204):
        return None
    is_list = entry.method == "GET" and entry.path.rstrip("/").endswith(f"/{entity}")
    return entity, is_list


def test_every_kind_of_exchange_was_exercised(exercised):
    kinds = {(e.method, e.status) for e in exercised}
    assert {("GET", 200), ("PUT", 200), ("PUT", 422), ("POST", 202), ("GET", 202), ("GET", 204), ("GET", 500),
            ("GET", 401), ("GET", 404)} <= kinds


def test_sandbox_responses_validate_against_the_spec(spec, schema_validator, exercised):
    for entry in exercised:
        declared = response_schema(entry)
        if declared is None:
            assert entry.response is None
            continue
        name, is_list = declared
        records = entry.response if is_list else [entry.response]
        assert isinstance(records, list), entry
        validator = schema_validator(name)
        for record in records:
            errors = [error.message for error in validator.iter_errors(record)]
            assert errors == [], (entry.method, entry.path, entry.status, errors)
            if name != "HttpError":
                assert unknown_fields(spec, name, record) == [], entry.path


def test_action_responses_carry_the_spec_location_header(spec, sandbox, client):
    sandbox.add_document("Bill", Hold=False)
    client.invoke_action(DocumentKey("Bill", "Bill", "000001"), "ReleaseBill")

    accepted = [e for e in sandbox.requests_log if e.status == 202]
    assert accepted and all(e.path.startswith(f"/entity/Default/{VERSION}/Bill/ReleaseBill") for e in accepted)
    assert "Location" in spec["components"]["responses"]["InvokeAction_202"]["headers"]


def test_client_request_bodies_validate_against_the_spec(spec, schema_validator, exercised):
    bodies = [e for e in exercised if e.method in ("PUT", "POST")]
    assert {e.method for e in bodies} == {"PUT", "POST"}
    for entry in bodies:
        entity = entry.path.split("/")[4]
        if entry.method == "PUT":
            schema, record = entity, entry.body
        else:
            action = entry.path.rsplit("/", 1)[1]
            schema = action if action in NAMED_ACTIONS[entity] else f"{entity}CustomAction"
            assert set(entry.body) <= set(properties(spec, schema)) | {"parameters"}
            record = entry.body["entity"]
        errors = [error.message for error in schema_validator(schema).iter_errors(entry.body)]
        assert errors == [], (entry.path, errors)
        assert unknown_fields(spec, entity, record) == []
        assert all(set(value) == {"value"} for value in record.values() if isinstance(value, dict))
