"""The exception flow: polling decides what changed (``poll_entity``), the worker brings Jira up to date
(``sync_document``). Pure orchestration over the ports; no AWS or HTTP here.

Exactly one issue per document, under retries, crashes and replays, rests on three things: the FIFO queue serializes
all work on one document; creation is claimed in DynamoDB before Jira is called; and when a claim is found but no
issue is recorded (a crash between Jira's answer and our write), the issue is looked up by its external id, with the
recently created ids passed to Jira's ``reconcileIssues`` since search is eventually consistent.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Mapping, TypeVar

from . import content, timings, watermarks
from .errors import (ConnectorError, NotFoundError, PermanentError, RetryLater, TransientError, UncertainOutcome,
                     ValidationError)
from .model import Document, DocumentKey, Finding, WorkMessage, document_from_json, document_to_json
from .ports import Cursor, DocState, DocumentSource, IssueDraft, IssueRef, IssueTracker, Page, StateStore, WorkQueue
from .routing import PageRouter, Routing, buyer_among, wants_lines
from .rules import EXCEPTION_RULES, RuleTable, changes, classify, fingerprint, is_resolved, snapshot
from .triage import TriageRules, evaluate, reached_thresholds, route

logger = logging.getLogger(__name__)

EVERYTHING = datetime(1970, 1, 1, tzinfo=timezone.utc)
CREATE_CLAIM = "CREATE"
COMMENT_CLAIM = "COMMENT"
OVERDUE_CLAIM = "OVERDUE"
TRIAGE_KEYS = ("due date", "priority", "overdue", "escalation")
"""Snapshot entries that come from the triage tables and the calendar rather than from the document itself."""
REFUSABLE = {"assignee": "assignee_account_id", "priority": "priority", "duedate": "due_date"}
"""Jira fields an issue can exist without: when Jira refuses one, the connector writes the rest and audits it."""
CREATE_RETAKE_SECONDS = timings.CREATE_RETAKE_SECONDS
COMMENT_RETAKE_SECONDS = timings.COMMENT_RETAKE_SECONDS
CARRIED_DOCUMENT_BYTES = 16_384
"""A work message carries the poller's read only up to this size: SendMessageBatch takes ten messages, and SQS caps
the batch at 256 KiB. A larger document travels without it and the worker reads it."""
CLOCK_SKEW_SECONDS = 5.0
"""A carried read stamped this far in the worker's future is still trusted (clocks of two Lambda hosts)."""


@dataclass(frozen=True)
class PollOptions:
    page_size: int = 500
    overlap: timedelta = timedelta(minutes=10)
    initial_lookback: timedelta | None = None
    """How far back the very first pass reads; ``None`` reads every document, since a bill stuck on hold for months
    is as much an exception as yesterday's (healthy documents cost a read, never a message)."""
    safety_seconds: float = 20.0
    resume_margin: int = 50
    """Records re-read before a resume point: deletions between runs shift later records to lower offsets."""
    full_pass_every: timedelta | None = timedelta(days=7)
    """How often a pass re-reads every document, whatever the watermark says: the safety net for a record that a
    resumed pass skipped or a clock that disagreed. ``None`` never does. Unchanged documents cost a read only."""
    rules: RuleTable = field(default_factory=lambda: EXCEPTION_RULES)
    """The exception rules (``ExceptionRules``); the worker's ``SyncContext`` must hold the same table."""


@dataclass
class PollReport:
    entity: str
    pages: int = 0
    seen: int = 0
    enqueued: int = 0
    unchanged: int = 0
    healthy: int = 0
    completed: bool = False
    watermark: str | None = None
    outcomes: dict[str, int] = field(default_factory=dict)
    rewinds: int = 0
    """Passes started earlier because Acumatica's ``Date`` went back against its own earlier readings."""
    rewound_seconds: float = 0.0
    """How far back the start moved, in all (the figures of each rewind are in the log and the cursor)."""


def observed(doc: Document, finding: Finding | None, triage: TriageRules | None, today: date,
             opened_at: float | None = None) -> dict[str, str]:
    """The snapshot plus, for an exception, its triage as of ``today``.

    A bill that comes due or goes overdue changes nothing in Acumatica, yet its issue's priority must change: with the
    triage in the fingerprint, the next read of the document sees a new state and the worker re-evaluates the issue,
    while an unchanged document on an unchanged day still costs no Jira call. Healthy documents carry no triage, so
    the calendar never makes them look changed."""
    snap = snapshot(doc, finding)
    if finding is not None and triage is not None:
        judged = evaluate(doc, triage, today)
        snap.update({"due date": judged.due_text, "priority": judged.priority,
                     "overdue": "yes" if judged.overdue else "no"})
        if triage.escalation_days and opened_at is not None:
            reached = reached_thresholds(triage.escalation_days, finding.rule, _days_since(opened_at, today))
            snap["escalation"] = str(reached[-1]) if reached else ""
    return snap


def _days_since(moment: float, today: date) -> int:
    return (today - datetime.fromtimestamp(moment, timezone.utc).date()).days


