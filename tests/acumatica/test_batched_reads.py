"""Batched key reads through the real client against the sandbox: many documents per list request, ``$filter`` of
their numbers joined by ``or``, every URL within IIS's default query-string limit as sent, and absence only ever
concluded from a complete 200 answer."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector.acumatica import URL_LIMIT
from connector.errors import AuthenticationError, NotFoundError, TransientError
from connector.model import DocumentKey
from connector_local.acumatica_sandbox import MAX_QUERY_STRING


def bill(number: str) -> DocumentKey:
    return DocumentKey("Bill", "Bill", number)


def order(number: str, kind: str = "Normal") -> DocumentKey:
    return DocumentKey("PurchaseOrder", kind, number)


def test_the_lines_of_many_bills_come_in_one_request(sandbox, client):
    sandbox.add_document("Bill", ReferenceNbr="000601", Details=[
        {"POOrderType": "Normal", "POOrderNbr": "PO000045", "POLine": 1, "Amount": 10},
        {"InventoryID": "FREIGHT", "Amount": 2},
        {"POOrderType": "Normal", "POOrderNbr": "PO000045", "POLine": 2, "Amount": 5}])
    sandbox.add_document("Bill", ReferenceNbr="000602", Details=[
        {"POOrderType": "Drop-Ship", "POOrderNbr": "PO000046", "POLine": 1, "Amount": 1}])
    sandbox.add_document("Bill", ReferenceNbr="000603")
    sandbox.add_document("Bill", Type="Debit Adj.", ReferenceNbr="000604", Details=[
        {"POOrderType": "Normal", "POOrderNbr": "PO000099", "POLine": 1, "Amount": 1}])
    client.check_endpoint_version()
    del sandbox.requests_log[:]

    lines = client.bill_orders([bill("000601"), bill("000602"), bill("000603"), bill("000604"), bill("404404")])

    assert lines == {bill("000601"): [order("PO000045")], bill("000602"): [order("PO000046", "Drop-Ship")],
                     bill("000603"): []}  # the Debit Adj. 000604 is another document; 404404 does not exist
    (request,) = [e for e in sandbox.requests_log if e.method == "GET"]
    assert request.path.endswith("/Bill") and request.status == 200
    assert request.query["$expand"] == "Details"
    assert set(request.query["$select"].split(",")) == {"Type", "ReferenceNbr", "Details/POOrderType",
                                                        "Details/POOrderNbr"}
    assert request.query["$filter"].count(" or ") == 4 and "$top" not in request.query


def test_the_owners_of_shared_purchase_orders_are_read_once_per_order(sandbox, client):
    sandbox.add_document("PurchaseOrder", OrderNbr="PO000045", Owner="buyer.kim")
    sandbox.add_document("PurchaseOrder", OrderNbr="PO000046")
    client.check_endpoint_version()
    del sandbox.requests_log[:]
    owners = client.order_owners([order("PO000045"), order("PO000046"), order("PO000045"), order("PO-GONE")])
    assert owners == {order("PO000045"): "buyer.kim", order("PO000046"): None}
    (request,) = [e for e in sandbox.requests_log if e.method == "GET"]
    assert request.query["$filter"] == "OrderNbr eq 'PO000045' or OrderNbr eq 'PO000046' or OrderNbr eq 'PO-GONE'"
    assert set(request.query["$select"].split(",")) == {"Type", "OrderNbr", "Owner"}


def test_existing_reads_only_the_keys_and_ignores_another_type_with_the_same_number(sandbox, client):
    sandbox.add_document("Check", Type="Payment", ReferenceNbr="000701")
    sandbox.add_document("Check", Type="Voided Payment", ReferenceNbr="000702")
    sandbox.add_document("Bill", ReferenceNbr="000703")
    wanted = [DocumentKey("Check", "Payment", "000701"), DocumentKey("Check", "Payment", "000702"), bill("000703"),
              bill("000704")]
    assert client.existing(wanted) == {DocumentKey("Check", "Payment", "000701"), bill("000703")}
    lists = [e for e in sandbox.requests_log if e.method == "GET" and "$filter" in e.query]
    assert [e.path.rsplit("/", 1)[1] for e in lists] == ["Check", "Bill"]  # one request per entity
    assert all(set(e.query["$select"].split(",")) == {"Type", "ReferenceNbr"} for e in lists)


def test_hundreds_of_bills_are_read_in_chunks_each_within_the_limit_as_sent(sandbox, client):
    numbers = [f"{n:06d}" for n in range(1, 301)]
    for number in numbers:
        sandbox.add_document("Bill", ReferenceNbr=number)
    client.check_endpoint_version()
    del sandbox.requests_log[:]
    assert client.existing([bill(n) for n in numbers]) == {bill(n) for n in numbers}
    sent = [e for e in sandbox.requests_log if e.method == "GET"]
    assert all(e.status == 200 for e in sent)
    assert all(len(e.path) + 1 + len(e.raw_query) + len(sandbox.url) <= URL_LIMIT for e in sent)
    # 300 numbers of six digits: about 55 to a request, so six requests (not 300, and not one refused one)
    assert len(sent) == 6


def test_a_query_string_over_the_iis_limit_is_refused_and_proves_no_absence(sandbox, client, monkeypatch):
    sandbox.add_document("Bill", ReferenceNbr="000801")
    numbers = ["000801"] + [f"{n:06d}" for n in range(900000, 900100)]
    monkeypatch.setattr("connector.acumatica.URL_LIMIT", 8000)  # a client that ignored the limit
    with pytest.raises(NotFoundError):
        client.existing([bill(n) for n in numbers])
    refused = sandbox.requests_log[-1]
    assert refused.status == 404 and len(refused.raw_query) > MAX_QUERY_STRING
    assert "404.15" in refused.response["message"]


def test_the_sandbox_refuses_urls_as_iis_and_http_sys_do(sandbox, client):
    client.check_endpoint_version()
    base = f"{client.endpoint_url}/Bill"
    assert requests.get(f"{base}?$filter={'x' * (MAX_QUERY_STRING + 1)}", timeout=5).status_code == 404
    assert requests.get(f"{base}/{'x' * 4100}", timeout=5).status_code == 404
    assert requests.get(f"{base}?$filter={'x' * 17000}", timeout=5).status_code == 414


def test_a_refused_or_failing_batched_read_raises(sandbox, client):
    sandbox.add_document("PurchaseOrder", OrderNbr="PO000045", Owner="buyer.kim")
    sandbox.forbid("PurchaseOrder")
    with pytest.raises(AuthenticationError):
        client.order_owners([order("PO000045")])
    sandbox.forbid("PurchaseOrder", False)
    sandbox.fail_next(5, status=500, retry_after=None, path_contains="/PurchaseOrder")
    with pytest.raises(TransientError):
        client.existing([order("PO000045")])
    sandbox.clear_faults()
    assert client.existing([order("PO000045")]) == {order("PO000045")}


def test_an_expanded_list_can_fail_on_the_query_optimizer_while_a_read_by_key_does_not(sandbox, client):
    sandbox.add_document("Bill", ReferenceNbr="000901", Details=[
        {"POOrderType": "Normal", "POOrderNbr": "PO000045", "POLine": 1, "Amount": 10}])
    sandbox.fail_expanded_lists()
    with pytest.raises(TransientError):
        client.bill_orders([bill("000901")])
    assert client.referenced_orders(bill("000901")) == [order("PO000045")]


reference_numbers = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1,
                            max_size=15)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(numbers=st.lists(reference_numbers, max_size=400))
def test_every_chunked_url_stays_within_the_limit_and_every_number_is_asked_once(client, numbers):
    urls = client.key_filter_urls("Bill", numbers, ("Type", "ReferenceNbr", "Details/POOrderType"), expand="Details")
    asked = []
    for url in urls:
        query = urlsplit(url).query
        assert len(url) <= URL_LIMIT and len(query) <= MAX_QUERY_STRING
        condition = unquote(query.split("&")[0].removeprefix("$filter="))
        asked += [value.replace("''", "'") for value in re.findall(r"ReferenceNbr eq '((?:[^']|'')*)'", condition)]
    assert asked == list(dict.fromkeys(numbers))  # every number once, in order, none lost between chunks


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(numbers=st.lists(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-_ '", min_size=1, max_size=15)
                        .map(str.strip).filter(bool), min_size=1, max_size=150, unique=True))
def test_whatever_the_numbers_the_sandbox_accepts_every_chunk_and_finds_every_document(sandbox, client, numbers):
    for existing in sandbox.documents("Bill"):
        sandbox.delete_document("Bill", (existing["Type"], existing["ReferenceNbr"]))
    present = numbers[::2]
    for number in present:
        sandbox.add_document("Bill", ReferenceNbr=number)
    before = len(sandbox.requests_log)
    assert client.existing([bill(n) for n in numbers]) == {bill(n) for n in present}
    assert all(e.status == 200 for e in sandbox.requests_log[before:])
