"""The return flow: a person's resolution of a document's own Jira issue releases, approves or un-holds that
document in Acumatica, once per decision.

The webhook body's external id is a claim made by whoever last edited the issue, not a fact, so before anything is
read from Acumatica the worker re-reads, at work time:
- the issue: it must be the one the connector recorded for the document (the ledger's key and id; with the ledger
  lost, the oldest issue whose field equals the id exactly and that the connector's own account created), with the
  external-id field still naming the document and a resolved status. Any other issue gets no action, an audit record
  and one comment saying which issue is the connector's and that nothing was done;
- the changelog: the decision is the newest move from a not-resolved status into a resolved one (later moves
  between resolved statuses, such as Done → Closed, are not new decisions), made by a person, never by the
  connector's own account;
- the document: if its amount, vendor or lines total changed since the issue last showed it, the decision was about
  another document; the issue is reopened with a comment saying what changed.

Acumatica actions are not idempotent, so every step is: re-read the document; check the action policy; claim the
action in DynamoDB for this decision (conditional write keyed by the changelog entry, so a later decision may act
again); act; confirm by re-reading (``connector.effects``: the status, not the HTTP answer, says whether it took
effect). A claim found in flight is never acted on again: its outcome is settled by the document's status. A step that
failed is told on the issue, which is reopened, so resolving it again retries. A decision that reached its end is
marked, so the sweep and late or duplicated deliveries of the same decision end silently; a decision the sweep brings
that no delivery announced is counted (``UndeliveredResolutions``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from . import content, effects, timings
from .errors import NotFoundError, TransientError
from .model import Document, DocumentKey, WorkMessage
from .ports import DocState, DocumentSource, IssueRef, IssueTracker, StateStore, StatusChange
from .rules import (EXCEPTION_RULES, REMOVE_HOLD, RuleTable, Step, classify, fingerprint, is_resolved, plan,
                    reviewed_changes, snapshot)

logger = logging.getLogger(__name__)

SETTLE_AFTER_SECONDS = timings.SETTLE_AFTER_SECONDS
DECISION_MARK = "DECISION"
"""Record of the last decision whose handling reached its end (acted, refused for a reason, or reopened)."""
TOLD_RETAKE_SECONDS = 600.0
"""A claim on the one comment to a foreign issue older than this belongs to a crashed attempt."""
HOLD_LIFTING_ACTIONS = ("RemoveHold", "ReleaseFromHold")
"""Names the workflow action behind the form's *Remove Hold* goes by in ``$adHocSchema`` (``releaseFromHold`` on
APInvoiceEntry and POOrderEntry in 2025 R2; ``RemoveHold`` on some forms)."""


@dataclass(frozen=True)
class ResolveContext:
    documents: DocumentSource
    tracker: IssueTracker
    store: StateStore
    approve_action: str
    clock: Callable[[], float]
    resolved_statuses: tuple[str, ...] = ()
    reopen_status: str = ""
    """Status the issue is moved back to when a decision cannot stand; empty: a status of category To Do."""
    approve_actions: Mapping[str, str] = field(default_factory=dict)
    """Approval action per entity (``ApproveActionNames``); entities not named use ``approve_action``."""
    rules: RuleTable = field(default_factory=lambda: EXCEPTION_RULES)
    """The same exception rules as the poller and the worker (``ExceptionRules``), so recorded states agree."""
    approval_reason: str = "Approved in Jira"
    """``ApprovalReason``: the reason an approval gives when the deciding person left no note with the decision."""
    api_user: str = ""
    """The Acumatica user the connector signs in as, named when Acumatica refuses it as an approver."""
    count_undelivered: Callable[[str], None] = lambda issue_key: None
    """Called with the issue key when the sweep brings a decision no delivery announced (the handler's metric)."""


def resolve_document(message: WorkMessage, ctx: ResolveContext) -> str:
    """Act on the document behind a resolved issue if, and only if, a person decided about that document's own issue
    as it is now, and the document's current status allows it."""
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

    if not issue_key:
        audit("resolve", "skipped", reason="no issue named and none recorded for the document")
        return "no-issue"
    # Deliveries can arrive late and out of order: act only if the issue is still resolved now.
    issue = ctx.tracker.get_issue(message.issue_id or issue_key)
    if issue is None:
        audit("resolve", "skipped", reason=f"{issue_key} no longer exists in Jira")
        return "issue-missing"
    issue_key = issue.key
    if not is_resolved(issue.status, issue.status_category, ctx.resolved_statuses):
        audit("resolve", "skipped", reason=f"{issue_key} is no longer resolved (status {issue.status})")
        return "not-resolved"
    own, why_not = _documents_issue(key, issue, state, ctx)
    if why_not:
        return _refuse_foreign(key, issue, own, why_not, ctx, audit)
    decision, why_not = _decision(issue, message, ctx)
    if decision is None:
        audit("resolve", "not-a-decision", reason=why_not)
        return "not-a-decision"
    decision_id = f"{issue.id}:{decision.id}"
    mark = ctx.store.get_claim(key, DECISION_MARK)
    if mark is not None and mark.details.get("decision") == decision_id:
        audit("resolve", "duplicate", reason=f"the decision of {decision.created} was already handled")
        return "duplicate"

    def settled(outcome: str) -> str:
        ctx.store.finish_claim(key, DECISION_MARK, "done", decision=decision_id, issue_key=issue_key)
        _note_undelivered(message, issue, ctx, audit)
        return outcome

    doc = ctx.documents.get(key)
    if doc is None:
        audit("resolve", "skipped", reason="document not found in Acumatica")
        tell([f"{key.external_id} was not found in Acumatica; nothing was done."], False, key.external_id)
        return settled("not-found")
    changed = reviewed_changes(state.snapshot if state else {}, doc)
    if changed:
        return settled(_reopen_for_review(doc, issue_key, changed, ctx, audit))
    steps, why = _named_by_the_instance(*plan(doc, ctx.approve_actions.get(key.entity) or ctx.approve_action),
                                        key.entity, ctx)
    if not steps:
        audit("resolve", "no-action", reason=why, status=doc.status)
        effects.tell_no_action(doc, why, issue_key, ctx, audit)
        return settled("no-action")
    results, after = effects.carry_out(steps, doc, decision=decision, decision_id=decision_id, issue_key=issue_key,
                                       ctx=ctx, audit=audit)
    outcome = effects.tell(results, steps, after, issue_key, ctx, audit)
    if after != doc and state is not None and state.issue_key == issue_key:
        _record(after, state, ctx)
    return settled(outcome)


def _note_undelivered(message: WorkMessage, issue: IssueRef, ctx: ResolveContext, audit: Callable[..., None]) -> None:
    """The sweep brought a decision that nothing had handled and that has now reached its end: no delivery announced
    it (a delivery queued before the sweep is worked first, in the document's FIFO group; a decision already handled
    ends as a duplicate before this), so webhooks are missing decisions. Counted once, when the decision is marked."""
    if message.source != "sweep":
        return
    audit("resolve", "undelivered", reason=f"no delivery announced the resolution of {issue.key}; the sweep found it")
    ctx.store.count_undelivered_resolution(issue.key)
    ctx.count_undelivered(issue.key)


def _named_by_the_instance(steps: tuple[Step, ...], why: str, entity: str,
                           ctx: ResolveContext) -> tuple[tuple[Step, ...], str]:
    """The steps as this instance carries them out, from ``$adHocSchema`` ``_workflowActions`` (names compared
    without regard to case: bills and orders may differ): the approval action as the instance spells it, with the
    parameters it takes (its reason); the workflow action that lifts a hold, where the instance offers one (the form's
    Remove Hold: recent builds ignore API writes to ``Hold``), else ``PUT Hold = false``. No steps when the instance
    offers no approval action."""
    wanted = ctx.approve_actions.get(entity) or ctx.approve_action
    approves = any(step.action == wanted for step in steps)
    if not approves and not any(step.action == REMOVE_HOLD for step in steps):
        return steps, why
    offered = ctx.documents.workflow_actions(entity)

    def spelled(names: tuple[str, ...]) -> str | None:
        return next((name for name in offered if name.casefold() in {n.casefold() for n in names}), None)

    approval = spelled((wanted,)) if approves else None
    if approves and approval is None:
        return (), (f"Acumatica offers no workflow action {wanted!r} for {entity} (it offers "
                    f"{', '.join(offered) or 'none'}; set ApproveActionNames)")
    lift = spelled(HOLD_LIFTING_ACTIONS) or ""
    named = []
    for step in steps:
        if step.action == wanted and approval is not None:
            step = replace(step, action=approval, parameters=tuple(ctx.documents.action_parameters(entity, approval)))
        elif step.action == REMOVE_HOLD:
            step = replace(step, via=lift)
        named.append(step)
    return tuple(named), why


def _documents_issue(key: DocumentKey, issue: IssueRef, state: DocState | None,
                     ctx: ResolveContext) -> tuple[str | None, str]:
    """The connector's issue for the document (or ``None``), and why ``issue`` is not it (empty when it is)."""
    if issue.external_id != key.external_id:
        now = f"now says {issue.external_id!r}" if issue.external_id else "is empty now"
        return (state.issue_key if state else None), f"its external-id field {now}"
    if state is not None and state.issue_key:
        if issue.key != state.issue_key or (state.issue_id and issue.id != state.issue_id):
            return state.issue_key, f"the connector recorded {state.issue_key} as the issue of {key.external_id}"
        return state.issue_key, ""
    linked = ctx.store.document_for_issue(issue.key)
    if linked is not None and linked != key:
        return None, f"the connector created it for {linked.external_id}"
    # The ledger is lost: only the oldest exact match, created by the connector itself, can be the document's issue.
    oldest = ctx.tracker.find_by_external_id(key.external_id, ctx.store.recent_issue_ids())
    me = ctx.tracker.own_account_id()
    if oldest is None or oldest.creator_account_id != me:
        return None, "the connector never created an issue for this document"
    if oldest.id != issue.id:
        return oldest.key, f"{oldest.key} is the oldest issue for {key.external_id}, the one the connector created"
    if issue.creator_account_id not in (None, me):
        return None, "a person created it, not the connector"
    return oldest.key, ""


def _refuse_foreign(key: DocumentKey, issue: IssueRef, own: str | None, why: str, ctx: ResolveContext,
                    audit: Callable[..., None]) -> str:
    """Another issue carries the field: nothing is done; the issue is told so once (a sweep or a retry never
    repeats the comment)."""
    audit("resolve", "foreign-issue", reason=f"{issue.key} is not the document's own issue: {why}",
          resolved_issue=issue.key, own_issue=own)
    claim = ctx.store.claim(key, f"TOLD#{issue.id}", fingerprint="told", retake_after_seconds=TOLD_RETAKE_SECONDS)
    if not claim.won and claim.state == "claimed":
        raise TransientError(f"the comment to {issue.key} is being written; retrying after it settles")
    if claim.won:
        whose = (f"The connector's issue for {key.external_id} is {own}: resolve that one to act on the document."
                 if own else f"The connector has no issue for {key.external_id}, so no resolution can act on it.")
        lines = [f"This issue is not the connector's issue for {key.external_id} ({why}).", whose,
                 "Nothing was done in Acumatica."]
        try:
            ctx.tracker.add_comment(issue.key, content.outcome_comment(key.external_id, lines, success=False))
        except NotFoundError:
            pass
        ctx.store.finish_claim(key, f"TOLD#{issue.id}", "done", issue_key=issue.key)
    return "foreign-issue"


def _decision(issue: IssueRef, message: WorkMessage, ctx: ResolveContext) -> tuple[StatusChange | None, str]:
    """The changelog entry that is the person's decision behind the issue's resolved status, or why there is none.

    The newest move from a not-resolved status into a resolved one; moves between resolved statuses after it (Done
    → Closed) are not decisions of their own. A move by the connector's own account is never a decision."""
    me = ctx.tracker.own_account_id()
    if message.actor and message.actor == me:
        return None, "the delivery reports the connector's own transition"

    def resolved(name: str, category: str) -> bool:
        return is_resolved(name, category, ctx.resolved_statuses)

    for change in reversed(ctx.tracker.status_changes(issue.key)):
        into, out_of = resolved(change.to_status, change.to_category), resolved(change.from_status,
                                                                                change.from_category)
        if into and out_of:
            continue
        if not into:
            break
        if change.author_account_id == me:
            return None, f"the move to {change.to_status} was the connector's own transition, not a person's decision"
        return change, ""
    return None, f"no move from a not-resolved status into {issue.status} is in the changelog"


def _reopen_for_review(doc: Document, issue_key: str, changed: list[tuple[str, str, str]], ctx: ResolveContext,
                       audit: Callable[..., None]) -> str:
    """The person decided about the document as the issue showed it, which is no longer the document: ask again."""
    what = "; ".join(f"{name}: {old or '(empty)'} → {new or '(empty)'}" for name, old, new in changed)
    audit("resolve", "changed-since-review", reason=f"changed since the issue showed it: {what}", status=doc.status)
    lines = [f"{name} changed: was {old or '(empty)'}, now {new or '(empty)'}." for name, old, new in changed]
    lines.append("The document changed after this issue last showed it, so nothing was done. The issue is reopened: "
                 "review the document as it is now and resolve the issue again.")
    ctx.tracker.add_comment(issue_key, content.outcome_comment(content.reference(doc), lines, success=False))
    moved = (ctx.tracker.transition_to(issue_key, ctx.reopen_status) if ctx.reopen_status
             else ctx.tracker.transition_to_category(issue_key, "new"))
    if not moved:
        audit("transition", "unavailable", reason=f"no transition to {ctx.reopen_status or 'a To Do status'!r}",
              issue=issue_key)
    return "reopened"


def _record(doc: Document, state: DocState, ctx: ResolveContext) -> None:
    """The issue already tells what the action did: record the new state so the next poll does not report it again."""
    finding = classify(doc, ctx.rules)
    snap = snapshot(doc, finding)
    try:
        ctx.store.save_state(doc.key, replace(state, fingerprint=fingerprint(snap), snapshot=snap,
                                              open=finding is not None))
    except TransientError:
        logger.info("state changed meanwhile; the next poll reconciles it", extra={"external_id": doc.key.external_id})
