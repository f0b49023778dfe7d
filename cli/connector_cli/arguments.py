"""How every `connector` command reads its arguments: one voice for errors, help that shows defaults.

A person who mistypes an argument gets one line on standard error naming the option and what would be valid, and
exit status 2, from every command: the same rule as configuration errors (``main._one_line``). argparse's own
``error`` prints the whole usage first and its built-in ``type=int`` says "invalid int value", a Python type name;
so the parser class below answers in one line, and the value types here say what they accept in words.
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timezone
from typing import Callable, NoReturn

from .output import clean

FORMATS = ("text", "json")
ISSUE_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*-[1-9][0-9]*")
"""A Jira issue key as people type it (``AP-12``, ``ap-12``); Jira upper-cases project keys."""


class Refused(Exception):
    """An argument well formed but unusable (a document the stack has never seen): one line, exit 2, like a
    malformed one, but found only once the command looked."""


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and exit 2; subcommand parsers are made of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {clean(message)} (see `{self.prog} --help`)\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default after its help; an option whose absence means something says so in its help."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("%(default)" in text or not action.option_strings or action.default in (None, False, argparse.SUPPRESS)
                or isinstance(action, argparse._HelpAction)):
            return text
        return f"{text} (default: %(default)s)"


def at_least(minimum: int) -> Callable[[str], int]:
    """An integer no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (give {minimum} or more)") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"a whole number of at least {minimum}"
    return parse


def moment(text: str) -> datetime:
    """An ISO 8601 date or date-time; one without an offset is taken as UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: give an ISO 8601 date or date-time, e.g. 2026-11-01 or "
            "2026-11-01T08:00:00+02:00 (UTC when no offset is given)") from None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def external_id(text: str) -> str:
    """A document's external id, ``<Entity>:<Type>:<Number>`` with an entity the connector supports."""
    from connector.documents import PROFILES
    from connector.model import DocumentKey

    supported = ", ".join(PROFILES)
    try:
        key = DocumentKey.parse(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an external id: expected <Entity>:<Type>:<Number>, e.g. Bill:Bill:000123, with "
            f"Entity one of {supported}") from None
    if key.entity not in PROFILES:
        raise argparse.ArgumentTypeError(f"{text!r}: {key.entity!r} is not an entity the connector polls; "
                                         f"it polls {supported}")
    return key.external_id


def document_or_issue(text: str) -> str:
    """An external id, or a Jira issue key (returned upper-cased, as Jira writes it)."""
    if ":" in text:
        return external_id(text)
    if ISSUE_KEY.fullmatch(text.strip()):
        return text.strip().upper()
    raise argparse.ArgumentTypeError(
        f"{text!r} is neither an external id (<Entity>:<Type>:<Number>, e.g. Bill:Bill:000123) nor a Jira issue key "
        "(e.g. AP-12)")


def output_format(text: str) -> str:
    """``text`` or ``json``; ``table``, the preview's old name for ``text``, is still understood."""
    value = text.strip().lower()
    return "text" if value == "table" else value


def add_format(parser: argparse.ArgumentParser) -> None:
    """The one ``--format`` of every command that prints a result."""
    parser.add_argument("--format", type=output_format, choices=FORMATS, default="text",
                        help="text for people (tables, plain columns off a terminal), json for scripts")
