"""Benchmarks that print figures: speed and memory are measured here, never asserted by timed tests.

Each benchmark module (``backlog``, ``classify``, ``webhook``, ``flow``, ``routing``, ``coldstart``) offers ``DEFAULT`` and ``QUICK``
configurations and ``run(config) -> Result``. A ``Result`` carries the figures to print and the correctness checks
made along the way: a fast figure for a run that lost or duplicated work would be worthless, so every benchmark
checks its own output and ``python -m bench`` exits non-zero when a check fails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Figure:
    """One measured or counted value; ``note`` says how to read it (what it includes, what it compares to)."""

    name: str
    value: float | int | str
    unit: str = ""
    note: str = ""
    goal: str = ""
    """The target this figure is judged against (``"<= 1.3x"``), empty when it is context, not a goal."""
    met: bool | None = None
    """Whether the goal is met; ``None`` when there is no goal. A missed goal is a finding, not a failed check."""


@dataclass(frozen=True)
class Check:
    """A correctness condition the benchmark verified on its own output."""

    name: str
    passed: bool
    detail: str = ""


@dataclass
class Result:
    benchmark: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def add(self, name: str, value: float | int | str, unit: str = "", note: str = "", *, goal: str = "",
            met: bool | None = None) -> None:
        self.figures.append(Figure(name, value, unit, note, goal, met))

    def check(self, name: str, passed: bool, detail: str = "") -> None:
        self.checks.append(Check(name, passed, detail))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}
