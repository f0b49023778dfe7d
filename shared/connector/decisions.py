"""What a resolution means, and whether the one who made it may decide: one pure function of what was re-read.

A Jira issue moving into a resolved status is a signal, not a decision. It is a decision to act only when
- a person made it: the changelog author is an ``atlassian`` account, active, not one of ``NonPersonAccounts``
  (Automation for Jira by default) and not the connector itself. Apps, service-desk customers and rules are told, once,
  that nothing was done;
- it says "yes": its resolution (where the issue has one) is one of ``ApprovingResolutions`` and its status is not
  one of ``DecliningStatuses``. Team-managed projects decline with a status (Won't Do, whatever resolution Jira
  sets); company-managed ones with a resolution on Done. Anything else is a "no": nothing is posted, unless
  ``DeclineAction`` names what a "no" does to a document pending approval (e.g. ``Reject``);
- the person may decide that document at that amount: one of their Jira groups, or their accountId, is a key of
  ``DecisionAuthority`` whose limit for the entity (or ``*``) covers the amount. An empty table means no limit.

``decide`` answers ``act``, ``decline``, ``refuse`` (a person outside their authority: the issue goes back to someone
who may decide) or ``not-a-decision``, with the reason in words a clerk reads and the rule that applied; the return
flow (``connector.resolve``) only gathers the inputs and carries the answer out. The ``parse_*`` functions read each
table in its document form (the JSON value, or a list of text for a comma list), as the table registry
(``connector.tables``) hands it over from a parameter or an imported version, and raise ``ValueError`` with one line
naming the entry at fault.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Mapping

from .model import ENTITIES
from .rules import money

AUTOMATION_FOR_JIRA = "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"
"""The account Jira Cloud's built-in automation acts as on every site: its rules close issues, never decide."""
DEFAULT_APPROVING_RESOLUTIONS = ("Done", "Fixed", "Resolved", "Approved")
DEFAULT_DECLINING_STATUSES = ("Won't Do", "Rejected", "Declined", "Canceled", "Cancelled", "Duplicate")
DEFAULT_NON_PERSON_ACCOUNTS = (AUTOMATION_FOR_JIRA,)
PERSON = "atlassian"
"""``UserDetails.accountType`` of a person; ``app`` and ``customer`` are the others Jira names."""
ANY_ENTITY = "*"
PENDING_APPROVAL = "Pending Approval"
"""The one status a ``DeclineAction`` applies to: a "no" to a document waiting for approval."""
ACCOUNT_ID_LIMIT = 128
"""``UserDetails.accountId``'s ``maxLength`` in Jira's OpenAPI description."""
NAME_LIMIT = 255
"""The longest name taken for a status, resolution, group or workflow action: Jira's OpenAPI description caps a
status name (``StatusCreate``) at 255 characters and a resolution name at 60; a longer entry is a typo."""


class Answer(str, Enum):
    ACT = "act"
    DECLINE = "decline"
    REFUSE = "refuse"
    NOT_A_DECISION = "not-a-decision"


@dataclass(frozen=True)
class Actor:
    """Who moved the issue, as the changelog entry's ``author`` (``UserDetails``) says."""

    account_id: str
    account_type: str = ""
    """``atlassian`` (a person), ``app``, ``customer``; empty when Jira did not say (never taken for a person)."""
    active: bool = False
    display_name: str = ""

    @property
    def name(self) -> str:
        return self.display_name or self.account_id or "an unknown account"


@dataclass(frozen=True)
class Limit:
    """One cell of ``DecisionAuthority``: ``key`` (a Jira group name or an accountId) may decide documents of
    ``entity`` (or ``*``: any) up to ``amount`` in the document's currency; ``None`` is no limit."""

    key: str
    entity: str
    amount: Decimal | None

    def covers(self, amount: Decimal | None) -> bool:
        """Whether this limit reaches ``amount``; a document without an amount is covered only without a limit."""
        return self.amount is None or (amount is not None and amount <= self.amount)

    def describe(self, currency: str = "") -> str:
        """``ap-clerks: Bill up to 1,000.00 USD`` / ``finance-controllers: any document, no limit``."""
        what = "any document" if self.entity == ANY_ENTITY else self.entity
        if self.amount is None:
            return f"{self.key}: {what}, no limit"
        return f"{self.key}: {what} up to {money(self.amount, currency)}"


