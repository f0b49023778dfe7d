"""`connector preview` on the local stack: it lists exactly the issues the next real poll creates (same summary,
assignee, priority and due date) and writes nothing: every AWS call it makes is a read, every Jira and Acumatica
request a GET."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import botocore.client
import pytest

from connector_cli.main import main
from connector_local.jira_sandbox import CONNECTOR_ACCOUNT, PERSON_ACCOUNT
from connector_local.stack import LocalStack

READS = ("Get", "BatchGet", "Query", "Scan", "Describe", "List")


@pytest.fixture(scope="module")
def stack():
    env = {"OWNER_MAP": json.dumps({"buyer.kim": PERSON_ACCOUNT}), "ROUND_ROBIN_ASSIGNEES": f"{PERSON_ACCOUNT},{CONNECTOR_ACCOUNT}"}
    with LocalStack.start(env, quiet=True) as running:
        running.tick("PollerFunction")  # an empty first pass: the tokens are fresh, the watermark set
        running.drain()
        yield running


@pytest.fixture
def aws_calls(monkeypatch):
    """Every AWS API operation any boto3 client in this process makes."""
    calls: list[str] = []
    real = botocore.client.BaseClient._make_api_call

    def recording(self, operation_name, api_params):
        calls.append(operation_name)
        return real(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return calls


def preview(capsys, *args: str) -> list[dict]:
    capsys.readouterr()
    assert main(["preview", "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def seed(stack) -> None:
    soon = (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()
    later = (datetime.now(timezone.utc) + timedelta(days=40)).date().isoformat()
    acu = stack.acumatica
    acu.add_document("PurchaseOrder", Type="Normal", OrderNbr="PO150001", VendorID="V150", OrderTotal=900,
                     ControlTotal=900, Hold=False, Owner="buyer.kim")
    acu.add_document("Bill", Type="Bill", ReferenceNbr="150002", Vendor="V150", Amount=900, Balance=900, Hold=True,
                     DueDate=f"{soon}T00:00:00-05:00",
                     Details=[{"POOrderType": "Normal", "POOrderNbr": "PO150001", "POLine": 1, "Amount": 900}])
    acu.add_document("Bill", Type="Bill", ReferenceNbr="150003", Vendor="V151", Amount=25000, Balance=25000,
                     Hold=True, DueDate=f"{later}T00:00:00")
    acu.add_document("Bill", Type="Bill", ReferenceNbr="150004", Vendor="V151", Amount=10, Balance=10, Hold=False)
    acu.add_document("PurchaseOrder", Type="Normal", OrderNbr="PO150005", VendorID="V152", OrderTotal=40,
                     ControlTotal=40, Hold=True, PromisedOn=f"{later}T00:00:00+02:00", Owner="buyer.gone")


def test_preview_lists_what_the_next_poll_creates_and_writes_nothing(stack, capsys, aws_calls):
    seed(stack)
    jira_before = len(stack.jira.exchanges())
    acumatica_before = len(stack.acumatica.requests_log)
    rows = preview(capsys)

    assert "BatchGetItem" in aws_calls  # the recorder sees the preview's reads of the state table
    assert [c for c in aws_calls if not c.startswith(READS)] == []
    assert {e["method"] for e in stack.jira.exchanges()[jira_before:]} <= {"GET"}
    assert {e.method for e in stack.acumatica.requests_log[acumatica_before:]} == {"GET"}
    planned = {row["document"]: row for row in rows}
    assert {d for d, row in planned.items() if row["action"] == "create"} == {
        "Bill:Bill:150002", "Bill:Bill:150003", "PurchaseOrder:Normal:PO150005"}
    assert planned["Bill:Bill:150002"]["assignee"] == PERSON_ACCOUNT  # the PO's buyer, through the bill's lines
    assert planned["Bill:Bill:150003"]["priority"] == "High"  # far off, but large: one step up from Medium

    stack.tick("PollerFunction")
    stack.drain()
    created = {issue["fields"]["customfield_10050"]: issue["fields"] for issue in stack.jira.issues()
               if issue["fields"]["customfield_10050"] in planned}
    assert set(created) == {d for d, row in planned.items() if row["action"] == "create"}
    for document, fields in created.items():
        row = planned[document]
        assert (fields["summary"], (fields["assignee"] or {}).get("accountId", ""), fields["priority"]["name"],
                fields["duedate"] or "") == (row["summary"], row["assignee"], row["priority"], row["due_date"])


def test_after_the_poll_the_preview_leaves_them_alone_then_sees_an_update(stack, capsys):
    rows = {row["document"]: row for row in preview(capsys, "--entity", "Bill")}
    assert rows["Bill:Bill:150002"]["action"] == "leave" and rows["Bill:Bill:150002"]["issue"]
    assert not any(d.startswith("PurchaseOrder") for d in rows)
    stack.acumatica.update_document("Bill", ("Bill", "150003"), Amount=26000)
    rows = {row["document"]: row for row in preview(capsys, "--entity", "Bill")}
    assert rows["Bill:Bill:150003"]["action"] == "update"
    assert len(preview(capsys, "--limit", "1")) == 1


def test_the_table_names_every_column_and_says_nothing_was_written(stack, capsys):
    capsys.readouterr()
    assert main(["preview", "--since", "2020-01-01"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["action", "document", "issue", "summary", "assignee", "priority", "due",
                                           "date", "reason"]
    assert "nothing was written" in out


def test_ping_names_owners_without_an_owner_map_entry(stack, capsys):
    capsys.readouterr()
    assert main(["ping"]) == 1
    line = next(l for l in capsys.readouterr().out.splitlines() if "OwnerMap" in l)
    assert line.startswith("FAIL") and "buyer.gone (1 document)" in line and "buyer.kim" not in line
