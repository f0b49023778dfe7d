"""The exception flow: polling decides what changed (``poll_entity``), the worker brings Jira up to date
(``sync_document``). Pure orchestration over the ports; no AWS or HTTP here.

Exactly one issue per document, under retries, crashes and replays, rests on three things: the FIFO queue serializes
all work on one document; creation is claimed in DynamoDB before Jira is called; and when a claim is found but no
issue is recorded (a crash between Jira's answer and our write), the issue is looked up by its external id, with the
recently created ids passed to Jira's ``reconcileIssues`` since search is eventually consistent.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Callable, Mapping

from . import content
from .errors import NotFoundError, TransientError, ValidationError
from .model import Document, DocumentKey, Finding, WorkMessage, document_from_json, document_to_json
from .ports import Cursor, DocState, DocumentSource, IssueDraft, IssueRef, IssueTracker, Page, StateStore, WorkQueue
from .rules import changes, classify, fingerprint, snapshot

logger = logging.getLogger(__name__)

EVERYTHING = datetime(1970, 1, 1, tzinfo=timezone.utc)
CREATE_CLAIM = "CREATE"
COMMENT_CLAIM = "COMMENT"
CREATE_RETAKE_SECONDS = 900.0
"""A creation claim older than this belongs to a crashed attempt (longer than the worker's timeout, and long enough
for Jira search to have caught up), so it may be retaken after searching for the issue it may have created."""
COMMENT_RETAKE_SECONDS = 600.0
"""An update claim older than this belongs to a crashed attempt; retaking it risks a repeated comment, never an issue."""
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


def decide(documents: list[Document], states: Mapping[DocumentKey, DocState], correlation_id: str,
           source: str = "poll") -> tuple[list[WorkMessage], int, int]:
    """Which documents need work: exceptions whose state changed, and changed documents with an open issue.

    Returns the messages, the number unchanged, and the number healthy with nothing open (both skipped)."""
    messages: dict[DocumentKey, WorkMessage] = {}
    unchanged = healthy = 0
    for doc in documents:
        finding = classify(doc)
        fp = fingerprint(snapshot(doc, finding))
        state = states.get(doc.key)
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
    """The document the message carries, when acting on it cannot be acting on stale data: the first delivery of the
    message, read no longer than ``ctx.fresh_for_seconds`` ago. Retries, replays and DLQ redrives re-read."""
    if message.document is None or attempt > 1 or ctx.fresh_for_seconds <= 0:
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
                correlation_id: str) -> PollReport:
    """Work through one pass of changed documents, checkpointing after every durably queued page.

    Stops early (``completed=False``) when the Lambda is about to run out of time; the next run resumes the same pass.
    """
    report = PollReport(entity)
    cursor = store.get_cursor(entity)
    if cursor.pass_from is None:
        started = now()
        full_pass_due = (options.full_pass_every is not None and cursor.full_pass_at is not None
                         and started - cursor.full_pass_at >= options.full_pass_every)
        if cursor.watermark is not None and not full_pass_due:
            since = cursor.watermark - options.overlap
        elif cursor.watermark is None and options.initial_lookback is not None:
            since = started - options.initial_lookback
        else:
            since = EVERYTHING
        full_pass_at = started if since == EVERYTHING or cursor.full_pass_at is None else cursor.full_pass_at
        cursor = Cursor(watermark=cursor.watermark, pass_from=since, pass_started=started, skip=0,
                        full_pass_at=full_pass_at)
        store.put_cursor(entity, cursor)
        skip = 0
    else:
        skip = max(0, cursor.skip - options.resume_margin)
        logger.info("resuming poll pass", extra={"entity": entity, "skip": skip})
    assert cursor.pass_from is not None and cursor.pass_started is not None
    slowest_page = 0.0
    page_started = seconds_left()
    page: Page
    for page in documents.changed_pages(entity, cursor.pass_from, skip=skip, page_size=options.page_size):
        report.pages += 1
        report.seen += len(page.documents)
        states = store.get_states([d.key for d in page.documents])
        messages, unchanged, healthy = decide(page.documents, states, correlation_id)
        queue.send(messages)
        store.audit_queued(messages)
        report.enqueued += len(messages)
        report.unchanged += unchanged
        report.healthy += healthy
        cursor = replace(cursor, skip=page.next_skip)
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
    store.put_cursor(entity, Cursor(watermark=cursor.pass_started, full_pass_at=cursor.full_pass_at))
    report.completed = True
    report.watermark = cursor.pass_started.isoformat()
    return report


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
    fresh_for_seconds: float = 0.0
    """How long the poller's read, carried in the message, stands for the document (``WorkFreshnessSeconds``);
    0 re-reads every document."""


def sync_document(message: WorkMessage, ctx: SyncContext, *, attempt: int = 1) -> str:
    """Bring the document's Jira issue in line with the document as it is now; returns the outcome name.

    ``attempt`` is the message's delivery count (SQS ``ApproximateReceiveCount``): only a first delivery may use the
    document the poller carried in it."""
    key = message.key
    audit = _auditor(ctx.store, key, message.correlation_id)
    doc = fresh_carried_document(message, ctx, attempt) or ctx.documents.get(key)
    if doc is None:
        audit("sync", "skipped", reason="document not found in Acumatica")
        logger.info("document not found; skipped", extra={"external_id": key.external_id})
        return "skipped"
    finding = classify(doc)
    snap = snapshot(doc, finding)
    fp = fingerprint(snap)
    state = ctx.store.get_state(key) or DocState()

    if state.issue_key and state.fingerprint == fp:
        audit("sync", "unchanged", reason="issue already reflects this state", issue=state.issue_key)
        return "unchanged"
    if not state.issue_key:
        if finding is None:
            audit("sync", "healthy", reason="no exception and no issue", status=doc.status)
            return "healthy"
        return _ensure_issue(doc, finding, snap, fp, state, ctx, audit)
    return _update_issue(doc, finding, snap, fp, state, ctx, audit)


def _draft(doc: Document, finding: Finding, ctx: SyncContext) -> IssueDraft:
    return IssueDraft(
        summary=content.summary(doc, finding),
        description=content.description(doc, finding, ctx.acumatica_url),
        external_id=doc.key.external_id,
        labels=ctx.labels,
        assignee_account_id=content.assignee_for(doc, ctx.owner_map),
    )


def _content_only(doc: Document, finding: Finding, ctx: SyncContext) -> IssueDraft:
    """Updates rewrite summary and description only: assignee and labels belong to people once the issue exists."""
    return IssueDraft(summary=content.summary(doc, finding), description=content.description(doc, finding,
                                                                                              ctx.acumatica_url))


def _create(doc: Document, finding: Finding, ctx: SyncContext, audit: Callable[..., None]) -> IssueRef:
    """Create the issue; an owner-map entry Jira refuses (a deactivated user) must not stop the issue existing."""
    draft = _draft(doc, finding, ctx)
    try:
        return ctx.tracker.create_issue(draft)
    except ValidationError as exc:
        if draft.assignee_account_id is None or "assignee" not in exc.field_errors:
            raise
        audit("issue", "assignee-refused", reason=f"Jira refused assignee from the owner map: "
                                                   f"{exc.field_errors['assignee']}; created unassigned")
        return ctx.tracker.create_issue(replace(draft, assignee_account_id=None))


def _ensure_issue(doc: Document, finding: Finding, snap: dict[str, str], fp: str, state: DocState,
                  ctx: SyncContext, audit: Callable[..., None]) -> str:
    key = doc.key
    claim = ctx.store.claim(key, CREATE_CLAIM, fingerprint="issue", retake_after_seconds=CREATE_RETAKE_SECONDS)
    issue: IssueRef | None = None
    if not claim.won and claim.state == "done" and claim.details.get("issue_key"):
        issue = IssueRef(id=str(claim.details.get("issue_id", "")), key=str(claim.details["issue_key"]))
    else:
        issue = ctx.tracker.find_by_external_id(key.external_id, ctx.store.recent_issue_ids())
        if issue is None and not claim.won:
            raise TransientError(f"creation of the issue for {key} is in flight; retrying after it settles")
    if issue is not None:
        outcome = "adopted"
        ctx.tracker.update_issue(issue.key, _content_only(doc, finding, ctx))
    else:
        issue = _create(doc, finding, ctx, audit)
        outcome = "created"
    ctx.store.finish_claim(key, CREATE_CLAIM, "done", issue_key=issue.key, issue_id=issue.id)
    ctx.store.link_issue(issue.key, issue.id, key)
    ctx.store.save_state(key, replace(state, issue_key=issue.key, issue_id=issue.id, fingerprint=fp, snapshot=snap,
                                      open=True))
    audit("issue", outcome, reason=finding.reason, issue=issue.key, rule=finding.rule, status=doc.status)
    logger.info("issue %s", outcome, extra={"external_id": key.external_id, "issue": issue.key, "rule": finding.rule})
    return outcome


def _update_issue(doc: Document, finding: Finding | None, snap: dict[str, str], fp: str, state: DocState,
                  ctx: SyncContext, audit: Callable[..., None]) -> str:
    key = doc.key
    issue_key = state.issue_key
    assert issue_key is not None
    changed = changes(state.snapshot, snap)
    if finding is None and not state.open:
        ctx.store.save_state(key, replace(state, fingerprint=fp, snapshot=snap))
        audit("sync", "recorded", reason="healthy document with a closed exception; nothing to tell", issue=issue_key)
        return "recorded"
    outcome = "cleared" if finding is None else ("reopened" if not state.open else "updated")
    comment_claim = ctx.store.claim(key, COMMENT_CLAIM, fingerprint=fp, retake_after_seconds=COMMENT_RETAKE_SECONDS)
    if not comment_claim.won and comment_claim.state == "claimed":
        raise TransientError(f"an update of {issue_key} is in flight; retrying after it settles")
    try:
        if comment_claim.won:
            ctx.tracker.add_comment(issue_key, content.change_comment(doc, finding, changed,
                                                                      reopened=outcome == "reopened"))
            if finding is not None:
                ctx.tracker.update_issue(issue_key, _content_only(doc, finding, ctx))
            elif ctx.cleared_status and not ctx.tracker.transition_to(issue_key, ctx.cleared_status):
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


def _auditor(store: StateStore, key: DocumentKey, correlation_id: str) -> Callable[..., None]:
    def audit(event: str, outcome: str, *, reason: str = "", **details: object) -> None:
        store.audit(key, event, outcome, correlation_id=correlation_id, reason=reason, details=details)

    return audit


def run_poll(entities: tuple[str, ...], *, documents: DocumentSource, store: StateStore, queue: WorkQueue,
             options: PollOptions, now: Callable[[], datetime], seconds_left: Callable[[], float],
             correlation_id: str) -> tuple[list[PollReport], dict[str, str]]:
    """Poll every configured entity; one entity failing does not starve the others. Returns reports and errors."""
    reports: list[PollReport] = []
    failures: dict[str, str] = {}
    for entity in entities:
        if seconds_left() < options.safety_seconds:
            failures[entity] = "not polled this run: out of time (the next run continues)"
            continue
        try:
            reports.append(poll_entity(entity, documents=documents, store=store, queue=queue, options=options,
                                       now=now, seconds_left=seconds_left, correlation_id=correlation_id))
        except Exception as exc:  # noqa: BLE001 - reported per entity, re-raised by the handler as one failure
            logger.exception("poll failed", extra={"entity": entity})
            failures[entity] = f"{type(exc).__name__}: {exc}"
    return reports, failures
