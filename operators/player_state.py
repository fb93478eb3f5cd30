"""Per-player state and the fold of events into it.

``PlayerState`` is everything the rules need to know about one player, kept small: the
budget is about a kilobyte per player, because a large operator has millions of them.
Money is held as integer ten-thousandths of the player's currency (exact for the
contract's four decimal places), times as integer epoch seconds, windows as bucketed
ring buffers (``operators.windows``), consents as a bit mask, and repeated strings
(country, currency, time zone) are interned so players share them.

The fold is a pure function of (state, event); it never reads the wall clock.
"""

from __future__ import annotations

import sys
from array import array
from decimal import Decimal
from enum import StrEnum
from typing import Any

from operators.windows import DEFAULT_WINDOWS, WindowedSums
from pipeline.events import (
    Bet,
    BonusRedeemed,
    Channel,
    ConsentChange,
    Deposit,
    Event,
    GameCategory,
    LimitChange,
    Login,
    ProfileUpdate,
    Registration,
    SelfExclusion,
    Unsubscribed,
    Win,
    Withdrawal,
)

MONEY_SCALE = 10_000  # state keeps money as integer ten-thousandths
DAY = 86_400
AT_RISK_AFTER = 7 * DAY  # no activity for this long: at risk
LAPSED_AFTER = 30 * DAY  # no activity for this long: lapsed
INDEFINITE = 2**62  # self-exclusion with no end date

CATEGORIES: tuple[GameCategory, ...] = tuple(GameCategory)
_CATEGORY_INDEX = {category: i for i, category in enumerate(CATEGORIES)}
CHANNEL_BITS: dict[str, int] = {channel.value: 1 << i for i, channel in enumerate(Channel)}

# Metrics kept in the sliding windows.
WAGER, NET = 0, 1
WINDOW_NAMES: tuple[str, ...] = tuple(spec.name for spec in DEFAULT_WINDOWS)


class Lifecycle(StrEnum):
    """Where a player is in the customer lifecycle, at a given event time."""

    REGISTERED = "registered"  # no deposit yet
    DEPOSITOR = "depositor"  # one deposit
    ACTIVE = "active"  # repeat depositor, active in the last 7 days
    AT_RISK = "at_risk"  # depositor, no activity for 7 to 30 days
    LAPSED = "lapsed"  # depositor, no activity for 30 days or more


def to_money(amount: Decimal) -> int:
    """A contract amount (at most four decimals) as integer ten-thousandths."""
    return int(amount.scaleb(4))


def from_money(units: int) -> Decimal:
    """Integer ten-thousandths back to a ``Decimal`` amount."""
    return Decimal(units).scaleb(-4)


