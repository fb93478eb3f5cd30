"""Per-player state and the fold of events into it.

``PlayerState`` is everything the rules need to know about one player, kept small: the
budget is about a kilobyte per player, because a large operator has millions of them.
Money is held as integer ten-thousandths of the player's currency (exact for the
contract's four decimal places), times as integer epoch seconds, windows as bucketed
ring buffers (``operators.windows``: one sparse array, shared by every player who has
never bet), consents as a bit mask, and repeated strings
(country, currency, time zone) are interned so players share them.

The fold is a pure function of (state, event); it never reads the wall clock.
"""

from __future__ import annotations

import sys
from array import array
from decimal import Decimal
from enum import StrEnum
from typing import Any

from operators.windows import WindowedSums, WindowSpec, window_layout
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
RG_BLOCKING_STATUSES = frozenset({"cooling_off", "closed_gambling"})

CATEGORIES: tuple[GameCategory, ...] = tuple(GameCategory)
_CATEGORY_INDEX = {category: i for i, category in enumerate(CATEGORIES)}
CHANNEL_BITS: dict[str, int] = {channel.value: 1 << i for i, channel in enumerate(Channel)}

# Metrics kept in the sliding windows.
WAGER, NET = 0, 1


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


# Every numeric scalar of a player lives in one array('q'): a slot per field instead of a
# Python int object per field is what keeps a player near a kilobyte. ``NONE`` marks an
# absent time. The names below index that array.
NONE = -(2**63)
(
    FIRST_SEEN,
    LAST_SEEN,
    LAST_ACTIVITY,
    REGISTERED_AT,
    FIRST_DEPOSIT_AT,
    SELF_EXCLUDED_UNTIL,
    NEXT_DUE,
    SESSIONS,
    DEPOSIT_COUNT,
    DEPOSIT_TOTAL,
    WITHDRAWAL_TOTAL,
    BET_COUNT,
    WAGER_TOTAL,
    WIN_TOTAL,
    LOSS_STREAK,
    LONGEST_LOSS_STREAK,
    LIMIT_CHANGES,
    CONSENTS,
    FLAGS,
    BIRTH_DATE,
    CATEGORY_WAGER,  # one slot per game category from here
) = range(21)
_FIELDS = CATEGORY_WAGER + len(CATEGORIES)
_BLANK = array("q", [0]) * _FIELDS
for _slot in (LAST_ACTIVITY, REGISTERED_AT, FIRST_DEPOSIT_AT, SELF_EXCLUDED_UNTIL, BIRTH_DATE):
    _BLANK[_slot] = NONE
_BLANK[NEXT_DUE] = 2**63 - 1

# Windows: 1 h at 10-minute, 24 h at 2-hour and 7 d at 1-day resolution.
PLAYER_WINDOWS: tuple[WindowSpec, ...] = (
    WindowSpec("1h", 600, 6),
    WindowSpec("24h", 7200, 12),
    WindowSpec("7d", 86400, 7),
)
WINDOW_NAMES: tuple[str, ...] = tuple(spec.name for spec in PLAYER_WINDOWS)
_WINDOWS = window_layout(2, PLAYER_WINDOWS)  # WAGER and NET

_PROFILES: dict[tuple[str | None, ...], tuple[str | None, ...]] = {}


def _profile(*values: str | None) -> tuple[str | None, ...]:
    """One shared tuple per distinct (country, currency, time zone, locale, channel)."""
    return _PROFILES.setdefault(values, values)


def _optional(slot: int, doc: str) -> property:
    def get(self: PlayerState) -> int | None:
        value = self.n[slot]
        return None if value == NONE else value

    return property(get, doc=doc)


def _counter(slot: int, doc: str) -> property:
    def get(self: PlayerState) -> int:
        return self.n[slot]

    return property(get, doc=doc)


