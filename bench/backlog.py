"""backlog: a backlog of Bills drained by ``poll_entity`` in scheduled-Lambda-sized runs, over real HTTP.

The requirement ("Exception flow"): a 50,000-document backlog completes across runs within the Lambda time limit,
with bounded memory. The stack (``bench.stack``, its own process) serves the Acumatica sandbox and moto's server
with the template's table and FIFO work queue. This process plays the PollerFunction's warm container: adapters
wired by ``connector.wiring.Wiring`` from the function's own environment, exactly as the handler builds them, and
one ``poll_entity`` call per scheduled run whose ``seconds_left`` counts real time down from the Lambda timeout
(``--budget`` shrinks it, so that several runs, and with them the resume logic, are exercised).

A consumer in the stack process drains the work queue as the worker's event source mapping would, and counts what it
receives: every exception document must be queued exactly once and no healthy one at all, and every document must
have been read at least once (none skipped by paging). Peak memory is traced per run with tracemalloc, for two
backlog sizes, to show whether it grows with the backlog.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
import tracemalloc
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator, Mapping, Sequence

from bench import Result
from bench.mix import index_of, is_exception
from bench.stack import Deliveries, MotoSqsProbe, RunningStack, running_stack
from connector.model import DocumentKey, WorkMessage
from connector.ports import Cursor, DocState, DocumentSource, Page, StateStore, WorkQueue
from connector.sync import PollOptions, PollReport, poll_entity
from connector.wiring import Wiring

ENTITY = "Bill"
MIB = 1024 * 1024
LAMBDA_MB_PER_VCPU = 1769
"""AWS Lambda allocates CPU in proportion to memory: one vCPU's worth at 1,769 MB (Lambda developer guide)."""
MEMORY_GROWTH_LIMIT_BYTES = MIB
"""How much more peak memory the largest backlog may need than the smallest: run-to-run noise, not a structure kept
per document."""


@dataclass(frozen=True)
class Config:
    sizes: tuple[int, ...] = (5_000, 50_000)
    budget_seconds: float | None = None
    """Seconds each run may take; ``None`` means the PollerFunction's ``Timeout`` in template.yaml (300 s)."""
    page_size: int | None = None
    """Documents per Acumatica page; ``None`` means the connector's configured default (``POLL_PAGE_SIZE``)."""
    trace_memory: bool = True
    probe_moto_messages: int = 200
    """Messages queued when measuring how moto's SendMessageBatch slows with queue length (0: skip the probe)."""


DEFAULT = Config(sizes=(1_000, 10_000))
"""50,000 documents take about ten minutes on two shared cores (moto's SQS is the bottleneck, see the probe):
``python -m bench backlog --documents 1000,10000,50000`` runs it; ``make bench`` keeps to sizes that finish."""
QUICK = Config(sizes=(500, 2_000), budget_seconds=21.0, probe_moto_messages=0)


def _status_bytes(field_name: str) -> int:
    """A ``/proc/self/status`` memory line (``VmHWM``, ``VmRSS``) in bytes; 0 where there is no procfs."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux: ``5`` into ``/proc/self/clear_refs``), so each pass's peak is its
    own and not the process's lifetime high."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------- instrumentation


class _Meter:
    """Wall time and call counts per outside system, so the slowest part of a pass is named, not guessed."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    @contextmanager
    def timing(self, system: str, calls: int = 1) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[system] += time.perf_counter() - started
            self.calls[system] += calls


def _bump(counts: bytearray, index: int) -> None:
    counts[index] = min(counts[index] + 1, 255)


class _MeteredSource:
    """Passes pages through, timing each fetch and marking which documents were read (in a preallocated array, so
    the bookkeeping adds nothing to the traced memory)."""

    def __init__(self, inner: DocumentSource, meter: _Meter, reads: bytearray) -> None:
        self._inner = inner
        self._meter = meter
        self._reads = reads

    def changed_pages(self, entity: str, since: datetime, *, skip: int = 0, page_size: int = 500) -> Iterator[Page]:
        pages = self._inner.changed_pages(entity, since, skip=skip, page_size=page_size)
        while True:
            with self._meter.timing("Acumatica"):
                page = next(pages, None)
            if page is None:
                return
            for document in page.documents:
                _bump(self._reads, index_of(document.key.number))
            yield page


