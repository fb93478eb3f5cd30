"""Evicting lapsed players to a cold store, and bringing them back when they return.

A player who has sent nothing for ``after_seconds`` of event time is *lapsed*: most
never come back. The shard (``operators.engine``) serializes such a player's state
compactly (pickle, then zlib: about 270 bytes for a player who played one session),
writes it to a :class:`ColdStore` under ``(player_id, version)`` and keeps only
``player_id -> version`` in memory. When an event or a deadline of that player arrives,
the shard reads the state back before doing anything else, so the outcome is the one it
would have been had the player never left memory.

What else the shard holds per player, and what happens to it:

* deadlines (a 30-day win-back, a birthday, a deferred message): the player's entry stays
  in the shard's timer wheel (a list slot); when it comes due the player is brought back
  and the deadline fires at its own time, as if the player had stayed. A player whose
  next deadline comes before the next sweep is not evicted (it would come right back);
* recent event ids (dedup): they travel in the blob and are put back unless the shard
  would have forgotten them by then, so duplicates are recognised exactly as before;
* campaign and gamification progress and deferred intents live in ``PlayerState.extra``
  and travel with it; events waiting in ordered mode's buffer bring the player back
  when they are folded;
* a hot reload re-arms resident players at once (``swap_rules``); an evicted player is
  re-armed when it comes back, with the reload's watermark (exact for one reload while
  the player was away; the blob records the rule generation it was evicted under).

Versions make this safe under Bytewax recovery (at-least-once replay from the last
snapshot): a version is a per-shard counter kept in the snapshot, so a snapshot only
refers to versions written before it was taken, and a replay after a crash writes only
versions from the snapshot's counter on, never one that snapshot refers to. A restored
blob is not deleted (an older snapshot may still refer to it): it is marked disposable,
and the store forgets it after a retention period that must outlast any snapshot a
restart could resume from.

Nothing here knows about Redis: the Redis store is ``sinks.stores.cold``; the
in-process one (the embedded default and the unit tests) is :class:`MemoryColdStore`.
"""

from __future__ import annotations

import heapq
import pickle
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

from operators.player_state import DAY, PlayerState

DEFAULT_EVICT_AFTER = 30 * DAY
"""Event time without any event after which a player's state leaves memory."""

DEFAULT_SWEEP_SECONDS = 3600
"""Event time between two looks for lapsed players (a player stays up to this longer)."""

DEFAULT_RETENTION_SECONDS = 7 * DAY
"""How long a restored blob is kept: longer than any snapshot a restart resumes from."""

BLOB_FORMAT = 1
"""Written first in every blob, so a later layout can still read this one."""

ColdKey: TypeAlias = tuple[str, int]
"""Where one evicted state is: (player id, version)."""


class ColdStoreError(Exception):
    """The cold store could not do what was asked (unreachable, refused a write...)."""


class EvictedStateError(Exception):
    """An evicted player's state cannot be brought back: it is missing or unreadable, or
    no cold store is attached. Nothing is processed for that player without it."""


class ColdStore(Protocol):
    """Where evicted players' states wait: write-once blobs under (player id, version).

    Implementations raise :class:`ColdStoreError` (chained to the cause) when they cannot
    answer; they never return a partial answer.
    """

    def put_many(self, blobs: Sequence[tuple[str, int, bytes]]) -> None:
        """Store every ``(player_id, version, blob)``, in as few round trips as possible."""

    def get_many(self, keys: Sequence[ColdKey]) -> list[bytes | None]:
        """The blobs under ``keys``, in order; None where there is none."""

    def dispose_many(self, keys: Sequence[ColdKey]) -> None:
        """Mark the blobs under ``keys`` disposable: kept for the retention period, then
        forgotten. Reading one before that still returns it."""

    def put(self, player_id: str, version: int, blob: bytes) -> None:
        """Store one blob."""
        self.put_many([(player_id, version, blob)])

    def get(self, player_id: str, version: int) -> bytes | None:
        """One blob, or None."""
        return self.get_many([(player_id, version)])[0]

    def dispose(self, player_id: str, version: int) -> None:
        """Mark one blob disposable."""
        self.dispose_many([(player_id, version)])


class EvictionObserver(Protocol):
    """What the glue turns into metrics (each shard gets its own observer)."""

    def evicted(self, count: int) -> None:
        """``count`` players were just evicted."""

    def restored(self, count: int) -> None:
        """``count`` evicted players were just brought back."""

    def cold_players(self, count: int) -> None:
        """The shard now holds ``count`` players in the cold store."""