class PlayerState:
    """Everything the rules know about one player.

    Numbers live in ``n`` (an ``array('q')`` indexed by the module's field constants) and
    are read through the properties below; the fold writes ``n`` directly. ``windows``
    is the windowed sums' array (``operators.windows.WindowLayout``: no object around
    it), replaced by the fold when a bucket comes or goes; until the first bet it is the
    layout's shared empty array. ``extra`` holds what few players have (custom
    attributes, VIP level, rule progress).
    """

    __slots__ = ("extra", "n", "player_id", "profile", "windows")

    def __init__(self, player_id: str, first_seen: int) -> None:
        self.player_id = player_id
        self.n = array("q", _BLANK)
        self.n[FIRST_SEEN] = first_seen
        self.n[LAST_SEEN] = first_seen
        self.windows = _WINDOWS.empty
        self.profile: tuple[str | None, ...] = _NO_PROFILE
        self.extra: dict[str, Any] | None = None

    first_seen = _counter(FIRST_SEEN, "Event time of the first event seen.")
    last_seen = _counter(LAST_SEEN, "Event time of the newest event seen.")
    last_activity = _optional(LAST_ACTIVITY, "Newest player-initiated event time, if any.")
    registered_at = _optional(REGISTERED_AT, "Registration time, if registered.")
    first_deposit_at = _optional(FIRST_DEPOSIT_AT, "First successful deposit time.")
    self_excluded_until = _optional(SELF_EXCLUDED_UNTIL, "End of a self-exclusion.")
    sessions = _counter(SESSIONS, "Logins seen.")
    deposit_count = _counter(DEPOSIT_COUNT, "Successful deposits.")
    deposit_total = _counter(DEPOSIT_TOTAL, "Money deposited, ten-thousandths.")
    withdrawal_total = _counter(WITHDRAWAL_TOTAL, "Money withdrawn, ten-thousandths.")
    bet_count = _counter(BET_COUNT, "Bets placed.")
    wager_total = _counter(WAGER_TOTAL, "Money wagered, ten-thousandths.")
    win_total = _counter(WIN_TOTAL, "Money won, ten-thousandths.")
    loss_streak = _counter(LOSS_STREAK, "Consecutive lost rounds, now.")
    longest_loss_streak = _counter(LONGEST_LOSS_STREAK, "Longest loss streak so far.")
    limit_changes = _counter(LIMIT_CHANGES, "Responsible-gaming limit changes.")

    @property
    def flags(self) -> int:
        """Bits owned by the rules (one-shot rules fired, quiet spells notified)."""
        return self.n[FLAGS]

    @flags.setter
    def flags(self, value: int) -> None:
        self.n[FLAGS] = value

    @property
    def consents(self) -> int:
        """Consent bit mask, one bit per channel (``CHANNEL_BITS``)."""
        return self.n[CONSENTS]

    @property
    def country(self) -> str | None:
        """ISO country code from registration."""
        return self.profile[0]

    @property
    def currency(self) -> str | None:
        """ISO currency code from registration."""
        return self.profile[1]

    @property
    def timezone(self) -> str | None:
        """IANA time zone from registration."""
        return self.profile[2]

    @property
    def locale(self) -> str | None:
        """Preferred locale from registration."""
        return self.profile[3]

    @property
    def acquisition_channel(self) -> str | None:
        """How the player was acquired (organic, affiliate, ...)."""
        return self.profile[4]

    @property
    def birth_date(self) -> str | None:
        """Birth date as YYYY-MM-DD, if given."""
        value = self.n[BIRTH_DATE]
        if value == NONE:
            return None
        return f"{value // 10000:04d}-{value // 100 % 100:02d}-{value % 100:02d}"

    @property
    def vip_level(self) -> int | str | None:
        """VIP level from profile updates, if any."""
        return None if self.extra is None else self.extra.get("vip_level")

    @property
    def attributes(self) -> dict[str, Any]:
        """Custom attributes from profile updates (empty if none)."""
        if self.extra is None:
            return {}
        attributes: dict[str, Any] = self.extra.get("attributes", {})
        return attributes

    # -- derived views -------------------------------------------------------------

    @property
    def net_total(self) -> int:
        """Lifetime net result for the player: wins minus wagers (negative = player lost)."""
        return self.n[WIN_TOTAL] - self.n[WAGER_TOTAL]

    @property
    def average_stake(self) -> int:
        """Mean stake in ten-thousandths (0 before the first bet)."""
        bets = self.n[BET_COUNT]
        return self.n[WAGER_TOTAL] // bets if bets else 0

    @property
    def favourite_category(self) -> str | None:
        """The game category with the most money wagered (None before the first bet)."""
        n = self.n
        best = max(range(len(CATEGORIES)), key=lambda i: n[CATEGORY_WAGER + i])
        return CATEGORIES[best].value if n[CATEGORY_WAGER + best] > 0 else None

    def category_wager(self, category: str) -> int:
        """Money wagered on one game category, ten-thousandths."""
        return self.n[CATEGORY_WAGER + _CATEGORY_INDEX[GameCategory(category)]]

    def wager(self, window: int, now: int) -> int:
        """Money wagered in window ``window`` (index into ``WINDOW_NAMES``) ending at now."""
        return _WINDOWS.total(self.windows, window, WAGER, now)

    def net(self, window: int, now: int) -> int:
        """Net result (wins minus wagers) in window ``window`` ending at now."""
        return _WINDOWS.total(self.windows, window, NET, now)

    def has_consent(self, channel: str) -> bool:
        """Whether the player currently consents to marketing on ``channel``."""
        return bool(self.n[CONSENTS] & CHANNEL_BITS[channel])

    @property
    def rg_block(self) -> str | None:
        """A responsible-gaming account status that blocks promotions, if any.

        The platform reports it as a custom attribute ``rg_status`` on ``profile_update``:
        ``cooling_off`` or ``closed_gambling`` (an account closed for gambling reasons).
        """
        status = self.attributes.get("rg_status") if self.extra is not None else None
        return status if status in RG_BLOCKING_STATUSES else None

    @property
    def is_self_excluded(self) -> bool:
        """Whether the player must get nothing promotional.

        True from a self-exclusion until the player's first activity after it ends.
        """
        return self.n[SELF_EXCLUDED_UNTIL] != NONE

    def lifecycle(self, now: int) -> Lifecycle:
        """The lifecycle stage at event time ``now`` (derived, never stored)."""
        n = self.n
        if n[DEPOSIT_COUNT] == 0:
            return Lifecycle.REGISTERED
        last = n[LAST_ACTIVITY] if n[LAST_ACTIVITY] != NONE else n[LAST_SEEN]
        idle = now - last
        if idle >= LAPSED_AFTER:
            return Lifecycle.LAPSED
        if idle >= AT_RISK_AFTER:
            return Lifecycle.AT_RISK
        return Lifecycle.ACTIVE if n[DEPOSIT_COUNT] > 1 else Lifecycle.DEPOSITOR

    # -- the fold ------------------------------------------------------------------

    def apply(self, event: Event, ts: int, is_activity: bool) -> None:
        """Fold one event, at integer event time ``ts``, into the state."""
        n = self.n
        n[LAST_SEEN] = max(n[LAST_SEEN], ts)
        n[FIRST_SEEN] = min(n[FIRST_SEEN], ts)
        if is_activity:
            if ts > n[LAST_ACTIVITY]:  # NONE is the smallest value
                n[LAST_ACTIVITY] = ts
            # A self-excluded player stays suppressed until they actively return after
            # the exclusion ends, not merely until its end date.
            until = n[SELF_EXCLUDED_UNTIL]
            if until != NONE and ts >= until:
                n[SELF_EXCLUDED_UNTIL] = NONE
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event, ts)

    def __getstate__(self) -> tuple[Any, ...]:
        windows = self.windows.tobytes()
        return (self.player_id, self.n.tobytes(), windows, self.profile, self.extra)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.player_id, raw, windows, profile, self.extra = state
        if isinstance(windows, WindowedSums):
            # Pickled before 2026-12-07: a WindowedSums object (which converts its own
            # dense version-1 state), now just its array.
            if windows.layout is not _WINDOWS:
                raise ValueError(
                    f"player {self.player_id!r}: snapshot windows {windows!r} do not match "
                    f"the player windows {PLAYER_WINDOWS}"
                )
            self.windows = windows.sums
        else:
            self.windows = _WINDOWS.restore(windows)
        # Copied into an exact-size array: frombytes on an empty one over-allocates by
        # 32 bytes, paid by every player restored from a snapshot or the cold store.
        self.n = array("q", _BLANK)
        self.n[:] = array("q", raw)
        self.profile = _profile(*profile)


