"""Triage in the exception flow: issues are created with assignee, due date and priority; the calendar moving
re-evaluates them on the next read (fields only, no comment), going overdue comments once, and Jira refusing a
priority still creates the issue. The store's clock and the documents' dates are independent on purpose."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone

import pytest

from connector import adf
from connector.errors import ValidationError
from connector.model import WorkMessage
from connector.ports import DocState
from connector.sync import PollOptions, SyncContext, poll_entity, sync_document
from connector.tables import TABLES
from connector.triage import TriageRules
from connector_local.jira_sandbox import adf_problem
from tests.fakes import FakeAcumatica, FakeJira, make_doc

DAY = 86400.0
RULES = TriageRules(priorities=TABLES["PriorityTable"].from_parameter('{"bands": [[-1, "Highest"], [3, "High"], [14, "Medium"]],'
                                                    ' "otherwise": "Low", "amountOver": 10000}'),
                    vendor_owners={"V000001": "buyer.kim"})


def bill(due: str | None, amount: str = "1250.00", **kwargs):
    doc = make_doc("Bill", amount=amount, **kwargs)
    return replace(doc, fields={**doc.fields, **({"DueDate": due} if due else {})})


def context(acu, jira, store, clock, triage=RULES):
    return SyncContext(documents=acu, tracker=jira, store=store, acumatica_url="https://acme.example.com",
                       owner_map={"buyer.kim": "acct-kim"}, labels=("acumatica",), cleared_status="", clock=clock,
                       triage=triage)


def msg(n: int = 1) -> WorkMessage:
    return WorkMessage(kind="sync", external_id="Bill:Bill:000123", dedupe_id=f"d{n}", correlation_id="corr")


class ListQueue:
    def __init__(self):
        self.sent: list[WorkMessage] = []

    def send(self, messages):
        self.sent.extend(messages)


def today(clock) -> date:
    return datetime.fromtimestamp(clock(), timezone.utc).date()


def due_in(clock, days: int) -> str:
    return date.fromordinal(today(clock).toordinal() + days).isoformat() + "T00:00:00+02:00"


def test_created_issue_has_assignee_due_date_and_priority(store, clock):
    acu, jira = FakeAcumatica(bill(due_in(clock, 10))), FakeJira()
    assert sync_document(msg(), context(acu, jira, store, clock)) == "created"
    (issue,) = jira.issues.values()
    assert issue["assignee"] == "acct-kim"  # vendor -> buyer table -> OwnerMap
    assert issue["duedate"] == date.fromordinal(today(clock).toordinal() + 10).isoformat()
    assert issue["priority"] == "Medium"


def test_large_amount_goes_one_step_up(store, clock):
    acu, jira = FakeAcumatica(bill(due_in(clock, 10), amount="25000.00")), FakeJira()
    sync_document(msg(), context(acu, jira, store, clock))
    assert next(iter(jira.issues.values()))["priority"] == "High"


def test_calendar_moving_retriages_without_comment_and_overdue_comments_once(store, clock):
    acu, jira = FakeAcumatica(bill(due_in(clock, 5))), FakeJira()
    ctx = context(acu, jira, store, clock)
    sync_document(msg(), ctx)
    (key,) = jira.issues
    calls = len(jira.calls)
    assert sync_document(msg(2), ctx) == "unchanged" and len(jira.calls) == calls

    clock.advance(1 * DAY)  # 4 days left: still Medium, nothing to do
    assert sync_document(msg(3), ctx) == "unchanged" and len(jira.calls) == calls

    clock.advance(1 * DAY)  # 3 days left: High, set silently
    assert sync_document(msg(4), ctx) == "retriaged"
    assert jira.issues[key]["priority"] == "High" and jira.comments[key] == []

    clock.advance(3 * DAY)  # due yesterday... not yet: due today is not overdue
    assert sync_document(msg(5), ctx) == "unchanged"
    clock.advance(1 * DAY)  # overdue
    assert sync_document(msg(6), ctx) == "retriaged"
    assert jira.issues[key]["priority"] == "Highest"
    (comment,) = jira.comments[key]
    assert "overdue" in adf.plain_text(comment)

    for n in range(7, 10):  # repeated polls, replays, and later days
        sync_document(msg(n), ctx)
        clock.advance(DAY)
    assert len(jira.comments[key]) == 1


def test_overdue_comment_is_not_repeated_when_a_crashed_update_is_retaken(store, clock, monkeypatch):
    acu, jira = FakeAcumatica(bill(due_in(clock, 1))), FakeJira()
    ctx = context(acu, jira, store, clock)
    sync_document(msg(), ctx)
    (key,) = jira.issues
    clock.advance(2 * DAY)
    real_finish = store.finish_claim

    def crash_before_the_update_is_recorded(key, name, state, **details):
        if name == "COMMENT":
            raise RuntimeError("worker crashed after commenting")
        real_finish(key, name, state, **details)

    monkeypatch.setattr(store, "finish_claim", crash_before_the_update_is_recorded)
    with pytest.raises(RuntimeError):
        sync_document(msg(2), ctx)
    monkeypatch.setattr(store, "finish_claim", real_finish)
    clock.advance(3600)  # long enough for the update claim to be retaken
    sync_document(msg(3), ctx)
    assert len([c for c in jira.comments[key] if "overdue" in adf.plain_text(c)]) == 1


def test_an_issue_created_already_overdue_gets_no_overdue_comment(store, clock):
    acu, jira = FakeAcumatica(bill(due_in(clock, -5))), FakeJira()
    ctx = context(acu, jira, store, clock)
    sync_document(msg(), ctx)
    clock.advance(DAY)
    sync_document(msg(2), ctx)
    (key,) = jira.issues
    assert jira.issues[key]["priority"] == "Highest" and jira.comments[key] == []


class RefusingJira(FakeJira):
    """A project whose priority scheme lacks the configured names (as Jira answers: errors.priority)."""

    def create_issue(self, draft):
        if draft.priority is not None:
            self.calls.append("create-refused")
            raise ValidationError("priority refused", {"priority": "Specify a valid 'id' or 'name' for Priority"})
        return super().create_issue(draft)


def test_refused_priority_still_creates_the_issue_and_says_so(store, clock):
    acu, jira = FakeAcumatica(bill(due_in(clock, 2))), RefusingJira()
    assert sync_document(msg(), context(acu, jira, store, clock)) == "created"
    (issue,) = jira.issues.values()
    assert issue["duedate"] is not None and issue["assignee"] == "acct-kim"
    refused = [r for r in store.audit_trail(make_doc().key) if r["outcome"] == "priority-refused"]
    assert len(refused) == 1 and "'High'" in refused[0]["reason"]


def test_without_triage_nothing_changes_for_existing_deployments(store, clock):
    acu, jira = FakeAcumatica(bill(due_in(clock, 2))), FakeJira()
    sync_document(msg(), context(acu, jira, store, clock, triage=None))
    (issue,) = jira.issues.values()
    assert issue["duedate"] is None and issue["priority"] == "Medium"  # Jira's default, not ours


def test_poll_requeues_a_document_whose_band_changed_and_only_then(store, clock):
    doc = bill("2026-12-10T00:00:00")
    acu, jira, queue = FakeAcumatica(doc), FakeJira(), ListQueue()
    ctx = context(acu, jira, store, clock)

    def poll(on: datetime):
        store.put_cursor("Bill", replace(store.get_cursor("Bill"), watermark=None))  # re-read it, as a full pass
        return poll_entity("Bill", documents=acu, store=store, queue=queue, options=PollOptions(resume_margin=0),
                           now=lambda: on, seconds_left=lambda: 300.0, correlation_id="poll", triage=RULES)

    poll(datetime(2026, 11, 20, tzinfo=timezone.utc))
    for message in queue.sent:
        sync_document(message, ctx)
    assert poll(datetime(2026, 11, 21, tzinfo=timezone.utc)).enqueued == 0  # 19 days out: still Low
    assert poll(datetime(2026, 11, 27, tzinfo=timezone.utc)).enqueued == 1  # 13 days out: Medium now


def test_a_bill_goes_to_the_buyer_of_the_purchase_order_its_lines_reference(store, clock):
    from connector.model import DocumentKey

    order = DocumentKey("PurchaseOrder", "Normal", "PO000045")
    acu = FakeAcumatica(bill(due_in(clock, 10), vendor="V-NOBODY"),
                        replace(make_doc("PurchaseOrder", number="PO000045", status="Open", owner="buyer.kim"),
                                key=order))
    acu.order_lines[make_doc().key] = [DocumentKey("PurchaseOrder", "Normal", "PO-GONE"), order]
    jira = FakeJira()
    sync_document(msg(), context(acu, jira, store, clock))
    assert next(iter(jira.issues.values()))["assignee"] == "acct-kim"


ESCALATING = replace(RULES, escalation_days={"*": (7, 14), "rejected": (2,)})


def escalations(jira, key):
    return [c for c in jira.comments[key] if "has been an exception" in adf.plain_text(c)]


def test_escalation_mentions_the_assignee_and_labels_once_per_threshold(store, clock):
    acu, jira = FakeAcumatica(bill(due_in(clock, 60))), FakeJira()
    ctx = context(acu, jira, store, clock, triage=ESCALATING)
    sync_document(msg(), ctx)
    (key,) = jira.issues
    for day in range(1, 20):
        clock.advance(DAY)
        for replay in range(2):  # a poll and a replay of it on the same day
            sync_document(msg(day * 10 + replay), ctx)
    comments = escalations(jira, key)
    assert len(comments) == 2
    mention = comments[0]["content"][0]["content"][0]
    assert mention == {"type": "mention", "attrs": {"id": "acct-kim", "text": "@acct-kim"}}
    assert "7 days" in adf.plain_text(comments[0]) and "14 days" in adf.plain_text(comments[1])
    assert {"escalated-7d", "escalated-14d"} <= set(jira.issues[key]["labels"])
    assert "acumatica" in jira.issues[key]["labels"]  # people's and the connector's labels stay
    for comment in comments:
        assert adf_problem(comment) is None  # the official ADF schema


def test_escalation_per_rule_and_to_a_configured_user(store, clock):
    rejected = replace(make_doc("Bill", status="Rejected", hold=False), fields={"DueDate": due_in(clock, 60)})
    acu, jira = FakeAcumatica(rejected), FakeJira()
    ctx = context(acu, jira, store, clock, triage=replace(ESCALATING, escalation_user="acct-boss"))
    sync_document(msg(), ctx)
    (key,) = jira.issues
    clock.advance(2 * DAY)
    sync_document(msg(2), ctx)
    (comment,) = escalations(jira, key)
    assert comment["content"][0]["content"][0]["attrs"]["id"] == "acct-boss"


def test_a_lost_state_table_does_not_escalate_the_same_threshold_again(store, clock):
    acu, jira = FakeAcumatica(bill(due_in(clock, 60))), FakeJira()
    ctx = context(acu, jira, store, clock, triage=ESCALATING)
    sync_document(msg(), ctx)
    (key,) = jira.issues
    clock.advance(8 * DAY)
    sync_document(msg(2), ctx)
    assert len(escalations(jira, key)) == 1
    table = store._table  # the table is lost: every state, claim and audit record gone
    for item in table.scan()["Items"]:
        table.delete_item(Key={"PK": item["PK"], "SK": item["SK"]})
    jira.settle()
    assert sync_document(msg(3), ctx) == "adopted"
    for day in range(4, 14):  # the adopted issue counts from now: day 7 again, which Jira's label remembers
        clock.advance(DAY)
        sync_document(msg(day), ctx)
    assert len(escalations(jira, key)) == 1


def test_no_escalation_table_no_escalation_key_in_the_state(store, clock):
    acu, jira = FakeAcumatica(bill(due_in(clock, 60))), FakeJira()
    ctx = context(acu, jira, store, clock)
    sync_document(msg(), ctx)
    clock.advance(30 * DAY)
    sync_document(msg(2), ctx)
    assert "escalation" not in store.get_state(make_doc().key).snapshot
    assert all("has been an exception" not in adf.plain_text(c) for c in jira.comments[next(iter(jira.issues))])


def test_a_bills_issue_relates_to_its_purchase_orders_issue_once(store, clock):
    from connector.model import DocumentKey

    order = DocumentKey("PurchaseOrder", "Normal", "PO000045")
    po = replace(make_doc("PurchaseOrder", number="PO000045", status="Pending Approval", owner="buyer.kim"), key=order)
    acu, jira = FakeAcumatica(po), FakeJira()
    ctx = context(acu, jira, store, clock)
    sync_document(WorkMessage(kind="sync", external_id=order.external_id, dedupe_id="po", correlation_id="c"), ctx)
    (po_issue,) = jira.issues
    acu.put(bill(due_in(clock, 10)))
    acu.order_lines[make_doc().key] = [order]
    sync_document(msg(), ctx)
    bill_issue = next(k for k in jira.issues if k != po_issue)
    assert jira.links == [("Relates", bill_issue, po_issue)]
    store._table.delete_item(Key={"PK": make_doc().key.pk, "SK": "STATE"})  # lost state: adopted again
    jira.settle()
    assert sync_document(msg(2), ctx) == "adopted"
    assert jira.links == [("Relates", bill_issue, po_issue)]


def test_a_failing_link_is_audited_and_the_issue_still_exists(store, clock):
    from connector.model import DocumentKey

    order = DocumentKey("PurchaseOrder", "Normal", "PO000046")
    acu, jira = FakeAcumatica(bill(due_in(clock, 10))), FakeJira()
    acu.order_lines[make_doc().key] = [order]
    ctx = context(acu, jira, store, clock)
    store.save_state(order, DocState(issue_key="OTHER-9", issue_id="1", open=True))  # an issue Jira no longer has
    assert sync_document(msg(), ctx) == "created"
    assert jira.links == []
    assert [r["outcome"] for r in store.audit_trail(make_doc().key) if r["event"] == "link"] == ["failed"]


def test_a_lost_state_table_does_not_repeat_the_overdue_comment(store, clock):
    acu, jira = FakeAcumatica(bill(due_in(clock, 1))), FakeJira()
    ctx = context(acu, jira, store, clock)
    sync_document(msg(), ctx)
    (key,) = jira.issues
    clock.advance(2 * DAY)
    sync_document(msg(2), ctx)
    assert len(jira.comments[key]) == 1
    table = store._table
    for item in table.scan()["Items"]:
        table.delete_item(Key={"PK": item["PK"], "SK": item["SK"]})
    jira.settle()
    for n in range(3, 6):
        sync_document(msg(n), ctx)
        clock.advance(DAY)
    assert len(jira.comments[key]) == 1 and len(jira.issues) == 1
