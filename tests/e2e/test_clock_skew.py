"""Acumatica's clock and time zone are not the connector's: whatever they are, every change made after a poll
reaches Jira on the next one, and once only. Scenarios run in order of a clock that only moves forward (a clock that
jumps back is the weekly full pass's job; see docs/limits.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest

CLOCKS = [
    ("days behind, -05:00", -timedelta(days=3), -timedelta(hours=5)),
    ("hours behind, +10:00", -timedelta(hours=6), timedelta(hours=10)),
    ("hours ahead, +05:30", timedelta(hours=5), timedelta(hours=5, minutes=30)),
]


@pytest.mark.parametrize(("skew", "offset"), [c[1:] for c in CLOCKS], ids=[c[0] for c in CLOCKS])
def test_every_change_after_a_poll_reaches_jira_on_the_next_poll_once(stack, harness, skew, offset):
    acumatica = stack.acumatica
    acumatica.set_clock(skew=skew, render_offset=offset)
    tag = f"{abs(int(skew.total_seconds())) // 3600:03d}"
    held = acumatica.add_document("Bill", ReferenceNbr=f"7{tag}01", Amount=400, Balance=400, Hold=True)
    healthy = acumatica.add_document("Bill", ReferenceNbr=f"7{tag}02", Amount=80, Balance=80, Hold=False)
    harness.poll()
    assert len(harness.issues(f"Bill:Bill:{held['ReferenceNbr']}")) == 1

    acumatica.update_document("Bill", ("Bill", held["ReferenceNbr"]), Amount=425, Balance=425)
    acumatica.update_document("Bill", ("Bill", healthy["ReferenceNbr"]), Hold=True, Status="On Hold")
    order = acumatica.add_document("PurchaseOrder", OrderNbr=f"PO7{tag}03", Hold=True)
    result = harness.poll()

    assert harness.queued(result) == 3
    (issue,) = harness.issues(f"Bill:Bill:{held['ReferenceNbr']}")
    comment = str(stack.jira.comments(issue["key"])[-1]["body"])
    assert "400.00 USD" in comment and "425.00 USD" in comment
    assert "425.00 USD" in stack.jira.issue(issue["key"])["fields"]["summary"]
    assert len(harness.issues(f"Bill:Bill:{healthy['ReferenceNbr']}")) == 1
    assert len(harness.issues(f"PurchaseOrder:Normal:{order['OrderNbr']}")) == 1
    assert harness.queued(harness.poll()) == 0  # the overlap re-reads them; nothing is queued twice


def test_a_check_pending_approval_or_rejected_gets_one_issue(stack, harness):
    for number, status in (("790001", "Pending Approval"), ("790002", "Rejected")):
        stack.acumatica.add_document("Check", ReferenceNbr=number, Hold=False, Status=status)
    harness.poll()
    harness.poll()
    for number in ("790001", "790002"):
        assert len(harness.issues(f"Check:Payment:{number}")) == 1


def test_a_tenant_rendering_stamps_without_an_offset_still_has_every_change_read(stack, harness):
    acumatica = stack.acumatica
    acumatica.set_clock(skew=timedelta(hours=6), render_offset=timedelta(hours=10), render_naive=True)  # read as UTC: 10h late
    try:
        acumatica.add_document("Bill", ReferenceNbr="791001", Amount=60, Balance=60, Hold=True)
        harness.poll()
        acumatica.update_document("Bill", ("Bill", "791001"), Amount=65, Balance=65)
        acumatica.add_document("Bill", ReferenceNbr="791002", Hold=True)
        harness.poll()
        (issue,) = harness.issues("Bill:Bill:791001")
        assert "65.00 USD" in stack.jira.issue(issue["key"])["fields"]["summary"]
        assert len(harness.issues("Bill:Bill:791002")) == 1
        assert harness.queued(harness.poll()) == 0
    finally:
        acumatica.set_clock(render_naive=False)