class _MeteredStore:
    """The calls a poll makes to DynamoDB, timed; ``get_states`` costs one BatchGetItem per 100 keys and
    ``audit_queued`` one BatchWriteItem per 25 records."""

    def __init__(self, inner: StateStore, meter: _Meter) -> None:
        self._inner = inner
        self._meter = meter

    def get_cursor(self, entity: str) -> Cursor:
        with self._meter.timing("DynamoDB"):
            return self._inner.get_cursor(entity)

    def put_cursor(self, entity: str, cursor: Cursor) -> None:
        with self._meter.timing("DynamoDB"):
            self._inner.put_cursor(entity, cursor)

    def get_states(self, keys: Sequence[DocumentKey]) -> dict[DocumentKey, DocState]:
        with self._meter.timing("DynamoDB", calls=math.ceil(len(keys) / 100)):
            return self._inner.get_states(keys)

    def audit_queued(self, messages: Sequence[WorkMessage]) -> None:
        with self._meter.timing("DynamoDB", calls=math.ceil(len(messages) / 25)):
            self._inner.audit_queued(messages)


class _MeteredQueue:
    """Times ``send`` (one SendMessageBatch per 10 messages) and counts sends per document."""

    def __init__(self, inner: WorkQueue, meter: _Meter, sends: bytearray) -> None:
        self._inner = inner
        self._meter = meter
        self._sends = sends

    def send(self, messages: Sequence[WorkMessage]) -> None:
        with self._meter.timing("SQS", calls=math.ceil(len(messages) / 10)):
            self._inner.send(messages)
        for message in messages:
            _bump(self._sends, index_of(message.key.number))


@contextmanager
def _aws_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """boto3 takes its endpoint and credentials from the process environment, as it does in Lambda."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# ------------------------------------------------------------------------------------------------- one pass


@dataclass
class _Run:
    seconds: float
    report: PollReport
    peak_bytes: int


@dataclass
class _Pass:
    documents: int
    budget: float
    options: PollOptions
    lambda_memory_mb: int
    traced: bool
    runs: list[_Run] = field(default_factory=list)
    seconds: float = 0.0
    poller_cpu: float = 0.0
    stack_cpu: float = 0.0
    seed_seconds: float = 0.0
    retained_bytes: int = 0
    meter: _Meter = field(default_factory=_Meter)
    reads: bytearray = field(default_factory=bytearray)
    sends: bytearray = field(default_factory=bytearray)
    deliveries: Deliveries | None = None
    probe: MotoSqsProbe | None = None
    rss_before: int = 0
    peak_rss: int = 0
    peak_rss_reset: bool = False

    @property
    def peak_bytes(self) -> int:
        return max((run.peak_bytes for run in self.runs), default=0)

    @property
    def exceptions(self) -> int:
        return sum(1 for index in range(self.documents) if is_exception(index))


def drain(stack: RunningStack, documents: int, config: Config) -> _Pass:
    """Run ``poll_entity`` like consecutive scheduled invocations until the pass completes; then collect what the
    work queue's consumer received."""
    info = stack.info
    budget = config.budget_seconds or info.lambda_timeout_seconds
    env = dict(info.function_environment)
    if config.page_size:
        env["POLL_PAGE_SIZE"] = str(config.page_size)
    with _aws_environment(info.aws_environment):
        wiring = Wiring(env)
        options = wiring.poll_options
        if budget <= options.safety_seconds:
            raise ValueError(f"a budget of {budget:g} s leaves no time after the poller's {options.safety_seconds:g} s "
                             "safety margin; use more")
        result = _Pass(documents, budget, options, info.lambda_memory_mb, config.trace_memory,
                       seed_seconds=info.seed_seconds,
                       reads=bytearray(documents), sends=bytearray(documents), probe=info.probe)
        source = _MeteredSource(wiring.acumatica, result.meter, result.reads)
        store = _MeteredStore(wiring.store, result.meter)
        queue = _MeteredQueue(wiring.queue, result.meter, result.sends)
        max_runs = 3 * math.ceil(documents / max(options.page_size - options.resume_margin, 1)) + 3
        stack_cpu_before, cpu_before = stack.cpu_seconds(), time.process_time()
        result.peak_rss_reset = _reset_peak_rss()
        result.rss_before = _status_bytes("VmRSS")
        if config.trace_memory:
            tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0] if config.trace_memory else 0
        started = time.perf_counter()
        while not (result.runs and result.runs[-1].report.completed):
            if len(result.runs) >= max_runs:
                raise RuntimeError(f"the pass did not complete in {max_runs} runs: the poller is not making progress")
            result.runs.append(_one_run(len(result.runs) + 1, source, store, queue, options, budget,
                                        config.trace_memory))
        result.seconds = time.perf_counter() - started
        result.peak_rss = _status_bytes("VmHWM")
        result.poller_cpu = time.process_time() - cpu_before
        result.stack_cpu = stack.cpu_seconds() - stack_cpu_before
        if config.trace_memory:
            result.retained_bytes = tracemalloc.get_traced_memory()[0] - baseline
            tracemalloc.stop()
    result.deliveries = stack.deliveries()
    return result


