"""The `connector` CLI against a running embedded stack (the environment names its resources, as in Lambda)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from connector_cli.main import main
from connector_local.stack import LocalStack


@pytest.fixture
def prompted(monkeypatch):
    """Answer the CLI's secret prompts (a secret is never a value on the command line): name -> value."""
    answers: dict[str, str] = {}
    monkeypatch.setattr("connector_cli.connect.getpass.getpass", lambda prompt: answers[prompt.rstrip(": ")])
    return answers


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
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert failed == ["FAIL  Acumatica workflow action 'ApproveDocument': Bill offers Approve, Reject, not "
                      "'ApproveDocument'"]  # this check alone, with what the instance offers
    assert "fix: set ApproveActionName (or ApproveActionNames) to one of the listed actions" in out


def test_ping_fails_when_the_stored_cloud_id_is_another_site_than_jira_site_url(stack, capsys, monkeypatch):
    """The grant reaches two sites, and JiraSiteUrl names the one whose cloudId is not stored (changed after `connect
    jira`): /myself answers for either, so only the cloudId JiraSiteUrl has tells the connector writes elsewhere."""
    stored = _secret(stack, "JiraSecretArn")["cloud_id"]
    (elsewhere,) = [site for site, cloud_id in stack.jira.cloud_ids.items() if cloud_id != stored]
    monkeypatch.setenv("JIRA_SITE_URL", elsewhere)
    assert main(["ping"]) == 1
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert failed == [f"FAIL  Jira token and cloudId: the stored cloudId {stored} is another site's: JiraSiteUrl "
                      f"{elsewhere} is {stack.jira.cloud_ids[elsewhere]}"]
    assert "fix: set JiraSiteUrl to the site the grant was connected to" in out
    assert "skip  Jira project AP: not checked, because Jira token and cloudId did not pass" in out


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


def test_audit_names_the_issue_takes_keys_in_any_case_and_refuses_unknown_documents(stack, capsys):
    (issue,) = stack.jira.issues_with_external_id("Bill:Bill:400001")
    assert main(["audit", issue["key"].lower()]) == 0
    created = [line for line in capsys.readouterr().out.splitlines() if "created" in line]
    assert created and all(issue["key"] in line for line in created)
    assert main(["audit", "Bill:Bill:999999"]) == 2
    assert "never queued" in capsys.readouterr().err


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


def test_connect_acumatica_stores_credentials_and_proves_them(stack, capsys, prompted):
    prompted.update({"client-secret": stack.acumatica.client_secret, "password": stack.acumatica.users["admin"]})
    assert main(["connect", "acumatica", "--client-id", stack.acumatica.client_id,
                 "--client-secret", "--username", "admin", "--password"]) == 0
    out = capsys.readouterr().out
    assert "connected" in out and stack.acumatica.users["admin"] not in out


def test_connect_fills_the_webhook_functions_own_secret(stack, capsys, prompted):
    push, hub = "rotated-push-secret-of-32-bytes-or-more", "rotated-webhook-secret-of-32-bytes-or-more"
    prompted.update({"client-secret": stack.acumatica.client_secret, "password": stack.acumatica.users["admin"],
                     "push-secret": push})
    assert main(["connect", "acumatica", "--client-id", stack.acumatica.client_id,
                 "--client-secret", "--username", "admin", "--password", "--push-secret"]) == 0
    prompted.update({"client-secret": stack.jira.client_secret, "webhook-secret": hub})
    assert main(["connect", "jira", "--client-id", stack.jira.client_id, "--client-secret",
                 "--webhook-secret"]) == 0
    capsys.readouterr()
    material = json.loads(stack.aws.client("secretsmanager").get_secret_value(
        SecretId=stack.aws.outputs["WebhookSecretArn"])["SecretString"])
    assert material == {"webhook_secret": hub, "client_secret": stack.jira.client_secret, "push_secret": push,
                        "cloud_id": _secret(stack, "JiraSecretArn")["cloud_id"]}


def test_every_command_has_help(capsys):
    for command in ("demo", "local", "connect", "ping", "replay", "audit", "status"):
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0
    assert "usage: connector" in capsys.readouterr().out


