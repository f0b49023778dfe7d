"""classify: the pure per-document work of a poll (rules, snapshot, fingerprint, and ``decide`` around them).

This is the CPU the poller spends on each document once it has been read; the rest of a poll is I/O. Each figure is
the best of several repeats over the same documents (the least disturbed by other processes on the machine).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from bench import Result
from bench.mix import bill_document, expected_rule, modified_at
from connector.model import Document
from connector.rules import classify, fingerprint, snapshot
from connector.sync import decide


@dataclass(frozen=True)
class Config:
    documents: int = 20_000
    repeats: int = 5


DEFAULT = Config()
QUICK = Config(documents=5_000, repeats=3)


def _best_rate(work: Callable[[], object], count: int, repeats: int) -> tuple[float, float]:
    """(items per second, microseconds per item) of the fastest of ``repeats`` runs."""
    best = min(_timed(work) for _ in range(max(repeats, 1)))
    return count / best, best / count * 1e6


def _timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def run(config: Config) -> Result:
    now = datetime.now(timezone.utc)
    documents: list[Document] = [bill_document(i, modified_at(i, config.documents, now))
                                 for i in range(config.documents)]
    result = Result("classify", f"{config.documents:,} Bills, pure per-document work, best of {config.repeats}")

    findings = [classify(d) for d in documents]
    snapshots = [snapshot(d, f) for d, f in zip(documents, findings)]

    def classify_all() -> None:
        for doc in documents:
            classify(doc)

    def snapshot_all() -> None:
        for doc, finding in zip(documents, findings):
            snapshot(doc, finding)

    def fingerprint_all() -> None:
        for snap in snapshots:
            fingerprint(snap)

    def pipeline() -> None:
        for doc in documents:
            fingerprint(snapshot(doc, classify(doc)))

    def decide_pages() -> None:
        for start in range(0, len(documents), 500):
            decide(documents[start:start + 500], {}, "bench")

    for name, work, note in (
        ("classify", classify_all, "rules.classify alone"),
        ("snapshot", snapshot_all, "rules.snapshot alone"),
        ("fingerprint", fingerprint_all, "rules.fingerprint alone (canonical JSON + SHA-256)"),
        ("classify + snapshot + fingerprint", pipeline, "what the poller and the worker do per document"),
        ("decide (pages of 500, no stored state)", decide_pages, "the above plus building the work messages"),
    ):
        rate, micros = _best_rate(work, len(documents), config.repeats)
        result.add(name, rate, "docs/s", f"{micros:.1f} µs/doc; {note}")

    rules = Counter(f.rule if f else None for f in findings)
    wrong = sum(1 for i, f in enumerate(findings) if (f.rule if f else None) != expected_rule(i))
    result.check("every document classified as the mix intends", wrong == 0,
                 f"{wrong} misclassified; " + ", ".join(f"{rule or 'healthy'} {n:,}" for rule, n in rules.items()))
    messages, unchanged, healthy = decide(documents, {}, "bench")
    exceptions = sum(1 for f in findings if f)
    result.check("decide queues exactly the exceptions", len(messages) == exceptions and unchanged == 0
                 and healthy == len(documents) - exceptions,
                 f"{len(messages):,} messages for {exceptions:,} exceptions, {healthy:,} healthy skipped")
    return result
