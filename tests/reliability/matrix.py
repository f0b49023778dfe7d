"""The fault matrix: every scenario runs documents through the real core (sync, resolve, the worker's failure sorting,
the DynamoDB store on moto's table from template.yaml), with faults injected at the adapters, then lets the fault
clear and replays the DLQ, and counts what must never happen.

SQS is emulated on purpose adversarially: a failed record comes back as soon as it may (a couple of seconds, like the
local pump), unless the worker set a longer visibility, and is dead-lettered on its ``MaxReceiveCount``-th failure.
Jira's search lags every create until the clock has moved on (``JIRA_SEARCH_LAG_SECONDS``). The columns:

- lost: an exception document without its issue (or a resolved bill not released) once the fault cleared;
- duplicate issues: more than one issue carrying one external id;
- double posts: an Acumatica action performed twice for one document;
- double comments: a change of the document told twice on its issue (exception flow; the return flow answers every
  resolution it receives, so a bill resolved three times gets three answers, and is counted under double posts);
- DLQ after replay: messages still dead after the cause was fixed and ``connector replay`` ran;
- posts without a yes: an Acumatica action for a resolution that was no person's "yes" (a Won't Do, a rule's or
  an app's move). The ``decision:`` rows count there, and count an issue never told why nothing was done as lost.
- silent failures: an issue left resolved, or told "Acumatica updated", while its document still needs a person (the
  step took no effect, approval is still pending): a resolved issue must never hide a stuck document.

- dead-lettered: messages that reached the DLQ before the replay. A permanent error belongs there at once (those
  rows are marked ``*`` and exempt); a transient fault must never get a message there.

The ``clock:`` rows poll through the real Acumatica client against the Acumatica sandbox, whose own clock (stamps and
``Date`` header alike) jumps or changes its offset between polls while the Lambda's clock runs evenly; bills put on
hold before and after the change must each get their issue (lost counts those that did not).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

from connector import timings
from connector.acumatica import AcumaticaClient, acumatica_token_obtainer
from connector.http import make_session
from connector.errors import (
    AuthenticationError,
    RetryLater,
    SessionBusy,
    TransientError,
    UncertainOutcome,
    ValidationError,
)
from connector.decisions import AUTOMATION_FOR_JIRA
from connector.model import DocumentKey, WorkMessage
from connector.resolve import ResolveContext, resolve_document
from connector.store import DynamoStore
from connector.sync import PollOptions, SyncContext, poll_entity, sync_document
from connector.tokens import RotatingTokens
from connector.worker import Received, WorkRunner
from connector_local.acumatica_sandbox import AcumaticaSandbox
from tests.core.conftest import Clock, table_definition
from tests.fakes import FakeAcumatica, FakeJira, MemoryLock, MemorySecret, make_doc, recorded
from tests.faults import Faults

MUST_BE_ZERO = ("lost", "duplicate issues", "double posts", "double comments", "DLQ after replay",
                "posts without a yes", "silent failures")
COLUMNS = MUST_BE_ZERO + ("dead-lettered",)
"""``dead-lettered`` must be 0 too, except for the faults in ``PERMANENT`` (marked ``*``)."""
QUICK_REDELIVERY_SECONDS = 2.0
DEAD_LETTER_URL = "dlq.fifo"
MAX_RECEIVE_COUNT = timings.MAX_RECEIVE_COUNT_MIN  # the fewest attempts a deployment may configure
OPERATOR_DELAY_SECONDS = 60.0  # the replay comes right after the cause is fixed: no claim may still be in the way


@dataclass
class Row:
    fault: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLUMNS, 0))

    permanent: bool = False

    def failures(self) -> list[str]:
        columns = MUST_BE_ZERO if self.permanent else COLUMNS
        return [column for column in columns if self.counts[column]]


class EmulatedSqs:
    """What WorkRunner calls on SQS: the DLQ send, the work queue send of deferred work, and
    ``ChangeMessageVisibility``, recorded for the loop below."""

    def __init__(self) -> None:
        self.dead: list[str] = []
        self.requeued: list[str] = []
        self.visibility: dict[str, int] = {}

    def send_message(self, *, QueueUrl: str, MessageBody: str, **_: Any) -> dict:  # noqa: N803 - boto3's names
        (self.dead if QueueUrl == DEAD_LETTER_URL else self.requeued).append(MessageBody)
        return {"MessageId": str(len(self.dead) + len(self.requeued))}

    def change_message_visibility(self, *, ReceiptHandle: str, VisibilityTimeout: int, **_: Any) -> None:  # noqa: N803
        self.visibility[ReceiptHandle] = VisibilityTimeout


class World:
    """One scenario's systems: fakes behind fault proxies, the moto store, the clock, the emulated queue."""

    def __init__(self, table: Any, documents: int, *, entity: str = "Bill", status: str = "On Hold") -> None:
        self.clock = Clock()
        self.store = DynamoStore(table, clock=self.clock)
        self.acumatica = FakeAcumatica(*[make_doc(entity, f"{n:06d}", status=status) for n in range(documents)])
        self.jira = FakeJira()
        self.faulty_jira = Faults(self.jira)
        self.faulty_acumatica = Faults(self.acumatica)
        self.faulty_store = Faults(self.store)
        self.sqs = EmulatedSqs()
        self.sync = SyncContext(documents=self.faulty_acumatica, tracker=self.faulty_jira, store=self.faulty_store,
                                acumatica_url="https://acme.example.com", owner_map={}, labels=("acumatica",),
                                cleared_status="Done", clock=self.clock)
        self.resolve = ResolveContext(documents=self.faulty_acumatica, tracker=self.faulty_jira,
                                      store=self.faulty_store, approve_action="Approve", clock=self.clock)
        self.runner = WorkRunner(perform=self.perform, store=self.store, sqs=self.sqs, queue_url="work.fifo",
                                 dead_letter_url=DEAD_LETTER_URL)

    def perform(self, message: WorkMessage, attempt: int) -> str:
        if message.kind == "sync":
            return sync_document(message, self.sync, attempt=attempt)
        return resolve_document(message, self.resolve)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        if seconds >= timings.JIRA_SEARCH_LAG_SECONDS:
            self.jira.settle()

    def deliver(self, bodies: list[str]) -> None:
        """Receive, run and settle until the queue is empty, the way the event source mapping and SQS do."""
        queue: deque[tuple[float, str, int]] = deque((self.clock(), body, 0) for body in bodies)
        serial = 0
        while queue:
            queue = deque(sorted(queue))
            due, body, received = queue.popleft()
            if due > self.clock():
                self.advance(due - self.clock())
            serial += 1
            handle = f"receipt-{serial}"
            record = Received(message_id=f"m-{serial}", receipt_handle=handle, body=body,
                              group_id="g", receive_count=received + 1)
            try:
                self.runner.run(record)
            except Exception:  # noqa: BLE001 - any failure: SQS brings it back, or dead-letters it
                if received + 1 >= MAX_RECEIVE_COUNT:
                    self.sqs.dead.append(body)
                    continue
                delay = max(QUICK_REDELIVERY_SECONDS, self.sqs.visibility.pop(handle, 0))
                queue.append((self.clock() + delay, body, received + 1))
            # Work the worker put back as new (a busy Acumatica session) arrives like any new message.
            queue.extend((self.clock(), deferred, 0) for deferred in self.sqs.requeued)
            self.sqs.requeued.clear()
            self.advance(1.0)

    def replay(self) -> None:
        """The cause is fixed; a minute later the operator runs ``connector replay``."""
        self.advance(OPERATOR_DELAY_SECONDS)
        dead, self.sqs.dead = self.sqs.dead, []
        self.deliver(dead)


