"""The first triggers: welcome, first deposit, loss streak, inactivity, no deposit.

A rule set (``operators.rules``) hard-wired until the campaign engine makes rules data.
Every intent names its trigger occurrence, from which the action id is derived, so a
replay fires the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass

from operators.actions import ActionKind
from operators.player_state import (
    DAY,
    FLAGS,
    LAST_ACTIVITY,
    LOSS_STREAK,
    NEXT_DUE,
    PlayerState,
)
from operators.rules import Intent, Schedule
from pipeline.events import ACTIVITY_TYPES, Deposit, Event

# Bits in PlayerState.flags owned by these triggers.
WELCOMED = 1 << 0
FIRST_DEPOSIT_REWARDED = 1 << 1
NO_DEPOSIT_NUDGED = 1 << 2
INACTIVITY_NOTIFIED = 1 << 3  # for the current quiet spell; cleared by activity


@dataclass(frozen=True, slots=True)
class TriggerSettings:
    """Thresholds of the first triggers."""

    inactivity_seconds: int = 7 * DAY
    no_deposit_seconds: int = 3 * DAY
    loss_streak: int = 5


class FirstTriggers:
    """Welcome, first deposit, loss streak, N days inactive, no deposit after N days."""

    name = "first_triggers"

    def __init__(self, settings: TriggerSettings | None = None) -> None:
        self.settings = settings or TriggerSettings()
        self._inactive_id = f"inactive_{self.settings.inactivity_seconds // DAY}d"
        self._no_deposit_id = f"no_deposit_{self.settings.no_deposit_seconds // DAY}d"
        self._streak_id = f"loss_streak_{self.settings.loss_streak}"
        self._inactivity = self.settings.inactivity_seconds

    def on_event(
        self, state: PlayerState, event: Event, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        """Event-driven triggers, and arming the time-based ones."""
        etype = event.type
        if etype in ACTIVITY_TYPES:
            # The hot path (bets, logins...): a new quiet spell starts; arm its deadline
            # only if it is earlier than what the player is already woken for.
            n = state.n
            if ts == n[LAST_ACTIVITY]:
                if n[FLAGS] & INACTIVITY_NOTIFIED:
                    n[FLAGS] &= ~INACTIVITY_NOTIFIED
                deadline = ts + self._inactivity
                if deadline < n[NEXT_DUE]:
                    schedule(state, deadline)
            if etype == "deposit":
                self._on_deposit(state, event, ts, out)
        elif etype == "win":
            if state.n[LOSS_STREAK] == self.settings.loss_streak:
                out.append(
                    Intent(
                        self._streak_id,
                        state.player_id,
                        event.event_id,
                        ActionKind.MESSAGE,
                        "in_app",
                        {"template_id": "loss_streak", "locale": state.locale or "en"},
                        event.event_id,
                        ts,
                        ts,
                    )
                )
        elif etype == "registration":
            if not state.flags & WELCOMED:
                state.flags |= WELCOMED
                out.append(
                    Intent(
                        "welcome",
                        state.player_id,
                        "registration",
                        ActionKind.MESSAGE,
                        "email",
                        {"template_id": "welcome", "locale": state.locale or "en"},
                        event.event_id,
                        ts,
                        ts,
                    )
                )
            schedule(state, ts + self.settings.no_deposit_seconds)

    def _on_deposit(self, state: PlayerState, event: Event, ts: int, out: list[Intent]) -> None:
        deposit: Deposit = event  # type: ignore[assignment]
        if (
            state.deposit_count == 1
            and deposit.status == "ok"
            and not state.flags & FIRST_DEPOSIT_REWARDED
        ):
            state.flags |= FIRST_DEPOSIT_REWARDED
            out.append(
                Intent(
                    "first_deposit",
                    state.player_id,
                    "first",
                    ActionKind.REWARD,
                    "wallet",
                    {"reward_type": "free_spins", "count": 20, "value_per_spin": "0.10"},
                    event.event_id,
                    ts,
                    ts,
                )
            )

    def fire_due(self, state: PlayerState, now: int, out: list[Intent]) -> int | None:
        """Inactivity and no-deposit deadlines."""
        pending: int | None = None
        n_flags = state.flags
        last = state.last_activity
        if last is not None and not n_flags & INACTIVITY_NOTIFIED:
            deadline = last + self.settings.inactivity_seconds
            if deadline <= now:
                state.flags |= INACTIVITY_NOTIFIED
                out.append(
                    Intent(
                        self._inactive_id,
                        state.player_id,
                        str(last),
                        ActionKind.MESSAGE,
                        "email",
                        {
                            "template_id": "we_miss_you",
                            "locale": state.locale or "en",
                            "last_category": state.favourite_category,
                        },
                        "",
                        last,
                        deadline,
                    )
                )
            else:
                pending = deadline
        registered = state.registered_at
        if registered is not None and state.deposit_count == 0 and not n_flags & NO_DEPOSIT_NUDGED:
            deadline = registered + self.settings.no_deposit_seconds
            if deadline <= now:
                state.flags |= NO_DEPOSIT_NUDGED
                out.append(
                    Intent(
                        self._no_deposit_id,
                        state.player_id,
                        "registration",
                        ActionKind.MESSAGE,
                        "email",
                        {"template_id": "first_deposit_nudge", "locale": state.locale or "en"},
                        "",
                        registered,
                        deadline,
                    )
                )
            elif pending is None or deadline < pending:
                pending = deadline
        return pending


__all__ = ["FirstTriggers", "Intent", "TriggerSettings"]
