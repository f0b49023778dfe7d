"""What a resolution means and who may decide, end to end: the real handlers on the embedded stack, with Jira moved
the way people, rules and apps move it (statuses and resolutions of both project styles, Automation for Jira, an
app, clerks and controllers in groups) and a delegation-of-authority table configured as a deployer would:
``DecisionAuthority = {"ap-clerks": {"Bill": 1000}, "finance-controllers": {"*": null}}`` and
``DeclineAction = {"PurchaseOrder": "Reject"}``."""

from __future__ import annotations

import json

import pytest

from connector.signatures import sign_hub
from connector_cli.main import main
from connector_local.jira_sandbox import AUTOMATION_ACCOUNT, PERSON_ACCOUNT
from connector_local.jira_sandbox.common import CONNECTOR_ACCOUNT
from connector_local.stack import WEBHOOK_SECRET, LocalStack
from tests.e2e.conftest import Harness

CLERK, CONTROLLER, APP = "5b10-clerk-casey", "5b10-controller-kim", "557058:other-app"
AUTHORITY = {"ap-clerks": {"Bill": 1000}, "finance-controllers": {"*": None}}


@pytest.fixture(scope="module")
def stack():
    env = {"DECISION_AUTHORITY": json.dumps(AUTHORITY), "DECLINE_ACTION": json.dumps({"PurchaseOrder": "Reject"})}
    with LocalStack.start(env, quiet=True) as running:
        running.jira.add_user(CLERK, "Casey Clerk", groups=["ap-clerks"])
        running.jira.add_user(CONTROLLER, "Kim Controller", groups=["finance-controllers"])
        running.jira.add_user(APP, "Some marketplace app", account_type="app")
        yield running


@pytest.fixture(scope="module")
def harness(stack) -> Harness:
    return Harness(stack)


def held_bill(stack, harness, number: str, amount: float = 500) -> str:
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr=number, Vendor="V100", Amount=amount,
                                 Balance=amount, Hold=True)
    harness.poll()
    (issue,) = harness.issues(f"Bill:Bill:{number}")
    return issue["key"]


def pending_order(stack, harness, number: str, total: float = 300) -> str:
    stack.acumatica.add_document("PurchaseOrder", requires_approval=True, Type="Normal", OrderNbr=number,
                                 VendorID="V200", OrderTotal=total, ControlTotal=total, Hold=False,
                                 Status="Pending Approval")
    harness.poll()
    (issue,) = harness.issues(f"PurchaseOrder:Normal:{number}")
    return issue["key"]


def posts(stack, entity: str, number: str) -> list:
    return [entry for entry in stack.acumatica.action_log if entry[0] == entity and entry[1][1] == number]


def comments(stack, key: str) -> list[str]:
    return [str(comment["body"]) for comment in stack.jira.comments(key)]


def category(stack, key: str) -> str:
    return stack.jira.issue(key)["fields"]["status"]["statusCategory"]["key"]


def deliver(harness, deliveries, copy: str = "") -> None:
    """Post the webhook deliveries of a move ourselves: a copy with another delivery id is what Jira's retries and
    a second registered webhook look like to the connector."""
    for body, headers in deliveries:
        if copy:
            headers = {**headers, "X-Atlassian-Webhook-Identifier": headers["X-Atlassian-Webhook-Identifier"] + copy}
        assert harness.post("/jira/webhook", body, headers).status_code in (200, 202)


def test_wont_do_as_a_status_in_a_team_managed_project_releases_nothing_and_comments_once(stack, harness):
    key = held_bill(stack, harness, "610001")
    stack.jira.project_style = "team-managed"
    try:
        deliveries = stack.jira.move_issue(key, "Won't Do", actor=CONTROLLER)
    finally:
        stack.jira.project_style = "company-managed"
    assert stack.jira.issue(key)["fields"]["resolution"]["name"] == "Done"  # Jira's resolution says nothing
    deliver(harness, deliveries)
    deliver(harness, deliveries, copy="-retry")
    stack.drain()
    assert posts(stack, "Bill", "610001") == []
    (told,) = comments(stack, key)
    assert "Resolved as Won't Do" in told and "stays on hold" in told
    assert category(stack, key) == "done"  # a person's "no" stands: the issue stays closed
    assert harness.queued(harness.poll()) == 0  # and polls leave it alone


