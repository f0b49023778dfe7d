from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.rules import ACTION_POLICY, EXCEPTION_RULES, build_rules, changes, classify, fingerprint, plan, snapshot
from tests.fakes import make_doc


def test_bill_on_hold_is_an_exception_with_a_reason():
    finding = classify(make_doc(status="On Hold"))
    assert finding and finding.rule == "on-hold" and "hold" in finding.reason.lower()


def test_unbalanced_bill_wins_over_on_hold_and_names_both_amounts():
    finding = classify(make_doc(status="On Hold", amount="100.00", total="90.00"))
    assert finding.rule == "unbalanced"
    assert "100.00 USD" in finding.reason and "90.00 USD" in finding.reason


def test_pending_approval_and_rejected_are_exceptions_for_bills_and_orders():
    for entity in ("Bill", "PurchaseOrder"):
        assert classify(make_doc(entity, status="Pending Approval")).rule == "pending-approval"
        assert classify(make_doc(entity, status="Rejected", hold=False)).rule == "rejected"


def test_released_and_open_documents_are_healthy():
    assert classify(make_doc(status="Open", hold=False)) is None
    assert classify(make_doc("PurchaseOrder", status="Open", hold=False)) is None
    assert classify(make_doc("Check", status="Closed", hold=False)) is None


def test_a_paid_bill_with_a_lower_balance_is_not_unbalanced():
    assert classify(make_doc(status="Open", hold=False, amount="100.00", total="40.00")) is None


def test_payment_on_hold_or_with_validation_errors_is_an_exception():
    assert classify(make_doc("Check", status="On Hold")).rule == "on-hold"
    finding = classify(make_doc("Check", status="Balanced", hold=False, errors={"CashAccount": "is inactive"}))
    assert finding.rule == "failed-validation" and "CashAccount: is inactive" in finding.reason


def test_fingerprint_ignores_fields_that_do_not_matter_and_tracks_those_that_do():
    base = make_doc(status="On Hold")
    same = make_doc(status="On Hold", modified=base.last_modified.replace(year=2030))
    moved = make_doc(status="Pending Approval")
    assert fingerprint(snapshot(base, classify(base))) == fingerprint(snapshot(same, classify(same)))
    assert fingerprint(snapshot(base, classify(base))) != fingerprint(snapshot(moved, classify(moved)))


@given(st.decimals(min_value=0, max_value=10**9, places=2), st.decimals(min_value=0, max_value=10**9, places=2))
def test_amount_changes_always_change_the_fingerprint(a, b):
    one, two = make_doc(amount=str(a)), make_doc(amount=str(b))
    same = Decimal(a) == Decimal(b)
    assert (fingerprint(snapshot(one, classify(one))) == fingerprint(snapshot(two, classify(two)))) == same


def test_changes_lists_old_and_new_values():
    old = snapshot(make_doc(status="On Hold"), None)
    new = snapshot(make_doc(status="Balanced", hold=False), None)
    assert ("status", "On Hold", "Balanced") in changes(old, new)
    assert ("hold", "yes", "no") in changes(old, new)


def test_policy_releases_a_balanced_bill_and_approves_a_pending_order():
    steps, _ = plan(make_doc(status="Balanced", hold=False), "Approve")
    assert [s.action for s in steps] == ["ReleaseBill"]
    steps, _ = plan(make_doc("PurchaseOrder", status="Pending Approval"), "ApprovePO")
    assert [s.action for s in steps] == ["ApprovePO"]


def test_policy_takes_a_balanced_bill_off_hold_then_releases_it():
    steps, _ = plan(make_doc(status="On Hold"), "Approve")
    assert [(s.action, s.requires_status) for s in steps] == [("RemoveHold", "On Hold"), ("ReleaseBill", "Balanced")]


