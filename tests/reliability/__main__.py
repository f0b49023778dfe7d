"""``python -m tests.reliability [--quick]``: print the fault matrix, then the load scenario; exit 1 if a cell or a
figure that must be 0 is not."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
EXCEPTION_RATE = 0.05
"""The share of the polled documents that are exceptions (stuck AP documents in a month-end backlog); at 5% the
full run stays within about ten minutes on two shared cores."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make reliability", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="3 documents per fault instead of 25; 60 deliveries during a 300-document poll instead "
                             "of 1,000 during a 10,000-document one")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # the faults are expected; the matrix is the report
    from tests.reliability.load import load_table, run_load
    from tests.reliability.matrix import MAX_RECEIVE_COUNT, run_matrix, table

    documents = 3 if args.quick else 25
    started = time.monotonic()
    rows = run_matrix(documents)
    print(f"Fault matrix: {documents} documents per fault, MaxReceiveCount {MAX_RECEIVE_COUNT}, quick "
          "redeliveries, replay 1 min after the fix")
    print(table(rows))
    broken = [(row.fault, column) for row in rows for column in row.failures()]
    print(f"\n{len(rows)} faults in {time.monotonic() - started:.1f} s; every cell must be 0, except dead-lettered "
          f"for a permanent error (*), which belongs in the DLQ at once and is replayed after the fix")
    for fault, column in broken:
        print(f"NOT ZERO: {fault}: {column}", file=sys.stderr)

    deliveries, documents = (60, 300) if args.quick else (1000, 10_000)
    report = run_load(deliveries, documents, EXCEPTION_RATE)
    print(f"\nLoad: {deliveries:,} Jira webhook deliveries in a burst (a third re-sent, some out of order, some 30 "
          f"minutes late) during a {documents:,}-document poll, {EXCEPTION_RATE:.0%} of them exceptions")
    print(load_table(report))
    for figure in report.failures():
        print(f"NOT ZERO: load: {figure}", file=sys.stderr)
    return 1 if broken or report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