_NO_PROFILE = _profile(None, None, None, None, None)


def _on_registration(state: PlayerState, event: Any, ts: int) -> None:
    e: Registration = event
    n = state.n
    n[REGISTERED_AT] = ts
    state.profile = _profile(
        sys.intern(e.country),
        sys.intern(e.currency),
        sys.intern(e.timezone),
        sys.intern(e.locale) if e.locale else None,
        sys.intern(e.channel),
    )
    birth = e.birth_date
    n[BIRTH_DATE] = NONE if birth is None else birth.year * 10000 + birth.month * 100 + birth.day
    consents = e.consents
    n[CONSENTS] = (
        (CHANNEL_BITS["email"] if consents.email else 0)
        | (CHANNEL_BITS["sms"] if consents.sms else 0)
        | (CHANNEL_BITS["push"] if consents.push else 0)
        | (CHANNEL_BITS["in_app"] if consents.in_app else 0)
    )


def _on_login(state: PlayerState, event: Any, ts: int) -> None:
    state.n[SESSIONS] += 1


def _on_deposit(state: PlayerState, event: Any, ts: int) -> None:
    e: Deposit = event
    if e.status != "ok":
        return
    n = state.n
    n[DEPOSIT_COUNT] += 1
    n[DEPOSIT_TOTAL] += to_money(e.amount)
    if n[FIRST_DEPOSIT_AT] == NONE or ts < n[FIRST_DEPOSIT_AT]:
        n[FIRST_DEPOSIT_AT] = ts


