"""Calendar time in the player's zone: cron ticks, birthdays and anniversaries.

All functions take and return integer epoch seconds and never read the wall clock.
Computing a cron tick with croniter costs about 0.1 ms, so ticks are cached per (cron
expression, time zone): every player of a zone shares one sorted list of ticks, extended
on demand, and the next tick after any time is a binary search.
"""

from __future__ import annotations

import bisect
import calendar
import datetime as dt
from functools import lru_cache

from croniter import croniter

from operators.zones import zone

__all__ = ["CronTicks", "Schedule", "next_yearly"]

_BATCH = 8  # ticks computed at once when a cache is extended


class CronTicks:
    """The ticks of one cron expression in one time zone, computed lazily and kept."""

    __slots__ = ("_cache", "_expression", "_zone")

    def __init__(self, expression: str, tz: dt.tzinfo) -> None:
        self._expression = expression
        self._zone = tz
        # (start, ticks): every tick in (start, ticks[-1]] is in the list. One tuple,
        # replaced whole and never changed in place, because a process's worker threads
        # share the rule set and so this cache.
        self._cache: tuple[int, list[int]] = (0, [])

    def _compute(self, after: int, count: int) -> list[int]:
        it = croniter(self._expression, dt.datetime.fromtimestamp(after, self._zone))
        return [int(it.get_next(float)) for _ in range(count)]

    def next_after(self, at: int) -> int:
        """The first tick strictly after ``at``."""
        start, ticks = self._cache
        if not ticks or at < start:
            # Before what is cached (or nothing yet): recompute from here, as far as before.
            fresh = self._compute(at, _BATCH)
            while ticks and fresh[-1] < ticks[-1]:
                fresh.extend(self._compute(fresh[-1], _BATCH))
            start, ticks = at, fresh
            self._cache = (start, ticks)
        if ticks[-1] <= at:
            longer = list(ticks)
            while longer[-1] <= at:
                longer.extend(self._compute(longer[-1], _BATCH))
            ticks = longer
            self._cache = (start, ticks)
        return ticks[bisect.bisect_right(ticks, at)]


class Schedule:
    """A cron expression, evaluated in any player's time zone."""

    __slots__ = ("_by_zone", "expression")

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._by_zone: dict[str | None, CronTicks] = {}

    @staticmethod
    def valid(expression: str) -> bool:
        """Whether croniter accepts the expression (five fields, or six with seconds)."""
        return bool(croniter.is_valid(expression))

    def next_after(self, at: int, timezone: str | None) -> int:
        """The first tick strictly after ``at`` in ``timezone``."""
        ticks = self._by_zone.get(timezone)
        if ticks is None:
            ticks = self._by_zone[timezone] = CronTicks(self.expression, zone(timezone))
        return ticks.next_after(at)


@lru_cache(maxsize=65_536)
def _yearly(month: int, day: int, local_time: dt.time, timezone: str | None, year: int) -> int:
    last = calendar.monthrange(year, month)[1]
    moment = dt.datetime.combine(
        dt.date(year, month, min(day, last)), local_time, tzinfo=zone(timezone)
    )
    return int(moment.timestamp())


def next_yearly(month: int, day: int, local_time: dt.time, timezone: str | None, after: int) -> int:
    """The first ``month``/``day`` at ``local_time`` in ``timezone`` strictly after ``after``.

    A 29 February falls on 28 February in other years.
    """
    # Start a year early: the UTC year of ``after`` can be one past the local one.
    year = dt.datetime.fromtimestamp(after, dt.UTC).year - 1
    while True:
        at = _yearly(month, day, local_time, timezone, year)
        if at > after:
            return at
        year += 1


def local_date(at: int, timezone: str | None) -> dt.date:
    """The calendar date at ``at`` in ``timezone``."""
    return dt.datetime.fromtimestamp(at, zone(timezone)).date()