def test_wont_do_as_a_resolution_on_done_releases_nothing_and_comments_once(stack, harness):
    key = held_bill(stack, harness, "610002")
    stack.jira.resolve_issue(key, "Done", actor=CONTROLLER, resolution="Won't Do")
    stack.drain()
    stack.jira.resolve_issue(key, "Closed", actor=CONTROLLER)  # Done → Closed is no new decision
    stack.drain()
    assert posts(stack, "Bill", "610002") == []
    (told,) = comments(stack, key)
    assert "Resolved as Won't Do" in told and "nothing was posted" in told


@pytest.mark.parametrize(("number", "actor", "why"), [("610003", AUTOMATION_ACCOUNT, "Automation for Jira"),
                                                       ("610004", APP, "an app's account")])
def test_a_rules_and_an_apps_transition_act_on_nothing(stack, harness, number, actor, why):
    key = held_bill(stack, harness, number)
    stack.jira.resolve_issue(key, "Done", actor=actor)
    stack.drain()
    assert posts(stack, "Bill", number) == []
    assert stack.acumatica.document("Bill", ("Bill", number))["Status"] == "On Hold"
    (told,) = comments(stack, key)
    assert "No action was taken" in told and why in told


def test_a_persons_late_delivery_lends_no_authority_to_an_apps_later_move(stack, harness):
    """A delivery names who made its own move; the decision is the changelog's newest move, re-read at work time.
    Here the controller's delivery arrives after the controller reopened the issue and an app resolved it again."""
    key = held_bill(stack, harness, "610010")
    controller = stack.jira.move_issue(key, "Done", actor=CONTROLLER)  # its delivery is held up on the way
    stack.jira.move_issue(key, "To Do", actor=CONTROLLER)
    stack.jira.move_issue(key, "Done", actor=APP)  # the app's own deliveries are lost
    deliver(harness, controller)
    stack.drain()
    assert posts(stack, "Bill", "610010") == []
    assert stack.acumatica.document("Bill", ("Bill", "610010"))["Status"] == "On Hold"
    (told,) = comments(stack, key)
    assert "No action was taken" in told and "an app's account" in told


def test_a_late_delivery_of_a_done_does_not_outvote_the_wont_do_that_followed_it(stack, harness):
    """The resolution too is the re-read one: the delivery of an earlier Done arrives after the same person reopened
    the issue and resolved it again as Won't Do."""
    key = held_bill(stack, harness, "610011")
    done = stack.jira.move_issue(key, "Done", actor=CONTROLLER)  # its delivery is held up on the way
    stack.jira.move_issue(key, "To Do", actor=CONTROLLER)
    stack.jira.move_issue(key, "Done", actor=CONTROLLER, resolution="Won't Do")  # these deliveries are lost
    deliver(harness, done)
    stack.drain()
    assert posts(stack, "Bill", "610011") == []
    (told,) = comments(stack, key)
    assert "Resolved as Won't Do" in told and "stays on hold" in told


def test_a_body_naming_the_connector_as_the_mover_does_not_silence_a_persons_decision(stack, harness):
    """A body's ``user`` is a claim (a dynamic webhook's JWT does not even cover the body): a body with the changelog
    id of a person's move and the connector's account as its ``user`` must not make that move the connector's. Who
    moved the issue is the changelog's answer, so the controller's release happens at once, and only once, and the
    genuine deliveries that follow are duplicates."""
    key = held_bill(stack, harness, "610012")
    genuine = stack.jira.move_issue(key, "Done", actor=CONTROLLER)
    body, headers = genuine[0]
    forged = json.loads(body)
    forged["user"] = {"accountId": CONNECTOR_ACCOUNT, "accountType": "app", "active": True}
    forged_body = json.dumps(forged).encode()
    if "X-Hub-Signature" in headers:  # an admin webhook's delivery: signed again, as a holder of the secret would
        headers = {**headers, "X-Hub-Signature": sign_hub(WEBHOOK_SECRET, forged_body)}
    deliver(harness, [(forged_body, headers)], copy="-forged")
    stack.drain()
    assert len(harness.releases("610012")) == 1
    deliver(harness, genuine)
    stack.drain()
    assert len(harness.releases("610012")) == 1


