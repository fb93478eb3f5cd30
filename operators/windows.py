"""Per-player sliding-window sums in a small, bounded amount of memory.

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
  forward forgets the buckets that leave the ring, whatever the gap (months are as cheap
  as a minute).
* An add older than the newest timestamp but inside a window's ring lands in its own
  bucket. An add older than a window's ring (``bucket(ts) <= head - n``) is not counted in
  that window, though it may still count in a longer one; ``add`` returns ``False`` when
  it counted in no window at all, so the caller can count late events.

Sums are signed 64-bit integers (money in ten-thousandths of a currency unit), so one
bucket holds about ±9.2e14 currency units. An add that would take a bucket beyond that
raises ``OverflowError``; the sums stay consistent, with that add counted in none or
only some of the windows (those before the failing one).

Storage is sparse, because most players touch few buckets: a player who bet once has one
bucket per window, not 25. The sums live in one exact-size ``array('q')``:

    [newest, entries in window 0, ..., entries in window W-1, entries...]

then, window by window and in ascending bucket order, one entry per bucket still in the
ring that was ever added to: ``[bucket, sum of metric 0, ..., sum of metric M-1]``. Once
anything was added, each window's last entry is its head bucket, so an add in the head
buckets (nearly every add) writes in place; a new bucket or a head that moves builds a
new, exact-size array (at most once per bucket of the finest window, per player). The
worst case, every bucket of every window in use, takes ``(1 + M)`` slots per bucket
instead of the dense ``M``: 600 bytes instead of 400 for the player windows.

:class:`WindowLayout` holds the constants shared by every series with the same
``(metrics, specs)`` and works on bare arrays, so the player state holds one array and
no other object (``operators.player_state``); :class:`WindowedSums` wraps one layout and
one array for everyone else. An array with nothing added yet is the layout's ``empty``
array, shared and never written to.
"""

from __future__ import annotations

import functools
import math
from array import array
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_WINDOWS", "WindowLayout", "WindowSpec", "WindowedSums", "window_layout"]


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

# Before the first add there are no entries, so any head works; one far in the past makes
# the first add a plain "advance past a long gap".
_EMPTY_NEWEST = -(2**62)
# Version 1: dense rings, (1, metrics, specs, newest, sums bytes). Version 2: the sparse
# array above, (2, metrics, specs, array bytes). Version 1 still loads.
_STATE_VERSION = 2

_Entries = list[list[int]]  # one window's entries, each [bucket, sum per metric...]


