"""The clock bound against a hosted tenant: the ``Date`` header comes from the web node, ``LastModifiedDateTime`` from
the database server, and their clocks differ. The poller learns the offset from the data: a web node that merely
lags the stamps costs no re-read and no rewind, while a clock put back (both moving together, as on one server) is
still caught by the next poll, whatever the web node's offset."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.sync import PollOptions, poll_entity
from tests.acumatica.test_poll_against_sandbox import polling

_runs = itertools.count()


def _poll_reporting(client, store, queue, lambda_now):
    before = len(queue.sent)
    report = poll_entity("Bill", documents=client, store=store, queue=queue, options=PollOptions(page_size=3),
                         now=lambda: lambda_now[0], seconds_left=lambda: 300.0, correlation_id="c")
    return report, {m.external_id for m in queue.sent[before:]}


@pytest.mark.parametrize("web_lag", [timedelta(minutes=90), timedelta(seconds=40), -timedelta(hours=2)])
def test_a_web_node_whose_clock_differs_from_the_databases_costs_no_rewind(sandbox, client, web_lag):
    """Before the offset was learned, a web node 90 minutes behind made every poll start again from its clock."""
    run = next(_runs)
    lambda_now = [datetime.now(timezone.utc)]
    started = lambda_now[0]

    def move_clocks() -> None:  # the database's clock runs with the Lambda's; the web node's lags it
        elapsed = lambda_now[0] - started
        sandbox.set_clock(skew=elapsed, web_skew=elapsed - web_lag)

    move_clocks()
    numbers = [sandbox.add_document("Bill", ReferenceNbr=f"W{run:03d}{n}", Hold=True)["ReferenceNbr"]
               for n in range(5)]
    with polling(client, f"web-{run}", lambda_now) as (_, queue, store):
        _poll_reporting(client, store, queue, lambda_now)
        for round_ in range(6):
            lambda_now[0] += timedelta(minutes=5)
            move_clocks()
            edited = {f"Bill:Bill:{numbers[n]}" for n in (round_ % 5, (round_ + 2) % 5)}
            for external_id in edited:
                sandbox.update_document("Bill", ("Bill", external_id.rsplit(":", 1)[1]),
                                        Description=f"round {round_}")
            pages = len([e for e in sandbox.requests_log if e.path.endswith("/Bill")])
            report, queued = _poll_reporting(client, store, queue, lambda_now)
            assert edited <= queued
            assert report.rewinds == 0, store.get_cursor("Bill").last_rewind
            assert len([e for e in sandbox.requests_log if e.path.endswith("/Bill")]) - pages == report.pages
        cursor = store.get_cursor("Bill")
        assert cursor.last_rewind is None
        # the learned lead is how far the stamps run ahead of the web node's Date: about its lag, never more
        assert web_lag - timedelta(minutes=6) <= cursor.lead <= web_lag + timedelta(seconds=2)


jumps = st.timedeltas(min_value=-timedelta(hours=6), max_value=timedelta(hours=6)) | st.just(timedelta(0))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(web_lag=st.timedeltas(min_value=-timedelta(hours=3), max_value=timedelta(hours=3)) | st.just(timedelta(0)),
       rounds=st.lists(st.tuples(st.integers(1, 120), st.lists(st.integers(0, 4), max_size=3), jumps,
                                 st.lists(st.integers(0, 4), max_size=3)), min_size=1, max_size=4))
def test_no_edit_is_missed_and_no_pass_rewinds_without_a_step_back_whatever_the_web_nodes_offset(sandbox, client,
                                                                                                web_lag, rounds):
    """Server-wide jumps (database and web node together) between polls, with the web node at its own offset: every
    edit since the previous poll reaches the next one, and a poll starts again earlier only once the clock has gone
    back (a forward jump, or an offset alone, never causes one)."""
    run = next(_runs)
    for record in sandbox.documents("Bill"):
        sandbox.delete_document("Bill", (record["Type"], record["ReferenceNbr"]))
    lambda_now = [datetime.now(timezone.utc)]
    started, jumped = lambda_now[0], [timedelta(0)]

    def move_clocks() -> None:
        moved = (lambda_now[0] - started) + jumped[0]
        sandbox.set_clock(skew=moved, web_skew=moved - web_lag)

    move_clocks()
    numbers = [sandbox.add_document("Bill", ReferenceNbr=f"K{run:03d}{n}", Hold=True)["ReferenceNbr"]
               for n in range(5)]
    went_back = False
    with polling(client, f"webjump-{run}", lambda_now) as (_, queue, store):
        _poll_reporting(client, store, queue, lambda_now)
        for minutes, before_jump, jump, after_jump in rounds:
            lambda_now[0] += timedelta(minutes=minutes)
            move_clocks()
            changed = set()
            for n in before_jump:
                sandbox.update_document("Bill", ("Bill", numbers[n]), Description=f"before {len(queue.sent)}")
                changed.add(f"Bill:Bill:{numbers[n]}")
            jumped[0] += jump
            move_clocks()
            went_back = went_back or jump < -timedelta(seconds=3)
            for n in after_jump:
                sandbox.update_document("Bill", ("Bill", numbers[n]), Description=f"after {len(queue.sent)}")
                changed.add(f"Bill:Bill:{numbers[n]}")
            report, queued = _poll_reporting(client, store, queue, lambda_now)
            assert not changed - queued, f"missed after a jump of {jump} ({store.get_cursor('Bill')})"
            if not went_back:
                assert report.rewinds == 0, store.get_cursor("Bill").last_rewind
