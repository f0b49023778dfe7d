"""Every authenticated body is validated to its shape: whatever a caller who holds the secret sends, the webhook
answers 200, 202 or 400 (never 500, which Jira and Acumatica retry), queues at most ``PUSH_ROW_BOUND`` messages (one
``poll`` above it), queues only bounded values, names only configured entities, and puts only issue ids and keys into
URL paths; partition keys keep two documents apart whatever their numbers hold."""

from __future__ import annotations

import json
from typing import Any

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connector import inbound
from connector.config import Settings
from connector.errors import PermanentError
from connector.http import make_session
from connector.jira import JiraClient
from connector.model import POLL_NOW_GROUP, DocumentKey, WorkMessage
from connector.signatures import sign_hub
from connector.webhooks import MAX_BODY_BYTES, PUSH_ROW_BOUND

HUB_SECRET, PUSH_SECRET = "h" * 40, "p" * 40
FIELD = "customfield_10050"
SQS_BATCH_BYTES = 262_144


class Wiring:
    """What ``connector.inbound`` needs of the webhook's wiring: settings, the verification material, the queue."""

    def __init__(self, document_types: str = "Bill,PurchaseOrder,Check") -> None:
        self.settings = Settings.from_env({"ACUMATICA_URL": "https://acme.example.com", "JIRA_PROJECT_KEY": "AP",
                                           "JIRA_EXTERNAL_ID_FIELD": FIELD, "DOCUMENT_TYPES": document_types})
        self.queued: list[tuple[str, list[WorkMessage]]] = []

    def webhook_secrets(self) -> dict[str, str]:
        return {"webhook_secret": HUB_SECRET, "client_secret": "c" * 40, "push_secret": PUSH_SECRET, "cloud_id": ""}

    def enqueue_delivery(self, delivery: str, messages: list[WorkMessage]) -> dict[str, int]:
        self.queued.append((delivery, list(messages)))
        return {"queued": len(messages)}


def jira_event(payload: Any) -> dict[str, Any]:
    body = json.dumps(payload)
    return {"routeKey": "POST /jira/webhook", "body": body, "isBase64Encoded": False,
            "headers": {"X-Hub-Signature": sign_hub(HUB_SECRET, body.encode())}, "requestContext": {"requestId": "r"}}


def push_event(payload: Any) -> dict[str, Any]:
    return {"routeKey": "POST /acumatica/push", "body": json.dumps(payload), "isBase64Encoded": False,
            "headers": {"X-Connector-Secret": PUSH_SECRET}, "requestContext": {"requestId": "r"}}


any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=15)


def maybe(valid: Any) -> st.SearchStrategy[Any]:
    """The valid value (or shape, a dict of strategies) most of the time, anything at all otherwise: every field gets
    its turn at being wrong."""
    if isinstance(valid, dict):
        valid = st.fixed_dictionaries({k: v if isinstance(v, st.SearchStrategy) else st.just(v)
                                       for k, v in valid.items()})
    strategy = valid if isinstance(valid, st.SearchStrategy) else st.just(valid)
    return st.one_of(strategy, strategy, any_json)


jira_payloads = st.fixed_dictionaries({
    "webhookEvent": maybe("jira:issue_updated"),
    "timestamp": maybe(1795000000000),
    "user": maybe({"accountId": "5b10ac8d82e05b22cc7d4ef5"}),
    "issue": maybe(None) | st.fixed_dictionaries({
        "id": st.one_of(maybe("10001"), st.just("../../myself"), st.just("1 OR 1")),
        "key": st.one_of(maybe("AP-1"), st.just("AP-1/../../myself"), st.text(min_size=300, max_size=400)),
        "fields": maybe(None) | st.fixed_dictionaries({
            "status": maybe({"name": "Done", "statusCategory": maybe({"key": maybe("done")})}),
            FIELD: st.one_of(maybe("Bill:Bill:000123"), st.just("Bill:Bill:" + "9" * 500),
                             st.just("Invoice:INV:1"), st.just("Bill:A#B:C"))})}),
    "changelog": maybe(None) | st.fixed_dictionaries({
        "id": maybe("555"),
        "items": maybe([]) | st.lists(maybe(None) | st.fixed_dictionaries({
            "fieldId": maybe("status"), "toString": st.one_of(maybe("Done"), st.text(min_size=256, max_size=300)),
            "fromString": maybe("To Do")}), max_size=3)}),
})
rows = st.fixed_dictionaries({"Type": maybe("Bill"), "ReferenceNbr": maybe("000123"),
                              "Entity": st.one_of(st.none(), maybe("Bill")),
                              "LastModifiedDateTime": maybe("2026-12-01T10:00:00")}) | any_json
