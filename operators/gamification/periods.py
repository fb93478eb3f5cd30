"""Calendar periods in event time: local days, ISO weeks and months in a time zone.

A :class:`Calendar` answers "which period is event time ``ts`` in, and when does it start
and end" for one kind of period in one zone. It keeps the last answer, so the hot path
(a million bets of players in the same zone on the same day) pays two comparisons, and
behind it the last few periods asked for, so callers that alternate between periods (a
flush at the start of yesterday's window, then today's bet; the tournament settler
looking back a week) do not recompute them. Both caches are tuples replaced in one
assignment, so worker threads sharing a calendar never see half of an update. Nothing
here reads the wall clock.

Period ids sort by time within a kind: ``2026-03-02`` (day), ``2026-W10`` (ISO week),
``2026-03`` (month), ``all`` (all time), ``once`` (a one-off window).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Literal, NamedTuple

from operators.zones import zone

PeriodKind = Literal["day", "week", "month", "all_time", "once"]

FOREVER = 2**62
"""An end (or minus a start) that no event time reaches."""


class Span(NamedTuple):
    """One period: its id, ``[start, end)`` in epoch seconds, and a number ordering periods."""

    id: str
    start: int
    end: int
    serial: int


def local_midnight(day: dt.date, tz: dt.tzinfo) -> int:
    """Epoch seconds of the start of ``day`` in ``tz``."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


def weekday(day_index: int) -> int:
    """ISO weekday (1 = Monday .. 7 = Sunday) of a proleptic ordinal day."""
    return (day_index - 1) % 7 + 1


class Calendar:
    """Periods of one kind in one zone (a one-off window: ``Calendar.once``)."""

    __slots__ = ("_cache", "_recent", "_tz", "kind", "window", "zone_name")

    def __init__(self, kind: PeriodKind, zone_name: str | None) -> None:
        self.kind = kind
        self.zone_name = zone_name or "UTC"
        self._tz = zone(zone_name)
        self.window: tuple[int, int] | None = None
        self._cache: _Entry = (0, 0, Span("", 0, 0, 0), None)
        self._recent: tuple[_Entry, ...] = ()

    @classmethod
    def once(cls, start: int, end: int) -> Calendar:
        """A single window ``[start, end)``: period ``once``, with ``before``/``after`` around."""
        calendar = cls("once", "UTC")
        calendar.window = (start, end)
        return calendar

    def span(self, ts: int) -> Span:
        """The period containing event time ``ts``."""
        start, end, found, _ = self._cache
        if start <= ts < end:
            return found
        recent = self._recent
        for entry in recent:
            if entry[0] <= ts < entry[1]:
                self._cache = entry
                return entry[2]
        found = self._compute(ts)
        day = LocalDay(found, self._tz) if self.kind == "day" else None
        entry = (found.start, found.end, found, day)
        self._cache = entry
        self._recent = (entry, *recent[: _RECENT - 1])
        return found

    def local(self, ts: int) -> LocalDay:
        """The local day containing ``ts`` (a day calendar; shared, do not modify)."""
        start, end, _, day = self._cache
        if start <= ts < end and day is not None:
            return day
        found = self.span(ts)
        day = self._cache[3]
        return day if day is not None else LocalDay(found, self._tz)

    def _compute(self, ts: int) -> Span:
        kind = self.kind
        if kind == "all_time":
            return Span("all", -FOREVER, FOREVER, 0)
        if kind == "once":
            first, last = self.window or (0, 0)
            if ts < first:
                return Span("before", -FOREVER, first, -1)
            if ts >= last:
                return Span("after", last, FOREVER, 1)
            return Span("once", first, last, 0)
        tz = self._tz
        day = dt.datetime.fromtimestamp(ts, tz).date()
        if kind == "day":
            first_day, next_day = day, day + dt.timedelta(days=1)
            period_id, index = day.isoformat(), day.toordinal()
        elif kind == "week":
            first_day = day - dt.timedelta(days=day.weekday())
            next_day = first_day + dt.timedelta(days=7)
            year, week, _ = day.isocalendar()
            period_id, index = f"{year}-W{week:02d}", first_day.toordinal() // 7
        else:
            first_day = day.replace(day=1)
            next_day = (first_day + dt.timedelta(days=32)).replace(day=1)
            period_id, index = f"{day.year}-{day.month:02d}", day.year * 12 + day.month - 1
        start, end = local_midnight(first_day, tz), local_midnight(next_day, tz)
        if not start <= ts < end:  # a zone whose midnight does not exist that day
            start, end = min(start, ts), max(end, ts + 1)
        return Span(period_id, start, end, index)

    def previous(self, span: Span) -> Span:
        """The period just before ``span``."""
        return self.span(span.start - 1)


_Entry = tuple[int, int, Span, "LocalDay | None"]
_RECENT = 16
"""Periods a calendar remembers besides the last one (16 days cover a week's lookback)."""


@lru_cache(maxsize=4096)  # bounded: zone names come from players' registrations
def calendar(kind: PeriodKind, zone_name: str | None) -> Calendar:
    """The shared calendar of ``kind`` periods in ``zone_name`` (UTC for None)."""
    return Calendar(kind, zone_name)


class LocalDay:
    """A player's local day, as conditions read it through ``local``."""

    __slots__ = ("date", "start", "tz", "weekday", "weekend")

    def __init__(self, span: Span, tz: dt.tzinfo) -> None:
        self.date = span.id
        self.start = span.start
        self.tz = tz
        self.weekday = weekday(span.serial)
        self.weekend = self.weekday >= 6

    def hour(self, ts: int) -> int:
        """The local hour at ``ts``."""
        return dt.datetime.fromtimestamp(ts, self.tz).hour