def decide(documents: list[Document], states: Mapping[DocumentKey, DocState], correlation_id: str,
           source: str = "poll", triage: TriageRules | None = None, today: date | None = None,
           rules: RuleTable = EXCEPTION_RULES) -> tuple[list[WorkMessage], int, int]:
    """Which documents need work: exceptions whose state changed, and changed documents with an open issue.

    Returns the messages, the number unchanged, and the number healthy with nothing open (both skipped)."""
    messages: dict[DocumentKey, WorkMessage] = {}
    unchanged = healthy = 0
    if triage is not None and today is None:
        raise ValueError("judging triage needs the day it is judged on")
    day = today or EVERYTHING.date()  # unused without triage
    for doc in documents:
        finding = classify(doc, rules)
        state = states.get(doc.key)
        fp = fingerprint(observed(doc, finding, triage, day, state.opened_at if state else None))
        if state and state.fingerprint == fp:
            unchanged += 1
            continue
        if finding is None and not (state and state.open):
            healthy += 1
            continue
        messages[doc.key] = WorkMessage(
            kind="sync", external_id=doc.key.external_id, dedupe_id=f"sync:{doc.key.external_id}:{fp}",
            correlation_id=correlation_id, source=source, fingerprint=fp,
            observed_at=doc.last_modified.isoformat() if doc.last_modified else None,
            reason=finding.reason if finding else f"exception cleared: status {doc.status}",
            document=carried(doc),
        )
    return list(messages.values()), unchanged, healthy


def carried(doc: Document) -> dict | None:
    """The document as a work message carries it, so the worker need not read it again; ``None`` when its read time
    is unknown, when it is too large, or when it would not come back exactly as it is (then the worker reads)."""
    if doc.read_at is None:
        return None
    data = document_to_json(doc)
    try:
        wire = json.dumps(data)
        if len(wire) > CARRIED_DOCUMENT_BYTES or document_from_json(json.loads(wire)) != doc:
            return None
    except (TypeError, ValueError):
        return None
    return data


def fresh_carried_document(message: WorkMessage, ctx: SyncContext, attempt: int) -> Document | None:
    """The document the message carries, when acting on it cannot be acting on stale data: the first delivery of a
    message the poller queued, read no longer than ``ctx.fresh_for_seconds`` ago. Retries, replays and DLQ redrives
    re-read, and so does any message another source queued: only the poller read the document from Acumatica, and
    a document carried by a message the webhook queued would be whatever the caller put in the body."""
    if message.document is None or message.source != "poll" or attempt > 1 or ctx.fresh_for_seconds <= 0:
        return None
    try:
        doc = document_from_json(message.document)
    except ValueError:
        logger.warning("carried document unreadable; reading it", extra={"external_id": message.external_id})
        return None
    if doc.key != message.key or doc.read_at is None:
        return None
    age = ctx.clock() - doc.read_at.timestamp()
    return doc if -CLOCK_SKEW_SECONDS <= age <= ctx.fresh_for_seconds else None


def poll_entity(entity: str, *, documents: DocumentSource, store: StateStore, queue: WorkQueue,
                options: PollOptions, now: Callable[[], datetime], seconds_left: Callable[[], float],
                correlation_id: str, triage: TriageRules | None = None,
                router: PageRouter | None = None) -> PollReport:
    """Work through one pass of changed documents, checkpointing after every durably queued page.

    Stops early (``completed=False``) when the Lambda is about to run out of time; the next run resumes the same pass.
    The watermark is the greatest stamp read (``Cursor``); ``now`` serves only budgets, the pass's duration, the
    full-pass schedule and the initial lookback of an entity never polled. ``router`` (when routing by purchase order
    can assign anyone) reads the buyers of a page's new exception bills for the whole page, onto their messages.
    """
    report = PollReport(entity)
    cursor = store.get_cursor(entity)
    if cursor.pass_from is None:
        started = now()
        full_pass_due = (options.full_pass_every is not None and cursor.full_pass_at is not None
                         and started - cursor.full_pass_at >= options.full_pass_every)
        if cursor.watermark_text is not None and not full_pass_due:
            since = watermarks.filter_from(cursor.watermark_text, options.overlap + cursor.lookback)
        elif cursor.watermark_text is None and options.initial_lookback is not None and cursor.full_pass_at is None:
            # The one bound the data cannot give (nothing read yet), so the Lambda's clock, once: if that window
            # holds nothing, Acumatica's clock may be further behind than the lookback, and the next pass reads all.
            since = started - options.initial_lookback
        else:
            since = EVERYTHING
        full_pass_at = started if since == EVERYTHING or cursor.full_pass_at is None else cursor.full_pass_at
        cursor = replace(cursor, pass_from=since, pass_started=started, skip=0, pass_max=None, pass_lead=None,
                         pass_stepped=False, full_pass_at=full_pass_at)
        store.put_cursor(entity, cursor)
        skip = 0
    else:
        skip = max(0, cursor.skip - options.resume_margin)
        logger.info("resuming poll pass", extra={"entity": entity, "skip": skip})
    assert cursor.pass_from is not None and cursor.pass_started is not None
    slowest_page = 0.0
    page_started = seconds_left()
    page: Page
    checking = True  # the first page of every run compares the pass's start with Acumatica's own clock
    read_before: tuple[datetime, datetime] | None = None  # (Date, Lambda time) of the page before, for step checks
    while True:
        restarted = False
        for page in documents.changed_pages(entity, cursor.pass_from, skip=skip, page_size=options.page_size):
            read_at = now()
            if read_before is not None:
                cursor = _stepped_if(cursor, page.server_time, read_before[0], read_at - read_before[1])
            if page.server_time is not None:
                read_before = (page.server_time, read_at)
            if checking:
                checking = False
                moved_from = cursor.pass_from
                cursor, restarted = _checked_against_server(entity, cursor, page, read_at, options.overlap)
                if restarted:  # that page is of the later start: read again from the earlier one
                    assert moved_from is not None and cursor.pass_from is not None
                    report.rewinds += 1
                    report.rewound_seconds += (moved_from - cursor.pass_from).total_seconds()
                    skip = 0
                    store.put_cursor(entity, cursor)
                    break
            report.pages += 1
            report.seen += len(page.documents)
            states = store.get_states([d.key for d in page.documents])
            messages, unchanged, healthy = decide(page.documents, states, correlation_id, triage=triage,
                                                  today=cursor.pass_started.date(), rules=options.rules)
            if router is not None:
                messages = router.annotate(messages, page.documents, states)
            queue.send(messages)
            store.audit_queued(messages)
            report.enqueued += len(messages)
            report.unchanged += unchanged
            report.healthy += healthy
            lead = watermarks.stamp_lead(page.documents, page.server_time, cursor.watermark_text)
            cursor = replace(cursor, skip=page.next_skip,
                             pass_max=watermarks.greatest(cursor.pass_max, page.documents),
                             pass_lead=watermarks.greater_lead(cursor.pass_lead, lead))
            store.put_cursor(entity, cursor)
            remaining = seconds_left()
            slowest_page = max(slowest_page, page_started - remaining)
            page_started = remaining
            if page.is_last:
                break
            if remaining < options.safety_seconds + 2 * slowest_page:
                logger.info("stopping before the time limit; checkpoint kept",
                            extra={"entity": entity, "skip": cursor.skip, "seconds_left": round(remaining, 1)})
                return report
        if not restarted:
            break
    text = watermarks.later(cursor.watermark_text, cursor.pass_max)  # never backwards; reading nothing keeps it
    store.put_cursor(entity, Cursor(watermark=watermarks.parse(text) if text else None, watermark_text=text,
                                    lookback=max(timedelta(0), now() - cursor.pass_started),
                                    full_pass_at=cursor.full_pass_at, checked_at=cursor.checked_at,
                                    server_checked=cursor.server_checked, last_rewind=cursor.last_rewind,
                                    lead=cursor.lead if cursor.pass_stepped or cursor.pass_lead is None
                                    else cursor.pass_lead))
    report.completed = True
    report.watermark = text
    return report


