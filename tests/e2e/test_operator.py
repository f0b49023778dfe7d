"""The operator's commands on the local stack: replay says what it did (and the stack prints no traceback), data is
printed as text, `sandbox resolve` takes the document, and `connector local` checks its inputs before it starts."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
import time

import pytest

from connector_cli.main import main
from connector_local.stack import LocalStack

HOSTILE = "[/x] [link=https://evil.example/pay]pay here[/link] \x1b]0;pwned\x07\x1b[2Jcleared"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def stack():
    with LocalStack.start({}, quiet=True) as running:
        yield running


def hold_bill(stack, number: str, **fields) -> str:
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr=number, Vendor=fields.pop("Vendor", "V1"),
                                 Amount=9, Balance=9, Hold=True, **fields)
    stack.tick("PollerFunction")
    stack.drain()
    return f"Bill:Bill:{number}"


def dead_letter(stack, external_id: str, dedupe: str, reason: str = "On hold") -> None:
    stack.aws.client("sqs").send_message(
        QueueUrl=stack.aws.outputs["DeadLetterQueueUrl"], MessageGroupId=external_id, MessageDeduplicationId=dedupe,
        MessageBody=json.dumps({"kind": "sync", "external_id": external_id, "dedupe_id": dedupe,
                                "correlation_id": "c", "reason": reason}))


def test_replay_on_the_local_stack_says_in_words_what_it_did_and_nothing_prints_a_traceback(stack, capsys, caplog):
    document = hold_bill(stack, "600001")
    dead_letter(stack, document, "replay-words-1")
    caplog.set_level(logging.INFO)
    assert main(["replay"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("moved 1, failed 0: each message was copied from the dead-letter queue to the "
                                   "work queue") and "does not run StartMessageMoveTask" in captured.out
    assert "Traceback" not in captured.out + captured.err
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    stack.drain()


def test_local_move_tasks_answer_as_an_endpoint_without_them():
    """moto has no message move task; the local SQS says so as SQS would (400, not retried), unless moto grows one."""
    from moto.sqs.responses import SQSResponse

    from connector_local.aws import _MOVE_TASK_ACTIONS

    for action in _MOVE_TASK_ACTIONS:
        assert getattr(SQSResponse, action).__name__ == "refuse", f"moto implements {action} now: use it"


def test_replay_reports_as_json_for_scripts(stack, capsys):
    dead_letter(stack, hold_bill(stack, "600002"), "replay-json-1")
    assert main(["replay", "--dry-run", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["moved"] == 0 and [r["document"] for r in listed["would_replay"]] == ["Bill:Bill:600002"]
    assert main(["replay", "--external-id", "Bill:Bill:600002", "--format", "json"]) == 0
    moved = json.loads(capsys.readouterr().out)
    assert moved["moved"] == 1 and moved["method"] == "portable" and "one document's" in moved["why"]
    stack.drain()


def test_an_audit_reason_with_markup_and_escapes_is_printed_as_text(stack, monkeypatch):
    from connector.model import DocumentKey
    from connector.store import DynamoStore

    document = hold_bill(stack, "600003")
    store = DynamoStore.from_name(stack.aws.outputs["TableName"])
    store.audit(DocumentKey.parse(document), "comment", "posted", correlation_id="c", reason=HOSTILE)
    monkeypatch.setenv("COLUMNS", "300")
    out = Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["audit", document]) == 0
    printed = out.getvalue()
    assert "[/x]" in printed and "[link=https://evil.example/pay]pay here[/link]" in printed
    assert "\x1b]8;" not in printed and "\x1b]0;" not in printed and "\x1b[2J" not in printed


def test_preview_prints_acumaticas_text_as_text(stack, monkeypatch):
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="600004", Vendor="V[/x]\x1b[2J", Amount=9,
                                 Balance=9, Hold=True, Description=HOSTILE)
    out = Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["preview", "--entity", "Bill"]) == 0
    printed = out.getvalue()
    assert "V[/x]" in printed and "\x1b" not in printed


def test_replay_dry_run_prints_a_hostile_reason_as_text(stack, monkeypatch):
    dead_letter(stack, "Bill:Bill:600005", "replay-hostile-1", reason=HOSTILE)
    monkeypatch.setenv("COLUMNS", "300")
    out = Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["replay", "--dry-run", "--external-id", "Bill:Bill:600005"]) == 0
    printed = out.getvalue()
    assert "[/x]" in printed and "\x1b]8;" not in printed and "\x1b]0;" not in printed and "\x1b[2J" not in printed
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert main(["replay", "--external-id", "Bill:Bill:600005"]) == 0
    stack.drain()


def test_sandbox_resolve_finds_the_documents_issue_and_prints_the_connectors_decision(stack, capsys):
    document = hold_bill(stack, "600006")
    (issue,) = stack.jira.issues_with_external_id(document)
    drainer = threading.Thread(target=lambda: (time.sleep(1.0), stack.drain()))
    drainer.start()
    assert main(["sandbox", "resolve", document, "--wait", "30"]) == 0
    drainer.join()
    out = capsys.readouterr().out
    assert f"{issue['key']} ({document}) moved to Done by a person" in out
    assert "resolve" in out and "RemoveHold" in out  # the decision, from the audit trail
    assert stack.acumatica.document("Bill", ("Bill", "600006"))["Status"] == "Open"


def test_sandbox_resolve_still_takes_an_issue_key_and_refuses_a_document_without_an_issue(stack, capsys):
    document = hold_bill(stack, "600007")
    (issue,) = stack.jira.issues_with_external_id(document)
    assert main(["sandbox", "resolve", issue["key"].lower(), "--wait", "0", "--format", "json"]) == 0
    told = json.loads(capsys.readouterr().out)
    assert told["issue"] == issue["key"] and told["document"] == document
    stack.drain()
    assert main(["sandbox", "resolve", "Bill:Bill:699999"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no issue in the Jira sandbox carries Bill:Bill:699999" in err


def _local(*argv: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ACUMATICA_", "JIRA_", "AWS_ENDPOINT",
                                                                      "TABLE_", "WORK_QUEUE", "DEAD_LETTER"))}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "connector_cli", "local", *argv], capture_output=True, text=True,
                          env={**clean, **env}, timeout=60)
    return done, time.monotonic() - started


@pytest.mark.parametrize("argv, env, named", [
    (["--env-file", "/nonexistent/x.env"], {}, "--env-file /nonexistent/x.env: the folder /nonexistent does not exist"),
    (["--sample-data"], {"ACUMATICA_URL": "https://acme.acumatica.com", "ACUMATICA_SECRET_JSON": "{}"},
     "--sample-data"),
    ([], {"ACUMATICA_URL": "https://acme.acumatica.com"}, "ACUMATICA_SECRET_JSON"),
    ([], {"MAX_RECEIVE_COUNT": "1"}, "MaxReceiveCount (MAX_RECEIVE_COUNT)"),
    ([], {"POLL_OVERLAP_MINUTES": "ten"}, "PollOverlapMinutes (POLL_OVERLAP_MINUTES)"),
    ([], {"OWNER_MAP": "[1]"}, "OWNER_MAP"),
])
def test_connector_local_checks_every_input_before_anything_starts(argv, env, named):
    done, took = _local(*argv, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("connector local: configuration error") and named in done.stderr, done.stderr
    assert took < 10  # nothing was started: no moto, no sandboxes, no containers
