"""Time zones by IANA name, as players' registrations and the configuration give them.

One cache for every rule set and the guards. It is bounded: zone names come from the
event stream, and a producer sending arbitrary text must not grow the process without
limit. A name the zone database lacks reads as UTC (the job goes on; the decode step
counts such registrations, ``pitboss_unknown_timezones_total``).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@lru_cache(maxsize=4096)
def zone(name: str | None) -> dt.tzinfo:
    """The IANA zone ``name``; UTC when it is missing or unknown."""
    if not name:
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def known_zone(name: str | None) -> bool:
    """Whether ``name`` is a zone the database has (``UTC`` included)."""
    return bool(name) and zone(name) is not dt.UTC
