"""What the campaign engine keeps per player, in ``state.extra["campaigns"]``.

Kept small and free of references to the compiled configuration (campaigns are named by
id, journey steps by step id), so it survives a new configuration version: a hot reload
swaps the rules and every player carries on where they were.

* ``fired``: per campaign, how many times the player entered it and when last (limits);
* ``live``: the instances still in progress (a journey, an offer waiting for a deposit or
  a code, a bonus being wagered), by instance key (campaign id, or ``campaign/step`` for
  a journey step's reward);
* ``cursor``: every deadline derived from the state alone (inactivity, registration
  anniversaries, cron ticks...) at or before this time has been handled;
* ``memo``: previous values of ``changed`` expressions; ``last_category``: the game
  category of the newest bet.
"""

from __future__ import annotations

from decimal import Decimal
from enum import IntEnum
from typing import Any, Final

from operators.player_state import NONE, PlayerState, from_money

__all__ = [
    "STORE_KEY",
    "Instance",
    "PlayerCampaigns",
    "Status",
    "campaign_rows",
    "ensure_store",
    "store_of",
    "wager",
]

STORE_KEY: Final = "campaigns"


class Status(IntEnum):
    """Where a campaign instance is: activated -> notified -> checked -> rewarded ->
    wagering -> completed / expired / cancelled (journeys end completed or exited)."""

    ACTIVATED = 1
    NOTIFIED = 2
    CHECKED = 3
    REWARDED = 4
    WAGERING = 5
    COMPLETED = 6
    EXPIRED = 7
    CANCELLED = 8
    EXITED = 9
    REJECTED = 10  # a coupon redemption that did not qualify (no instance moves)

    @property
    def label(self) -> str:
        """The name used in the action log and players.parquet."""
        return _LABELS[self]


_WAGERING: Final = Status.WAGERING

_LABELS: Final = {
    Status.ACTIVATED: "activated",
    Status.NOTIFIED: "notified",
    Status.CHECKED: "condition_checked",
    Status.REWARDED: "rewarded",
    Status.WAGERING: "wagering",
    Status.COMPLETED: "completed",
    Status.EXPIRED: "expired",
    Status.CANCELLED: "cancelled",
    Status.EXITED: "exited",
    Status.REJECTED: "rejected",
}


class Instance:
    """One campaign instance in progress for one player.

    ``occurrence`` is the trigger occurrence the instance began with: with the campaign
    and player it derives every action id of the instance. ``due`` is its next deadline
    (a journey step, an offer's or a bonus's expiry). A journey has ``step`` (the next
    step's id) and ``memo`` (deposit and bet counts at its start and at its last step,
    and that step's time); a bonus being wagered has ``need``, ``done`` and ``max_bet``
    (ten-thousandths) and ``weights``, the contribution of each game category (in
    ``CATEGORIES`` order, ten-thousandths): the terms as granted, whatever the
    configuration says later.
    """

    __slots__ = (
        "amount",
        "done",
        "due",
        "max_bet",
        "memo",
        "need",
        "occurrence",
        "started",
        "status",
        "step",
        "uses",
        "variant",
        "weights",
    )

    def __init__(self, occurrence: str, started: int, variant: str = "") -> None:
        self.occurrence = occurrence
        self.started = started
        self.variant = variant
        self.status = Status.ACTIVATED
        self.due: int | None = None
        self.step: str | None = None
        self.memo: tuple[int, int, int, int, int] | None = None
        self.need = 0
        self.done = 0
        self.max_bet = 0
        self.amount = 0
        self.uses = 0
        self.weights: tuple[int, ...] = ()

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    def __repr__(self) -> str:
        step = f" step={self.step}" if self.step is not None else ""
        return f"Instance({Status(self.status).label}{step} due={self.due})"


class PlayerCampaigns:
    """The campaign engine's part of one player's state."""

    __slots__ = ("cursor", "fired", "last_category", "live", "memo", "wagering")

    def __init__(self) -> None:
        self.cursor = NONE
        self.fired: dict[str, tuple[int, int]] = {}  # campaign -> (times entered, last time)
        self.live: dict[str, Instance] = {}
        self.memo: dict[str, Any] | None = None
        self.wagering = 0  # live instances in WAGERING (bets only look further if > 0)
        self.last_category: str | None = None

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.cursor, self.fired, self.live, self.memo, self.wagering, self.last_category)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        (self.cursor, self.fired, self.live, self.memo, self.wagering, self.last_category) = state

    def record_fired(self, campaign_id: str, at: int) -> None:
        """Count one entry into ``campaign_id`` at ``at`` (for its limits)."""
        times, _ = self.fired.get(campaign_id, (0, at))
        self.fired[campaign_id] = (times + 1, at)

    def next_due(self) -> int | None:
        """The earliest deadline of a live instance."""
        due = [i.due for i in self.live.values() if i.due is not None]
        return min(due) if due else None


def wager(store: PlayerCampaigns, stake: int, category: int) -> list[tuple[str, Instance]]:
    """Count a bet of ``stake`` on game category ``category`` (its index in
    ``CATEGORIES``) towards every bonus being wagered; the instances now met or broken
    (a stake above the maximum bet), for the caller to end."""
    ended: list[tuple[str, Instance]] = []
    for key, instance in store.live.items():
        if instance.status == _WAGERING:
            if instance.max_bet and stake > instance.max_bet:
                ended.append((key, instance))
                continue
            instance.done += stake * instance.weights[category] // 10_000
            if instance.done >= instance.need:
                ended.append((key, instance))
    return ended


def store_of(state: PlayerState) -> PlayerCampaigns | None:
    """The player's campaign store, if the engine ever wrote one."""
    extra = state.extra
    if extra is None:
        return None
    store: PlayerCampaigns | None = extra.get(STORE_KEY)
    return store


def ensure_store(state: PlayerState) -> PlayerCampaigns:
    """The player's campaign store, created on first use."""
    extra = state.extra
    if extra is None:
        extra = state.extra = {}
    store: PlayerCampaigns | None = extra.get(STORE_KEY)
    if store is None:
        store = extra[STORE_KEY] = PlayerCampaigns()
    return store


def _money(units: int) -> Decimal:
    return from_money(units)


def campaign_rows(state: PlayerState) -> dict[str, Any]:
    """Flat campaign columns for players.parquet (same keys and types for every player).

    ``campaigns_live`` lists the instances in progress as ``key=status[@step]`` joined
    with ``;``, ``campaigns_entered`` the campaigns ever entered as ``id*times``.
    """
    store = store_of(state)
    if store is None:
        return {
            "campaigns_live": None,
            "campaigns_entered": None,
            "campaign_last_entered_at": None,
            "wagering_required": None,
            "wagering_progress": None,
            "last_category": None,
        }
    live = ";".join(
        f"{key}={Status(inst.status).label}" + (f"@{inst.step}" if inst.step else "")
        for key, inst in sorted(store.live.items())
    )
    entered = ";".join(f"{cid}*{times}" for cid, (times, _) in sorted(store.fired.items()))
    last = max((at for _, at in store.fired.values()), default=None)
    wagering = [i for i in store.live.values() if i.status == Status.WAGERING]
    return {
        "campaigns_live": live or None,
        "campaigns_entered": entered or None,
        "campaign_last_entered_at": last,
        "wagering_required": _money(sum(i.need for i in wagering)) if wagering else None,
        "wagering_progress": _money(sum(i.done for i in wagering)) if wagering else None,
        "last_category": store.last_category,
    }