@dataclass(frozen=True)
class AuthorityTable:
    """``DecisionAuthority``, parsed: every key's limit per entity. Empty means anyone may decide anything."""

    limits: tuple[Limit, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.limits)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(limit.key for limit in self.limits))

    def limit_of(self, key: str, entity: str) -> Limit | None:
        """The limit ``key`` has for ``entity``: its own entry for the entity, else its ``*`` entry, else none."""
        own = [limit for limit in self.limits if limit.key == key]
        return (next((limit for limit in own if limit.entity == entity), None)
                or next((limit for limit in own if limit.entity == ANY_ENTITY), None))

    def covering(self, entity: str, amount: Decimal | None) -> tuple[Limit, ...]:
        """The limits of every key that may decide a document of ``entity`` at ``amount`` (who may decide it)."""
        found = (self.limit_of(key, entity) for key in self.keys)
        return tuple(limit for limit in found if limit is not None and limit.covers(amount))


@dataclass(frozen=True)
class DecisionPolicy:
    """The configured meaning of a resolution (``ApprovingResolutions``, ``DecliningStatuses``,
    ``NonPersonAccounts``, ``DeclineAction``, ``DecisionAuthority``)."""

    approving_resolutions: tuple[str, ...] = DEFAULT_APPROVING_RESOLUTIONS
    declining_statuses: tuple[str, ...] = DEFAULT_DECLINING_STATUSES
    non_person_accounts: tuple[str, ...] = DEFAULT_NON_PERSON_ACCOUNTS
    decline_actions: Mapping[str, str] = field(default_factory=dict)
    authority: AuthorityTable = field(default_factory=AuthorityTable)

    def wants_groups(self, facts: Facts) -> bool:
        """Whether ``decide`` needs the actor's groups: only a person's, only when a table limits who decides, and
        only for a decision that posts something. A "no" that posts nothing needs no authority, so it is told even
        where the groups cannot be read (the groups call costs a request and the ``read:jira-user`` scope)."""
        return bool(self.authority) and is_person(facts.actor, self) and (
            not _declined_as(facts, self) or bool(_decline_action(facts, self)))


@dataclass(frozen=True)
class Facts:
    """What the return flow re-read, at work time, about one decision (never what a webhook body claimed)."""

    actor: Actor
    connector_account: str
    moved_to: str
    """The status the decision's changelog entry moved the issue into."""
    status_now: str
    """The issue's status as re-read now (a later Done → Closed keeps the decision)."""
    resolutions: tuple[str, ...]
    """The resolution the issue carries now and the one the decision's entry set, where there is one."""
    entity: str
    document_status: str
    amount: Decimal | None
    """The document's amount: the re-read one, which the reviewed-changes check holds equal to what the issue showed."""
    currency: str = ""
    groups: frozenset[str] | None = None
    """The actor's Jira group names; ``None`` when not read (``DecisionPolicy.wants_groups`` says when they are)."""


@dataclass(frozen=True)
class Verdict:
    answer: Answer
    reason: str
    """One sentence for the audit and the issue's comment."""
    tell: bool = True
    """Whether the issue hears about it: a person or a rule did something the connector will not act on. The
    connector's own moves are not told (that would answer every cleared issue)."""
    rule: Limit | None = None
    """The authority that allowed an action; for a refusal, the best limit the person has for the entity."""
    may_decide: tuple[Limit, ...] = ()
    """For a refusal: the keys whose limit covers the document."""
    action: str = ""
    """For a decline: the ``DeclineAction`` to run on a document pending approval (empty: nothing is posted)."""
    declined_as: str = ""
    """For a decline: ``status Won't Do`` or ``resolution Won't Do``."""

    @property
    def acts(self) -> bool:
        """Whether carrying the verdict out posts to Acumatica."""
        return self.answer is Answer.ACT or (self.answer is Answer.DECLINE and bool(self.action))


