"""``python -m tests.reliability [--quick]``: print the fault matrix; exit 1 if a cell that must be 0 is not."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make reliability", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 documents per fault instead of 25")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # the faults are expected; the matrix is the report
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
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
