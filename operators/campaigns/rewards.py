"""Reward arithmetic: amounts in a player's currency, wagering, payloads and template views.

Money is integer ten-thousandths, like the player state; amounts paid are rounded down
to whole cents. A reward's *view* is what templates read as ``reward`` (money as text
with two decimals, dates as local ISO dates); its *payload* is what the wallet receives.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from operators.campaigns.config_rewards import (
    BonusCredit,
    Cashback,
    Coupon,
    DepositMatch,
    FreeSpins,
    Wagering,
)
from operators.campaigns.config_types import money_units
from operators.player_state import CATEGORIES, DAY, WINDOW_NAMES, PlayerState
from operators.zones import zone

__all__ = [
    "CompiledReward",
    "CompiledWagering",
    "cashback",
    "fmt_money",
    "grant_value",
    "match",
    "personal_code",
    "reward_payload",
    "reward_view",
]

_FULL: Final = 10_000  # a contribution weight of 100 %, in ten-thousandths
_CENT: Final = 100  # one cent in ten-thousandths


def fmt_money(units: int) -> str:
    """Ten-thousandths as text with two decimals, rounded down: 123450 -> ``"12.34"``."""
    sign = "-" if units < 0 else ""
    units = abs(units)
    return f"{sign}{units // _FULL}.{units % _FULL // _CENT:02d}"


def _number(value: Decimal) -> str:
    """A plain number without exponent or trailing zeros: ``Decimal("10.0")`` -> ``"10"``."""
    text = format(value.normalize(), "f")
    return text


def _date(at: int, timezone: str | None) -> str:
    return dt.datetime.fromtimestamp(at, zone(timezone)).date().isoformat()


@dataclass(frozen=True, slots=True)
class CompiledWagering:
    """A wagering requirement, with contributions as integer ten-thousandths."""

    config: Wagering
    weights: tuple[int, ...]  # per game category, in ``CATEGORIES`` order

    @classmethod
    def of(cls, config: Wagering) -> CompiledWagering:
        """Precompute the per-category weights."""
        default = int(config.default_contribution * _FULL)
        weights = [default] * len(CATEGORIES)
        for category, weight in config.contributions.items():
            weights[CATEGORIES.index(category)] = int(weight * _FULL)
        return cls(config, tuple(weights))

    def required(self, bonus: int) -> int:
        """Money to wager for a bonus of ``bonus`` ten-thousandths."""
        return int(Decimal(bonus) * self.config.multiplier)

    def max_bet(self, currency: str | None) -> int:
        """The largest stake allowed while wagering (0: no limit)."""
        limit = self.config.max_bet
        return 0 if limit is None else money_units(limit, currency)


@dataclass(frozen=True, slots=True)
class CompiledReward:
    """A reward definition and its wagering requirement, if any."""

    config: FreeSpins | BonusCredit | DepositMatch | Cashback | Coupon
    wagering: CompiledWagering | None

    @classmethod
    def of(
        cls, config: FreeSpins | BonusCredit | DepositMatch | Cashback | Coupon
    ) -> CompiledReward:
        """Compile a reward model."""
        source = config.grant if isinstance(config, Coupon) else config
        wagering = CompiledWagering.of(source.wagering) if source.wagering is not None else None
        return cls(config, wagering)

    @property
    def type(self) -> str:
        """The reward type: ``free_spins``, ``deposit_match``..."""
        return self.config.type

    @property
    def immediate(self) -> bool:
        """Whether it is paid when the campaign fires (not on a later deposit or code)."""
        return not isinstance(self.config, DepositMatch | Coupon)


def grant_value(reward: FreeSpins | BonusCredit, currency: str | None) -> int:
    """The money value of free spins or a bonus credit, ten-thousandths."""
    if isinstance(reward, FreeSpins):
        return reward.count * money_units(reward.value_per_spin, currency)
    return money_units(reward.amount, currency)


def cashback(reward: Cashback, state: PlayerState, now: int) -> tuple[int, int]:
    """(cashback to pay, net loss) over the reward's window at ``now``; 0 if below minimum."""
    loss = max(0, -state.net(WINDOW_NAMES.index(reward.window), now))
    currency = state.currency
    amount = int(Decimal(loss) * reward.percent / 100) // _CENT * _CENT
    amount = min(amount, money_units(reward.max_amount, currency))
    if amount <= 0 or amount < money_units(reward.min_amount, currency):
        return 0, loss
    return amount, loss


