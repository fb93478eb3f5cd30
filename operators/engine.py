"""The player operator: one shard of players, their state, deadlines and rule sets.

Players are grouped into a fixed number of shards (by a stable hash of the player id),
and a shard is the unit the dataflow keys, snapshots and moves between workers. The
engine is pure Python: the Bytewax glue hands it batches of decoded events and moves its
watermark; it returns decided actions.

Event time: events older than the watermark are *late*: still folded (windows place them
in their own bucket) and counted. A deadline fires when the watermark passes it or, if
the player's own next event is later than the deadline, just before that event is
folded. Either way it fires *at* the deadline, against the state as it was then, so the
outcome does not depend on batching, sharding or the number of workers.

Eviction (``operators.eviction``): with a cold store attached and ``evict_after`` set,
players without any event for that long are written to the store and leave ``players``;
the shard keeps ``evicted`` (player id -> version). Their deadlines stay in the timer
wheel: when one comes due, or when an event of theirs arrives, the state is read back
before anything else happens, so outcomes are those of a shard that never evicted. If it
cannot be read back, the call raises and nothing of it is applied: the glue lets the job
stop and resume from its last snapshot rather than treat a returning player as new.
"""

from __future__ import annotations

import heapq
import logging
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from operators.actions import Action, ActionKind
from operators.eviction import (
    DEFAULT_SWEEP_SECONDS,
    ColdPlayer,
    ColdStore,
    ColdStoreError,
    EvictedStateError,
    Eviction,
    EvictionObserver,
    pack,
    unpack,
)
from operators.guards import GuardConfig, decide
from operators.player_state import LAST_SEEN, NEXT_DUE, PlayerState
from operators.rules import Intent, RuleSet
from operators.timers import TimerWheel
from operators.triggers import FirstTriggers
from pipeline.events import ACTIVITY_TYPES, Event

NEVER = -(2**62)
DEDUP_IDS = 256  # recent event ids kept per active player
DEFERRED_KEY = "deferred"  # in PlayerState.extra: [(release time, intent), ...]
_NOTHING_DUE = 2**63 - 1
_RESTORE_FAILED = (ColdStoreError, EvictedStateError)

log = logging.getLogger(__name__)


def shard_of(player_id: str, shards: int) -> int:
    """The shard a player belongs to: stable across processes and restarts."""
    return zlib.crc32(player_id.encode()) % shards


@dataclass(slots=True)
class ShardStats:
    """Counters the glue turns into metrics."""

    events: int = 0
    late_events: int = 0
    duplicate_events: int = 0
    intents: int = 0


def _default_rules() -> list[RuleSet]:
    return [FirstTriggers()]