def sync_bodies(world: World) -> list[str]:
    return [WorkMessage(kind="sync", external_id=doc.key.external_id, dedupe_id=f"d-{doc.key.number}",
                        correlation_id="reliability").to_json() for doc in world.acumatica.docs.values()]


def count(world: World, row: Row, *, expect_issue: bool = True, expect_released: bool = False) -> None:
    """Add what must never happen to ``row``; comments count for the exception flow only (see the module doc)."""
    by_external_id = Counter(issue["external_id"] for issue in world.jira.issues.values())
    row.counts["duplicate issues"] += sum(n - 1 for n in by_external_id.values() if n > 1)
    for key, doc in world.acumatica.docs.items():
        if expect_issue and by_external_id[key.external_id] == 0:
            row.counts["lost"] += 1
        if expect_released and doc.status != "Open":
            row.counts["lost"] += 1
    actions = Counter(world.acumatica.actions)
    row.counts["double posts"] += sum(n - 1 for n in actions.values() if n > 1)
    row.counts["silent failures"] += _silent_failures(world)
    if expect_released:
        return
    for comments in world.jira.comments.values():
        told = Counter(repr(comment) for comment in comments)
        row.counts["double comments"] += sum(n - 1 for n in told.values() if n > 1)


STUCK_STATUSES = frozenset({"On Hold", "Pending Approval"})
"""What a document still waiting for a person looks like in Acumatica, stated here rather than asked of the
connector's own rules (``classify``), so a rule that wrongly calls a stuck document fine cannot hide it."""