def _checked_against_server(entity: str, cursor: Cursor, page: Page, lambda_now: datetime,
                            overlap: timedelta) -> tuple[Cursor, bool]:
    """The cursor after comparing its pass's start with Acumatica's clock (``watermarks.server_bound``), and whether
    the pass must start again, earlier. A rewind is reported (``PollReport.rewinds``, the handler's metric) with its
    figures in the log and the cursor (``last_rewind``): it is the one trace of Acumatica's clock having gone back,
    and it costs re-reads only (unchanged documents queue nothing)."""
    assert cursor.pass_from is not None
    since_then = lambda_now - cursor.checked_at if cursor.checked_at is not None else timedelta(0)
    cursor = _stepped_if(cursor, page.server_time, cursor.server_checked, since_then)
    start = watermarks.server_bound(cursor.pass_from, page.server_time, cursor.server_checked, since_then, overlap,
                                    cursor.lead)
    checked = replace(cursor, checked_at=lambda_now, server_checked=page.server_time or cursor.server_checked)
    if start is None:
        return checked, False
    assert page.server_time is not None  # server_bound answers only with Acumatica's time in hand
    lead = cursor.lead or timedelta(0)
    figures = {"entity": entity, "pass_from": cursor.pass_from.isoformat(), "start": start.isoformat(),
               "server_time": page.server_time.isoformat(),
               "server_checked": cursor.server_checked.isoformat() if cursor.server_checked else None,
               "since_checked_seconds": round(since_then.total_seconds(), 1),
               "stamp_lead_seconds": round(lead.total_seconds(), 1)}
    note = (f"{lambda_now.isoformat()}: Acumatica's Date read {page.server_time.isoformat()} "
            f"({round(since_then.total_seconds())} s after it read {figures['server_checked']}, stamps leading it by "
            f"{figures['stamp_lead_seconds']} s), so a pass from {cursor.pass_from.isoformat()} could miss edits "
            f"stamped after a correction; started from {start.isoformat()}")
    logger.info("Acumatica's clock went back: the pass starts earlier", extra=figures)
    return replace(checked, pass_from=start, skip=0, last_rewind=note), True


def _stepped_if(cursor: Cursor, server_now: datetime | None, server_then: datetime | None,
                since_then: timedelta) -> Cursor:
    """The cursor, its pass marked as teaching no lead if ``Date`` stepped back since the reading before: its pages
    from here on may hold stamps written before a correction and read after it (``watermarks.stamp_lead``)."""
    if watermarks.stepped_back(server_now, server_then, since_then):
        return replace(cursor, pass_lead=None, pass_stepped=True)
    return cursor


