"""The connector's own vocabulary: document keys, documents, and the messages that travel on the work queue.

Everything here is plain data with no I/O, so the core can be tested without AWS or HTTP. Acumatica's wire format
(value wrappers, display labels) is translated to and from these types in ``connector.acumatica`` and
``connector.documents``; Jira's in ``connector.jira``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

ENTITIES = ("Bill", "PurchaseOrder", "Check")


@dataclass(frozen=True, order=True)
class DocumentKey:
    """Identifies one Acumatica document; its external id is the public, stable key of its Jira issue."""

    entity: str
    type: str
    number: str

    def __post_init__(self) -> None:
        # Only the number may hold ":" (``parse`` splits the first two): anything else would make two documents
        # share an external id, or one unparseable.
        if not self.entity or not self.type or ":" in self.entity or ":" in self.type:
            raise ValueError(f"not a document key: entity {self.entity!r} and type {self.type!r} must be non-empty "
                             "and free of ':'")

    @property
    def external_id(self) -> str:
        """``<Entity>:<Type>:<Number>`` as written into the Jira external-id field (docs/contract.md)."""
        return f"{self.entity}:{self.type}:{self.number}"

    @property
    def pk(self) -> str:
        """DynamoDB partition key of everything stored about this document."""
        return f"DOC#{self.entity}#{self.type}#{self.number}"

    @classmethod
    def parse(cls, external_id: str) -> DocumentKey:
        """Parse an external id; the number may itself contain ``:`` so only the first two separate."""
        parts = external_id.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"not an external id of the form <Entity>:<Type>:<Number>: {external_id!r}")
        return cls(*parts)

    def __str__(self) -> str:
        return self.external_id


@dataclass(frozen=True)
class Document:
    """An Acumatica document reduced to what the rules, Jira and the audit need.

    ``fields`` keeps the unwrapped values of the selected Acumatica fields (for the issue description);
    ``errors`` keeps the field-level ``error`` strings Acumatica attached (a payment that fails validation).
    """

    key: DocumentKey
    status: str
    hold: bool
    vendor: str
    amount: Decimal | None
    currency: str
    last_modified: datetime | None = None
    control_amount: Decimal | None = None
    total_amount: Decimal | None = None
    owner: str | None = None
    description: str = ""
    id: str | None = None
    errors: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    """Why a document needs a human: the rule that fired and a sentence a clerk understands."""

    rule: str
    reason: str


MessageKind = Literal["sync", "resolve"]


@dataclass(frozen=True)
class WorkMessage:
    """A unit of work on the FIFO queue. Bodies are JSON; unknown keys are ignored so old messages replay safely.

    ``sync``: re-read the document and bring its Jira issue up to date (from a poll or a push notification).
    ``resolve``: the Jira issue ``issue_key`` reached a resolved status; act on the document (return flow).
    ``dedupe_id`` is the idempotency key of this piece of work, stable across SQS redelivery and DLQ redrive
    (SQS message ids change on redrive, so they are never used for that).
    """

    kind: MessageKind
    external_id: str
    dedupe_id: str
    correlation_id: str
    source: str = "poll"
    fingerprint: str | None = None
    issue_key: str | None = None
    status_name: str | None = None
    observed_at: str | None = None
    reason: str | None = None
    issue_id: str | None = None
    """``resolve``: the issue's numeric id (stable when the key changes on a project move)."""
    change_id: str | None = None
    """``resolve``: the changelog entry the delivery announced (the worker re-reads the changelog itself)."""
    actor: str | None = None
    """``resolve``: the accountId the delivery names as the change's ``user`` (the worker re-checks it)."""

    @property
    def key(self) -> DocumentKey:
        return DocumentKey.parse(self.external_id)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)

    @classmethod
    def from_json(cls, body: str) -> WorkMessage:
        """Parse a queue body; raises ``ValueError`` for anything that is not a well-formed work message."""
        try:
            data = json.loads(body)
        except json.JSONDecodeError as exc:
            raise ValueError(f"work message is not JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("kind") not in ("sync", "resolve"):
            raise ValueError("work message has no valid 'kind'")
        known = {f for f in cls.__dataclass_fields__}
        try:
            message = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise ValueError(f"work message is missing fields: {exc}") from exc
        DocumentKey.parse(message.external_id)
        return message
