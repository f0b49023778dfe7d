"""The return flow: a resolved Jira issue releases, approves or un-holds its Acumatica document, never twice.

Acumatica actions are not idempotent, so every step is: re-read the document; check the action policy; claim the
action in DynamoDB for this exact document state (conditional write); act; confirm by re-reading. A claim found in
flight is never acted on again: its outcome is settled by the document's status. A failed action releases its claim,
so resolving the issue again (or replaying the message) retries it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Callable

from . import content
from .errors import NotFoundError, PermanentError, TransientError, UncertainOutcome
from .model import Document, WorkMessage
from .ports import DocState, DocumentSource, IssueTracker, StateStore
from .rules import EXCEPTION_RULES, REMOVE_HOLD, RuleTable, Step, classify, fingerprint, is_resolved, plan, snapshot

logger = logging.getLogger(__name__)

SETTLE_AFTER_SECONDS = 900.0
"""An action claim in flight for longer than this outlived any worker (timeout 120 s): its attempt was interrupted."""
NEVER = 10.0**12


@dataclass(frozen=True)
class ResolveContext:
    documents: DocumentSource
    tracker: IssueTracker
    store: StateStore
    approve_action: str
    clock: Callable[[], float]
    resolved_statuses: tuple[str, ...] = ()
    rules: RuleTable = field(default_factory=lambda: EXCEPTION_RULES)
    """The same exception rules as the poller and the worker (``ExceptionRules``), so recorded states agree."""


def resolve_document(message: WorkMessage, ctx: ResolveContext) -> str:
    """Act on the document behind a resolved issue if, and only if, its current status allows it."""
    key = message.key
    state = ctx.store.get_state(key)
    issue_key = message.issue_key or (state.issue_key if state else None)

    def audit(event: str, outcome: str, reason: str = "", **details: object) -> None:
        ctx.store.audit(key, event, outcome, correlation_id=message.correlation_id, reason=reason,
                        details={"issue": issue_key, "trigger": message.dedupe_id, **details})

    def tell(lines: list[str], success: bool, reference: str) -> None:
        if issue_key:
            try:
                ctx.tracker.add_comment(issue_key, content.outcome_comment(reference, lines, success=success))
            except NotFoundError:
                audit("comment", "issue-missing", reason=f"{issue_key} no longer exists")

    if issue_key:
        # Deliveries can arrive late and out of order: act only if the issue is still resolved now.
        issue = ctx.tracker.get_issue(issue_key)
        if issue is None:
            audit("resolve", "skipped", reason=f"{issue_key} no longer exists in Jira")
            return "issue-missing"
        if not is_resolved(issue.status, issue.status_category, ctx.resolved_statuses):
            audit("resolve", "skipped", reason=f"{issue_key} is no longer resolved (status {issue.status})")
            return "not-resolved"
    doc = ctx.documents.get(key)
    if doc is None:
        audit("resolve", "skipped", reason="document not found in Acumatica")
        tell([f"{key.external_id} was not found in Acumatica; nothing was done."], False, key.external_id)
        return "not-found"
    reference = content.reference(doc)
    steps, why = plan(doc, ctx.approve_action)
    if not steps:
        audit("resolve", "no-action", reason=why, status=doc.status)
        tell([f"Status is {doc.status}: {why}."], False, reference)
        return "no-action"

    done: list[str] = []
    for index, step in enumerate(steps):
        if index and doc.status != step.requires_status:  # plan() keys the first step by the current status
            done.append(f"{step.action} not needed or not allowed: status is now {doc.status}.")
            break
        result = _run_step(step, doc, ctx, audit)
        if isinstance(result, str):  # a failure or a settled earlier attempt: report and stop
            tell(done + [result], bool(done), reference)
            return "failed" if result.startswith("Failed") else "settled"
        done.append(f"{step.action}: {doc.status} → {result.status}.")
        doc = result
    tell(done, True, reference)
    audit("resolve", "done", reason="; ".join(done), status=doc.status)
    if state is not None and state.issue_key == issue_key:
        _record(doc, state, ctx)
    return "done"


def _record(doc: Document, state: DocState, ctx: ResolveContext) -> None:
    """The issue already tells what the action did: record the new state so the next poll does not report it again."""
    finding = classify(doc, ctx.rules)
    snap = snapshot(doc, finding)
    try:
        ctx.store.save_state(doc.key, replace(state, fingerprint=fingerprint(snap), snapshot=snap,
                                              open=finding is not None))
    except TransientError:
        logger.info("state changed meanwhile; the next poll reconciles it", extra={"external_id": doc.key.external_id})


def _run_step(step: Step, doc: Document, ctx: ResolveContext, audit: Callable[..., None]) -> Document | str:
    """Perform one step exactly once; returns the re-read document, or a sentence when nothing (more) was done."""
    key = doc.key
    claim_name = f"ACTION#{step.action}"
    doc_fp = fingerprint(snapshot(doc, None))
    claim = ctx.store.claim(key, claim_name, fingerprint=doc_fp, retake_after_seconds=NEVER)
    if not claim.won:
        if claim.state == "done":
            audit("action", "duplicate", reason=f"{step.action} already done for this document state")
            return f"{step.action} was already done for this document; nothing repeated."
        if ctx.clock() - claim.claimed_at < SETTLE_AFTER_SECONDS:
            raise TransientError(f"{step.action} on {key} is in flight; retrying after it settles")
        return _settle(step, doc, ctx, audit)

    audit("action", "claimed", reason=f"status {doc.status} allows {step.action}", action=step.action)
    try:
        if step.action == REMOVE_HOLD:
            after = ctx.documents.set_hold(key, False)
        else:
            after = ctx.documents.invoke_action(key, step.action)
    except UncertainOutcome:
        after = ctx.documents.get(key)
        if after is None or after.status == doc.status:
            # Leave the claim in flight: the retry settles it by status, it never posts again.
            raise
    except PermanentError as exc:
        ctx.store.finish_claim(key, claim_name, "failed", reason=str(exc)[:500])
        audit("action", "failed", reason=str(exc)[:500], action=step.action)
        return f"Failed: {step.action} was refused by Acumatica: {exc}"
    ctx.store.finish_claim(key, claim_name, "done", status_after=after.status)
    audit("action", "done", reason=f"{doc.status} -> {after.status}", action=step.action)
    logger.info("action done", extra={"external_id": key.external_id, "action": step.action, "status": after.status})
    return after


def _settle(step: Step, doc: Document, ctx: ResolveContext, audit: Callable[..., None]) -> str:
    """An earlier attempt was interrupted mid-action: decide what happened from the status, without acting."""
    key = doc.key
    claim_name = f"ACTION#{step.action}"
    if doc.status == step.requires_status:
        ctx.store.finish_claim(key, claim_name, "failed", reason="interrupted attempt left the status unchanged")
        audit("action", "settled-not-done", reason="interrupted attempt; status unchanged", action=step.action)
        return (f"Failed: an earlier {step.action} attempt was interrupted and the status is still {doc.status}; "
                "resolve the issue again to retry.")
    ctx.store.finish_claim(key, claim_name, "done", status_after=doc.status)
    audit("action", "settled-done", reason=f"interrupted attempt took effect: status {doc.status}", action=step.action)
    return f"{step.action} took effect in an earlier attempt: status is now {doc.status}."
