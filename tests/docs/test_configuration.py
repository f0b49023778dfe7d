"""docs/configuration.md is the reference of every template parameter: it must list each one, with the template's
default, and nothing the template does not have."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(?P<name>[A-Za-z0-9]+)` \| (?P<default>[^|]+) \| (?P<meaning>.+) \|$")


def documented() -> dict[str, tuple[str, str]]:
    text = (ROOT / "docs" / "configuration.md").read_text()
    table = text.split("\n## Parameters\n", 1)[1].split("\n## ", 1)[0]
    rows = [ROW.match(line) for line in table.splitlines() if line.startswith("| `")]
    assert all(rows), "a row of the Parameters table is not `| `Name` | default | meaning |`"
    names = [row["name"] for row in rows]
    assert len(names) == len(set(names)), "a parameter is listed twice"
    return {row["name"]: (row["default"].strip(), row["meaning"].strip()) for row in rows}


@pytest.fixture(scope="module")
def parameters() -> dict:
    template, problems = decode(str(ROOT / "template.yaml"))
    assert not problems
    return template["Parameters"]


def written_default(spec: dict) -> str:
    """How the reference writes a default: `(required)` without one, `empty` for "", else the value as code."""
    if "Default" not in spec:
        return "(required)"
    value = str(spec["Default"])
    return "empty" if value == "" else f"`{value}`"


def test_every_template_parameter_is_documented_and_nothing_else(parameters):
    assert sorted(documented()) == sorted(parameters)


def test_every_documented_default_is_the_templates(parameters):
    for name, (default, meaning) in documented().items():
        assert default == written_default(parameters[name]), f"{name}: documented {default}"
        assert len(meaning) > 10, f"{name} is documented without saying what it does"