def test_connector_local_serves_the_webhook_until_stopped():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACUMATICA_", "JIRA_", "AWS_ENDPOINT"))}
    process = subprocess.Popen([sys.executable, "-m", "connector_cli", "local", "--poll-seconds", "2"],
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


def test_a_configuration_error_is_one_line_and_exit_status_2(monkeypatch, capsys):
    for name in ("ACUMATICA_URL", "JIRA_PROJECT_KEY", "JIRA_EXTERNAL_ID_FIELD"):
        monkeypatch.delenv(name, raising=False)
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "ACUMATICA_URL" in err and err.startswith("connector status: configuration error")


def test_a_malformed_setting_names_itself(stack, monkeypatch, capsys):
    monkeypatch.setenv("POLL_OVERLAP_MINUTES", "ten")
    assert main(["status"]) == 2
    assert "POLL_OVERLAP_MINUTES" in capsys.readouterr().err


def test_debug_shows_the_traceback(monkeypatch):
    monkeypatch.delenv("ACUMATICA_URL", raising=False)
    from connector.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        main(["--debug", "status"])


def test_an_aws_refusal_is_one_line(stack, monkeypatch, capsys):
    monkeypatch.setenv("TABLE_NAME", "no-such-table")
    assert main(["audit", "Bill:Bill:400001"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "ResourceNotFoundException" in err


@pytest.mark.parametrize("argv", [["local", "--poll-seconds", "-5"], ["local", "--poll-seconds", "0"],
                                  ["replay", "--max", "0"], ["replay", "--max", "many"]])
def test_arguments_out_of_range_are_refused_before_anything_runs(argv, capsys):
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "must be at least 1" in err or "not a whole number" in err


def test_status_as_json_for_scripts(stack, capsys):
    assert main(["status", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    bill = next(e for e in report["entities"] if e["entity"] == "Bill")
    assert bill["watermark"] and not bill["pass_in_progress"]
    assert {q["queue"] for q in report["queues"]} == {"work queue", "dead-letter queue"}
    assert "jira_webhook" in report


def test_ping_does_not_trust_a_cached_token(stack, capsys):
    """Acumatica forgets every token and the grant is dead, while a token still sits cached in the secret."""
    from connector.wiring import Wiring

    wiring = Wiring()
    wiring.acumatica_tokens.access_token()  # a token that looks valid for a while is now in the secret
    secret = wiring.acumatica_secret.read()
    stack.acumatica.expire_access_tokens()
    stack.acumatica.revoke_refresh_chain()
    try:
        wiring.acumatica_secret.write({**secret, "password": "changed-by-someone"})
        assert main(["ping", "--format", "json"]) == 1
        results = {r["check"]: r for r in json.loads(capsys.readouterr().out)}
        reading = results["Acumatica Bill readable with the selected fields"]
        assert not reading["ok"] and "connect acumatica" in reading["fix"]
        assert results["Jira token and cloudId"]["ok"]
    finally:  # the stack signs in again with the password: no token in the secret, the chain is dead anyway
        wiring.acumatica_secret.write({k: v for k, v in secret.items() if k not in ("access_token", "expires_at")})


def _secret(stack, output: str) -> dict:
    sm = stack.aws.client("secretsmanager")
    return json.loads(sm.get_secret_value(SecretId=stack.aws.outputs[output])["SecretString"])


def _still_works(stack, number: str) -> None:
    """The running stack keeps working, and the stored secret still obtains tokens on its own."""
    from connector.acumatica import acumatica_token_obtainer

    stored = _secret(stack, "AcumaticaSecretArn")
    assert acumatica_token_obtainer(stack.acumatica.url)({k: v for k, v in stored.items()
                                                          if k != "refresh_token"})["access_token"]
    stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr=number, Vendor="V1", Amount=5, Balance=5, Hold=True)
    stack.tick("PollerFunction")
    stack.drain()
    assert len(stack.jira.issues_with_external_id(f"Bill:Bill:{number}")) == 1


def test_connect_acumatica_with_a_wrong_client_secret_saves_nothing(stack, capsys, prompted):
    before = _secret(stack, "AcumaticaSecretArn")
    prompted["client-secret"] = "wrong"
    assert main(["connect", "acumatica", "--client-secret"]) == 2
    captured = capsys.readouterr()
    assert "connected" not in captured.out and "--client-secret" in captured.err
    assert "run `connector connect acumatica`" not in captured.err  # not the command that was just refused
    assert _secret(stack, "AcumaticaSecretArn") == before
    _still_works(stack, "400101")


def test_connect_acumatica_with_a_wrong_password_is_not_proven_by_the_stored_refresh_token(stack, capsys,
                                                                                           prompted):
    before = _secret(stack, "AcumaticaSecretArn")
    assert before.get("refresh_token"), "the stack holds a refresh token that would have 'proven' anything"
    prompted["password"] = "not-the-password-7q"
    assert main(["connect", "acumatica", "--username", "admin", "--password"]) == 2
    captured = capsys.readouterr()
    assert "connected" not in captured.out and "not-the-password-7q" not in captured.out + captured.err
    assert _secret(stack, "AcumaticaSecretArn") == before
    _still_works(stack, "400102")


def test_connect_acumatica_reads_secrets_from_standard_input(stack, capsys, monkeypatch):
    import io

    password = stack.acumatica.users["admin"]
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    assert main(["connect", "acumatica", "--username", "admin", "--password", "-"]) == 0
    out = capsys.readouterr().out
    assert "connected" in out and password not in out
    assert _secret(stack, "AcumaticaSecretArn")["password"] == password


def _consent(stack, capsys, redirect_uri: str = "http://localhost:8765/callback") -> str:
    import connector_cli.connect

    asked, connector_cli.connect.getpass.getpass = connector_cli.connect.getpass.getpass, lambda prompt: \
        stack.jira.client_secret
    try:
        assert main(["connect", "jira", "--client-id", stack.jira.client_id, "--client-secret",
                     "--redirect-uri", redirect_uri]) == 0
    finally:
        connector_cli.connect.getpass.getpass = asked
    url = capsys.readouterr().out.strip().splitlines()[-1]
    from urllib.parse import parse_qs, urlparse

    return parse_qs(urlparse(url).query)["state"][0]


def test_connect_jira_checks_the_oauth_state_before_anything_is_stored(stack, capsys):
    live = {k: v for k, v in _secret(stack, "JiraSecretArn").items() if k != "pending_connect"}
    state = _consent(stack, capsys)
    assert {k: v for k, v in _secret(stack, "JiraSecretArn").items() if k != "pending_connect"} == live
    code = stack.jira.issue_authorization_code("http://localhost:8765/callback")
    assert main(["connect", "jira", "--code", code, "--state", "forged"]) == 2
    assert "state does not match" in capsys.readouterr().err
    assert {k: v for k, v in _secret(stack, "JiraSecretArn").items() if k != "pending_connect"} == live
    assert main(["connect", "jira", "--code", code, "--state", state]) == 0
    assert "Jira connected" in capsys.readouterr().out
    after = _secret(stack, "JiraSecretArn")
    assert "pending_connect" not in after and after["refresh_token"] != live.get("refresh_token")
    assert after["cloud_id"] == live["cloud_id"]
    _still_works(stack, "400103")


def test_connect_jira_can_catch_the_redirect_itself(stack, capsys, monkeypatch):
    import socket
    import threading

    monkeypatch.setattr(sys, "stdin", io.StringIO(stack.jira.client_secret + "\n"))

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    redirect = f"http://localhost:{port}/callback"
    result = {}
    worker = threading.Thread(target=lambda: result.update(code=main([
        "connect", "jira", "--client-id", stack.jira.client_id, "--client-secret", "-",
        "--redirect-uri", redirect, "--listen"])))
    worker.start()
    deadline = time.monotonic() + 30
    state = None
    while time.monotonic() < deadline and not state:
        state = (_secret(stack, "JiraSecretArn").get("pending_connect") or {}).get("state")
        time.sleep(0.2)
    code = stack.jira.issue_authorization_code(redirect)
    answer = None
    while time.monotonic() < deadline and answer is None:
        try:
            answer = requests.get(f"http://127.0.0.1:{port}/callback", params={"code": code, "state": state},
                                  timeout=5)
        except requests.ConnectionError:
            time.sleep(0.2)
    worker.join(timeout=30)
    assert answer is not None and answer.status_code == 200
    assert result["code"] == 0 and "Jira connected" in capsys.readouterr().out


def _kill(stack, external_id: str, dedupe: str) -> None:
    stack.aws.client("sqs").send_message(
        QueueUrl=stack.aws.outputs["DeadLetterQueueUrl"], MessageGroupId=external_id, MessageDeduplicationId=dedupe,
        MessageBody=json.dumps({"kind": "sync", "external_id": external_id, "dedupe_id": dedupe,
                                "correlation_id": "c", "reason": "On hold"}))


def test_replay_dry_run_lists_the_dead_letters_and_moves_nothing(stack, capsys):
    _kill(stack, "Bill:Bill:400001", "dry-1")
    _kill(stack, "Bill:Bill:400002", "dry-2")
    assert main(["replay", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Bill:Bill:400001" in out and "Bill:Bill:400002" in out and "nothing was moved" in out
    assert main(["replay", "--dry-run", "--external-id", "Bill:Bill:400002"]) == 0
    out = capsys.readouterr().out
    assert "Bill:Bill:400002" in out and "Bill:Bill:400001" not in out
    depth = stack.aws.client("sqs").get_queue_attributes(QueueUrl=stack.aws.outputs["DeadLetterQueueUrl"],
                                                         AttributeNames=["ApproximateNumberOfMessages"])
    assert depth["Attributes"]["ApproximateNumberOfMessages"] == "2"


def test_replay_of_one_document_leaves_the_others_in_the_dlq(stack, capsys):
    assert main(["replay", "--external-id", "Bill:Bill:400002"]) == 0
    assert "moved 1, failed 0" in capsys.readouterr().out
    assert main(["replay", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Bill:Bill:400001" in out and "Bill:Bill:400002" not in out
    assert main(["replay"]) == 0
    stack.drain()
    assert main(["replay", "--dry-run"]) == 0
    assert "0 message(s)" in capsys.readouterr().out


class _Terminal(io.StringIO):
    """Standard input that is a terminal, holding the person's answers."""

    def isatty(self) -> bool:
        return True


def test_connect_jira_with_several_sites_lets_the_person_choose_from_a_list(stack, capsys, monkeypatch):
    other = "https://other-team.atlassian.net"
    assert other in stack.jira.sites  # the sandbox's grant reaches two sites
    monkeypatch.setenv("JIRA_SITE_URL", "")
    state = _consent(stack, capsys)
    code = stack.jira.issue_authorization_code("http://localhost:8765/callback")
    listed = sorted(stack.jira.sites)
    monkeypatch.setattr(sys, "stdin", _Terminal(f"9\n{listed.index(other) + 1}\n"))

    assert main(["connect", "jira", "--code", code, "--state", state]) == 0

    out = capsys.readouterr().out
    assert all(site in out for site in stack.jira.sites) and "Answer with a number from 1 to 2" in out
    assert f"for {other}" in out and "Set the JiraSiteUrl parameter" in out
    assert _secret(stack, "JiraSecretArn")["cloud_id"] == stack.jira.cloud_ids[other]


def test_connect_jira_with_several_sites_off_a_terminal_names_them_and_stores_nothing(stack, capsys, monkeypatch):
    monkeypatch.setenv("JIRA_SITE_URL", "")
    live = {k: v for k, v in _secret(stack, "JiraSecretArn").items() if k != "pending_connect"}
    state = _consent(stack, capsys)
    code = stack.jira.issue_authorization_code("http://localhost:8765/callback")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))

    assert main(["connect", "jira", "--code", code, "--state", state]) == 2

    err = capsys.readouterr().err
    assert "--site" in err and all(site in err for site in stack.jira.sites)
    assert {k: v for k, v in _secret(stack, "JiraSecretArn").items() if k != "pending_connect"} == live


@pytest.mark.parametrize("command", [["status"], ["audit", "Bill:Bill:400777", "--format", "json"]])
def test_a_reader_that_leaves_early_ends_the_command_quietly(stack, command):
    """`connector status | head -0`: no traceback and no "Exception ignored" from the flush at exit."""
    if not any(d["ReferenceNbr"] == "400777" for d in stack.acumatica.documents("Bill")):
        stack.acumatica.add_document("Bill", Type="Bill", ReferenceNbr="400777", Vendor="V1", Amount=5, Balance=5,
                                     Hold=True)
        stack.tick("PollerFunction")
        stack.drain()
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has gone before anything is written
    try:
        completed = subprocess.run([sys.executable, "-m", "connector_cli", *command], stdout=write_end,
                                   stderr=subprocess.PIPE, text=True, env=dict(os.environ), timeout=60)
    finally:
        os.close(write_end)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""


def test_every_oauth_state_can_be_typed_back_after_state():
    """The printed `--state <state>` must parse: a state starting with "-" would be taken for an option."""
    from types import SimpleNamespace
    from urllib.parse import parse_qs, urlparse

    from connector_cli import connect
    from connector_cli.main import build_parser

    stored: dict = {}
    wiring = SimpleNamespace(
        jira_secret=SimpleNamespace(read=lambda: {"client_id": "id", "client_secret": "secret"}),
        jira_tokens=SimpleNamespace(update_secret=lambda change: stored.update(change(stored))),
        settings=SimpleNamespace(jira_auth_url="https://auth.atlassian.com"))
    for _ in range(300):  # a url-safe token starts with "-" once in 64
        url = connect.consent_url(wiring, {}, "http://localhost:8765/callback")
        state = parse_qs(urlparse(url).query)["state"][0]
        assert build_parser().parse_args(["connect", "jira", "--code", "c", "--state", state]).state == state
