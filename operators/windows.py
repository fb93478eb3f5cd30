"""Per-player sliding-window sums in a fixed, small amount of memory.

A :class:`WindowedSums` keeps, for each of ``metrics`` integer series (wager, net win/loss,
...), the sum over each window of a tuple of :class:`WindowSpec`. Time is event time, in
integer epoch seconds passed in by the caller; nothing here reads the wall clock.

Semantics, for window ``w`` with bucket size ``s`` and ``n`` buckets:

* ``bucket(t) = t // s``.
* ``total(w, m, now)`` is the sum of ``amount`` over every ``add(ts, m, amount)`` whose
  ``bucket(ts)`` lies in ``(bucket(now) - n, bucket(now)]``: the last ``n`` buckets,
  ending with the bucket of ``now``. This is exact for any ``now`` at or after the newest
  timestamp added so far.
* For ``now`` before the newest timestamp, buckets older than the ring's range are gone,
  so ``total`` is the exact sum over the buckets in ``(bucket(newest) - n, bucket(now)]``:
  the part of the window still retained.
* Each window is a ring of ``n`` buckets anchored at the newest bucket seen,
  ``head = newest_ts // s``, derived from the single newest timestamp. Moving the head
  forward zeroes the buckets it skips: at most ``n`` bucket writes, even after a gap of
  months.
* An add older than the newest timestamp but inside a window's ring lands in its own
  bucket. An add older than a window's ring (``bucket(ts) <= head - n``) is not counted in
  that window, though it may still count in a longer one; ``add`` returns ``False`` when
  it counted in no window at all, so the caller can count late events.

Sums are signed 64-bit integers (money in ten-thousandths of a currency unit), so one
bucket holds about ±9.2e14 currency units. An add that would take a bucket beyond that
raises ``OverflowError``; every window has advanced by then, so the sums stay consistent,
with that add counted only in the windows before the failing one.

All buckets of all windows and metrics live in one ``array('q')``, laid out window by
window, then metric by metric, then bucket slot by slot: one metric of a window is a
contiguous slice (summed in C) and one bucket of every metric a strided one (zeroed in one
slice write). The per-layout constants are computed once and shared by every instance
with the same ``(metrics, specs)``; an instance holds only the array and the newest
timestamp, and pickles as the raw array bytes plus the layout's few ints and names.
"""

from __future__ import annotations

