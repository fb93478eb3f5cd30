"""The Action contract: what the player operator decides and what sinks receive.

An *action* is an intent plus a decision. Its ``action_id`` is derived only from what
caused it (campaign, player, trigger occurrence), so replaying the same events yields the
same ids and a sink that sees an id again can do nothing: this is how an at-least-once
engine pays every reward exactly once.

All times here are event time (epoch seconds turned into aware datetimes on output):
``event_at`` is when the cause happened, ``decided_at`` the event time at which the rule
fired (the deadline, for timers). ``delivered_at`` is wall-clock time stamped by a channel
sink on delivery and stays ``None`` in the decision log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from enum import StrEnum
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict


class ActionKind(StrEnum):
    """What an action does for the player."""

    REWARD = "reward"
    MESSAGE = "message"
    GAMIFICATION = "gamification"


class Decision(StrEnum):
    """The fixed decisions; suppressions are ``suppressed:<reason>``."""

    SENT = "sent"
    HELD_OUT = "held_out"
    CAPPED = "capped"
    BUDGET_EXHAUSTED = "budget_exhausted"
    FAILED = "failed"


def suppressed(reason: str) -> str:
    """The decision string for an intent suppressed for ``reason``."""
    return f"suppressed:{reason}"


def derive_action_id(campaign_id: str, player_id: str, occurrence: str) -> str:
    """A stable id from what caused the action; never random, never the wall clock.

    >>> derive_action_id("welcome", "p1", "registration")
    'a-066a646a9bf8326409b669d9'
    """
    digest = hashlib.blake2b(
        f"{campaign_id}\x1f{player_id}\x1f{occurrence}".encode(), digest_size=12
    ).hexdigest()
    return f"a-{digest}"


class Action(BaseModel):
    """One decided action, as the action log and every sink see it."""

    model_config = ConfigDict(frozen=True)

    action_id: str
    campaign_id: str
    player_id: str
    kind: ActionKind
    channel: str
    payload: dict[str, Any]
    event_id: str
    decision: str
    event_at: dt.datetime
    decided_at: dt.datetime
    delivered_at: dt.datetime | None = None
    priority: int = 0
    campaign_version: str = ""
    variant: str = ""
    cost: int = 0  # money spent from budgets, ten-thousandths of ``currency``
    currency: str = ""
    detail: str = ""  # why delivery failed, for ``failed``
    defer_when_capped: int = 0  # seconds: a capped action waits and retries (campaign)

    def to_json(self) -> bytes:
        """Compact JSON with keys in declaration order: byte-stable across runs.

        orjson over the fields, the bytes pydantic's ``model_dump_json`` gives (times in
        UTC with ``Z``), about a quarter of its cost; pydantic for what orjson refuses (an
        integer beyond 64 bits in a payload). ``tests/unit/test_actions.py`` checks both
        give the same bytes.
        """
        try:
            return orjson.dumps(self.__dict__, option=orjson.OPT_UTC_Z)
        except TypeError:
            return self.model_dump_json().encode()

    @classmethod
    def trusted(cls, values: dict[str, Any]) -> Action:
        """An action from values that are already of the field types, every field given in
        declaration order (the engine builds them from typed intents): about 0.5 µs
        against 2.5 for validation, which matters at one action per few events.

        What ``model_construct`` sets, without its per-field defaults pass (which costs
        more than validating). ``tests/unit/test_actions.py`` holds it equal to the
        validated model, field for field and byte for byte.
        """
        action = _new(cls)
        _set(action, "__dict__", values)
        _set(action, "__pydantic_fields_set__", set(_ALL_FIELDS))
        _set(action, "__pydantic_extra__", None)
        _set(action, "__pydantic_private__", None)
        return action


_new = object.__new__
_set = object.__setattr__
_ALL_FIELDS = frozenset(Action.model_fields)
FIELD_ORDER: tuple[str, ...] = tuple(Action.model_fields)
"""Action's fields in declaration order: the order ``Action.trusted`` needs."""


def epoch_to_datetime(seconds: float) -> dt.datetime:
    """Event-time seconds as an aware UTC datetime.

    Actions come in runs at one time (a flush's points and scores, a mission's event,
    reward and message), so the last conversion is remembered: a tuple replaced whole,
    safe for worker threads sharing it.
    """
    last = _LAST_TIME[0]
    if last[0] == seconds:
        return last[1]
    found = dt.datetime.fromtimestamp(seconds, dt.UTC)
    _LAST_TIME[0] = (seconds, found)
    return found


_LAST_TIME: list[tuple[float, dt.datetime]] = [(0.0, dt.datetime.fromtimestamp(0, dt.UTC))]
