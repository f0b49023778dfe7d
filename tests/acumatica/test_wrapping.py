"""Value wrapping both ways: ``{"Field": {"value": ...}}``, field errors, details, linked entities, custom fields."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from connector.acumatica import unwrap, wrap

field_names = st.from_regex(r"\A[A-Z][A-Za-z0-9]{0,12}\Z")
scalars = st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.text(max_size=20) | st.decimals(
    allow_nan=False, allow_infinity=False, places=2)


def records(depth: int = 2):
    values = scalars
    if depth:
        nested = records(depth - 1).filter(bool)  # an empty linked entity is indistinguishable from "no value"
        values = scalars | nested | st.lists(nested, max_size=3)
    return st.dictionaries(field_names, values, max_size=5)


def test_wrap_wraps_every_field_including_null_and_keeps_system_fields_plain():
    record = {"id": "0f8c2a4e-0000-4000-8000-000000000001", "rowNumber": 1, "Hold": False, "Description": None,
              "Amount": Decimal("12.50"), "note": "remember", "custom": {"Document": {"Approved": {
                  "type": "CustomBooleanField", "value": True}}}}

    assert wrap(record) == {
        "id": "0f8c2a4e-0000-4000-8000-000000000001",
        "rowNumber": 1,
        "Hold": {"value": False},
        "Description": {"value": None},
        "Amount": {"value": Decimal("12.50")},
        "note": {"value": "remember"},
        "custom": {"Document": {"Approved": {"type": "CustomBooleanField", "value": True}}},
    }


def test_wrap_recurses_into_details_and_linked_entities():
    record = {"Details": [{"InventoryID": "A1", "delete": True}], "ShippingInstructions": {"ShipVia": "UPS"}}

    assert wrap(record) == {"Details": [{"InventoryID": {"value": "A1"}, "delete": True}],
                            "ShippingInstructions": {"ShipVia": {"value": "UPS"}}}


def test_unwrap_returns_plain_values_and_empty_wrapper_as_none():
    record, errors = unwrap({"id": "abc", "rowNumber": 3, "Status": {"value": "On Hold"}, "Description": {},
                             "note": {"value": ""}, "_links": {"self": "/entity/x"}})

    assert record == {"id": "abc", "rowNumber": 3, "Status": "On Hold", "Description": None, "note": "",
                      "_links": {"self": "/entity/x"}}
    assert errors == {}


def test_unwrap_collects_field_entity_detail_and_custom_errors():
    payload = {
        "error": "Inserting 'Bill' record raised at least one error.",
        "Amount": {"value": 100, "error": "The document is out of balance."},
        "Details": [{"InventoryID": {"value": "X"}},
                    {"InventoryID": {"value": "Y", "error": "'Inventory ID' cannot be found."}, "error": "line"}],
        "custom": {"Document": {"Approved": {"type": "CustomBooleanField", "value": None, "error": "read-only"}}},
    }

    record, errors = unwrap(payload)

    assert record["Amount"] == 100
    assert record["Details"] == [{"InventoryID": "X"}, {"InventoryID": "Y"}]
    assert record["custom"] == payload["custom"]
    assert errors == {
        "": "Inserting 'Bill' record raised at least one error.",
        "Amount": "The document is out of balance.",
        "Details[1].InventoryID": "'Inventory ID' cannot be found.",
        "Details[1]": "line",
        "custom.Document.Approved": "read-only",
    }


@given(records())
def test_unwrap_inverts_wrap(record):
    assert unwrap(wrap(record)) == (record, {})


@given(records())
def test_wrapped_fields_are_all_value_wrappers(record):
    def check(wrapped):
        for name, value in wrapped.items():
            if isinstance(value, list):
                for item in value:
                    check(item)
            elif "value" in value:
                assert set(value) == {"value"}, name
            else:
                check(value)

    check(wrap(record))