# --- worker ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncContext:
    documents: DocumentSource
    tracker: IssueTracker
    store: StateStore
    acumatica_url: str
    owner_map: Mapping[str, str]
    labels: tuple[str, ...]
    cleared_status: str
    clock: Callable[[], float]
    reopen_status: str = ""
    """Status an issue moves back to when its exception returns after a resolution; empty: a To Do status."""
    resolved_statuses: tuple[str, ...] = ()
    triage: TriageRules | None = None
    """Routing, due date and priority tables; ``None`` leaves priority and due date to Jira."""
    rules: RuleTable = field(default_factory=lambda: EXCEPTION_RULES)
    fresh_for_seconds: float = 0.0
    """How long the poller's read, carried in the message, stands for the document (``WorkFreshnessSeconds``);
    0 re-reads every document."""

    def today(self) -> date:
        return datetime.fromtimestamp(self.clock(), timezone.utc).date()


def sync_document(message: WorkMessage, ctx: SyncContext, *, attempt: int = 1) -> str:
    """Bring the document's Jira issue in line with the document as it is now; returns the outcome name.

    ``attempt`` is the message's delivery count (SQS ``ApproximateReceiveCount``): only a first delivery may use the
    document the poller carried in it."""
    key = message.key
    audit = _auditor(ctx.store, key, message.correlation_id)
    carried = fresh_carried_document(message, ctx, attempt)
    doc = carried or ctx.documents.get(key)
    if doc is None:
        gone = ctx.store.get_state(key)
        if gone is not None and gone.issue_key and gone.open:
            if key in ctx.documents.existing([key]):  # a failed lookup raises: the message comes back, nothing told
                audit("sync", "skipped", reason="the read by keys answered 404, yet Acumatica still lists the "
                      "document: not a deletion, the issue is left as it is", issue=gone.issue_key)
                logger.warning("document not found by its keys but still listed; not taken for a deletion",
                               extra={"external_id": key.external_id, "issue": gone.issue_key})
                return "skipped"
            return _document_deleted(key, gone, ctx, audit)
        audit("sync", "skipped", reason="document not found in Acumatica")
        logger.info("document not found; skipped", extra={"external_id": key.external_id})
        return "skipped"
    finding = classify(doc, ctx.rules)
    state = ctx.store.get_state(key) or DocState()
    snap = observed(doc, finding, ctx.triage, ctx.today(), state.opened_at)
    fp = fingerprint(snap)

    if state.issue_key and state.fingerprint == fp:
        audit("sync", "unchanged", reason="issue already reflects this state", issue=state.issue_key)
        return "unchanged"
    if not state.issue_key:
        if finding is None:
            audit("sync", "healthy", reason="no exception and no issue", status=doc.status)
            return "healthy"
        return _ensure_issue(doc, finding, state, ctx, audit, _carried_routing(message) if carried else None)
    return _update_issue(doc, finding, snap, fp, state, ctx, audit)


def _carried_routing(message: WorkMessage) -> Routing | None:
    """The buyer the poll read with the carried document; ``None`` when it carries none (or nothing readable)."""
    if message.routing is None:
        return None
    try:
        return Routing.from_json(message.routing)
    except ValueError:
        logger.warning("carried routing unreadable; reading the bill", extra={"external_id": message.external_id})
        return None


def _routing(doc: Document, ctx: SyncContext, audit: Callable[..., None], carried: Routing | None) -> Routing:
    """The purchase orders a bill about to get an issue references, and their buyer: what the poll read for the whole
    page when the message carries it, else one read of the bill's lines and of its orders, as the poll would have.

    Read only when a buyer could be mapped to someone (``routing.wants_lines``). Never raises: routing is an
    enrichment, so a failed or refused read leaves the buyer unknown, is audited, and the issue is created all the
    same (by the vendor table, the default, round robin, or unassigned)."""
    if doc.key.entity != "Bill" or doc.owner or ctx.triage is None or not wants_lines(ctx.owner_map):
        return Routing()
    found = carried if carried is not None else _read_routing(doc.key, ctx)
    if found.unavailable:
        audit("routing", "unavailable", reason=f"{found.unavailable}; the issue is routed without the bill's buyer")
    return found


def _read_routing(key: DocumentKey, ctx: SyncContext) -> Routing:
    try:
        orders = ctx.documents.referenced_orders(key)
    except ConnectorError as exc:
        return Routing(unavailable=f"the bill's lines could not be read: {exc}"[:500])
    owners: dict[DocumentKey, str | None] = {}
    for order in orders:  # the first order with an owner is the buyer: stop there, or at the first failure
        try:
            purchase_order = ctx.documents.get(order)
        except ConnectorError as exc:
            return Routing(orders=tuple(orders), unavailable=f"purchase order {order} could not be read: {exc}"[:500])
        owners[order] = purchase_order.owner if purchase_order is not None else None
        if owners[order]:
            break
    return Routing(orders=tuple(orders), buyer=buyer_among(orders, owners))


def _draft(doc: Document, finding: Finding, ctx: SyncContext, routing: Routing) -> IssueDraft:
    rules = ctx.triage or TriageRules()
    buyer = routing.buyer if not doc.owner else None
    draft = IssueDraft(
        summary=content.summary(doc, finding),
        description=content.description(doc, finding, ctx.acumatica_url),
        external_id=doc.key.external_id,
        labels=ctx.labels,
        assignee_account_id=route(doc, ctx.owner_map, rules, buyer=buyer).account_id,
    )
    if ctx.triage is None:
        return draft
    judged = evaluate(doc, ctx.triage, ctx.today())
    return replace(draft, due_date=judged.due_text or None, priority=judged.priority)


