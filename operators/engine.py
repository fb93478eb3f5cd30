"""The player operator: one shard of players, their state, timers and rules.

Players are grouped into a fixed number of shards (by a stable hash of the player id),
and a shard is the unit the dataflow keys, snapshots and moves between workers. The
engine is pure Python: the Bytewax glue hands it batches of decoded events with the
source's event-time high mark and collects the actions it returns.

Event time: the glue moves the shard's watermark (``advance``), from the event times its
sources have reached (``pipeline.clock``). Events older than the watermark are *late*:
still folded (windows place them in their own bucket) and counted. Time-based rules fire
when the watermark passes their deadline, or, exactly at the deadline, when the player's
next event proves the deadline passed (see ``operators.triggers``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from operators.actions import Action
from operators.guards import decide
from operators.player_state import DAY, PlayerState
from operators.timers import TimerWheel
from operators.triggers import (
    FIRST_DEPOSIT_REWARDED,
    INACTIVITY_ARMED,
    INACTIVITY_NOTIFIED,
    NO_DEPOSIT_ARMED,
    NO_DEPOSIT_NUDGED,
    WELCOMED,
    Intent,
    TriggerSettings,
    first_deposit,
    inactivity,
    loss_streak,
    no_deposit,
    welcome,
)
from pipeline.events import ACTIVITY_TYPES, Event

NEVER = -(2**62)


def shard_of(player_id: str, shards: int) -> int:
    """The shard a player belongs to: stable across processes and restarts."""
    return zlib.crc32(player_id.encode()) % shards


@dataclass(slots=True)
class ShardStats:
    """Counters the glue turns into metrics (deltas are read and reset)."""

    events: int = 0
    late_events: int = 0
    intents: int = 0


@dataclass(slots=True)
class PlayerShard:
    """State, timers and rules for the players of one shard."""

    triggers: TriggerSettings = field(default_factory=TriggerSettings)
    players: dict[str, PlayerState] = field(default_factory=dict)
    watermark: int = NEVER
    inactivity_timers: TimerWheel = field(default_factory=TimerWheel)
    no_deposit_timers: TimerWheel = field(default_factory=TimerWheel)
    stats: ShardStats = field(default_factory=ShardStats)

    def process(self, events: Iterable[tuple[int, Event]]) -> list[Action]:
        """Fold ``(ts, event)`` pairs in order; return the actions they trigger."""
        actions: list[Action] = []
        intents: list[Intent] = []
        settings = self.triggers
        inactive_after = settings.inactivity_seconds
        no_deposit_after = settings.no_deposit_seconds
        streak_threshold = settings.loss_streak
        players = self.players
        watermark = self.watermark
        stats = self.stats
        for ts, event in events:
            stats.events += 1
            if ts < watermark:
                stats.late_events += 1
            pid = event.player_id
            state = players.get(pid)
            if state is None:
                state = players[pid] = PlayerState(pid, ts)
            etype = event.type
            is_activity = etype in ACTIVITY_TYPES
            flags = state.flags

            # Deadlines this event proves have passed fire first, at their deadline, so
            # the outcome does not depend on how events were batched or sharded.
            last = state.last_activity
            if last is not None and ts - last >= inactive_after and not flags & INACTIVITY_NOTIFIED:
                intents.append(
                    inactivity(state, last, last + inactive_after, inactive_after // DAY)
                )
            registered = state.registered_at
            if (
                registered is not None
                and state.deposit_count == 0
                and ts - registered >= no_deposit_after
                and not flags & NO_DEPOSIT_NUDGED
            ):
                intents.append(
                    no_deposit(state, registered + no_deposit_after, no_deposit_after // DAY)
                )

            deposits_before = state.deposit_count
            state.apply(event, ts, is_activity)

            if etype == "registration":
                if not state.flags & WELCOMED:
                    intents.append(welcome(state, event.event_id, ts))
                if not state.flags & (NO_DEPOSIT_ARMED | NO_DEPOSIT_NUDGED):
                    state.flags |= NO_DEPOSIT_ARMED
                    self.no_deposit_timers.schedule(ts + no_deposit_after, pid)
            elif (
                etype == "deposit"
                and deposits_before == 0
                and state.deposit_count == 1
                and not state.flags & FIRST_DEPOSIT_REWARDED
            ):
                intents.append(first_deposit(state, event.event_id, ts))
            elif etype == "win" and state.loss_streak == streak_threshold:
                intents.append(loss_streak(state, event.event_id, ts, streak_threshold))
            if is_activity and ts == state.last_activity:
                state.flags &= ~INACTIVITY_NOTIFIED
                if not state.flags & INACTIVITY_ARMED:
                    state.flags |= INACTIVITY_ARMED
                    self.inactivity_timers.schedule(ts + inactive_after, pid)
            if intents:
                stats.intents += len(intents)
                actions.extend(decide(intent, state) for intent in intents)
                intents.clear()
        return actions

    def advance(self, watermark: int) -> list[Action]:
        """Move the watermark forward (never back) and fire the timers now due."""
        if watermark <= self.watermark:
            return []
        self.watermark = watermark
        intents: list[tuple[Intent, PlayerState]] = []
        settings = self.triggers
        players = self.players

        inactive_after = settings.inactivity_seconds
        for pid in self.inactivity_timers.due(watermark):
            state = players[pid]
            last = state.last_activity
            if last is None or state.flags & INACTIVITY_NOTIFIED:
                state.flags &= ~INACTIVITY_ARMED
                continue
            deadline = last + inactive_after
            if deadline <= watermark:
                state.flags &= ~INACTIVITY_ARMED
                intents.append((inactivity(state, last, deadline, inactive_after // DAY), state))
            else:
                self.inactivity_timers.schedule(deadline, pid)

        no_deposit_after = settings.no_deposit_seconds
        for pid in self.no_deposit_timers.due(watermark):
            state = players[pid]
            registered = state.registered_at
            if registered is None or state.deposit_count or state.flags & NO_DEPOSIT_NUDGED:
                state.flags &= ~NO_DEPOSIT_ARMED
                continue
            deadline = registered + no_deposit_after
            if deadline <= watermark:
                state.flags &= ~NO_DEPOSIT_ARMED
                intents.append((no_deposit(state, deadline, no_deposit_after // DAY), state))
            else:
                self.no_deposit_timers.schedule(deadline, pid)

        self.stats.intents += len(intents)
        return [decide(intent, state) for intent, state in intents]