class PlayerState:
    """Everything the rules know about one player."""

    __slots__ = (
        "attributes",
        "bet_count",
        "birth_date",
        "category_wager",
        "consents",
        "country",
        "currency",
        "deposit_count",
        "deposit_total",
        "first_deposit_at",
        "first_seen",
        "flags",
        "last_activity",
        "last_seen",
        "limit_changes",
        "locale",
        "longest_loss_streak",
        "loss_streak",
        "player_id",
        "registered_at",
        "self_excluded_until",
        "sessions",
        "timezone",
        "vip_level",
        "wager_total",
        "win_total",
        "windows",
        "withdrawal_total",
    )

    def __init__(self, player_id: str, first_seen: int) -> None:
        self.player_id = player_id
        self.first_seen = first_seen
        self.last_seen = first_seen
        self.last_activity: int | None = None
        self.registered_at: int | None = None
        self.country: str | None = None
        self.currency: str | None = None
        self.timezone: str | None = None
        self.locale: str | None = None
        self.birth_date: str | None = None
        self.consents = 0
        self.sessions = 0
        self.deposit_count = 0
        self.deposit_total = 0
        self.first_deposit_at: int | None = None
        self.withdrawal_total = 0
        self.bet_count = 0
        self.wager_total = 0
        self.win_total = 0
        self.loss_streak = 0
        self.longest_loss_streak = 0
        self.category_wager = array("q", bytes(8 * len(CATEGORIES)))
        self.windows = WindowedSums(2)
        self.self_excluded_until: int | None = None
        self.limit_changes = 0
        self.vip_level: int | str | None = None
        self.attributes: dict[str, Any] | None = None
        # Bits owned by the engine and the triggers (fired one-shot rules, armed timers).
        self.flags = 0

    # -- derived views -------------------------------------------------------------

    @property
    def net_total(self) -> int:
        """Lifetime net result for the player: wins minus wagers (negative = player lost)."""
        return self.win_total - self.wager_total

    @property
    def average_stake(self) -> int:
        """Mean stake in ten-thousandths (0 before the first bet)."""
        return self.wager_total // self.bet_count if self.bet_count else 0

    @property
    def favourite_category(self) -> str | None:
        """The game category with the most money wagered (None before the first bet)."""
        best = max(range(len(CATEGORIES)), key=self.category_wager.__getitem__)
        return CATEGORIES[best].value if self.category_wager[best] > 0 else None

    def wager(self, window: int, now: int) -> int:
        """Money wagered in window ``window`` (index into ``WINDOW_NAMES``) ending at now."""
        return self.windows.total(window, WAGER, now)

    def net(self, window: int, now: int) -> int:
        """Net result (wins minus wagers) in window ``window`` ending at now."""
        return self.windows.total(window, NET, now)

    def has_consent(self, channel: str) -> bool:
        """Whether the player currently consents to marketing on ``channel``."""
        return bool(self.consents & CHANNEL_BITS[channel])

    @property
    def is_self_excluded(self) -> bool:
        """Whether the player must get nothing promotional.

        True from a self-exclusion until the player's first activity after it ends.
        """
        return self.self_excluded_until is not None

    def lifecycle(self, now: int) -> Lifecycle:
        """The lifecycle stage at event time ``now`` (derived, never stored)."""
        if self.deposit_count == 0:
            return Lifecycle.REGISTERED
        idle = now - (self.last_activity if self.last_activity is not None else self.last_seen)
        if idle >= LAPSED_AFTER:
            return Lifecycle.LAPSED
        if idle >= AT_RISK_AFTER:
            return Lifecycle.AT_RISK
        return Lifecycle.ACTIVE if self.deposit_count > 1 else Lifecycle.DEPOSITOR

    # -- the fold ------------------------------------------------------------------

    def apply(self, event: Event, ts: int, is_activity: bool) -> None:
        """Fold one event, at integer event time ``ts``, into the state."""
        self.last_seen = max(self.last_seen, ts)
        self.first_seen = min(self.first_seen, ts)
        if is_activity:
            if self.last_activity is None or ts > self.last_activity:
                self.last_activity = ts
            # A self-excluded player stays suppressed until they actively return after
            # the exclusion ends, not merely until its end date.
            if self.self_excluded_until is not None and ts >= self.self_excluded_until:
                self.self_excluded_until = None
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event, ts)


def _on_registration(state: PlayerState, event: Any, ts: int) -> None:
    e: Registration = event
    state.registered_at = ts
    state.country = sys.intern(e.country)
    state.currency = sys.intern(e.currency)
    state.timezone = sys.intern(e.timezone)
    state.locale = sys.intern(e.locale) if e.locale else None
    state.birth_date = e.birth_date.isoformat() if e.birth_date else None
    consents = e.consents
    state.consents = (
        (CHANNEL_BITS["email"] if consents.email else 0)
        | (CHANNEL_BITS["sms"] if consents.sms else 0)
        | (CHANNEL_BITS["push"] if consents.push else 0)
        | (CHANNEL_BITS["in_app"] if consents.in_app else 0)
    )


def _on_login(state: PlayerState, event: Any, ts: int) -> None:
    state.sessions += 1


def _on_deposit(state: PlayerState, event: Any, ts: int) -> None:
    e: Deposit = event
    if e.status != "ok":
        return
    state.deposit_count += 1
    state.deposit_total += to_money(e.amount)
    if state.first_deposit_at is None or ts < state.first_deposit_at:
        state.first_deposit_at = ts


def _on_withdrawal(state: PlayerState, event: Any, ts: int) -> None:
    e: Withdrawal = event
    if e.status == "ok":
        state.withdrawal_total += to_money(e.amount)


