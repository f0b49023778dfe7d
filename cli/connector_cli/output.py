"""Terminal output of the `connector` commands: ``rich`` tables for people, plain columns or JSON for scripts.

A table printed to a terminal is drawn by ``rich`` at the terminal's width; printed anywhere else (a pipe, a file,
a test's buffer) the same rows come out as plain, space-aligned lines without box drawing or colour, so ``grep`` and
``awk`` keep working. ``--format json`` is for scripts that want structure.

Every cell is data, and most of it comes from elsewhere: a Jira summary, an Acumatica description, an audit reason
quoting either. So a cell is printed as text, never read as ``rich`` markup (``[/x]`` would crash the command,
``[link=...]`` would forge a link), and control characters are taken out first (an ANSI escape sequence in a vendor
name would repaint the operator's terminal, a carriage return would overwrite what is already printed). JSON needs no
cleaning: the encoder escapes every control character.
"""

from __future__ import annotations

import re
import sys
from typing import Sequence, TextIO

_ESCAPE_SEQUENCES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erasing (ECMA-48 8.3.16)
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks, clipboard writes
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC strings
    r"|\x1b[@-Z\\-_]"  # the other two-byte escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 controls (tab and newline are handled apart) and the bidirectional overrides that reorder what a
terminal shows (CVE-2021-42574, "Trojan Source")."""


def clean(value: object) -> str:
    """``value`` as one printable line: escape sequences and control characters removed, line breaks and tabs
    turned into spaces (a cell, a message and a log line stay one line each)."""
    text = _ESCAPE_SEQUENCES.sub("", str(value))
    return _CONTROLS.sub("", text.replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " "))


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]], *, out: TextIO | None = None,
                title: str | None = None, boxed: bool | None = None) -> None:
    """Print ``rows`` under ``header``; ``boxed`` forces the ``rich`` table on (the demo) or off."""
    out = out or sys.stdout
    if boxed if boxed is not None else out.isatty():
        from rich import box
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        table = Table(title=Text(clean(title)) if title else None, box=box.SQUARE, show_lines=False,
                      title_justify="left")
        for name in header:
            table.add_column(Text(clean(name)))
        for row in rows:
            table.add_row(*(Text(clean(value)) for value in row))
        terminal = out.isatty()
        Console(file=out, width=None if terminal else 220, no_color=not terminal, highlight=False).print(table)
        return
    if title:
        print(clean(title), file=out)
    cells = [[clean(value) for value in row] for row in (header, *rows)]
    widths = [max(len(value) for value in column) for column in zip(*cells)]
    for row in cells:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip(), file=out)


def print_line(text: object, *, out: TextIO | None = None) -> None:
    """One line of prose that may quote data (a remote system's error, a document's reason): cleaned, as a cell."""
    print(clean(text), file=out or sys.stdout)


class StatusLine:
    """``rich``'s status line (a spinner and a sentence) while a command works, on a terminal only: a pipe, a file
    or a script's buffer gets the result alone. ``update`` takes plain text (never markup)."""

    def __init__(self, stream: TextIO, text: str) -> None:
        self._stream = stream
        self._text = text
        self._status = None

    def __enter__(self) -> StatusLine:
        if self._stream.isatty():
            from rich.console import Console
            from rich.text import Text

            self._status = Console(file=self._stream).status(Text(clean(self._text)))
            self._status.start()
        return self

    def update(self, text: str) -> None:
        if self._status is not None:
            from rich.text import Text

            self._status.update(Text(clean(text)))

    def __exit__(self, *exc_info: object) -> None:
        if self._status is not None:
            self._status.stop()
