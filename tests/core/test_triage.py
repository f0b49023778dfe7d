"""The triage tables: routing, due dates, priority and escalation thresholds, as examples and as properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.config import Settings
from connector.errors import ConfigurationError
from connector.tables import TABLES as REGISTRY
from connector.triage import (PriorityTable, TriageRules, due_date, evaluate, parse_acumatica_date, reached_thresholds,
                              round_robin_pick, route)
from tests.fakes import make_doc


def parse_priority_table(text: str) -> PriorityTable:
    return REGISTRY["PriorityTable"].from_parameter(text)


def parse_escalation_days(text: str) -> dict:
    return REGISTRY["EscalationDays"].from_parameter(text)

TODAY = date(2026, 12, 1)


def bill_due(due: str | None, amount: str = "1250.00", **kwargs):
    doc = make_doc("Bill", amount=amount, **kwargs)
    return replace(doc, fields={**doc.fields, **({"DueDate": due} if due is not None else {})})


# --- dates ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [
    ("2026-12-04T00:00:00", date(2026, 12, 4)),
    ("2026-12-04T00:00:00+03:00", date(2026, 12, 4)),  # midnight in Moscow is still the 4th, not UTC's 3rd
    ("2026-12-04T23:30:00-08:00", date(2026, 12, 4)),
    ("2026-12-04T00:00:00.000Z", date(2026, 12, 4)),
    ("2026-12-04", date(2026, 12, 4)),
    ("", None), (None, None), ("next tuesday", None),
])
def test_acumatica_dates_keep_their_calendar_day(value, expected):
    assert parse_acumatica_date(value) == expected


def test_due_date_per_entity():
    po = make_doc("PurchaseOrder", status="On Hold")
    check = make_doc("Check", status="On Hold")
    assert due_date(bill_due("2026-12-10T00:00:00")) == date(2026, 12, 10)
    assert due_date(replace(po, fields={"PromisedOn": "2026-12-11T00:00:00+02:00"})) == date(2026, 12, 11)
    assert due_date(replace(check, fields={"ApplicationDate": "2026-12-12T00:00:00"})) == date(2026, 12, 12)
    assert due_date(replace(po, fields={"DueDate": "2026-12-10T00:00:00"})) is None  # a PO's due date is PromisedOn


# --- priority ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("due, amount, expected", [
    ("2026-11-20T00:00:00", "100.00", "High"),      # overdue
    ("2026-12-04T00:00:00", "100.00", "High"),      # due within 3 days
    ("2026-12-05T00:00:00", "100.00", "Medium"),    # four days out
    (None, "100.00", "Medium"),                     # no due date
    ("2026-12-05T00:00:00", "25000.00", "High"),    # large: one step up
    ("2026-11-20T00:00:00", "25000.00", "Highest"),
])
def test_default_priority_table(due, amount, expected):
    assert evaluate(bill_due(due, amount), TriageRules(), TODAY).priority == expected


def test_overdue_is_before_today_only():
    assert evaluate(bill_due("2026-11-30T00:00:00"), TriageRules(), TODAY).overdue
    assert not evaluate(bill_due("2026-12-01T00:00:00"), TriageRules(), TODAY).overdue
    assert evaluate(bill_due("2026-12-01T00:00:00"), TriageRules(), TODAY).due_text == "2026-12-01"


DEFAULT = PriorityTable().levels


@st.composite
def tables(draw):
    """Any table validation accepts: ascending days, urgency never rising with later bands."""
    cuts = sorted(draw(st.sets(st.integers(-10, 60), max_size=4)))
    ranks = sorted(draw(st.lists(st.integers(0, 4), min_size=len(cuts) + 1, max_size=len(cuts) + 1)))
    over = draw(st.one_of(st.none(), st.decimals(0, 100000, places=2)))
    return PriorityTable(bands=tuple((d, DEFAULT[r]) for d, r in zip(cuts, ranks)), otherwise=DEFAULT[ranks[-1]],
                         amount_over=over)


TABLES = tables()
DAYS = st.one_of(st.none(), st.integers(-400, 400))
AMOUNTS = st.one_of(st.none(), st.decimals(0, 10_000_000, places=2))


@given(TABLES, st.integers(-400, 400), st.integers(0, 400), AMOUNTS)
def test_a_later_due_date_is_never_more_urgent(table, days, later_by, amount):
    earlier, later = table.priority(days, amount), table.priority(days + later_by, amount)
    assert not table.more_urgent(later, earlier)


@given(TABLES, DAYS, AMOUNTS, st.decimals(0, 10_000_000, places=2))
def test_a_larger_amount_is_never_less_urgent(table, days, amount, more):
    if amount is None:
        return
    assert not table.more_urgent(table.priority(days, amount), table.priority(days, amount + more))


@given(TABLES, DAYS, AMOUNTS)
def test_priority_is_always_a_project_level_and_at_most_one_step_above_the_band(table, days, amount):
    chosen = table.priority(days, amount)
    assert chosen in table.levels
    assert table.levels.index(table.priority(days, None)) - table.levels.index(chosen) in (0, 1)


@pytest.mark.parametrize("text, complaint", [
    ("{", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ('{"colour": "red"}', 'entry "colour" is not a setting of the table'),
    ('{"bands": [[3, "Urgent"]]}', '"Urgent" is not one of the levels'),
    ('{"bands": [[3, "Low"], [10, "High"]]}', "may not be more urgent"),
    ('{"bands": [[10, "High"], [3, "High"]]}', "ascending"),
    ('{"otherwise": "Highest"}', "may not be more urgent"),
    ('{"amountOver": "lots"}', 'entry "amountOver" must be an amount (a number) or null, not "lots"'),
    ('{"levels": 3}', 'entry "levels" must be a list of the Jira project\'s priority names'),
    ('{"bands": [[1.5, "High"]]}', 'entry "bands" #1 must be a pair [whole days, priority name]'),
    ('{"bands": [[true, "High"]]}', 'entry "bands" #1 must be a pair'),
    ('{"levels": ["P1", 2]}', 'entry "levels" must be a list'),
])
def test_a_bad_priority_table_names_the_setting(text, complaint):
    with pytest.raises(ConfigurationError, match=r"PriorityTable \(PRIORITY_TABLE\)") as caught:
        parse_priority_table(text)
    assert complaint in str(caught.value) and "\n" not in str(caught.value)


def test_a_custom_priority_scheme():
    table = parse_priority_table('{"levels": ["P1", "P2", "P3"], "bands": [[0, "P1"], [7, "P2"]], "otherwise": "P3",'
                                 ' "amountOver": null}')
    assert [table.priority(d, Decimal("1e9")) for d in (-1, 0, 1, 7, 8, None)] == ["P1", "P1", "P2", "P2", "P3", "P3"]


# --- routing ----------------------------------------------------------------------------------------------------


OWNERS = {"buyer.kim": "acc-kim", "buyer.lee": "acc-lee", "V-ACME": "acc-acme", "*": "acc-default"}


def test_routing_order():
    rules = TriageRules(vendor_owners={"V-BOLT": "buyer.lee"})
    po = make_doc("PurchaseOrder", owner="buyer.kim", vendor="V-BOLT")
    assert route(po, OWNERS, rules) == route(po, OWNERS, rules, buyer="buyer.lee") == \
        type(route(po, OWNERS, rules))("acc-kim", "owner")
    bill = make_doc("Bill", vendor="V-BOLT")
    assert route(bill, OWNERS, rules, buyer="buyer.kim").account_id == "acc-kim"
    assert route(bill, OWNERS, rules).source == "vendor owner"
    assert route(make_doc("Bill", vendor="V-ACME"), OWNERS, rules).source == "vendor"
    assert route(make_doc("Bill", vendor="V-OTHER"), OWNERS, rules).account_id == "acc-default"


def test_unmapped_owners_fall_back_and_are_reported():
    po = make_doc("PurchaseOrder", owner="buyer.gone", vendor="V-ACME")
    routed = route(po, OWNERS, TriageRules())
    assert (routed.account_id, routed.source, routed.unmapped) == ("acc-acme", "vendor", ("buyer.gone",))


def test_round_robin_only_when_nothing_else_routes_and_is_stable_per_document():
    rules = TriageRules(round_robin=("acc-1", "acc-2", "acc-3"))
    docs = [make_doc("Bill", number=f"{n:06d}", vendor="V-NOBODY") for n in range(60)]
    picks = [route(d, {}, rules).account_id for d in docs]
    assert picks == [route(d, {}, rules).account_id for d in docs]
    assert set(picks) == {"acc-1", "acc-2", "acc-3"}
    assert route(docs[0], {"*": "acc-default"}, rules).account_id == "acc-default"
    assert route(docs[0], {}, TriageRules()) == type(route(docs[0], {}, rules))(None, "unassigned")


@given(st.text(min_size=1), st.lists(st.text(min_size=1), min_size=1, max_size=8, unique=True))
def test_round_robin_always_picks_a_pool_member(external_id, pool):
    assert round_robin_pick(external_id, pool) in pool


# --- escalation -------------------------------------------------------------------------------------------------


def test_escalation_thresholds_per_rule():
    table = parse_escalation_days('{"*": [14, 7], "rejected": [2]}')
    assert table == {"*": (7, 14), "rejected": (2,)}
    assert reached_thresholds(table, "on-hold", 6) == ()
    assert reached_thresholds(table, "on-hold", 7) == (7,)
    assert reached_thresholds(table, "on-hold", 30) == (7, 14)
    assert reached_thresholds(table, "rejected", 3) == (2,)
    assert reached_thresholds({}, "rejected", 300) == ()


@given(st.dictionaries(st.sampled_from(["*", "rejected", "on-hold"]),
                       st.lists(st.integers(1, 90), min_size=1, max_size=4), max_size=3),
       st.sampled_from(["rejected", "on-hold", "unbalanced"]), st.integers(0, 200), st.integers(0, 50))
def test_thresholds_only_accumulate_as_days_pass(table, rule, days, more):
    assert set(reached_thresholds(table, rule, days)) <= set(reached_thresholds(table, rule, days + more))


@pytest.mark.parametrize("text", ['[7]', '{"*": 7}', '{"*": []}', '{"*": [0]}', '{"*": [1.5]}', '{"*": [true]}',
                                  '{"rejectd": [2]}'])
def test_bad_escalation_days_name_the_setting(text):
    with pytest.raises(ConfigurationError, match="ESCALATION_DAYS"):
        parse_escalation_days(text)


def test_the_triage_settings_come_from_the_environment():
    base = {"ACUMATICA_URL": "https://acme.example.com", "JIRA_PROJECT_KEY": "AP",
            "JIRA_EXTERNAL_ID_FIELD": "customfield_10050"}
    rules = Settings.from_env({**base, "VENDOR_OWNERS": '{"V-BOLT": "buyer.lee"}', "ROUND_ROBIN_ASSIGNEES": " a, b ,",
                               "ESCALATION_DAYS": '{"*": [5]}', "ESCALATION_USER": "acc-boss"}).triage
    assert (rules.vendor_owners, rules.round_robin, rules.escalation_days, rules.escalation_user,
            rules.escalation_label) == ({"V-BOLT": "buyer.lee"}, ("a", "b"), {"*": (5,)}, "acc-boss", "escalated")
    assert Settings.from_env(base).triage == TriageRules()
    with pytest.raises(ConfigurationError, match="VENDOR_OWNERS"):
        Settings.from_env({**base, "VENDOR_OWNERS": '{"V-BOLT": 3}'})


def test_days_to_due_counts_calendar_days():
    due = TODAY + timedelta(days=3)
    assert evaluate(bill_due(due.isoformat() + "T00:00:00"), TriageRules(), TODAY).days_to_due == 3
