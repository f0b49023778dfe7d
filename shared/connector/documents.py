"""What the connector knows about each Acumatica entity, as data.

One ``EntityProfile`` per top-level entity of the Default endpoint: its key fields (in URL order), which fields to
``$select``, which field holds the vendor, the amounts and the owner, the screen that shows it, and the mapping from
the ``Type`` display label (what the REST API returns) to the internal document type code the screen URL needs.
``to_document`` turns an unwrapped Acumatica record into a ``Document``; it is pure so rules can be tested alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping
from urllib.parse import urlencode

from .model import Document, DocumentKey


@dataclass(frozen=True)
class EntityProfile:
    entity: str
    key_fields: tuple[str, str]
    vendor_field: str
    amount_field: str
    control_field: str | None
    total_field: str | None
    owner_field: str | None
    screen_id: str
    screen_key_params: tuple[str, str]
    type_codes: Mapping[str, str]
    extra_fields: tuple[str, ...]

    @property
    def select(self) -> tuple[str, ...]:
        """Every field the connector reads, so list queries never transfer whole documents."""
        wanted = [*self.key_fields, "Status", "Hold", self.vendor_field, self.amount_field, "CurrencyID",
                  "LastModifiedDateTime", "Description"]
        for optional in (self.control_field, self.total_field, self.owner_field):
            if optional:
                wanted.append(optional)
        wanted.extend(self.extra_fields)
        return tuple(dict.fromkeys(wanted))

    def key_of(self, record: Mapping[str, Any]) -> DocumentKey:
        doc_type, number = (record.get(f) for f in self.key_fields)
        if not doc_type or not number:
            raise ValueError(f"{self.entity} record lacks its keys {self.key_fields}")
        return DocumentKey(self.entity, str(doc_type), str(number))


PROFILES: dict[str, EntityProfile] = {
    "Bill": EntityProfile(
        entity="Bill",
        key_fields=("Type", "ReferenceNbr"),
        vendor_field="Vendor",
        amount_field="Amount",
        control_field="Amount",
        total_field="Balance",
        owner_field=None,
        screen_id="AP301000",
        screen_key_params=("DocType", "RefNbr"),
        type_codes={"Bill": "INV", "Credit Adj.": "ACR", "Debit Adj.": "ADR", "Prepayment": "PPM"},
        extra_fields=("Date", "DueDate", "VendorRef", "TaxTotal"),
    ),
    "PurchaseOrder": EntityProfile(
        entity="PurchaseOrder",
        key_fields=("Type", "OrderNbr"),
        vendor_field="VendorID",
        amount_field="OrderTotal",
        control_field="ControlTotal",
        total_field="OrderTotal",
        owner_field="Owner",
        screen_id="PO301000",
        screen_key_params=("OrderType", "OrderNbr"),
        type_codes={"Normal": "RO", "Drop-Ship": "DP", "Project Drop-Ship": "PD", "Blanket": "BL", "Standard": "ST"},
        extra_fields=("Date", "PromisedOn", "VendorRef"),
    ),
    "Check": EntityProfile(
        entity="Check",
        key_fields=("Type", "ReferenceNbr"),
        vendor_field="Vendor",
        amount_field="PaymentAmount",
        control_field=None,
        total_field=None,
        owner_field=None,
        screen_id="AP302000",
        screen_key_params=("DocType", "RefNbr"),
        type_codes={"Payment": "CHK", "Prepayment": "PPM", "Refund": "REF", "Voided Payment": "VCK"},
        extra_fields=("ApplicationDate", "PaymentMethod", "PaymentRef", "CashAccount"),
    ),
}


def profile(entity: str) -> EntityProfile:
    try:
        return PROFILES[entity]
    except KeyError:
        raise ValueError(f"unsupported Acumatica entity {entity!r}; supported: {', '.join(PROFILES)}") from None


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _datetime(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def to_document(entity: str, record: Mapping[str, Any], errors: Mapping[str, str] | None = None, *,
                read_at: datetime | None = None) -> Document:
    """Build a ``Document`` from an unwrapped Acumatica record (field name → plain value) read at ``read_at``."""
    prof = profile(entity)
    return Document(
        key=prof.key_of(record),
        id=record.get("id"),
        status=str(record.get("Status") or ""),
        hold=bool(record.get("Hold")),
        vendor=str(record.get(prof.vendor_field) or ""),
        amount=_decimal(record.get(prof.amount_field)),
        control_amount=_decimal(record.get(prof.control_field)) if prof.control_field else None,
        total_amount=_decimal(record.get(prof.total_field)) if prof.total_field else None,
        currency=str(record.get("CurrencyID") or ""),
        last_modified=_datetime(record.get("LastModifiedDateTime")),
        owner=(str(record[prof.owner_field]) if prof.owner_field and record.get(prof.owner_field) else None),
        description=str(record.get("Description") or ""),
        errors=dict(errors or {}),
        fields={name: record.get(name) for name in prof.select if name in record},
        read_at=read_at,
    )


def screen_url(base_url: str, key: DocumentKey) -> str:
    """Link to the document's Acumatica screen (``/Main?ScreenId=...``), for the Jira description."""
    prof = profile(key.entity)
    type_param, number_param = prof.screen_key_params
    query = urlencode({"ScreenId": prof.screen_id, type_param: prof.type_codes.get(key.type, key.type),
                       number_param: key.number})
    return f"{base_url.rstrip('/')}/Main?{query}"