def _silent_failures(world: World) -> int:
    """Issues resolved in Jira whose document is still held or awaiting approval in Acumatica."""
    silent = 0
    for issue in world.jira.issues.values():
        doc = world.acumatica.docs.get(DocumentKey.parse(issue["external_id"]))
        if doc is not None and world.jira.statuses.get(issue["status"]) == "done" and (
                doc.hold or doc.status in STUCK_STATUSES):
            silent += 1
    return silent


# --- scenarios ------------------------------------------------------------------------------------------------------

Scenario = Callable[[World, Row], None]


def _sync_with(fail: Callable[[World], None]) -> Scenario:
    def run(world: World, row: Row) -> None:
        fail(world)
        world.deliver(sync_bodies(world))
        row.counts["dead-lettered"] = len(world.sqs.dead)
        world.replay()
        row.counts["DLQ after replay"] = len(world.sqs.dead)
        count(world, row)

    return run


def _each(world: World, method: str, error: Callable[[], BaseException], times_per_doc: int = 1, *,
          after: bool = False, target: str = "jira") -> None:
    proxy = {"jira": world.faulty_jira, "acumatica": world.faulty_acumatica, "store": world.faulty_store}[target]
    proxy.fail(method, error, times=times_per_doc * len(world.acumatica.docs), after=after)


def _throttled() -> ClientError:
    return ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "throttled"}},
                       "PutItem")


def _conflict() -> ClientError:
    return ClientError({"Error": {"Code": "ConditionalCheckFailedException", "Message": "conflict"}}, "PutItem")


def _update_then(fail: Callable[[World], None]) -> Scenario:
    """Every document gets its issue, then changes (cleared): the update path comments, then transitions."""

    def run(world: World, row: Row) -> None:
        world.deliver(sync_bodies(world))
        for doc in list(world.acumatica.docs.values()):
            world.acumatica.put(replace(doc, status="Open", hold=False))
        fail(world)
        world.deliver([body.replace('"d-', '"u-') for body in sync_bodies(world)])
        row.counts["dead-lettered"] = len(world.sqs.dead)
        world.replay()
        row.counts["DLQ after replay"] = len(world.sqs.dead)
        count(world, row)

    return run


def _decided(world: World, doc, issue_key: str, issue_id: str) -> None:
    """The connector's own issue for ``doc`` (in Jira and the ledger), then a person's move to Done: a decision."""
    recorded(doc, world.store, world.jira, key=issue_key, issue_id=issue_id)
    world.jira.move(issue_key, "Done")


def _resolve_with(fail: Callable[[World], None]) -> Scenario:
    """Balanced bills whose resolved issues release them: every bill released exactly once."""

    def run(world: World, row: Row) -> None:
        bodies = []
        for n, doc in enumerate(world.acumatica.docs.values()):
            issue_key = f"AP-{n + 1}"
            _decided(world, doc, issue_key, str(10001 + n))
            bodies.append(WorkMessage(kind="resolve", external_id=doc.key.external_id, dedupe_id=f"r-{n}",
                                      correlation_id="reliability", issue_key=issue_key).to_json())
        fail(world)
        world.deliver(bodies)
        row.counts["dead-lettered"] = len(world.sqs.dead)
        world.replay()
        row.counts["DLQ after replay"] = len(world.sqs.dead)
        count(world, row, expect_issue=False, expect_released=True)

    return run


