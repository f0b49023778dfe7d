"""The everyday case of an unreachable system: the ``.local.env`` of a `connector local` that has stopped.

Its ports are closed now (or, for a stack on a machine that went away, packets to it are dropped). Every operator
command, run as a person runs it (a process, the file's exports in its environment), answers within
``OPERATOR_ANSWER_SECONDS`` and names the host and the setting that points at it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from connector import timings
from connector_cli.main import operator_exports


def stopped_stack_env(tmp_path, *, aws: int, acumatica: int, jira: int) -> dict[str, str]:
    """The environment after `. ./.local.env` of a stack whose AWS, Acumatica and Jira were on these ports."""
    moto = f"http://127.0.0.1:{aws}"
    exports = operator_exports({
        "AWS_ENDPOINT_URL": moto, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "TABLE_NAME": "local-ConnectorTable", "WORK_QUEUE_URL": f"{moto}/123456789012/local-work.fifo",
        "DEAD_LETTER_QUEUE_URL": f"{moto}/123456789012/local-dlq.fifo",
        "ACUMATICA_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:local-AcumaticaSecret-x",
        "JIRA_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:local-JiraSecret-x",
        "WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:local-WebhookSecret-x",
        "ACUMATICA_URL": f"http://127.0.0.1:{acumatica}", "JIRA_API_URL": f"http://127.0.0.1:{jira}",
        "JIRA_AUTH_URL": f"http://127.0.0.1:{jira}", "JIRA_PROJECT_KEY": "AP",
        "JIRA_EXTERNAL_ID_FIELD": "customfield_10050", "OWNER_MAP": "{}", "DOCUMENT_TYPES": "Bill,PurchaseOrder,Check",
    })
    env_file = tmp_path / ".local.env"
    env_file.write_text(exports)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACUMATICA_", "JIRA_", "AWS_", "TABLE_",
                                                                    "WORK_QUEUE", "DEAD_LETTER"))}
    loaded = subprocess.run(["bash", "-c", f"set -a; . {env_file}; env -0"], capture_output=True, text=True,
                            env=env, check=True)
    return dict(line.split("=", 1) for line in loaded.stdout.split("\0") if "=" in line)


def connector(env: dict[str, str], *argv: str) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "connector_cli", *argv], env=env, capture_output=True, text=True,
                          timeout=60)
    return done, time.monotonic() - started


def test_ping_of_a_stopped_stack_answers_within_the_promise_naming_each_host(tmp_path, closed_port, blackhole_port,
                                                                             silent_port):
    env = stopped_stack_env(tmp_path, aws=closed_port, acumatica=blackhole_port, jira=silent_port)
    done, took = connector(env, "ping")
    assert took < timings.OPERATOR_ANSWER_SECONDS, f"ping took {took:.1f} s"
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = done.stdout.splitlines()
    acumatica = next(i for i, line in enumerate(lines) if f"ACUMATICA_URL (AcumaticaUrl) http://127.0.0.1:{blackhole_port}"
                     in line)
    assert lines[acumatica].startswith("FAIL") and "no answer within 3 s" in lines[acumatica]
    jira = next(i for i, line in enumerate(lines) if f"JIRA_API_URL (JiraApiUrl), JIRA_AUTH_URL (JiraAuthUrl) "
                f"http://127.0.0.1:{silent_port}" in line)
    assert "connected, but no answer" in lines[jira] and "did not answer" in lines[jira + 1]
    aws = next(i for i, line in enumerate(lines) if f"AWS_ENDPOINT_URL http://127.0.0.1:{closed_port}" in line)
    assert "connection refused" in lines[aws] and "connector local" in lines[aws + 1]
    # what depends on an unreachable host is skipped, not blamed on the configuration
    skipped = [line for line in lines if line.startswith("skip")]
    assert any("Jira project AP" in line for line in skipped) and any("OwnerMap" in line for line in skipped)
    assert "set JiraProjectKey" not in done.stdout and "add the named owners" not in done.stdout


@pytest.mark.parametrize("argv, setting", [
    (["status"], "AWS_ENDPOINT_URL"),
    (["audit", "Bill:Bill:000101"], "AWS_ENDPOINT_URL"),
    (["replay", "--dry-run"], "AWS_ENDPOINT_URL"),
    (["preview"], "AWS_ENDPOINT_URL"),  # the tables in effect first (an imported version lives in the stack's table)
])
def test_every_operator_command_answers_in_time_naming_the_host(tmp_path, blackhole_port, closed_port, argv,
                                                                setting):
    """The host each command calls first drops packets; the others refuse (a stopped stack's other ports)."""
    ports = {"aws": closed_port, "acumatica": closed_port, "jira": closed_port,
             "acumatica" if setting.startswith("ACUMATICA") else "aws": blackhole_port}
    env = stopped_stack_env(tmp_path, **ports)
    done, took = connector(env, *argv)
    assert took < timings.OPERATOR_ANSWER_SECONDS, f"{argv} took {took:.1f} s"
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"{setting} http://127.0.0.1:{blackhole_port}: no answer within 3 s" in done.stderr, done.stderr
