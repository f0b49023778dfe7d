"""``python -m bench [name ...] [--quick] [--json FILE] [--markdown FILE]``: run the benchmarks, print their figures.

Exits 1 when a benchmark's own correctness check fails (a fast figure for wrong output is not a result).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

from bench import Result, backlog, classify, coldstart, flow, routing, webhook
from bench.report import render, render_markdown
from connector.sync import PollOptions

BENCHMARKS: dict[str, ModuleType] = {"backlog": backlog, "classify": classify, "webhook": webhook,
                                     "flow": flow, "routing": routing, "coldstart": coldstart}


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
    parser.add_argument("--markdown", type=Path, metavar="FILE",
                        help="also write the results as Markdown to FILE, with the machine, date and commit")
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


def _provenance(arguments: argparse.Namespace) -> list[str]:
    """Machine, date and commit, so a figure is never read without knowing where and on what it was measured."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else "unknown"

    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    memory = next((line.split(":", 1)[1].strip() for line in _read("/proc/meminfo").splitlines()
                   if line.startswith("MemTotal")), "unknown")
    dirty = " (with uncommitted changes)" if git("status", "--porcelain") else ""
    return [f"- machine: {platform.node()}, {cpu}, {os.cpu_count()} cores (shared), {memory} memory, "
            f"{platform.platform()}",
            f"- python: {platform.python_version()} ({sys.executable})",
            f"- date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}",
            f"- commit: {git('rev-parse', 'HEAD')}{dirty}",
            f"- command: `python -m bench {' '.join(sys.argv[1:])}`".rstrip(),
            "- benchmarks print figures; tests never assert timings. A goal marked **MISSED** is explained in its "
            "row or in the notes."]


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


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
    if arguments.markdown:
        arguments.markdown.write_text(render_markdown(results, _provenance(arguments)) + "\n")
        print(f"wrote {arguments.markdown}")
    failed = [r.benchmark for r in results if not r.passed]
    if failed:
        print(f"checks failed in: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
