"""The README is true: every command block in it runs as written, against the local stack where it needs one.

Each ``sh`` block carries a marker on the line before it saying how it is held to reality:
- ``make``: the targets exist (``make -n``); ``make demo`` runs and prints what the README shows;
- ``serve`` then ``run``: the walkthrough, in two shells: the first block serves, the second runs against it with
  ``bash -e`` (any failing line fails the test), from a fresh folder, exactly as typed;
- ``parse``: the deploy steps, which need an AWS account and real Acumatica and Jira: every ``connector`` line is
  parsed by the real argument parser (placeholders such as ``<stack>`` filled in), every ``make`` target exists.
A new block without a marker fails the test, so nothing in the README escapes it."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import threading
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
MARKED = re.compile(r"<!-- readme-test: (?P<kind>[a-z ]+) -->\n```(?P<lang>\w+)\n(?P<body>.*?)\n```", re.S)
def blocks(kind: str) -> list[str]:
    return [m["body"] for m in MARKED.finditer(README) if m["kind"] == kind]


def commands(block: str) -> list[str]:
    """The block's command lines: continuations joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", "", block)
    return [line for line in (re.sub(r"\s+#.*$", "", raw).strip() for raw in joined.splitlines())
            if line and not line.startswith("#")]


def clean_env() -> dict[str, str]:
    """A shell that has not loaded any stack's environment (as a newcomer's), nor sits inside a `make test` (whose
    MAKEFLAGS would have `make demo` announce the directories it enters)."""
    return {k: v for k, v in os.environ.items() if not k.startswith((
        "ACUMATICA_", "JIRA_", "AWS_ENDPOINT", "TABLE_", "WORK_QUEUE", "DEAD_LETTER", "WEBHOOK_", "POWERTOOLS",
        "OWNER_MAP", "LOG_LEVEL", "MAKEFLAGS", "MAKELEVEL", "MFLAGS"))}


def test_every_command_block_is_marked_and_the_readme_stays_short():
    fenced = re.findall(r"^```sh$", README, re.M)
    assert len(fenced) == sum(1 for m in MARKED.finditer(README) if m["lang"] == "sh")
    assert {m["kind"] for m in MARKED.finditer(README)} <= {"make", "serve", "run", "parse", "output of make demo",
                                                             "output of make test"}
    assert len(README.encode()) <= 20 * 1024
    assert "make demo" in README and "make test" in README  # the CI hook greps for them


def test_every_link_of_the_readme_leads_somewhere():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if target.startswith("http"):
            continue
        assert (ROOT / target).exists(), f"README links to {target}, which is missing"


def test_one_spelling_of_the_command_throughout():
    """Every `connector` a reader is told to type is `.venv/bin/connector` (the README never activates the venv)."""
    for kind in ("make", "serve", "run", "parse"):
        for block in blocks(kind):
            for line in commands(block):
                words = shlex.split(line)
                assert "connector" not in words, f"bare `connector` in: {line}"


def test_the_jira_scopes_to_grant_are_the_ones_connect_asks_for():
    """A scope missing from the app's settings is missing from every grant: the README and the deploy guide name
    exactly what `connect jira` asks for (``read:jira-user`` came with DecisionAuthority)."""
    from connector_cli.connect import JIRA_SCOPES

    for page in (README, (ROOT / "docs" / "deploy.md").read_text()):
        listed = re.findall(r"scopes `([^`]+)`", " ".join(page.split()))
        assert listed == [JIRA_SCOPES], listed


def test_the_make_targets_exist():
    for block in blocks("make") + blocks("parse"):
        for line in commands(block):
            if line.startswith("make "):
                target = line.split()[1]
                assert subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True).returncode == 0, target


