"""`connector preview`: the issues the connector would create, update or leave alone, before it writes anything.

People evaluating the connector want to see what it does on their real data first. The preview reads Acumatica (and
the connector's own state, to know which documents already have issues) and runs the same rules, routing and
triage the worker runs, through the worker's own ``sync.planned_issue``, so what it prints is what the next poll
creates. Jira and the work queue are never handed to it: the worker's context gets stand-ins that refuse every use.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Sequence, TextIO

from connector import content
from connector.config import Settings
from connector.model import Document
from connector.ports import DocState, DocumentSource
from connector.rules import classify, fingerprint
from connector.sync import EVERYTHING, SyncContext, observed, planned_issue
from connector.triage import route

from .output import clean

COLUMNS = ("action", "document", "issue", "summary", "assignee", "priority", "due date", "reason")


@dataclass(frozen=True)
class Planned:
    """One row of the preview: what the next poll would do for one document, and why."""

    action: str
    document: str
    issue: str
    summary: str
    assignee: str
    priority: str
    due_date: str
    reason: str


class _Refuses:
    """Stands in for Jira and the store inside the worker's context: any use is a bug in the preview."""

    def __init__(self, what: str) -> None:
        self._what = what

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"connector preview must not touch {self._what} (asked for {name})")


def plan(documents: DocumentSource, states: Any, settings: Settings, *, entities: Sequence[str],
         since: datetime = EVERYTHING, limit: int | None = None, clock: Any = time.time) -> list[Planned]:
    """Read each entity's documents modified since ``since`` and say what a poll and its workers would do.

    ``states`` is anything with ``get_states(keys)`` (the store, read only). ``limit`` caps the rows returned."""
    ctx = SyncContext(documents=documents, tracker=_Refuses("Jira"), store=_Refuses("the state table"),
                      acumatica_url=settings.acumatica_url, owner_map=settings.owner_map, labels=settings.jira_labels,
                      cleared_status=settings.jira_cleared_status, clock=clock, triage=settings.triage,
                      rules=settings.exception_rules)
    rows: list[Planned] = []
    for entity in entities:
        for page in documents.changed_pages(entity, since, page_size=settings.poll_page_size):
            known = states.get_states([d.key for d in page.documents])
            for doc in page.documents:
                row = _row(doc, known.get(doc.key), ctx)
                if row is not None:
                    rows.append(row)
                    if limit is not None and len(rows) >= limit:
                        return rows
            if page.is_last:
                break
    return rows


def _row(doc: Document, state: DocState | None, ctx: SyncContext) -> Planned | None:
    finding = classify(doc, ctx.rules)
    today: date = ctx.today()
    snap = observed(doc, finding, ctx.triage, today)
    judged = {"priority": snap.get("priority", ""), "due date": snap.get("due date", "")}
    if state is None or not state.issue_key:
        if finding is None:
            return None
        draft = planned_issue(doc, finding, ctx)
        return Planned("create", doc.key.external_id, "", draft.summary or "", draft.assignee_account_id or "",
                       draft.priority or "", draft.due_date or "", finding.reason)
    summary = content.summary(doc, finding) if finding else ""
    if state.fingerprint == fingerprint(snap) or (finding is None and not state.open):
        return Planned("leave", doc.key.external_id, state.issue_key, summary, "", judged["priority"],
                       judged["due date"], "unchanged since the issue was last updated")
    reason = finding.reason if finding else f"exception cleared: status {doc.status}"
    return Planned("update", doc.key.external_id, state.issue_key, summary, "", judged["priority"],
                   judged["due date"], reason)


def unmapped_owners(documents: DocumentSource, settings: Settings, *, since: datetime) -> Counter[str]:
    """Owners of exception documents (a PO's ``Owner``, a vendor's owner in ``VendorOwners``) that ``OwnerMap`` has
    no accountId for, with how many documents each: their issues fall back to the vendor, the default or round robin.
    Bills' buyers are not looked up here (two reads per bill); the preview shows where each bill would go."""
    found: Counter[str] = Counter()
    for entity in settings.document_types:
        for page in documents.changed_pages(entity, since, page_size=settings.poll_page_size):
            for doc in page.documents:
                if classify(doc, settings.exception_rules) is not None:
                    found.update(route(doc, settings.owner_map, settings.triage).unmapped)
            if page.is_last:
                break
    return found


def check_owner_map(wiring: Any, days: int = 30) -> None:
    """For ``connector ping``: raises ``LookupError`` naming unmapped owners of recent exception documents."""
    missing = unmapped_owners(wiring.acumatica, wiring.settings_in_effect(),
                              since=datetime.now(timezone.utc) - timedelta(days=days))
    if missing:
        raise LookupError("no OwnerMap entry for " + ", ".join(
            f"{owner} ({count} document{'s' if count > 1 else ''})" for owner, count in missing.most_common()))


def render(rows: Sequence[Planned], fmt: str = "text", out: TextIO | None = None) -> None:
    """Print the plan: a table for people, or JSON (a list of objects) for scripts.

    Summaries and reasons quote Acumatica's data: the table prints them cleaned (``output.clean``), as text."""
    out = out or sys.stdout
    if fmt == "json":
        json.dump([asdict(row) for row in rows], out, indent=2)
        out.write("\n")
        return
    cells = [[clean(value) for value in (row.action, row.document, row.issue, _clip(clean(row.summary), 70),
                                         row.assignee, row.priority, row.due_date, _clip(clean(row.reason), 60))]
             for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(COLUMNS)]
    for line in [list(COLUMNS), ["-" * w for w in widths], *cells]:
        out.write("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() + "\n")
    counts = {action: sum(1 for r in rows if r.action == action) for action in ("create", "update", "leave")}
    out.write(f"\n{counts['create']} to create, {counts['update']} to update, {counts['leave']} left alone; "
              "nothing was written.\n")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def run(wiring: Any, *, entities: Iterable[str] | None, since: datetime | None, limit: int | None, fmt: str,
        out: TextIO | None = None) -> int:
    """What ``connector preview`` does: reads through the wiring's Acumatica client and store, prints the plan, with
    the tables in effect (an imported version's, else the parameters').

    ``since`` was parsed with the other arguments (``arguments.moment``); ``None`` reads every document."""
    settings: Settings = wiring.settings_in_effect()
    chosen = tuple(entities or settings.document_types)
    rows = plan(wiring.acumatica, wiring.store, settings, entities=chosen, since=since or EVERYTHING, limit=limit)
    render(rows, fmt, out)
    if fmt != "json":  # the JSON stays the list of planned rows scripts read
        from .authority import print_for_preview

        print_for_preview(settings.decision_policy.authority, chosen, settings.jira_project_key, out or sys.stdout)
    return 0
