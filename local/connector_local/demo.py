"""`connector demo`: the connector's round trip on the embedded local stack, printed as a table a clerk can read.

Seeds bills, purchase orders and payments in the Acumatica sandbox (some stuck, some healthy), then runs what AWS
would run: schedule tick → PollerFunction → work queue → WorkerFunction → Jira issues; a person resolves one issue
in Jira → signed webhook → WebhookFunction → queue → WorkerFunction → ReleaseBill in Acumatica. Between the two, a
held bill's amount changes in Acumatica, whose clock runs hours behind the connector's and renders another time
zone, and the next tick tells its issue. It then polls again to show that an unchanged backlog costs nothing. Exits
non-zero if any promise of the round trip is broken.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, TextIO

from connector.model import DocumentKey

from .jira_sandbox import PERSON_ACCOUNT
from .stack import LocalStack

DEMO_ENV = {"OWNER_MAP": json.dumps({"buyer.kim": PERSON_ACCOUNT})}
"""The buyer of PO000045 is a Jira user: the PO's issue, and the bill billing it, are assigned to them."""


def _in_days(days: int) -> str:
    """An Acumatica date ``days`` from today, so the priorities the demo shows do not age."""
    return (datetime.now(timezone.utc) + timedelta(days=days)).strftime("%Y-%m-%dT00:00:00")


@dataclass(frozen=True)
class Seed:
    entity: str
    fields: dict
    requires_approval: bool = False
    expect_issue: bool = True


SEEDS = (
    Seed("Bill", {"Type": "Bill", "ReferenceNbr": "000101", "Vendor": "V000001", "Amount": 1250, "Balance": 1250,
                  "Hold": True, "Description": "Office furniture, held for receipt check", "DueDate": _in_days(20)}),
    Seed("Bill", {"Type": "Bill", "ReferenceNbr": "000102", "Vendor": "V000002", "Amount": 500, "Balance": 450,
                  "Hold": True, "Description": "Freight: control total does not match the lines",
                  "DueDate": _in_days(2),
                  "Details": [{"POOrderType": "Normal", "POOrderNbr": "PO000045", "POLine": 1, "Amount": 450}]}),
    Seed("Bill", {"Type": "Bill", "ReferenceNbr": "000103", "Vendor": "V000003", "Amount": 90, "Balance": 90,
                  "Hold": False, "Description": "Stationery"}, expect_issue=False),
    Seed("Bill", {"Type": "Bill", "ReferenceNbr": "000104", "Vendor": "V000001", "Amount": 7800, "Balance": 7800,
                  "Hold": False, "Status": "Pending Approval", "Description": "Consulting, March",
                  "DueDate": _in_days(-3)},
         requires_approval=True),
    Seed("PurchaseOrder", {"Type": "Normal", "OrderNbr": "PO000045", "VendorID": "V000004", "OrderTotal": 3200,
                           "ControlTotal": 3200, "Hold": False, "Status": "Pending Approval", "Owner": "buyer.kim",
                           "Description": "Laptops for new hires", "PromisedOn": _in_days(10)},
         requires_approval=True),
    Seed("PurchaseOrder", {"Type": "Normal", "OrderNbr": "PO000046", "VendorID": "V000004", "OrderTotal": 150,
                           "ControlTotal": 150, "Hold": False, "Description": "Cables"}, expect_issue=False),
    Seed("Check", {"Type": "Payment", "ReferenceNbr": "000078", "Vendor": "V000002", "PaymentAmount": 450,
                   "Hold": True, "Description": "Freight payment on hold"}),
    Seed("Check", {"Type": "Payment", "ReferenceNbr": "000079", "Vendor": "V000003", "PaymentAmount": 90,
                   "Hold": False, "Status": "Closed", "Description": "Stationery payment"}, expect_issue=False),
)
RESOLVED = DocumentKey("Bill", "Bill", "000101")
CHANGED = DocumentKey("Bill", "Bill", "000102")


def _key(seed: Seed) -> DocumentKey:
    from connector.documents import profile

    return profile(seed.entity).key_of(seed.fields)


