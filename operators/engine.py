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
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from operators.actions import Action, ActionKind
from operators.guards import GuardConfig, decide
from operators.player_state import NEXT_DUE, PlayerState
from operators.rules import Intent, RuleSet
from operators.timers import TimerWheel
from operators.triggers import FirstTriggers
from pipeline.events import ACTIVITY_TYPES, Event

NEVER = -(2**62)
DEDUP_IDS = 256  # recent event ids kept per active player
DEFERRED_KEY = "deferred"  # in PlayerState.extra: [(release time, intent), ...]
_NOTHING_DUE = 2**63 - 1


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
        for pair in events:
            if pair[0] < self.watermark:
                late.append(pair)
            else:
                self._sequence += 1
                heapq.heappush(buffer, (pair[0], self._sequence, pair[1]))
        return self._fold(late) if late else []

    def _fold(self, events: Iterable[tuple[int, Event]]) -> list[Action]:
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
        """Move the watermark forward (never back) and fire the deadlines now due."""
        if watermark <= self.watermark:
            return []
        actions: list[Action] = []
        buffer = self.buffer
        if buffer and buffer[0][0] <= watermark:
            ready: list[tuple[int, Event]] = []
            while buffer and buffer[0][0] <= watermark:
                ts, _, event = heapq.heappop(buffer)
                ready.append((ts, event))
            actions = self._fold(ready)
        self.watermark = watermark
        self._prune_recent(watermark)
        players = self.players
        out: list[Intent] = []
        timers = self.timers
        seen: set[str] = set()
        for pid in timers.due(watermark):
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
        return actions

    def with_rules(
        self, rules: Sequence[RuleSet], guards: GuardConfig | None = None
    ) -> PlayerShard:
        """This shard running ``rules`` from now on (after a restore or a reload)."""
        self.rules = rules
        self.guards = guards
        return self

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
        ) = state
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