def decide(facts: Facts, policy: DecisionPolicy) -> Verdict:
    """Act, decline, refuse, or not a decision: see the module's docstring. Checked in this order, each a reason on
    its own: who moved the issue, what the move says, whether that person may decide this document at this amount."""
    actor = facts.actor
    if actor.account_id and actor.account_id == facts.connector_account:
        return Verdict(Answer.NOT_A_DECISION, f"the move to {facts.moved_to} was the connector's own transition, "
                                              "not a person's decision", tell=False)
    if not is_person(actor, policy):
        return Verdict(Answer.NOT_A_DECISION, f"{actor.name} moved the issue to {facts.moved_to}, and "
                                              f"{why_not_a_person(actor, policy)}: only a person's resolution acts")
    declined_as = _declined_as(facts, policy)
    who = _who(actor, facts, policy)
    action = ""
    if declined_as:
        said = f"{who} resolved it as {declined_as.split(' ', 1)[1]}"
        action = _decline_action(facts, policy)
        if not action:
            return Verdict(Answer.DECLINE, said, declined_as=declined_as)
    else:
        said = f"decided by {who}"
    answer = Answer.DECLINE if action else Answer.ACT
    if not policy.authority:
        return Verdict(answer, f"{said}; no DecisionAuthority table limits who decides", action=action,
                       declined_as=declined_as)
    mine = _own_limits(actor, facts, policy.authority)
    allowed = [limit for limit in mine if limit.covers(facts.amount)]
    if allowed:
        rule = max(allowed, key=_breadth)
        return Verdict(answer, f"{said} under {rule.describe(facts.currency)}", rule=rule, action=action,
                       declined_as=declined_as)
    best = max(mine, key=_breadth, default=None)
    what = f"{facts.entity} of {money(facts.amount, facts.currency)}"
    applied = (f"the limit that applies is {best.describe(facts.currency)}" if best is not None else
               f"neither their groups nor their account may decide a {facts.entity} (DecisionAuthority)")
    return Verdict(Answer.REFUSE, f"{who} may not decide this {what}: {applied}", rule=best,
                   may_decide=policy.authority.covering(facts.entity, facts.amount), action=action,
                   declined_as=declined_as)


def _decline_action(facts: Facts, policy: DecisionPolicy) -> str:
    """The action a "no" posts (``DeclineAction``, for a document pending approval only); empty when it posts none."""
    return policy.decline_actions.get(facts.entity, "") if facts.document_status == PENDING_APPROVAL else ""


def _who(actor: Actor, facts: Facts, policy: DecisionPolicy) -> str:
    """The person, with their groups where the authority table made them matter: the trail answers "who decided
    this, as a member of what" without Jira's history."""
    if not policy.authority or facts.groups is None:
        return actor.name
    return f"{actor.name} (groups: {', '.join(sorted(facts.groups)) or 'none'})"


def is_person(actor: Actor, policy: DecisionPolicy) -> bool:
    """Whether ``actor`` is someone who may decide at all (``decide``'s first rule; ``ping`` checks table keys by it)."""
    return (bool(actor.account_id) and actor.account_type == PERSON and actor.active
            and actor.account_id not in policy.non_person_accounts)


def why_not_a_person(actor: Actor, policy: DecisionPolicy) -> str:
    """Why ``is_person`` said no, in words for the issue's comment and ping's line."""
    if not actor.account_id:
        return "Jira recorded no author for the move"
    if actor.account_id == AUTOMATION_FOR_JIRA:
        return "that is Automation for Jira, a rule rather than a person"
    if actor.account_id in policy.non_person_accounts:
        return "that account is listed in NonPersonAccounts"
    if actor.account_type != PERSON:
        kind = {"app": "an app's account", "customer": "a service-desk customer's account"}.get(
            actor.account_type, f"an account of type {actor.account_type or 'unknown'}")
        return f"that is {kind}, not a person's"
    return "that account is deactivated"


def _declined_as(facts: Facts, policy: DecisionPolicy) -> str:
    """``status X`` or ``resolution X`` when the decision says "no"; empty when it says "yes"."""
    declining = {name.casefold() for name in policy.declining_statuses}
    for status in (facts.moved_to, facts.status_now):
        if status.casefold() in declining:
            return f"status {status}"
    approving = {name.casefold() for name in policy.approving_resolutions}
    for resolution in facts.resolutions:
        if resolution and resolution.casefold() not in approving:
            return f"resolution {resolution}"
    return ""


def _own_limits(actor: Actor, facts: Facts, table: AuthorityTable) -> list[Limit]:
    """The limits that apply to the actor for the entity: their accountId's and each of their groups' (Jira group
    names compare without regard to case)."""
    groups = {group.casefold() for group in facts.groups or ()}
    keys = [key for key in table.keys if key == actor.account_id or key.casefold() in groups]
    return [limit for limit in (table.limit_of(key, facts.entity) for key in keys) if limit is not None]


def _breadth(limit: Limit) -> tuple[bool, Decimal]:
    """Orders limits from narrowest to broadest: no limit is the broadest of all."""
    return (limit.amount is None, limit.amount if limit.amount is not None else Decimal(0))


# --- parsing the tables -----------------------------------------------------------------------------------------------


