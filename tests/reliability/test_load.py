"""The load scenario of ``make reliability``, scaled down for ``make test``: the same code path in well under a minute."""

from __future__ import annotations

import pytest

from tests.reliability.load import MUST_BE_ZERO, load_table, run_load


@pytest.fixture(scope="module")
def report():
    return run_load(deliveries=60, documents=300, exception_rate=0.1)


def test_every_load_figure_that_must_be_zero_is_zero(report):
    assert report.failures() == [], "\n" + load_table(report)


def test_the_load_really_ran_every_delivery_the_poll_and_the_concurrent_worker(report):
    assert sum(report.answers.values()) == 60 and set(report.answers) <= {200, 202}
    assert report.answers[202] and report.answers[200]  # resolutions queued, other updates ignored
    assert report.should_act > 0 and report.releases == report.should_act
    assert report.exceptions > report.should_act and report.issues_created == report.exceptions
    assert 1 < report.peak_concurrency <= report.max_concurrency


def test_the_table_has_a_line_per_figure(report):
    table = load_table(report)
    assert all(name in table for name in MUST_BE_ZERO) and "WorkerMaxConcurrency" in table
