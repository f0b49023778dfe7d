"""`connector ping` and `connector preview`: who may decide what (``DecisionAuthority``) as it applies, and whether
Jira agrees with the table (its groups exist, the grant may read group membership).

A table that names a group Jira does not have lets nobody in that group decide, silently; a grant without
``read:jira-user`` sends every decision to the dead-letter queue. Both are found here, before a clerk resolves an
issue. An empty table is legal (no limit, as before) but worth a warning: anyone who can resolve an issue decides any
amount.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence, TextIO

# The rule ``decide`` applies to whoever moved an issue, not a copy of it (private there: only this check shares it).
from connector.decisions import Actor, AuthorityTable, DecisionPolicy, is_person, why_not_a_person
from connector.jira import USER_SCOPE_HINT
from connector.rules import money

from .output import print_table
from .ping import Check


class Advisory(Exception):
    """A ping check that holds, with something the operator should read: printed as WARN, ping still passes."""


class NotNeeded(Exception):
    """A ping check the configuration makes pointless (nothing to check): printed as ``n/a`` with why, and passes."""


@dataclass(frozen=True)
class Shown:
    """A ping check's table, printed under its line (and carried as ``table`` in ``--format json``)."""

    rows: list[dict[str, str]]


def coverage(table: AuthorityTable, entities: Sequence[str]) -> list[dict[str, str]]:
    """One row per key: what it may decide of each entity (``up to 1,000.00``, ``any amount`` or ``-``), amounts in
    the document's currency."""
    rows = []
    for key in table.keys:
        row = {"key": key}
        for entity in entities:
            limit = table.limit_of(key, entity)
            row[entity] = "-" if limit is None else ("any amount" if limit.amount is None
                                                     else f"up to {money(limit.amount, '')}")
        rows.append(row)
    return rows


def render(rows: list[dict[str, str]], out: TextIO, title: str | None = None) -> None:
    """The rows as a table, for people (``output.print_table``)."""
    if rows:
        print_table(list(rows[0]), [list(row.values()) for row in rows], out=out, title=title)


def empty_table_note(project_key: str) -> str:
    return (f"DecisionAuthority is empty: anyone who can resolve an issue in {project_key} releases or approves "
            "any document, of any amount")


def checks(wiring: Any, *, tables: tuple[str, ...], acumatica: tuple[str, ...],
           jira: tuple[str, ...]) -> list[Check]:
    """The checks ``connector ping`` adds: the table as it applies, then Jira's and Acumatica's side of it. Each reads
    the tables in effect when it runs (after the checks named by ``tables``: an imported version lives in the stack's
    table), and the checks of each system run after those named by ``acumatica`` and ``jira``, one at a time with
    that system's other checks. A check the tables make pointless says so and passes (``NotNeeded``)."""
    def policy() -> Any:
        return wiring.settings_in_effect().decision_policy

    def applies() -> Shown:
        settings = wiring.settings_in_effect()
        table: AuthorityTable = settings.decision_policy.authority
        if not table:
            raise Advisory(empty_table_note(settings.jira_project_key))
        return Shown(coverage(table, settings.document_types))

    def decline_actions() -> None:
        if not policy().decline_actions:
            raise NotNeeded("no DeclineAction is set: a no posts nothing")
        _decline_actions_offered(wiring)

    def groups_readable() -> None:
        if not policy().authority:
            raise NotNeeded("DecisionAuthority is empty: nobody's groups are read")
        wiring.jira.user_groups(wiring.jira.own_account_id())

    def keys_exist() -> None:
        decision_policy = policy()
        if not decision_policy.authority:
            raise NotNeeded("DecisionAuthority is empty")
        _keys_exist(wiring.jira, decision_policy)

    return [
        Check("authority", "DecisionAuthority: who may decide what", applies, tables,
              fix="set DecisionAuthority, e.g. {\"ap-clerks\": {\"Bill\": 1000}, \"finance-controllers\": "
                  "{\"*\": null}} (docs/decisions.md)"),
        Check("decline-actions", "Acumatica offers each DeclineAction", decline_actions, (*tables, *acumatica),
              serial="acumatica", fix="set DeclineAction to workflow actions the instance lists"),
        Check("jira-groups", "Jira group membership readable (read:jira-user)", groups_readable, (*tables, *jira),
              serial="jira", fix=USER_SCOPE_HINT),
        Check("authority-keys", "DecisionAuthority keys are Jira groups or accounts", keys_exist, (*tables, *jira),
              serial="jira", fix="create the group in Jira (Settings > User management > Groups) or correct the key in "
                                 "DecisionAuthority: group names as Jira spells them, or the accountIds of active "
                                 "people (an app's or a deactivated account never decides)"),
    ]


def _decline_actions_offered(wiring: Any) -> None:
    """Each ``DeclineAction`` is among the entity's ``$adHocSchema`` workflow actions (case aside), as the worker
    will require before it posts one."""
    for entity, action in wiring.settings_in_effect().decision_policy.decline_actions.items():
        offered = wiring.acumatica.workflow_actions(entity)
        if action.casefold() not in {name.casefold() for name in offered}:
            raise LookupError(f"{entity} offers {offered}, not {action!r}")


def _keys_exist(jira: Any, policy: DecisionPolicy) -> None:
    """Every key is a group (``GET /group/bulk?groupName=``) or the account of a person who may decide
    (``GET /user?accountId=``). An account that exists is not enough: ``decisions.decide`` lets only an active
    person's resolution act, so a key naming an app, a deactivated account or one of ``NonPersonAccounts`` lets
    nobody decide, as silently as a typo."""
    table = policy.authority
    groups = {name.casefold() for name in jira.existing_groups(table.keys)}
    unknown: list[str] = []
    not_people: list[str] = []
    for key in table.keys:
        if key.casefold() in groups:
            continue
        account = jira.user(key)
        if account is None:
            unknown.append(key)
            continue
        actor = Actor(key, str(account.get("accountType") or ""), account.get("active") is True,
                      str(account.get("displayName") or ""))
        if not is_person(actor, policy):
            not_people.append(f"{key}: {why_not_a_person(actor, policy)}")
    problems = ([f"{', '.join(unknown)}: neither a Jira group nor an account"] if unknown else []) + not_people
    if problems:
        raise LookupError(f"{'; '.join(problems)}; nobody decides through "
                          f"{'it' if len(unknown) + len(not_people) == 1 else 'them'}")


def print_for_preview(table: AuthorityTable, entities: Sequence[str], project_key: str, out: TextIO) -> None:
    """What ``connector preview`` adds under its plan: the table as it applies, or why there is none."""
    if not table:
        out.write(f"\n{empty_table_note(project_key)}.\n")
        return
    out.write("\n")
    render(coverage(table, entities), out, title="Who may decide what (DecisionAuthority; amounts in the document's "
                                                 "currency):")
