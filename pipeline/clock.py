"""The one clock: event-time watermarks, optionally carried forward by the wall clock.

The watermark is how far event time has certainly progressed: the slowest source's
newest event time, minus the allowed lateness. Replays use event time alone, so a month
of events replayed in a minute fires exactly the same timers as living through it. Live,
a source that goes quiet must not freeze time, so the clock also advances each source by
the wall time elapsed since its newest event: a timer then fires within a tick of its
deadline even when no event arrives (the same rule as Bytewax's ``EventClock``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

NEVER = -(2**62)


class EventClock:
    """Watermark over several sources (Kafka partitions, files)."""

    __slots__ = ("_lateness", "_newest", "_seen_at", "_wall")

    def __init__(
        self,
        lateness: int,
        wall: Callable[[], float] | None = None,
        newest: dict[str, int] | None = None,
    ) -> None:
        self._lateness = lateness
        self._wall = wall
        self._newest: dict[str, int] = dict(newest or {})
        started = wall() if wall is not None else 0.0
        self._seen_at: dict[str, float] = dict.fromkeys(self._newest, started)

    @classmethod
    def live(cls, lateness: int, newest: dict[str, int] | None = None) -> EventClock:
        """A clock for an unbounded source: idle time moves the watermark too."""
        return cls(lateness, time.time, newest)

    def observe(self, source: str, high_mark: int) -> None:
        """Record that ``source`` has delivered events up to ``high_mark``."""
        if high_mark > self._newest.get(source, NEVER):
            self._newest[source] = high_mark
            if self._wall is not None:
                self._seen_at[source] = self._wall()

    def watermark(self) -> int:
        """Event time up to which every source has certainly delivered its events."""
        if not self._newest:
            return NEVER
        if self._wall is None:
            return min(self._newest.values()) - self._lateness
        now = self._wall()
        return (
            min(
                newest + int(now - self._seen_at[source]) for source, newest in self._newest.items()
            )
            - self._lateness
        )

    def final(self) -> int:
        """At the end of a bounded input nothing more can arrive: the newest time seen."""
        return max(self._newest.values(), default=NEVER)

    def snapshot(self) -> dict[str, int]:
        """What survives a restart: event time only (wall readings mean nothing then)."""
        return dict(self._newest)