push_payloads = st.fixed_dictionaries({
    "Id": maybe("6f1c"), "Query": maybe("AJC-Bills"), "Inserted": maybe([]) | st.lists(rows, max_size=4),
    "Deleted": maybe([]) | st.lists(rows, max_size=3),
    "extra_rows": st.integers(min_value=0, max_value=PUSH_ROW_BOUND + 60),
})
hostile = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_bounded(answer: inbound.Answer, wiring: Wiring) -> list[WorkMessage]:
    assert answer.status in (200, 202, 400), answer
    queued = [message for _, messages in wiring.queued for message in messages]
    assert len(queued) <= PUSH_ROW_BOUND
    assert (answer.status == 202) == bool(queued)
    assert sum(len(m.to_json()) for m in queued[:10]) < SQS_BATCH_BYTES  # ten to a SendMessageBatch
    for message in queued:
        assert WorkMessage.from_json(message.to_json()) == message  # the worker can read everything queued
        if message.kind != "poll":
            assert message.key.entity in wiring.settings.document_types
    return queued


@hostile
@given(payload=jira_payloads)
def test_any_signed_jira_body_gets_200_202_or_400_and_queues_at_most_one_bounded_message(payload) -> None:
    wiring = Wiring()
    queued = assert_bounded(inbound.answer(jira_event(payload), wiring), wiring)
    assert len(queued) <= 1
    for message in queued:
        assert message.issue_id.isdigit() and len(message.issue_key) <= 64 and len(message.status_name or "") <= 255


@hostile
@given(payload=push_payloads)
def test_any_authenticated_push_gets_200_202_or_400_and_never_queues_more_than_the_bound(payload) -> None:
    extra = payload.pop("extra_rows")
    if isinstance(payload["Inserted"], list):
        payload["Inserted"] += [{"Type": "Bill", "ReferenceNbr": f"{n:06d}"} for n in range(extra)]
    wiring = Wiring()
    queued = assert_bounded(inbound.answer(push_event(payload), wiring), wiring)
    rows_sent = sum(len(payload[name]) for name in ("Inserted", "Deleted") if isinstance(payload[name], list))
    if rows_sent > PUSH_ROW_BOUND:
        assert len(queued) <= 1 and all(m.kind == "poll" and m.external_id == POLL_NOW_GROUP for m in queued)


@pytest.mark.parametrize("payload, says", [
    ({"issue": {"id": "10001", "key": "AP-1", "fields": {"status": {"statusCategory": "done"}}}},
     "statusCategory must be an object"),
    ({"issue": {"id": "../../myself", "key": "AP-1", "fields": {}}}, "issue id must be digits"),
    ({"issue": {"id": "10001", "key": "ap-1; DROP", "fields": {}}}, "issue key must look like AP-123"),
    ({"issue": {"id": "10001", "key": "AP-1", "fields": {}}, "changelog": {"id": "5 5", "items": []}},
     "changelog id must be digits"),
    ({"issue": {"id": "10001", "key": "AP-1", "fields": {}}, "changelog": {"items": [
        {"fieldId": "status", "toString": "D" * 300}]}}, "longer than 255"),
])
def test_malformed_signed_jira_bodies_get_400_saying_what_is_wrong(payload: dict, says: str) -> None:
    wiring = Wiring()
    answer = inbound.answer(jira_event({"webhookEvent": "jira:issue_updated", **payload}), wiring)
    assert answer.status == 400 and says in answer.body["message"] and wiring.queued == []