def _one_run(number: int, source: DocumentSource, store: StateStore, queue: WorkQueue, options: PollOptions,
             budget: float, trace_memory: bool) -> _Run:
    """One scheduled invocation: a fresh time budget and correlation id, the same warm adapters."""
    if trace_memory:
        tracemalloc.reset_peak()
    started = time.perf_counter()
    report = poll_entity(ENTITY, documents=source, store=store, queue=queue, options=options,
                         now=lambda: datetime.now(timezone.utc),
                         seconds_left=lambda: budget - (time.perf_counter() - started),
                         correlation_id=f"bench-run-{number}")
    seconds = time.perf_counter() - started
    return _Run(seconds, report, tracemalloc.get_traced_memory()[1] if trace_memory else 0)


# ------------------------------------------------------------------------------------------------- reporting


def run(config: Config) -> Result:
    sizes = tuple(sorted(config.sizes))
    result = Result("backlog", f"Bill backlogs of {' and '.join(f'{n:,}' for n in sizes)} through poll_entity: "
                               "Acumatica sandbox over HTTP, moto server (DynamoDB, SQS FIFO from template.yaml)")
    passes = []
    for number, documents in enumerate(sizes):
        probe = config.probe_moto_messages if number == 0 else 0
        with running_stack(documents, datetime.now(timezone.utc), probe) as stack:
            passes.append(drain(stack, documents, config))
    for one in passes:
        _report_pass(result, one)
    if config.trace_memory and len(passes) > 1:
        _compare_memory(result, passes[0], passes[-1])
    _explain(result, passes[-1])
    probe = next((one.probe for one in passes if one.probe), None)
    if probe:
        _report_probe(result, probe, passes[-1].exceptions)
    return result


def _compare_memory(result: Result, small: _Pass, large: _Pass) -> None:
    growth = large.peak_bytes - small.peak_bytes
    per_document = growth / (large.documents - small.documents)
    most_read = max(max(run.report.seen for run in one.runs) for one in (small, large))
    result.add("peak memory growth with the backlog", growth / MIB, "MiB",
               f"{small.documents:,} -> {large.documents:,} documents: {per_document:.0f} bytes per extra document; "
               f"PollerFunction MemorySize is {large.lambda_memory_mb} MB")
    result.check("peak memory does not grow with the backlog", growth <= MEMORY_GROWTH_LIMIT_BYTES,
                 f"{small.peak_bytes / MIB:.1f} MiB at {small.documents:,}, {large.peak_bytes / MIB:.1f} MiB at "
                 f"{large.documents:,} documents (limit +{MEMORY_GROWTH_LIMIT_BYTES / MIB:.0f} MiB); up to "
                 f"{most_read:,} documents were read in one run, so anything kept per document read in a run "
                 "shows here")


def _report_pass(result: Result, one: _Pass) -> None:
    n = f"{one.documents:,}"
    pages = sum(run.report.pages for run in one.runs)
    messages = sum(run.report.enqueued for run in one.runs)
    slowest = max(run.seconds for run in one.runs)
    result.add(f"[{n}] runs needed", len(one.runs), "",
               f"budget {one.budget:g} s each (safety margin {one.options.safety_seconds:g} s), page size "
               f"{one.options.page_size}, {pages} pages read, slowest run {slowest:.1f} s")
    result.add(f"[{n}] pass wall time", one.seconds, "s",
               f"sum of the runs; seeding the sandbox took {one.seed_seconds:.1f} s (not included)")
    result.add(f"[{n}] throughput", one.documents / one.seconds, "docs/s", "documents in the backlog / pass time")
    result.add(f"[{n}] messages sent by the poller", messages, "",
               f"{messages - sum(1 for c in one.sends if c):,} of them re-sent after a resume (the "
               f"{one.options.resume_margin}-record resume margin); FIFO deduplication drops those")
    delivered = one.deliveries
    assert delivered is not None
    result.add(f"[{n}] messages delivered to the consumer", delivered.total - delivered.dropped_by_sqs_deduplication,
               "", f"plus {delivered.dropped_by_sqs_deduplication:,} repeats of a deduplication id delivered < 5 min "
                   "earlier, which SQS drops (moto forgets ids of deleted messages)")
    if one.peak_rss:
        result.add(f"[{n}] poller peak RSS (VmHWM)", one.peak_rss / MIB, "MiB",
                   f"the benchmark process playing the poller's container; {one.rss_before / MIB:.0f} MiB resident "
                   f"before the pass{'' if one.peak_rss_reset else ' (peak not resettable here: lifetime high)'}; "
                   f"PollerFunction MemorySize {one.lambda_memory_mb} MB",
                   goal=f"< {one.lambda_memory_mb} MB", met=one.peak_rss < one.lambda_memory_mb * 1e6)
    if one.traced:
        result.add(f"[{n}] peak traced memory (worst run)", one.peak_bytes / MIB, "MiB",
                   f"tracemalloc, poller process only; {one.retained_bytes / MIB:+.2f} MiB still held after the pass")
    wall = one.seconds
    for system in ("Acumatica", "DynamoDB", "SQS"):
        seconds, calls = one.meter.seconds[system], one.meter.calls[system]
        result.add(f"[{n}] time waiting on {system}", seconds, "s",
                   f"{seconds / wall:.0%} of the pass; {calls:,} calls, {seconds / max(calls, 1) * 1000:.1f} ms each")
    own = wall - sum(one.meter.seconds.values())
    result.add(f"[{n}] time in the poller itself", own, "s",
               f"{own / wall:.0%}: decide and the loop (parsing Acumatica pages is in the Acumatica line)")
    result.add(f"[{n}] CPU: poller / sandbox + moto", f"{one.poller_cpu:.1f} s / {one.stack_cpu:.1f} s", "",
               "2 cores shared with everything else on this machine")
    result.add(f"[{n}] poller CPU per document", one.poller_cpu / one.documents * 1e6, "µs",
               "tracemalloc on: it slows allocation-heavy code; --no-tracemalloc for the clean figure"
               if one.traced else "Acumatica parsing, decide, boto3 request building")
    _check_pass(result, one)