def _on_bet(state: PlayerState, event: Any, ts: int) -> None:
    e: Bet = event
    stake = to_money(e.amount)
    state.bet_count += 1
    state.wager_total += stake
    state.category_wager[_CATEGORY_INDEX[e.game_category]] += stake
    windows = state.windows
    windows.add(ts, WAGER, stake)
    windows.add(ts, NET, -stake)


def _on_win(state: PlayerState, event: Any, ts: int) -> None:
    e: Win = event
    amount = to_money(e.amount)
    state.win_total += amount
    if amount:
        state.windows.add(ts, NET, amount)
        state.loss_streak = 0
    else:  # DESIGN.md: a win of 0 settles a lost round
        state.loss_streak += 1
        state.longest_loss_streak = max(state.longest_loss_streak, state.loss_streak)


def _on_consent_change(state: PlayerState, event: Any, ts: int) -> None:
    e: ConsentChange = event
    bit = CHANNEL_BITS[e.channel.value]
    state.consents = (state.consents | bit) if e.granted else (state.consents & ~bit)


def _on_unsubscribed(state: PlayerState, event: Any, ts: int) -> None:
    e: Unsubscribed = event
    state.consents &= ~CHANNEL_BITS[e.channel.value]


def _on_self_exclusion(state: PlayerState, event: Any, ts: int) -> None:
    e: SelfExclusion = event
    until = INDEFINITE if e.until is None else int(e.until.timestamp())
    current = state.self_excluded_until
    # An exclusion can be extended, never shortened by a later event.
    if current is None or until > current:
        state.self_excluded_until = until


def _on_limit_change(state: PlayerState, event: Any, ts: int) -> None:
    _: LimitChange = event
    state.limit_changes += 1


def _on_profile_update(state: PlayerState, event: Any, ts: int) -> None:
    e: ProfileUpdate = event
    if e.attributes:
        merged = dict(state.attributes or {})
        merged.update(e.attributes)
        state.attributes = merged
    if e.vip_level is not None:
        state.vip_level = e.vip_level


def _on_bonus_redeemed(state: PlayerState, event: Any, ts: int) -> None:
    _: BonusRedeemed = event


_HANDLERS: dict[type, Any] = {
    Registration: _on_registration,
    Login: _on_login,
    Deposit: _on_deposit,
    Withdrawal: _on_withdrawal,
    Bet: _on_bet,
    Win: _on_win,
    ConsentChange: _on_consent_change,
    Unsubscribed: _on_unsubscribed,
    SelfExclusion: _on_self_exclusion,
    LimitChange: _on_limit_change,
    ProfileUpdate: _on_profile_update,
    BonusRedeemed: _on_bonus_redeemed,
}


def player_row(state: PlayerState, now: int) -> dict[str, Any]:
    """One flat row describing a player at event time ``now`` (for players.parquet)."""
    row: dict[str, Any] = {
        "player_id": state.player_id,
        "registered_at": state.registered_at,
        "first_seen": state.first_seen,
        "last_seen": state.last_seen,
        "last_activity": state.last_activity,
        "country": state.country,
        "currency": state.currency,
        "timezone": state.timezone,
        "locale": state.locale,
        "birth_date": state.birth_date,
        "lifecycle": state.lifecycle(now).value,
        "sessions": state.sessions,
        "deposit_count": state.deposit_count,
        "deposit_total": from_money(state.deposit_total),
        "first_deposit_at": state.first_deposit_at,
        "withdrawal_total": from_money(state.withdrawal_total),
        "bet_count": state.bet_count,
        "wager_total": from_money(state.wager_total),
        "net_total": from_money(state.net_total),
        "average_stake": from_money(state.average_stake),
        "favourite_category": state.favourite_category,
        "loss_streak": state.loss_streak,
        "longest_loss_streak": state.longest_loss_streak,
        "self_excluded": state.is_self_excluded,
        "limit_changes": state.limit_changes,
        "vip_level": None if state.vip_level is None else str(state.vip_level),
    }
    for index, name in enumerate(WINDOW_NAMES):
        row[f"wager_{name}"] = from_money(state.wager(index, now))
        row[f"net_{name}"] = from_money(state.net(index, now))
    for channel in CHANNEL_BITS:
        row[f"consent_{channel}"] = state.has_consent(channel)
    return row
