"""Terminal output of the `connector` commands: ``rich`` tables for people, plain columns or JSON for scripts.

A table printed to a terminal is drawn by ``rich`` at the terminal's width; printed anywhere else (a pipe, a file,
a test's buffer) the same rows come out as plain, space-aligned lines without box drawing or colour, so ``grep`` and
``awk`` keep working. ``--format json`` is for scripts that want structure.
"""

from __future__ import annotations

import sys
from typing import Sequence, TextIO


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]], *, out: TextIO | None = None,
                title: str | None = None, boxed: bool | None = None) -> None:
    """Print ``rows`` under ``header``; ``boxed`` forces the ``rich`` table on (the demo) or off."""
    out = out or sys.stdout
    if boxed if boxed is not None else out.isatty():
        from rich import box
        from rich.console import Console
        from rich.table import Table

        table = Table(*header, title=title, box=box.SQUARE, show_lines=False, title_justify="left")
        for row in rows:
            table.add_row(*(str(value) for value in row))
        terminal = out.isatty()
        Console(file=out, width=None if terminal else 220, no_color=not terminal, highlight=False).print(table)
        return
    if title:
        print(title, file=out)
    widths = [max(len(str(value)) for value in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        print("  ".join(str(value).ljust(width) for value, width in zip(row, widths)).rstrip(), file=out)
