"""The load scenario of ``make reliability``: a burst of Jira webhook deliveries while a large poll runs, through the
local stack's real parts (the HTTP API gateway and the webhook handler, moto's SQS FIFO queue, the worker behind the
event source mapping with template.yaml's ``WorkerMaxConcurrency``, the Acumatica and Jira sandboxes).

The burst is what Jira's delivery service can do to a receiver: a third of the deliveries are re-sent (same
``X-Atlassian-Webhook-Identifier``), some arrive out of order (a resolution after the reopen that followed it), some
late by 30 minutes of Jira's clock (a resolution of an issue reopened since). Only the resolutions that still stand
when the worker re-reads the issue may act, once each. Every figure is counted from what the systems saw, never from
the connector's own counters: issues by the Jira sandbox, actions by the Acumatica sandbox's action log, answers by
the HTTP client, depths by SQS, concurrency by the event source mapping.
"""

from __future__ import annotations

import os
import random
import threading
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from typing import Any

import requests

from connector_local.stack import LocalStack

HTTP_API_LIMIT_SECONDS = 30.0
"""API Gateway's HTTP API integration timeout: an answer later than this is a 503 to Jira, which then retries."""
JIRA_RETRIED_STATUSES = frozenset({408, 409, 425, 429})
"""Jira re-sends a delivery answered with these, or a 5xx (and never one answered with another 4xx)."""
JIRA_ATTEMPTS = 5
NO_ANSWER = 0
"""The status recorded for an attempt that got no HTTP answer (refused or reset connection, timeout)."""
ACCEPTED = frozenset({200, 202})
"""200: ignored (not a resolution), 202: queued. Anything else leaves Jira retrying or giving up."""
LATE_SECONDS = 1800.0
SENDERS = 16
"""Deliveries in flight at once: Jira's delivery service sends in parallel."""
MUST_BE_ZERO = ("duplicate issues", "missing issues", "double posts", "wrongly acted", "resolutions not acted",
                "refused deliveries", "DLQ")


@dataclass
class LoadReport:
    deliveries: int
    documents: int
    exception_rate: float
    answers: Counter[int] = field(default_factory=Counter)
    retries: int = 0
    slowest_answer: float = 0.0
    exceptions: int = 0
    issues_created: int = 0
    should_act: int = 0
    releases: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MUST_BE_ZERO, 0))
    peak_concurrency: int = 0
    max_concurrency: int = 0
    poll_ticks: int = 0
    wall_seconds: float = 0.0

    def failures(self) -> list[str]:
        broken = [name for name in MUST_BE_ZERO if self.counts[name]]
        if self.slowest_answer >= HTTP_API_LIMIT_SECONDS:
            broken.append("slowest answer")
        if self.peak_concurrency > self.max_concurrency:
            broken.append("peak worker concurrency")
        return broken


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: dict[str, str]
    what: str


