"""The gamification configuration as written in ``config/gamification/*.yaml``.

Each file is a mapping with any of the sections ``settings``, ``points``, ``levels``
(each at most once across all files) and ``badges``, ``missions``, ``leaderboards``,
``tournaments`` (lists, concatenated across files). Every model forbids unknown fields;
the loader (:mod:`operators.gamification.loader`) turns a misspelt field into an error
with a "did you mean". Conditions are strings in the expression language
(:mod:`operators.expressions`), compiled by the loader with the right schema.

Units, as a CRM manager writes them: money in the base currency (``per: 10`` is "per
10 EUR"), points with up to two decimals, durations as ``90s``, ``30m``, ``24h``, ``7d``
or seconds.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from pipeline.events import GameCategory

Id = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)]
PointsValue = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ConditionText = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]

PSEUDO_EVENTS = ("points_awarded", "level_up", "mission_completed")
"""Gamification moments a badge can be checked on, besides the firehose's event types."""

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_duration(value: object) -> object:
    """``"24h"`` as 86400; an int stays; anything else is left for the int check to refuse."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"expected a duration such as 90s, 30m, 24h, 7d or 2w, got {value!r}")
        return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


Duration = Annotated[int, BeforeValidator(parse_duration), Field(gt=0)]


def check_zone(value: str | None) -> str | None:
    """An IANA time zone name that exists, or None."""
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r} (an IANA name: Europe/Malta)") from exc
    return value


Zone = Annotated[str, BeforeValidator(check_zone)]


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


class Strict(BaseModel):
    """Frozen, and unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Settings(Strict):
    """Program-wide settings."""

    timezone: Zone = "UTC"  # leaderboard periods and level maintenance, unless overridden
    player_timezone: Zone = "UTC"  # for players whose registration gave none
    base_currency: CurrencyCode = "EUR"
    # Units of the base currency per unit of each currency. Empty: amounts are used as
    # they are. Otherwise a currency not listed (and not the base) earns nothing.
    rates: dict[CurrencyCode, Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=6)]] = (
        Field(default_factory=dict)
    )
    # Points and leaderboard scores are batched per player: sent at most this long after
    # the first contribution, at each period boundary, and (if set) when the player logs out.
    flush_seconds: Duration = 600
    flush_on_logout: bool = True
    # Messages go out in the player's locale; this one for players without a locale (or
    # whose locale a template lacks). Every message's template must exist in it.
    default_locale: Annotated[str, Field(pattern=r"^[a-z]{2}$")] = "en"


class Reward(Strict):
    """What a player gets: paid through the wallet channel as a reward action."""

    type: Literal["free_spins", "bonus_credit", "cash", "coupon"]
    amount: Money | None = None  # bonus_credit, cash
    count: Annotated[int, Field(gt=0)] | None = None  # free_spins
    value_per_spin: Money | None = None  # free_spins
    game: Text | None = None  # free_spins: which game, if one
    code: Text | None = None  # coupon
    wagering: Annotated[int, Field(ge=0, le=100)] | None = None  # bonus_credit multiplier

    @model_validator(mode="after")
    def _fields_of_type(self) -> Reward:
        needs = {
            "free_spins": ("count", "value_per_spin"),
            "bonus_credit": ("amount",),
            "cash": ("amount",),
            "coupon": ("code",),
        }[self.type]
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.type} reward needs {' and '.join(missing)}")
        return self


class Message(Strict):
    """A templated message to the player."""

    template_id: Text
    channel: Literal["email", "sms", "push", "in_app"] = "in_app"


class Boost(Strict):
    """Multiply a rule's points while ``when`` holds (checked once per batch of points)."""

    when: ConditionText
    multiply: Annotated[Decimal, Field(gt=0, le=100, decimal_places=2)]


