import json

import pytest

from connector.errors import Rejected
from connector.webhooks import accept_push, jira_resolution, parse_json_object, push_changes


def issue_updated(to="Done", category="done", frm="To Do", external_id="Bill:Bill:000123", changelog_id="555"):
    return {
        "timestamp": 1795000000000, "webhookEvent": "jira:issue_updated", "issue_event_type_name": "issue_generic",
        "issue": {"id": "10001", "key": "AP-1", "fields": {
            "status": {"name": to, "statusCategory": {"key": category}}, "customfield_10050": external_id}},
        "changelog": {"id": changelog_id, "items": [
            {"field": "status", "fieldtype": "jira", "fieldId": "status", "fromString": frm, "toString": to}]},
    }


def resolution(payload, statuses=()):
    return jira_resolution(payload, digest="sha256:d-1", external_id_field="customfield_10050",
                           resolved_statuses=statuses, correlation_id="c-1")


def test_move_into_done_category_becomes_a_resolve_message():
    message = resolution(issue_updated())
    assert message.kind == "resolve" and message.external_id == "Bill:Bill:000123" and message.issue_key == "AP-1"


def test_same_change_delivered_twice_gets_the_same_dedupe_id_whatever_the_delivery_id():
    one = resolution(issue_updated())
    two = jira_resolution(issue_updated(), digest="sha256:d-2", external_id_field="customfield_10050",
                          resolved_statuses=(), correlation_id="c-2")
    assert one.dedupe_id == two.dedupe_id


def test_configured_statuses_replace_the_done_category():
    assert resolution(issue_updated(to="Fixed", category="indeterminate"), ("fixed",)) is not None
    assert resolution(issue_updated(to="Done"), ("Fixed",)) is None


def test_updates_that_are_not_resolutions_are_ignored():
    assert resolution(issue_updated(to="In Progress", category="indeterminate")) is None
    assert resolution({**issue_updated(), "changelog": {"items": [{"field": "summary"}]}}) is None
    assert resolution({**issue_updated(), "webhookEvent": "comment_created"}) is None
    assert resolution(issue_updated(external_id=None)) is None
    assert resolution(issue_updated(external_id="not-an-external-id")) is None


def test_malformed_bodies_are_rejected_with_400():
    with pytest.raises(Rejected) as caught:
        parse_json_object(b"{not json")
    assert caught.value.status == 400
    with pytest.raises(Rejected):
        parse_json_object(b"[1, 2]")
    with pytest.raises(Rejected):
        resolution({"webhookEvent": "jira:issue_updated", "issue": "nope"})


def test_push_notification_rows_become_sync_messages_deduped_by_notification_id():
    payload = {"Query": "AJC-Bills", "Id": "6f1c", "TimeStamp": 638465233453014192, "CompanyId": "Company",
               "Inserted": [{"Type": "INV", "ReferenceNbr": "000123", "Status": "On Hold"},
                            {"Type": "Bill", "ReferenceNbr": "000124"}], "Deleted": []}
    messages = push_changes(json.loads(json.dumps(payload)), correlation_id="c")
    assert [m.external_id for m in messages] == ["Bill:Bill:000123", "Bill:Bill:000124"]
    assert all(m.kind == "sync" and m.dedupe_id.startswith("push:AJC-Bills:6f1c:") for m in messages)


def test_push_rows_for_unknown_queries_are_ignored_and_bad_shapes_rejected():
    assert push_changes({"Query": "Other", "Id": "x", "Inserted": [{"Type": "Bill", "ReferenceNbr": "1"}]},
                        correlation_id="c") == []
    with pytest.raises(Rejected):
        push_changes({"Inserted": []}, correlation_id="c")


def test_push_rows_of_inquiries_named_otherwise_are_recognised_by_their_columns_and_name():
    rows = {"Id": "n1", "Query": "PO-Changes", "Inserted": [{"Type": "RO", "OrderNbr": "PO000045"}]}
    assert [m.external_id for m in push_changes(rows, correlation_id="c")] == ["PurchaseOrder:Normal:PO000045"]
    checks = {"Id": "n2", "Query": "AP Payments changed", "Inserted": [{"Type": "CHK", "ReferenceNbr": "000078"}]}
    assert [m.external_id for m in push_changes(checks, correlation_id="c")] == ["Check:Payment:000078"]


def test_a_payload_without_status_category_is_queued_for_the_worker_to_check():
    payload = issue_updated()
    del payload["issue"]["fields"]["status"]["statusCategory"]
    assert resolution(payload) is not None


def test_push_key_values_padded_by_acumatica_are_trimmed():
    payload = {"Query": "AJC-Bills", "Id": "t1", "Inserted": [{"Type": "Bill ", "ReferenceNbr": "000123   "}]}
    assert [m.external_id for m in push_changes(payload, correlation_id="c")] == ["Bill:Bill:000123"]


def test_push_deleted_rows_are_read_and_an_update_is_queued_once():
    payload = {"Query": "AJC-Bills", "Id": "t2",
               "Inserted": [{"Type": "Bill", "ReferenceNbr": "000123", "Status": "Balanced"}],
               "Deleted": [{"Type": "Bill", "ReferenceNbr": "000123", "Status": "On Hold"},
                           {"Type": "Bill", "ReferenceNbr": "000999 ", "Status": "On Hold"}]}
    messages = push_changes(payload, correlation_id="c")
    assert [m.external_id for m in messages] == ["Bill:Bill:000123", "Bill:Bill:000999"]
    assert "no longer in the inquiry's results" in (messages[1].reason or "")
    with pytest.raises(Rejected):
        push_changes({**payload, "Deleted": "nope"}, correlation_id="c")


def test_one_transaction_seen_by_two_inquiries_makes_two_deliveries_with_distinct_dedupe_ids():
    row = {"Type": "Bill", "ReferenceNbr": "000123"}
    first = {"Query": "AJC-Bills", "Id": "same-transaction", "Inserted": [row]}
    second = {**first, "Query": "Held bills"}
    keys, ids = set(), set()
    for payload in (first, second):
        key, messages = accept_push(json.dumps(payload).encode(), {"x-connector-secret": "s"}, push_secret="s",
                                    header_name="X-Connector-Secret", correlation_id="c")
        keys.add(key)
        ids.update(m.dedupe_id for m in messages)
    assert keys == {"push:AJC-Bills:same-transaction", "push:Held bills:same-transaction"} and len(ids) == 2


def test_the_message_carries_the_changelog_entry_for_the_worker_to_read_and_not_who_the_body_says_moved_it():
    payload = {**issue_updated(), "user": {"accountId": "557058:app", "accountType": "app"}}
    message = resolution(payload)
    assert (message.issue_id, message.change_id) == ("10001", "555")
    assert "557058:app" not in message.to_json()  # who decided is the changelog's answer (connector.resolve)
    again = type(message).from_json(message.to_json())
    assert again == message