def planned_issue(doc: Document, finding: Finding, ctx: SyncContext) -> IssueDraft:
    """The issue the worker would create for ``doc`` now: ``connector preview`` prints exactly this."""
    return _draft(doc, finding, ctx, _routing(doc, ctx, lambda *args, **kwargs: None, None))


def _triage_fields(draft: IssueDraft, changed: list[tuple[str, str, str]], snap: Mapping[str, str]) -> IssueDraft:
    """Add the due date and priority to an update when, and only when, they changed."""
    names = {name for name, _, _ in changed}
    return replace(draft, due_date=(snap.get("due date") or None) if "due date" in names else None,
                   priority=snap.get("priority") if "priority" in names else None)


Sent = TypeVar("Sent")


def _without_refused(send: Callable[[IssueDraft], Sent], draft: IssueDraft, audit: Callable[..., None],
                     doing: str) -> Sent:
    """Send ``draft``; each optional field Jira refuses (a deactivated assignee, a priority the project's scheme
    lacks, a due date the screen does not offer) is audited and dropped, and the rest is sent again. A 400 that names
    no field at all cannot be pinned on one: every optional field is dropped, once, so the issue itself still exists
    and stays current; a refusal naming a field the issue needs (summary, description, external id) is raised."""
    while True:
        try:
            return send(draft)
        except ValidationError as exc:
            why = exc.field_errors
            refused = [name for name, attribute in REFUSABLE.items()
                       if name in why and getattr(draft, attribute) is not None]
            if not refused and not why:
                refused = [name for name, attribute in REFUSABLE.items() if getattr(draft, attribute) is not None]
                why = {name: f"refused without naming a field ({exc})" for name in refused}
            if not refused:
                raise
            for name in refused:
                if name == "assignee":
                    reason = f"Jira refused assignee from the owner map: {why[name]}; {doing} unassigned"
                else:
                    reason = (f"Jira refused {name} {getattr(draft, REFUSABLE[name])!r}: {why[name]}; "
                              f"{doing} without it")
                audit("issue", f"{name}-refused", reason=reason)
            draft = replace(draft, **{REFUSABLE[name]: None for name in refused})


def _content_only(doc: Document, finding: Finding, ctx: SyncContext) -> IssueDraft:
    """Updates rewrite summary and description only: assignee and labels belong to people once the issue exists."""
    return IssueDraft(summary=content.summary(doc, finding), description=content.description(doc, finding,
                                                                                              ctx.acumatica_url))


def _create(doc: Document, finding: Finding, ctx: SyncContext, audit: Callable[..., None],
            routing: Routing) -> IssueRef:
    """Create the issue; an assignee or priority Jira refuses must not stop the issue existing."""
    return _without_refused(ctx.tracker.create_issue, _draft(doc, finding, ctx, routing), audit, "created")


def _link_orders(doc: Document, issue_key: str, orders: list[DocumentKey], ctx: SyncContext,
                 audit: Callable[..., None]) -> None:
    """Link a bill's issue to the issues of the purchase orders it bills ("relates to"), once per pair.

    A link is an enrichment: one that fails or is refused (linking disabled, a link type renamed, a 403 or a 413) is
    audited and never stops the bill's own issue, nor sends its message to the DLQ."""
    for order in orders:
        state = ctx.store.get_state(order)
        if state is None or not state.issue_key:
            continue
        name = f"LINK#{order.external_id}"
        if not ctx.store.claim(doc.key, name, fingerprint=state.issue_key,
                               retake_after_seconds=COMMENT_RETAKE_SECONDS).won:
            continue
        try:
            ctx.tracker.link_issues(issue_key, state.issue_key)
        except ConnectorError as exc:  # refused (403, 404, 413, 400) or failing: the issue stands without it
            ctx.store.finish_claim(doc.key, name, "failed", reason=str(exc)[:500])
            audit("link", "failed", reason=f"could not link {issue_key} to {state.issue_key}: {exc}",
                  issue=issue_key)
            continue
        ctx.store.finish_claim(doc.key, name, "done", issue_key=issue_key, linked=state.issue_key)
        audit("link", "linked", reason=f"relates to {state.issue_key} ({order.external_id})", issue=issue_key)