class PointsRule(Strict):
    """Points for an event type: ``points`` per event, or per ``per`` units of ``measure``.

    Without ``per`` (and ``measure``) a rule pays ``points`` per matching event. With
    ``per``, bets measure ``real_wager`` by default: the stake minus its ``bonus_amount``
    part, so bonus money earns nothing; ``deposit``/``withdrawal``/``win`` measure
    ``amount`` (in the base currency). Deposits and withdrawals count only when their
    ``status`` is ok.
    """

    id: Id
    event: Text
    categories: list[GameCategory] | None = None
    when: ConditionText | None = None
    measure: Literal["count", "real_wager", "wager", "amount"] | None = None
    per: Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=4)] | None = None
    points: PointsValue
    boosts: list[Boost] = Field(default_factory=list)
    daily_cap: PointsValue | None = None


class PointsConfig(Strict):
    """Points rules and the daily cap over all of them (per player, local day)."""

    daily_cap: PointsValue | None = None
    rules: list[PointsRule] = Field(default_factory=list)


class Level(Strict):
    """One rung of the ladder: reached on ``min_points`` (and ``requires``, if given)."""

    id: Id
    name: Text | None = None
    min_points: PointsValue = Decimal(0)
    requires: ConditionText | None = None
    maintain: PointsValue = Decimal(0)  # points per maintenance period to keep the level
    reward: Reward | None = None
    message: Message | None = None
    demotion_message: Message | None = None


class Maintenance(Strict):
    """The period over which levels are maintained."""

    period: Literal["week", "month"] = "month"
    timezone: Zone | None = None


class LevelsConfig(Strict):
    """The ladder, lowest level first, and its maintenance period."""

    maintenance: Maintenance = Field(default_factory=Maintenance)
    ladder: Annotated[list[Level], Field(min_length=1)]


class Badge(Strict):
    """An achievement, checked on ``event`` (an event type, a list, or a pseudo-event).

    ``repeat``: ``never`` (once ever), ``always`` (once per matching event), ``daily`` or
    ``weekly`` (at most once per local day / ISO week of the player).
    """

    id: Id
    name: Text | None = None
    event: Annotated[list[Text], BeforeValidator(_as_list), Field(min_length=1)]
    when: ConditionText | None = None
    repeat: Literal["never", "always", "daily", "weekly"] = "never"
    points: PointsValue | None = None
    reward: Reward | None = None
    message: Message | None = None


class Objective(Strict):
    """One thing a mission asks for: ``target`` of ``measure`` over matching events.

    Money measures (``wager``, ``real_wager``, ``amount``) are in the base currency.
    """

    id: Id
    event: Text
    categories: list[GameCategory] | None = None
    when: ConditionText | None = None
    measure: Literal[
        "count", "wager", "real_wager", "amount", "distinct_games", "distinct_categories"
    ] = "count"
    target: Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=4)]


class Mission(Strict):
    """Objectives to complete in a time limit, for a reward."""

    id: Id
    name: Text | None = None
    assign: Literal["automatic", "opt_in"] = "automatic"
    opt_in_code: Text | None = None  # opt_in: joined by a bonus_redeemed with this code
    segment: ConditionText | None = None  # who gets it
    recurrence: Literal["daily", "weekly"] | None = None  # in the player's time zone
    time_limit: Duration | None = None  # from the start; recurring: at most to period end
    sequential: bool = False
    objectives: Annotated[list[Objective], Field(min_length=1)]
    points: PointsValue | None = None
    reward: Reward | None = None
    message: Message | None = None

    @model_validator(mode="after")
    def _opt_in_has_a_code(self) -> Mission:
        if self.assign == "opt_in" and self.opt_in_code is None:
            raise ValueError("an opt_in mission needs opt_in_code (the bonus code that joins it)")
        if self.assign == "automatic" and self.opt_in_code is not None:
            raise ValueError("opt_in_code is only for assign: opt_in")
        return self


ScoreKind = Literal["wager", "real_wager", "bets", "wins", "win_multiplier", "points"]


