"""Builders for Atlassian Document Format (ADF), the JSON that Jira Cloud requires for descriptions and comments.

ADF is strict: a text node's ``text`` must be non-empty, table cells and list items must hold block nodes, and the
``code`` mark combines only with ``link``. Jira answers 400 to a document that breaks these rules, so every builder
here is *empty-safe*: empty strings and ``None`` are dropped (``text`` returns ``None``; containers skip ``None``),
and a list or table with nothing to show returns ``None``, which ``doc`` drops in turn. Pure functions, no I/O.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Mapping, cast

Node = dict[str, Any]

EMPTY_VALUE = "—"
"""What a table shows for ``None`` or an empty string, so an empty cell reads as "no value", not as a glitch."""

INLINE_TYPES = frozenset({"text", "hardBreak", "mention", "emoji", "date", "status", "inlineCard", "placeholder",
                          "mediaInline", "inlineExtension"})


def doc(*blocks: Node | None) -> Node:
    """The root node; ``None`` blocks (empty lists, empty tables) are left out."""
    return {"type": "doc", "version": 1, "content": [block for block in blocks if block is not None]}


def text(value: Any, *, strong: bool = False, code: bool = False, link: str | None = None) -> Node | None:
    """A text node, or ``None`` for an empty value (ADF forbids empty text).

    ``code`` cannot be combined with ``strong``: ADF allows only ``link`` next to ``code``.
    """
    if value is None or str(value) == "":
        return None
    if code and strong:
        raise ValueError("ADF does not allow the code mark together with strong")
    marks: list[Node] = []
    if strong:
        marks.append({"type": "strong"})
    if code:
        marks.append({"type": "code"})
    if link:
        marks.append({"type": "link", "attrs": {"href": link}})
    node: Node = {"type": "text", "text": str(value)}
    if marks:
        node["marks"] = marks
    return node


def link(label: Any, href: str) -> Node | None:
    """A linked text; the address itself is shown when the label is empty. ``None`` when both are empty."""
    if not href:
        return text(label)
    return text(label if label not in (None, "") else href, link=href)


def mention(account_id: str, display: str = "") -> Node:
    """An @-mention of a Jira user: it notifies them, which a plain name in text does not."""
    attrs = {"id": account_id, "text": f"@{display}" if display else f"@{account_id}"}
    return {"type": "mention", "attrs": attrs}


def hard_break() -> Node:
    """A line break inside a paragraph (ADF has no newline characters in text)."""
    return {"type": "hardBreak"}


def paragraph(*inline: Node | str | None) -> Node:
    """A paragraph of inline nodes; plain strings become text nodes, empty ones vanish."""
    return {"type": "paragraph", "content": _inline(inline)}


def heading(level: int, *inline: Node | str | None) -> Node:
    """A heading of level 1 to 6."""
    if not 1 <= level <= 6:
        raise ValueError(f"ADF heading level must be 1..6, got {level}")
    return {"type": "heading", "attrs": {"level": level}, "content": _inline(inline)}


def bullet_list(*items: Node | str | None) -> Node | None:
    """A bullet list; each item is a string, an inline node or a block node. ``None`` when no item has content."""
    list_items = [{"type": "listItem", "content": [block]} for block in (_block(item) for item in items) if block]
    return {"type": "bulletList", "content": list_items} if list_items else None


def table(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> Node | None:
    """A table with a header row; cells are strings, values (formatted like ``fields_table``) or ADF nodes.

    ``None`` when there is neither a header nor a row. Every cell gets a paragraph even when empty, because ADF
    requires at least one block per cell.
    """
    content = []
    header_cells = [_cell("tableHeader", value) for value in header]
    if header_cells:
        content.append({"type": "tableRow", "content": header_cells})
    for row in rows:
        cells = [_cell("tableCell", value) for value in row]
        if cells:
            content.append({"type": "tableRow", "content": cells})
    if not content:
        return None
    return {"type": "table", "attrs": {"isNumberColumnEnabled": False, "layout": "default"}, "content": content}


def fields_table(mapping: Mapping[str, Any]) -> Node:
    """A two-column table (field, value) of a document's fields, with values formatted for people."""
    rows = [[str(name), value] for name, value in mapping.items()]
    return cast(Node, table(["Field", "Value"], rows))  # never None: the header row is always there


