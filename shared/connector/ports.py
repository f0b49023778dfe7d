"""The ports the core talks to. Adapters implement them; tests use fakes or the sandboxes behind the real adapters.

The core (``rules``, ``sync``, ``resolve``, ``adf``) imports only this module and ``model``: never boto3 or requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterator, Mapping, Protocol, Sequence

from .model import Document, DocumentKey, WorkMessage


@dataclass(frozen=True)
class Page:
    """One page of a list query; ``next_skip`` is the ``$skip`` that fetches the page after it."""

    documents: list[Document]
    next_skip: int
    is_last: bool
    server_time: datetime | None = None
    """Acumatica's own clock when it answered (the response's ``Date`` header, whole seconds); ``None`` if absent."""


class DocumentSource(Protocol):
    """Acumatica, as the core needs it."""

    def changed_pages(self, entity: str, since: datetime, *, skip: int = 0, page_size: int = 500) -> Iterator[Page]:
        """Documents whose ``LastModifiedDateTime`` >= ``since``, page by page, starting at ``$skip`` = ``skip``.

        Pages come in no guaranteed order; records may repeat across pages, and a record deleted between two page
        reads must not hide another (``next_skip`` may re-read the end of a page for that). Each document's
        ``fields["LastModifiedDateTime"]`` is the stamp exactly as Acumatica rendered it: the watermark is made of it.
        Lazily fetched: one HTTP call per page.
        """

    def get(self, key: DocumentKey) -> Document | None:
        """The document as it is now, or ``None`` when Acumatica has no such document."""

    def set_hold(self, key: DocumentKey, hold: bool) -> Document:
        """PUT ``Hold``; returns the document re-read afterwards (what Acumatica kept, not what was sent). Raises
        ``ValidationError`` when Acumatica refuses."""

    def invoke_action(self, key: DocumentKey, action: str, parameters: Mapping[str, str] | None = None) -> Document:
        """POST the action (``parameters``: ``View.Field`` → text, for a workflow action's dialog), follow
        ``202 Location`` until ``204``, and return the document re-read afterwards. ``ActionRefused`` when Acumatica
        refused it and said why, ``UncertainOutcome`` when it may have run, ``SessionBusy`` when the session is busy
        with another action (nothing was sent)."""

    def referenced_orders(self, key: DocumentKey) -> list[DocumentKey]:
        """The purchase orders a bill's lines reference (``Details``), once each in line order; ``[]`` otherwise."""

    def bill_orders(self, bills: Sequence[DocumentKey]) -> dict[DocumentKey, list[DocumentKey]]:
        """``referenced_orders`` of many bills in a few requests; a bill absent from the answer does not exist."""

    def order_owners(self, orders: Sequence[DocumentKey]) -> dict[DocumentKey, str | None]:
        """Each purchase order's ``Owner``, many per request; an order absent from the answer does not exist."""

    def existing(self, keys: Sequence[DocumentKey]) -> set[DocumentKey]:
        """Which of ``keys`` exist now, many per request. Raises on any failure: absence is only ever a fact."""

    def workflow_actions(self, entity: str) -> list[str]:
        """Names of the workflow actions the instance offers for ``entity`` (``$adHocSchema``), for ``ping``."""

    def action_parameters(self, entity: str, action: str) -> list[str]:
        """``View.Field`` of each parameter the workflow ``action`` takes (``$adHocSchema``), ``[]`` for none."""


@dataclass(frozen=True)
class IssueDraft:
    """What the connector writes into a Jira issue; ``None`` leaves a field unchanged on update."""

    summary: str | None = None
    description: dict[str, Any] | None = None
    external_id: str | None = None
    labels: Sequence[str] | None = None
    assignee_account_id: str | None = None
    due_date: str | None = None
    """Jira's ``duedate``, ``YYYY-MM-DD``."""
    priority: str | None = None
    """A priority name of the project's priority scheme."""


@dataclass(frozen=True)
class IssueRef:
    """A Jira issue as the core sees it."""

    id: str
    key: str
    status: str = ""
    status_category: str = ""
    external_id: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    creator_account_id: str | None = None
    """Who created the issue: the connector's own account for the issues it made, a person for a clone or a
    hand-made issue (``None`` when Jira did not say)."""
    resolution: str | None = None
    """The issue's resolution name (``None``: unresolved, or a project without resolutions)."""


@dataclass(frozen=True)
class StatusChange:
    """One status move from the issue's changelog, as Jira recorded it at the time of the change.

    ``id`` is the changelog entry's id (the ``changelog.id`` of the delivery that announced it); the categories are
    the status categories (``new``, ``indeterminate``, ``done``) of the statuses moved from and to.
    """

    id: str
    author_account_id: str
    created: str
    from_status: str
    to_status: str
    from_category: str = ""
    to_category: str = ""
    author_account_type: str = ""
    """The author's ``accountType`` (``atlassian`` for a person, ``app``, ``customer``); empty when Jira did not say,
    which is never taken for a person."""
    author_active: bool = False
    author_name: str = ""
    resolution: str | None = None
    """The resolution the same changelog entry set (its ``resolution`` item), if it set one."""


@dataclass(frozen=True)
class IssueComment:
    """One comment of an issue, as the core needs it: who wrote it, when (Jira's text), and its plain text."""

    id: str
    author_account_id: str
    created: str
    text: str


class IssueTracker(Protocol):
    """Jira, as the core needs it."""

    def find_by_external_id(self, external_id: str, reconcile_ids: Sequence[str] = ()) -> IssueRef | None:
        """The one issue whose external-id field equals ``external_id`` exactly, or ``None``."""

    def get_issue(self, key: str) -> IssueRef | None:
        """Read one issue by key or id (``None`` if it does not exist or was deleted)."""

    def create_issue(self, draft: IssueDraft) -> IssueRef:
        """Create an issue in the configured project and issue type."""

    def update_issue(self, key: str, draft: IssueDraft) -> None:
        """Set the non-``None`` fields of ``draft``."""

    def add_comment(self, key: str, body: dict[str, Any]) -> str:
        """Add an ADF comment; returns the comment id."""

    def link_issues(self, inward_key: str, outward_key: str, link_type: str = "Relates") -> None:
        """Link two issues ("relates to" by default)."""

    def add_label(self, key: str, label: str) -> None:
        """Add one label, keeping the ones people set."""

    def transition_to(self, key: str, status_name: str) -> bool:
        """Move the issue to the status named ``status_name`` (case-insensitive) if a transition leads there.

        Returns ``False`` when no available transition reaches that status (nothing is changed then).
        """

    def transition_to_category(self, key: str, category_key: str) -> bool:
        """Move the issue into a status of category ``category_key`` (``new``, ``indeterminate``, ``done``)."""

    def status_changes(self, key: str) -> list[StatusChange]:
        """Every status move of the issue, oldest first (the changelog at the time of asking)."""

    def own_account_id(self) -> str:
        """The accountId the connector acts as in Jira (``/myself``): its own changes are never decisions."""

    def user_groups(self, account_id: str) -> frozenset[str]:
        """The names of the Jira groups ``account_id`` belongs to (empty for an unknown account); may be cached for a
        few minutes (``timings.GROUP_MEMBERSHIP_CACHE_SECONDS``)."""

    def recent_comments(self, key: str) -> list[IssueComment]:
        """The issue's most recent comments (up to 50), oldest first."""


class SecretStore(Protocol):
    """One JSON secret (Secrets Manager): always read fresh, written whole."""

    def read(self) -> dict[str, Any]:
        ...

    def write(self, value: Mapping[str, Any]) -> None:
        ...


class LeaseLock(Protocol):
    """A named lease lock shared by all containers (DynamoDB conditional writes)."""

    def acquire(self, name: str, owner: str, lease_seconds: float) -> bool:
        """Take the lock if it is free or its lease expired; ``True`` if ``owner`` now holds it."""

    def release(self, name: str, owner: str) -> None:
        """Release the lock if ``owner`` still holds it."""

    def holds(self, name: str, owner: str, lease_seconds: float) -> bool:
        """Whether ``owner`` still holds an unexpired lease, extending it by ``lease_seconds`` (a conditional write)."""


@dataclass(frozen=True)
class Cursor:
    """Where polling of one entity stands.

    ``watermark_text``: the greatest ``LastModifiedDateTime`` a completed pass read, exactly as Acumatica rendered it
    (offset included); ``watermark`` is its instant, in that offset. Every document modified before it (minus the
    overlap window and ``lookback``) has been queued or judged healthy. It comes from the data, never from the
    Lambda's clock: Acumatica compares ``$filter`` with its own stamps, so only its own stamps are a safe bound
    (``connector.watermarks``). ``lookback``: how long the pass that completed last took, by the Lambda's clock. A
    record changed while a pass pages can land on a page already read, and its stamp can be up to that long before
    the greatest stamp the pass read, so the next pass reaches back that much further.
    A pass in progress (``pass_from`` set) pages through ``LastModifiedDateTime >= pass_from`` and resumes at
    ``skip``; ``pass_max`` is its running maximum (rendered text), kept in the checkpoint so a resumed pass does not
    lose it. ``pass_started`` (Lambda clock) measures the pass's duration. ``full_pass_at``: when the last pass
    that re-read every document began (the safety net for records a resumed pass could miss: without ``$orderby``,
    deletions between runs shift later records to lower offsets).
    """

    watermark: datetime | None = None
    pass_from: datetime | None = None
    pass_started: datetime | None = None
    skip: int = 0
    full_pass_at: datetime | None = None
    watermark_text: str | None = None
    lookback: timedelta = timedelta(0)
    pass_max: str | None = None
    checked_at: datetime | None = None
    """Lambda clock at the last comparison of a pass's start with Acumatica's own clock (``watermarks.server_bound``)."""
    server_checked: datetime | None = None
    """Acumatica's clock (its ``Date`` header) at that comparison: edits after it carry no earlier stamp unless the
    clock went back."""
    last_rewind: str | None = None
    """The latest time a pass was started earlier because Acumatica's clock went back: when, from where, to where."""
    lead: timedelta | None = None
    """How far fresh stamps ran ahead of Acumatica's ``Date`` header (``watermarks.stamp_lead``) in the last completed
    pass that saw no step back: the database's clock against the web node's, learned from the data."""
    pass_lead: timedelta | None = None
    """The lead seen so far by the pass in progress."""
    pass_stepped: bool = False
    """A page of the pass in progress saw ``Date`` step back against the page before it (or the last check): stamps
    written before the correction and read after it would overstate the lead, so the pass teaches none."""


@dataclass(frozen=True)
class DocState:
    """What the connector last did for a document: its issue, and the state that issue reflects."""

    issue_key: str | None = None
    issue_id: str | None = None
    fingerprint: str = ""
    snapshot: Mapping[str, str] = field(default_factory=dict)
    open: bool = False
    version: int = 0
    opened_at: float | None = None
    """When the connector opened (or adopted) the issue, epoch seconds: escalation counts days from it."""
    declined: str = ""
    """The decision (issue id and changelog entry) by which a person declined the issue while the document stayed
    as it was: polls leave the closed issue alone (no calendar comments) until the document itself changes."""


@dataclass(frozen=True)
class Claim:
    """A once-only right to perform a side effect; ``won`` is ``False`` when someone else holds or finished it."""

    won: bool
    state: str
    claimed_at: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)


