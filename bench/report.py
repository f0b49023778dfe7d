"""Plain-text rendering of benchmark results: one aligned table per benchmark, then its checks and notes."""

from __future__ import annotations

from bench import Figure, Result


def format_value(value: float | int | str) -> str:
    """Thousands separators for counts; three significant-ish digits for measurements."""
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def render(result: Result) -> str:
    lines = [f"== {result.benchmark}: {result.title}"]
    rows = [(f.name, _value_with_unit(f), _goal(f) + f.note) for f in result.figures]
    if rows:
        name_width = max(len(r[0]) for r in rows)
        value_width = max(len(r[1]) for r in rows)
        for name, value, note in rows:
            line = f"  {name:<{name_width}}  {value:>{value_width}}"
            lines.append(f"{line}  {note}".rstrip() if note else line)
    for check in result.checks:
        mark = "PASS" if check.passed else "FAIL"
        lines.append(f"  [{mark}] {check.name}" + (f": {check.detail}" if check.detail else ""))
    lines.extend(f"  note: {note}" for note in result.notes)
    return "\n".join(lines)


def _goal(figure: Figure) -> str:
    if not figure.goal:
        return ""
    return f"[goal {figure.goal}: {'met' if figure.met else 'MISSED'}] "


def _value_with_unit(figure: Figure) -> str:
    text = format_value(figure.value)
    return f"{text} {figure.unit}" if figure.unit else text


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(results: list[Result], header: list[str]) -> str:
    """BENCHMARKS.md: the header lines, then one table per benchmark with every figure beside its goal."""
    lines = ["# Benchmarks", "", *header, ""]
    for result in results:
        lines += [f"## {result.benchmark}", "", result.title, "", "| figure | value | goal | met | how to read it |",
                  "| --- | ---: | --- | --- | --- |"]
        for f in result.figures:
            met = "" if f.met is None else ("yes" if f.met else "**MISSED**")
            lines.append(f"| {_cell(f.name)} | {_cell(_value_with_unit(f))} | {_cell(f.goal)} | {met} | "
                         f"{_cell(f.note)} |")
        lines.append("")
        lines += [f"- check {'passed' if c.passed else '**FAILED**'}: {c.name}" + (f" ({c.detail})" if c.detail else "")
                  for c in result.checks]
        lines += [f"- note: {note}" for note in result.notes]
        lines.append("")
    return "\n".join(lines)