def _without_effect_then_resolved_again(world: World, row: Row) -> None:
    """Acumatica answers OK to lifting the hold but keeps it (a build ignoring API writes to Hold): each issue must be
    told so and reopened, never left resolved; once the hold can be lifted, a person resolves again and it is."""
    bodies = []
    for n, doc in enumerate(world.acumatica.docs.values()):
        _decided(world, doc, f"AP-{n + 1}", str(10001 + n))
        bodies.append(_resolve_body(doc, n, "first"))
    honoured = world.acumatica.set_hold
    world.acumatica.set_hold = lambda key, hold: world.acumatica.docs[key]  # 200, and the hold stays
    world.deliver(bodies)
    world.acumatica.set_hold = honoured
    row.counts["silent failures"] += _silent_failures(world)  # each issue reopened, none resolved over a held bill
    again = []
    for n, doc in enumerate(world.acumatica.docs.values()):
        world.jira.move(f"AP-{n + 1}", "Done")  # a person resolves it again: a new decision
        again.append(_resolve_body(doc, n, "again"))
    world.deliver(again)
    row.counts["dead-lettered"] = len(world.sqs.dead)
    world.replay()
    row.counts["DLQ after replay"] = len(world.sqs.dead)
    count(world, row, expect_issue=False, expect_released=True)


def _resolve_body(doc, n: int, attempt: str) -> str:
    return WorkMessage(kind="resolve", external_id=doc.key.external_id, dedupe_id=f"r-{n}-{attempt}",
                       correlation_id="reliability", issue_key=f"AP-{n + 1}", source="webhook").to_json()


def _session_burst(busy_times: int) -> Scenario:
    """Every bill resolved at once while Acumatica's one session is busy with other actions: each action is refused
    "not now" ``busy_times`` times (more than the attempts a message has) before it gets its turn."""

    def run(world: World, row: Row) -> None:
        _each(world, "invoke_action", lambda: SessionBusy("the previous operation has not been completed yet"),
              busy_times, target="acumatica")
        _resolve_with(lambda w: None)(world, row)

    return run


def _burst(kind: str, copies: int = 3) -> Scenario:
    """Every document's work delivered ``copies`` times (webhook retries, a poll and a push), in a shuffled order,
    with Jira's search lagging throughout: each effect must still happen exactly once."""

    def run(world: World, row: Row) -> None:
        import random

        bodies = []
        for n, doc in enumerate(world.acumatica.docs.values()):
            issue_key = f"AP-{n + 1}"
            if kind == "resolve":
                _decided(world, doc, issue_key, str(10001 + n))
            for copy in range(copies):
                bodies.append(WorkMessage(kind=kind, external_id=doc.key.external_id, dedupe_id=f"{kind}-{n}-{copy}",
                                          correlation_id="burst", issue_key=issue_key if kind == "resolve" else None,
                                          source="webhook").to_json())
        random.Random(len(bodies)).shuffle(bodies)
        world.deliver(bodies)
        row.counts["dead-lettered"] = len(world.sqs.dead)
        world.replay()
        row.counts["DLQ after replay"] = len(world.sqs.dead)
        count(world, row, expect_issue=kind == "sync", expect_released=kind == "resolve")

    return run


def _undecided(move: Callable[[FakeJira, str], None]) -> Scenario:
    """Held bills whose issues were resolved in a way that is no "yes" (``move``), each resolution delivered three
    times in a shuffled order, the first answer refused by Jira (429 after its retries): nothing may ever be posted,
    and each issue is told why exactly once."""

    def run(world: World, row: Row) -> None:
        import random

        bodies = []
        for n, doc in enumerate(world.acumatica.docs.values()):
            issue_key = f"AP-{n + 1}"
            recorded(doc, world.store, world.jira, key=issue_key, issue_id=str(10001 + n))
            move(world.jira, issue_key)
            bodies += [WorkMessage(kind="resolve", external_id=doc.key.external_id, dedupe_id=f"no-{n}-{copy}",
                                   correlation_id="decision", issue_key=issue_key, source="webhook").to_json()
                       for copy in range(3)]
        random.Random(len(bodies)).shuffle(bodies)
        world.faulty_jira.fail("add_comment", lambda: TransientError("comment answered 429", 5.0))
        world.deliver(bodies)
        row.counts["dead-lettered"] = len(world.sqs.dead)
        world.replay()
        row.counts["DLQ after replay"] = len(world.sqs.dead)
        row.counts["posts without a yes"] = len(world.acumatica.actions)
        for comments in world.jira.comments.values():
            row.counts["lost"] += not comments
            row.counts["double comments"] += max(0, len(comments) - 1)

    return run


def _declined(jira: FakeJira, issue_key: str) -> None:
    jira.statuses["Won't Do"] = "done"
    jira.move(issue_key, "Won't Do")  # a person's "no"


def _by_automation(jira: FakeJira, issue_key: str) -> None:
    jira.accounts[AUTOMATION_FOR_JIRA] = ("app", True)
    jira.move(issue_key, "Done", actor=AUTOMATION_FOR_JIRA)  # "close issues untouched for 14 days"