def _ensure_issue(doc: Document, finding: Finding, state: DocState, ctx: SyncContext,
                  audit: Callable[..., None], carried: Routing | None = None) -> str:
    key = doc.key
    claim = ctx.store.claim(key, CREATE_CLAIM, fingerprint="issue", retake_after_seconds=CREATE_RETAKE_SECONDS)
    issue: IssueRef | None = None
    try:
        if not claim.won and claim.state == "done" and claim.details.get("issue_key"):
            issue = IssueRef(id=str(claim.details.get("issue_id", "")), key=str(claim.details["issue_key"]))
        else:
            issue = ctx.tracker.find_by_external_id(key.external_id, ctx.store.recent_issue_ids())
            if issue is None and not claim.won:
                # Come back when the claim may be retaken (search has caught up by then), not sooner.
                raise TransientError(f"creation of the issue for {key} is in flight; retrying after it settles",
                                     retry_after=max(1.0, claim.claimed_at + CREATE_RETAKE_SECONDS - ctx.clock()))
        routing = _routing(doc, ctx, audit, carried)  # also when adopting: a crash before linking still links
        if issue is not None:
            outcome = "adopted"
            ctx.tracker.update_issue(issue.key, _content_only(doc, finding, ctx))
    except Exception as exc:
        _release_unused_claim(claim.won, key, ctx, exc)
        raise
    if issue is None:
        try:
            issue = _create(doc, finding, ctx, audit, routing)
        except (PermanentError, TransientError) as exc:
            if isinstance(exc, UncertainOutcome):
                raise  # Jira may have created it: the claim stays until search can tell (CREATE_RETAKE_SECONDS)
            _release_unused_claim(claim.won, key, ctx, exc)
            raise
        outcome = "created"
    ctx.store.finish_claim(key, CREATE_CLAIM, "done", issue_key=issue.key, issue_id=issue.id)
    ctx.store.link_issue(issue.key, issue.id, key)
    opened_at = state.opened_at if state.opened_at is not None else ctx.clock()
    snap = observed(doc, finding, ctx.triage, ctx.today(), opened_at)
    ctx.store.save_state(key, replace(state, issue_key=issue.key, issue_id=issue.id, fingerprint=fingerprint(snap),
                                      snapshot=snap, open=True, opened_at=opened_at))
    audit("issue", outcome, reason=finding.reason, issue=issue.key, rule=finding.rule, status=doc.status)
    _link_orders(doc, issue.key, list(routing.orders), ctx, audit)
    logger.info("issue %s", outcome, extra={"external_id": key.external_id, "issue": issue.key, "rule": finding.rule})
    return outcome


def _release_unused_claim(won: bool, key: DocumentKey, ctx: SyncContext, exc: Exception) -> None:
    """Give the creation claim back when nothing can have been created, so the next attempt may create at once.

    A claim exists to bridge Jira's search lag after a create whose outcome is unknown. A failure before the create
    was sent (search 5xx, token failure) or a definite refusal of it (4xx, a 429 after its retries, a connection
    never made) created nothing: holding the claim would answer "in flight" for CREATE_RETAKE_SECONDS and walk the
    message to the DLQ without an issue. A claim this attempt did not win belongs to someone else and is kept.
    """
    if not won:
        return
    ctx.store.finish_claim(key, CREATE_CLAIM, "failed", reason=f"nothing created: {type(exc).__name__}: {exc}"[:500])


def _update_issue(doc: Document, finding: Finding | None, snap: dict[str, str], fp: str, state: DocState,
                  ctx: SyncContext, audit: Callable[..., None]) -> str:
    key = doc.key
    issue_key = state.issue_key
    assert issue_key is not None
    changed = changes(state.snapshot, snap)
    if state.declined:
        if all(name in TRIAGE_KEYS for name, _, _ in changed):
            ctx.store.save_state(key, replace(state, fingerprint=fp, snapshot=snap))
            audit("sync", "declined", reason="a person declined the issue and the document has not changed since: "
                  "the closed issue is left alone", issue=issue_key)
            return "declined"
        state = replace(state, declined="")  # the document itself changed: told as any change is
    if finding is None and not state.open:
        ctx.store.save_state(key, replace(state, fingerprint=fp, snapshot=snap))
        audit("sync", "recorded", reason="healthy document with a closed exception; nothing to tell", issue=issue_key)
        return "recorded"
    outcome = "cleared" if finding is None else ("reopened" if not state.open else "updated")
    if outcome == "updated" and changed and all(name in TRIAGE_KEYS for name, _, _ in changed):
        outcome = "retriaged"  # only the calendar moved: set the fields, tell nobody (unless it went overdue)
    comment_claim = ctx.store.claim(key, COMMENT_CLAIM, fingerprint=fp, retake_after_seconds=COMMENT_RETAKE_SECONDS)
    # An earlier attempt on this same state that failed after its comment marked the claim: never comment twice.
    commented = comment_claim.details.get("commented") == fp
    if not comment_claim.won and comment_claim.state == "claimed" and not commented:
        raise TransientError(f"an update of {issue_key} is in flight; retrying after it settles")
    try:
        if comment_claim.won or commented:
            if finding is not None:  # idempotent, and first: failing here has told nobody anything yet
                draft = _triage_fields(_content_only(doc, finding, ctx) if outcome != "retriaged" else IssueDraft(),
                                       changed, snap)
                try:
                    _without_refused(lambda d: ctx.tracker.update_issue(issue_key, d), draft, audit, "updated")
                except Exception as exc:
                    if not commented and not isinstance(exc, NotFoundError):
                        _release_comment_claim(key, ctx, exc)
                    raise
            if not commented and outcome != "retriaged":
                body = content.change_comment(doc, finding, changed, reopened=outcome == "reopened")
                try:
                    ctx.tracker.add_comment(issue_key, body)
                except (PermanentError, TransientError) as exc:
                    if isinstance(exc, (UncertainOutcome, NotFoundError)):
                        raise
                    _release_comment_claim(key, ctx, exc)  # refused: nothing was posted, retry at once
                    raise
                ctx.store.finish_claim(key, COMMENT_CLAIM, "claimed", commented=fp)
            if finding is not None:  # each has a claim of its own: safe to repeat on a retry
                if state.snapshot.get("overdue") == "no" and snap.get("overdue") == "yes":
                    _overdue_once(doc, snap, issue_key, ctx, audit)
                if snap.get("escalation") and snap.get("escalation") != state.snapshot.get("escalation"):
                    _escalate_once(doc, finding, state, issue_key, ctx, audit)
            if outcome == "reopened":
                _reopen_if_resolved(issue_key, ctx, audit)
            if finding is None and ctx.cleared_status and not ctx.tracker.transition_to(issue_key,
                                                                                       ctx.cleared_status):
                audit("transition", "unavailable", reason=f"no transition to {ctx.cleared_status!r}", issue=issue_key)
            ctx.store.finish_claim(key, COMMENT_CLAIM, "done", issue_key=issue_key)
    except NotFoundError:
        ctx.store.finish_claim(key, COMMENT_CLAIM, "failed", reason="issue not found")
        ctx.store.save_state(key, replace(state, fingerprint=fp, snapshot=snap, open=False))
        audit("sync", "issue-missing", reason="the Jira issue was deleted; not recreated (one issue per document)",
              issue=issue_key)
        return "issue-missing"
    ctx.store.save_state(key, replace(state, fingerprint=fp, snapshot=snap, open=finding is not None))
    audit("issue", outcome, reason=finding.reason if finding else f"cleared: status {doc.status}", issue=issue_key,
          changes={name: f"{old} -> {new}" for name, old, new in changed})
    return outcome


