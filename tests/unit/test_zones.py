"""Time zones from the event stream: unknown names read as UTC, and caches stay bounded."""

from __future__ import annotations

import datetime as dt

from operators.gamification.periods import calendar
from operators.zones import known_zone, zone


def test_unknown_names_read_as_utc_and_known_ones_as_themselves() -> None:
    assert zone("Europe/Malta").utcoffset(dt.datetime(2026, 7, 1)) == dt.timedelta(hours=2)
    assert zone("Mars/Olympus_Mons") is dt.UTC and zone("../etc/passwd") is dt.UTC
    assert zone(None) is dt.UTC and zone("") is dt.UTC
    assert known_zone("UTC") and known_zone("America/Sao_Paulo")
    assert not known_zone("Mars/Olympus_Mons") and not known_zone(None)


def test_a_flood_of_made_up_zone_names_does_not_grow_the_caches_without_bound() -> None:
    # Zone names come from registrations: a producer sending arbitrary text must not
    # grow the process for ever (each name would otherwise keep a calendar and a zone).
    for i in range(5_000):
        calendar("day", f"Made/Up_{i}").span(1_767_225_600)
    assert zone.cache_info().maxsize is not None
    assert zone.cache_info().currsize <= zone.cache_info().maxsize
    info = calendar.cache_info()  # type: ignore[attr-defined]
    assert info.maxsize is not None and info.currsize <= info.maxsize < 5_000