class StateStore(Protocol):
    """DynamoDB, as the core needs it (single table; see docs/data-model.md)."""

    def get_cursor(self, entity: str) -> Cursor:
        ...

    def put_cursor(self, entity: str, cursor: Cursor) -> None:
        ...

    def get_states(self, keys: Sequence[DocumentKey]) -> dict[DocumentKey, DocState]:
        """Batch read; documents with no record are absent from the result."""

    def get_state(self, key: DocumentKey) -> DocState | None:
        ...

    def open_documents(self, entity: str) -> list[DocumentKey]:
        """Documents of ``entity`` whose exception is open (an issue the connector keeps current), without a Scan."""

    def save_state(self, key: DocumentKey, state: DocState) -> DocState:
        """Write if nobody else wrote since ``state.version`` was read; returns the state with its new version.

        Raises ``TransientError`` on a concurrent write (the message is retried and re-reads)."""

    def claim(self, key: DocumentKey, name: str, *, fingerprint: str, retake_after_seconds: float) -> Claim:
        """Take ``name`` for this document unless it is in flight (younger than ``retake_after_seconds``) or done
        for the same document fingerprint. A failed claim, or one done for another fingerprint, may be retaken."""

    def get_claim(self, key: DocumentKey, name: str) -> Claim | None:
        ...

    def finish_claim(self, key: DocumentKey, name: str, state: str, **details: Any) -> None:
        """Mark a claim ``done`` or ``failed`` (with details such as the outcome or the issue key)."""

    def link_issue(self, issue_key: str, issue_id: str, key: DocumentKey) -> None:
        """Remember issue → document (webhooks name issues) and the issue id for search reconciliation."""

    def document_for_issue(self, issue_key: str) -> DocumentKey | None:
        ...

    def recent_issue_ids(self) -> list[str]:
        """Ids of the issues created most recently (at most 50), for ``reconcileIssues``."""

    def audit(self, key: DocumentKey, event: str, outcome: str, *, correlation_id: str, reason: str = "",
              details: Mapping[str, Any] | None = None) -> None:
        ...

    def audit_queued(self, messages: Sequence[WorkMessage], *, at: float | None = None,
                     record_id: str | None = None) -> None:
        """One audit record per queued message (batched): the first step of every piece of work. ``at`` (when it was
        queued) and ``record_id`` make a repeated write overwrite the record instead of adding one."""

    def audit_trail(self, key: DocumentKey) -> list[dict[str, Any]]:
        """Audit records of one document, oldest first."""

    def count_undelivered_resolution(self, issue_key: str) -> None:
        """One more resolution that the sweep found and no delivery had announced (``connector status`` shows them)."""

    def undelivered_resolutions(self) -> dict[str, Any]:
        """``{"count": n, "last_issue": key, "last_at": epoch seconds}`` of ``count_undelivered_resolution``."""


class WorkQueue(Protocol):
    """The FIFO work queue: one message group per document, deduplicated by the message's ``dedupe_id``."""

    def send(self, messages: Sequence[WorkMessage]) -> None:
        """Durably enqueue all of ``messages`` (raises if any could not be queued)."""
