"""The layer's dependencies: floors with the security fixes, a hash-pinned lock that agrees with requirements.txt and
is what the layer build installs, and an audit that says NOT DONE, never a pass, when it cannot consult its
database."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from types import SimpleNamespace

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT

REQUIREMENTS = ROOT / "shared" / "requirements.txt"
LOCK = ROOT / "shared" / "requirements.lock"


def requirements() -> list[Requirement]:
    return [Requirement(line) for line in REQUIREMENTS.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def locked() -> dict[str, tuple[Version, list[str]]]:
    """Name -> (pinned version, its hashes), from the lock's ``name==version \\ --hash=...`` entries."""
    entries: dict[str, tuple[Version, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()):
        head = block.strip().splitlines()[0] if block.strip() else ""
        if head.startswith("#") or not head:
            continue
        match = re.match(r"([A-Za-z0-9._-]+)==([^\s\\]+)", head)
        assert match, f"not a pinned entry: {head}"
        entries[canonicalize_name(match.group(1))] = (Version(match.group(2)), re.findall(r"--hash=sha256:[0-9a-f]{64}",
                                                                                           block))
    return entries


def test_requests_has_the_fix_for_credentials_sent_to_other_hosts_and_pyjwt_for_issuer_matching() -> None:
    floors = {canonicalize_name(r.name): r.specifier for r in requirements()}
    assert not floors["requests"].contains("2.32.3") and floors["requests"].contains("2.32.4")
    assert not floors["pyjwt"].contains("2.10.0")


def test_the_lock_pins_every_requirement_within_its_range_and_every_entry_by_hash() -> None:
    entries = locked()
    for requirement in requirements():
        version, _ = entries[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), requirement
    assert "aws-xray-sdk" in entries  # the [tracer] extra's dependency is locked too
    assert all(hashes for _, hashes in entries.values())


def test_every_lock_entry_says_which_requirement_pulls_it_in() -> None:
    """The compiler writes ``# via`` under each entry: an entry without one was added by hand, and would be
    installed into the layer without anything in requirements.txt asking for it."""
    blocks = [block for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text()) if re.match(r"[A-Za-z0-9]", block)]
    assert blocks and all("# via" in block for block in blocks)
    assert "-r shared/requirements.txt" in LOCK.read_text()


def test_the_layer_build_installs_exactly_the_lock_with_hashes_required() -> None:
    makefile = (ROOT / "Makefile").read_text()
    build = makefile[makefile.index("build-ConnectorLayer:"):]
    assert "--require-hashes" in build and "--no-deps" in build and "shared/requirements.lock" in build
    assert "requirements.txt" not in build.split("\n\n")[0]


def load_audit():
    spec = importlib.util.spec_from_file_location("ci_audit", ROOT / ".ci" / "audit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("stdout, strict, status, says", [
    ("", False, 0, "NOT DONE"),
    ("", True, 1, "NOT DONE"),
    (json.dumps({"dependencies": [{"name": "requests", "version": "2.34.2", "skip_reason": "not found"}]}), False, 0,
     "NOT DONE for 1 of 1"),
    (json.dumps({"dependencies": [{"name": "requests", "version": "2.32.3", "vulns": [
        {"id": "GHSA-9hjg-9r4m-mvj7", "fix_versions": ["2.32.4"]}]}]}), False, 1, "VULNERABLE: requests"),
    (json.dumps({"dependencies": [{"name": "requests", "version": "2.34.2", "vulns": []}]}), False, 0,
     "1 of 1 packages audited, no known vulnerabilities"),
])
def test_the_audit_reports_not_done_rather_than_a_pass_when_it_could_not_look(monkeypatch, capsys, stdout, strict,
                                                                            status, says) -> None:
    audit = load_audit()
    commands = []

    def run(command, **kwargs):
        commands.append(command)
        return SimpleNamespace(stdout=stdout, stderr="ConnectionError: pypi.org unreachable", returncode=1)

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr("sys.argv", ["audit.py", *(["--strict"] if strict else [])])
    assert audit.main() == status and says in capsys.readouterr().out
    assert str(LOCK) in commands[0] and "--no-deps" in commands[0]