import functools
import math
from array import array
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_WINDOWS", "WindowSpec", "WindowedSums"]


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A sliding window of ``buckets`` buckets of ``bucket_seconds`` seconds each."""

    name: str
    bucket_seconds: int
    buckets: int

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("WindowSpec: name must not be empty")
        if self.bucket_seconds < 1:
            raise ValueError(
                f"WindowSpec {self.name!r}: bucket_seconds must be at least 1, "
                f"got {self.bucket_seconds}"
            )
        if self.buckets < 1:
            raise ValueError(
                f"WindowSpec {self.name!r}: buckets must be at least 1, got {self.buckets}"
            )


DEFAULT_WINDOWS: tuple[WindowSpec, ...] = (
    WindowSpec("1h", 600, 6),
    WindowSpec("24h", 3600, 24),
    WindowSpec("7d", 86400, 7),
)

# Before the first add every bucket is zero, so any head works; one far in the past makes
# the first add a plain "advance past a long gap".
_EMPTY_NEWEST = -(2**62)
_STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class _Layout:
    """Constants shared by every instance with the same metrics and specs."""

    metrics: int
    specs: tuple[WindowSpec, ...]
    size: int
    # Every bucket boundary of every window is a multiple of this.
    grain: int
    # metric -> per window (bucket_seconds, buckets, first, end): the metric's bucket
    # slots are sums[first:end]. A dict so that a bad metric raises instead of wrapping.
    by_metric: dict[int, tuple[tuple[int, int, int, int], ...]]
    # Per window (bucket_seconds, buckets, base, end, zeros for the window, zeros for one
    # bucket of every metric): the window's slots are sums[base:end].
    windows: tuple[tuple[int, int, int, int, array[int], array[int]], ...]


@functools.cache
def _layout(metrics: int, specs: tuple[WindowSpec, ...]) -> _Layout:
    windows = []
    base = 0
    for spec in specs:
        width = spec.buckets * metrics
        windows.append(
            (
                spec.bucket_seconds,
                spec.buckets,
                base,
                base + width,
                array("q", [0]) * width,
                array("q", [0]) * metrics,
            )
        )
        base += width
    by_metric = {
        metric: tuple(
            (seconds, buckets, first, first + buckets)
            for seconds, buckets, window_base, *_ in windows
            for first in [window_base + metric * buckets]
        )
        for metric in range(metrics)
    }
    grain = math.gcd(*(spec.bucket_seconds for spec in specs))
    return _Layout(metrics, specs, base, grain, by_metric, tuple(windows))


class WindowedSums:
    """Sums of ``metrics`` integer series over each window of ``specs``, bucketed.

    See the module docstring for the exact semantics of :meth:`add` and :meth:`total`.
    """

    __slots__ = ("_layout", "_newest", "_sums")

    _layout: _Layout
    _newest: int
    _sums: array[int]

    def __init__(self, metrics: int, specs: tuple[WindowSpec, ...] = DEFAULT_WINDOWS) -> None:
        if metrics < 1:
            raise ValueError(f"WindowedSums: metrics must be at least 1, got {metrics}")
        if not specs:
            raise ValueError("WindowedSums: specs must name at least one window")
        self._layout = _layout(metrics, tuple(specs))
        # Repeating a one-element array allocates exactly; a constructor from a list or
        # bytes over-allocates by ~8%.
        self._sums = array("q", [0]) * self._layout.size
        self._newest = _EMPTY_NEWEST

    @property
    def metrics(self) -> int:
        """How many integer series are summed."""
        return self._layout.metrics

    @property
    def specs(self) -> tuple[WindowSpec, ...]:
        """The windows, in the order ``total`` indexes them."""
        return self._layout.specs

    def add(self, ts: int, metric: int, amount: int) -> bool:
        """Add ``amount`` to series ``metric`` at event time ``ts`` (epoch seconds).

        Returns ``False`` if ``ts`` is too old for every window: the add is then ignored
        and the caller decides how to count it.
        """
        layout = self._layout
        try:
            windows = layout.by_metric[metric]
        except KeyError:
            raise IndexError(
                f"WindowedSums.add: metric {metric!r} not in range(0, {layout.metrics})"
            ) from None
        sums = self._sums
        newest = self._newest
        if ts >= newest:
            self._newest = ts
            # One division pair decides for every window whether a head moves, because
            # all bucket boundaries are multiples of the grain.
            grain = layout.grain
            if ts // grain != newest // grain:
                _advance(sums, layout, newest, ts)
            for seconds, buckets, first, _ in windows:
                sums[first + ts // seconds % buckets] += amount
            return True
        counted = False
        for seconds, buckets, first, _ in windows:
            bucket = ts // seconds
            if newest // seconds - bucket < buckets:
                sums[first + bucket % buckets] += amount
                counted = True
        return counted

    def total(self, window: int, metric: int, now: int) -> int:
        """The sum of series ``metric`` over window ``window`` (an index into ``specs``).

        Exact for ``now`` at or after the newest timestamp added; for an earlier ``now``,
        the sum over the buckets of the window still retained (see the module docstring).
        """
        layout = self._layout
        windows = layout.by_metric.get(metric)
        if windows is None or not 0 <= window < len(windows):
            raise IndexError(
                f"WindowedSums.total: (window, metric) = ({window!r}, {metric!r}) not in "
                f"range(0, {len(layout.specs)}) x range(0, {layout.metrics})"
            )
        seconds, buckets, first, end = windows[window]
        head = self._newest // seconds
        lag = now // seconds - head
        sums = self._sums
        if lag == 0:
            return sum(sums[first:end])
        if lag > 0:
            # Later than the newest add: the oldest `lag` buckets have left the window.
            count = buckets - lag
            last = first + head % buckets
        else:
            # Earlier than the newest add: the newest `-lag` buckets are after `now`.
            count = buckets + lag
            last = first + (head + lag) % buckets
        if count <= 0:
            return 0
        start = last - count + 1
        if start >= first:
            return sum(sums[start : last + 1])
        # The buckets in range wrap around the end of the ring.
        return sum(sums[first : last + 1]) + sum(sums[start + buckets : end])

    def __getstate__(self) -> tuple[Any, ...]:
        # Plain ints, short strings and the raw int64 bytes: about as small as pickle gets
        # without compressing, and free of references to this module's classes.
        layout = self._layout
        specs = tuple((s.name, s.bucket_seconds, s.buckets) for s in layout.specs)
        return (_STATE_VERSION, layout.metrics, specs, self._newest, self._sums.tobytes())

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        version, metrics, specs, newest, raw = state
        if version != _STATE_VERSION:
            raise ValueError(
                f"WindowedSums: cannot restore state version {version}, expected {_STATE_VERSION}"
            )
        layout = _layout(metrics, tuple(WindowSpec(*spec) for spec in specs))
        sums = array("q", [0]) * layout.size
        if len(raw) != len(sums) * sums.itemsize:
            raise ValueError(
                f"WindowedSums: restored state has {len(raw)} bytes of sums, expected "
                f"{len(sums) * sums.itemsize} for {metrics} metrics over {layout.specs}"
            )
        # Same length, so this copies in place and keeps the exact allocation.
        sums[:] = array("q", raw)
        self._layout = layout
        self._sums = sums
        self._newest = newest

    def __repr__(self) -> str:
        names = ", ".join(spec.name for spec in self._layout.specs)
        newest = None if self._newest == _EMPTY_NEWEST else self._newest
        return f"WindowedSums(metrics={self._layout.metrics}, windows=[{names}], newest={newest})"


def _advance(sums: array[int], layout: _Layout, newest: int, ts: int) -> None:
    """Move every window's head from ``newest`` to ``ts``, zeroing the buckets it skips."""
    for seconds, buckets, base, end, zero_window, zero_bucket in layout.windows:
        head = ts // seconds
        gap = head - newest // seconds
        if gap >= buckets:
            sums[base:end] = zero_window
        elif gap > 0:
            for bucket in range(head - gap + 1, head + 1):
                # One bucket of every metric: slots base + slot, base + slot + buckets, ...
                sums[base + bucket % buckets : end : buckets] = zero_bucket