def _plan(deliveries: int) -> dict[str, int]:
    """How the burst is made up: a third re-sends; of the first sends, resolutions that stand, out-of-order and late
    pairs (reopen, then the resolution it overtook), and other updates the webhook ignores."""
    duplicates = deliveries // 3
    unique = deliveries - duplicates
    pairs = max(1, unique * 3 // 40)
    act = max(1, unique * 3 // 10)
    return {"duplicates": duplicates, "act": act, "out of order": pairs, "late": pairs,
            "other": unique - act - 4 * pairs}


def run_load(deliveries: int, documents: int, exception_rate: float = 0.1, seed: int = 11) -> LoadReport:
    """Run the scenario on a stack of its own. The handlers' metric lines (stdout, which is CloudWatch Logs on Lambda)
    go nowhere: Powertools prints a full metric set even with metrics disabled (and warns of an invocation that
    added none), and the table is the report."""
    with open(os.devnull, "w") as logs, redirect_stdout(logs), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
        return _run(deliveries, documents, exception_rate, seed)


def _run(deliveries: int, documents: int, exception_rate: float, seed: int) -> LoadReport:
    plan = _plan(deliveries)
    report = LoadReport(deliveries, documents, exception_rate)
    rng = random.Random(seed)
    with LocalStack.start({}, quiet=True, worker_concurrency=None) as stack:
        acumatica, jira = stack.acumatica, stack.jira
        assert acumatica is not None and jira is not None
        report.max_concurrency = stack.aws.worker_max_concurrency
        others = max(1, plan["other"] // 4)
        groups = {name: [acumatica.add_document("Bill", Hold=True)["ReferenceNbr"] for _ in range(size)]
                  for name, size in (("act", plan["act"]), ("out of order", plan["out of order"]),
                                     ("late", plan["late"]), ("other", others))}
        _poll_until_complete(stack)  # the earlier poll: the issues people will resolve exist first
        stack.drain()
        issue_of = {number: _issue_key(jira, number) for numbers in groups.values() for number in numbers}

        burst = _people_act(jira, groups, issue_of, plan["other"], rng)
        backlog = [acumatica.add_document("Bill", Hold=rng.random() < exception_rate) for _ in range(documents)]
        seeded = [number for numbers in groups.values() for number in numbers]
        exceptions = set(seeded) | {record["ReferenceNbr"] for record in backlog if record["Hold"]}

        started = time.monotonic()
        stop = threading.Event()
        pump = threading.Thread(target=stack.pump.run_forever, args=(stop,), name="load-pump", daemon=True)
        pump.start()
        poller = threading.Thread(target=lambda: setattr(report, "poll_ticks", _poll_until_complete(stack)),
                                  name="load-poll", daemon=True)
        poller.start()
        _send(f"{stack.gateway.url}/jira/webhook", _with_resends(burst, plan["duplicates"], rng), report)
        poller.join()
        stop.set()
        pump.join()
        stack.drain()
        report.wall_seconds = time.monotonic() - started

        _count(report, stack, exceptions, set(groups["act"]))
    return report


def _poll_until_complete(stack: LocalStack) -> int:
    """Schedule ticks until every entity's pass completed (a pass that runs out of time resumes on the next)."""
    ticks = 0
    while True:
        ticks += 1
        answer = stack.tick("PollerFunction")
        if all(entry["completed"] for entry in answer["reports"]):
            return ticks


def _issue_key(jira: Any, number: str) -> str:
    (issue,) = jira.issues_with_external_id(f"Bill:Bill:{number}")
    return str(issue["key"])


def _people_act(jira: Any, groups: dict[str, list[str]], issue_of: dict[str, str], other_updates: int,
                rng: random.Random) -> list[Delivery]:
    """People move the issues in Jira (deliveries held back), in units sent in order: a standing resolution; a
    resolution overtaken by the reopen after it; a resolution 30 minutes old by Jira's clock, reopened since; and
    moves between open statuses, which the webhook must ignore."""

    def moved(number: str, status: str, what: str) -> list[Delivery]:
        return [Delivery(body, headers, what) for body, headers in jira.move_issue(issue_of[number], status)]

    units: list[list[Delivery]] = [moved(number, "Done", "act") for number in groups["act"]]
    for number in groups["out of order"]:
        resolved = moved(number, "Done", "out of order")
        units.append(moved(number, "To Do", "reopen") + resolved)
    late = {number: moved(number, "Done", "late") for number in groups["late"]}
    jira.advance_clock(LATE_SECONDS)
    units += [moved(number, "To Do", "reopen") + resolved for number, resolved in late.items()]
    for n in range(other_updates):
        number = groups["other"][n % len(groups["other"])]
        units.append(moved(number, "In Progress" if n // len(groups["other"]) % 2 == 0 else "To Do", "other"))
    rng.shuffle(units)
    return [delivery for unit in units for delivery in unit]


def _with_resends(burst: list[Delivery], resends: int, rng: random.Random) -> list[Delivery]:
    """``resends`` deliveries sent again, each somewhere after its first send, marked as Jira marks a retry."""
    deliveries = list(burst)
    for original in rng.choices(burst, k=resends):
        first = deliveries.index(original)
        again = Delivery(original.body, {**original.headers, "X-Atlassian-Webhook-Retry": "1"}, original.what)
        deliveries.insert(rng.randint(first + 1, len(deliveries)), again)
    return deliveries


def _send(url: str, deliveries: list[Delivery], report: LoadReport) -> None:
    """Deliver as Jira does: in parallel, each re-sent on the statuses Jira retries; every answer timed."""
    lock = threading.Lock()

    def deliver(delivery: Delivery) -> None:
        for attempt in range(1, JIRA_ATTEMPTS + 1):
            started = time.monotonic()
            try:
                status = requests.post(url, data=delivery.body, headers=delivery.headers, timeout=60).status_code
            except requests.RequestException:
                status = NO_ANSWER
            elapsed = time.monotonic() - started
            with lock:
                report.slowest_answer = max(report.slowest_answer, elapsed)
                if attempt < JIRA_ATTEMPTS and (status in JIRA_RETRIED_STATUSES or status >= 500
                                                or status == NO_ANSWER):
                    report.retries += 1
                    continue
                report.answers[status] += 1
                return

    with ThreadPoolExecutor(SENDERS, thread_name_prefix="jira-delivery") as senders:
        list(senders.map(deliver, deliveries))


def _count(report: LoadReport, stack: LocalStack, exceptions: set[str], should_act: set[str]) -> None:
    """The figures, from the sandboxes' and the queues' own records."""
    assert stack.acumatica is not None and stack.jira is not None
    field_id = stack.jira.external_id_field
    issues = Counter(issue["fields"].get(field_id) for issue in stack.jira.issues())
    wanted = {f"Bill:Bill:{number}" for number in exceptions}
    report.exceptions = len(wanted)
    report.issues_created = sum(1 for external_id in wanted if issues[external_id])
    report.counts["missing issues"] = len(wanted) - report.issues_created
    report.counts["duplicate issues"] = sum(n - 1 for n in issues.values() if n > 1)
    actions = Counter((keys[1], action) for entity, keys, action, outcome in stack.acumatica.action_log
                      if entity == "Bill" and outcome == "completed")
    report.should_act = len(should_act)
    report.releases = sum(n for (number, action), n in actions.items() if action == "ReleaseBill")
    report.counts["double posts"] = sum(n - 1 for n in actions.values() if n > 1)
    report.counts["wrongly acted"] = len({number for number, _ in actions} - should_act)
    report.counts["resolutions not acted"] = len(should_act - {number for number, action in actions
                                                               if action == "ReleaseBill"})
    report.counts["refused deliveries"] = sum(n for status, n in report.answers.items() if status not in ACCEPTED)
    sqs = stack.aws.client("sqs")
    depth = sqs.get_queue_attributes(QueueUrl=stack.aws.outputs["DeadLetterQueueUrl"],
                                     AttributeNames=["ApproximateNumberOfMessages",
                                                     "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    report.counts["DLQ"] = sum(int(value) for value in depth.values())
    report.peak_concurrency = stack.pump.stats.peak_concurrency


def load_table(report: LoadReport) -> str:
    """The "Load" table: each figure beside what it is measured against."""
    answered = ", ".join(f"{status}: {n}" for status, n in sorted(report.answers.items()))
    rows = [
        ("deliveries sent / answered", f"{report.deliveries} / {sum(report.answers.values())} ({answered}); "
                                       f"{report.retries} re-sent on a status Jira retries"),
        ("slowest answer", f"{report.slowest_answer:.2f} s (HTTP API limit {HTTP_API_LIMIT_SECONDS:.0f} s)"),
        ("issues created / exceptions", f"{report.issues_created} / {report.exceptions}"),
        ("releases performed / resolutions that should act", f"{report.releases} / {report.should_act}"),
        *((name, str(report.counts[name])) for name in MUST_BE_ZERO),
        ("peak worker concurrency / WorkerMaxConcurrency", f"{report.peak_concurrency} / {report.max_concurrency}"),
        ("poll ticks for the pass", str(report.poll_ticks)),
        ("wall time", f"{report.wall_seconds:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'figure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name.ljust(width)} | {value} |" for name, value in rows]
    return "\n".join(lines)