def test_the_deploy_steps_parse_with_the_real_parser():
    from connector_cli.main import build_parser

    placeholders = {"<stack>": "ap-exceptions", "<user>": "api-user", "<id>": "client-id", "<site>": "acme"}
    seen = set()
    for line in commands(blocks("parse")[0]):
        for placeholder, value in placeholders.items():
            line = line.replace(placeholder, value)
        for command in line.split("&&"):
            words = shlex.split(command)
            if words[0] == ".venv/bin/connector":
                build_parser().parse_args(words[1:])  # an unknown option or value exits 2: the test fails
                seen.add(words[1])
            elif words[0] == "sam":
                assert words[1] in ("build", "deploy"), command  # SAM needs AWS: checked by cfn-lint in make test
            else:
                assert words[0] == "make", command
    assert seen == {"connect", "ping", "preview"}


def test_make_test_shows_the_commands_the_makefile_runs():
    (shown,) = blocks("output of make test")
    dry_run = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    ran = [line for line in dry_run.splitlines() if line.startswith(".venv/bin/")]
    assert [line for line in shown.splitlines() if line.startswith(".venv/bin/")] == ran
    assert re.search(r"^\d+ passed", shown, re.M)


def _normalised(text: str) -> str:
    """What differs from run to run: issue keys (documents have no defined order), dates (due dates are relative to
    today; stamps are the sandbox's clock) and the duration."""
    text = re.sub(r"AP-\d+", "AP-#", text)
    text = re.sub(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2})?",
                  lambda m: "D" * len(m.group(0)), text)
    return re.sub(r"complete in \d+\.\d s", "complete in # s", text)


def test_make_demo_prints_what_the_readme_shows():
    done = subprocess.run(["make", "demo"], cwd=ROOT, capture_output=True, text=True, env=clean_env(), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    printed = [line for line in done.stdout.splitlines()
               if not line.startswith((".venv/bin/connector demo", "Local stack up"))]
    (shown,) = blocks("output of make demo")
    assert _normalised("\n".join(printed).strip()) == _normalised(shown.strip())


def test_the_walkthrough_runs_as_written(tmp_path):
    """Shell one serves, shell two runs the block; from a fresh folder that has only the installed `.venv`."""
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    ((serve,),) = [commands(block) for block in blocks("serve")]
    (run,) = blocks("run")
    server = subprocess.Popen(["bash", "-c", f"exec {serve}"], cwd=tmp_path, env=clean_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    printed: list[str] = []
    serving = threading.Event()

    def read() -> None:  # all of it, so the functions' log lines never fill the pipe
        for line in server.stdout:
            printed.append(line)
            if line.startswith("Serving"):
                serving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert serving.wait(timeout=180), "".join(printed)
        second = subprocess.run(["bash", "-e", "-c", run], cwd=tmp_path, env=clean_env(), capture_output=True,
                                text=True, timeout=300)
        out = second.stdout
        assert second.returncode == 0, out + second.stderr
        assert "Traceback" not in out + second.stderr
        assert "issue    created" in out or "issue   created" in out  # the first audit: the bill's issue exists
        assert "moved to Done by a person" in out and "On Hold -> Balanced" in out and "Balanced -> Open" in out
        assert "0 message(s) would be replayed" in out and "(never polled)" not in out
        pings = [line for line in out.splitlines() if line.startswith(("ok ", "FAIL", "skip"))]
        assert pings and all(line.startswith("ok ") for line in pings), out
    finally:
        server.send_signal(signal.SIGTERM)
        stopped = server.wait(timeout=60)
        reader.join(timeout=10)
    assert stopped == 0, "".join(printed[-40:])
    assert "Traceback" not in "".join(printed)
    # Each function runs in a container of its own, so every log line names the function that wrote it.
    writers = {"polled": "PollerFunction", "maintenance": "MaintenanceFunction", "work done": "WorkerFunction"}
    logged = [json.loads(line) for line in printed if line.startswith('{"level"')]
    assert {line["message"] for line in logged} >= set(writers), "".join(printed)
    assert [line for line in logged if line["message"] in writers
            and line["function_name"] != writers[line["message"]]] == []
