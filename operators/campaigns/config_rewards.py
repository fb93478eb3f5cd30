"""What a campaign can give: the reward models of the campaign YAML.

``type`` selects the model. Amounts are in the player's currency (``10``), or per currency
(``{SEK: 100, default: 10}``); percentages are plain numbers (``10`` is 10 %).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, model_validator

from operators.campaigns.config_types import Duration, MoneyAmount, Percent, Strict
from operators.player_state import WINDOW_NAMES
from pipeline.events import GameCategory

__all__ = [
    "BonusCredit",
    "Cashback",
    "Coupon",
    "DepositMatch",
    "FreeSpins",
    "Grant",
    "Reward",
    "Wagering",
]

Weight = Annotated[Decimal, Field(ge=0, le=1)]


class Wagering(Strict):
    """Play-through before a bonus can be withdrawn.

    ``multiplier`` times the bonus must be wagered within ``expires_in``; each bet counts
    its stake times its game category's contribution (``default_contribution`` for
    categories not listed). A bet above ``max_bet`` or a withdrawal (unless
    ``forfeit_on_withdrawal`` is false) forfeits the bonus.
    """

    multiplier: Annotated[Decimal, Field(gt=0, le=200)]
    contributions: dict[GameCategory, Weight] = Field(default_factory=dict)
    default_contribution: Weight = Decimal(1)
    max_bet: MoneyAmount | None = None
    expires_in: Duration = 30 * 86_400
    forfeit_on_withdrawal: bool = True


class FreeSpins(Strict):
    """``count`` spins on ``game`` worth ``value_per_spin`` each."""

    type: Literal["free_spins"]
    game: Annotated[str, Field(min_length=1, max_length=64)]
    count: Annotated[int, Field(ge=1, le=1000)]
    value_per_spin: MoneyAmount
    wagering: Wagering | None = None


class BonusCredit(Strict):
    """A fixed amount of bonus money."""

    type: Literal["bonus_credit"]
    amount: MoneyAmount
    wagering: Wagering | None = None


class DepositMatch(Strict):
    """``percent`` of the next deposit of at least ``min_deposit`` made within
    ``valid_for`` of the offer, up to ``max_amount``."""

    type: Literal["deposit_match"]
    percent: Percent
    max_amount: MoneyAmount
    min_deposit: MoneyAmount = Decimal(0)
    valid_for: Duration
    wagering: Wagering | None = None


class Cashback(Strict):
    """``percent`` of the player's net loss over ``window`` (``1h``, ``24h`` or ``7d``),
    paid only if it comes to at least ``min_amount``, and at most ``max_amount``."""

    type: Literal["cashback"]
    percent: Percent
    window: Literal["1h", "24h", "7d"]
    min_amount: MoneyAmount = Decimal(0)
    max_amount: MoneyAmount
    wagering: Wagering | None = None

    @model_validator(mode="after")
    def _known_window(self) -> Cashback:
        if self.window not in WINDOW_NAMES:  # the state's windows and this Literal agree
            raise ValueError(f"window must be one of {', '.join(WINDOW_NAMES)}")
        return self


Grant = Annotated[FreeSpins | BonusCredit, Field(discriminator="type")]


class Coupon(Strict):
    """A promo code that grants ``grant`` when redeemed (a ``bonus_redeemed`` event).

    A shared ``code`` (``WEEKEND25``) can be redeemed by any player in the campaign's
    segment while the campaign is active; with ``personal: true`` each player gets their
    own code (``code`` is its prefix: ``RELOAD-7F3A9C21``), issued by the campaign's
    trigger and valid for ``valid_for``. ``max_uses`` is per player.
    """

    type: Literal["coupon"]
    code: Annotated[str, Field(pattern=r"^[A-Z0-9][A-Z0-9_]{1,31}$")]
    personal: bool = False
    max_uses: Annotated[int, Field(ge=1, le=100)] = 1
    valid_for: Duration | None = None
    grant: Grant


Reward = Annotated[
    FreeSpins | BonusCredit | DepositMatch | Cashback | Coupon, Field(discriminator="type")
]
