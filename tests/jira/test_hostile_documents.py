"""Broken and hostile Acumatica records, as hypothesis properties: each becomes a document whose issue content is
valid ADF and whose external id survives JQL, or a clear ``ValueError`` (the worker's ``PermanentError``); nothing
in between crashes. Records are drawn from what the rules were not written from: nulls, wrong types, unicode and
right-to-left names, very long texts, negative or huge amounts, odd currencies, references full of JQL syntax."""

from __future__ import annotations

import re
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector import content
from connector.documents import PROFILES, profile, to_document
from connector.jira import external_id_jql
from connector.model import DocumentKey
from connector.rules import classify, fingerprint, snapshot
from connector.sync import decide

nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(['AP "quoted"', "back\\slash", "a/b", "C:1", "x OR project != AP", "ORDER BY key",
                     "שלום ספק", "مورد عربي", "\u202eevil\u202c", "", " ", "\x00"]),
    st.text(min_size=2000, max_size=6000),
)
amount = st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False, places=2),
                   st.sampled_from([Decimal("-0.01"), Decimal("1E+15"), Decimal("-99999999999.99")]),
                   st.integers(min_value=-10**15, max_value=10**15), st.floats(allow_nan=False, allow_infinity=False),
                   st.sampled_from(["12.50", "abc", "", "1e3"]))
loose = st.one_of(st.none(), st.booleans(), st.integers(), nasty_text)


@st.composite
def records(draw):
    entity = draw(st.sampled_from(sorted(PROFILES)))
    prof = profile(entity)
    record = {name: draw(loose) for name in prof.select}
    record[prof.amount_field] = draw(amount)
    for name in (prof.control_field, prof.total_field):
        if name:
            record[name] = draw(amount)
    record["Hold"] = draw(st.one_of(st.booleans(), st.none(), st.sampled_from(["true", 0, 1])))
    record["Status"] = draw(st.one_of(st.sampled_from(["On Hold", "Balanced", "Open", "Pending Approval", "Closed"]),
                                      loose))
    record["CurrencyID"] = draw(st.one_of(st.sampled_from(["USD", "JPY", "BHD", "XAU", "", "€"]), loose))
    record["LastModifiedDateTime"] = draw(st.one_of(st.none(), st.sampled_from(["2026-11-30T08:00:00+00:00",
                                                                                "2026-11-30T08:00:00Z"])))
    for field in prof.key_fields:
        record[field] = draw(st.one_of(nasty_text.filter(bool), st.none()))
    return entity, record


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(records())
def test_any_record_becomes_valid_issue_content_or_a_clear_error(assert_valid_adf, drawn):
    entity, record = drawn
    try:
        doc = to_document(entity, record)
    except ValueError as exc:
        assert str(exc)
        return
    assert DocumentKey.parse(doc.key.external_id) == doc.key  # colons in the number survive the round trip
    literal = external_id_jql("AP", 10050, doc.key.external_id).split(" ~ ", 1)[1]
    assert literal[0] == literal[-1] == '"'  # one JQL string literal, whatever the reference holds:
    assert '"' not in re.sub(r"\\.", "", literal[1:-1])  # every quote inside it is escaped
    finding = classify(doc)
    assert fingerprint(snapshot(doc, finding)) == fingerprint(snapshot(doc, finding))
    messages, _, _ = decide([doc], {}, "c")
    assert len(messages) == (1 if finding else 0)
    if finding:
        summary = content.summary(doc, finding)
        assert summary and len(summary) <= 255 and "\n" not in summary
        assert_valid_adf(content.description(doc, finding, "https://acme.example.com"))
