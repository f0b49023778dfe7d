"""ADF builders: every document they make is valid against the official ADF JSON schema, even from empty input."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator

from connector import adf
from connector_local.jira_sandbox import ADF_SCHEMA_PATH, adf_validator


def test_text_of_empty_string_is_none_and_vanishes_from_paragraph(assert_valid_adf):
    assert adf.text("") is None
    assert adf.text(None) is None
    document = adf.doc(adf.paragraph("", None, adf.text(""), "kept"))
    assert document["content"][0]["content"] == [{"type": "text", "text": "kept"}]
    assert_valid_adf(document)


def test_marks_strong_code_and_link_are_schema_valid(assert_valid_adf):
    document = adf.doc(adf.paragraph(
        adf.text("bold", strong=True), adf.text("Bill:Bill:1", code=True), adf.link("open", "https://x.test/a?b=1"),
        adf.hard_break(), adf.text("code link", code=True, link="https://x.test")))
    marks = [node.get("marks") for node in document["content"][0]["content"]]
    assert marks[0] == [{"type": "strong"}]
    assert marks[2] == [{"type": "link", "attrs": {"href": "https://x.test/a?b=1"}}]
    assert_valid_adf(document)


def test_code_with_strong_is_refused_because_adf_forbids_it():
    with pytest.raises(ValueError, match="code mark"):
        adf.text("x", code=True, strong=True)


def test_link_without_label_shows_the_address_and_without_either_is_none():
    assert adf.link("", "https://x.test")["text"] == "https://x.test"
    assert adf.link("", "") is None
    assert "marks" not in adf.link("plain", "")


def test_empty_document_and_empty_containers_are_valid(assert_valid_adf):
    assert adf.bullet_list() is None
    assert adf.bullet_list("", None, adf.paragraph("")) is None
    assert adf.table([], []) is None
    document = adf.doc(adf.bullet_list(), adf.table([], []), adf.paragraph())
    assert document["content"] == [{"type": "paragraph", "content": []}]
    assert_valid_adf(adf.doc())
    assert_valid_adf(document)


def test_bullet_list_wraps_strings_and_inline_nodes_in_paragraphs(assert_valid_adf):
    listing = adf.bullet_list("one", adf.text("two", strong=True), adf.paragraph("three"), "")
    assert len(listing["content"]) == 3
    assert all(item["content"][0]["type"] == "paragraph" for item in listing["content"])
    assert_valid_adf(adf.doc(listing))


def test_heading_levels_outside_one_to_six_are_refused(assert_valid_adf):
    assert_valid_adf(adf.doc(adf.heading(2, "Title")))
    with pytest.raises(ValueError):
        adf.heading(7, "x")


def test_table_cells_always_hold_a_block_even_when_empty(assert_valid_adf):
    table = adf.table(["field", "was", "now"], [["Hold", "", None], ["Link", adf.link("doc", "https://x.test"), 3]])
    cells = [cell for row in table["content"] for cell in row["content"]]
    assert [cell["type"] for cell in table["content"][0]["content"]] == ["tableHeader"] * 3
    assert all(cell["content"] and cell["content"][0]["type"] == "paragraph" for cell in cells)
    assert_valid_adf(adf.doc(table))


def test_fields_table_formats_values_for_people(assert_valid_adf):
    table = adf.fields_table({
        "Amount": Decimal("1234.5"),
        "Rate": Decimal("0.12345"),
        "Hold": True,
        "Approved": False,
        "Due": date(2024, 5, 1),
        "Modified": datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc),
        "Vendor": None,
        "Note": "",
        "Tags": ["a", "b"],
    })
    rows = {row["content"][0]["content"][0]["content"][0]["text"]: adf.plain_text(adf.doc(row["content"][1]))
            for row in table["content"][1:]}
    assert rows == {"Amount": "1,234.50", "Rate": "0.12345", "Hold": "Yes", "Approved": "No", "Due": "2024-05-01",
                    "Modified": "2024-05-01 12:30 UTC", "Vendor": "—", "Note": "—", "Tags": "a, b"}
    assert_valid_adf(adf.doc(table))


def test_fields_table_of_no_fields_still_has_its_header(assert_valid_adf):
    table = adf.fields_table({})
    assert len(table["content"]) == 1
    assert_valid_adf(adf.doc(table))


def test_plain_text_reads_paragraphs_lists_and_tables():
    document = adf.doc(
        adf.paragraph("Bill ", adf.text("000123", strong=True), adf.hard_break(), "on hold"),
        adf.bullet_list("first", "second"),
        adf.table(["Field", "Value"], [["Vendor", "ACME"]]),
    )
    assert adf.plain_text(document) == "Bill 000123\non hold\n- first\n- second\nField | Value\nVendor | ACME"
    assert adf.plain_text(None) == ""


@settings(max_examples=50, deadline=None)
@given(
    words=st.lists(st.text(max_size=12), max_size=6),
    fields=st.dictionaries(st.text(min_size=1, max_size=8),
                           st.one_of(st.none(), st.booleans(), st.text(max_size=10),
                                     st.decimals(allow_nan=False, allow_infinity=False, places=2)), max_size=5),
)
def test_any_text_and_fields_make_a_valid_document(words, fields, assert_valid_adf):
    document = adf.doc(
        adf.paragraph(*words),
        adf.heading(3, *words),
        adf.bullet_list(*words),
        adf.table(["a", "b"], [words[:2]] if words else []),
        adf.fields_table(fields),
        adf.paragraph(adf.link(words[0] if words else "", "https://x.test")),
    )
    assert_valid_adf(document)


def test_type_dispatching_validator_agrees_with_plain_jsonschema():
    plain = Draft4Validator(json.loads(ADF_SCHEMA_PATH.read_text(encoding="utf-8")))
    table = adf.fields_table({"Vendor": "ACME"})
    empty_cell = json.loads(json.dumps(table))
    empty_cell["content"][1]["content"][0]["content"] = []
    documents = [
        adf.doc(adf.paragraph("a", adf.hard_break(), adf.link("b", "https://x.test")), table),
        adf.doc(adf.bullet_list("one")),
        adf.doc(empty_cell),
        adf.doc({"type": "text", "text": "bare text at block level"}),
        adf.doc(adf.paragraph({"type": "text", "text": ""})),
        adf.doc(adf.paragraph({"type": "text", "text": "x", "marks": [{"type": "code"}, {"type": "strong"}]})),
        {"type": "doc", "version": 2, "content": []},
    ]
    verdicts = [(plain.is_valid(d), adf_validator().is_valid(d)) for d in documents]
    assert [fast for _, fast in verdicts] == [True, True, False, False, False, False, False]
    assert all(slow == fast for slow, fast in verdicts)


def test_amounts_beyond_decimal_precision_still_format():
    from decimal import Decimal

    assert adf.format_value(Decimal("100000000000000000000000000.00")) == "100,000,000,000,000,000,000,000,000.00"
    assert adf.format_value(Decimal("0.125")) == "0.125"
