"""The return flow: a person's resolution of a document's own Jira issue releases, approves or un-holds that
document in Acumatica, once per decision.

The webhook body's external id is a claim made by whoever last edited the issue, not a fact, so before anything is
read from Acumatica the worker re-reads, at work time:
- the issue: it must be the one the connector recorded for the document (the ledger's key and id; with the ledger
  lost, the oldest issue whose field equals the id exactly and that the connector's own account created), with the
  external-id field still naming the document and a resolved status. Any other issue gets no action, an audit record
  and one comment saying which issue is the connector's and that nothing was done;
- the changelog: the decision is the newest move from a not-resolved status into a resolved one (later moves
  between resolved statuses, such as Done → Closed, are not new decisions), never the connector's own move;
- what the decision means and whether its author may make it (``connector.decisions.decide``, one pure function of
  the re-read author, groups, status, resolution and document): only an active person's "yes" acts, within their
  ``DecisionAuthority``. A "no" posts nothing (or the ``DeclineAction``), is told once and recorded so that polls
  leave the closed issue alone; an app's or a rule's move is told once; a person outside their authority is told
  who may decide, and the issue is reopened for them;
- the document: if its amount, vendor or lines total changed since the issue last showed it, the decision was about
  another document; the issue is reopened with a comment saying what changed.

Acumatica actions are not idempotent, so every step is: re-read the document; check the action policy; claim the
action in DynamoDB for this decision (conditional write keyed by the changelog entry, so a later decision may act
again); act; confirm by re-reading. A claim found in flight is never acted on again: its outcome is settled by the
document's status. A failed action releases its claim, so resolving the issue again (or replaying the message)
retries it. A decision that reached its end is marked, so the sweep and late or duplicated deliveries of the same
decision end silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from . import content, timings
from .decisions import PENDING_APPROVAL, Actor, Answer, DecisionPolicy, Facts, Verdict, decide
from .errors import NotFoundError, PermanentError, TransientError, UncertainOutcome
from .model import Document, DocumentKey, WorkMessage
from .ports import DocState, DocumentSource, IssueRef, IssueTracker, StateStore, StatusChange
from .rules import (EXCEPTION_RULES, REMOVE_HOLD, RuleTable, Step, classify, fingerprint, is_resolved, plan,
                    reviewed_changes, snapshot)

logger = logging.getLogger(__name__)

SETTLE_AFTER_SECONDS = timings.SETTLE_AFTER_SECONDS
NEVER = 10.0**12
DECISION_MARK = "DECISION"
"""Record of the last decision whose handling reached its end (acted, refused for a reason, or reopened)."""
TOLD_RETAKE_SECONDS = 600.0
"""A claim on the one comment to a foreign issue older than this belongs to a crashed attempt."""
VERDICT_CLAIM = "VERDICT"
"""The one comment that answers a decision the connector does not act on (a "no", a rule's move, a refusal), keyed
by the decision: a retry after a crash between the comment and the DECISION mark does not say it twice."""


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
    policy: DecisionPolicy = field(default_factory=DecisionPolicy)
    """What a resolution means and who may decide (``ApprovingResolutions``, ``DecliningStatuses``,
    ``NonPersonAccounts``, ``DeclineAction``, ``DecisionAuthority``)."""


def resolve_document(message: WorkMessage, ctx: ResolveContext) -> str:
    """Act on the document behind a resolved issue if, and only if, a person decided about that document's own issue
    as it is now, and the document's current status allows it."""
    key = message.key
    state = ctx.store.get_state(key)
    issue_key = message.issue_key or (state.issue_key if state else None)
    decided: dict[str, object] = {}
    """Who decided, their groups and the rule that allowed it: on every audit record and outcome once known."""
    signature: list[str] = []

    def audit(event: str, outcome: str, reason: str = "", **details: object) -> None:
        ctx.store.audit(key, event, outcome, correlation_id=message.correlation_id, reason=reason,
                        details={"issue": issue_key, "trigger": message.dedupe_id, **decided, **details})

    def tell(lines: list[str], success: bool, reference: str) -> None:
        if issue_key:
            try:
                ctx.tracker.add_comment(issue_key, content.outcome_comment(reference, lines + signature,
                                                                           success=success))
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
        return outcome

    doc = ctx.documents.get(key)
    if doc is None:
        audit("resolve", "skipped", reason="document not found in Acumatica")
        tell([f"{key.external_id} was not found in Acumatica; nothing was done."], False, key.external_id)
        return settled("not-found")
    reference = content.reference(doc)
    verdict, actor, groups = _verdict(decision, issue, doc, ctx)
    decided.update(decided_by=actor.account_id, decided_by_name=actor.name, groups=sorted(groups),
                   verdict=verdict.answer.value, rule=verdict.rule.describe(doc.currency) if verdict.rule else "",
                   authority=verdict.reason)
    if verdict.answer is Answer.NOT_A_DECISION:
        audit("resolve", "not-a-person" if verdict.tell else "not-a-decision", reason=verdict.reason)
        if verdict.tell:
            _tell_once(doc, issue_key, decision_id, [f"No action was taken in Acumatica: {verdict.reason}.",
                                                     "To act on the document, a person reopens this issue and "
                                                     "resolves it."], ctx)
        return settled("not-a-person" if verdict.tell else "not-a-decision")
    if verdict.answer is Answer.DECLINE and not verdict.action:
        return settled(_declined(doc, state, issue_key, decision_id, verdict, ctx, audit))
    changed = reviewed_changes(state.snapshot if state else {}, doc)
    if changed:
        return settled(_reopen_for_review(doc, issue_key, changed, ctx, audit))
    if verdict.answer is Answer.REFUSE:
        return settled(_refused(doc, issue_key, decision_id, verdict, ctx, audit))
    signature.append(verdict.reason[:1].upper() + verdict.reason[1:] + ".")
    if verdict.action:  # a person's "no" that DeclineAction turns into, e.g., Reject
        steps, why = _named_by_the_instance((Step(verdict.action, PENDING_APPROVAL),), verdict.action, key.entity,
                                            ctx, verdict.action, "DeclineAction")
    else:
        wanted = ctx.approve_actions.get(key.entity) or ctx.approve_action
        steps, why = _named_by_the_instance(*plan(doc, wanted), key.entity, ctx, wanted, "ApproveActionNames")
    if not steps:
        audit("resolve", "no-action", reason=why, status=doc.status)
        tell([f"Status is {doc.status}: {why}."], False, reference)
        return settled("no-action")

    done: list[str] = []
    for index, step in enumerate(steps):
        if index and doc.status != step.requires_status:  # plan() keys the first step by the current status
            done.append(f"{step.action} not needed or not allowed: status is now {doc.status}.")
            break
        result = _run_step(step, doc, ctx, audit, decision_id)
        if isinstance(result, str):  # a failure or a settled earlier attempt: report and stop
            tell(done + [result], bool(done), reference)
            return "failed" if result.startswith("Failed") else settled("settled")
        done.append(f"{step.action}: {doc.status} → {result.status}.")
        doc = result
    tell(done, True, reference)
    audit("resolve", "done", reason="; ".join(done), status=doc.status)
    if state is not None and state.issue_key == issue_key:
        _record(doc, state, ctx, declined=decision_id if verdict.answer is Answer.DECLINE else "")
    return settled("done")


def _verdict(decision: StatusChange, issue: IssueRef, doc: Document,
             ctx: ResolveContext) -> tuple[Verdict, Actor, frozenset[str]]:
    """Gather what ``decide`` needs, as re-read now (the groups only when the authority table needs them), and ask."""
    actor = Actor(decision.author_account_id, decision.author_account_type, decision.author_active,
                  decision.author_name)
    groups = ctx.tracker.user_groups(actor.account_id) if ctx.policy.wants_groups(actor) else frozenset()
    facts = Facts(actor=actor, connector_account=ctx.tracker.own_account_id(), moved_to=decision.to_status,
                  status_now=issue.status,
                  resolutions=tuple(name for name in (issue.resolution, decision.resolution) if name),
                  entity=doc.key.entity, document_status=doc.status, amount=doc.amount, currency=doc.currency,
                  groups=groups)
    return decide(facts, ctx.policy), actor, groups


def _tell_once(doc: Document, issue_key: str, decision_id: str, lines: list[str], ctx: ResolveContext) -> None:
    """The one comment answering a decision the connector does not act on (claimed per decision)."""
    claim = ctx.store.claim(doc.key, VERDICT_CLAIM, fingerprint=decision_id, retake_after_seconds=TOLD_RETAKE_SECONDS)
    if not claim.won:
        if claim.state == "claimed":
            raise TransientError(f"the answer to the decision on {issue_key} is being written; retrying after it "
                                 "settles")
        return
    try:
        ctx.tracker.add_comment(issue_key, content.outcome_comment(content.reference(doc), lines, success=False))
    except NotFoundError:
        pass
    except (PermanentError, TransientError) as exc:
        if not isinstance(exc, UncertainOutcome):  # refused: nothing was posted, the retry may comment at once
            ctx.store.finish_claim(doc.key, VERDICT_CLAIM, "failed", reason=str(exc)[:500])
        raise
    ctx.store.finish_claim(doc.key, VERDICT_CLAIM, "done", issue_key=issue_key)


def _declined(doc: Document, state: DocState | None, issue_key: str, decision_id: str, verdict: Verdict,
              ctx: ResolveContext, audit: Callable[..., None]) -> str:
    """A person said "no": nothing is posted, the issue is told once, and the decline is recorded so that polls
    leave the closed issue alone until the document itself changes (``sync``)."""
    audit("resolve", "declined", reason=f"{verdict.reason}; nothing posted", status=doc.status,
          declined_as=verdict.declined_as)
    stays = {"On Hold": "stays on hold", "Pending Approval": "stays pending approval"}.get(
        doc.status, f"stays as it is (status {doc.status})")
    _tell_once(doc, issue_key, decision_id, [
        f"Resolved as {verdict.declined_as.split(' ', 1)[1]}: {content.reference(doc)} {stays} in Acumatica; "
        "nothing was posted.",
        f"{verdict.reason[:1].upper()}{verdict.reason[1:]}.",
        "To act on it after all, reopen this issue and resolve it as "
        f"{' or '.join(ctx.policy.approving_resolutions[:2]) or 'Done'}."], ctx)
    if state is not None and state.issue_key == issue_key and state.declined != decision_id:
        ctx.store.save_state(doc.key, replace(state, declined=decision_id))
    return "declined"


def _refused(doc: Document, issue_key: str, decision_id: str, verdict: Verdict, ctx: ResolveContext,
             audit: Callable[..., None]) -> str:
    """A person outside their authority: nothing in Acumatica; the issue says which limit applied and who may decide,
    and goes back to them (reopened). A later decision by one of them is a new decision, with claims of its own."""
    may = [limit.describe(doc.currency) for limit in verdict.may_decide]
    audit("resolve", "refused", reason=verdict.reason, may_decide=may, status=doc.status)
    _tell_once(doc, issue_key, decision_id, [
        f"Nothing was done in Acumatica: {verdict.reason}.",
        f"Who may decide it: {'; '.join(may)}." if may else
        "No one in DecisionAuthority may decide it: an administrator must raise a limit there.",
        "The issue is reopened so that someone with that authority can resolve it."], ctx)
    _reopen(issue_key, ctx, audit)
    return "refused"


def _named_by_the_instance(steps: tuple[Step, ...], why: str, entity: str, ctx: ResolveContext, wanted: str,
                           setting: str) -> tuple[tuple[Step, ...], str]:
    """The ``wanted`` workflow step (approval, or a decline action) with the action's name as the instance spells
    it (``$adHocSchema`` ``_workflowActions``, compared without regard to case: bills and orders may differ), or no
    steps when the instance offers none."""
    if not any(step.action == wanted for step in steps):
        return steps, why
    offered = ctx.documents.workflow_actions(entity)
    spelled = next((name for name in offered if name.casefold() == wanted.casefold()), None)
    if spelled is None:
        return (), (f"Acumatica offers no workflow action {wanted!r} for {entity} (it offers "
                    f"{', '.join(offered) or 'none'}; set {setting})")
    return tuple(replace(step, action=spelled) if step.action == wanted else step for step in steps), why


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
    """The changelog entry behind the issue's resolved status, or why there is none.

    The newest move from a not-resolved status into a resolved one; moves between resolved statuses after it (Done
    → Closed) are not decisions of their own. A move by the connector's own account is never a decision: it ends
    here, before Acumatica is read. Whether anyone else's move is a decision is ``decide``'s answer."""
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
    _reopen(issue_key, ctx, audit)
    return "reopened"


def _reopen(issue_key: str, ctx: ResolveContext, audit: Callable[..., None]) -> None:
    """Move the issue back to ``JiraReopenStatus``, else a status of category To Do: a person must decide again."""
    moved = (ctx.tracker.transition_to(issue_key, ctx.reopen_status) if ctx.reopen_status
             else ctx.tracker.transition_to_category(issue_key, "new"))
    if not moved:
        audit("transition", "unavailable", reason=f"no transition to {ctx.reopen_status or 'a To Do status'!r}",
              issue=issue_key)


def _record(doc: Document, state: DocState, ctx: ResolveContext, *, declined: str = "") -> None:
    """The issue already tells what the action did: record the new state so the next poll does not report it again
    (and, for a decline carried out, that a person declined: polls leave the closed issue alone)."""
    finding = classify(doc, ctx.rules)
    snap = snapshot(doc, finding)
    try:
        ctx.store.save_state(doc.key, replace(state, fingerprint=fingerprint(snap), snapshot=snap,
                                              open=finding is not None, declined=declined))
    except TransientError:
        logger.info("state changed meanwhile; the next poll reconciles it", extra={"external_id": doc.key.external_id})


def _run_step(step: Step, doc: Document, ctx: ResolveContext, audit: Callable[..., None],
              decision: str) -> Document | str:
    """Perform one step exactly once per decision; returns the re-read document, or a sentence when nothing (more)
    was done. ``decision`` (issue id and changelog entry id) keys the claim: one decision acts once, a new one may
    act again."""
    key = doc.key
    claim_name = f"ACTION#{step.action}"
    claim = ctx.store.claim(key, claim_name, fingerprint=f"decision:{decision}", retake_after_seconds=NEVER)
    if not claim.won:
        if claim.state == "done":
            audit("action", "duplicate", reason=f"{step.action} already done for this decision")
            return f"{step.action} was already done for this decision; nothing repeated."
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
    except TransientError as exc:
        # Not sent (token, connection never made) or refused (429 after its retries): nothing happened, so the claim
        # is given back at once and the retry acts, instead of waiting SETTLE_AFTER_SECONDS for a settled nothing.
        ctx.store.finish_claim(key, claim_name, "failed", reason=f"not sent or refused: {exc}"[:500])
        audit("action", "not-done", reason=str(exc)[:500], action=step.action)
        raise
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
