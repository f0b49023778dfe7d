"""``python -m bench [name ...] [--quick] [--json FILE]``: run the benchmarks and print their figures.

Exits 1 when a benchmark's own correctness check fails (a fast figure for wrong output is not a result).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from types import ModuleType

from bench import Result, backlog, classify, coldstart, webhook
from bench.report import render
from connector.sync import PollOptions

BENCHMARKS: dict[str, ModuleType] = {"backlog": backlog, "classify": classify, "webhook": webhook,
                                     "coldstart": coldstart}


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of document counts: {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("document counts must be positive")
    return sizes


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench",
                                     description="Run the connector's benchmarks and print their figures.")
    parser.add_argument("names", nargs="*", metavar="name", help=f"benchmarks to run: {', '.join(BENCHMARKS)} "
                                                                  "(default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes: the whole suite in under a minute")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON to FILE")
    backlog_options = parser.add_argument_group("backlog")
    backlog_options.add_argument("--documents", type=_sizes, metavar="N[,N...]",
                                 help="backlog sizes (default 5000,50000; quick 500,2000)")
    backlog_options.add_argument("--budget", type=float, metavar="SECONDS",
                                 help="time budget of each poll run (default: the PollerFunction timeout, 300 s; "
                                      "quick 21 s); shrink it to exercise more runs")
    backlog_options.add_argument("--page-size", type=int, metavar="N", help="Acumatica page size (default 500)")
    backlog_options.add_argument("--no-tracemalloc", action="store_true",
                                 help="skip memory tracing (tracemalloc slows the poller's own Python code)")
    arguments = parser.parse_args(argv)
    unknown = [name for name in arguments.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    safety = PollOptions().safety_seconds
    if arguments.budget is not None and arguments.budget <= safety:
        parser.error(f"--budget must exceed the poller's {safety:g} s safety margin (it stops a run that close to the "
                     "limit)")
    return arguments


def _config(name: str, arguments: argparse.Namespace) -> object:
    config = BENCHMARKS[name].QUICK if arguments.quick else BENCHMARKS[name].DEFAULT
    if name != "backlog":
        return config
    overrides: dict[str, object] = {}
    if arguments.documents:
        overrides["sizes"] = arguments.documents
    if arguments.budget is not None:
        overrides["budget_seconds"] = arguments.budget
    if arguments.page_size is not None:
        overrides["page_size"] = arguments.page_size
    if arguments.no_tracemalloc:
        overrides["trace_memory"] = False
    return dataclasses.replace(config, **overrides)


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(argv)
    results: list[Result] = []
    for name in arguments.names or list(BENCHMARKS):
        started = time.perf_counter()
        result = BENCHMARKS[name].run(_config(name, arguments))
        result.add("benchmark wall time", time.perf_counter() - started, "s")
        results.append(result)
        print(render(result), end="\n\n", flush=True)
    if arguments.json:
        arguments.json.write_text(json.dumps([r.to_json() for r in results], indent=2) + "\n")
        print(f"wrote {arguments.json}")
    failed = [r.benchmark for r in results if not r.passed]
    if failed:
        print(f"checks failed in: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
