"""The client against the sandbox: the whole exception and return flows, paging, and faults."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta, timezone

import pytest

from connector.errors import ConfigurationError, PermanentError, UncertainOutcome, ValidationError
from connector.model import DocumentKey
from connector_local.acumatica_sandbox import AcumaticaSandbox
from tests.fakes import MemorySecret

EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)


def uid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def id_hash(record_id: str) -> str:
    return hashlib.sha256(record_id.encode()).hexdigest()


def test_changed_pages_reads_only_changed_documents_page_by_page(sandbox, client):
    old = (datetime.now(timezone.utc) - timedelta(days=10)).isoformat(timespec="milliseconds")
    sandbox.add_document("Bill", LastModifiedDateTime=old)
    fresh = [sandbox.add_document("Bill")["ReferenceNbr"] for _ in range(5)]

    pages = list(client.changed_pages("Bill", datetime.now(timezone.utc) - timedelta(days=1), page_size=4))

    assert [len(p.documents) for p in pages] == [4, 1]
    assert [(p.next_skip, p.is_last) for p in pages] == [(2, False), (5, True)]  # each page re-reads half a page
    assert sorted(d.key.number for p in pages for d in p.documents) == sorted(fresh)
    assert all(d.status == "On Hold" and d.last_modified.tzinfo for p in pages for d in p.documents)


def test_records_moving_between_pages_are_not_yielded_twice_and_an_overlapping_poll_catches_the_rest(
        sandbox, client):
    for n in range(1, 7):
        sandbox.add_document("Bill", id=uid(n))
    first_hash = min(id_hash(uid(n)) for n in range(1, 7))
    newcomer = next(uid(n) for n in range(100, 10_000) if id_hash(uid(n)) < first_hash)

    seen = []
    for index, page in enumerate(client.changed_pages("Bill", EPOCH, page_size=3)):
        seen.extend(d.key.number for d in page.documents)
        if index == 0:
            sandbox.add_document("Bill", id=newcomer)  # sorts first: every later record shifts by one
    second_poll = [d.key.number for p in client.changed_pages("Bill", EPOCH, page_size=3) for d in p.documents]

    assert len(seen) == len(set(seen)) == 6
    assert set(seen) | set(second_poll) == {d["ReferenceNbr"] for d in sandbox.documents("Bill")}


def test_unbalanced_bill_refusal_carries_the_field_error(sandbox, client):
    sandbox.add_document("Bill", Amount=100, Balance=80)
    key = DocumentKey("Bill", "Bill", "000001")

    with pytest.raises(ValidationError) as refused:
        client.set_hold(key, False)

    assert refused.value.field_errors == {"Amount": "The document is out of balance."}
    assert client.get(key).status == "On Hold"


def test_hold_approve_release_flow_releases_exactly_once(sandbox, client):
    sandbox.add_document("Bill", requires_approval=True)
    key = DocumentKey("Bill", "Bill", "000001")

    assert client.set_hold(key, False).status == "Pending Approval"
    assert "Approve" in client.workflow_actions("Bill")
    assert client.invoke_action(key, "Approve").status == "Balanced"
    released = client.invoke_action(key, "ReleaseBill")
    with pytest.raises(PermanentError, match="status is 'Open'"):
        client.invoke_action(key, "ReleaseBill")

    assert (released.status, released.hold) == ("Open", False)
    completed = [entry for entry in sandbox.action_log if entry[2] == "ReleaseBill" and entry[3] == "completed"]
    assert completed == [("Bill", ("Bill", "000001"), "ReleaseBill", "completed")]


def test_purchase_order_and_check_flows(sandbox, client):
    sandbox.add_document("PurchaseOrder", requires_approval=True, Owner="EP00000001")
    sandbox.add_document("Check")
    order, check = DocumentKey("PurchaseOrder", "Normal", "PO000001"), DocumentKey("Check", "Payment", "000001")

    client.set_hold(order, False)
    approved = client.invoke_action(order, "Approve")
    client.set_hold(check, False)
    released = client.invoke_action(check, "ReleaseCheck")

    assert (approved.status, approved.owner) == ("Open", "EP00000001")
    assert released.status == "Closed"


def test_key_containing_a_slash_is_read_through_a_key_filter(sandbox, client):
    sandbox.add_document("Bill", ReferenceNbr="AB/12")

    document = client.get(DocumentKey("Bill", "Bill", "AB/12"))

    assert document is not None and document.key.number == "AB/12"
    assert client.get(DocumentKey("Bill", "Bill", "AB/13")) is None


def test_get_by_id_and_missing_document(sandbox, client):
    record = sandbox.add_document("Check")

    assert client.get_by_id("Check", record["id"]).key.number == record["ReferenceNbr"]
    assert client.get(DocumentKey("Check", "Payment", "999999")) is None


def test_wrong_endpoint_version_against_the_instance_is_one_configuration_error(sandbox, make_client):
    client = make_client(endpoint_version="22.200.001")

    with pytest.raises(ConfigurationError, match="serves Default versions 24.200.001"):
        client.get(DocumentKey("Bill", "Bill", "000001"))
    with pytest.raises(ConfigurationError):
        client.workflow_actions("Bill")
    assert [entry.path for entry in sandbox.requests_log] == ["/entity"]


def test_throttling_is_retried_honouring_retry_after(sandbox, client):
    sandbox.add_document("Bill")
    client.check_endpoint_version()
    sandbox.fail_next(1, status=429, retry_after=1, path_contains="/Bill/")

    started = time.monotonic()
    document = client.get(DocumentKey("Bill", "Bill", "000001"))

    assert document is not None and time.monotonic() - started >= 1.0
    assert [e.status for e in sandbox.requests_log if "/Bill/" in e.path][-2:] == [429, 200]


def test_server_errors_and_resets_on_reads_are_retried(sandbox, client):
    sandbox.add_document("Bill")
    sandbox.fail_next(1, status=503, retry_after=None, path_contains="/Bill")
    sandbox.reset_next(1, path_contains="/Bill")

    pages = list(client.changed_pages("Bill", EPOCH))

    assert len(pages[0].documents) == 1


def test_reset_during_an_action_post_is_uncertain_and_not_resent(sandbox, client):
    sandbox.add_document("Bill", Hold=False)
    key = DocumentKey("Bill", "Bill", "000001")
    sandbox.reset_next(1, path_contains="/ReleaseBill")

    with pytest.raises(UncertainOutcome):
        client.invoke_action(key, "ReleaseBill")

    assert [e.method for e in sandbox.requests_log if e.path.endswith("/ReleaseBill")] == ["POST"]


def test_post_timeout_is_uncertain_while_the_action_still_happens_once(sandbox, make_client):
    sandbox.add_document("Bill", Hold=False)
    key = DocumentKey("Bill", "Bill", "000001")
    client = make_client(request_timeout_seconds=0.3)
    client.check_endpoint_version()
    client.get(key)
    sandbox.set_latency(0.6)

    with pytest.raises(UncertainOutcome):
        client.invoke_action(key, "ReleaseBill")
    time.sleep(0.6)
    sandbox.set_latency(0)

    assert sandbox.action_log == [("Bill", ("Bill", "000001"), "ReleaseBill", "completed")]
    assert client.get(key).status == "Open"


def test_slow_action_polling_gives_up_uncertain(make_client, sleeps):
    with AcumaticaSandbox(action_polls=100) as slow:
        slow.add_document("Bill", Hold=False)
        secret = MemorySecret({"client_id": slow.client_id, "client_secret": slow.client_secret,
                               "refresh_token": slow.issue_refresh_token()})
        client = make_client(base_url=slow.url, action_timeout_seconds=3, secrets=secret)

        with pytest.raises(UncertainOutcome, match="still running"):
            client.invoke_action(DocumentKey("Bill", "Bill", "000001"), "ReleaseBill")

    assert sum(sleeps) >= 3 and len(sleeps) < 10



def test_a_failed_action_is_reported_from_its_first_status_answer_not_retried(sandbox, client):
    sandbox.add_document("Bill", Hold=False)
    key = DocumentKey("Bill", "Bill", "000001")
    client.invoke_action(key, "ReleaseBill")
    polls_before = sum(1 for r in sandbox.requests_log if "/status/" in r.path)

    with pytest.raises(PermanentError):
        client.invoke_action(key, "ReleaseBill")

    failed_polls = sum(1 for r in sandbox.requests_log if "/status/" in r.path) - polls_before
    # one 202 per configured poll, then the 500 once: it is the action's verdict, retrying only delays the answer
    assert failed_polls == sandbox.action_polls + 1


def test_paging_keeps_one_page_of_ids_and_drops_a_record_repeated_by_the_next_page(client):
    from datetime import datetime, timezone

    from connector.ports import Page

    pages = iter([
        [{"id": "a", "Type": {"value": "Bill"}, "ReferenceNbr": {"value": "1"}},
         {"id": "b", "Type": {"value": "Bill"}, "ReferenceNbr": {"value": "2"}}],
        [{"id": "b", "Type": {"value": "Bill"}, "ReferenceNbr": {"value": "2"}},
         {"id": "c", "Type": {"value": "Bill"}, "ReferenceNbr": {"value": "3"}}],
        [{"id": "a", "Type": {"value": "Bill"}, "ReferenceNbr": {"value": "1"}}],
    ])

    class Answer:
        status_code = 200
        headers: dict[str, str] = {}

        def __init__(self, body):
            self.body = body

        def json(self):
            return self.body

    client._request = lambda method, url, **kwargs: Answer(next(pages))
    got: list[Page] = list(client.changed_pages("Bill", datetime(2026, 1, 1, tzinfo=timezone.utc), page_size=2))
    assert [[d.id for d in page.documents] for page in got] == [["a", "b"], ["c"], ["a"]]
    assert [page.next_skip for page in got] == [1, 2, 3]  # every page but the last re-reads one record


def test_a_bills_lines_name_the_purchase_orders_it_bills_once_each(sandbox, client):
    sandbox.add_document("Bill", ReferenceNbr="000500", Details=[
        {"POOrderType": "Normal", "POOrderNbr": "PO000045", "POLine": 1, "Amount": 10},
        {"InventoryID": "FREIGHT", "Amount": 2},
        {"POOrderType": "Normal", "POOrderNbr": "PO000045", "POLine": 2, "Amount": 5},
        {"POOrderType": "Drop-Ship", "POOrderNbr": "PO000046", "POLine": 1, "Amount": 1}])
    assert client.referenced_orders(DocumentKey("Bill", "Bill", "000500")) == [
        DocumentKey("PurchaseOrder", "Normal", "PO000045"), DocumentKey("PurchaseOrder", "Drop-Ship", "PO000046")]
    (request,) = [e for e in sandbox.requests_log if e.path.endswith("/Bill/Bill/000500")]
    assert request.query["$expand"] == "Details"
    assert set(request.query["$select"].split(",")) == {"Type", "ReferenceNbr", "Details/POOrderType",
                                                        "Details/POOrderNbr"}
    assert set(request.response["Details"][0]) == {"id", "rowNumber", "note", "custom", "POOrderType", "POOrderNbr"}
    assert client.referenced_orders(DocumentKey("Bill", "Bill", "404404")) == []
    assert client.referenced_orders(DocumentKey("PurchaseOrder", "Normal", "PO000045")) == []


def test_sandbox_refuses_detail_fields_without_expand(sandbox, session, client):
    sandbox.add_document("Bill", ReferenceNbr="000501")
    client.get(DocumentKey("Bill", "Bill", "000501"))  # a token in the session's secret
    token = sandbox.issue_access_token()
    base = f"{client.endpoint_url}/Bill/Bill/000501"
    headers = {"Authorization": f"Bearer {token}"}
    assert session.get(f"{base}?$select=Details/POOrderNbr", headers=headers, timeout=5).status_code == 400
    assert session.get(f"{base}?$expand=Applications", headers=headers, timeout=5).status_code == 400
    lines = session.get(f"{base}?$expand=Details", headers=headers, timeout=5).json()["Details"]
    assert lines == []