def test_policy_refuses_an_unbalanced_bill_and_final_statuses_with_a_reason():
    steps, why = plan(make_doc(status="On Hold", amount="10", total="9"), "Approve")
    assert steps == () and "unbalanced" in why
    for status in ("Open", "Closed", "Voided", "Rejected"):
        steps, why = plan(make_doc(status=status, hold=False), "Approve")
        assert steps == () and status in why


def test_every_policy_step_starts_from_the_status_it_is_filed_under():
    for entity, table in ACTION_POLICY.items():
        for status, steps in table.items():
            assert steps[0].requires_status == status, (entity, status)


# --- ExceptionRules: rules a deployer tunes ----------------------------------------------------------------------


def test_the_default_table_is_the_table_with_no_overrides():
    assert {e: [r.name for r in rules] for e, rules in build_rules({}).items()} == \
        {e: [r.name for r in rules] for e, rules in EXCEPTION_RULES.items()}


def test_statuses_are_added_and_removed_per_entity():
    rules = build_rules({"Bill": {"add": ["Scheduled"], "remove": ["Pending Approval"]}})
    assert classify(make_doc(status="Scheduled", hold=False), rules).rule == "status"
    assert classify(make_doc(status="Scheduled", hold=False), rules).reason == "Status is Scheduled"
    assert classify(make_doc(status="Pending Approval", hold=False), rules) is None
    assert classify(make_doc("PurchaseOrder", status="Pending Approval", hold=False), rules).rule == "pending-approval"


def test_the_unbalanced_and_validation_rules_can_be_switched_off():
    rules = build_rules({"Bill": {"unbalanced": False, "validation": False}})
    unbalanced = make_doc(status="Balanced", hold=False, amount="100.00", total="90.00")
    invalid = make_doc(status="Balanced", hold=False, errors={"Vendor": "is inactive"})
    assert classify(unbalanced, rules) is None and classify(invalid, rules) is None
    assert classify(unbalanced).rule == "unbalanced" and classify(invalid).rule == "failed-validation"


@pytest.mark.parametrize(("overrides", "names"), [
    ({"Bil": {}}, ["'Bil'"]),
    ({"Bill": {"add": ["Pending approval"]}}, ["Bill", "'Pending approval'"]),
    ({"Check": {"remove": ["Cancelled"]}}, ["Check", "'Cancelled'"]),
    ({"PurchaseOrder": {"add": ["Canceled"], "remove": ["Canceled"]}}, ["PurchaseOrder", "'Canceled'"]),
    ({"Bill": {"unbalanced": "no"}}, ["Bill", "unbalanced"]),
    ({"Bill": {"statuses": []}}, ["Bill", "'statuses'"]),
    ({"Bill": {"add": "On Hold"}}, ["Bill", "add"]),
    ({"Check": {"remove": ["On Hold", "Pending Approval", "Rejected"], "validation": False}}, ["Check", "no exception"]),
    (["Bill"], ["JSON object"]),
])
def test_a_bad_override_is_refused_naming_the_entity_and_the_label(overrides, names):
    with pytest.raises(ValueError) as refused:
        build_rules(overrides)
    assert all(name in str(refused.value) for name in names), str(refused.value)


@given(st.data())
def test_any_valid_tuning_makes_exactly_the_statuses_it_names_exceptions(data):
    from connector.rules import EXCEPTION, STATUS_LABELS

    entity = data.draw(st.sampled_from(sorted(STATUS_LABELS)))
    labels = sorted(STATUS_LABELS[entity])
    add = data.draw(st.lists(st.sampled_from(labels), unique=True))
    rest = [label for label in labels if label not in add]
    remove = data.draw(st.lists(st.sampled_from(rest), unique=True) if rest else st.just([]))
    rules = build_rules({entity: {"add": add, "remove": remove}})
    wanted = ({label for label in labels if STATUS_LABELS[entity][label] == EXCEPTION} | set(add)) - set(remove)
    for label in labels:
        doc = make_doc(entity, status=label, hold=False)  # balanced, no errors: only the status can make it one
        assert (classify(doc, rules) is not None) == (label in wanted), label
