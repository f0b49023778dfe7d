"""The shape the project promises: a pure core, thin handlers, no secrets in code paths that log."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ("model", "ports", "documents", "rules", "watermarks", "sync", "resolve", "adf", "content", "webhooks",
        "signatures", "config", "tokens", "maintenance", "errors", "triage", "tables", "table_versions",
        "decisions", "effects", "session", "routing",
        "deletions", "urls", "ids", "inbound", "pollnow")
ADAPTER_LIBRARIES = {"boto3", "botocore", "requests", "urllib3"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_neither_boto3_nor_requests(module):
    assert not imported_modules(ROOT / "shared" / "connector" / f"{module}.py") & ADAPTER_LIBRARIES


@pytest.mark.parametrize("function", ["poller", "worker", "webhook", "maintenance"])
def test_handlers_are_thin_and_talk_only_to_the_connector_package_and_powertools(function):
    path = ROOT / "functions" / function / "app.py"
    allowed = {"__future__", "base64", "json", "aws_lambda_powertools", "connector", "datetime"}
    assert imported_modules(path) <= allowed
    assert len(path.read_text().splitlines()) < 110


def test_no_function_ships_code_outside_its_handler_and_the_layer():
    for function in ("poller", "worker", "webhook", "maintenance"):
        files = {p.name for p in (ROOT / "functions" / function).iterdir() if p.suffix == ".py"}
        assert files == {"app.py"}


def test_the_repo_documents_itself_every_doc_a_docstring_cites_exists():
    """Docstrings point at the project's own docs/, never at documents a cloner does not have."""
    sources = [p for top in ("shared", "local", "cli", "functions", "tests", "bench") for p in (ROOT / top).rglob("*.py")
               if p != Path(__file__).resolve()]
    cited: set[str] = set()
    for source in sources:
        text = source.read_text(encoding="utf-8")
        assert "../shared" not in text and "CONTRACT.md" not in text and "ARCHITECTURE.md" not in text, source
        cited |= set(re.findall(r"docs/[a-z-]+\.md", text))
    assert cited, "docstrings cite docs/"
    missing = sorted(name for name in cited if not (ROOT / name).is_file())
    assert missing == []
