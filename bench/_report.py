"""Figures and how they are shown: an aligned table for people, a JSON list for machines.

Every figure compares one of our measurements with a baseline taken in the same run on the same
box; ``ratio`` is always ``value / baseline_value``. Its goal is text such as ``">= 1.0x"``
(compares the ratio) or ``"<= 2600 B (BEAM)"`` (compares the value itself, in the figure's
unit), and ``met`` is computed from that text, never written by hand.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Figure", "Goal", "format_table", "write_json"]

_GOAL = re.compile(r"^\s*(>=|<=)\s*([0-9][0-9_,]*(?:\.[0-9]+)?)\s*(x\b)?(.*)$")
_COMPARE: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le}


@dataclass(frozen=True)
class Goal:
    """A parsed goal: ``op threshold`` applied to the ratio (``x`` suffix) or to the value."""

    op: str
    threshold: float
    on_ratio: bool

    @classmethod
    def parse(cls, text: str) -> Goal:
        """Read ``">= 1.0x"``, ``"<= 2x"`` or ``"<= 2600 B (BEAM)"``."""
        found = _GOAL.match(text)
        if found is None:
            raise ValueError(
                f"goal {text!r} must look like '>= 1.0x' (on the ratio) or '<= 2600 B' "
                "(on the value)"
            )
        op, number, x_suffix, _ = found.groups()
        return cls(op, float(number.replace(",", "").replace("_", "")), x_suffix is not None)

    def met(self, value: float, ratio: float) -> bool:
        """Whether a figure with this *value* and *ratio* reaches the goal."""
        subject = ratio if self.on_ratio else value
        return math.isfinite(subject) and _COMPARE[self.op](subject, self.threshold)


@dataclass(frozen=True)
class Figure:
    """One line of a suite's result; build it with :meth:`measured`."""

    name: str
    value: float | None
    unit: str
    baseline_name: str
    baseline_value: float | None
    ratio: float | None
    goal: str
    met: bool

    @classmethod
    def measured(
        cls,
        name: str,
        value: float | None,
        unit: str,
        baseline_name: str,
        baseline_value: float | None,
        goal: str,
    ) -> Figure:
        """A figure whose ratio and verdict follow from the two measurements and the goal.

        A value of ``None`` (on either side) means it could not be measured in this run, say
        because a feature has not landed yet: the figure shows as unavailable and not met.
        """
        parsed = Goal.parse(goal)
        if value is None or baseline_value is None:
            return cls(name, value, unit, baseline_name, baseline_value, None, goal, False)
        if not baseline_value > 0:
            raise ValueError(f"{name}: baseline {baseline_name!r} measured {baseline_value!r}")
        ratio = value / baseline_value
        met = parsed.met(value, ratio)
        return cls(name, value, unit, baseline_name, baseline_value, ratio, goal, met)

    @property
    def status(self) -> str:
        """``met``, ``MISSED`` or ``unavailable``, as the table shows it."""
        if self.ratio is None:
            return "unavailable"
        return "met" if self.met else "MISSED"

    def record(self) -> dict[str, Any]:
        """The JSON record: exactly name, value, unit, baseline, baseline_value, ratio, goal,
        met."""
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "baseline": self.baseline_name,
            "baseline_value": self.baseline_value,
            "ratio": self.ratio,
            "goal": self.goal,
            "met": self.met,
        }


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if abs(value) >= 0.01 else f"{value:.2e}"


def format_table(figures: Sequence[Figure]) -> str:
    """An aligned plain-text table of *figures*, one per row, numbers right-aligned."""
    header = ("figure", "ours", "unit", "baseline", "baseline", "ratio", "goal", "status")
    rows = [
        (
            f.name,
            _number(f.value),
            f.unit,
            f.baseline_name,
            _number(f.baseline_value),
            "-" if f.ratio is None else f"{f.ratio:.2f}x",
            f.goal,
            f.status,
        )
        for f in figures
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    right = {1, 4, 5}

    def line(cells: Sequence[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def write_json(figures: Sequence[Figure], path: Path) -> None:
    """Write the records of *figures* to *path* as a JSON list."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([f.record() for f in figures], indent=2) + "\n")
