"""``make reliability`` in quick mode, as part of ``make test``: every cell that must be 0 is 0."""

from __future__ import annotations

import pytest

from tests.reliability.matrix import COLUMNS, PERMANENT, SCENARIOS, Row, run_matrix, table

DOCUMENTS = 2


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return run_matrix(documents=DOCUMENTS)


def test_every_cell_of_the_fault_matrix_that_must_be_zero_is_zero(rows):
    assert [row.fault for row in rows] == list(SCENARIOS)
    broken = {row.fault: row.failures() for row in rows if row.failures()}
    assert broken == {}, "\n" + table(rows)


def test_permanent_faults_reach_the_dlq_at_once_and_the_replay_clears_it(rows):
    permanent = [row for row in rows if row.fault in PERMANENT]
    assert permanent and all(row.counts["dead-lettered"] == DOCUMENTS and row.counts["DLQ after replay"] == 0
                             for row in permanent)


def test_the_table_has_a_column_per_count_and_a_line_per_fault(rows):
    lines = table(rows).splitlines()
    assert len(lines) == len(SCENARIOS) + 2
    assert all(column in lines[0] for column in COLUMNS)
