"""Every status label Acumatica uses is classified on purpose: an exception, healthy, or deliberately ignored.

The labels below are copied from Acumatica's own lists, not from ``connector.rules``: APDocStatus
(``PX.Objects/AP/APDocStatus.cs``, 2025 R2) for bills and AP payments (checks), POOrderStatus
(``PX.Objects/PO/POOrderStatus.cs``, 2025 R2) for purchase orders. The REST API returns these display labels.
A label Acumatica adds later fails ``test_the_rules_know_every_label`` until someone decides what it means.
"""

from __future__ import annotations

import pytest

from connector.rules import EXCEPTION, HEALTHY, IGNORED, STATUS_LABELS, classify
from tests.fakes import make_doc

AP_DOC_STATUS = ("On Hold", "Balanced", "Voided", "Scheduled", "Open", "Closed", "Printed", "Pre-Released",
                 "Pending Approval", "Rejected", "Reserved", "Pending Print", "Under Reclassification",
                 "Pending Processing", "Pending Payment", "Unapplied")
PO_ORDER_STATUS = ("On Hold", "Pending Approval", "Rejected", "Open", "Awaiting Link", "Pending Printing",
                   "Pending Email", "Canceled", "Completed", "Closed", "Printed")
DOCUMENTED = {"Bill": AP_DOC_STATUS, "Check": AP_DOC_STATUS, "PurchaseOrder": PO_ORDER_STATUS}

NEEDS_A_PERSON = {"On Hold", "Pending Approval", "Rejected"}
"""Waiting for someone: held, in the approval workflow, or sent back by an approver (AP payments have an approval
workflow too, so a check pending approval or rejected is an exception like a bill)."""
ENDED_OR_NOT_LIVE = {"Voided", "Canceled", "Scheduled", "Reserved", "Under Reclassification"}
"""Deliberately not exceptions: a person ended the document, or it is not a live payable."""


def expected(label: str) -> str:
    if label in NEEDS_A_PERSON:
        return EXCEPTION
    return IGNORED if label in ENDED_OR_NOT_LIVE else HEALTHY


CASES = [(entity, label) for entity, labels in DOCUMENTED.items() for label in labels]


@pytest.mark.parametrize("entity", sorted(DOCUMENTED))
def test_the_rules_know_every_label(entity):
    assert set(STATUS_LABELS[entity]) == set(DOCUMENTED[entity])


@pytest.mark.parametrize(("entity", "label"), CASES, ids=[f"{e}-{label}" for e, label in CASES])
def test_each_label_is_an_exception_healthy_or_deliberately_ignored(entity, label):
    assert STATUS_LABELS[entity][label] == expected(label)
    doc = make_doc(entity, status=label, hold=label == "On Hold")  # balanced, no validation errors
    finding = classify(doc)
    assert (finding is not None) == (expected(label) == EXCEPTION), finding


@pytest.mark.parametrize("status", ["Pending Approval", "Rejected"])
def test_a_check_in_the_approval_workflow_is_an_exception(status):
    finding = classify(make_doc("Check", status=status, hold=False))
    assert finding is not None and finding.rule == {"Pending Approval": "pending-approval",
                                                    "Rejected": "rejected"}[status]
