"""What campaign conditions read, beyond ``operators.expressions_roots``.

Every campaign condition can read ``state``, ``attributes`` and ``now`` (the event time,
or the deadline for a time trigger) and ``player``: CRM views derived from the state:

* ``player.days_inactive``: whole days since the last player-initiated event (or
  registration); ``player.days_registered``; ``player.age`` in years;
* ``player.churn_risk``: ``high`` (lapsed, or at risk and idle 14 days or more),
  ``medium`` (at risk: a depositor idle 7 to 30 days), ``low`` (a depositor idle 3 days
  or more), else ``none``;
* ``player.last_category``: the game category of the newest bet.

An event trigger's conditions also read ``event``; a signal trigger's ``signal`` (the
gamification intent's payload); a journey's ``journey`` (``journey.bet_since_step``,
``journey.deposited_since_start``...).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from typing import Any, Final, Literal

from operators.campaigns.store import STORE_KEY
from operators.expressions import ANY, Field, Schema
from operators.expressions_roots import rule_schema
from operators.player_state import DAY, Lifecycle, PlayerState
from pipeline.events import GameCategory

__all__ = ["JOURNEY_FIELDS", "PLAYER_FIELDS", "Context", "churn_risk", "days_inactive", "schema"]

_AT_RISK: Final = Lifecycle.AT_RISK
_LAPSED: Final = Lifecycle.LAPSED


class Context:
    """The object conditions are evaluated against; one per rule set, reused."""

    __slots__ = ("event", "journey", "now", "signal", "state")

    def __init__(self) -> None:
        self.event: Any = None
        self.state: Any = None
        self.now = 0
        self.signal: Any = None
        self.journey: Any = None

    @property
    def attributes(self) -> Any:
        """Custom attributes from profile updates (read only when a condition needs them)."""
        return self.state.attributes

    @property
    def player(self) -> Any:
        """The state again: ``player.*`` fields are computed from it."""
        return self.state


def days_inactive(state: PlayerState, now: int) -> int | None:
    """Whole days since the last player-initiated event, or registration."""
    anchor = state.last_activity
    if anchor is None:
        anchor = state.registered_at
    return None if anchor is None else max(0, now - anchor) // DAY


def churn_risk(state: PlayerState, now: int) -> str:
    """``high``, ``medium``, ``low`` or ``none``, from the lifecycle and days inactive."""
    if state.deposit_count == 0:
        return "none"
    stage = state.lifecycle(now)
    idle = days_inactive(state, now) or 0
    if stage is _LAPSED or (stage is _AT_RISK and idle >= 14):
        return "high"
    if stage is _AT_RISK:
        return "medium"
    return "low" if idle >= 3 else "none"


def _age(state: PlayerState, now: int) -> int | None:
    born = state.birth_date
    if born is None:
        return None
    year, month, day = int(born[:4]), int(born[5:7]), int(born[8:10])
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    return today.year - year - ((today.month, today.day) < (month, day))


def _last_category(state: PlayerState, ctx: Any) -> str | None:
    extra = state.extra
    store = extra.get(STORE_KEY) if extra is not None else None
    return None if store is None else store.last_category


def _days_registered(state: PlayerState, ctx: Any) -> int | None:
    registered = state.registered_at
    return None if registered is None else max(0, ctx.now - registered) // DAY


PLAYER_FIELDS: Final[Mapping[str, Any]] = {
    "days_inactive": Field(int | None, lambda state, ctx: days_inactive(state, ctx.now)),
    "days_registered": Field(int | None, _days_registered),
    "age": Field(int | None, lambda state, ctx: _age(state, ctx.now)),
    "churn_risk": Field(
        Literal["none", "low", "medium", "high"], lambda state, ctx: churn_risk(state, ctx.now)
    ),
    "last_category": Field(GameCategory | None, _last_category),
}
"""``player.*``: CRM views derived from the state."""

# Journey instance memo: (deposits at start, bets at start, deposits at step, bets at step,
# time of the last step).
JOURNEY_FIELDS: Final[Mapping[str, Any]] = {
    "started_at": Field(int, lambda inst, ctx: inst.started),
    "step_at": Field(int, lambda inst, ctx: inst.memo[4]),
    "days_in_journey": Field(int, lambda inst, ctx: max(0, ctx.now - inst.started) // DAY),
    "deposited_since_start": Field(bool, lambda inst, ctx: ctx.state.deposit_count > inst.memo[0]),
    "bet_since_start": Field(bool, lambda inst, ctx: ctx.state.bet_count > inst.memo[1]),
    "deposited_since_step": Field(bool, lambda inst, ctx: ctx.state.deposit_count > inst.memo[2]),
    "bet_since_step": Field(bool, lambda inst, ctx: ctx.state.bet_count > inst.memo[3]),
}
"""``journey.*``: where the player is in a journey and what they did since."""


@functools.cache
def schema(
    events: tuple[str, ...] | None = None, *, journey: bool = False, signal: bool = False
) -> Schema:
    """The schema of a campaign condition (``events``: the trigger's event types)."""
    roots: dict[str, Any] = {"player": PLAYER_FIELDS}
    if journey:
        roots["journey"] = JOURNEY_FIELDS
    if signal:
        roots["signal"] = ANY
    return rule_schema(events, roots)