@dataclass(frozen=True)
class Eviction:
    """How a shard evicts: the store, and after how long without events.

    ``after_seconds`` None evicts nothing new but still restores players a snapshot
    holds as evicted (turning eviction off must not lose them).
    """

    store: ColdStore
    after_seconds: int | None = DEFAULT_EVICT_AFTER
    sweep_seconds: int = DEFAULT_SWEEP_SECONDS

    def __post_init__(self) -> None:
        if self.after_seconds is not None and self.after_seconds <= 0:
            raise ValueError(f"after_seconds must be > 0 or None, got {self.after_seconds!r}")
        if self.sweep_seconds <= 0:
            raise ValueError(f"sweep_seconds must be > 0, got {self.sweep_seconds!r}")


@dataclass(frozen=True, slots=True)
class ColdPlayer:
    """What travels in a blob: the state, the player's recent event ids (for dedup), and
    the rule generation it was evicted under (to re-arm deadlines after a hot reload)."""

    state: PlayerState
    recent_ids: dict[str, int] | None
    generation: int


def pack(player: ColdPlayer) -> bytes:
    """A player as a compact blob."""
    payload = (BLOB_FORMAT, player.state, player.recent_ids, player.generation)
    return zlib.compress(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))


def unpack(blob: bytes, where: str) -> ColdPlayer:
    """A blob back as a player; ``where`` (player and version) names it in errors."""
    try:
        # Blobs are our own writes, trusted like the recovery directory's snapshots.
        payload: Any = pickle.loads(zlib.decompress(blob))
    except (zlib.error, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise EvictedStateError(f"evicted state of {where} is unreadable: {exc}") from exc
    if not isinstance(payload, tuple) or not payload or payload[0] != BLOB_FORMAT:
        found = payload[0] if isinstance(payload, tuple) and payload else type(payload).__name__
        raise EvictedStateError(
            f"evicted state of {where} has format {found!r}, expected {BLOB_FORMAT}"
        )
    _, state, recent_ids, generation = payload
    return ColdPlayer(state, recent_ids, generation)


class MemoryColdStore(ColdStore):
    """Blobs in a dict: the embedded default (one process, no recovery) and the tests.

    Disposed blobs are forgotten ``retention_seconds`` later on ``clock`` (0: at once,
    right for a process without recovery, where no older snapshot can refer to them).
    Thread-safe: the workers of one process may share it.
    """

    def __init__(
        self,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if retention_seconds < 0:
            raise ValueError(f"retention_seconds must be >= 0, got {retention_seconds!r}")
        self._retention = float(retention_seconds)
        self._clock = clock
        self._blobs: dict[ColdKey, bytes] = {}
        self._disposable: list[tuple[float, ColdKey]] = []  # heap of (forget at, key)
        self._expiry: dict[ColdKey, float] = {}
        self._lock = threading.Lock()

    def _purge(self) -> None:
        now = self._clock()
        heap = self._disposable
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if self._expiry.get(key) == at:
                del self._expiry[key]
                self._blobs.pop(key, None)

    def put_many(self, blobs: Sequence[tuple[str, int, bytes]]) -> None:
        with self._lock:
            self._purge()
            for player_id, version, blob in blobs:
                key = (player_id, version)
                self._blobs[key] = bytes(blob)
                self._expiry.pop(key, None)  # a new write is not disposable

    def get_many(self, keys: Sequence[ColdKey]) -> list[bytes | None]:
        with self._lock:
            self._purge()
            return [self._blobs.get(key) for key in keys]

    def dispose_many(self, keys: Sequence[ColdKey]) -> None:
        with self._lock:
            self._purge()
            if self._retention == 0:
                for key in keys:
                    self._blobs.pop(key, None)
                    self._expiry.pop(key, None)
                return
            at = self._clock() + self._retention
            for key in keys:
                if key in self._blobs:
                    self._expiry[key] = at
                    heapq.heappush(self._disposable, (at, key))

    def __len__(self) -> int:
        with self._lock:
            self._purge()
            return len(self._blobs)

    def nbytes(self) -> int:
        """Bytes of blob data held (for benchmarks)."""
        with self._lock:
            return sum(len(blob) for blob in self._blobs.values())
