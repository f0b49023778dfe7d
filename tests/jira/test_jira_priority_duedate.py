"""Priority and due date on issues: the client against the sandbox, which refuses them the way Jira Cloud does
(a priority outside the project's scheme, a date not in ``yyyy-MM-dd``), checked against the OpenAPI spec."""

from __future__ import annotations

from dataclasses import replace

import pytest

from connector.errors import NotFoundError, ValidationError
from connector.ports import IssueDraft
from connector_local.jira_sandbox import JiraSandbox


def draft(**extra) -> IssueDraft:
    return IssueDraft(summary="AP bill 000123 | ACME | 100.00 USD | On hold", external_id="Bill:Bill:000123", **extra)


def test_created_issue_carries_priority_and_due_date(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    ref = client.create_issue(draft(priority="High", due_date="2026-12-04"))
    fields = sandbox.issue(ref.key)["fields"]
    assert fields["priority"]["name"] == "High" and fields["priority"]["id"] == "2"
    assert fields["duedate"] == "2026-12-04"


def test_without_a_priority_jira_uses_the_scheme_default(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    fields = sandbox.issue(client.create_issue(draft()).key)["fields"]
    assert fields["priority"]["name"] == "Medium" and fields["duedate"] is None


@pytest.mark.parametrize("extra, field", [
    ({"priority": "Urgent"}, "priority"),
    ({"due_date": "04/12/2026"}, "duedate"),
    ({"due_date": "2026-02-30"}, "duedate"),
])
def test_refused_priority_or_due_date_is_a_field_error(sandbox, make_client, extra, field):
    client, _, _ = make_client(sandbox)
    with pytest.raises(ValidationError) as refused:
        client.create_issue(draft(**extra))
    assert field in refused.value.field_errors
    assert sandbox.issues() == []


def test_update_changes_priority_and_due_date_and_logs_them(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    ref = client.create_issue(draft(priority="Medium", due_date="2026-12-10"))
    client.update_issue(ref.key, IssueDraft(priority="Highest", due_date="2026-12-09"))
    fields = sandbox.issue(ref.key)["fields"]
    assert (fields["priority"]["name"], fields["duedate"]) == ("Highest", "2026-12-09")
    changed = {item["field"] for entry in sandbox.changelog(ref.key) for item in entry["items"]}
    assert {"priority", "duedate"} <= changed


def test_a_project_with_its_own_scheme(assert_conforms_to_openapi, make_client):
    with JiraSandbox(priorities=("P1", "P2", "P3")) as custom:
        client, _, _ = make_client(custom)
        with pytest.raises(ValidationError):
            client.create_issue(draft(priority="High"))
        ref = client.create_issue(draft(priority="P1"))
        assert custom.issue(ref.key)["fields"]["priority"]["name"] == "P1"
        assert custom.issue(client.create_issue(draft()).key)["fields"]["priority"]["name"] == "P1"
        assert_conforms_to_openapi(custom.exchanges())


def test_issue_links_relate_two_issues_once_and_refuse_unknown_types(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    bill = client.create_issue(draft()).key
    order = client.create_issue(replace(draft(), external_id="PurchaseOrder:Normal:PO000045")).key
    client.link_issues(bill, order)
    client.link_issues(bill, order)
    assert sandbox.issue_links(bill) == sandbox.issue_links(order) == [("Relates", bill, order)]
    with pytest.raises(NotFoundError):
        client.link_issues(bill, order, "Is Related To")
    with pytest.raises(NotFoundError):
        client.link_issues(bill, "AP-999")


def test_add_label_keeps_the_labels_people_set(sandbox, make_client):
    client, _, _ = make_client(sandbox)
    key = client.create_issue(replace(draft(), labels=["acumatica", "urgent-vendor"])).key
    client.add_label(key, "escalated-7d")
    assert sandbox.issue(key)["fields"]["labels"] == ["acumatica", "urgent-vendor", "escalated-7d"]