def _on_withdrawal(state: PlayerState, event: Any, ts: int) -> None:
    e: Withdrawal = event
    if e.status == "ok":
        state.n[WITHDRAWAL_TOTAL] += to_money(e.amount)


def _on_bet(state: PlayerState, event: Any, ts: int) -> None:
    e: Bet = event
    stake = to_money(e.amount)
    n = state.n
    n[BET_COUNT] += 1
    n[WAGER_TOTAL] += stake
    n[CATEGORY_WAGER + _CATEGORY_INDEX[e.game_category]] += stake
    windows = _WINDOWS.add(state.windows, ts, WAGER, stake)
    state.windows = _WINDOWS.add(windows, ts, NET, -stake)


def _on_win(state: PlayerState, event: Any, ts: int) -> None:
    e: Win = event
    amount = to_money(e.amount)
    n = state.n
    n[WIN_TOTAL] += amount
    if amount:
        state.windows = _WINDOWS.add(state.windows, ts, NET, amount)
        n[LOSS_STREAK] = 0
    else:  # DESIGN.md: a win of 0 settles a lost round
        streak = n[LOSS_STREAK] + 1
        n[LOSS_STREAK] = streak
        n[LONGEST_LOSS_STREAK] = max(n[LONGEST_LOSS_STREAK], streak)


def _on_consent_change(state: PlayerState, event: Any, ts: int) -> None:
    e: ConsentChange = event
    bit = CHANNEL_BITS[e.channel.value]
    n = state.n
    n[CONSENTS] = (n[CONSENTS] | bit) if e.granted else (n[CONSENTS] & ~bit)


def _on_unsubscribed(state: PlayerState, event: Any, ts: int) -> None:
    e: Unsubscribed = event
    state.n[CONSENTS] &= ~CHANNEL_BITS[e.channel.value]


def _on_self_exclusion(state: PlayerState, event: Any, ts: int) -> None:
    e: SelfExclusion = event
    until = INDEFINITE if e.until is None else int(e.until.timestamp())
    # An exclusion can be extended, never shortened by a later event.
    state.n[SELF_EXCLUDED_UNTIL] = max(state.n[SELF_EXCLUDED_UNTIL], until)


def _on_limit_change(state: PlayerState, event: Any, ts: int) -> None:
    _: LimitChange = event
    state.n[LIMIT_CHANGES] += 1


def _on_profile_update(state: PlayerState, event: Any, ts: int) -> None:
    e: ProfileUpdate = event
    extra = state.extra if state.extra is not None else {}
    if e.attributes:
        extra["attributes"] = {**extra.get("attributes", {}), **e.attributes}
    if e.vip_level is not None:
        extra["vip_level"] = e.vip_level
    state.extra = extra or None


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
        "acquisition_channel": state.acquisition_channel,
        "limit_changes": state.limit_changes,
        "vip_level": None if state.vip_level is None else str(state.vip_level),
    }
    for index, name in enumerate(WINDOW_NAMES):
        row[f"wager_{name}"] = from_money(state.wager(index, now))
        row[f"net_{name}"] = from_money(state.net(index, now))
    for channel in CHANNEL_BITS:
        row[f"consent_{channel}"] = state.has_consent(channel)
    return row