class WindowLayout:
    """How ``metrics`` series over ``specs`` sit in one array, and the operations on it.

    One instance per ``(metrics, specs)`` (:func:`window_layout`). Methods take the array
    and return the array to keep, which is a new one when an entry comes or goes.
    """

    __slots__ = ("_counts", "_header", "_last_slot", "empty", "grain", "metrics", "specs", "width")

    metrics: int
    specs: tuple[WindowSpec, ...]
    width: int  # slots per entry
    grain: int  # every bucket boundary of every window is a multiple of it
    empty: array[int]  # shared by every series with nothing added yet: never written
    _header: int
    _counts: tuple[int, ...]  # the slots holding each window's number of entries
    # metric -> the slot of that metric in a fictional entry just before window 0's
    # first entry; window w's head entry is that plus width * (entries of windows 0..w).
    _last_slot: dict[int, int]

    def __init__(self, metrics: int, specs: tuple[WindowSpec, ...]) -> None:
        if metrics < 1:
            raise ValueError(f"WindowedSums: metrics must be at least 1, got {metrics}")
        if not specs:
            raise ValueError("WindowedSums: specs must name at least one window")
        self.metrics = metrics
        self.specs = specs
        self.width = 1 + metrics
        self.grain = math.gcd(*(spec.bucket_seconds for spec in specs))
        self._header = 1 + len(specs)
        self._counts = tuple(range(1, self._header))
        self._last_slot = {m: self._header - self.width + 1 + m for m in range(metrics)}
        self.empty = self._pack(_EMPTY_NEWEST, [[] for _ in specs])

    # -- the hot path ----------------------------------------------------------------

    def add(self, sums: array[int], ts: int, metric: int, amount: int) -> array[int]:
        """Add ``amount`` to series ``metric`` at event time ``ts``; the array to keep.

        An add too old for every window changes nothing (:meth:`retains` tells).
        """
        try:
            slot = self._last_slot[metric]
        except KeyError:
            raise IndexError(
                f"WindowedSums.add: metric {metric!r} not in range(0, {self.metrics})"
            ) from None
        newest = sums[0]
        if ts >= newest:
            # One division pair decides for every window whether a head moves, because
            # all bucket boundaries are multiples of the grain.
            grain = self.grain
            if ts // grain != newest // grain or newest == _EMPTY_NEWEST:
                sums = self._advance(sums, ts)
            else:
                sums[0] = ts
            # Every window's last entry is now its head bucket, the bucket of ts.
            width = self.width
            for count in self._counts:
                slot += width * sums[count]
                sums[slot] += amount
            return sums
        return self._add_late(sums, ts, metric, amount)

    def total(self, sums: array[int], window: int, metric: int, now: int) -> int:
        """The sum of series ``metric`` over window ``window`` (an index into ``specs``).

        Exact for ``now`` at or after the newest timestamp added; for an earlier ``now``,
        the sum over the buckets of the window still retained (see the module docstring).
        """
        if not (0 <= window < len(self.specs) and 0 <= metric < self.metrics):
            raise IndexError(
                f"WindowedSums.total: (window, metric) = ({window!r}, {metric!r}) not in "
                f"range(0, {len(self.specs)}) x range(0, {self.metrics})"
            )
        spec = self.specs[window]
        last = now // spec.bucket_seconds
        first = last - spec.buckets  # exclusive
        width = self.width
        start = self._header
        for count in self._counts[:window]:
            start += width * sums[count]
        end = start + width * sums[1 + window]
        # Entries are all inside the ring; the window ending at now is a range of buckets.
        total = 0
        for at in range(start, end, width):
            if first < sums[at] <= last:
                total += sums[at + 1 + metric]
        return total

    def retains(self, sums: array[int], ts: int) -> bool:
        """Whether an add at ``ts`` counts in at least one window."""
        newest = sums[0]
        if ts >= newest:
            return True
        return any(
            newest // spec.bucket_seconds - ts // spec.bucket_seconds < spec.buckets
            for spec in self.specs
        )

    # -- entries coming and going --------------------------------------------------------

    def _advance(self, sums: array[int], ts: int) -> array[int]:
        """Move every head to the bucket of ``ts`` (at or after the newest add): forget
        what leaves each ring, and give each window an entry for its new head."""
        newest, windows = self._unpack(sums)
        changed = False
        for spec, entries in zip(self.specs, windows, strict=True):
            head = ts // spec.bucket_seconds
            if head == newest // spec.bucket_seconds and newest != _EMPTY_NEWEST:
                continue  # this head stays: so does its entry
            changed = True
            oldest = head - spec.buckets  # exclusive
            entries[:] = [entry for entry in entries if entry[0] > oldest]
            if not entries or entries[-1][0] != head:
                entries.append([head] + [0] * self.metrics)
        if not changed:  # between buckets of no window (their grain is finer)
            sums[0] = ts
            return sums
        return self._pack(ts, windows)

    def _add_late(self, sums: array[int], ts: int, metric: int, amount: int) -> array[int]:
        """An add before the newest one: into its own bucket of each ring that holds it."""
        newest = sums[0]
        width = self.width
        at = self._header
        targets: list[int] = []  # the slots to add to, once every bucket has an entry
        missing = False
        for index, spec in enumerate(self.specs):
            count = sums[1 + index]
            bucket = ts // spec.bucket_seconds
            if newest // spec.bucket_seconds - bucket < spec.buckets:
                for entry in range(at, at + width * count, width):
                    if sums[entry] == bucket:
                        targets.append(entry + 1 + metric)
                        break
                else:
                    missing = True
            at += width * count
        if missing:
            newest, windows = self._unpack(sums)
            for spec, entries in zip(self.specs, windows, strict=True):
                bucket = ts // spec.bucket_seconds
                retained = newest // spec.bucket_seconds - bucket < spec.buckets
                if retained and all(entry[0] != bucket for entry in entries):
                    entries.append([bucket] + [0] * self.metrics)
                    entries.sort()
            sums = self._pack(newest, windows)
            return self._add_late(sums, ts, metric, amount)  # every bucket has its entry
        for target in targets:
            sums[target] += amount
        return sums

    def _unpack(self, sums: array[int]) -> tuple[int, list[_Entries]]:
        width = self.width
        at = self._header
        windows: list[_Entries] = []
        for count in sums[1 : self._header]:
            windows.append(
                [sums[i : i + width].tolist() for i in range(at, at + width * count, width)]
            )
            at += width * count
        return sums[0], windows

    def _pack(self, newest: int, windows: list[_Entries]) -> array[int]:
        values = [newest, *(len(entries) for entries in windows)]
        for entries in windows:
            for entry in entries:
                values += entry
        # Repeating a one-element array allocates exactly; a constructor from a list
        # over-allocates by ~8%. Same length, so the slice assignment copies in place.
        packed = array("q", [0]) * len(values)
        packed[:] = array("q", values)
        return packed

    # -- snapshots -----------------------------------------------------------------------

    def restore(self, raw: bytes) -> array[int]:
        """An array back from its bytes (``array.tobytes()``), checked against the layout."""
        if raw == self.empty.tobytes():
            return self.empty
        sums = array("q")
        sums.frombytes(raw)
        header = self._header
        ok = len(sums) >= header and min(sums[1:header], default=0) >= 0
        if ok:
            ok = len(sums) == header + self.width * sum(sums[1:header])
        if not ok:
            raise ValueError(
                f"WindowedSums: restored state of {len(raw)} bytes does not fit "
                f"{self.metrics} metrics over {self.specs}"
            )
        exact = array("q", [0]) * len(sums)
        exact[:] = sums
        return exact

    def from_dense(self, newest: int, raw: bytes) -> array[int]:
        """An array from a version-1 snapshot: dense rings, window by window, then
        metric by metric, then bucket slot by slot (slot = bucket % buckets)."""
        dense = array("q")
        dense.frombytes(raw)
        size = sum(spec.buckets for spec in self.specs) * self.metrics
        if len(dense) != size:
            raise ValueError(
                f"WindowedSums: restored state has {len(raw)} bytes of sums, expected "
                f"{size * dense.itemsize} for {self.metrics} metrics over {self.specs}"
            )
        if newest == _EMPTY_NEWEST:
            return self.empty
        windows: list[_Entries] = []
        base = 0
        for spec in self.specs:
            n = spec.buckets
            head = newest // spec.bucket_seconds
            entries: _Entries = []
            for bucket in range(head - n + 1, head + 1):
                values = [dense[base + m * n + bucket % n] for m in range(self.metrics)]
                if bucket == head or any(values):  # the head entry is always there
                    entries.append([bucket, *values])
            windows.append(entries)
            base += n * self.metrics
        return self._pack(newest, windows)