class _Queue:
    def __init__(self, world: World) -> None:
        self.world = world
        self.sent: list[WorkMessage] = []

    def send(self, messages: list[WorkMessage]) -> None:
        self.sent.extend(messages)


def _poll_with(fail: Callable[[World, Faults], None], seconds_left: Callable[[], Callable[[], float]],
               passes: int = 1) -> Scenario:
    """Poll ticks until ``passes`` passes complete, then work what was queued: no document may be left behind."""

    def run(world: World, row: Row) -> None:
        queue = Faults(_Queue(world))
        fail(world, queue)
        completed = 0
        for tick in range(20):
            try:
                report = poll_entity("Bill", documents=world.acumatica, store=world.store, queue=queue,
                                     options=PollOptions(page_size=3, resume_margin=0, safety_seconds=5.0),
                                     now=lambda: datetime(2026, 12, 1, 8, tick, tzinfo=timezone.utc),
                                     seconds_left=seconds_left(), correlation_id=f"tick-{tick}")
            except TransientError:
                continue
            completed += report.completed
            if completed == passes:
                break
        world.deliver([m.to_json() for m in queue._target.sent])
        row.counts["dead-lettered"] = len(world.sqs.dead)
        world.replay()
        row.counts["DLQ after replay"] = len(world.sqs.dead)
        count(world, row)

    return run


def _changes_while_paged(world: World, queue: Faults) -> None:
    """The last document is healthy when the pass starts and goes on hold (modified now) after its first page."""
    last = max(world.acumatica.docs)
    world.acumatica.put(replace(world.acumatica.docs[last], status="Open", hold=False))
    original_send = queue._target.send

    def send_then_change(messages: list[WorkMessage]) -> None:
        original_send(messages)
        doc = world.acumatica.docs[last]
        if doc.status == "Open":
            world.acumatica.put(replace(doc, status="On Hold", hold=True,
                                        last_modified=datetime(2026, 12, 1, 8, 0, 30, tzinfo=timezone.utc)))

    queue._target.send = send_then_change


def _budget(per_call: float, start: float) -> Callable[[], Callable[[], float]]:
    def fresh() -> Callable[[], float]:
        left = [start]

        def seconds_left() -> float:
            left[0] -= per_call
            return left[0]

        return seconds_left

    return fresh


def _sandbox_client(sandbox: AcumaticaSandbox) -> AcumaticaClient:
    """The real client with the real token machinery, against the sandbox (credentials in memory)."""
    user, password = next(iter(sandbox.users.items()))
    secret = MemorySecret({"client_id": sandbox.client_id, "client_secret": sandbox.client_secret,
                           "username": user, "password": password})
    session = make_session(total=2, backoff_factor=0.01, backoff_max=0.05)
    tokens = RotatingTokens(name="acumatica", secrets=secret, lock=MemoryLock(),
                            obtain=acumatica_token_obtainer(sandbox.url, session))
    return AcumaticaClient(base_url=sandbox.url, endpoint_version=sandbox.versions[0], tokens=tokens,
                           session=session)


ClockChange = tuple[timedelta, timedelta]
"""A jump of Acumatica's clock and the UTC offset it renders stamps in from then on."""
BRISBANE, BRISBANE_DST = timedelta(hours=10), timedelta(hours=11)
POLL_EVERY = timedelta(minutes=5)  # PollSchedule's default


