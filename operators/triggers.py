"""The first triggers: welcome, first deposit, loss streak, inactivity, no deposit.

They are hard-wired until the campaign engine makes them data. Each returns *intents*;
guards turn intents into decided actions. Every intent names its trigger occurrence, from
which the action id is derived, so a replay fires the same ids.

Time-based rules are checked two ways that agree exactly: on the player's next event
(the gap since the last activity is known then) and by the shard's timer wheel for
players who never come back. Either way the rule fires at its deadline in event time,
however the events were batched or spread across workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from operators.actions import ActionKind
from operators.player_state import DAY, PlayerState

# Bits in PlayerState.flags owned by these triggers.
WELCOMED = 1 << 0
FIRST_DEPOSIT_REWARDED = 1 << 1
NO_DEPOSIT_NUDGED = 1 << 2
INACTIVITY_NOTIFIED = 1 << 3  # for the current quiet spell; cleared by activity
INACTIVITY_ARMED = 1 << 4  # an inactivity timer is in the wheel
NO_DEPOSIT_ARMED = 1 << 5


@dataclass(frozen=True, slots=True)
class TriggerSettings:
    """Thresholds of the first triggers."""

    inactivity_seconds: int = 7 * DAY
    no_deposit_seconds: int = 3 * DAY
    loss_streak: int = 5


@dataclass(frozen=True, slots=True)
class Intent:
    """What a rule wants done for a player, before the guards decide."""

    campaign_id: str
    player_id: str
    occurrence: str
    kind: ActionKind
    channel: str
    payload: dict[str, Any]
    event_id: str
    event_at: int
    decided_at: int


def welcome(state: PlayerState, event_id: str, ts: int) -> Intent:
    """A welcome message on registration (once per player)."""
    state.flags |= WELCOMED
    return Intent(
        "welcome",
        state.player_id,
        "registration",
        ActionKind.MESSAGE,
        "email",
        {"template_id": "welcome", "locale": state.locale or "en"},
        event_id,
        ts,
        ts,
    )


def first_deposit(state: PlayerState, event_id: str, ts: int) -> Intent:
    """Free spins for the first deposit (once per player)."""
    state.flags |= FIRST_DEPOSIT_REWARDED
    return Intent(
        "first_deposit",
        state.player_id,
        "first",
        ActionKind.REWARD,
        "wallet",
        {"reward_type": "free_spins", "count": 20, "value_per_spin": "0.10"},
        event_id,
        ts,
        ts,
    )


def loss_streak(state: PlayerState, event_id: str, ts: int, threshold: int) -> Intent:
    """A message when a loss streak reaches the threshold (once per streak)."""
    return Intent(
        f"loss_streak_{threshold}",
        state.player_id,
        event_id,
        ActionKind.MESSAGE,
        "in_app",
        {"template_id": "loss_streak", "locale": state.locale or "en", "streak": threshold},
        event_id,
        ts,
        ts,
    )


def inactivity(state: PlayerState, last_activity: int, deadline: int, days: int) -> Intent:
    """A win-back message when a player has been quiet for the configured time."""
    state.flags |= INACTIVITY_NOTIFIED
    return Intent(
        f"inactive_{days}d",
        state.player_id,
        str(last_activity),
        ActionKind.MESSAGE,
        "email",
        {
            "template_id": "we_miss_you",
            "locale": state.locale or "en",
            "last_category": state.favourite_category,
        },
        "",
        last_activity,
        deadline,
    )


def no_deposit(state: PlayerState, deadline: int, days: int) -> Intent:
    """A first-deposit nudge when a registered player has not deposited in time."""
    state.flags |= NO_DEPOSIT_NUDGED
    registered_at = state.registered_at if state.registered_at is not None else deadline
    return Intent(
        f"no_deposit_{days}d",
        state.player_id,
        "registration",
        ActionKind.MESSAGE,
        "email",
        {"template_id": "first_deposit_nudge", "locale": state.locale or "en"},
        "",
        registered_at,
        deadline,
    )
