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
from .decisions import Actor, Answer, DecisionPolicy, Facts, Verdict, decide
from .errors import NotFoundError, PermanentError, TransientError, UncertainOutcome
from .model import Document, DocumentKey, WorkMessage
from .ports import DocState, DocumentSource, IssueRef, IssueTracker, StateStore, StatusChange
from .rules import (EXCEPTION_RULES, REMOVE_HOLD, RuleTable, Step, classify, decline_step, fingerprint, is_resolved,
                    plan, reviewed_changes, snapshot)

logger = logging.getLogger(__name__)

SETTLE_AFTER_SECONDS = timings.SETTLE_AFTER_SECONDS
DECISION_MARK = "DECISION"
"""Record of the last decision whose handling reached its end (acted, refused for a reason, or reopened)."""
TOLD_RETAKE_SECONDS = 600.0
"""A claim on the one comment to a foreign issue older than this belongs to a crashed attempt."""
VERDICT_CLAIM = "VERDICT"
"""The one comment that answers a decision the connector does not act on (a "no", a rule's move, a refusal), keyed
by the decision: a retry after a crash between the comment and the DECISION mark does not say it twice."""
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
    policy: DecisionPolicy = field(default_factory=DecisionPolicy)
    """What a resolution means and who may decide (``ApprovingResolutions``, ``DecliningStatuses``,
    ``NonPersonAccounts``, ``DeclineAction``, ``DecisionAuthority``)."""
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
    decision, why_not = _decision(issue, ctx)
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
    declining = verdict.answer is Answer.DECLINE
    if declining:  # a person's "no" that DeclineAction turns into, e.g., Reject
        steps, why = _named_by_the_instance((decline_step(verdict.action),), verdict.action, key.entity, ctx,
                                            verdict.action, "DeclineAction")
    else:
        wanted = ctx.approve_actions.get(key.entity) or ctx.approve_action
        steps, why = _named_by_the_instance(*plan(doc, wanted), key.entity, ctx, wanted, "ApproveActionNames")
    if not steps:
        audit("resolve", "no-action", reason=why, status=doc.status)
        effects.tell_no_action(doc, why, issue_key, ctx, audit, signature=signature)
        return settled("no-action")
    results, after = effects.carry_out(steps, doc, decision=decision, decision_id=decision_id, issue_key=issue_key,
                                       ctx=ctx, audit=audit)
    outcome = effects.tell(results, steps, after, issue_key, ctx, audit, signature=signature, declining=declining)
    if after != doc and state is not None and state.issue_key == issue_key:
        _record(after, state, ctx, declined=decision_id if declining else "")
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


def _verdict(decision: StatusChange, issue: IssueRef, doc: Document,
             ctx: ResolveContext) -> tuple[Verdict, Actor, frozenset[str]]:
    """Gather what ``decide`` needs, as re-read now (the groups only when the decision needs authority), and ask."""
    actor = Actor(decision.author_account_id, decision.author_account_type, decision.author_active,
                  decision.author_name)
    facts = Facts(actor=actor, connector_account=ctx.tracker.own_account_id(), moved_to=decision.to_status,
                  status_now=issue.status,
                  resolutions=tuple(name for name in (issue.resolution, decision.resolution) if name),
                  entity=doc.key.entity, document_status=doc.status, amount=doc.amount, currency=doc.currency)
    if ctx.policy.wants_groups(facts):
        facts = replace(facts, groups=ctx.tracker.user_groups(actor.account_id))
    return decide(facts, ctx.policy), actor, facts.groups or frozenset()


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
    effects.reopen(issue_key, ctx, audit)
    return "refused"


def _named_by_the_instance(steps: tuple[Step, ...], why: str, entity: str, ctx: ResolveContext, wanted: str,
                           setting: str) -> tuple[tuple[Step, ...], str]:
    """The steps as this instance carries them out, from ``$adHocSchema`` ``_workflowActions`` (names compared
    without regard to case: bills and orders may differ): the ``wanted`` workflow action (the approval, or a decline
    action) as the instance spells it, with the parameters it takes (its reason); the workflow action that lifts a
    hold, where the instance offers one (the form's Remove Hold: recent builds ignore API writes to ``Hold``), else
    ``PUT Hold = false``. No steps when the instance does not offer ``wanted`` (``setting`` names where to fix it)."""
    acts = any(step.action == wanted for step in steps)
    if not acts and not any(step.action == REMOVE_HOLD for step in steps):
        return steps, why
    offered = ctx.documents.workflow_actions(entity)

    def spelled(names: tuple[str, ...]) -> str | None:
        return next((name for name in offered if name.casefold() in {n.casefold() for n in names}), None)

    action = spelled((wanted,)) if acts else None
    if acts and action is None:
        return (), (f"Acumatica offers no workflow action {wanted!r} for {entity} (it offers "
                    f"{', '.join(offered) or 'none'}; set {setting})")
    lift = spelled(HOLD_LIFTING_ACTIONS) or ""
    named = []
    for step in steps:
        if step.action == wanted and action is not None:
            step = replace(step, action=action, parameters=tuple(ctx.documents.action_parameters(entity, action)))
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


def _decision(issue: IssueRef, ctx: ResolveContext) -> tuple[StatusChange | None, str]:
    """The changelog entry behind the issue's resolved status, or why there is none.

    The newest move from a not-resolved status into a resolved one; moves between resolved statuses after it (Done
    → Closed) are not decisions of their own. A move by the connector's own account is never a decision: it ends
    here, before Acumatica is read. Who moved the issue is the changelog's answer, never the delivery's: a body's
    ``user`` is unsigned by a dynamic webhook's JWT, and one naming the connector would otherwise make a person's
    decision wait for the sweep. Whether anyone else's move is a decision is ``decide``'s answer."""
    me = ctx.tracker.own_account_id()

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
    effects.reopen(issue_key, ctx, audit)
    return "reopened"


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