@functools.cache
def window_layout(metrics: int, specs: tuple[WindowSpec, ...]) -> WindowLayout:
    """The shared layout of ``metrics`` series over ``specs``."""
    return WindowLayout(metrics, specs)


class WindowedSums:
    """Sums of ``metrics`` integer series over each window of ``specs``, bucketed.

    See the module docstring for the exact semantics of :meth:`add` and :meth:`total`.
    """

    __slots__ = ("_layout", "_sums")

    _layout: WindowLayout
    _sums: array[int]

    def __init__(self, metrics: int, specs: tuple[WindowSpec, ...] = DEFAULT_WINDOWS) -> None:
        self._layout = window_layout(metrics, tuple(specs))
        self._sums = self._layout.empty

    @property
    def metrics(self) -> int:
        """How many integer series are summed."""
        return self._layout.metrics

    @property
    def specs(self) -> tuple[WindowSpec, ...]:
        """The windows, in the order ``total`` indexes them."""
        return self._layout.specs

    @property
    def layout(self) -> WindowLayout:
        """The shared layout (metrics and specs) of these sums."""
        return self._layout

    @property
    def sums(self) -> array[int]:
        """The array the layout's methods work on (replaced, never resized, by adds)."""
        return self._sums

    def add(self, ts: int, metric: int, amount: int) -> bool:
        """Add ``amount`` to series ``metric`` at event time ``ts`` (epoch seconds).

        Returns ``False`` if ``ts`` is too old for every window: the add is then ignored
        and the caller decides how to count it.
        """
        layout = self._layout
        sums = self._sums
        if ts < sums[0] and not layout.retains(sums, ts):
            if metric not in range(layout.metrics):
                layout.add(sums, ts, metric, amount)  # raises the IndexError
            return False
        self._sums = layout.add(sums, ts, metric, amount)
        return True

    def total(self, window: int, metric: int, now: int) -> int:
        """The sum of series ``metric`` over window ``window`` (an index into ``specs``).

        Exact for ``now`` at or after the newest timestamp added; for an earlier ``now``,
        the sum over the buckets of the window still retained (see the module docstring).
        """
        return self._layout.total(self._sums, window, metric, now)

    def __getstate__(self) -> tuple[Any, ...]:
        # Plain ints, short strings and the raw int64 bytes: about as small as pickle gets
        # without compressing, and free of references to this module's classes.
        layout = self._layout
        specs = tuple((s.name, s.bucket_seconds, s.buckets) for s in layout.specs)
        return (_STATE_VERSION, layout.metrics, specs, self._sums.tobytes())

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        version, metrics, specs, *rest = state
        if version not in (1, _STATE_VERSION):
            raise ValueError(
                f"WindowedSums: cannot restore state version {version}, expected "
                f"{_STATE_VERSION} (or 1)"
            )
        layout = window_layout(metrics, tuple(WindowSpec(*spec) for spec in specs))
        if version == 1:
            newest, raw = rest
            self._sums = layout.from_dense(newest, raw)
        else:
            (raw,) = rest
            self._sums = layout.restore(raw)
        self._layout = layout

    def __repr__(self) -> str:
        names = ", ".join(spec.name for spec in self._layout.specs)
        newest = None if self._sums[0] == _EMPTY_NEWEST else self._sums[0]
        return f"WindowedSums(metrics={self._layout.metrics}, windows=[{names}], newest={newest})"
