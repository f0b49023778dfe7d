"""A new bill's buyer, found for a whole page at once: the poller's side of routing by purchase order.

The AP team asks the buyer who raised a purchase order about the bill that bills it, so a bill's issue goes to the
``Owner`` of the first order its lines reference. Reading that answer costs Acumatica requests, which its licence
caps per minute and which people's screens share: so the lines are read only when a buyer found through them could
be mapped to someone (``wants_lines``), and then for all the page's new exception bills in one filtered list request,
and the orders' owners the same way, each order once per poll run (``PageRouter``). What was learned travels on the
work message (``Routing``), next to the document the poll read, so the worker creates the issue without reading.

Routing is an enrichment: a read that fails or is refused never stops an issue. A refusal (403, 404, 400) is carried
as ``unavailable`` and the worker routes without the buyer (vendor table, default, round robin or unassigned) and
audits why; a failure that may pass (timeout, 5xx, 429) carries nothing, and the worker reads that one bill itself.
Pure: the reads go through the ``DocumentSource`` port.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from .errors import PermanentError, TransientError
from .model import Document, DocumentKey, WorkMessage
from .ports import DocState, DocumentSource
from .rules import RuleTable, classify

logger = logging.getLogger(__name__)

CARRIED_ROUTING_BYTES = 2048
"""A message carries what the poll learned about the buyer only up to this size (a bill whose lines reference very
many orders travels without it, and the worker reads that bill itself): the message also carries the document, and
ten messages share SendMessageBatch's 256 KiB."""


def wants_lines(owner_map: Mapping[str, str]) -> bool:
    """Whether a bill's lines are worth reading: only a buyer that ``OwnerMap`` names can become an assignee.

    The ``*`` default is no buyer's name, so a map that holds nothing else routes every bill the same with or without
    its lines; ``VendorOwners`` and round robin need no lines at all."""
    return any(name != "*" for name in owner_map)


@dataclass(frozen=True)
class Routing:
    """What the poll learned about a new bill's buyer: the orders its lines reference, the first of their owners,
    or why it could not know (``unavailable``: a refused read, which reading again would not change)."""

    orders: tuple[DocumentKey, ...] = ()
    buyer: str | None = None
    unavailable: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"orders": [order.external_id for order in self.orders]}
        if self.buyer:
            data["buyer"] = self.buyer
        if self.unavailable:
            data["unavailable"] = self.unavailable
        return data

    @classmethod
    def from_json(cls, data: Any) -> Routing:
        """Parse what ``to_json`` wrote; ``ValueError`` for anything else (the worker then reads the bill)."""
        if not isinstance(data, dict) or not isinstance(data.get("orders"), list):
            raise ValueError("carried routing is not an object with a list of orders")
        orders = tuple(DocumentKey.parse(str(external_id)) for external_id in data["orders"])
        if any(order.entity != "PurchaseOrder" for order in orders):
            raise ValueError("carried routing names something other than a purchase order")
        buyer, unavailable = data.get("buyer"), data.get("unavailable")
        if not all(value is None or isinstance(value, str) for value in (buyer, unavailable)):
            raise ValueError("carried routing's buyer and reason must be text")
        return cls(orders=orders, buyer=buyer or None, unavailable=unavailable or None)


def buyer_among(orders: Sequence[DocumentKey], owners: Mapping[DocumentKey, str | None]) -> str | None:
    """The ``Owner`` of the first of ``orders`` that has one (an order not found is skipped)."""
    return next((owner for order in orders if (owner := owners.get(order))), None)


class PageRouter:
    """The poller's routing reads for one poll run: two filtered list requests per page of new exception bills (more
    only when a page's numbers overflow a URL), each purchase order's owner read once in the run however many bills
    reference it. A fresh router per run: an owner changed in Acumatica is read again by the next poll."""

    def __init__(self, documents: DocumentSource, rules: RuleTable) -> None:
        self._documents = documents
        self._rules = rules
        self._owners: dict[DocumentKey, str | None] = {}

    def annotate(self, messages: list[WorkMessage], documents: Sequence[Document],
                 states: Mapping[DocumentKey, DocState]) -> list[WorkMessage]:
        """``messages`` with the buyer of each new exception bill the message carries the document of."""
        read = {doc.key: doc for doc in documents}
        bills = [m.key for m in messages if _new_exception_bill(m, read.get(m.key), states.get(m.key), self._rules)]
        if not bills:
            return messages
        routed = self.route(bills)
        return [_carrying(m, routed[m.key]) if m.key in routed else m for m in messages]

    def route(self, bills: Sequence[DocumentKey]) -> dict[DocumentKey, Routing]:
        """Routing of ``bills``; a bill absent from the answer gets none (its read may pass: the worker reads it)."""
        try:
            lines = self._documents.bill_orders(bills)
        except TransientError as exc:
            logger.info("bills' lines not read; the worker reads each bill's", extra={"bills": len(bills),
                                                                                      "error": str(exc)})
            return {}
        except PermanentError as exc:
            reason = f"Acumatica refused to read the bills' lines: {exc}"
            return {bill: Routing(unavailable=reason[:500]) for bill in bills}
        wanted = list(dict.fromkeys(order for orders in lines.values() for order in orders
                                    if order not in self._owners))
        refused: str | None = None
        if wanted:
            try:
                owners = self._documents.order_owners(wanted)
            except TransientError as exc:
                logger.info("purchase orders' owners not read; the worker reads each bill's",
                            extra={"orders": len(wanted), "error": str(exc)})
                return {}
            except PermanentError as exc:
                refused = f"Acumatica refused to read the purchase orders' owners: {exc}"[:500]
            else:
                self._owners.update({order: owners.get(order) for order in wanted})
        routed: dict[DocumentKey, Routing] = {}
        for bill, orders in lines.items():
            known = all(order in self._owners for order in orders)
            routed[bill] = Routing(orders=tuple(orders), buyer=buyer_among(orders, self._owners) if known else None,
                                   unavailable=None if known else refused)
        return routed


def _new_exception_bill(message: WorkMessage, doc: Document | None, state: DocState | None,
                        rules: RuleTable) -> bool:
    """A bill about to get its issue, whose read the message carries: the only kind of work routing is for."""
    return (message.kind == "sync" and message.document is not None and doc is not None
            and doc.key.entity == "Bill" and not doc.owner and not (state and state.issue_key)
            and classify(doc, rules) is not None)


def _carrying(message: WorkMessage, routing: Routing) -> WorkMessage:
    data = routing.to_json()
    if len(json.dumps(data)) > CARRIED_ROUTING_BYTES:
        return message
    return replace(message, routing=data)
