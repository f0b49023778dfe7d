"""flow: what the connector costs per document against its licence-limited neighbours, through the real handlers.

The embedded local stack (``connector_local.stack.LocalStack``: moto with the template's resources, the Acumatica and
Jira sandboxes, the HTTP API gateway and the queue pump) runs the PollerFunction, WorkerFunction and WebhookFunction
as deployed. Every call is counted where it lands: Acumatica requests in the sandbox's request log, Jira REST calls
in the Jira sandbox's exchanges, DynamoDB and SQS requests by a botocore ``before-call`` hook on the session the
handlers' clients come from. The pump's own ReceiveMessage/DeleteMessageBatch calls (the event source mapping's, not
the connector's) are left out, as the hook is registered after the pump's client exists.

Phases: a first poll of the backlog and the work it queues (new issues); a re-poll of every document with nothing
changed (the watermark removed, so every document is read again); resolutions of issues in Jira, each timed from the
status change to the Acumatica action being confirmed; and, in the same process against the same sandboxes, a naive
baseline that re-reads every document and searches and writes Jira for each on every poll.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable

from bench import Result
from bench.mix import bill_fields, is_exception, modified_at

SQS_CONSUMER_OPERATIONS = frozenset({"ReceiveMessage", "DeleteMessage", "DeleteMessageBatch", "GetQueueAttributes",
                                     "ChangeMessageVisibility", "ChangeMessageVisibilityBatch"})
DYNAMODB_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})


@dataclass(frozen=True)
class Prices:
    """On-demand list prices in USD (us-east-1, as inputs: change them for your region and contract)."""

    lambda_gb_second: float = 0.0000166667
    lambda_request: float = 0.20 / 1e6
    dynamodb_write_request: float = 1.25 / 1e6
    dynamodb_read_request: float = 0.25 / 1e6
    sqs_fifo_request: float = 0.50 / 1e6


@dataclass(frozen=True)
class Config:
    documents: int = 600
    resolutions: int = 200
    naive_documents: int = 200
    """Documents the naive baseline works through (its cost per document does not depend on the backlog)."""
    prices: Prices = field(default_factory=Prices)


DEFAULT = Config()
QUICK = Config(documents=200, resolutions=20, naive_documents=50)


class _AwsCalls:
    """Counts DynamoDB and SQS calls by operation, through botocore's event system."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls[(model.service_model.service_name, model.name)] += 1

    def snapshot(self) -> Counter[tuple[str, str]]:
        return Counter(self.calls)


