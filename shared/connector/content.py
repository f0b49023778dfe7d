"""What the connector writes into Jira: summaries, ADF descriptions and comments. Pure functions over the model."""

from __future__ import annotations

import unicodedata
from typing import Any, Sequence

from . import adf
from .documents import screen_url
from .model import Document, DocumentKey, Finding
from .rules import money

SUMMARY_LIMIT = 255
_LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})
"""Unicode categories a one-line summary cannot hold: control characters and line or paragraph separators."""
ENTITY_LABELS = {"Bill": "AP bill", "PurchaseOrder": "Purchase order", "Check": "AP payment"}


def reference(doc: Document) -> str:
    """How a clerk names the document: ``AP bill 000123`` (the type too when it is not the usual one)."""
    return key_reference(doc.key)


def key_reference(key: DocumentKey) -> str:
    """``reference`` for a document known only by its key (one that no longer exists)."""
    label = ENTITY_LABELS.get(key.entity, key.entity)
    usual = {"Bill": "Bill", "PurchaseOrder": "Normal", "Check": "Payment"}.get(key.entity)
    kind = "" if key.type == usual else f" ({key.type})"
    return f"{label}{kind} {key.number}"


def summary(doc: Document, finding: Finding) -> str:
    """Reference number, vendor, amount with currency, and the reason; one line of at most Jira's 255 characters.

    Jira refuses a summary with a line break (400), and a vendor name or reference may hold one, or other control
    characters: they become spaces, so the issue is still created."""
    text = f"{reference(doc)} | {doc.vendor or 'no vendor'} | {money(doc.amount, doc.currency)} | {finding.reason}"
    text = " ".join("".join(" " if unicodedata.category(c) in _LINE_BREAKING else c for c in text).split())
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


def description(doc: Document, finding: Finding, acumatica_url: str) -> dict[str, Any]:
    """ADF: why the document needs a person, its fields as a table, and a link to its Acumatica screen."""
    return adf.doc(
        adf.paragraph(adf.text(reference(doc), strong=True), adf.text(f" needs attention: {finding.reason}.")),
        adf.paragraph(adf.text("Rule: "), adf.text(finding.rule, code=True),
                      adf.text(f" · status {doc.status or 'unknown'} · vendor {doc.vendor or 'none'}")),
        adf.fields_table({**doc.fields, **{f"error ({k or 'document'})": v for k, v in doc.errors.items()}}),
        adf.paragraph(adf.text("Open in Acumatica: "), adf.link(doc.key.external_id, screen_url(acumatica_url, doc.key))),
        adf.paragraph(adf.text("When the document is fixed, resolve this issue: the connector then re-reads it and, "
                               "if its status allows, releases or approves it in Acumatica.")),
    )


def change_comment(doc: Document, finding: Finding | None, changed: Sequence[tuple[str, str, str]],
                   reopened: bool = False) -> dict[str, Any]:
    """ADF comment listing what changed in Acumatica, old → new."""
    if finding is None:
        lead = f"{reference(doc)} is no longer an exception in Acumatica (status {doc.status})."
    elif reopened:
        lead = f"{reference(doc)} needs attention again: {finding.reason}."
    else:
        lead = f"{reference(doc)} changed in Acumatica: {finding.reason}."
    rows = [[name, old or "(empty)", new or "(empty)"] for name, old, new in changed]
    blocks = [adf.paragraph(adf.text(lead))]
    if rows:
        blocks.append(adf.table(["field", "was", "now"], rows))
    return adf.doc(*blocks)


def overdue_comment(doc: Document, due: str, priority: str) -> dict[str, Any]:
    """ADF comment for the day a document goes past its due date (posted once per due date)."""
    return adf.doc(adf.paragraph(adf.text(f"{reference(doc)} is overdue: ", strong=True),
                                 adf.text(f"it was due {due}. Priority is now {priority}.")))


def escalation_comment(doc: Document, finding: Finding, days: int, who: str | None) -> dict[str, Any]:
    """ADF comment for an exception still open ``days`` after its issue was opened, mentioning who should act."""
    lead = [adf.mention(who), adf.text(" ")] if who else []
    return adf.doc(adf.paragraph(*lead, adf.text(f"{reference(doc)} has been an exception for {days} days: ",
                                                 strong=True), adf.text(f"{finding.reason}.")))
def deleted_comment(key: DocumentKey) -> dict[str, Any]:
    """ADF comment: the document behind the issue was deleted in Acumatica, so its exception is cleared."""
    return adf.doc(adf.paragraph(adf.text(f"{key_reference(key)} no longer exists in Acumatica: it was deleted, so "
                                          "there is nothing left to fix. The connector treats the exception as "
                                          "cleared.")))


def outcome_comment(doc_reference: str, lines: Sequence[str], *, success: bool,
                    partial: bool = False) -> dict[str, Any]:
    """ADF comment reporting what the return flow did (or why it did nothing).

    ``success``: every step took effect and the document no longer needs a person. ``partial``: some step took effect
    but the document still needs a person (a failed later step, approval still pending). Neither: nothing changed.
    Only a confirmed, complete outcome is headed "Acumatica updated"."""
    headline = ("Acumatica updated" if success and not partial
                else "Acumatica partly updated, the document still needs a person" if partial
                else "No change made in Acumatica")
    return adf.doc(
        adf.paragraph(adf.text(f"{headline}: ", strong=True), adf.text(doc_reference)),
        adf.bullet_list(*[adf.paragraph(adf.text(line)) for line in lines if line]),
    )