def run_demo(out: TextIO = sys.stdout, *, verbose: bool = False) -> int:
    """Run the round trip; returns the process exit code. ``verbose`` keeps the functions' logs and metrics."""
    started = time.monotonic()
    problems: list[str] = []
    with LocalStack.start(DEMO_ENV, quiet=not verbose) as stack:  # always the embedded default, whatever the shell says
        assert stack.acumatica and stack.jira, "the demo runs on the sandboxes"
        for seed in SEEDS:
            stack.acumatica.add_document(seed.entity, requires_approval=seed.requires_approval, **seed.fields)
        say = _printer(out)
        say(f"Local stack up: moto {stack.aws.endpoint_url}, Acumatica sandbox {stack.acumatica.url}, "
            f"Jira sandbox {stack.jira.url}, webhook {stack.environment['WEBHOOK_URL']}")
        say("1. Schedule tick -> PollerFunction -> work queue -> WorkerFunction -> Jira")
        stack.tick("PollerFunction")
        stack.drain()
        rows = []
        for seed in SEEDS:
            key = _key(seed)
            issues = stack.jira.issues_with_external_id(key.external_id)
            doc = stack.acumatica.document(seed.entity, (key.type, key.number))
            outcome = ("issue created: " + issues[0]["fields"]["summary"].rsplit(" | ", 1)[-1] if issues
                       else "healthy: no issue")
            fields = issues[0]["fields"] if issues else {}
            rows.append((key.external_id, doc["Status"], ", ".join(i["key"] for i in issues) or "-",
                         (fields.get("assignee") or {}).get("displayName", "-") if issues else "-",
                         (fields.get("priority") or {}).get("name", "-") if issues else "-",
                         fields.get("duedate") or "-", outcome))
            if len(issues) != (1 if seed.expect_issue else 0):
                problems.append(f"{key.external_id}: expected {int(seed.expect_issue)} issue(s), found {len(issues)}")
        _table(out, ("document", "Acumatica status", "Jira issue", "assignee", "priority", "due", "outcome"), rows)
        first = next((row for row in rows if row[2] != "-"), None)
        if first:
            say(f"   e.g. {first[2]}: {stack.jira.issue(first[2])['fields']['summary']}")

        _amount_change(stack, say, out, problems)

        say(f"3. A person resolves the issue of {RESOLVED.external_id} in Jira -> signed webhook -> worker -> Acumatica")
        (issue,) = stack.jira.issues_with_external_id(RESOLVED.external_id) or [None]
        if issue is None:
            problems.append("no issue to resolve")
        else:
            stack.jira.resolve_issue(issue["key"], "Done")
            stack.drain()
            from connector.adf import plain_text
            from connector.store import DynamoStore

            bill = stack.acumatica.document("Bill", (RESOLVED.type, RESOLVED.number))
            trail = DynamoStore.from_name(stack.aws.outputs["TableName"]).audit_trail(RESOLVED)
            actions = [f"{r['details']['action']} ({r['reason']})" for r in trail
                       if r["event"] == "action" and r["outcome"] == "done"]
            _table(out, ("document", "Jira issue", "Acumatica status", "actions taken, from the audit trail"),
                   [(RESOLVED.external_id, issue["key"], bill["Status"], "; ".join(actions))])
            comment = stack.jira.comments(issue["key"])[-1:] or [{}]
            say(f"   Jira comment on {issue['key']}: " + plain_text(comment[0].get("body")).replace("\n", " "))
            if bill["Status"] != "Open":
                problems.append(f"{RESOLVED.external_id} should be released (Open), is {bill['Status']}")

        say("4. Poll again: the unchanged backlog enqueues nothing and calls Jira zero times")
        before = len(stack.jira.exchanges())
        result = stack.tick("PollerFunction")
        queued = sum(r["enqueued"] for r in result["reports"])
        stack.drain()
        jira_calls = len(stack.jira.exchanges()) - before
        say(f"   documents queued: {queued}, Jira calls: {jira_calls}")
        if queued or jira_calls:
            problems.append(f"re-poll queued {queued} and made {jira_calls} Jira calls")
        dlq = stack.aws.client("sqs").get_queue_attributes(QueueUrl=stack.aws.outputs["DeadLetterQueueUrl"],
                                                           AttributeNames=["ApproximateNumberOfMessages"])
        dead = int(dlq["Attributes"]["ApproximateNumberOfMessages"])
        say(f"   dead-letter queue depth: {dead}")
        if dead:
            problems.append(f"{dead} message(s) in the dead-letter queue")
    for problem in problems:
        print(f"FAILED: {problem}", file=out)
    print(f"{'Round trip complete' if not problems else 'Round trip FAILED'} in {time.monotonic() - started:.1f} s",
          file=out)
    return 1 if problems else 0


def _amount_change(stack: LocalStack, say: Callable[[str], None], out: TextIO, problems: list[str]) -> None:
    """Step 2: a change stamped by Acumatica's own clock, hours behind the connector's, still reaches Jira."""
    from connector.adf import plain_text

    assert stack.acumatica
    skew = stack.acumatica.skew
    behind = f"{abs(skew) // timedelta(hours=1)}h{abs(skew) % timedelta(hours=1) // timedelta(minutes=1):02d}m"
    sign = "-" if stack.acumatica.render_offset < timedelta(0) else "+"
    offset = abs(stack.acumatica.render_offset)
    zone = f"{sign}{offset // timedelta(hours=1):02d}:{offset % timedelta(hours=1) // timedelta(minutes=1):02d}"
    say(f"2. Acumatica's clock runs {behind} {'behind' if skew < timedelta(0) else 'ahead of'} the connector's "
        f"(stamps in {zone}): the held bill {CHANGED.number}'s amount changes; the next tick tells its issue")
    record = stack.acumatica.update_document("Bill", (CHANGED.type, CHANGED.number), Amount=450)
    stack.tick("PollerFunction")
    stack.drain()
    (issue,) = stack.jira.issues_with_external_id(CHANGED.external_id) or [None]
    if issue is None:
        problems.append(f"{CHANGED.external_id} has no issue to tell")
        return
    comment = plain_text((stack.jira.comments(issue["key"])[-1:] or [{}])[0].get("body"))
    rows = [line.split(" | ") for line in comment.splitlines() if line.count(" | ") == 2]
    told = "; ".join(f"{name}: {old} -> {new}" for name, old, new in rows if name != "field")
    summary = stack.jira.issue(issue["key"])["fields"]["summary"]
    _table(out, ("document", "LastModifiedDateTime, as Acumatica rendered it", "Jira comment (old -> new)",
                 "summary now"),
           [(CHANGED.external_id, stack.acumatica.render(record["LastModifiedDateTime"]), f"{issue['key']}: {told}",
             summary)])
    if "500.00 USD" not in comment or "450.00 USD" not in comment or "450.00 USD" not in summary:
        problems.append(f"{CHANGED.external_id}: the amount change did not reach {issue['key']} as old -> new")


def _printer(out: TextIO) -> Callable[[str], None]:
    def say(text: str) -> None:
        print(f"\n{text}", file=out)

    return say


def _table(out: TextIO, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    from connector_cli.output import print_table

    print_table(header, rows, out=out, boxed=True)
