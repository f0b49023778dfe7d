"""The client's exact requests (URLs, encoding, bodies, headers) and its error mapping, against ``responses``."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest
import requests
import responses
from responses import matchers

from connector.acumatica import AcumaticaClient, RequestLimiter, acumatica_token_obtainer
from connector.errors import (
    ActionRefused,
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermanentError,
    TransientError,
    UncertainOutcome,
    ValidationError,
)
from connector.http import make_session
from connector.model import DocumentKey
from connector.tokens import RotatingTokens
from tests.fakes import MemoryLock, MemorySecret

BASE = "https://acme.example.com/site"
API = f"{BASE}/entity/Default/24.200.001"
BILL = DocumentKey("Bill", "Bill", "000123")
BILL_SELECT = "Type,ReferenceNbr,Status,Hold,Vendor,Amount,CurrencyID,LastModifiedDateTime,Description,Balance,Date," \
              "DueDate,VendorRef,TaxTotal"
ENDPOINTS = {"version": {"acumaticaBuildVersion": "24.209.0010"}, "endpoints": [
    {"name": "Default", "version": "23.200.001", "href": "/site/entity/Default/23.200.001/"},
    {"name": "eCommerce", "version": "24.200.001", "href": "/site/entity/eCommerce/24.200.001/"},
    {"name": "Default", "version": "24.200.001", "href": "/site/entity/Default/24.200.001/"},
]}


def bill(number: str = "000123", status: str = "On Hold", hold: bool = True, **extra) -> dict:
    record = {"id": f"0f8c2a4e-0000-4000-8000-{int(number.replace('/', '0')):012d}", "rowNumber": 1, "note": {},
              "Type": {"value": "Bill"}, "ReferenceNbr": {"value": number}, "Status": {"value": status},
              "Hold": {"value": hold}, "Vendor": {"value": "V01"}, "Amount": {"value": 100.5},
              "Balance": {"value": 100.5}, "CurrencyID": {"value": "USD"},
              "LastModifiedDateTime": {"value": "2024-03-01T10:00:00.123+00:00"}, "Description": {}}
    record.update(extra)
    return record


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{BASE}/entity", json=ENDPOINTS)
        yield rsps


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def secret() -> MemorySecret:
    return MemorySecret({"client_id": "GUID@Company", "client_secret": "shh", "refresh_token": "r-1",
                         "access_token": "a-1", "expires_at": time.time() + 3600})


@pytest.fixture
def client(secret: MemorySecret, sleeps: list[float]) -> AcumaticaClient:
    session = make_session(total=0)
    tokens = RotatingTokens(name="acumatica", secrets=secret, lock=MemoryLock(),
                            obtain=acumatica_token_obtainer(BASE, session))
    return AcumaticaClient(base_url=BASE + "/", endpoint_version="24.200.001", tokens=tokens, session=session,
                           page_size=2, action_timeout_seconds=10, sleep=sleeps.append)


def calls_to(mocked: responses.RequestsMock, fragment: str) -> list:
    return [call for call in mocked.calls if fragment in call.request.url]


def test_endpoint_version_is_checked_once_without_credentials(mocked, client):
    mocked.get(f"{API}/Bill/Bill/000123", json=bill())

    client.get(BILL)
    client.get(BILL)

    version_calls = [c for c in mocked.calls if c.request.url == f"{BASE}/entity"]
    assert len(version_calls) == 1
    assert "Authorization" not in version_calls[0].request.headers


def test_wrong_endpoint_version_raises_one_configuration_error_naming_served_versions(mocked, secret, sleeps):
    session = make_session(total=0)
    tokens = RotatingTokens(name="acumatica", secrets=secret, lock=MemoryLock(),
                            obtain=acumatica_token_obtainer(BASE, session))
    client = AcumaticaClient(base_url=BASE, endpoint_version="25.200.001", tokens=tokens, session=session)

    with pytest.raises(ConfigurationError) as first:
        client.get(BILL)
    with pytest.raises(ConfigurationError) as second:
        list(client.changed_pages("Bill", datetime(2024, 1, 1, tzinfo=timezone.utc)))

    message = str(first.value)
    assert "Default/25.200.001" in message and "23.200.001, 24.200.001" in message
    assert str(second.value) == message
    assert [c.request.url for c in mocked.calls] == [f"{BASE}/entity"]


def test_changed_pages_sends_encoded_filter_select_and_paging_and_drops_repeats(mocked, client):
    since = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)
    first = [bill("000001"), bill("000002")]
    second = [bill("000002")]  # the page re-read margin (one record of a two-record page) brings it back
    mocked.get(f"{API}/Bill", match=[matchers.query_param_matcher({"$skip": "0"}, strict_match=False)], json=first)
    mocked.get(f"{API}/Bill", match=[matchers.query_param_matcher({"$skip": "1"}, strict_match=False)], json=second)

    pages = list(client.changed_pages("Bill", since))

    urls = [c.request.url for c in calls_to(mocked, "/Bill?")]
    expected_filter = "$filter=LastModifiedDateTime%20ge%20datetimeoffset'2024-03-01T09%3A00%3A00.000%2B00%3A00'"
    assert urls == [f"{API}/Bill?{expected_filter}&$select={BILL_SELECT}&$top=2&$skip=0",
                    f"{API}/Bill?{expected_filter}&$select={BILL_SELECT}&$top=2&$skip=1"]
    headers = calls_to(mocked, "/Bill?")[0].request.headers
    assert headers["Authorization"] == "Bearer a-1" and headers["Accept"] == "application/json"
    assert [[d.key.number for d in p.documents] for p in pages] == [["000001", "000002"], []]
    assert [(p.next_skip, p.is_last) for p in pages] == [(1, False), (2, True)]


def test_changed_pages_is_lazy_one_call_per_page(mocked, client):
    mocked.get(f"{API}/Bill", json=[bill("000001"), bill("000002")])

    pages = client.changed_pages("Bill", datetime(2024, 1, 1, tzinfo=timezone.utc), skip=40)
    first = next(pages)

    assert len(calls_to(mocked, "/Bill?")) == 1
    assert "$skip=40" in calls_to(mocked, "/Bill?")[0].request.url
    assert first.next_skip == 41  # one record of the two re-read by the next page


def test_get_reads_by_keys_in_the_url_and_unwraps(mocked, client):
    mocked.get(f"{API}/Bill/Bill/000123?$select={BILL_SELECT}", json=bill(Amount={"value": 90, "error": "odd"}))

    document = client.get(BILL)

    assert document is not None
    assert (document.key, document.status, document.hold, str(document.amount)) == (BILL, "On Hold", True, "90")
    assert document.errors == {"Amount": "odd"}
    assert document.description == ""


def test_get_returns_none_on_404(mocked, client):
    mocked.get(f"{API}/Bill/Bill/000123", status=404, json={"message": "No entity satisfies the condition."})

    assert client.get(BILL) is None


def test_key_with_slash_is_found_by_key_filter_not_in_the_url(mocked, client):
    mocked.get(f"{API}/Bill", json=[bill("12/34")])

    document = client.get(DocumentKey("Bill", "Bill", "12/34"))

    assert document is not None and document.key.number == "12/34"
    url = mocked.calls[-1].request.url
    assert url.startswith(f"{API}/Bill?$filter=Type%20eq%20'Bill'%20and%20ReferenceNbr%20eq%20'12%2F34'&$select=")


def test_get_by_id_reads_by_record_id(mocked, client):
    record_id = "0f8c2a4e-0000-4000-8000-000000000123"
    mocked.get(f"{API}/Bill/{record_id}?$select={BILL_SELECT}", json=bill())

    assert client.get_by_id("Bill", record_id).id == record_id
    with pytest.raises(ValueError):
        client.get_by_id("Bill", "../Check")


def test_set_hold_puts_wrapped_keys_and_hold_as_update_only_then_rereads(mocked, client):
    mocked.put(f"{API}/Bill?$select={BILL_SELECT}", json=bill(status="Balanced", hold=False))
    mocked.get(f"{API}/Bill/Bill/000123", json=bill(status="Balanced", hold=False))

    document = client.set_hold(BILL, False)

    request = calls_to(mocked, "/Bill?")[0].request
    assert request.method == "PUT"
    assert json.loads(request.body) == {"Type": {"value": "Bill"}, "ReferenceNbr": {"value": "000123"},
                                        "Hold": {"value": False}}
    assert request.headers["If-Match"] == "*"
    assert request.headers["Content-Type"] == "application/json"
    assert mocked.calls[-1].request.method == "GET"
    assert (document.status, document.hold) == ("Balanced", False)


def test_set_hold_reports_what_acumatica_kept_not_what_its_put_answered(mocked, client):
    """A build that ignores API writes to Hold may still answer the PUT with the value sent: the re-read decides."""
    mocked.put(f"{API}/Bill?$select={BILL_SELECT}", json=bill(status="On Hold", hold=False))
    mocked.get(f"{API}/Bill/Bill/000123", json=bill(status="On Hold", hold=True))

    document = client.set_hold(BILL, False)

    assert (document.status, document.hold) == ("On Hold", True)


def test_set_hold_refusal_surfaces_field_errors(mocked, client):
    mocked.put(f"{API}/Bill", status=422, json=bill(Amount={"value": 100, "error": "The document is out of balance."}))

    with pytest.raises(ValidationError) as refused:
        client.set_hold(BILL, False)

    assert refused.value.field_errors == {"Amount": "The document is out of balance."}
    assert "out of balance" in str(refused.value)


def test_set_hold_on_missing_document_is_not_found(mocked, client):
    mocked.put(f"{API}/Bill", status=412, json={"message": "The entity to update does not exist."})

    with pytest.raises(NotFoundError):
        client.set_hold(BILL, False)


def test_action_posts_keys_follows_relative_location_with_backoff_and_rereads(mocked, client, sleeps):
    status_path = "/site/entity/Default/24.200.001/Bill/ReleaseBill/status/6d1b2f6e-1111-4222-8333-944455556666"
    mocked.post(f"{API}/Bill/ReleaseBill", status=202, headers={"Location": status_path})
    mocked.get(f"https://acme.example.com{status_path}", status=202, headers={"Location": status_path})
    mocked.get(f"https://acme.example.com{status_path}", status=202, headers={"Location": status_path})
    mocked.get(f"https://acme.example.com{status_path}", status=204)
    mocked.get(f"{API}/Bill/Bill/000123", json=bill(status="Open", hold=False))

    document = client.invoke_action(BILL, "ReleaseBill")

    post = calls_to(mocked, "/ReleaseBill")[0].request
    assert post.method == "POST"
    assert json.loads(post.body) == {"entity": {"Type": {"value": "Bill"}, "ReferenceNbr": {"value": "000123"}},
                                     "parameters": {}}
    assert len(calls_to(mocked, "/status/")) == 3
    assert sleeps == [0.5, 1.0, 2.0]
    assert document.status == "Open"


def test_workflow_action_uses_the_same_route_and_follows_an_absolute_location(mocked, client):
    status_url = f"{API}/PurchaseOrder/Approve/status/6d1b2f6e-1111-4222-8333-944455556666"
    mocked.post(f"{API}/PurchaseOrder/Approve", status=202, headers={"Location": status_url})
    mocked.get(status_url, status=204)
    mocked.get(f"{API}/PurchaseOrder/Normal/PO000045", json={
        "id": "0f8c2a4e-0000-4000-8000-000000000045", "Type": {"value": "Normal"}, "OrderNbr": {"value": "PO000045"},
        "Status": {"value": "Open"}, "Hold": {"value": False}, "VendorID": {"value": "V01"},
        "OrderTotal": {"value": 10}, "ControlTotal": {"value": 10}, "CurrencyID": {"value": "USD"}})

    document = client.invoke_action(DocumentKey("PurchaseOrder", "Normal", "PO000045"), "Approve")

    assert json.loads(calls_to(mocked, "/Approve")[0].request.body)["entity"] == {
        "Type": {"value": "Normal"}, "OrderNbr": {"value": "PO000045"}}
    assert document.status == "Open"


def test_action_that_completes_at_once_is_reread(mocked, client):
    mocked.post(f"{API}/Check/ReleaseCheck", status=204)
    mocked.get(f"{API}/Check/Payment/000078", json={
        "id": "0f8c2a4e-0000-4000-8000-000000000078", "Type": {"value": "Payment"},
        "ReferenceNbr": {"value": "000078"}, "Status": {"value": "Closed"}, "Hold": {"value": False}})

    assert client.invoke_action(DocumentKey("Check", "Payment", "000078"), "ReleaseCheck").status == "Closed"


def test_action_failure_while_polling_raises_with_acumatica_exception_message(mocked, client):
    status_url = f"{API}/Bill/ReleaseBill/status/6d1b2f6e-1111-4222-8333-944455556666"
    mocked.post(f"{API}/Bill/ReleaseBill", status=202, headers={"Location": status_url})
    mocked.get(status_url, status=500, json={"message": "An error has occurred.",
                                             "exceptionMessage": "Document is On Hold and cannot be released."})

    with pytest.raises(PermanentError, match="Document is On Hold and cannot be released"):
        client.invoke_action(BILL, "ReleaseBill")
    assert not calls_to(mocked, "/Bill/Bill/")


def test_action_validation_failure_while_polling_is_a_validation_error(mocked, client):
    status_url = f"{API}/Bill/ReleaseBill/status/6d1b2f6e-1111-4222-8333-944455556666"
    mocked.post(f"{API}/Bill/ReleaseBill", status=202, headers={"Location": status_url})
    mocked.get(status_url, status=422, json=bill(Vendor={"value": "V01", "error": "Vendor is inactive."}))

    with pytest.raises(ValidationError) as refused:
        client.invoke_action(BILL, "ReleaseBill")
    assert refused.value.field_errors == {"Vendor": "Vendor is inactive."}


def test_polling_is_bounded_and_ends_uncertain(mocked, client, sleeps):
    status_url = f"{API}/Bill/ReleaseBill/status/6d1b2f6e-1111-4222-8333-944455556666"
    mocked.post(f"{API}/Bill/ReleaseBill", status=202, headers={"Location": status_url})
    mocked.get(status_url, status=202, headers={"Location": status_url})

    with pytest.raises(UncertainOutcome, match="still running"):
        client.invoke_action(BILL, "ReleaseBill")
    assert 10 <= sum(sleeps) < 20 and max(sleeps) <= 5.0
    assert len(calls_to(mocked, "/ReleaseBill")) == 1 + len(sleeps)


def test_status_location_on_another_host_is_not_followed(mocked, client):
    mocked.post(f"{API}/Bill/ReleaseBill", status=202, headers={"Location": "https://evil.example.net/status/1"})

    with pytest.raises(PermanentError, match="another host"):
        client.invoke_action(BILL, "ReleaseBill")


def test_post_timeout_is_uncertain_and_never_resent(mocked, client):
    mocked.post(f"{API}/Bill/ReleaseBill", body=requests.exceptions.ReadTimeout("read timed out"))

    with pytest.raises(UncertainOutcome):
        client.invoke_action(BILL, "ReleaseBill")
    assert len(calls_to(mocked, "/ReleaseBill")) == 1


def test_an_action_over_the_licence_request_limit_is_not_now_not_a_refusal(mocked, client):
    mocked.post(f"{API}/Bill/ReleaseBill", status=429, headers={"Retry-After": "30"}, json={
        "message": "An error has occurred.", "exceptionType": "PX.Data.PXException",
        "exceptionMessage": "The number of API requests per minute has exceeded the limit of the license."})

    with pytest.raises(TransientError) as refused:
        client.invoke_action(BILL, "ReleaseBill")
    assert not isinstance(refused.value, (ActionRefused, UncertainOutcome))  # not run: retried, never told as refused
    assert refused.value.retry_after == 30
    assert len(calls_to(mocked, "/ReleaseBill")) == 1


def test_unknown_action_is_not_found(mocked, client):
    mocked.post(f"{API}/Bill/Approve", status=404, json={"message": "The action Approve does not exist."})

    with pytest.raises(NotFoundError, match="Approve"):
        client.invoke_action(BILL, "Approve")


def test_401_invalidates_the_token_refreshes_and_retries_once(mocked, client, secret):
    mocked.get(f"{API}/Bill/Bill/000123", status=401, json={"message": "You are not logged in."})
    mocked.get(f"{API}/Bill/Bill/000123", json=bill())
    mocked.post(f"{BASE}/identity/connect/token", json={"access_token": "a-2", "refresh_token": "r-2",
                                                       "expires_in": 3600, "token_type": "Bearer"})

    assert client.get(BILL) is not None

    reads = calls_to(mocked, "/Bill/Bill/")
    assert [c.request.headers["Authorization"] for c in reads] == ["Bearer a-1", "Bearer a-2"]
    assert secret.read()["refresh_token"] == "r-2"


def test_second_401_is_an_authentication_error(mocked, client):
    mocked.get(f"{API}/Bill/Bill/000123", status=401, json={"message": "You are not logged in."})
    mocked.post(f"{BASE}/identity/connect/token", json={"access_token": "a-2", "refresh_token": "r-2",
                                                       "expires_in": 3600})

    with pytest.raises(AuthenticationError):
        client.get(BILL)
    assert len(calls_to(mocked, "/Bill/Bill/")) == 2


@pytest.mark.parametrize(("status", "headers", "retry_after"), [(429, {"Retry-After": "7"}, 7.0),
                                                                (503, {}, None), (500, {}, None)])
def test_throttling_and_server_errors_are_transient(mocked, client, status, headers, retry_after):
    mocked.get(f"{API}/Bill/Bill/000123", status=status, headers=headers, json={"message": "busy"})

    with pytest.raises(TransientError) as failed:
        client.get(BILL)
    assert failed.value.retry_after == retry_after
    assert not isinstance(failed.value, UncertainOutcome)


def test_connection_failure_on_a_read_is_transient(mocked, client):
    mocked.get(f"{API}/Bill/Bill/000123", body=requests.exceptions.ConnectionError("reset by peer"))

    with pytest.raises(TransientError):
        client.get(BILL)


def test_workflow_actions_come_from_ad_hoc_schema(mocked, client):
    mocked.get(f"{API}/Bill/$adHocSchema", json={"custom": {}, "_workflowActions": [
        {"Approve": {"parameters": {"custom": {}}}}, {"Reject": {"parameters": {}}}]})

    assert client.workflow_actions("Bill") == ["Approve", "Reject"]


def test_unsupported_entity_is_refused_before_any_request(mocked, client):
    with pytest.raises(ValueError):
        client.workflow_actions("SalesOrder")
    assert not mocked.calls


def test_limiter_bounds_concurrent_requests():
    import threading

    limiter = RequestLimiter(max_concurrent=2)
    in_flight, peak, guard = [0], [0], threading.Lock()

    def work():
        with limiter.slot():
            with guard:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            time.sleep(0.05)
            with guard:
                in_flight[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert peak[0] == 2


def test_limiter_spaces_requests_beyond_the_per_minute_budget():
    now, slept = [0.0], []
    limiter = RequestLimiter(max_concurrent=1, per_minute=2, clock=lambda: now[0], sleep=slept.append)

    for at in (0.0, 10.0, 20.0, 65.0):
        now[0] = at
        with limiter.slot():
            pass

    # The third waits until the first leaves the window (starts at 60); the fourth until the second does (at 70).
    assert slept == [40.0, 5.0]


@responses.activate
def test_an_instance_that_locks_down_the_endpoint_list_is_asked_again_with_the_token():
    from connector.tokens import RotatingTokens
    from tests.fakes import MemoryLock, MemorySecret

    base = "https://locked.example.com"
    responses.get(f"{base}/entity", status=401)
    responses.get(f"{base}/entity", json={"endpoints": [{"name": "Default", "version": "24.200.001"}]},
                  match=[matchers.header_matcher({"Authorization": "Bearer tok"})])
    tokens = RotatingTokens(name="acumatica", secrets=MemorySecret({"access_token": "tok", "expires_at": 4e9}),
                            lock=MemoryLock(), obtain=lambda secret: {})
    AcumaticaClient(base_url=base, endpoint_version="24.200.001", tokens=tokens).check_endpoint_version()
    assert [c.request.headers.get("Authorization") for c in responses.calls] == [None, "Bearer tok"]


def test_an_unusable_record_is_skipped_with_an_error_and_does_not_stop_the_pass(mocked, client, caplog):
    keyless = {k: v for k, v in bill("000002").items() if k != "ReferenceNbr"}
    mocked.get(f"{API}/Bill", match=[matchers.query_param_matcher({"$skip": "0"}, strict_match=False)],
               json=[bill("000001"), keyless])
    # The next page re-reads a margin of the previous one (deletions between reads must hide nothing): $skip=1.
    mocked.get(f"{API}/Bill", match=[matchers.query_param_matcher({"$skip": "1"}, strict_match=False)],
               json=[bill("000003")])

    pages = client.changed_pages("Bill", datetime(2024, 1, 1, tzinfo=timezone.utc))
    first, second = next(pages), next(pages)

    assert [d.key.number for d in first.documents + second.documents] == ["000001", "000003"]
    assert (first.next_skip, second.is_last) == (1, True)  # the skipped record still counts for paging
    assert any("unusable Bill record" in r.getMessage() for r in caplog.records)