def _clock_changes(*changes: ClockChange, web_lag: timedelta | None = None) -> Scenario:
    """A poll takes the watermark; then, per change, five minutes pass, a share of the healthy bills goes on hold,
    Acumatica's clock jumps (or its offset changes), another share goes on hold, and the scheduled poll runs. What
    the polls queued is worked through the core against the same sandbox. ``web_lag``: the web node's clock (the
    ``Date`` header) runs this far behind the database's (the stamps), and jumps with it."""

    def run(world: World, row: Row) -> None:
        count_of_bills = len(world.acumatica.docs)
        with AcumaticaSandbox(render_offset=BRISBANE) as sandbox:
            client = _sandbox_client(sandbox)
            world.sync = replace(world.sync, documents=client)
            lambda_now = [datetime.now(timezone.utc)]
            started, jumped = lambda_now[0], [timedelta(0)]

            def move_clock(offset: timedelta | None = None) -> None:  # it runs with the Lambda's, plus its jumps
                moved = (lambda_now[0] - started) + jumped[0]
                sandbox.set_clock(skew=moved, render_offset=offset,
                                  web_skew=None if web_lag is None else moved - web_lag)

            numbers = [sandbox.add_document("Bill", Hold=False)["ReferenceNbr"] for _ in range(count_of_bills)]
            queue = _Queue(world)

            def poll() -> None:
                poll_entity("Bill", documents=client, store=world.store, queue=queue,
                            options=PollOptions(page_size=50), now=lambda: lambda_now[0],
                            seconds_left=lambda: 250.0, correlation_id="clock")

            poll()
            # Shares filled from the last: with few bills, the edits after the last change (the hard case) come first.
            shares = iter(reversed([numbers[n::2 * len(changes)] for n in range(2 * len(changes))]))
            for jump, offset in changes:
                lambda_now[0] += POLL_EVERY
                move_clock()
                for number in next(shares, []):
                    sandbox.update_document("Bill", ("Bill", number), Hold=True, Status="On Hold")
                jumped[0] += jump
                move_clock(offset)
                for number in next(shares, []):
                    sandbox.update_document("Bill", ("Bill", number), Hold=True, Status="On Hold")
                poll()
            world.deliver([m.to_json() for m in queue.sent])
            row.counts["dead-lettered"] = len(world.sqs.dead)
            world.replay()
            row.counts["DLQ after replay"] = len(world.sqs.dead)
            issues = Counter(issue["external_id"] for issue in world.jira.issues.values())
            held = [f"Bill:Bill:{r['ReferenceNbr']}" for r in sandbox.documents("Bill") if r["Hold"]]
            row.counts["lost"] += sum(1 for external_id in held if issues[external_id] == 0)
        count(world, row, expect_issue=False)

    return run