def test_a_clerk_within_the_limit_releases_and_the_trail_says_under_which_limit(stack, harness, capsys):
    key = held_bill(stack, harness, "610005", amount=800)
    stack.jira.resolve_issue(key, "Done", actor=CLERK)
    stack.drain()
    assert len(harness.releases("610005")) == 1
    outcome = comments(stack, key)[-1]
    assert "Acumatica updated" in outcome
    assert "Decided by Casey Clerk (groups: ap-clerks) under ap-clerks: Bill up to 1,000.00 USD" in outcome
    assert main(["audit", "Bill:Bill:610005"]) == 0
    assert "under ap-clerks: Bill up to 1,000.00 USD" in capsys.readouterr().out
    assert main(["audit", "Bill:Bill:610005", "--format", "json"]) == 0
    actions = [r for r in json.loads(capsys.readouterr().out) if r["event"] == "action"]
    assert actions and all(r["details"]["decided_by"] == CLERK and r["details"]["groups"] == ["ap-clerks"]
                           for r in actions)


def test_a_clerk_above_the_limit_is_refused_and_a_controller_then_releases_once(stack, harness):
    key = held_bill(stack, harness, "610006", amount=1250)
    clerk = stack.jira.move_issue(key, "Done", actor=CLERK)
    deliver(harness, clerk)
    stack.drain()
    assert posts(stack, "Bill", "610006") == []
    (refusal,) = comments(stack, key)
    assert "ap-clerks: Bill up to 1,000.00 USD" in refusal and "finance-controllers" in refusal
    assert category(stack, key) == "new"  # reopened for someone who may decide

    controller = stack.jira.move_issue(key, "Done", actor=CONTROLLER)
    deliver(harness, controller)
    deliver(harness, controller, copy="-duplicate")
    deliver(harness, clerk, copy="-late")  # the clerk's decision, delivered again late
    stack.drain()
    assert len(harness.releases("610006")) == 1
    assert "Decided by Kim Controller (groups: finance-controllers)" in comments(stack, key)[-1]
    assert harness.depth("DeadLetterQueueUrl") == 0

    # The table's records of this bill are lost; both decisions are delivered once more: still one release.
    _lose_the_ledger(stack, "DOC#Bill#Bill#610006", key)
    deliver(harness, controller, copy="-after-loss")
    deliver(harness, clerk, copy="-after-loss")
    stack.drain()
    assert len(harness.releases("610006")) == 1
    assert stack.acumatica.document("Bill", ("Bill", "610006"))["Status"] == "Open"
    assert harness.depth("DeadLetterQueueUrl") == 0


def test_a_person_in_no_group_of_the_table_is_refused(stack, harness):
    key = held_bill(stack, harness, "610007", amount=5)
    stack.jira.resolve_issue(key, "Done", actor=PERSON_ACCOUNT)  # Pat: jira-software-users only
    stack.drain()
    assert posts(stack, "Bill", "610007") == [] and category(stack, key) == "new"
    assert "neither their groups nor their account may decide a Bill" in comments(stack, key)[0]


def test_a_clerk_whose_limit_covers_bills_only_cannot_approve_a_purchase_order(stack, harness):
    key = pending_order(stack, harness, "PO610008", total=10)
    stack.jira.resolve_issue(key, "Done", actor=CLERK)
    stack.drain()
    assert posts(stack, "PurchaseOrder", "PO610008") == [] and category(stack, key) == "new"
    assert stack.acumatica.document("PurchaseOrder", ("Normal", "PO610008"))["Status"] == "Pending Approval"
    assert "may not decide this PurchaseOrder of 10.00 USD" in comments(stack, key)[0]


