"""The `connector` CLI against a running embedded stack (the environment names its resources, as in Lambda)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from connector_local.cli import main
from connector_local.stack import LocalStack


@pytest.fixture(scope="module")
def stack():
    with LocalStack.start({}, quiet=True) as running:
        running.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="400001", Vendor="V1", Amount=9, Balance=9,
                                       Hold=True)
        running.tick("PollerFunction")
        running.drain()
        yield running


def test_ping_checks_both_systems_and_the_configuration(stack, capsys):
    assert main(["ping"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "Approve" in out and "customfield_10050" in out


def test_ping_reports_a_wrong_approval_action_name(stack, capsys, monkeypatch):
    monkeypatch.setenv("APPROVE_ACTION_NAME", "ApproveDocument")
    assert main(["ping"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_audit_shows_what_happened_to_a_document(stack, capsys):
    assert main(["audit", "Bill:Bill:400001"]) == 0
    assert "created" in capsys.readouterr().out
    assert main(["audit", "Bill:Bill:400001", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records and all("correlation_id" in r for r in records)
    (issue,) = stack.jira.issues_with_external_id("Bill:Bill:400001")
    assert main(["audit", issue["key"]]) == 0
    assert "created" in capsys.readouterr().out
    assert main(["audit", "AP-99999"]) == 2


def test_status_shows_watermarks_and_queue_depths(stack, capsys):
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "Bill" in out and "watermark" in out and "dead-letter queue" in out


def test_replay_moves_dead_letters_back(stack, capsys):
    sqs = stack.aws.client("sqs")
    sqs.send_message(QueueUrl=stack.aws.outputs["DeadLetterQueueUrl"], MessageGroupId="Bill:Bill:400001",
                     MessageDeduplicationId="dead-1",
                     MessageBody=json.dumps({"kind": "sync", "external_id": "Bill:Bill:400001",
                                             "dedupe_id": "dead-1", "correlation_id": "c"}))
    assert main(["replay"]) == 0
    assert "moved 1" in capsys.readouterr().out
    stack.drain()
    assert len(stack.jira.issues_with_external_id("Bill:Bill:400001")) == 1


def test_connect_acumatica_stores_credentials_and_proves_them(stack, capsys):
    assert main(["connect", "acumatica", "--client-id", stack.acumatica.client_id,
                 "--client-secret", stack.acumatica.client_secret, "--username", "admin",
                 "--password", stack.acumatica.users["admin"]]) == 0
    out = capsys.readouterr().out
    assert "connected" in out and stack.acumatica.users["admin"] not in out


def test_connect_fills_the_webhook_functions_own_secret(stack, capsys):
    assert main(["connect", "acumatica", "--client-id", stack.acumatica.client_id,
                 "--client-secret", stack.acumatica.client_secret, "--username", "admin",
                 "--password", stack.acumatica.users["admin"], "--push-secret", "rotated-push-secret"]) == 0
    assert main(["connect", "jira", "--client-id", stack.jira.client_id, "--client-secret", stack.jira.client_secret,
                 "--webhook-secret", "rotated-webhook-secret"]) == 0
    capsys.readouterr()
    material = json.loads(stack.aws.client("secretsmanager").get_secret_value(
        SecretId=stack.aws.outputs["WebhookSecretArn"])["SecretString"])
    assert material == {"webhook_secret": "rotated-webhook-secret", "client_secret": stack.jira.client_secret,
                        "push_secret": "rotated-push-secret"}


def test_every_command_has_help(capsys):
    for command in ("demo", "local", "connect", "ping", "replay", "audit", "status"):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
    assert "usage: connector" in capsys.readouterr().out


def test_connector_local_serves_the_webhook_until_stopped():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACUMATICA_", "JIRA_", "AWS_ENDPOINT"))}
    process = subprocess.Popen([sys.executable, "-m", "connector_local.cli", "local", "--poll-seconds", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        webhook, printed = None, []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and webhook is None and process.poll() is None:
            line = process.stdout.readline()
            printed.append(line)
            if line.startswith("Webhook endpoint:"):
                webhook = line.split(":", 1)[1].strip()
        assert webhook, "connector local did not print its webhook endpoint:\n" + "".join(printed)
        answer = requests.post(webhook, data=b"{}", headers={"X-Hub-Signature": "sha256=" + "0" * 64}, timeout=10)
        assert answer.status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