class _Timed:
    """Wraps a handler to sum the seconds its invocations take (the billed duration, roughly)."""

    def __init__(self, handler: Callable[..., Any]) -> None:
        self.handler = handler
        self.seconds = 0.0
        self.invocations = 0
        self.last_return = 0.0

    def __call__(self, event: Any, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.handler(event, context)
        finally:
            self.last_return = time.perf_counter()
            self.seconds += self.last_return - started
            self.invocations += 1


@dataclass
class _Phase:
    acumatica: int = 0
    acumatica_pages: int = 0
    jira: int = 0
    jira_writes: int = 0
    aws: Counter[tuple[str, str]] = field(default_factory=Counter)
    seconds: float = 0.0

    def dynamodb(self, reads: bool | None = None) -> int:
        return sum(n for (service, op), n in self.aws.items() if service == "dynamodb"
                   and (reads is None or (op in DYNAMODB_READS) == reads))

    def sqs(self) -> int:
        return sum(n for (service, op), n in self.aws.items() if service == "sqs" and op not in SQS_CONSUMER_OPERATIONS)


def _measure(stack: Any, aws: _AwsCalls, action: Callable[[], Any]) -> _Phase:
    acumatica, jira, before = len(stack.acumatica.requests_log), len(stack.jira.exchanges()), aws.snapshot()
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    exchanges = stack.jira.exchanges()[jira:]
    requests = stack.acumatica.requests_log[acumatica:]
    return _Phase(acumatica=len(requests), acumatica_pages=sum(1 for r in requests if "$filter" in r.query),
                  jira=len(exchanges),
                  jira_writes=sum(1 for e in exchanges if e.get("method") in ("POST", "PUT", "DELETE")
                                  and "/search" not in str(e.get("path"))),
                  aws=aws.snapshot() - before, seconds=seconds)


def _naive(stack: Any, documents: int) -> _Phase:
    """Re-read every document and search and write Jira for each, as a connector without state would."""
    from connector.content import description, summary
    from connector.ports import IssueDraft
    from connector.rules import classify
    from connector.wiring import Wiring

    wiring = Wiring()
    acumatica, jira = wiring.acumatica, wiring.jira
    seen = 0
    for page in acumatica.changed_pages("Bill", datetime(1970, 1, 1, tzinfo=timezone.utc), page_size=100):
        for listed in page.documents:
            doc = acumatica.get(listed.key)
            if doc is None:
                continue
            finding = classify(doc)
            issue = jira.find_by_external_id(doc.key.external_id, ())
            if finding is None:
                seen += 1
                continue
            draft = IssueDraft(summary=summary(doc, finding), description=description(doc, finding, acumatica.base_url))
            if issue is None:
                jira.create_issue(replace(draft, external_id=doc.key.external_id))
            else:
                jira.update_issue(issue.key, draft)
            seen += 1
            if seen >= documents:
                return
        if seen >= documents or page.is_last:
            return


def run(config: Config) -> Result:
    import boto3

    from connector_local.stack import LocalStack

    n = config.documents
    result = Result("flow", f"{n:,} Bills ({sum(map(is_exception, range(n))):,} exceptions) through the real "
                            "handlers on the local stack; calls counted where they land")
    now = datetime.now(timezone.utc)
    with LocalStack.start({}, quiet=True) as stack:
        for index in range(n):
            stack.acumatica.add_document("Bill", **bill_fields(index, modified_at(index, n, now)))
        aws = _AwsCalls()
        boto3._get_default_session().events.register("before-call", aws)
        poller, worker = (_Timed(stack.functions[name].handler) for name in ("PollerFunction", "WorkerFunction"))
        stack.functions["PollerFunction"].handler, stack.functions["WorkerFunction"].handler = poller, worker
        exceptions = sum(1 for index in range(n) if is_exception(index))

        poll = _measure(stack, aws, lambda: stack.tick("PollerFunction"))
        work = _measure(stack, aws, stack.drain)
        issues = len(stack.jira.issues())
        result.check("every exception got exactly one issue", issues == exceptions, f"{issues:,}/{exceptions:,}")
        pages = poll.acumatica_pages
        result.add("Acumatica requests per 1,000 documents polled", round(poll.acumatica / n * 1000, 1), "",
                   f"{poll.acumatica} requests: {pages} list pages (up to 500 documents each, and a page for each "
                   "of the other configured entities, which have none), the rest the token grant and the "
                   "endpoint-version check once per container", goal="~ one per page",
                   met=poll.acumatica - pages <= 3)
        result.add("Acumatica requests per exception (worker)", round(work.acumatica / exceptions, 3), "",
                   f"{work.acumatica} requests for {exceptions:,} new issues: the poll's read is carried in the "
                   "message, and without an OwnerMap naming a buyer no bill's lines are read (the routing benchmark "
                   "measures the reads routing by purchase order costs)", goal="~0 (no re-read)",
                   met=work.acumatica / exceptions <= 0.05)
        result.add("Jira calls per new issue", round(work.jira / issues, 2), "",
                   f"{work.jira:,} calls ({work.jira_writes:,} writes) for {issues:,} issues", goal="<= 2",
                   met=work.jira / issues <= 2)

        table = stack.aws.client("dynamodb")
        table.delete_item(TableName=stack.aws.outputs["TableName"], Key={"PK": {"S": "WM#Bill"}, "SK": {"S": "WM"}})
        repoll = _measure(stack, aws, lambda: (stack.tick("PollerFunction"), stack.drain()))
        result.add("Jira calls per unchanged document on re-poll", round(repoll.jira / n, 4), "",
                   f"{repoll.jira} calls; every document re-read (watermark removed), {repoll.sqs()} SQS sends",
                   goal="0", met=repoll.jira == 0)
        result.add("Acumatica requests per 1,000 documents re-polled", round(repoll.acumatica / n * 1000, 1), "")

        total = _Phase(aws=poll.aws + work.aws)
        result.add("DynamoDB requests per document (poll + work)", round(total.dynamodb() / n, 3), "",
                   f"{total.dynamodb(reads=True):,} reads, {total.dynamodb(reads=False):,} writes; per exception "
                   f"{total.dynamodb() / exceptions:.1f}")
        result.add("SQS requests per document (poll + work)", round(total.sqs() / n, 3), "",
                   f"{total.sqs()} SendMessageBatch calls (ten messages each); the event source mapping's receives "
                   "and deletes are not counted")

        latencies = _resolutions(stack, worker, config.resolutions)
        if latencies:
            result.add("webhook -> release confirmed, p50", statistics.median(latencies) * 1000, "ms",
                       f"{len(latencies)} resolutions, each: Jira status change, signed delivery, queue, worker, "
                       "Acumatica action, re-read")
            result.add("webhook -> release confirmed, p95", statistics.quantiles(latencies, n=20)[-1] * 1000, "ms")

        _costs(result, config.prices, n, poll, work, poller, worker, stack)

        naive = _measure(stack, aws, lambda: _naive(stack, config.naive_documents))
        m = config.naive_documents
        result.add("naive: Acumatica requests per 1,000 documents polled", round(naive.acumatica / m * 1000, 1), "",
                   f"re-reads every document ({m} documents)")
        result.add("naive: Jira calls per document per poll", round(naive.jira / m, 2), "",
                   "a search for every document, and a create or update for every exception, also when nothing "
                   "changed")
        result.add("connector vs naive: Acumatica requests", round((poll.acumatica + work.acumatica) / n /
                                                                   max(naive.acumatica / m, 1e-9), 3), "x",
                   "first poll and its work, per document")
    return result


def _resolutions(stack: Any, worker: _Timed, count: int) -> list[float]:
    """Resolve ``count`` issues one at a time, each timed from the status change in Jira to the return of the worker
    invocation that acted on it (the pump's next, empty, long-polling receive is not part of it)."""
    issues = [issue for issue in stack.jira.issues() if issue["fields"]["status"]["name"] != "Done"][:count]
    latencies: list[float] = []
    for issue in issues:
        started = time.perf_counter()
        stack.jira.resolve_issue(issue["key"], "Done")
        stack.pump.drain(max_batches=1)
        if worker.last_return > started:
            latencies.append(worker.last_return - started)
    stack.drain()
    return latencies


def _costs(result: Result, prices: Prices, n: int, poll: _Phase, work: _Phase, poller: _Timed, worker: _Timed,
           stack: Any) -> None:
    per = 10_000 / n
    memory = {name: stack.functions[name].memory_mb / 1024 for name in ("PollerFunction", "WorkerFunction")}
    gb_seconds = (poller.seconds * memory["PollerFunction"] + worker.seconds * memory["WorkerFunction"]) * per
    requests = (poller.invocations + worker.invocations) * per
    total = _Phase(aws=poll.aws + work.aws)
    reads, writes, sqs = total.dynamodb(reads=True) * per, total.dynamodb(reads=False) * per, total.sqs() * per
    # The event source mapping receives and deletes each batch it hands the worker: two requests per invocation.
    consumer = 2 * worker.invocations * per
    rows = (("Lambda GB-s", gb_seconds, gb_seconds * prices.lambda_gb_second),
            ("Lambda requests", requests, requests * prices.lambda_request),
            ("DynamoDB read requests", reads, reads * prices.dynamodb_read_request),
            ("DynamoDB write requests", writes, writes * prices.dynamodb_write_request),
            ("SQS FIFO requests (sends + ESM receive/delete)", sqs + consumer,
             (sqs + consumer) * prices.sqs_fifo_request))
    for name, amount, usd in rows:
        result.add(f"cost per 10,000 documents: {name}", round(amount, 1), "", f"${usd:.4f} at the list price")
    result.add("cost per 10,000 documents: total", round(sum(r[2] for r in rows), 4), "USD",
               "first poll and its work; Lambda durations measured on this machine, not on Lambda")
