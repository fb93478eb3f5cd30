"""What Pitboss rules read: the player state, the trigger's event, attributes and now.

``rule_schema(("deposit",))`` is the schema of a condition on deposit events:

* ``state``: :class:`~operators.player_state.PlayerState` as a CRM manager thinks of it:
  money in currency units (exact ``Decimal``, not the state's integer ten-thousandths),
  the sliding windows by name (``wager_24h``, ``net_7d``), the lifecycle stage at event
  time, consents and self-exclusion as booleans;
* ``event``: the fields every one of the trigger's event types has (``amount`` on deposits;
  a timestamp such as ``event.ts`` reads as integer epoch seconds);
* ``attributes``: the custom attributes of ``profile_update`` events, dynamic (a missing
  one is null);
* ``now``: the event time, integer epoch seconds.

The matching context is ``EvalContext(event, state, state.attributes, now)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Final, get_args

from pydantic import BaseModel

from operators.expressions_types import ANY, Field, Schema, suggest
from operators.player_state import (
    CHANNEL_BITS,
    WINDOW_NAMES,
    Lifecycle,
    PlayerState,
)
from pipeline.events import Event, GameCategory

__all__ = ["EVENT_MODELS", "STATE_FIELDS", "rule_schema"]


# Money is kept as integer ten-thousandths: declared with scale=4, a condition reads it in
# currency units, and compares it with a constant without building a Decimal.
_MONEY: Final = Field(Decimal, scale=4)


def _window(total: Callable[[PlayerState, int, int], int], index: int) -> Field:
    return Field(Decimal, lambda state, ctx: total(state, index, ctx.now), scale=4)


def _consent(bit: int) -> Field:
    return Field(bool, lambda state, ctx: bool(state.consents & bit))


STATE_FIELDS: Final[Mapping[str, Any]] = {
    "player_id": str,
    "country": str | None,
    "currency": str | None,
    "timezone": str | None,
    "locale": str | None,
    "acquisition_channel": str | None,
    "birth_date": str | None,
    "vip_level": int | str | None,
    "registered_at": int | None,
    "first_seen": int,
    "last_seen": int,
    "last_activity": int | None,
    "first_deposit_at": int | None,
    "sessions": int,
    "deposit_count": int,
    "bet_count": int,
    "loss_streak": int,
    "longest_loss_streak": int,
    "limit_changes": int,
    "deposit_total": _MONEY,
    "withdrawal_total": _MONEY,
    "wager_total": _MONEY,
    "win_total": _MONEY,
    "net_total": _MONEY,
    "average_stake": _MONEY,
    "favourite_category": GameCategory | None,
    "lifecycle": Field(Lifecycle, lambda state, ctx: state.lifecycle(ctx.now)),
    "self_excluded": Field(bool, attr="is_self_excluded"),
    **{f"consent_{channel}": _consent(bit) for channel, bit in CHANNEL_BITS.items()},
    **{
        f"wager_{name}": _window(PlayerState.wager, index)
        for index, name in enumerate(WINDOW_NAMES)
    },
    **{f"net_{name}": _window(PlayerState.net, index) for index, name in enumerate(WINDOW_NAMES)},
}
"""The player state's fields, as conditions read them."""


def _event_models() -> dict[str, type[BaseModel]]:
    models: dict[str, type[BaseModel]] = {}
    for model in get_args(get_args(Event)[0]):
        (name,) = get_args(model.model_fields["type"].annotation)
        models[name] = model
    return models


EVENT_MODELS: Final[Mapping[str, type[BaseModel]]] = _event_models()
"""The event model of each event type."""


def rule_schema(
    event_types: Iterable[str] | None = None, extra_roots: Mapping[str, Any] | None = None
) -> Schema:
    """The schema of a rule on ``event_types`` (no ``event`` root when None: segments).

    ``extra_roots`` adds roots (a campaign's own parameters, say); the context object must
    then have those attributes too.
    """
    roots: dict[str, Any] = {"state": STATE_FIELDS, "attributes": ANY, "now": int}
    if event_types is not None:
        models = []
        for name in event_types:
            model = EVENT_MODELS.get(name)
            if model is None:
                hint = suggest(name, EVENT_MODELS)
                raise ValueError(
                    f"unknown event type {name!r}"
                    + (f"; did you mean {hint!r}?" if hint else f"; one of {sorted(EVENT_MODELS)}")
                )
            models.append(model)
        if not models:
            raise ValueError("a rule on events needs at least one event type")
        roots["event"] = tuple(models)
    roots.update(extra_roots or {})
    return Schema(roots)