@dataclass(slots=True)
class PlayerShard:
    """State, deadlines and rules for the players of one shard.

    ``rules`` are not part of a snapshot's meaning: the glue passes the current rule sets
    when it restores a shard (``with_rules``), so a restart picks up new configuration.
    Nor is the cold store: the glue re-attaches it (``with_eviction``); the index of
    evicted players and the version counter are part of the snapshot.
    """

    rules: Sequence[RuleSet] = field(default_factory=_default_rules)
    guards: GuardConfig | None = None
    players: dict[str, PlayerState] = field(default_factory=dict)
    watermark: int = NEVER
    timers: TimerWheel = field(default_factory=TimerWheel)
    stats: ShardStats = field(default_factory=ShardStats)
    # Event ids seen recently, per player: a duplicate is counted and not folded again.
    # Only players active within ``dedup_window`` are kept, at most DEDUP_IDS ids each.
    recent_ids: dict[str, dict[str, int]] = field(default_factory=dict)
    dedup_window: int = 600
    _pruned_at: int = NEVER
    # Ordered mode: events wait here, (ts, arrival sequence, event), for the watermark.
    ordered: bool = False
    buffer: list[tuple[int, int, Event]] = field(default_factory=list)
    _sequence: int = 0
    # Eviction of lapsed players: off unless a cold store is attached and evict_after set.
    cold_store: ColdStore | None = None
    evict_after: int | None = None  # event time without events before a player leaves
    sweep_every: int = DEFAULT_SWEEP_SECONDS  # event time between two looks for them
    observer: EvictionObserver | None = None
    evicted: dict[str, int] = field(default_factory=dict)  # player id -> version
    evictions: int = 0  # states written so far; the next one's version
    restores: int = 0
    _swept_at: int = NEVER
    # Resident players by when they could first be lapsed (last event + evict_after), so
    # a sweep looks at candidates only; rebuilt from ``players`` when missing.
    _idle: TimerWheel | None = None
    _generation: int = 0  # hot reloads of the rules so far
    _reloaded_at: int = NEVER  # the watermark at the latest one
    _attached: bool = True  # False from unpickling until the glue passes the rules

    def process(self, events: Iterable[tuple[int, Event]]) -> list[Action]:
        """Fold ``(ts, event)`` pairs; return the actions they trigger.

        Unordered (the default), events are folded as they arrive: the lowest latency,
        exact when each player's events arrive in order (Kafka keyed by player).
        Ordered, events wait in a buffer until the watermark passes them and are then
        folded in event-time order (``advance``): a stream shuffled by less than the
        allowed lateness gives exactly the event-time result, at the cost of that
        lateness in decision latency. Events older than the watermark are folded at once.
        """
        if not self.ordered:
            return self._fold(events)
        buffer = self.buffer
        late: list[tuple[int, Event]] = []
        waiting: list[tuple[int, Event]] = []
        for pair in events:
            (late if pair[0] < self.watermark else waiting).append(pair)
        if late:
            self._restore_for(late)  # before anything changes
        for ts, event in waiting:
            self._sequence += 1
            heapq.heappush(buffer, (ts, self._sequence, event))
        return self._fold(late) if late else []

    def _fold(self, events: Iterable[tuple[int, Event]]) -> list[Action]:
        if not isinstance(events, list):
            events = list(events)
        if self.evicted:
            self._restore_for(events)  # raises before anything changes
        actions: list[Action] = []
        out: list[Intent] = []
        rules = self.rules
        players = self.players
        watermark = self.watermark
        stats = self.stats
        schedule = self.schedule
        recent_ids = self.recent_ids
        for ts, event in events:
            stats.events += 1
            pid = event.player_id
            seen = recent_ids.get(pid)
            if seen is None:
                seen = recent_ids[pid] = {}
            elif event.event_id in seen:
                stats.duplicate_events += 1
                continue
            seen[event.event_id] = ts
            if len(seen) > DEDUP_IDS:
                self._trim(seen, ts)
            if ts < watermark:
                stats.late_events += 1
            state = players.get(pid)
            if state is None:
                state = players[pid] = PlayerState(pid, ts)
                if self._idle is not None and self.evict_after is not None:
                    self._idle.schedule(ts + self.evict_after, pid)
            if ts >= state.n[NEXT_DUE]:
                # Decided now, against the state as it was at the deadline.
                self._fire_due(state, ts, out)
                if out:
                    self._signal(state, out)
                    self._decide_all(out, state, actions)
            state.apply(event, ts, event.type in ACTIVITY_TYPES)
            for rule_set in rules:
                rule_set.on_event(state, event, ts, out, schedule)
            if out:
                self._signal(state, out)
                self._decide_all(out, state, actions)
        return actions

    def _decide_all(self, out: list[Intent], state: PlayerState, actions: list[Action]) -> None:
        """Decide every intent in ``out`` (then clear it); keep deferred ones for later."""
        self.stats.intents += len(out)
        for intent in out:
            action, release = decide(intent, state, self.guards)
            actions.append(action)
            if release is not None:
                extra = state.extra if state.extra is not None else {}
                extra.setdefault(DEFERRED_KEY, []).append((release, intent))
                state.extra = extra
                self.schedule(state, release)
        out.clear()

    def _release_deferred(self, state: PlayerState, now: int, out: list[Intent]) -> int | None:
        """Deferred intents whose quiet period is over go back through the guards."""
        extra = state.extra
        waiting: list[tuple[int, Intent]] | None = (
            extra.get(DEFERRED_KEY) if extra is not None else None
        )
        if not waiting or extra is None:
            return None
        due = [(release, intent) for release, intent in waiting if release <= now]
        if not due:
            return min(release for release, _ in waiting)
        later = [(release, intent) for release, intent in waiting if release > now]
        if later:
            extra[DEFERRED_KEY] = later
        else:
            del extra[DEFERRED_KEY]
        for release, intent in sorted(due, key=lambda pair: pair[0]):
            out.append(replace(intent, decided_at=release))
        return min((release for release, _ in later), default=None)

    def _signal(self, state: PlayerState, out: list[Intent]) -> None:
        """Pass this step's gamification intents to the rule sets that listen, each at
        its own event time (a deadline's, not the watermark's)."""
        signals = [i for i in out if i.kind is ActionKind.GAMIFICATION]
        if not signals:
            return
        for rule_set in self.rules:
            on_signal = getattr(rule_set, "on_signal", None)
            if on_signal is not None:
                for signal in signals:
                    on_signal(state, signal, signal.decided_at, out, self.schedule)

    def _trim(self, seen: dict[str, int], newest: int) -> None:
        """Keep a player's recent ids within the window, and at most half the bound."""
        horizon = newest - self.dedup_window
        for event_id in [e for e, ts in seen.items() if ts < horizon]:
            del seen[event_id]
        while len(seen) > DEDUP_IDS // 2:
            del seen[next(iter(seen))]

    def _prune_recent(self, watermark: int) -> None:
        """Forget the recent ids of players quiet for longer than the dedup window."""
        if watermark - self._pruned_at < self.dedup_window // 2:
            return
        self._pruned_at = watermark
        horizon = watermark - self.dedup_window
        quiet = [
            pid for pid, seen in self.recent_ids.items() if not seen or max(seen.values()) < horizon
        ]
        for pid in quiet:
            del self.recent_ids[pid]

    def schedule(self, state: PlayerState, deadline: int) -> None:
        """Make sure the player is woken at ``deadline`` (earlier wake-ups are kept)."""
        if deadline < state.n[NEXT_DUE]:
            state.n[NEXT_DUE] = deadline
            self.timers.schedule(deadline, state.player_id)

    def _fire_due(self, state: PlayerState, now: int, out: list[Intent]) -> None:
        pending = _NOTHING_DUE
        if state.extra is not None:
            deferred = self._release_deferred(state, now, out)
            if deferred is not None:
                pending = deferred
        for rule_set in self.rules:
            deadline = rule_set.fire_due(state, now, out)
            if deadline is not None and deadline < pending:
                pending = deadline
        state.n[NEXT_DUE] = _NOTHING_DUE
        if pending != _NOTHING_DUE:
            self.schedule(state, pending)

    def advance(self, watermark: int) -> list[Action]:
        """Move the watermark forward (never back) and fire the deadlines now due; then,
        once per ``sweep_every``, evict the players lapsed for ``evict_after``.

        If an evicted player cannot be brought back, this raises (``ColdStoreError``,
        ``EvictedStateError``) with the watermark unmoved and the events and deadlines it
        took out put back. In ordered mode, actions of buffered events folded before the
        failing deadline are lost with the exception: the glue does not carry on with
        the shard but lets the job resume from its snapshot.
        """
        if watermark <= self.watermark:
            return []
        actions: list[Action] = []
        buffer = self.buffer
        if buffer and buffer[0][0] <= watermark:
            ready: list[tuple[int, Event]] = []
            while buffer and buffer[0][0] <= watermark:
                ts, _, event = heapq.heappop(buffer)
                ready.append((ts, event))
            try:
                actions = self._fold(ready)
            except _RESTORE_FAILED:
                for ts, event in ready:  # back in the buffer, in the same order
                    self._sequence += 1
                    heapq.heappush(buffer, (ts, self._sequence, event))
                raise
        timers = self.timers
        woken = timers.due(watermark)
        if woken and self.evicted:
            try:
                self._restore([pid for pid in woken if pid in self.evicted])
            except _RESTORE_FAILED:
                # Entries are lower bounds: re-arm them at the watermark not yet left, so
                # the next advance, to any later time, takes them out again.
                for pid in woken:
                    timers.schedule(self.watermark, pid)
                raise
        self.watermark = watermark
        self._prune_recent(watermark)
        players = self.players
        out: list[Intent] = []
        seen: set[str] = set()
        for pid in woken:
            if pid in seen:  # a player can have stale entries; one visit is enough
                continue
            seen.add(pid)
            state = players[pid]
            due = state.n[NEXT_DUE]
            if due > watermark:
                # Not due yet. Every NEXT_DUE has an entry in the wheel; if it was in one
                # of the buckets just taken out, put it back.
                if due != _NOTHING_DUE and timers.covers(due, watermark):
                    timers.schedule(due, pid)
                continue
            self._fire_due(state, watermark, out)
            if out:
                self._signal(state, out)
                self._decide_all(out, state, actions)
        self._sweep(watermark)
        return actions

    def with_rules(
        self, rules: Sequence[RuleSet], guards: GuardConfig | None = None
    ) -> PlayerShard:
        """This shard running ``rules`` from now on (after a restore or a reload).

        After a hot reload (any call but the first after unpickling), evicted players
        are re-armed when they come back, as ``swap_rules`` re-arms resident ones now.
        """
        if self._attached and self.watermark != NEVER:
            self._generation += 1
            self._reloaded_at = self.watermark
        self._attached = True
        self.rules = rules
        self.guards = guards
        return self

    def with_eviction(
        self, eviction: Eviction | None, observer: EvictionObserver | None = None
    ) -> PlayerShard:
        """This shard evicting (and restoring) through ``eviction`` from now on.

        None turns eviction off; that is refused while the shard holds evicted players,
        who could then never come back.
        """
        if eviction is None:
            if self.evicted:
                raise EvictedStateError(
                    f"this shard holds {len(self.evicted):,} evicted players but no cold "
                    "store is configured to restore them from: configure the store they "
                    "were evicted to (PITBOSS_REDIS_URL, same PITBOSS_REDIS_PREFIX)"
                )
            self.cold_store = None
            self.evict_after = None
        else:
            self.cold_store = eviction.store
            self.evict_after = eviction.after_seconds
            self.sweep_every = eviction.sweep_seconds
        self._idle = None  # filed again, under this evict_after, at the next sweep
        self.observer = observer
        if observer is not None:
            observer.cold_players(len(self.evicted))
        return self

    def every_player(self, chunk: int = 1000) -> Iterator[PlayerState]:
        """Every player of the shard: the resident ones, then the evicted ones read from
        the cold store (read only: they stay evicted)."""
        yield from self.players.values()
        if not self.evicted:
            return
        store = self._store_for_restore()
        keys = list(self.evicted.items())
        for first in range(0, len(keys), chunk):
            part = keys[first : first + chunk]
            for (pid, version), blob in zip(part, store.get_many(part), strict=True):
                yield self._unpack(pid, version, blob).state

    # -- eviction ----------------------------------------------------------------------

    def _sweep(self, watermark: int) -> None:
        """Evict the players without events for ``evict_after`` (one look per
        ``sweep_every``), unless a deadline of theirs comes before the next look."""
        store = self.cold_store
        after = self.evict_after
        if store is None or after is None or watermark - self._swept_at < self.sweep_every:
            return
        self._swept_at = watermark
        idle = self._idle
        if idle is None:
            idle = self._idle = TimerWheel(self.sweep_every)
            for resident in self.players.values():
                idle.schedule(resident.n[LAST_SEEN] + after, resident.player_id)
        horizon = watermark - after
        soon = watermark + self.sweep_every
        players = self.players
        lapsed: list[PlayerState] = []
        for pid in dict.fromkeys(idle.due(watermark)):
            state = players.get(pid)
            if state is None:  # evicted since
                continue
            last = state.n[LAST_SEEN]
            if last >= horizon:  # active since it was filed: file it again
                idle.schedule(last + after, pid)
            elif state.n[NEXT_DUE] <= soon:  # a deadline first: look again next time
                idle.schedule(soon, pid)
            else:
                lapsed.append(state)
        if not lapsed:
            return
        recent = self.recent_ids
        generation = self._generation
        version = self.evictions
        blobs: list[tuple[str, int, bytes]] = []
        for state in lapsed:
            pid = state.player_id
            blobs.append((pid, version, pack(ColdPlayer(state, recent.get(pid), generation))))
            version += 1
        try:
            store.put_many(blobs)
        except ColdStoreError as exc:
            # Nothing is lost: they stay resident and the next look tries again, reusing
            # these versions (no snapshot can refer to them: the counter did not move).
            log.warning("eviction of %d lapsed players postponed: %s", len(blobs), exc)
            for state in lapsed:
                idle.schedule(soon, state.player_id)
            return
        self.evictions = version
        evicted = self.evicted
        for pid, written, _ in blobs:
            del players[pid]
            recent.pop(pid, None)
            evicted[pid] = written
        if self.observer is not None:
            self.observer.evicted(len(blobs))
            self.observer.cold_players(len(evicted))

    def _restore_for(self, events: Sequence[tuple[int, Event]]) -> None:
        """Bring back the evicted players among ``events``' players."""
        evicted = self.evicted
        cold = [event.player_id for _, event in events if event.player_id in evicted]
        if cold:
            self._restore(cold)

    def _store_for_restore(self) -> ColdStore:
        if self.cold_store is None:
            raise EvictedStateError(
                "an evicted player is needed but no cold store is attached (with_eviction)"
            )
        return self.cold_store

    def _unpack(self, pid: str, version: int, blob: bytes | None) -> ColdPlayer:
        if blob is None:
            raise EvictedStateError(
                f"evicted state of player {pid!r} (version {version}) is not in the cold "
                "store: it was removed, or kept for less than the retention after a "
                "restore; refusing to treat the player as new"
            )
        return unpack(blob, f"player {pid!r} (version {version})")

    def _restore(self, player_ids: Sequence[str]) -> None:
        """Read the states of evicted ``player_ids`` back into ``players``: all of them,
        or (raising) none."""
        if not player_ids:
            return
        evicted = self.evicted
        keys = [(pid, evicted[pid]) for pid in dict.fromkeys(player_ids)]
        store = self._store_for_restore()
        blobs = store.get_many(keys)
        back = [
            self._unpack(pid, version, blob)
            for (pid, version), blob in zip(keys, blobs, strict=True)
        ]
        # Every state is read: only now does anything change.
        players = self.players
        recent = self.recent_ids
        forgotten_before = self._pruned_at - self.dedup_window  # as _prune_recent does
        for (pid, _), cold in zip(keys, back, strict=True):
            state = cold.state
            state.player_id = pid  # one string per player, shared with the timer wheel
            players[pid] = state
            del evicted[pid]
            if self._idle is not None and self.evict_after is not None:
                self._idle.schedule(state.n[LAST_SEEN] + self.evict_after, pid)
            seen = cold.recent_ids
            if seen and max(seen.values()) >= forgotten_before and pid not in recent:
                recent[pid] = seen
            if cold.generation != self._generation:
                self._rearm(state)
        self.restores += len(keys)
        try:
            store.dispose_many(keys)
        except ColdStoreError as exc:
            # They never expire then: garbage once no snapshot refers to them, not a loss.
            log.warning("%d restored states stay in the cold store for good: %s", len(keys), exc)
        if self.observer is not None:
            self.observer.restored(len(keys))
            self.observer.cold_players(len(evicted))

    def _rearm(self, state: PlayerState) -> None:
        """What ``swap_rules`` did for resident players at the latest hot reload, done
        for a player who was evicted then (its state has not changed since)."""
        for rule_set in self.rules:
            rearm = getattr(rule_set, "rearm", None)
            if rearm is not None:
                due = rearm(state, self._reloaded_at)
                if due is not None:
                    self.schedule(state, due)

    def __getstate__(self) -> tuple[object, ...]:
        return (
            self.players,
            self.watermark,
            self.timers,
            self.stats,
            self.recent_ids,
            self.dedup_window,
            self.ordered,
            self.buffer,
            self._sequence,
            self.evicted,
            self.evictions,
            self.restores,
            self._generation,
            self._reloaded_at,
        )

    def __setstate__(self, state: tuple[object, ...]) -> None:
        (
            players,
            watermark,
            timers,
            stats,
            recent_ids,
            dedup_window,
            ordered,
            buffer,
            sequence,
            *eviction,
        ) = state
        # Snapshots from before eviction existed have nine fields.
        evicted, evictions, restores, generation, reloaded_at = eviction or ({}, 0, 0, 0, NEVER)
        self.evicted = evicted  # type: ignore[assignment]
        self.evictions = evictions  # type: ignore[assignment]
        self.restores = restores  # type: ignore[assignment]
        self._generation = generation  # type: ignore[assignment]
        self._reloaded_at = reloaded_at  # type: ignore[assignment]
        self._attached = False
        self._swept_at = NEVER
        self._idle = None
        self.cold_store = None  # re-attached by the glue (with_eviction)
        self.evict_after = None
        self.sweep_every = DEFAULT_SWEEP_SECONDS
        self.observer = None
        self.ordered = ordered  # type: ignore[assignment]
        self.buffer = buffer  # type: ignore[assignment]
        self._sequence = sequence  # type: ignore[assignment]
        self.recent_ids = recent_ids  # type: ignore[assignment]
        self.dedup_window = dedup_window  # type: ignore[assignment]
        self._pruned_at = NEVER
        self.rules = _default_rules()
        self.guards = None
        self.players = players  # type: ignore[assignment]
        self.watermark = watermark  # type: ignore[assignment]
        self.timers = timers  # type: ignore[assignment]
        self.stats = stats  # type: ignore[assignment]
