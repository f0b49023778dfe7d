"""Routing by purchase order without a read per bill: the poll reads the lines of a page's new exception bills and
their orders' owners in batches, carries the buyer on each message, and the worker creates the issue without reading;
no line is read unless ``OwnerMap`` could map the buyer; and a failed or refused read never stops an issue."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from connector.errors import AuthenticationError, TransientError
from connector.model import DocumentKey, WorkMessage
from connector.ports import DocState
from connector.routing import PageRouter, Routing, wants_lines
from connector.rules import EXCEPTION_RULES
from connector.sync import PollOptions, SyncContext, run_poll, sync_document
from connector.triage import TriageRules
from tests.core.test_carried_document import ListQueue, StampingAcumatica
from tests.fakes import FakeJira, make_doc

OWNERS = {"buyer.kim": "acct-kim", "buyer.lee": "acct-lee"}
RULES = TriageRules(vendor_owners={"V-LEE": "buyer.lee"})


def order(number: str) -> DocumentKey:
    return DocumentKey("PurchaseOrder", "Normal", number)


def purchase_order(number: str, owner: str | None):
    return replace(make_doc("PurchaseOrder", number=number, status="Open", hold=False, owner=owner), key=order(number))


def held_bill(number: str, vendor: str = "V000001"):
    return make_doc("Bill", number=number, vendor=vendor)


def healthy_bill(number: str):
    return make_doc("Bill", number=number, status="Balanced", hold=False)


def context(acu, jira, store, clock, owner_map=OWNERS, triage=RULES) -> SyncContext:
    return SyncContext(documents=acu, tracker=jira, store=store, acumatica_url="https://acme.example.com",
                       owner_map=owner_map, labels=("acumatica",), cleared_status="", clock=clock, triage=triage,
                       fresh_for_seconds=300.0)


def poll(acu, store, clock, owner_map=OWNERS, page_size=500, entities=("Bill",)) -> list[WorkMessage]:
    queue = ListQueue()
    now = datetime.fromtimestamp(clock(), timezone.utc)
    reports, failures = run_poll(entities, documents=acu, store=store, queue=queue,
                                 options=PollOptions(page_size=page_size, full_pass_every=None), now=lambda: now,
                                 seconds_left=lambda: 300.0, correlation_id="poll", triage=RULES,
                                 owner_map=owner_map)
    assert not failures, failures
    return queue.sent


def work(messages, acu, jira, store, clock, owner_map=OWNERS) -> dict[str, str]:
    ctx = context(acu, jira, store, clock, owner_map)
    return {m.external_id: sync_document(m, ctx) for m in messages}


def assignee(jira, external_id: str) -> str | None:
    (issue,) = [i for i in jira.issues.values() if i["external_id"] == external_id]
    return issue["assignee"]


def reads(acu, name: str) -> list[list[DocumentKey]]:
    return [keys for read, keys in acu.batched if read == name]


@pytest.mark.parametrize("owner_map", [{}, {"*": "acct-default"}])
def test_no_line_is_read_when_owner_map_could_not_map_a_buyer(store, clock, owner_map):
    acu = StampingAcumatica(clock, held_bill("000101"), held_bill("000102", vendor="V-LEE"),
                            purchase_order("PO000045", "buyer.kim"))
    acu.order_lines[held_bill("000101").key] = [order("PO000045")]
    jira = FakeJira()
    messages = poll(acu, store, clock, owner_map=owner_map)
    assert work(messages, acu, jira, store, clock, owner_map=owner_map) == {
        "Bill:Bill:000101": "created", "Bill:Bill:000102": "created"}
    assert acu.batched == [] and acu.gets == 0  # neither the poll nor the worker read a line or an order
    assert assignee(jira, "Bill:Bill:000101") == owner_map.get("*")
    assert not wants_lines(owner_map) and wants_lines({"buyer.kim": "x"})


def test_the_page_reads_every_new_bills_lines_at_once_and_the_worker_reads_nothing(store, clock):
    acu = StampingAcumatica(clock, held_bill("000101"), held_bill("000102"), held_bill("000103"),
                            healthy_bill("000104"), held_bill("000105"),
                            purchase_order("PO000045", "buyer.kim"), purchase_order("PO000046", None),
                            purchase_order("PO000047", "buyer.lee"))
    for number, orders in (("000101", ["PO000045"]), ("000102", ["PO000046", "PO000047"]),
                           ("000103", ["PO000045"]), ("000104", ["PO000047"]), ("000105", ["PO-GONE"])):
        acu.order_lines[held_bill(number).key] = [order(n) for n in orders]
    store.save_state(held_bill("000105").key, DocState(issue_key="AP-9", issue_id="9", open=True))  # has its issue
    jira = FakeJira()
    messages = poll(acu, store, clock)

    (lines,) = reads(acu, "bill_orders")
    assert sorted(k.number for k in lines) == ["000101", "000102", "000103"]  # new exception bills only
    (owners,) = reads(acu, "order_owners")
    assert sorted(k.number for k in owners) == ["PO000045", "PO000046", "PO000047"]  # each order once
    carried = {m.external_id: Routing.from_json(m.routing) for m in messages if m.routing}
    assert carried["Bill:Bill:000102"] == Routing(orders=(order("PO000046"), order("PO000047")), buyer="buyer.lee")
    assert set(carried) == {"Bill:Bill:000101", "Bill:Bill:000102", "Bill:Bill:000103"}

    before_gets, before = acu.gets, len(acu.batched)
    outcomes = work([m for m in messages if m.external_id != "Bill:Bill:000105"], acu, jira, store, clock)
    assert set(outcomes.values()) == {"created"}
    assert acu.gets == before_gets and len(acu.batched) == before  # nothing read again
    assert [assignee(jira, f"Bill:Bill:{n}") for n in ("000101", "000102", "000103")] == [
        "acct-kim", "acct-lee", "acct-kim"]


def test_an_order_shared_by_bills_on_many_pages_is_read_once_per_poll_run(store, clock):
    bills = [held_bill(f"{n:06d}") for n in range(1, 13)]
    acu = StampingAcumatica(clock, *bills, purchase_order("PO000045", "buyer.kim"))
    for doc in bills:
        acu.order_lines[doc.key] = [order("PO000045")]
    messages = poll(acu, store, clock, page_size=4)
    assert len(reads(acu, "bill_orders")) >= 3  # one per page
    assert reads(acu, "order_owners") == [[order("PO000045")]]
    assert all(Routing.from_json(m.routing).buyer == "buyer.kim" for m in messages)


def test_the_next_poll_reads_an_owner_again(store, clock):
    router_docs = StampingAcumatica(clock, held_bill("000101"), held_bill("000102"),
                                    purchase_order("PO000045", "buyer.kim"))
    for number in ("000101", "000102"):
        router_docs.order_lines[held_bill(number).key] = [order("PO000045")]
    first = PageRouter(router_docs, EXCEPTION_RULES).route([held_bill("000101").key])
    router_docs.put(purchase_order("PO000045", "buyer.lee"))  # the order changed hands
    second = PageRouter(router_docs, EXCEPTION_RULES).route([held_bill("000102").key])
    assert first[held_bill("000101").key].buyer == "buyer.kim"
    assert second[held_bill("000102").key].buyer == "buyer.lee"


def test_a_bill_is_routed_by_the_lines_it_has_when_it_becomes_an_exception(store, clock):
    acu = StampingAcumatica(clock, healthy_bill("000101"), purchase_order("PO000045", "buyer.kim"),
                            purchase_order("PO000046", "buyer.lee"))
    acu.order_lines[held_bill("000101").key] = [order("PO000045")]
    jira = FakeJira()
    assert poll(acu, store, clock) == []  # healthy: nothing read, nothing queued
    assert acu.batched == []
    clock.advance(600)
    acu.order_lines[held_bill("000101").key] = [order("PO000046")]  # the lines were corrected, then put on hold
    acu.put(replace(held_bill("000101"), last_modified=datetime(2026, 11, 2, tzinfo=timezone.utc)))
    work(poll(acu, store, clock), acu, jira, store, clock)
    assert assignee(jira, "Bill:Bill:000101") == "acct-lee"


def test_a_retried_message_reads_the_bill_again_instead_of_trusting_the_old_routing(store, clock):
    acu = StampingAcumatica(clock, held_bill("000101"), purchase_order("PO000045", "buyer.kim"),
                            purchase_order("PO000046", "buyer.lee"))
    acu.order_lines[held_bill("000101").key] = [order("PO000045")]
    (message,) = poll(acu, store, clock)
    acu.order_lines[held_bill("000101").key] = [order("PO000046")]  # changed before the retry
    jira = FakeJira()
    assert sync_document(message, context(acu, jira, store, clock), attempt=2) == "created"
    assert reads(acu, "referenced_orders") == [[held_bill("000101").key]]
    assert assignee(jira, "Bill:Bill:000101") == "acct-lee"


@pytest.mark.parametrize("refused", ["bill_orders", "order_owners"])
def test_a_refused_batched_read_still_creates_the_issue_by_the_vendor_table_and_audits_it(store, clock, refused):
    acu = StampingAcumatica(clock, held_bill("000101", vendor="V-LEE"), held_bill("000102"),
                            purchase_order("PO000045", "buyer.kim"))
    for number in ("000101", "000102"):
        acu.order_lines[held_bill(number).key] = [order("PO000045")]
    acu.fail_reads[refused] = AuthenticationError("Acumatica answered 403 to GET list by keys")
    jira = FakeJira()
    messages = poll(acu, store, clock)
    assert all(Routing.from_json(m.routing).unavailable for m in messages)
    reads_before = (acu.gets, len(acu.batched))
    assert set(work(messages, acu, jira, store, clock).values()) == {"created"}
    assert (acu.gets, len(acu.batched)) == reads_before  # a refusal is not asked again bill by bill
    assert assignee(jira, "Bill:Bill:000101") == "acct-lee"  # the vendor table
    assert assignee(jira, "Bill:Bill:000102") is None  # nobody else to route to: unassigned
    trail = store.audit_trail(held_bill("000102").key)
    (unavailable,) = [r for r in trail if r["event"] == "routing"]
    assert unavailable["outcome"] == "unavailable" and "403" in unavailable["reason"]
    assert [r["outcome"] for r in trail if r["event"] == "issue"] == ["created"]


def test_a_batched_read_that_may_pass_leaves_each_bill_to_the_worker(store, clock):
    acu = StampingAcumatica(clock, held_bill("000101"), purchase_order("PO000045", "buyer.kim"))
    acu.order_lines[held_bill("000101").key] = [order("PO000045")]
    acu.fail_reads["bill_orders"] = TransientError("Acumatica answered 500: Optimization cannot be performed")
    jira = FakeJira()
    (message,) = poll(acu, store, clock)
    assert message.routing is None and message.document is not None
    assert work([message], acu, jira, store, clock) == {"Bill:Bill:000101": "created"}
    assert reads(acu, "referenced_orders") == [[held_bill("000101").key]]  # read by key, as Acumatica advises
    assert assignee(jira, "Bill:Bill:000101") == "acct-kim"


@pytest.mark.parametrize("failing", ["referenced_orders", "get PurchaseOrder"])
def test_the_workers_own_read_failing_or_refused_still_creates_the_issue(store, clock, failing):
    acu = StampingAcumatica(clock, held_bill("000101"), purchase_order("PO000045", "buyer.kim"))
    acu.order_lines[held_bill("000101").key] = [order("PO000045")]
    acu.fail_reads[failing] = (TransientError("timed out") if failing == "referenced_orders"
                               else AuthenticationError("Acumatica answered 403 to GET PurchaseOrder"))
    jira = FakeJira()
    message = WorkMessage(kind="sync", external_id="Bill:Bill:000101", dedupe_id="d", correlation_id="c")
    assert sync_document(message, context(acu, jira, store, clock)) == "created"
    assert assignee(jira, "Bill:Bill:000101") is None
    (unavailable,) = [r for r in store.audit_trail(held_bill("000101").key) if r["event"] == "routing"]
    assert ("timed out" if failing == "referenced_orders" else "403") in unavailable["reason"]


def test_carried_routing_that_is_not_routing_is_read_again(store, clock):
    acu = StampingAcumatica(clock, held_bill("000101"), purchase_order("PO000045", "buyer.kim"))
    acu.order_lines[held_bill("000101").key] = [order("PO000045")]
    (message,) = poll(acu, store, clock)
    forged = replace(message, routing={"orders": ["Bill:Bill:000999"], "buyer": "buyer.lee"})
    jira = FakeJira()
    sync_document(forged, context(acu, jira, store, clock))
    assert assignee(jira, "Bill:Bill:000101") == "acct-kim"


def test_routing_is_carried_only_with_a_fresh_document(store, clock):
    acu = StampingAcumatica(clock, held_bill("000101"), purchase_order("PO000045", "buyer.kim"))
    acu.order_lines[held_bill("000101").key] = [order("PO000045")]
    (message,) = poll(acu, store, clock)
    clock.advance(timedelta(minutes=10).total_seconds())  # older than WorkFreshnessSeconds
    sync_document(message, context(acu, FakeJira(), store, clock))
    assert reads(acu, "referenced_orders") == [[held_bill("000101").key]]
