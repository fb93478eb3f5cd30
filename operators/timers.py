"""A timer wheel for event-time deadlines, cheap enough for millions of players.

Entries are bucketed by deadline; a bucket holds bare keys (player ids shared with the
state dict), so an armed timer costs a list slot, not an object. Entries are *lower
bounds*: the owner re-checks the real deadline when a bucket comes due and reschedules if
it moved, which lets the hot path arm a timer once instead of on every event.
"""

from __future__ import annotations

import heapq


class TimerWheel:
    """Keys scheduled at event-time deadlines, popped when a watermark passes them."""

    __slots__ = ("_buckets", "_granularity", "_order")

    def __init__(self, granularity: int = 60) -> None:
        self._granularity = granularity
        self._buckets: dict[int, list[str]] = {}
        self._order: list[int] = []  # heap of bucket ids present in _buckets

    def schedule(self, deadline: int, key: str) -> None:
        """Arm ``key`` to come due once the watermark reaches ``deadline``."""
        bucket = deadline // self._granularity
        keys = self._buckets.get(bucket)
        if keys is None:
            self._buckets[bucket] = [key]
            heapq.heappush(self._order, bucket)
        else:
            keys.append(key)

    def due(self, watermark: int) -> list[str]:
        """Pop every key whose bucket starts at or before ``watermark``.

        Keys in the watermark's own bucket may not be due yet: the caller checks the
        exact deadline and reschedules those (safe: the list is taken out first).
        """
        last = watermark // self._granularity
        order = self._order
        keys: list[str] = []
        while order and order[0] <= last:
            keys.extend(self._buckets.pop(heapq.heappop(order)))
        return keys

    def covers(self, deadline: int, watermark: int) -> bool:
        """Whether ``due(watermark)`` takes out the bucket that ``deadline`` is in."""
        return deadline // self._granularity <= watermark // self._granularity

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._buckets.values())
