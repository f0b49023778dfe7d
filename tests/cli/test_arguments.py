"""One error voice for arguments: one line, exit 2, the option named with what would be valid, no Python type names.

Every option has help text showing its default; ``--debug`` is accepted anywhere; every command that prints takes
the same ``--format {text,json}``."""

from __future__ import annotations

import argparse
import re

import pytest

from connector_cli.arguments import document_or_issue, external_id, moment
from connector_cli.main import build_parser, main

PYTHON_WORDS = re.compile(r"\b(int|str|float|ValueError|TypeError|KeyError|Traceback|NoneType)\b")


@pytest.mark.parametrize("argv, names", [
    (["preview", "--since", "yesterday"], ["--since", "2026-11-01"]),
    (["preview", "--limit", "0"], ["--limit", "at least 1"]),
    (["preview", "--entity", "Invoice"], ["--entity", "Bill"]),
    (["preview", "--format", "xml"], ["--format", "json"]),
    (["replay", "--external-id", "garbage"], ["--external-id", "<Entity>:<Type>:<Number>", "Bill, PurchaseOrder"]),
    (["replay", "--external-id", "Invoice:INV:000123"], ["--external-id", "Invoice", "Bill, PurchaseOrder, Check"]),
    (["replay", "--max", "many"], ["--max", "whole number"]),
    (["replay", "--max", "0"], ["--max", "at least 1"]),
    (["audit", "garbage"], ["DOCUMENT", "external id", "issue key"]),
    (["audit"], ["DOCUMENT"]),
    (["sandbox", "resolve", "not a thing"], ["DOCUMENT", "Bill:Bill:000123"]),
    (["sandbox", "resolve", "AP-1", "--wait", "soon"], ["--wait", "whole number"]),
    (["local", "--poll-seconds", "-5"], ["--poll-seconds", "at least 1"]),
    (["status", "--frobnicate"], ["--frobnicate"]),
    (["status", "--format"], ["--format"]),
    (["launch"], ["launch", "demo"]),
    ([], ["COMMAND"]),
])
def test_every_argument_error_is_one_line_exit_2_naming_the_option(argv, names, capsys):
    with pytest.raises(SystemExit) as refused:
        main(argv)
    assert refused.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    line = captured.err
    assert line.startswith("connector") and "usage:" not in line
    assert all(name in line for name in names), line
    assert not PYTHON_WORDS.search(line), line


def test_debug_is_accepted_before_and_after_the_command():
    parser = build_parser()
    assert parser.parse_args(["--debug", "status"]).debug is True
    assert parser.parse_args(["status", "--debug"]).debug is True
    assert parser.parse_args(["audit", "Bill:Bill:000001", "--debug", "--format", "json"]).debug is True
    assert parser.parse_args(["status"]).debug is False


def test_debug_after_the_command_shows_the_traceback(monkeypatch):
    monkeypatch.delenv("ACUMATICA_URL", raising=False)
    from connector.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        main(["status", "--debug"])


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _every_command(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each command, and each action of a command that has actions of its own (``config import``...)."""
    found = {}
    for name, sub in _subcommands(parser).items():
        found[name] = sub
        if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
            found.update({f"{name} {action}": nested for action, nested in _subcommands(sub).items()})
    return found


PRINTING = ("ping", "status", "audit", "preview", "replay", "sandbox")


@pytest.mark.parametrize("command", PRINTING)
def test_every_command_that_prints_has_the_one_format_option(command):
    sub = _subcommands(build_parser())[command]
    (option,) = [a for a in sub._actions if "--format" in a.option_strings]
    assert list(option.choices) == ["text", "json"] and option.default == "text"


def test_the_old_spellings_still_work():
    parser = build_parser()
    assert parser.parse_args(["preview", "--format", "table"]).format == "text"
    assert parser.parse_args(["audit", "AP-1", "--json"]).format == "json"


@pytest.mark.parametrize("command", sorted(_every_command(build_parser())))
def test_every_option_has_help_and_shows_its_default(command):
    sub = _every_command(build_parser())[command]
    text = sub.format_help()
    for action in sub._actions:
        name = (action.option_strings or [action.dest])[-1]
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{command} {name} has no help text"
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            assert f"(default: {action.default})" in " ".join(text.split()), f"{command} {name} hides its default"


def test_the_top_level_help_has_no_restructuredtext_quoting():
    text = build_parser().format_help()
    assert "``" not in text and "COMMAND" in text and "--debug" in text


def test_the_value_types_accept_what_they_promise():
    assert external_id("Bill:Bill:000123") == "Bill:Bill:000123"
    assert external_id("PurchaseOrder:Normal:PO:45") == "PurchaseOrder:Normal:PO:45"  # the number may hold ':'
    assert document_or_issue("ap-12") == "AP-12"
    assert document_or_issue("Check:Payment:000078") == "Check:Payment:000078"
    assert moment("2026-11-01").isoformat() == "2026-11-01T00:00:00+00:00"
    assert moment("2026-11-01T08:00:00+02:00").utcoffset().total_seconds() == 7200