def match(reward: DepositMatch, deposit: int, currency: str | None) -> int:
    """The bonus for a deposit of ``deposit`` ten-thousandths; 0 if it does not qualify."""
    if deposit <= 0 or deposit < money_units(reward.min_deposit, currency):
        return 0
    amount = int(Decimal(deposit) * reward.percent / 100) // _CENT * _CENT
    return min(amount, money_units(reward.max_amount, currency))


def personal_code(prefix: str, campaign_id: str, player_id: str) -> str:
    """A player's own coupon code: the same on every run, hard to guess for another."""
    digest = hashlib.blake2b(f"{campaign_id}\x1f{player_id}".encode(), digest_size=4)
    return f"{prefix}-{digest.hexdigest().upper()}"


def _wagering_view(
    wagering: CompiledWagering | None, bonus: int | None, currency: str | None, until: str
) -> dict[str, Any] | None:
    if wagering is None:
        return None
    limit = wagering.max_bet(currency)
    return {
        "multiplier": _number(wagering.config.multiplier),
        "required": fmt_money(wagering.required(bonus)) if bonus is not None else None,
        "max_bet": fmt_money(limit) if limit else None,
        "expires_days": wagering.config.expires_in // DAY,
        "expires_at": until,
    }


def reward_view(
    reward: CompiledReward,
    state: PlayerState,
    now: int,
    *,
    amount: int | None = None,
    basis: int | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """What templates read as ``reward``; ``amount`` is the bonus paid (if known yet),
    ``basis`` the net loss or deposit it was computed from."""
    config = reward.config
    currency = state.currency
    tz = state.timezone
    wagering = reward.wagering
    until = _date(now + wagering.config.expires_in, tz) if wagering is not None else ""
    view: dict[str, Any] = {"type": config.type}
    if isinstance(config, FreeSpins | BonusCredit):
        value = grant_value(config, currency)
        view["amount"] = fmt_money(value)
        if isinstance(config, FreeSpins):
            view |= {
                "game": config.game,
                "count": config.count,
                "value_per_spin": fmt_money(money_units(config.value_per_spin, currency)),
            }
        view["wagering"] = _wagering_view(wagering, value, currency, until)
    elif isinstance(config, Cashback):
        view |= {
            "amount": fmt_money(amount or 0),
            "percent": _number(config.percent),
            "net_loss": fmt_money(basis or 0),
            "window": config.window,
            "max_amount": fmt_money(money_units(config.max_amount, currency)),
        }
        view["wagering"] = _wagering_view(wagering, amount, currency, until)
    elif isinstance(config, DepositMatch):
        view |= {
            "percent": _number(config.percent),
            "max_amount": fmt_money(money_units(config.max_amount, currency)),
            "min_deposit": fmt_money(money_units(config.min_deposit, currency)),
            "valid_days": config.valid_for // DAY,
            "expires_at": _date(now + config.valid_for, tz),
            "amount": fmt_money(amount) if amount is not None else None,
            "deposit": fmt_money(basis) if basis is not None else None,
        }
        view["wagering"] = _wagering_view(wagering, amount, currency, until)
    else:
        grant = CompiledReward(config.grant, wagering)
        view |= {
            "code": code or config.code,
            "max_uses": config.max_uses,
            "expires_at": _date(now + config.valid_for, tz) if config.valid_for else None,
            "grant": reward_view(grant, state, now),
        }
    return view


def reward_payload(
    reward: CompiledReward,
    state: PlayerState,
    now: int,
    amount: int,
    *,
    basis: int | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """What the wallet receives for a reward of ``amount`` ten-thousandths paid at ``now``."""
    config = reward.config
    if isinstance(config, Coupon):
        granted = reward_payload(CompiledReward(config.grant, reward.wagering), state, now, amount)
        granted["code"] = code or config.code
        return granted
    payload: dict[str, Any] = {"reward_type": config.type, "amount": fmt_money(amount)}
    currency = state.currency
    if isinstance(config, FreeSpins):
        payload |= {
            "game": config.game,
            "count": config.count,
            "value_per_spin": fmt_money(money_units(config.value_per_spin, currency)),
        }
    elif isinstance(config, Cashback):
        payload |= {
            "percent": _number(config.percent),
            "net_loss": fmt_money(basis or 0),
            "window": config.window,
        }
    elif isinstance(config, DepositMatch):
        payload |= {"percent": _number(config.percent), "deposit": fmt_money(basis or 0)}
    wagering = reward.wagering
    if wagering is not None:
        limit = wagering.max_bet(currency)
        payload["wagering"] = {
            "multiplier": _number(wagering.config.multiplier),
            "required": fmt_money(wagering.required(amount)),
            "max_bet": fmt_money(limit) if limit else None,
            "expires_at": now + wagering.config.expires_in,
        }
    return payload