SCENARIOS: dict[str, tuple[Scenario, str]] = {
    "Jira search 503 before the create": (
        _sync_with(lambda w: _each(w, "find_by_external_id", lambda: TransientError("search answered 503"), 2)),
        "On Hold"),
    "Jira token refresh held elsewhere": (
        _sync_with(lambda w: _each(w, "find_by_external_id",
                                   lambda: TransientError("jira token refresh is held by another worker"), 2)),
        "On Hold"),
    "Jira 429 on create after its retries": (
        _sync_with(lambda w: _each(w, "create_issue", lambda: TransientError("POST /issue answered 429", 20.0), 2)),
        "On Hold"),
    "Jira Retry-After 1847 s on create": (
        _sync_with(lambda w: _each(w, "create_issue", lambda: RetryLater("asked to wait 1847 s", 1847.0), 1)),
        "On Hold"),
    "Jira 5xx answer to a create that happened": (
        _sync_with(lambda w: _each(w, "create_issue", lambda: UncertainOutcome("POST /issue answered 504"), 1,
                                   after=True)),
        "On Hold"),
    "read timeout after the create was sent": (
        _sync_with(lambda w: _each(w, "create_issue", lambda: UncertainOutcome("POST /issue timed out"), 1,
                                   after=True)),
        "On Hold"),
    "connection reset before the create": (
        _sync_with(lambda w: _each(w, "create_issue", lambda: TransientError("POST /issue connect failed"), 2)),
        "On Hold"),
    "worker crash right after the create": (
        _sync_with(lambda w: _each(w, "create_issue", lambda: RuntimeError("container died"), 1, after=True)),
        "On Hold"),
    "Jira 400 on create until a fix, then replay": (
        _sync_with(lambda w: _each(w, "create_issue",
                                   lambda: ValidationError("POST /issue answered 400: field", {"customfield": "x"}))),
        "On Hold"),
    "Acumatica 401 on read until a fix, then replay": (
        _sync_with(lambda w: _each(w, "get", lambda: AuthenticationError("Acumatica answered 401"),
                                   target="acumatica")),
        "On Hold"),
    "DynamoDB throttled on the recent-ids read": (
        _sync_with(lambda w: _each(w, "recent_issue_ids", _throttled, 2, target="store")),
        "On Hold"),
    "DynamoDB throttled after the create (link)": (
        _sync_with(lambda w: _each(w, "link_issue", _throttled, 1, after=True, target="store")),
        "On Hold"),
    "DynamoDB conditional conflict on the state": (
        _sync_with(lambda w: _each(w, "save_state", lambda: TransientError("updated concurrently"), 1,
                                   target="store")),
        "On Hold"),
    "update: transition 503 after the comment": (
        _update_then(lambda w: _each(w, "transition_to", lambda: TransientError("transitions answered 503"))),
        "On Hold"),
    "update: comment 429 after its retries": (
        _update_then(lambda w: _each(w, "add_comment", lambda: TransientError("comment answered 429", 10.0))),
        "On Hold"),
    "update: crash after the comment": (
        _update_then(lambda w: _each(w, "transition_to", lambda: RuntimeError("container died"), after=False)),
        "On Hold"),
    "release: Acumatica 429 before the action": (
        _resolve_with(lambda w: _each(w, "invoke_action", lambda: TransientError("Acumatica answered 429", 5.0),
                                      2, target="acumatica")),
        "Balanced"),
    "release: timeout after the action ran": (
        _resolve_with(lambda w: _each(w, "invoke_action", lambda: UncertainOutcome("action timed out"), 1,
                                      after=True, target="acumatica")),
        "Balanced"),
    "release: crash after the action ran": (
        _resolve_with(lambda w: _each(w, "invoke_action", lambda: RuntimeError("container died"), 1, after=True,
                                      target="acumatica")),
        "Balanced"),
    "decision: Won't Do delivered 3 times, answer 429": (_undecided(_declined), "On Hold"),
    "decision: Automation's Done delivered 3 times, answer 429": (_undecided(_by_automation), "Balanced"),
    "release: the hold stays although Acumatica said OK": (_without_effect_then_resolved_again, "On Hold"),
    "release: a busy session refuses every action 4 times": (_session_burst(4), "Balanced"),
    "load: every sync delivered 3 times, shuffled": (_burst("sync"), "On Hold"),
    "load: every bill resolved 3 times, shuffled": (_burst("resolve"), "Balanced"),
    "poll: SQS send fails mid-page": (
        _poll_with(lambda w, q: q.fail("send", lambda: TransientError("2 work message(s) could not be queued"),
                                       times=2, skip=1),
                   _budget(1.0, 250.0)),
        "On Hold"),
    "poll: a document changes while it is paged": (
        _poll_with(_changes_while_paged, _budget(1.0, 250.0), passes=2),
        "On Hold"),
    "poll: stopped by the time limit mid-pass": (
        _poll_with(lambda w, q: None, _budget(4.0, 20.0)),
        "On Hold"),
    "clock: Acumatica +6 h, then put right": (
        _clock_changes((timedelta(hours=6), BRISBANE), (-timedelta(hours=6), BRISBANE)), "On Hold"),
    "clock: Acumatica put back 2 h (NTP)": (_clock_changes((-timedelta(hours=2), BRISBANE)), "On Hold"),
    "clock: offset +10:00 -> +11:00 (DST)": (_clock_changes((timedelta(0), BRISBANE_DST)), "On Hold"),
    "clock: web node 40 min behind, put back 2 h": (
        _clock_changes((timedelta(0), BRISBANE), (-timedelta(hours=2), BRISBANE), web_lag=timedelta(minutes=40)),
        "On Hold"),
}


PERMANENT = frozenset({"Jira 400 on create until a fix, then replay", "Acumatica 401 on read until a fix, then replay"})


def _tables() -> Iterator[Any]:
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        serial = 0
        while True:
            serial += 1
            yield resource.create_table(TableName=f"reliability-{serial}", BillingMode="PAY_PER_REQUEST",
                                        **table_definition())


def run_matrix(documents: int) -> list[Row]:
    rows = []
    tables = _tables()
    for name, (scenario, status) in SCENARIOS.items():
        world = World(next(tables), documents, status=status)
        row = Row(name, permanent=name in PERMANENT)
        scenario(world, row)
        rows.append(row)
    tables.close()
    return rows


def table(rows: list[Row]) -> str:
    width = max(len(row.fault) for row in rows) + 2
    header = f"| {'fault'.ljust(width)} | " + " | ".join(COLUMNS) + " |"
    rule = "|" + "-" * (width + 2) + "|" + "|".join("-" * (len(c) + 2) for c in COLUMNS) + "|"
    lines = [header, rule]
    for row in rows:
        cells = [str(row.counts[c]).rjust(len(c)) for c in COLUMNS]
        name = f"{row.fault} *" if row.permanent else row.fault
        lines.append(f"| {name.ljust(width)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
