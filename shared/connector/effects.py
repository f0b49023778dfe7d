"""What a person's decision does in Acumatica, step by step, and what the issue is told: every effect is confirmed.

The steps come from the action policy (``rules.plan``: the status the document has now → steps, each with the
statuses it must lead to), spelled as the instance spells them (``resolve._named_by_the_instance``). Each step is:

1. claimed once per decision (``ACTION#<step>``, keyed by the changelog entry), so no delivery, retry, replay or sweep
   posts it twice; a claim found in flight is settled by the document's status, never by posting again;
2. carried out: a hold is lifted with the instance's workflow action when it offers one (the form's *Remove Hold*;
   recent builds ignore API writes to ``Hold``), else with ``PUT Hold = false``; an approval carries the reason its
   rule may ask for (the person's comment with the decision, else ``ApprovalReason``);
3. judged by the document re-read afterwards, never by the HTTP answer: done only in a status the step leads to;
   still Pending Approval after an approval is a partial approval (a multi-step approval map wants its next
   approver); anything else failed, and a refusal is explained (an API user that is no approver is told which user
   and which approval map to change).

The issue is then told what was done, what Acumatica shows now and what a person must do, and it is reopened whenever
the document still needs a person (a failed step, approval still pending, an exception the rules still see): a
resolved issue must never hide a stuck document. "Acumatica updated" is written only when every step took effect and
the document is no longer an exception.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable, Sequence

from . import content, timings
from .documents import profile
from .errors import ConnectorError, NotFoundError, PermanentError, TransientError, UncertainOutcome
from .model import Document
from .ports import StatusChange
from .rules import DECLINED, REMOVE_HOLD, Step, classify

if TYPE_CHECKING:  # resolve imports this module; the context type is only named here
    from .resolve import ResolveContext

logger = logging.getLogger(__name__)

DONE, PENDING, FAILED, REPEATED = "done", "pending", "failed", "repeated"
"""Step verdicts: took effect; took effect but approval is still pending; did not take effect (or went astray);
already carried out for this decision (its recorded verdict is reported again)."""
NEVER = 10.0**12
REASON_LIMIT = 255
"""Longest approval reason sent (the reason box of Acumatica's approval dialog is a short text)."""
REASON_BEFORE = timedelta(minutes=10)
REASON_AFTER = timedelta(minutes=2)
"""A comment the deciding person wrote this long before or after the decision is the note that goes with it: Jira's
transition screen writes both at once, and people often comment just before resolving."""
REASON_FIELDS = frozenset({"reason"})
"""Workflow-action parameters that take the reason (``ReasonApproveRejectParams.Reason`` on AP and PO forms)."""

NOUNS = {"Bill": "bill", "PurchaseOrder": "purchase order", "Check": "payment"}
APPROVAL_SETUP = {
    "Bill": "Accounts Payable Preferences (AP101000), Approval tab",
    "PurchaseOrder": "Purchase Orders Preferences (PO101000), Approval tab",
    "Check": "Accounts Payable Preferences (AP101000), Approval tab",
}
"""Where the approval map of each kind of document is chosen; the maps themselves are on Approval Maps (EP205000)."""
_NOT_AN_APPROVER = ("not an authorized approver", "not authorized to approve", "not an approver",
                    "not assigned to approve", "cannot approve")


@dataclass(frozen=True)
class StepResult:
    """One step's verdict, the document as re-read after it, and the sentence the issue is told."""

    step: Step
    verdict: str
    document: Document
    line: str


def judge(step: Step, after: str) -> str:
    """The verdict on a step from the status re-read after it: the status is the fact, the HTTP answer a signal."""
    if after in step.leads_to:
        return DONE
    if after in step.pending:
        return PENDING
    return FAILED


def carry_out(steps: Sequence[Step], doc: Document, *, decision: StatusChange, decision_id: str, issue_key: str,
              ctx: ResolveContext, audit: Callable[..., None]) -> tuple[list[StepResult], Document]:
    """Run the steps in order while each takes effect; returns their results and the document as last re-read.

    A step is taken only while the document is in the status it requires: after a hold is lifted into Pending
    Approval, for instance, there is nothing to release yet, and the telling says so."""
    results: list[StepResult] = []
    for index, step in enumerate(steps):
        if index and doc.status != step.requires_status:  # plan() keys the first step by the current status
            break
        result = run_step(step, doc, decision=decision, decision_id=decision_id, issue_key=issue_key, ctx=ctx,
                          audit=audit)
        results.append(result)
        doc = result.document
        if result.verdict != DONE:
            break
    return results, doc


def run_step(step: Step, doc: Document, *, decision: StatusChange, decision_id: str, issue_key: str,
             ctx: ResolveContext, audit: Callable[..., None]) -> StepResult:
    """Perform one step exactly once per decision and judge it by the re-read document."""
    key = doc.key
    claim_name = f"ACTION#{step.action}"
    claim = ctx.store.claim(key, claim_name, fingerprint=f"decision:{decision_id}", retake_after_seconds=NEVER)
    if not claim.won:
        if claim.state == "done":  # carried out for this decision already: its recorded verdict is told again
            audit("action", "duplicate", reason=f"{step.action} already done for this decision", action=step.action)
            recorded = claim.details.get("verdict")
            return StepResult(step, str(recorded) if recorded in (DONE, PENDING, FAILED) else REPEATED, doc,
                              str(claim.details.get("line")
                                  or f"{step.action} was already done for this decision; nothing repeated."))
        if ctx.clock() - claim.claimed_at < timings.SETTLE_AFTER_SECONDS:
            raise TransientError(f"{step.action} on {key} is in flight; retrying after it settles")
        return settle(step, doc, ctx, audit)

    parameters = _parameters(step, decision, issue_key, ctx, audit)
    audit("action", "claimed", reason=f"status {doc.status} allows {step.action}", action=step.action,
          via=step.via or ("PUT Hold=false" if step.action == REMOVE_HOLD else step.action))
    try:
        after = _perform(step, doc, parameters, ctx)
    except UncertainOutcome:
        after = ctx.documents.get(key)  # a failure here leaves the claim in flight: settled by status later
        if after is None or after.status == doc.status:
            raise  # Leave the claim in flight: the retry settles it by status, it never posts again.
    except PermanentError as exc:
        ctx.store.finish_claim(key, claim_name, "failed", reason=str(exc)[:500])
        audit("action", "refused", reason=str(exc)[:500], action=step.action)
        now = ctx.documents.get(key) or doc  # the fact, even after a refusal
        if now.status == doc.status or judge(step, now.status) == FAILED:
            return StepResult(step, FAILED, now, _refused(step, exc, now, ctx))
        after = now  # refused, yet the status moved as planned: what Acumatica shows is what counts
    except TransientError as exc:
        # Not sent (token, connection never made, session busy) or refused (429 after its retries): nothing happened,
        # so the claim is given back at once and the retry acts, instead of waiting SETTLE_AFTER_SECONDS for nothing.
        ctx.store.finish_claim(key, claim_name, "failed", reason=f"not sent or refused: {exc}"[:500])
        audit("action", "not-done", reason=str(exc)[:500], action=step.action)
        raise
    verdict = judge(step, after.status)
    line = _told(step, verdict, doc, after, ctx)
    no_effect = verdict == FAILED and after.status == doc.status
    ctx.store.finish_claim(key, claim_name, "failed" if no_effect else "done", status_after=after.status,
                           verdict=verdict, line=line)
    audit("action", {DONE: "done", PENDING: "approval-pending", FAILED: "no-effect" if no_effect else "unexpected"}[
        verdict], reason=f"{doc.status} -> {after.status}", action=step.action)
    logger.info("action judged", extra={"external_id": key.external_id, "action": step.action, "verdict": verdict,
                                        "status": after.status})
    return StepResult(step, verdict, after, line)


def settle(step: Step, doc: Document, ctx: ResolveContext, audit: Callable[..., None]) -> StepResult:
    """An earlier attempt was interrupted mid-action: decide what happened from the status, without acting."""
    key = doc.key
    claim_name = f"ACTION#{step.action}"
    if doc.status == step.requires_status:
        ctx.store.finish_claim(key, claim_name, "failed", reason="interrupted attempt left the status unchanged")
        audit("action", "settled-not-done", reason="interrupted attempt; status unchanged", action=step.action)
        return StepResult(step, FAILED, doc, f"An earlier {step.action} attempt was interrupted and the "
                                             f"{NOUNS.get(key.entity, 'document')} is still {doc.status}; resolve "
                                             "the issue again to retry.")
    verdict = judge(step, doc.status)
    line = f"{step.action} took effect in an earlier attempt: status is now {doc.status}."
    ctx.store.finish_claim(key, claim_name, "done", status_after=doc.status, verdict=verdict, line=line)
    audit("action", "settled-done", reason=f"interrupted attempt took effect: status {doc.status}", action=step.action)
    return StepResult(step, verdict, doc, line)


def tell(results: Sequence[StepResult], steps: Sequence[Step], doc: Document, issue_key: str, ctx: ResolveContext,
         audit: Callable[..., None], *, signature: Sequence[str] = (), declining: bool = False) -> str:
    """Comment what was done and what Acumatica shows now; reopen the issue when the document still needs a person.
    Returns the outcome: ``done``, ``partial`` (something took effect, more is needed), ``failed`` (nothing took
    effect), or ``settled`` (a step carried out for this decision before its verdict was recorded).

    ``signature``: who decided, under which rule, closing the comment. ``declining``: the steps carried out a
    person's "no" (``DeclineAction``): the Rejected document they leave is what the person decided, not an exception
    that needs someone else, so it does not reopen the issue."""
    lines = [result.line for result in results]
    verdicts = [result.verdict for result in results]
    failed = FAILED in verdicts
    took_effect = any(verdict in (DONE, PENDING, REPEATED) for verdict in verdicts)
    if verdicts and verdicts[-1] == DONE and len(results) < len(steps):  # e.g. off hold into Pending Approval
        lines.append(f"{steps[len(results)].action} is not taken: the {NOUNS.get(doc.key.entity, 'document')} is "
                     f"now {doc.status}.")
    lines.append(_shows(doc))
    finding = None if declining else classify(doc, ctx.rules)
    needs_person = failed or PENDING in verdicts or finding is not None
    if finding is not None and not failed:
        lines.append(f"It still needs a person: {finding.reason}.")
    if needs_person:
        lines.append(_reopening(ctx))
    lines.extend(signature)
    body = content.outcome_comment(content.reference(doc), lines, success=not needs_person,
                                   partial=needs_person and took_effect)
    if _comment(issue_key, body, ctx, audit) and needs_person:
        reopen(issue_key, ctx, audit)
    outcome = ("settled" if verdicts == [REPEATED] else "done" if not needs_person
               else "partial" if took_effect else "failed")
    audit("resolve", outcome, reason=" ".join(lines)[:1000], status=doc.status)
    return outcome


def tell_no_action(doc: Document, why: str, issue_key: str, ctx: ResolveContext, audit: Callable[..., None], *,
                   signature: Sequence[str] = ()) -> None:
    """The status allows no step: say why, and reopen the issue if the document is still an exception (an unbalanced
    bill on hold, a rejected document): the resolution cannot stand for a document that is still stuck."""
    finding = classify(doc, ctx.rules)
    lines = [f"Status is {doc.status}: {why}."]
    if finding is not None:
        lines += [f"It still needs a person: {finding.reason}.", _reopening(ctx)]
    body = content.outcome_comment(content.reference(doc), [*lines, *signature], success=False)
    if _comment(issue_key, body, ctx, audit) and finding is not None:
        reopen(issue_key, ctx, audit)


def _comment(issue_key: str, body: dict, ctx: ResolveContext, audit: Callable[..., None]) -> bool:
    """Post the outcome; an issue deleted meanwhile is audited, not an error (there is nobody left to tell)."""
    try:
        ctx.tracker.add_comment(issue_key, body)
    except NotFoundError:
        audit("comment", "issue-missing", reason=f"{issue_key} no longer exists")
        return False
    return True


def reopen(issue_key: str, ctx: ResolveContext, audit: Callable[..., None]) -> bool:
    """Move the issue back to ``JiraReopenStatus`` (else a status of category To Do); audit when none is reachable."""
    moved = (ctx.tracker.transition_to(issue_key, ctx.reopen_status) if ctx.reopen_status
             else ctx.tracker.transition_to_category(issue_key, "new"))
    if not moved:
        audit("transition", "unavailable", reason=f"no transition to {ctx.reopen_status or 'a To Do status'!r}",
              issue=issue_key)
    return moved


def approval_reason(issue_key: str, decision: StatusChange, ctx: ResolveContext, audit: Callable[..., None], *,
                    declining: bool = False) -> str:
    """What the approval says in Acumatica: the note the deciding person left in Jira with the decision (a comment of
    theirs written with or just before the move), else the configured ``ApprovalReason`` (for a
    ``DeclineAction``: "Rejected in Jira") and the issue key.

    The note is an enrichment: a Jira failure reading it never blocks the approval."""
    fallback = f"{'Rejected in Jira' if declining else ctx.approval_reason} ({issue_key})"[:REASON_LIMIT]
    decided = _instant(decision.created)
    if decided is None:
        return fallback
    try:
        comments = ctx.tracker.recent_comments(issue_key)
    except ConnectorError as exc:
        audit("reason", "comments-unreadable", reason=str(exc)[:300])
        return fallback
    own = [comment for comment in comments if comment.author_account_id == decision.author_account_id
           and comment.text.strip() and (moment := _instant(comment.created)) is not None
           and decided - REASON_BEFORE <= moment <= decided + REASON_AFTER]
    if not own:
        return fallback
    text = " ".join(own[-1].text.split())
    return text if len(text) <= REASON_LIMIT else text[:REASON_LIMIT - 1] + "…"


# --- what each step does, and how it is told ----------------------------------------------------------------------


def _perform(step: Step, doc: Document, parameters: dict[str, str], ctx: ResolveContext) -> Document:
    key = doc.key
    if step.action == REMOVE_HOLD:
        # The instance's workflow action is what its form does, and recent builds lift holds only that way.
        return ctx.documents.invoke_action(key, step.via) if step.via else ctx.documents.set_hold(key, False)
    if parameters:
        return ctx.documents.invoke_action(key, step.action, parameters=parameters)
    return ctx.documents.invoke_action(key, step.action)


def _parameters(step: Step, decision: StatusChange, issue_key: str, ctx: ResolveContext,
                audit: Callable[..., None]) -> dict[str, str]:
    """The workflow action's parameters the connector fills: the reason, when the action takes one."""
    wanted = [path for path in step.parameters if path.rpartition(".")[2].casefold() in REASON_FIELDS]
    if not wanted:
        return {}
    reason = approval_reason(issue_key, decision, ctx, audit, declining=step.leads_to == DECLINED)
    return {path: reason for path in wanted}


def _label(step: Step) -> str:
    return f"{step.action} ({step.via})" if step.via and step.via != step.action else step.action


def _told(step: Step, verdict: str, before: Document, after: Document, ctx: ResolveContext) -> str:
    noun = NOUNS.get(after.key.entity, "document")
    screen = profile(after.key.entity).screen_id
    if verdict == DONE:
        return f"{_label(step)}: {before.status} → {after.status}."
    if verdict == PENDING:
        who = f" of {ctx.api_user!r}" if ctx.api_user else ""
        return (f"{_label(step)}: Acumatica recorded the approval{who}, but the {noun} is still {after.status}: its "
                f"approval map has a further step, so approval is still pending. The next approver must approve it in "
                f"Acumatica ({screen}); if the map has no further step, Acumatica did not count this approval: see its "
                "Approvals tab.")
    if after.status == before.status:
        how = ""
        if step.action == REMOVE_HOLD and not step.via:
            how = (" Hold = false was sent and Acumatica answered OK, but it kept the hold: this instance lifts holds "
                   "only with the form's Remove Hold, which its API does not offer.")
        return (f"{_label(step)} did not take effect: Acumatica answered that it was done, but the {noun} is still "
                f"{after.status}.{how} {_what_a_person_does(step, after)}")
    return (f"{_label(step)} left the {noun} {after.status}, not {' or '.join(step.leads_to)}. "
            f"{_what_a_person_does(step, after)}")


def _refused(step: Step, exc: Exception, doc: Document, ctx: ResolveContext) -> str:
    text = str(exc)
    noun = NOUNS.get(doc.key.entity, "document")
    if step.pending and any(phrase in text.casefold() for phrase in _NOT_AN_APPROVER):
        user = f"the Acumatica user {ctx.api_user!r}" if ctx.api_user else "the Acumatica user the connector signs " \
                                                                            "in as (connector connect acumatica)"
        return (f"{_label(step)} was refused by Acumatica: {text}. The connector approves as {user}, who is not an "
                f"approver of this step of the {noun}'s approval map. To let resolutions in Jira approve, add that "
                f"user to the approval map (Approval Maps, EP205000; the map for {noun}s is chosen in "
                f"{APPROVAL_SETUP.get(doc.key.entity, 'the module preferences')}); until then, an approver must "
                f"approve it in Acumatica ({profile(doc.key.entity).screen_id}).")
    return f"{_label(step)} was refused by Acumatica: {text}. {_what_a_person_does(step, doc)}"


def _what_a_person_does(step: Step, doc: Document) -> str:
    screen = profile(doc.key.entity).screen_id
    if step.action == REMOVE_HOLD:
        return f"Remove the hold in Acumatica ({screen}, Remove Hold), then resolve this issue again."
    if step.pending:
        return (f"Approve it in Acumatica ({screen}) as an approver of its current step, or resolve this issue again "
                "once Acumatica allows it.")
    return f"Fix what Acumatica reports and resolve this issue again, or {step.action} it in Acumatica ({screen})."


def _shows(doc: Document) -> str:
    hold = ", on hold" if doc.hold else ""
    return f"Acumatica now shows the {NOUNS.get(doc.key.entity, 'document')} as {doc.status}{hold}."


def _reopening(ctx: ResolveContext) -> str:
    where = ctx.reopen_status or "To Do"
    return f"The issue is reopened ({where}): resolve it again once Acumatica allows the next step."


def _instant(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None
