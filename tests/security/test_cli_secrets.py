"""`connector connect` and secrets: only from a prompt or standard input (a literal value is refused with the safe
spelling), operator-chosen secrets of at least 32 bytes (or generated), clearing at the source clears the webhook
function's copy, a refusal names what to fix (not the command just run), and every option says its default."""

from __future__ import annotations

import io
import json
import sys

import pytest
import requests

from connector_cli.main import build_parser, main
from connector_local.stack import PUSH_SECRET, LocalStack


@pytest.fixture(scope="module")
def stack():
    with LocalStack.start({}, quiet=True) as running:
        yield running


@pytest.fixture
def prompted(monkeypatch):
    answers: dict[str, str] = {}
    monkeypatch.setattr("connector_cli.connect.getpass.getpass", lambda prompt: answers[prompt.rstrip(": ")])
    return answers


def secret(stack: LocalStack, output: str) -> dict:
    return json.loads(stack.aws.client("secretsmanager").get_secret_value(
        SecretId=stack.aws.outputs[output])["SecretString"])


def push(stack: LocalStack, header_value: str) -> int:
    body = json.dumps({"Query": "AJC-Bills", "Id": f"probe-{header_value[:4]}", "Inserted": []}).encode()
    return requests.post(f"{stack.gateway.url}/acumatica/push", data=body, timeout=30,
                         headers={"X-Connector-Secret": header_value, "Content-Type": "application/json"}).status_code


@pytest.mark.parametrize("option", ["--client-secret", "--password", "--push-secret", "--webhook-secret"])
def test_a_literal_secret_on_the_command_line_is_refused_with_the_safe_spelling(option, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["connect", "acumatica", option, "hunter2-literal"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and f"{option} alone" in err and f"{option} -" in err
    assert "hunter2-literal" not in err


def test_connect_acumatica_with_nothing_to_store_is_an_argument_error(stack, capsys):
    before = secret(stack, "AcumaticaSecretArn")
    assert main(["connect", "acumatica"]) == 2
    err = capsys.readouterr().err
    assert "needs something to store" in err and "updated" not in err
    assert secret(stack, "AcumaticaSecretArn") == before


def test_a_chosen_secret_shorter_than_32_bytes_is_refused_and_nothing_is_stored(stack, capsys, prompted):
    before = secret(stack, "AcumaticaSecretArn")
    prompted["push-secret"] = "short-push-secret"
    assert main(["connect", "acumatica", "--push-secret"]) == 2
    err = capsys.readouterr().err
    assert "at least 32 bytes" in err and "--generate push-secret" in err and "short-push-secret" not in err
    assert secret(stack, "AcumaticaSecretArn") == before


def test_secrets_read_from_standard_input_one_line_each(stack, capsys, monkeypatch):
    chosen = "a-push-secret-read-from-standard-input-0123"
    monkeypatch.setattr(sys, "stdin", io.StringIO(stack.acumatica.users["admin"] + "\n" + chosen + "\n"))
    assert main(["connect", "acumatica", "--username", "admin", "--password", "-", "--push-secret", "-"]) == 0
    assert secret(stack, "AcumaticaSecretArn")["push_secret"] == chosen
    assert secret(stack, "WebhookSecretArn")["push_secret"] == chosen
    assert chosen not in capsys.readouterr().out


def test_a_generated_push_secret_is_stored_copied_printed_once_and_authenticates(stack, capsys):
    assert main(["connect", "acumatica", "--generate", "push-secret"]) == 0
    generated = secret(stack, "AcumaticaSecretArn")["push_secret"]
    assert len(generated.encode()) >= 32 and capsys.readouterr().out.count(generated) == 1
    assert secret(stack, "WebhookSecretArn")["push_secret"] == generated
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()  # the webhook function's five-minute cache of its secret
    assert push(stack, generated) == 200 and push(stack, PUSH_SECRET) == 401


def test_clearing_the_push_secret_at_the_source_clears_the_copy_and_refuses_deliveries(stack, capsys):
    assert main(["connect", "acumatica", "--generate", "push-secret"]) == 0
    old = secret(stack, "AcumaticaSecretArn")["push_secret"]
    assert main(["connect", "acumatica", "--clear", "push-secret"]) == 0
    assert secret(stack, "AcumaticaSecretArn")["push_secret"] == "" == secret(stack, "WebhookSecretArn")["push_secret"]
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    assert push(stack, old) == 401
    capsys.readouterr()


def test_clearing_the_jira_webhook_secret_clears_the_copy(stack, capsys, prompted):
    prompted["webhook-secret"] = "a-jira-admin-webhook-secret-of-enough-bytes"
    assert main(["connect", "jira", "--webhook-secret"]) == 0
    assert secret(stack, "WebhookSecretArn")["webhook_secret"] == prompted["webhook-secret"]
    assert main(["connect", "jira", "--clear", "webhook-secret"]) == 0
    assert secret(stack, "JiraSecretArn")["webhook_secret"] == "" == secret(stack, "WebhookSecretArn")["webhook_secret"]
    assert "cleared" in capsys.readouterr().out


def test_generate_and_clear_only_name_secrets_of_the_system_being_connected(capsys):
    assert main(["connect", "jira", "--generate", "push-secret"]) == 2
    assert "not a secret of connect jira" in capsys.readouterr().err


def test_every_connect_option_has_help_that_states_its_default():
    connect = next(action for action in build_parser()._subparsers._group_actions[0].choices.values()
                   if action.prog.endswith("connect"))
    for action in connect._actions:
        if action.option_strings and action.dest not in ("help", "stack", "debug"):
            assert action.help and "default" in action.help, action.dest
