"""Push notifications as Acumatica sends them (padded keys, Deleted rows, one transaction seen by several
inquiries) and documents deleted in Acumatica, through the real handlers."""

from __future__ import annotations

import json

SECRET = {"X-Connector-Secret": "local-push-secret"}


def test_one_transaction_notified_by_two_inquiries_reaches_the_queue_from_both(stack, harness):
    stack.acumatica.add_document("Bill", ReferenceNbr="830001", Hold=True)
    first = stack.acumatica.push_payload("Bill", ("Bill", "830001"), transaction_id="6b1f7a52-0c3e-4d2a-9f1e-1d2c")
    second = stack.acumatica.push_payload("Bill", ("Bill", "830001"), transaction_id=first["Id"],
                                          query="AJC-Bills-On-Hold")
    assert first["Inserted"][0]["ReferenceNbr"] == "830001 "  # padded, as Acumatica sends key values

    for payload in (first, second):
        answer = harness.post("/acumatica/push", json.dumps(payload).encode(), SECRET)
        assert answer.status_code == 202 and answer.json()["queued"] == 1
    assert harness.depth("WorkQueueUrl") == 2
    repeat = harness.post("/acumatica/push", json.dumps(second).encode(), SECRET)  # Acumatica's resend
    assert repeat.status_code == 202 and harness.depth("WorkQueueUrl") == 2
    stack.drain()
    assert len(harness.issues("Bill:Bill:830001")) == 1


def test_a_deleted_document_named_in_a_push_deleted_row_has_its_issue_told_and_cleared(stack, harness):
    stack.acumatica.add_document("Bill", ReferenceNbr="830002", Hold=True)
    harness.poll()
    (issue,) = harness.issues("Bill:Bill:830002")
    stack.acumatica.delete_document("Bill", ("Bill", "830002"))
    payload = stack.acumatica.push_payload("Bill", ("Bill", "830002"))
    assert payload["Inserted"] == [] and payload["Deleted"][0]["ReferenceNbr"] == "830002 "

    assert harness.post("/acumatica/push", json.dumps(payload).encode(), SECRET).status_code == 202
    stack.drain()
    comments = stack.jira.comments(issue["key"])
    assert [c for c in comments if "no longer exists in Acumatica" in str(c["body"])] != []
    harness.poll()
    stack.drain()
    assert len(stack.jira.comments(issue["key"])) == len(comments)  # said once

