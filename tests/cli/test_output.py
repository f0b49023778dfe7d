"""Text from Jira, Acumatica or the audit is printed as text: never read as rich markup, never a terminal control."""

from __future__ import annotations

import io
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from connector_cli.output import StatusLine, clean, print_line, print_table

HOSTILE = ("reason [/x] closes nothing; [link=https://evil.example/pay]click here[/link] [bold red]RED[/]"
           "\x1b]0;window title\x07\x1b[2J\x1b[31mpainted\x1b[0m\x1b]8;;https://evil.example\x1b\\forged\x1b]8;;\x1b\\"
           "\r\u202eevil\u202c\x9b31m\x07end")


class Terminal(io.StringIO):
    """An output stream that says it is a terminal, so the table is drawn by rich with colours on."""

    def isatty(self) -> bool:
        return True


def test_clean_removes_escape_sequences_controls_and_bidi_overrides_but_keeps_the_words():
    text = clean(HOSTILE)
    assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text and "\r" not in text
    assert "\u202e" not in text and "window title" not in text  # an OSC sequence goes whole, its payload too
    assert "painted" in text and "[/x]" in text and "[link=https://evil.example/pay]click here[/link]" in text
    assert clean("two\nlines\tand a tab") == "two lines and a tab"


@given(st.text())
def test_nothing_clean_lets_through_is_a_control_character(text):
    assert not [c for c in clean(text) if unicodedata.category(c) == "Cc"]
    assert not set(clean(text)) & {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068",
                                   "\u2069"}


def test_a_terminal_table_prints_markup_as_text_and_forges_no_link(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per row, so the words can be found whole
    out = Terminal()
    print_table(("document", "reason"), [("Bill:Bill:000101", HOSTILE)], out=out, title="audit of [/x]")
    printed = out.getvalue()
    assert "[/x]" in printed and "[link=https://evil.example/pay]" in printed and "[bold red]RED[/]" in printed
    assert "\x1b]8;" not in printed  # no OSC 8 hyperlink: the link stayed text
    assert "\x1b]0;" not in printed and "\x1b[2J" not in printed and "\u202e" not in printed


@given(st.text(min_size=1, max_size=60))
def test_any_cell_prints_on_a_terminal_without_error_and_without_its_own_escapes(cell):
    out = Terminal()
    print_table(("cell",), [(cell,)], out=out)
    assert "\x1b]" not in out.getvalue()  # rich's colours are CSI; an OSC could only come from the data


def test_off_a_terminal_the_same_rows_are_plain_cleaned_columns():
    out = io.StringIO()
    print_table(("document", "reason"), [("Bill:Bill:000101", HOSTILE)], out=out)
    assert "\x1b" not in out.getvalue() and "[/x]" in out.getvalue() and len(out.getvalue().splitlines()) == 2


def test_a_line_of_prose_is_cleaned_too():
    out = io.StringIO()
    print_line(f"Acumatica said: {HOSTILE}", out=out)
    assert "\x1b" not in out.getvalue() and out.getvalue().count("\n") == 1


def test_the_status_line_shows_only_on_a_terminal():
    quiet = io.StringIO()
    with StatusLine(quiet, "checking [/x]") as status:
        status.update("1/2 checked [link=x]")
    assert quiet.getvalue() == ""
    terminal = Terminal()
    with StatusLine(terminal, "checking [/x]") as status:
        status.update("1/2 checked")
    assert terminal.getvalue()  # rich drew (and cleared) its line; markup in the text raised nothing
