"""`make demo` is a promise to new users: it must keep printing the whole round trip and exit 0."""

from __future__ import annotations

import io

from connector_local.demo import run_demo


def test_demo_round_trip_exits_zero_and_prints_every_step():
    out = io.StringIO()
    assert run_demo(out) == 0, out.getvalue()
    text = out.getvalue()
    for expected in ("1. Schedule tick", "issue created: Unbalanced", "healthy: no issue",
                     "2. Acumatica's clock runs 3h17m behind", "+10:00", "amount: 500.00 USD -> 450.00 USD",
                     "│ AP bill 000102 | V000002 | 450.00 USD | On hold │",
                     "ReleaseBill (Balanced -> Open)", "documents queued: 0, Jira calls: 0",
                     "dead-letter queue depth: 0", "Round trip complete"):
        assert expected in text