@pytest.mark.parametrize("row, says", [
    ({"Entity": ["Bill"], "Type": "Bill", "ReferenceNbr": "1"}, "Entity must be text"),
    ({"Type": {"x": 1}, "ReferenceNbr": "1"}, "Type must be text"),
    ({"Type": "Bill", "ReferenceNbr": "1" * 65}, "longer than 64"),
    ({"Type": "Bill", "ReferenceNbr": "1", "LastModifiedDateTime": ["x"]}, "LastModifiedDateTime must be text"),
])
def test_malformed_push_rows_get_400(row: dict, says: str) -> None:
    wiring = Wiring()
    answer = inbound.answer(push_event({"Query": "AJC-Bills", "Id": "n-1", "Inserted": [row]}), wiring)
    assert answer.status == 400 and says in answer.body["message"] and wiring.queued == []


def test_a_body_nested_too_deeply_for_the_parser_is_400_not_500() -> None:
    body = "[" * 100_000 + "]" * 100_000
    event = {"routeKey": "POST /acumatica/push", "body": body, "headers": {"x-connector-secret": PUSH_SECRET}}
    assert len(body) < MAX_BODY_BYTES and inbound.answer(event, Wiring()).status == 400


def test_an_oversized_body_is_413_on_either_route_before_its_signature_is_looked_at() -> None:
    body = json.dumps({"Id": "big", "Query": "AJC-Bills", "Inserted": [], "pad": " " * MAX_BODY_BYTES})
    signed = {"X-Hub-Signature": sign_hub(HUB_SECRET, body.encode())}
    for event in ({**push_event({}), "body": body}, {**jira_event({}), "body": body, "headers": signed},
                  {**push_event({}), "body": body, "headers": {}}):
        wiring = Wiring()
        assert inbound.answer(event, wiring).status == 413 and wiring.queued == []


@pytest.mark.parametrize("event", [
    {**push_event({"Id": "n", "Inserted": []}), "headers": {"X-Connector-Secret": "not-the-secret"}},
    {**push_event({"Id": "n", "Inserted": []}), "headers": {}},
    {**jira_event({}), "headers": {"X-Hub-Signature": "sha256=" + "0" * 64}},
    {**jira_event({}), "headers": {"Authorization": "Bearer a.b.c"}},
], ids=["wrong push secret", "no push secret", "wrong signature", "unreadable JWT"])
def test_a_refused_caller_is_told_only_unauthorized_and_the_reason_goes_to_the_log(event: dict) -> None:
    wiring = Wiring()
    answer = inbound.answer(event, wiring)
    assert (answer.status, answer.body) == (401, {"message": "unauthorized"}) and wiring.queued == []
    assert answer.log and answer.log.startswith("request rejected: ")  # which check failed: for the operator


def test_a_body_that_is_not_base64_although_flagged_so_is_400() -> None:
    event = {"routeKey": "POST /acumatica/push", "body": "%%%", "isBase64Encoded": True,
             "headers": {"x-connector-secret": PUSH_SECRET}}
    assert inbound.answer(event, Wiring()).status == 400


def test_a_push_of_3000_rows_queues_one_poll_for_its_entities() -> None:
    rows = [{"Entity": "Bill", "Type": "Bill", "ReferenceNbr": f"{n:06d}"} for n in range(3000)]
    rows += [{"Entity": "PurchaseOrder", "Type": "Normal", "OrderNbr": f"PO{n:06d}"} for n in range(5)]
    wiring = Wiring()
    answer = inbound.answer(push_event({"Query": "AJC-Bills", "Id": "big", "Inserted": rows}), wiring)
    ((delivery, (message,)),) = wiring.queued
    assert answer.status == 202 and answer.body["poll"] == ["Bill", "PurchaseOrder"]
    assert delivery == "push:AJC-Bills:big" and message.kind == "poll"
    assert message.entities == ["Bill", "PurchaseOrder"] and "3005 rows" in message.reason


