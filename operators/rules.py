"""What the player operator runs: rule sets that turn events and deadlines into intents.

A rule set (the first triggers, the campaign engine, gamification) sees every event after
it is folded into the player's state, and owns the time-based rules it declares. Time
rules are *deadlines*: a rule set can always say when its next one is, from the state
alone, so the engine needs to store nothing but each player's earliest deadline.

Contract for deadlines: ``fire_due(state, now, out)`` fires every deadline at or before
``now`` (each at its own time: ``decided_at`` is the deadline, not ``now``) and returns
the next pending one, if any. When an event creates a deadline or moves one earlier, the
rule set calls ``schedule(state, deadline)``; deadlines that move later need nothing (the
engine re-asks ``fire_due`` when the old one comes, a cheap lower bound).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from operators.actions import ActionKind
from operators.player_state import PlayerState
from pipeline.events import Event

Schedule = Callable[[PlayerState, int], None]


@dataclass(slots=True)
class Intent:
    """What a rule wants done for a player, before the guards decide.

    Treat it as immutable (``dataclasses.replace`` makes a changed copy). It is not
    declared frozen because a frozen dataclass sets each field through
    ``object.__setattr__``: 1.7 µs to build one against 0.3, at one intent every few
    events.
    """

    campaign_id: str
    player_id: str
    occurrence: str  # what made it happen; with campaign and player, the action id
    kind: ActionKind
    channel: str
    payload: dict[str, Any]
    event_id: str  # the triggering event ("" for a deadline)
    event_at: int
    decided_at: int
    priority: int = 0  # higher wins when a frequency cap is nearly full
    version: str = ""  # the configuration version that produced it
    variant: str = ""  # A/B variant name, if the campaign has variants
    cost: int = 0  # money this reward spends from budgets, ten-thousandths
    currency: str = ""
    defer_when_capped: int = 0  # seconds to wait and retry if a frequency cap is full


class RuleSet(Protocol):
    """A family of rules run by the player operator.

    One instance serves every shard of a process, and a process's workers are threads
    (``-w N``): a rule set keeps nothing per call on itself. Per-player data lives in
    the state; an object reused from call to call (an evaluation context) is per thread
    (``tests/unit/test_shared_rules.py`` folds from two threads to check it).
    """

    name: str

    def on_event(
        self, state: PlayerState, event: Event, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        """React to ``event`` (already folded into ``state``) at event time ``ts``."""

    def fire_due(self, state: PlayerState, now: int, out: list[Intent]) -> int | None:
        """Fire deadlines at or before ``now``; return the next pending deadline."""


class SignalListener(Protocol):
    """Optional for a rule set: react to other rule sets' gamification intents.

    Gamification intents (``kind == GAMIFICATION``: points awarded, level up, mission
    completed...) produced while handling an event or a deadline are passed to every
    rule set that has ``on_signal``, once (signals raised by signals are not re-sent).
    """

    def on_signal(
        self, state: PlayerState, signal: Intent, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        """React to ``signal`` at event time ``ts``."""