def _reopen_if_resolved(issue_key: str, ctx: SyncContext, audit: Callable[..., None]) -> None:
    """An exception back after a resolution: a resolved issue would hide it, so it moves back to ``reopen_status``
    (else a To Do status). An issue nobody resolved stays where people put it."""
    issue = ctx.tracker.get_issue(issue_key)
    if issue is None or not is_resolved(issue.status, issue.status_category, ctx.resolved_statuses):
        return
    moved = (ctx.tracker.transition_to(issue_key, ctx.reopen_status) if ctx.reopen_status
             else ctx.tracker.transition_to_category(issue_key, "new"))
    if not moved:
        audit("transition", "unavailable", reason=f"no transition to {ctx.reopen_status or 'a To Do status'!r}",
              issue=issue_key)


def _release_comment_claim(key: DocumentKey, ctx: SyncContext, exc: Exception) -> None:
    """Nothing was posted (refused, or failed before the comment): the retry may comment at once."""
    ctx.store.finish_claim(key, COMMENT_CLAIM, "failed", reason=f"nothing posted: {type(exc).__name__}: {exc}"[:500])


def _overdue_once(doc: Document, snap: Mapping[str, str], issue_key: str, ctx: SyncContext,
                  audit: Callable[..., None]) -> None:
    """One comment when a document goes overdue, per due date: the claim holds across replays and retaken updates.
    An enrichment: if Jira refuses or fails it, the update stands and the failure is audited."""
    claim = ctx.store.claim(doc.key, OVERDUE_CLAIM, fingerprint=snap.get("due date", ""),
                            retake_after_seconds=COMMENT_RETAKE_SECONDS)
    if not claim.won:
        return
    try:
        ctx.tracker.add_comment(issue_key, content.overdue_comment(doc, snap.get("due date", ""),
                                                                   snap.get("priority", "")))
    except ConnectorError as exc:
        _enrichment_failed(doc.key, OVERDUE_CLAIM, exc, ctx, audit, issue_key, "overdue comment")
        return
    ctx.store.finish_claim(doc.key, OVERDUE_CLAIM, "done", issue_key=issue_key)
    audit("issue", "overdue", reason=f"due {snap.get('due date')}; priority now {snap.get('priority')}",
          issue=issue_key)


def _escalate_once(doc: Document, finding: Finding, state: DocState, issue_key: str, ctx: SyncContext,
                   audit: Callable[..., None]) -> None:
    """A comment mentioning who must act, and a label, once per threshold reached.

    The claim makes it once across replays and retaken updates; the label (``escalated-7d``) makes it once when the
    state table was lost too, since Jira keeps it: an issue that already carries it is not escalated again. An
    enrichment: a failure is audited, the update stands, and later thresholds wait for the next change."""
    rules = ctx.triage
    if rules is None or state.opened_at is None:
        return
    for days in reached_thresholds(rules.escalation_days, finding.rule, _days_since(state.opened_at, ctx.today())):
        name = f"ESCALATE#{days}"
        if not ctx.store.claim(doc.key, name, fingerprint=issue_key,
                               retake_after_seconds=COMMENT_RETAKE_SECONDS).won:
            continue
        label = f"{rules.escalation_label}-{days}d"
        try:
            issue = ctx.tracker.get_issue(issue_key)
            fields = issue.fields if issue is not None else {}
            if label in (fields.get("labels") or ()):
                ctx.store.finish_claim(doc.key, name, "done", issue_key=issue_key,
                                       reason="label already on the issue")
                continue
            who = rules.escalation_user or ((fields.get("assignee") or {}).get("accountId"))
            ctx.tracker.add_comment(issue_key, content.escalation_comment(doc, finding, days, who))
            ctx.tracker.add_label(issue_key, label)
        except ConnectorError as exc:
            _enrichment_failed(doc.key, name, exc, ctx, audit, issue_key, f"escalation after {days} days")
            return
        ctx.store.finish_claim(doc.key, name, "done", issue_key=issue_key)
        audit("issue", "escalated", reason=f"still an exception {days} days after the issue was opened",
              issue=issue_key, mentioned=who, label=label)


