"""``$filter`` literals and their URL encoding: offsets are explicit and a ``+`` survives the trip."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import parse_qs, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.acumatica import all_of, comparison, datetimeoffset_literal, odata_literal, query_string
from connector_local.acumatica_sandbox import _FilterParser

aware_datetimes = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                               timezones=st.sampled_from([timezone.utc, timezone(timedelta(hours=5, minutes=30)),
                                                          timezone(timedelta(hours=-8))]))


def test_datetimeoffset_literal_keeps_the_offset_it_was_given_with_milliseconds():
    moment = datetime(2024, 1, 1, 2, 30, 0, 123456, tzinfo=timezone(timedelta(hours=2)))

    assert datetimeoffset_literal(moment) == "datetimeoffset'2024-01-01T02:30:00.123+02:00'"
    assert datetimeoffset_literal(moment.astimezone(timezone.utc)) == "datetimeoffset'2024-01-01T00:30:00.123+00:00'"


def test_naive_datetime_is_rejected():
    with pytest.raises(ValueError, match="naive"):
        datetimeoffset_literal(datetime(2024, 1, 1))


def test_literals_are_typed():
    assert odata_literal("O'Brien") == "'O''Brien'"
    assert odata_literal(True) == "true"
    assert odata_literal(Decimal("10.50")) == "10.50"
    assert odata_literal(7) == "7"
    assert odata_literal(None) == "null"
    with pytest.raises(TypeError):
        odata_literal(object())


def test_comparison_refuses_injected_field_names_and_unknown_operators():
    with pytest.raises(ValueError):
        comparison("Status eq 'x' or Hold", "eq", True)
    with pytest.raises(ValueError):
        comparison("Status", "like", "x")


def test_all_of_joins_with_and_and_keeps_or_groups_intact():
    assert all_of("A eq 1", "B eq 2 or C eq 3") == "A eq 1 and (B eq 2 or C eq 3)"


def test_query_string_percent_encodes_the_offset_plus_and_spaces():
    encoded = query_string({"$filter": comparison("LastModifiedDateTime", "ge",
                                                  datetime(2024, 1, 1, tzinfo=timezone.utc))})

    assert encoded == "$filter=LastModifiedDateTime%20ge%20datetimeoffset'2024-01-01T00%3A00%3A00.000%2B00%3A00'"


@given(aware_datetimes)
def test_encoded_datetime_filter_decodes_to_the_same_instant(moment):
    encoded = query_string({"$filter": comparison("LastModifiedDateTime", "ge", moment)})
    assert "+" not in encoded and " " not in encoded

    decoded = parse_qs(encoded)["$filter"][0]  # form decoding: a raw '+' would have become a space here
    literal = decoded.removeprefix("LastModifiedDateTime ge datetimeoffset'").removesuffix("'")
    parsed = datetime.fromisoformat(literal)
    assert parsed.utcoffset() == moment.utcoffset()  # sent back in the offset it came in
    assert timedelta(0) <= moment - parsed < timedelta(milliseconds=1)


@given(st.text(min_size=0, max_size=30).filter(lambda s: "\x00" not in s))
def test_string_literals_round_trip_through_an_odata_parser(value):
    filter_text = unquote(query_string({"$filter": all_of(comparison("Status", "eq", value),
                                                          comparison("Hold", "eq", False))}).split("=", 1)[1])

    predicate = _FilterParser(filter_text, "Bill").parse()

    assert predicate({"Status": value, "Hold": False})
    assert not predicate({"Status": value + "x", "Hold": False})