def test_decline_action_rejects_a_pending_purchase_order_once(stack, harness):
    key = pending_order(stack, harness, "PO610009")
    deliveries = stack.jira.move_issue(key, "Done", actor=CONTROLLER, resolution="Won't Do")
    deliver(harness, deliveries)
    deliver(harness, deliveries, copy="-duplicate")
    stack.drain()
    assert [entry[2:] for entry in posts(stack, "PurchaseOrder", "PO610009")] == [("Reject", "completed")]
    assert stack.acumatica.document("PurchaseOrder", ("Normal", "PO610009"))["Status"] == "Rejected"
    told = comments(stack, key)
    assert "Reject: Pending Approval → Rejected" in told[-1]
    harness.poll()  # Rejected is still an exception, and the issue already tells it: nothing more is said
    assert comments(stack, key) == told and category(stack, key) == "done"


def _lose_the_ledger(stack, partition: str, issue_key: str) -> None:
    """Every record the connector keeps about the document (state, claims, decision mark, audit) and the issue's
    link to it, gone, as after a table restored from an old backup."""
    dynamo = stack.aws.client("dynamodb")
    table = stack.aws.outputs["TableName"]
    items = dynamo.query(TableName=table, KeyConditionExpression="PK = :pk",
                         ExpressionAttributeValues={":pk": {"S": partition}})["Items"]
    assert any(item["SK"]["S"] == "DECISION" or item["SK"]["S"].startswith("CLAIM#") for item in items)
    for item in items:
        dynamo.delete_item(TableName=table, Key={"PK": item["PK"], "SK": item["SK"]})
    dynamo.delete_item(TableName=table, Key={"PK": {"S": f"ISSUE#{issue_key}"}, "SK": {"S": "DOC"}})


# --- the operator's view: ping, preview, connect, a malformed table --------------------------------------------------

def test_ping_shows_who_may_decide_what_and_checks_the_keys_and_the_scope(stack, capsys):
    assert main(["ping"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "WARN" not in out
    assert "ok    Jira group membership readable (read:jira-user)" in out
    assert "ok    DecisionAuthority keys are Jira groups or accounts" in out
    assert "ok    Acumatica offers each DeclineAction" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("ap-clerks", "finance-controllers"))]
    assert rows == [["ap-clerks", "up", "to", "1,000.00", "-", "-"],
                    ["finance-controllers", "any", "amount", "any", "amount", "any", "amount"]]
    assert main(["ping", "--format", "json"]) == 0
    (table,) = [check["table"] for check in json.loads(capsys.readouterr().out) if "table" in check]
    assert table[0] == {"key": "ap-clerks", "Bill": "up to 1,000.00", "PurchaseOrder": "-", "Check": "-"}


def test_ping_fails_on_a_key_that_is_neither_a_group_nor_an_account(stack, capsys, monkeypatch):
    monkeypatch.setenv("DECISION_AUTHORITY", json.dumps({"ap-clerks": {"Bill": 1000}, "finance-controlers": {"*": None},
                                                         CONTROLLER: {"Check": 50}}))
    assert main(["ping"]) == 1
    out = capsys.readouterr().out
    (failed,) = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert "finance-controlers: neither a Jira group nor an account" in failed and CONTROLLER not in failed
    assert "create the group in Jira" in out


def test_ping_fails_on_a_key_naming_an_account_that_never_decides(stack, capsys, monkeypatch):
    """An app's account and a deactivated person's exist in Jira, but ``decide`` takes neither's move for a
    decision: a key naming one lets nobody decide, and ping says which and why."""
    former = "5b10-former-clerk"
    stack.jira.add_user(former, "Former Clerk", active=False, groups=["alumni"])
    monkeypatch.setenv("DECISION_AUTHORITY", json.dumps({APP: {"*": None}, former: {"Bill": 500},
                                                         CONTROLLER: {"Check": 50}}))
    assert main(["ping"]) == 1
    out = capsys.readouterr().out
    (failed,) = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert failed.startswith("FAIL  DecisionAuthority keys are Jira groups or accounts")
    assert f"{APP}: that is an app's account, not a person's" in failed
    assert f"{former}: that account is deactivated" in failed and CONTROLLER not in failed
    assert "accountIds of active people" in out