def _enrichment_failed(key: DocumentKey, claim: str, exc: ConnectorError, ctx: SyncContext,
                       audit: Callable[..., None], issue_key: str, what: str) -> None:
    """An enrichment Jira refused or failed: audited, and the update goes on without it. A definite failure gives
    its claim back; one that may have been posted keeps it, so its retake window stands between it and a repeat."""
    if not isinstance(exc, UncertainOutcome):
        ctx.store.finish_claim(key, claim, "failed", reason=f"{type(exc).__name__}: {exc}"[:500])
    audit("issue", "enrichment-failed", reason=f"{what} not made: {exc}", issue=issue_key)
    logger.info("enrichment failed; the issue stands", extra={"external_id": key.external_id, "what": what})


DELETED_FINGERPRINT = "deleted"
"""The state of a document Acumatica no longer has; a document re-created under the same keys differs from it."""


def _document_deleted(key: DocumentKey, state: DocState, ctx: SyncContext, audit: Callable[..., None]) -> str:
    """The document behind an open issue was deleted: say so once, and clear the exception as if it had healed.

    Called only on two agreeing answers, the read by keys (404) and a list request by keys that does not list it: a
    404 alone is also what an instance answers for an endpoint version it stopped serving, or a proxy in front of
    it, and taking that for a deletion would close every open issue the worker touched."""
    issue_key = state.issue_key
    assert issue_key is not None
    claim = ctx.store.claim(key, COMMENT_CLAIM, fingerprint=DELETED_FINGERPRINT,
                            retake_after_seconds=COMMENT_RETAKE_SECONDS)
    if not claim.won and claim.state == "claimed":
        raise TransientError(f"an update of {issue_key} is in flight; retrying after it settles")
    try:
        if claim.won:
            ctx.tracker.add_comment(issue_key, content.deleted_comment(key))
            if ctx.cleared_status and not ctx.tracker.transition_to(issue_key, ctx.cleared_status):
                audit("transition", "unavailable", reason=f"no transition to {ctx.cleared_status!r}", issue=issue_key)
            ctx.store.finish_claim(key, COMMENT_CLAIM, "done", issue_key=issue_key)
    except NotFoundError:
        ctx.store.finish_claim(key, COMMENT_CLAIM, "failed", reason="issue not found")
        audit("sync", "issue-missing", reason="the Jira issue was deleted too", issue=issue_key)
    ctx.store.save_state(key, replace(state, fingerprint=DELETED_FINGERPRINT, open=False))  # snapshot: last known
    audit("issue", "deleted", reason="document no longer exists in Acumatica; exception cleared", issue=issue_key)
    logger.info("document deleted in Acumatica; issue cleared", extra={"external_id": key.external_id,
                                                                       "issue": issue_key})
    return "deleted"


def _auditor(store: StateStore, key: DocumentKey, correlation_id: str) -> Callable[..., None]:
    def audit(event: str, outcome: str, *, reason: str = "", **details: object) -> None:
        store.audit(key, event, outcome, correlation_id=correlation_id, reason=reason, details=details)

    return audit


def first_turn(entities: tuple[str, ...], tick: datetime) -> int:
    """Which entity goes first at this tick: spread by a digest of the tick's minute, so every entity goes first in
    about one run out of ``len(entities)`` whatever the schedule's period (a plain modulo aliases with it)."""
    if not entities:
        return 0
    digest = hashlib.sha256(tick.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M").encode()).digest()
    return int.from_bytes(digest[:8], "big") % len(entities)


def run_poll(entities: tuple[str, ...], *, documents: DocumentSource, store: StateStore, queue: WorkQueue,
             options: PollOptions, now: Callable[[], datetime], seconds_left: Callable[[], float],
             correlation_id: str, triage: TriageRules | None = None,
             owner_map: Mapping[str, str] | None = None) -> tuple[list[PollReport], dict[str, str]]:
    """Poll every configured entity; one entity failing does not starve the others. Returns reports and errors.

    Entities take turns at going first (``first_turn``), so a backlog in one cannot use up every run's time while
    the others wait. Running out of time, or a system asking for a longer wait than the run has, is not an error:
    the entity gets an incomplete report and the next tick continues from its checkpoint. New exception bills get
    their buyers read page by page only when ``owner_map`` could map one (``routing.wants_lines``)."""
    reports: list[PollReport] = []
    failures: dict[str, str] = {}
    router = PageRouter(documents, options.rules) if triage is not None and wants_lines(owner_map or {}) else None
    start = first_turn(entities, now())
    for entity in entities[start:] + entities[:start]:
        if seconds_left() < options.safety_seconds:
            logger.info("not polled this run: out of time; the next run continues", extra={"entity": entity})
            reports.append(PollReport(entity))
            continue
        try:
            reports.append(poll_entity(entity, documents=documents, store=store, queue=queue, options=options,
                                       now=now, seconds_left=seconds_left, correlation_id=correlation_id,
                                       triage=triage, router=router))
        except RetryLater as exc:
            logger.info("stopped: %s", exc, extra={"entity": entity})
            reports.append(PollReport(entity))
        except Exception as exc:  # noqa: BLE001 - reported per entity, re-raised by the handler as one failure
            logger.exception("poll failed", extra={"entity": entity})
            failures[entity] = f"{type(exc).__name__}: {exc}"
    return reports, failures