class Leaderboard(Strict):
    """A ranking per period, scored by ``score`` over matching bets (or points earned).

    ``win_multiplier`` keeps each player's best win/stake ratio; the others add up.
    ``categories`` and ``when`` filter the bets (for ``wins`` and ``win_multiplier``: the
    bet of the round); ``eligible`` is a condition on the player.
    """

    id: Id
    name: Text | None = None
    period: Literal["day", "week", "month", "all_time"]
    timezone: Zone | None = None
    score: ScoreKind
    categories: list[GameCategory] | None = None
    when: ConditionText | None = None
    eligible: ConditionText | None = None


class Prize(Strict):
    """A prize for one rank (``rank: 1``) or a range (``ranks: 4-10``, each gets it)."""

    rank: Annotated[int, Field(ge=1)] | None = None
    ranks: Annotated[str, StringConstraints(pattern=r"^\s*\d+\s*-\s*\d+\s*$")] | None = None
    reward: Reward

    @model_validator(mode="after")
    def _one_of_rank_or_ranks(self) -> Prize:
        if (self.rank is None) == (self.ranks is None):
            raise ValueError("give exactly one of rank (1) or ranks (4-10)")
        first, last = self.bounds
        if not 1 <= first <= last:
            raise ValueError(f"ranks {self.ranks!r} must go from a first rank >= 1 up")
        return self

    @property
    def bounds(self) -> tuple[int, int]:
        """The first and last rank this prize is for."""
        if self.rank is not None:
            return self.rank, self.rank
        first, _, last = (self.ranks or "").partition("-")
        return int(first), int(last)


class Tournament(Strict):
    """A time-boxed leaderboard with a prize table, settled once when it ends.

    Recurring (``period``) or one-off (``start`` and ``end``). ``tie``: ``earliest``
    (equal scores: who reached it first ranks higher) or ``split`` (tied players share
    the prizes of the ranks they occupy; needs money prizes).
    """

    id: Id
    name: Text | None = None
    period: Literal["day", "week", "month"] | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    timezone: Zone | None = None
    score: ScoreKind
    categories: list[GameCategory] | None = None
    when: ConditionText | None = None
    eligible: ConditionText | None = None
    min_score: Annotated[Decimal, Field(ge=0, decimal_places=2)] = Decimal(0)
    tie: Literal["earliest", "split"] = "earliest"
    prizes: Annotated[list[Prize], Field(min_length=1)]
    settle_after: Annotated[int, BeforeValidator(parse_duration), Field(ge=0)] = 300

    @model_validator(mode="after")
    def _schedule_and_prizes(self) -> Tournament:
        if (self.period is None) == (self.start is None or self.end is None):
            raise ValueError("give either period (day, week, month) or both start and end")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        taken: dict[int, int] = {}
        for index, prize in enumerate(self.prizes):
            first, last = prize.bounds
            for rank in range(first, last + 1):
                if rank in taken:
                    raise ValueError(
                        f"rank {rank} has two prizes (prizes[{taken[rank]}] and prizes[{index}])"
                    )
                taken[rank] = index
        if sorted(taken) != list(range(1, len(taken) + 1)):
            raise ValueError(f"prize ranks must run from 1 without gaps, got {sorted(taken)}")
        if self.tie == "split":
            moneyless = [i for i, p in enumerate(self.prizes) if p.reward.amount is None]
            if moneyless:
                raise ValueError(
                    f"tie: split divides money: prizes{moneyless} need a reward with amount"
                )
        return self


class GamificationFile(Strict):
    """One YAML file: any of the sections."""

    settings: Settings | None = None
    points: PointsConfig | None = None
    levels: LevelsConfig | None = None
    badges: list[Badge] = Field(default_factory=list)
    missions: list[Mission] = Field(default_factory=list)
    leaderboards: list[Leaderboard] = Field(default_factory=list)
    tournaments: list[Tournament] = Field(default_factory=list)

    @field_validator("badges", "missions", "leaderboards", "tournaments", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        return [] if value is None else value
