"""What gamification conditions read, and the context object they read it from.

Beside the roots every rule has (``event``, ``state``, ``attributes``, ``now``: see
:mod:`operators.expressions_roots`), gamification conditions read:

* ``gam``: the player's progress: ``points``, ``status_points``, ``period_points``
  (decimals), ``level`` (id), ``level_rank`` (0 = first level), ``badges`` (how many),
  ``missions_completed``, ``login_streak`` (consecutive local days with a login);
* ``local``: the player's local time at ``now``: ``weekday`` (1 = Monday .. 7 = Sunday),
  ``weekend`` (Saturday or Sunday), ``hour``, ``date`` (``YYYY-MM-DD``);
* ``multiplier``: on a ``win``, the win divided by the round's stake. It is only known for
  a won round whose bet was seen; on any other event a rule whose condition reads it is
  not checked at all (so ``multiplier >= 100`` costs nothing on the 70% of lost rounds).
  Written plainly (``multiplier >= 100``, alone or joined by ``and``), it is a floor: a
  won round below every win rule's floor skips them without evaluating anything.

Example: ``local.weekend and gam.level_rank >= 2``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from operators.expressions import Field, Schema
from operators.expressions_roots import rule_schema
from operators.gamification.periods import LocalDay, calendar
from operators.gamification.state import GamState
from operators.player_state import PlayerState
from operators.rules import Intent, Schedule

_POINTS = Field(Decimal, scale=2)


def gam_fields(ladder: Mapping[str, int]) -> dict[str, Any]:
    """The fields of the ``gam`` root, for a ladder mapping level id to rank."""
    return {
        "points": _POINTS,
        "status_points": Field(Decimal, lambda gs, ctx: gs.status, scale=2),
        "period_points": _POINTS,
        "level": str,
        "level_rank": Field(int, lambda gs, ctx: ladder.get(gs.level, 0)),
        "badges": Field(int, lambda gs, ctx: len(gs.badges) if gs.badges else 0),
        "missions_completed": Field(int, lambda gs, ctx: gs.missions_done),
        "login_streak": Field(int, lambda gs, ctx: gs.streak),
    }


LOCAL_FIELDS: dict[str, Any] = {
    "weekday": int,
    "weekend": bool,
    "date": str,
    "hour": Field(int, lambda day, turn: day.hour(turn.now)),
}


class Schemas:
    """The schemas of a program's conditions."""

    def __init__(self, ladder: Mapping[str, int]) -> None:
        self._extra = {
            "gam": gam_fields(ladder),
            "local": LOCAL_FIELDS,
            "multiplier": Field(Decimal | None, scale=2),
        }
        self.segment: Schema = rule_schema(None, {"gam": self._extra["gam"], "local": LOCAL_FIELDS})
        self._by_events: dict[tuple[str, ...], Schema] = {}

    def on_events(self, event_types: Iterable[str]) -> Schema:
        """The schema of a condition on ``event_types`` (raises ValueError for unknown ones)."""
        key = tuple(event_types)
        schema = self._by_events.get(key)
        if schema is None:
            schema = self._by_events[key] = rule_schema(key, self._extra)
        return schema


class Turn:
    """One step of one player: who, when, what happened, and where intents go.

    It is also what compiled conditions read (``event``, ``state``, ``attributes``,
    ``now``, ``gam``, ``local``, ``multiplier``). The rule set keeps one and re-points it
    at each step (:meth:`begin`) instead of allocating one per event.
    """

    __slots__ = (
        "default_zone",
        "event",
        "gam",
        "multiplier",
        "now",
        "out",
        "schedule",
        "state",
    )

    def __init__(self, default_zone: str = "UTC") -> None:
        self.default_zone = default_zone
        self.state: PlayerState = PlayerState("", 0)
        self.gam: GamState = GamState()
        self.now = 0
        self.event: Any = None
        self.multiplier: int | None = None
        self.out: list[Intent] = []
        self.schedule: Schedule | None = None

    def begin(
        self,
        state: PlayerState,
        gs: GamState,
        now: int,
        out: list[Intent],
        schedule: Schedule | None,
        *,
        event: Any = None,
    ) -> Turn:
        """Point the turn at a player, a time and (optionally) the event being handled."""
        self.state = state
        self.gam = gs
        self.now = now
        self.out = out
        self.schedule = schedule
        self.event = event
        self.multiplier = None
        return self

    @property
    def zone_name(self) -> str:
        """The player's time zone (the configured default when registration gave none)."""
        return self.state.timezone or self.default_zone

    @property
    def event_id(self) -> str:
        """The id of the event being handled ("" at a deadline)."""
        event = self.event
        return "" if event is None else str(event.event_id)

    @property
    def player_id(self) -> str:
        """The player's id."""
        return self.state.player_id

    @property
    def attributes(self) -> dict[str, Any]:
        """The player's custom attributes."""
        return self.state.attributes

    @property
    def local(self) -> LocalDay:
        """The player's local day at ``now`` (``hour`` is read at ``now``)."""
        return calendar("day", self.zone_name).local(self.now)
