"""Deleted documents noticed daily: the open issues' documents are read from the sparse index (no Scan), looked up in
Acumatica in batches, and only a document missing from a complete answer is queued, to be read by its keys; the
worker then tells its issue once, whatever the number of runs. A failing lookup proves nothing and queues nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from connector import adf, deletions, timings
from connector.deletions import SOURCE, DeletionCheckFailed, check_deleted
from connector.errors import AuthenticationError, NotFoundError, TransientError
from connector.model import DocumentKey
from connector.ports import DocState
from connector.sync import SyncContext, sync_document
from tests.core.test_carried_document import ListQueue
from tests.fakes import FakeAcumatica, FakeJira, make_doc, recorded

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc)


def check(acu, store, queue, seconds_left=lambda: 100.0, entities=("Bill", "Check"), now=NOW) -> str:
    return check_deleted(entities, documents=acu, store=store, queue=queue, now=now, correlation_id="daily",
                         seconds_left=seconds_left)


def context(acu, jira, store, clock) -> SyncContext:
    return SyncContext(documents=acu, tracker=jira, store=store, acumatica_url="https://acme.example.com",
                       owner_map={}, labels=("acumatica",), cleared_status="Done", clock=clock)


def deleted_comments(jira, key) -> list:
    return [c for c in jira.comments[key] if "no longer exists in Acumatica" in adf.plain_text(c)]


def test_only_open_exceptions_are_in_the_index(store):
    open_bill, closed_bill, check_doc = (DocumentKey("Bill", "Bill", "1"), DocumentKey("Bill", "Bill", "2"),
                                         DocumentKey("Check", "Payment", "3"))
    store.save_state(open_bill, DocState(issue_key="AP-1", issue_id="1", open=True))
    closed = store.save_state(closed_bill, DocState(issue_key="AP-2", issue_id="2", open=True))
    store.save_state(closed_bill, DocState(issue_key="AP-2", issue_id="2", open=False, version=closed.version))
    store.save_state(check_doc, DocState(issue_key="AP-3", issue_id="3", open=True))
    # a state an earlier release wrote: `entity` on every state, open or not
    store._table.put_item(Item={"PK": "DOC#Bill#Bill#4", "SK": "STATE", "external_id": "Bill:Bill:4",
                                "entity": "Bill", "open": False, "version": 1})
    assert store.open_documents("Bill") == [open_bill]
    assert store.open_documents("Check") == [check_doc]
    assert store.open_documents("PurchaseOrder") == []


def test_a_deleted_bills_open_issue_is_told_once_and_a_still_existing_one_is_left_alone(store, clock):
    gone, kept = make_doc("Bill", number="000201"), make_doc("Bill", number="000202")
    acu, jira = FakeAcumatica(gone, kept), FakeJira()
    recorded(gone, store, jira, key="AP-1", issue_id="10001")
    recorded(kept, store, jira, key="AP-2", issue_id="10002")
    del acu.docs[gone.key]  # deleted in Acumatica
    queue = ListQueue()
    assert check(acu, store, queue).startswith("2 open issues' documents looked up, 1 not found")
    assert acu.batched == [("existing", [gone.key, kept.key])]  # one lookup for both, not one per issue
    (message,) = queue.sent
    assert (message.external_id, message.source, message.document) == ("Bill:Bill:000201", SOURCE, None)
    calls = len(jira.calls)
    for sent in queue.sent:
        assert sync_document(sent, context(acu, jira, store, clock)) == "deleted"
    assert len(deleted_comments(jira, "AP-1")) == 1 and jira.issues["AP-1"]["status"] == "Done"
    assert jira.comments["AP-2"] == [] and jira.calls[calls:].count("comment") == 1
    assert [r["outcome"] for r in store.audit_trail(gone.key) if r["event"] == "queued"] == ["sync"]

    for _ in range(3):  # later runs: the issue's exception is closed, so it is not looked up or told again
        again = ListQueue()
        check(acu, store, again)
        assert again.sent == []
        for sent in queue.sent:  # and a repeated message (a replay) does nothing either
            sync_document(sent, context(acu, jira, store, clock))
    assert len(deleted_comments(jira, "AP-1")) == 1
    assert acu.actions == []  # nothing is ever posted to Acumatica for it


def test_a_document_missing_from_the_lookup_but_found_by_its_keys_is_not_deleted(store, clock):
    doc = make_doc("Bill", number="000203")
    acu, jira = FakeAcumatica(doc), FakeJira()
    recorded(doc, store, jira)
    queue = ListQueue()

    class ListsItWrongly(FakeAcumatica):
        def existing(self, keys):
            return set()

    check(ListsItWrongly(), store, queue)
    (message,) = queue.sent
    assert sync_document(message, context(acu, jira, store, clock)) == "unchanged"
    assert deleted_comments(jira, "AP-1") == []


@pytest.mark.parametrize("failure", [TransientError("Acumatica answered 500"),
                                     AuthenticationError("Acumatica answered 403"),
                                     NotFoundError("Acumatica answered 404 to GET Bill list by keys")])
def test_a_failing_lookup_queues_nothing_and_reports_the_failure(store, clock, failure):
    gone = make_doc("Bill", number="000204")
    acu, jira = FakeAcumatica(), FakeJira()
    recorded(gone, store, jira)
    acu.fail_reads["existing"] = failure
    queue = ListQueue()
    with pytest.raises(DeletionCheckFailed, match="Bill"):
        check(acu, store, queue)
    assert queue.sent == []


def test_a_run_short_of_time_checks_what_it_can_and_says_what_is_left(store, clock):
    acu, jira = FakeAcumatica(), FakeJira()
    for n in range(3):
        recorded(make_doc("Bill", number=f"00030{n}"), store, jira, key=f"AP-{n + 1}", issue_id=str(10001 + n))
    queue = ListQueue()
    summary = check(acu, store, queue, seconds_left=lambda: 5.0)
    assert summary.startswith("0 open issues' documents looked up") and "3 left for the next run" in summary
    assert queue.sent == [] and acu.batched == []


def test_a_backlog_larger_than_a_run_is_covered_over_a_few_days_not_its_head_every_day(store, clock, monkeypatch):
    """Each run has time for one slice: the slice that goes first moves with the day, so within two weeks every open
    issue's document has been looked up (a fixed start would look up the first slice every day and never the rest)."""
    monkeypatch.setattr(deletions, "SLICE", 1)
    acu, jira = FakeAcumatica(), FakeJira()
    for n in range(3):
        doc = make_doc("Bill", number=f"00040{n}")
        acu.docs[doc.key] = doc
        recorded(doc, store, jira, key=f"AP-{n + 1}", issue_id=str(10001 + n))
    looked_up: set = set()
    for day in range(14):
        left = iter([100.0] + [timings.DELETION_CHECK_RESERVE_SECONDS - 1] * 10)
        acu.batched.clear()
        summary = check(acu, store, ListQueue(), seconds_left=lambda: next(left), entities=("Bill",),
                        now=NOW + timedelta(days=day))
        assert summary.startswith("1 open issues' documents looked up") and "2 left for the next run" in summary
        looked_up.update(key for _, keys in acu.batched for key in keys)
    assert looked_up == set(acu.docs)