def parse_names(value: object, what: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A list table of Jira names (statuses, resolutions), in the document form the table registry hands over (its
    parameter is comma-separated text, ``connector.tables``); empty is ``default``."""
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValueError(f"must be a list of Jira {what} names (text), e.g. {list(default[:2])}")
    names = tuple(dict.fromkeys(name.strip() for name in value if name.strip()))
    for name in names:
        if len(name) > NAME_LIMIT:
            raise ValueError(f"{what} {name[:40]!r}... is longer than Jira's {NAME_LIMIT} characters")
    return names or default


def parse_approving_resolutions(value: object) -> tuple[str, ...]:
    """``ApprovingResolutions``: the resolutions that say "yes" (empty: ``Done, Fixed, Resolved, Approved``)."""
    return parse_names(value, "resolution", DEFAULT_APPROVING_RESOLUTIONS)


def parse_declining_statuses(value: object) -> tuple[str, ...]:
    """``DecliningStatuses``: the statuses that say "no" whatever the resolution (empty: the default list)."""
    return parse_names(value, "status", DEFAULT_DECLINING_STATUSES)


def parse_non_person_accounts(value: object) -> tuple[str, ...]:
    """``NonPersonAccounts``: accountIds whose moves are never decisions (empty: Automation for Jira's)."""
    if not isinstance(value, list) or not all(isinstance(account, str) for account in value):
        raise ValueError(f"must be a list of Jira accountIds (text), e.g. [{AUTOMATION_FOR_JIRA!r}]")
    accounts = tuple(dict.fromkeys(account.strip() for account in value if account.strip()))
    for account in accounts:
        if len(account) > ACCOUNT_ID_LIMIT or any(c.isspace() for c in account):
            raise ValueError(f"{account[:40]!r} is not a Jira accountId (at most {ACCOUNT_ID_LIMIT} characters, no "
                             "spaces), e.g. 557058:f58131cb-b67d-43c7-b30d-6b58d40bd077")
    return accounts or DEFAULT_NON_PERSON_ACCOUNTS


def parse_decline_action(value: object) -> dict[str, str]:
    """``DeclineAction``: entity -> the workflow action a person's "no" runs on a document pending approval, e.g.
    ``{"PurchaseOrder": "Reject"}``. Empty (the default): a "no" posts nothing."""
    if not isinstance(value, Mapping):
        raise ValueError('must be a JSON object of entity -> workflow action, e.g. {"PurchaseOrder": "Reject"}')
    actions: dict[str, str] = {}
    for entity, action in value.items():
        if entity not in ENTITIES:
            raise ValueError(f"{entity!r} is not an entity; use one of {', '.join(ENTITIES)}")
        if not isinstance(action, str) or not action.strip() or len(action) > NAME_LIMIT:
            raise ValueError(f"{entity}: the action must be a workflow action's name, e.g. \"Reject\"; got {action!r}")
        actions[entity] = action.strip()
    return actions


def parse_decision_authority(value: object) -> AuthorityTable:
    """``DecisionAuthority``: ``{"<group or accountId>": {"<Bill|PurchaseOrder|Check|*>": <limit or null>}}``, e.g.
    ``{"ap-clerks": {"Bill": 1000}, "finance-controllers": {"*": null}}``. Limits are amounts in the document's
    currency (a JSON number, or a string holding one); ``null`` is no limit. Empty (the default): no limit at all."""
    if not isinstance(value, Mapping):
        raise ValueError('must be a JSON object of Jira group or accountId -> {entity: limit}, e.g. '
                         '{"ap-clerks": {"Bill": 1000}, "finance-controllers": {"*": null}}')
    limits: list[Limit] = []
    for key, grants in value.items():
        if not isinstance(key, str) or not key.strip() or key != key.strip() or len(key) > NAME_LIMIT:
            raise ValueError(f"{key!r} is not a Jira group name or accountId (non-empty, no surrounding spaces)")
        if not isinstance(grants, Mapping) or not grants:
            raise ValueError(f"{key}: must be a non-empty object of entity -> limit, e.g. {{\"Bill\": 1000}}; "
                             f"got {grants!r}")
        for entity, limit in grants.items():
            if entity != ANY_ENTITY and entity not in ENTITIES:
                raise ValueError(f"{key}: {entity!r} is not an entity; use {', '.join(ENTITIES)} or *")
            limits.append(Limit(key, entity, _limit(key, entity, limit)))
    return AuthorityTable(tuple(limits))


def _limit(key: str, entity: str, value: object) -> Decimal | None:
    if value is None:
        return None
    wrong = ValueError(f"{key}.{entity}: the limit must be a number of at least 0 (or null for no limit); "
                       f"got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise wrong
    if isinstance(value, float) and not math.isfinite(value):
        raise wrong
    try:
        amount = Decimal(str(value).strip())  # str() first: a float's digits as written, not its binary expansion
    except InvalidOperation:
        raise wrong from None
    if not amount.is_finite() or amount < 0:
        raise wrong
    return amount