def test_two_large_pushes_in_one_minute_ask_for_one_poll_and_a_later_one_for_another() -> None:
    rows = [{"Type": "Bill", "ReferenceNbr": f"{n:06d}"} for n in range(PUSH_ROW_BOUND + 1)]
    ids = []
    for moment, notification in ((600.0, "a"), (659.0, "b"), (660.0, "c")):
        wiring = Wiring()
        inbound.answer(push_event({"Query": "AJC-Bills", "Id": notification, "Inserted": rows}), wiring,
                       clock=lambda moment=moment: moment)
        ids.append(wiring.queued[0][1][0].dedupe_id)
    assert ids[0] == ids[1] != ids[2]


def test_only_configured_entities_are_queued_from_either_route() -> None:
    wiring = Wiring(document_types="Bill")
    rows = [{"Type": "Normal", "OrderNbr": "PO000045"}, {"Entity": "Bill", "Type": "Bill", "ReferenceNbr": "000123"}]
    inbound.answer(push_event({"Query": "anything", "Id": "n", "Inserted": rows}), wiring)
    assert [m.external_id for _, ms in wiring.queued for m in ms] == ["Bill:Bill:000123"]
    resolution = {"webhookEvent": "jira:issue_updated", "issue": {"id": "1", "key": "AP-1", "fields": {
        "status": {"statusCategory": {"key": "done"}}, FIELD: "PurchaseOrder:Normal:PO000045"}},
        "changelog": {"id": "2", "items": [{"fieldId": "status", "toString": "Done"}]}}
    answer = inbound.answer(jira_event(resolution), Wiring(document_types="Bill"))
    assert answer.status == 200 and answer.body == {"status": "ignored"}


@given(type_=st.text(alphabet="AB#%:", min_size=1, max_size=6).filter(lambda t: ":" not in t),
       number=st.text(alphabet="12#%:", min_size=1, max_size=6), other_type=st.text(alphabet="AB#%", min_size=1,
                                                                                     max_size=6),
       other_number=st.text(alphabet="12#%:", min_size=1, max_size=6))
def test_two_documents_never_share_a_partition_key(type_, number, other_type, other_number) -> None:
    one, two = DocumentKey("Bill", type_, number), DocumentKey("Bill", other_type, other_number)
    assert (one.pk == two.pk) == (one == two)


def test_ordinary_document_numbers_keep_the_partition_keys_already_stored() -> None:
    assert DocumentKey("Bill", "Bill", "000123").pk == "DOC#Bill#Bill#000123"
    assert DocumentKey("PurchaseOrder", "Normal", "PO-0045/A").pk == "DOC#PurchaseOrder#Normal#PO-0045/A"


def test_a_work_message_for_an_unknown_entity_is_not_a_work_message() -> None:
    body = WorkMessage(kind="sync", external_id="Invoice:INV:1", dedupe_id="d", correlation_id="c").to_json()
    with pytest.raises(ValueError):
        WorkMessage.from_json(body)


class Tokens:
    def access_token(self) -> str:
        return "bearer-token"

    def invalidate(self, token: str) -> None:
        pass


@pytest.mark.parametrize("issue", ["../../myself", "10001/../../myself", "AP-1?expand=x", "ap-1", "", "AP-1#x"])
def test_the_jira_client_puts_only_issue_ids_and_keys_into_paths(issue: str) -> None:
    client = JiraClient(api_url="https://api.atlassian.com", cloud_id="c", project_key="AP", tokens=Tokens(),
                        session=make_session(total=0))
    with responses.RequestsMock() as mocked:  # any request at all would fail as unregistered
        for call in (lambda: client.get_issue(issue), lambda: client.status_changes(issue),
                     lambda: client.add_comment(issue, {"type": "doc", "version": 1, "content": []}),
                     lambda: client.transition_to(issue, "Done")):
            with pytest.raises(PermanentError, match="not a Jira issue id or key"):
                call()
        assert len(mocked.calls) == 0
