"""The poller: entities take turns at going first, and stopping before the time limit is not an error."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from connector.errors import RetryLater
from connector.sync import PollOptions, first_turn, run_poll
from tests.fakes import FakeAcumatica, make_doc

ENTITIES = ("Bill", "PurchaseOrder", "Check")
START = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)


class ListQueue:
    def __init__(self):
        self.sent = []

    def send(self, messages):
        self.sent.extend(messages)


@pytest.mark.parametrize("period_minutes", [1, 3, 5, 6, 15])
def test_every_entity_goes_first_in_a_fair_share_of_runs_whatever_the_schedule(period_minutes):
    ticks = [START + timedelta(minutes=period_minutes * n) for n in range(300)]
    firsts = Counter(ENTITIES[first_turn(ENTITIES, tick)] for tick in ticks)
    assert set(firsts) == set(ENTITIES)
    assert min(firsts.values()) >= 300 / len(ENTITIES) * 0.6


def test_a_backlog_in_one_entity_does_not_starve_the_others(store):
    """Each run has time for one entity only: over a few runs every entity is polled."""
    acu = FakeAcumatica(make_doc(), make_doc("PurchaseOrder", "PO1", status="On Hold"),
                        make_doc("Check", "CK1", status="On Hold"))
    polled: set[str] = set()
    for run in range(12):
        budget = iter([100.0] + [1.0] * 100)  # enough for the first entity only
        tick = START + timedelta(minutes=5 * run)
        reports, failures = run_poll(ENTITIES, documents=acu, store=store, queue=ListQueue(),
                                     options=PollOptions(safety_seconds=20.0), now=lambda: tick,
                                     seconds_left=lambda: next(budget), correlation_id=f"run-{run}")
        assert failures == {}  # out of time is no error: nothing to alarm on
        polled |= {r.entity for r in reports if r.pages}
        assert {r.entity for r in reports} == set(ENTITIES)
    assert polled == set(ENTITIES)


def test_a_long_retry_after_stops_the_entity_without_an_error(store):
    class Throttled(FakeAcumatica):
        def changed_pages(self, entity, since, *, skip=0, page_size=500):
            raise RetryLater("acme.example.com asked to wait 900 s", 900.0)

    reports, failures = run_poll(("Bill",), documents=Throttled(), store=store, queue=ListQueue(),
                                 options=PollOptions(), now=lambda: START, seconds_left=lambda: 250.0,
                                 correlation_id="c")
    assert failures == {} and [r.completed for r in reports] == [False]
