"""The connector's own vocabulary: document keys, documents, and the messages that travel on the work queue.

Everything here is plain data with no I/O, so the core can be tested without AWS or HTTP. Acumatica's wire format
(value wrappers, display labels) is translated to and from these types in ``connector.acumatica`` and
``connector.documents``; Jira's in ``connector.jira``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from decimal import Decimal, InvalidOperation
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
        """DynamoDB partition key of everything stored about this document.

        ``#`` separates the parts, so a ``#`` inside a type or number is escaped (``%23``, and ``%`` itself as
        ``%25``): type ``A#B`` number ``C`` and type ``A`` number ``B#C`` must never share a partition. Keys without
        either character, every ordinary document number, are written as before, so stored items stay readable."""
        return f"DOC#{self.entity}#{_escaped(self.type)}#{_escaped(self.number)}"

    @classmethod
    def parse(cls, external_id: str) -> DocumentKey:
        """Parse an external id; the number may itself contain ``:`` so only the first two separate."""
        parts = external_id.split(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"not an external id of the form <Entity>:<Type>:<Number>: {external_id!r}")
        return cls(*parts)

    def __str__(self) -> str:
        return self.external_id


def _escaped(part: str) -> str:
    return part.replace("%", "%25").replace("#", "%23")


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
    read_at: datetime | None = field(default=None, compare=False)
    """When the connector read this state from Acumatica (``None``: not known). Not part of the document's identity:
    two reads of an unchanged document are equal."""


_DECIMALS = frozenset({"amount", "control_amount", "total_amount"})
_DATETIMES = frozenset({"last_modified", "read_at"})


def document_to_json(doc: Document) -> dict[str, Any]:
    """The document as JSON-ready data for a work message (``document_from_json`` reverses it exactly)."""
    data: dict[str, Any] = {}
    for item in fields(doc):
        value = getattr(doc, item.name)
        if item.name == "key":
            value = value.external_id
        elif value is not None and item.name in _DECIMALS:
            value = str(value)
        elif value is not None and item.name in _DATETIMES:
            value = value.isoformat()
        data[item.name] = value
    return data


def document_from_json(data: Any) -> Document:
    """Parse what ``document_to_json`` wrote; ``ValueError`` for anything else (the worker then re-reads)."""
    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        raise ValueError("carried document is not an object with a key")
    known = {item.name for item in fields(Document)}
    values: dict[str, Any] = {name: value for name, value in data.items() if name in known}
    try:
        values["key"] = DocumentKey.parse(values["key"])
        for name in _DECIMALS & values.keys():
            values[name] = None if values[name] is None else Decimal(values[name])
        for name in _DATETIMES & values.keys():
            values[name] = None if values[name] is None else datetime.fromisoformat(values[name])
        return Document(**values)
    except (TypeError, InvalidOperation) as exc:
        raise ValueError(f"carried document is malformed: {exc}") from None


@dataclass(frozen=True)
class Finding:
    """Why a document needs a human: the rule that fired and a sentence a clerk understands."""

    rule: str
    reason: str


MessageKind = Literal["sync", "resolve", "poll"]
DOCUMENT_KINDS = ("sync", "resolve")
POLL_NOW_GROUP = "poll-now"
"""The ``external_id`` (and so the FIFO group) of every ``poll`` message: it names entities, not a document."""


@dataclass(frozen=True)
class WorkMessage:
    """A unit of work on the FIFO queue. Bodies are JSON; unknown keys are ignored so old messages replay safely.

    ``sync``: bring the document's Jira issue up to date (from a poll or a push notification). A poll's message
    carries the ``document`` as the poller read it (``document_to_json``, with its ``read_at``), so the worker need
    not read it again while that read is fresh; without it, or when stale, the worker re-reads.
    A new exception bill's message also carries its ``routing`` (``connector.routing.Routing``: the orders its lines
    reference and their buyer), read by the poll for the whole page, used with the carried document only.
    ``resolve``: the Jira issue ``issue_key`` reached a resolved status; act on the document (return flow).
    ``poll``: read the changed documents of ``entities`` now (a push notification too large to queue row by row);
    the worker asks the poller, the one writer of the watermarks, to run; ``external_id`` is ``POLL_NOW_GROUP``.
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
    document: dict[str, Any] | None = None
    deferrals: int | None = None
    """How many times this work went back to the queue as new because Acumatica's session was busy with an action
    (``connector.worker``): a definite "not now" that must not spend the message's attempts."""
    routing: dict[str, Any] | None = None
    entities: list[str] | None = None
    """``poll``: the entities whose changes to read now."""

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
        if not isinstance(data, dict) or data.get("kind") not in (*DOCUMENT_KINDS, "poll"):
            raise ValueError("work message has no valid 'kind'")
        known = {f for f in cls.__dataclass_fields__}
        try:
            message = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise ValueError(f"work message is missing fields: {exc}") from exc
        if message.kind == "poll":
            entities = message.entities
            if message.external_id != POLL_NOW_GROUP or not isinstance(entities, list) or not entities or not all(
                    entity in ENTITIES for entity in entities):
                raise ValueError(f"poll message must name entities among {', '.join(ENTITIES)}")
            return message
        if not isinstance(message.external_id, str) or DocumentKey.parse(message.external_id).entity not in ENTITIES:
            raise ValueError(f"work message is not about a document of {', '.join(ENTITIES)}")
        return message