def test_a_no_is_told_even_where_the_grant_cannot_read_group_membership(stack, harness):
    """A "no" that posts nothing needs no authority: its groups are not read, so a grant without ``read:jira-user``
    (the optional part of the table) cannot send a person's Won't Do to the DLQ untold."""
    key = held_bill(stack, harness, "610013")
    scopes = stack.jira.granted_scopes
    stack.jira.set_grant_scopes([scope for scope in scopes if scope != "read:jira-user"])
    try:
        stack.jira.resolve_issue(key, "Done", actor=CLERK, resolution="Won't Do")
        stack.drain()
    finally:
        stack.jira.set_grant_scopes(scopes)
    assert posts(stack, "Bill", "610013") == []
    (told,) = comments(stack, key)
    assert "Resolved as Won't Do" in told and "Casey Clerk resolved it as Won't Do" in told
    assert harness.depth("DeadLetterQueueUrl") == 0


def test_ping_tells_when_the_grant_cannot_read_group_membership(stack, capsys):
    scopes = stack.jira.granted_scopes
    stack.jira.set_grant_scopes([scope for scope in scopes if scope != "read:jira-user"])
    try:
        assert main(["ping"]) == 1
    finally:
        stack.jira.set_grant_scopes(scopes)
    out = capsys.readouterr().out
    assert "FAIL  Jira group membership readable (read:jira-user)" in out and "connector connect jira" in out


def test_ping_fails_on_a_decline_action_the_instance_does_not_offer(stack, capsys, monkeypatch):
    monkeypatch.setenv("DECLINE_ACTION", json.dumps({"PurchaseOrder": "Disapprove"}))
    assert main(["ping"]) == 1
    assert "FAIL  Acumatica offers each DeclineAction: PurchaseOrder offers" in capsys.readouterr().out


def test_ping_warns_that_an_empty_table_limits_no_one(stack, capsys, monkeypatch):
    monkeypatch.setenv("DECISION_AUTHORITY", "{}")
    before = len(stack.jira.exchanges())
    assert main(["ping"]) == 0
    out = capsys.readouterr().out
    assert "WARN  DecisionAuthority: who may decide what: DecisionAuthority is empty: anyone who can resolve" in out
    assert "n/a   Jira group membership readable (read:jira-user): DecisionAuthority is empty" in out
    assert not [e for e in stack.jira.exchanges()[before:] if e["path"] == "/rest/api/3/user/groups"]  # none read


def test_preview_shows_the_authority_table_under_its_plan(stack, capsys):
    assert main(["preview", "--entity", "Bill"]) == 0
    out = capsys.readouterr().out
    assert "Who may decide what (DecisionAuthority" in out and "ap-clerks" in out and "up to 1,000.00" in out


def test_connect_jira_asks_for_the_group_membership_scope(stack, capsys, monkeypatch):
    import io
    import sys
    from urllib.parse import parse_qs, urlparse

    monkeypatch.setattr(sys, "stdin", io.StringIO(stack.jira.client_secret + "\n"))
    assert main(["connect", "jira", "--client-id", stack.jira.client_id, "--client-secret", "-",
                 "--redirect-uri", "http://localhost:8765/callback"]) == 0
    url = capsys.readouterr().out.strip().splitlines()[-1]
    assert "read:jira-user" in parse_qs(urlparse(url).query)["scope"][0].split()


def test_a_malformed_authority_table_fails_with_one_line_naming_the_entry(stack, capsys, monkeypatch):
    monkeypatch.setenv("DECISION_AUTHORITY", json.dumps({"ap-clerks": {"Bill": -5}}))
    assert main(["status"]) == 2
    err = capsys.readouterr().err.strip()
    assert "DecisionAuthority" in err and "ap-clerks.Bill" in err and "\n" not in err
