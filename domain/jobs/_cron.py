"""Crontab expressions (five fields, as cron and Oban's Cron plugin read them) and the cron
entries an application declares::

    expr = Crontab.parse("*/15 9-17 * * mon-fri")
    expr.matches(datetime(2026, 12, 7, 9, 30))      # True (a Monday)
    Cron("0 3 * * *", PruneTyping, timezone="Europe/Paris")
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from ._worker import Worker

__all__ = ["Cron", "Crontab"]

_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _value(text: str, names: tuple[str, ...], offset: int) -> int:
    low = text.lower()
    if low in names:
        return names.index(low) + offset
    return int(text)


def _field(
    text: str, lo: int, hi: int, names: tuple[str, ...] = (), offset: int = 0
) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
            if step < 1:
                raise ValueError(f"a step must be at least 1 in {text!r}")
        if part == "*":
            start, end = lo, hi
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _value(a, names, offset), _value(b, names, offset)
        else:
            start = _value(part, names, offset)
            end = hi if step > 1 else start
        if not (lo <= start <= hi and lo <= end <= hi) or start > end:
            raise ValueError(f"{part!r} is outside {lo}..{hi} in {text!r}")
        out.update(range(start, end + 1, step))
    return frozenset(out)


@dataclass(frozen=True)
class Crontab:
    """A parsed crontab expression: minute, hour, day of month, month, day of week (0 or 7
    is Sunday; names ``jan``..``dec`` and ``sun``..``sat``; ``*``, ``a-b``, ``*/n``, lists;
    and ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``)::

        Crontab.parse("0 */2 * * *").matches(datetime(2026, 1, 1, 4, 0))   # True
    """

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, expression: str) -> Crontab:
        """Parse *expression*; :class:`ValueError` naming what is wrong."""
        text = _NICKNAMES.get(expression.strip().lower(), expression)
        parts = text.split()
        if len(parts) != 5:
            raise ValueError(f"a crontab has 5 fields, {expression!r} has {len(parts)}")
        weekdays = _field(parts[4], 0, 7, _DAYS, 0)
        return cls(
            minutes=_field(parts[0], 0, 59),
            hours=_field(parts[1], 0, 23),
            days=_field(parts[2], 1, 31),
            months=_field(parts[3], 1, 12, _MONTHS, 1),
            weekdays=frozenset(d % 7 for d in weekdays),
            any_day=parts[2].startswith("*"),
            any_weekday=parts[4].startswith("*"),
        )

    def matches(self, at: dt.datetime) -> bool:
        """Whether the minute *at* (wall time of its zone) is one of this schedule's."""
        if at.minute not in self.minutes or at.hour not in self.hours:
            return False
        if at.month not in self.months:
            return False
        day_ok = at.day in self.days
        weekday_ok = (at.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:  # cron: both must hold unless one is "*"
            return day_ok and weekday_ok
        return day_ok or weekday_ok


@dataclass(frozen=True)
class Cron:
    """A periodic job declared on the application: *expression* (crontab syntax), the
    *worker*, its *args*, read in *timezone* (default UTC). Every node runs the schedule;
    each tick inserts one job for the whole cluster (the job is unique on the tick)::

        Jobs(App, queues={"default": 10}, crons=[Cron("0 3 * * *", Prune, {"days": 7})])
    """

    expression: str
    worker: type[Worker]
    args: Mapping[str, Any] = field(default_factory=dict)
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        Crontab.parse(self.expression)
        ZoneInfo(self.timezone)

    @property
    def crontab(self) -> Crontab:
        """The parsed expression."""
        return Crontab.parse(self.expression)

    def due(self, minute_utc: dt.datetime) -> bool:
        """Whether this entry fires in the UTC minute *minute_utc* (read in its zone)."""
        return self.crontab.matches(minute_utc.astimezone(ZoneInfo(self.timezone)))