def format_value(value: Any) -> str:
    """How a field value reads in Jira: amounts with thousands separators, times in UTC, Yes/No, a dash for none."""
    if value is None or value == "":
        return EMPTY_VALUE
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        # Compare exponents, not quantize(): quantizing a value beyond the context's 28 digits raises.
        exponent = value.normalize().as_tuple().exponent
        return f"{value:,.2f}" if isinstance(exponent, int) and exponent >= -2 else f"{value:,f}"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.strftime("%Y-%m-%d %H:%M")
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple, set, frozenset)):
        return ", ".join(format_value(item) for item in value) or EMPTY_VALUE
    if isinstance(value, Mapping):
        return ", ".join(f"{key}: {format_value(item)}" for key, item in value.items()) or EMPTY_VALUE
    return str(value)


def plain_text(adf_doc: Mapping[str, Any] | None) -> str:
    """The readable text of an ADF document: one line per block, `` | `` between table cells, ``- `` for items."""
    if not adf_doc:
        return ""
    lines: list[str] = []
    _collect_lines(adf_doc, lines)
    return "\n".join(line for line in lines if line.strip())


def _inline(items: Iterable[Node | str | None]) -> list[Node]:
    nodes = []
    for item in items:
        node = text(item) if isinstance(item, str) else item
        if node is not None:
            nodes.append(node)
    return nodes


def _block(item: Any) -> Node | None:
    """A block node for a list item or a table cell; inline content is wrapped in a paragraph."""
    if item is None:
        return None
    if isinstance(item, Mapping) and "type" in item:
        if item["type"] in INLINE_TYPES:
            return paragraph(item)  # type: ignore[arg-type]
        if item["type"] == "paragraph" and not item.get("content"):
            return None
        return dict(item)
    shown = format_value(item)
    return paragraph(shown) if shown != EMPTY_VALUE else None


def _cell(kind: str, value: Any) -> Node:
    if isinstance(value, Mapping) and "type" in value:
        block = _block(value)
    else:
        block = paragraph(format_value(value))
    return {"type": kind, "attrs": {}, "content": [block or paragraph(EMPTY_VALUE)]}


def _inline_text(node: Mapping[str, Any]) -> str:
    kind = node.get("type")
    if kind == "text":
        return str(node.get("text", ""))
    if kind == "hardBreak":
        return "\n"
    if kind in ("mention", "emoji", "status", "date", "placeholder"):
        attrs = node.get("attrs") or {}
        return str(attrs.get("text") or attrs.get("shortName") or attrs.get("timestamp") or "")
    if kind == "inlineCard":
        return str((node.get("attrs") or {}).get("url", ""))
    return "".join(_inline_text(child) for child in node.get("content") or [])


def _collect_lines(node: Mapping[str, Any], lines: list[str], prefix: str = "") -> None:
    kind = node.get("type")
    children = node.get("content") or []
    if kind in ("paragraph", "heading", "codeBlock"):
        lines.append(prefix + "".join(_inline_text(child) for child in children))
    elif kind == "tableRow":
        cells = []
        for cell in children:
            cell_lines: list[str] = []
            for block in cell.get("content") or []:
                _collect_lines(block, cell_lines)
            cells.append(" ".join(cell_lines))
        lines.append(prefix + " | ".join(cells))
    elif kind == "listItem":
        item_lines: list[str] = []
        for block in children:
            _collect_lines(block, item_lines)
        if item_lines:
            lines.append(prefix + "- " + item_lines[0])
            lines.extend(prefix + "  " + line for line in item_lines[1:])
    elif kind in INLINE_TYPES:
        lines.append(prefix + _inline_text(node))
    else:
        for child in children:
            _collect_lines(child, lines, prefix)