def _check_pass(result: Result, one: _Pass) -> None:
    n = f"{one.documents:,}"
    assert one.deliveries is not None
    queued, foreign = one.deliveries.per_document, one.deliveries.foreign
    expected = one.exceptions
    once = sum(1 for i in range(one.documents) if is_exception(i) and queued[i] == 1)
    duplicated = sum(1 for i in range(one.documents) if queued[i] > 1)
    missing = sum(1 for i in range(one.documents) if is_exception(i) and queued[i] == 0)
    healthy = sum(1 for i in range(one.documents) if not is_exception(i) and queued[i])
    result.check(f"[{n}] every exception document queued exactly once",
                 once == expected and duplicated == healthy == foreign == 0,
                 f"{once:,}/{expected:,} once, {duplicated} duplicated, {missing} missing, {healthy} healthy queued, "
                 f"{foreign} foreign messages")
    unread = one.reads.count(0)
    result.check(f"[{n}] no document skipped", unread == 0,
                 f"{one.documents - unread:,}/{one.documents:,} documents read; "
                 f"{sum(one.reads) - (one.documents - unread):,} re-reads across runs")
    result.check(f"[{n}] the pass completed and set the watermark", bool(one.runs[-1].report.watermark),
                 f"watermark {one.runs[-1].report.watermark}")


def _explain(result: Result, one: _Pass) -> None:
    """Name the bottleneck from the measured shares, and what changes on real services."""
    waits = {system: one.meter.seconds[system] for system in ("Acumatica", "DynamoDB", "SQS")}
    slowest = max(waits, key=waits.__getitem__)
    calls = one.meter.calls
    vcpu = one.lambda_memory_mb / LAMBDA_MB_PER_VCPU
    result.notes.append(
        f"largest share of the {one.documents:,}-document pass: {slowest} ({waits[slowest] / one.seconds:.0%}). "
        f"The pass made {calls['Acumatica']:,} Acumatica page requests, {calls['DynamoDB']:,} DynamoDB calls and "
        f"{calls['SQS']:,} SQS SendMessageBatch calls, one after another. On real services a pass takes about "
        "poller CPU + pages x Acumatica page latency + SendMessageBatch calls x SQS latency + DynamoDB calls x "
        "DynamoDB latency; a run that would overrun its budget stops at a checkpoint and the next scheduled run "
        "continues, so slower services mean more runs, never a timed-out or repeated pass.")
    result.notes.append(
        f"the PollerFunction has {one.lambda_memory_mb} MB, about {vcpu:.2f} vCPU (one vCPU at "
        f"{LAMBDA_MB_PER_VCPU:,} MB): the {one.poller_cpu:.0f} s of poller CPU measured here would take about "
        f"{one.poller_cpu / vcpu:.0f} s there, if a core here matches a Lambda vCPU"
        + (" (measured with tracemalloc on, which inflates it)" if one.traced else ""))


def _report_probe(result: Result, probe: MotoSqsProbe, messages: int) -> None:
    result.add("moto SendMessageBatch, empty FIFO queue", probe.empty_batch_seconds * 1000, "ms")
    result.add(f"moto SendMessageBatch, {probe.queued:,} messages queued", probe.filled_batch_seconds * 1000, "ms",
               "moto recounts the whole queue several times per message sent")
    result.add(f"moto, {messages:,} messages into an undrained queue", probe.projected_seconds(messages) / 3600, "h",
               "extrapolated from the two figures above: why the stack drains the queue as it fills")
