"""A loaded gamification configuration, compiled for the hot path.

The loader (:mod:`operators.gamification.loader`) builds a :class:`Program` from the
validated YAML: conditions compiled, money turned into integer units (ten-thousandths of
the base currency), points and scores into hundredths, game categories into indexes, and
each rule that needs a running total of its own given a slot in the player's window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from operators.campaigns.templates import TemplateStore
from operators.expressions import Condition
from operators.gamification.periods import Calendar, PeriodKind, Span
from operators.gamification.state import (
    BET_AT,
    BETS,
    BONUS,
    MULT,
    MULT_AT,
    N_CATEGORIES,
    REAL,
    WIN_AT,
    WINS,
)

POINTS_SCALE = 100  # points are kept in hundredths
MONEY_UNITS = 10_000  # money is kept in ten-thousandths
PPM = 1_000_000  # exchange rates are kept in millionths

ScoreKind = Literal["wager", "real_wager", "bets", "wins", "win_multiplier", "points"]

_SUM_BLOCKS: dict[str, tuple[tuple[int, ...], int]] = {
    # score kind -> (window value blocks, time block)
    "real_wager": ((REAL,), BET_AT),
    "wager": ((REAL, BONUS), BET_AT),
    "bets": ((BETS,), BET_AT),
    "wins": ((WINS,), WIN_AT),
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Program-wide settings, compiled."""

    zone: str
    player_zone: str
    base_currency: str
    rates: dict[str, int] | None  # currency -> base units per unit, in millionths; None: as is
    flush_seconds: int
    flush_on_logout: bool
    default_locale: str = "en"  # messages for players without a locale (or one untemplated)

    def to_base(self, units: int, currency: str | None) -> int:
        """Money ``units`` of ``currency`` in units of the base currency (0 if unconvertible)."""
        rates = self.rates
        if rates is None or currency == self.base_currency:
            return units
        rate = rates.get(currency or "")
        return 0 if rate is None else units * rate // PPM


@dataclass(frozen=True, slots=True)
class RewardSpec:
    """A reward: the wallet payload and what it costs the budget (base-currency units)."""

    payload: dict[str, Any]
    cost: int

    def split(self, parts: int) -> RewardSpec:
        """An equal share of a money reward, rounded down to the cent."""
        amount = Decimal(self.payload["amount"])
        share = (amount / parts).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
        return RewardSpec({**self.payload, "amount": str(share)}, int(share.scaleb(4)))

    def combined(self, other: RewardSpec) -> RewardSpec:
        """Two money rewards as one (the prizes of several ranks pooled for a tie)."""
        total = Decimal(self.payload["amount"]) + Decimal(other.payload["amount"])
        return RewardSpec({**self.payload, "amount": str(total)}, self.cost + other.cost)


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """A templated message."""

    template_id: str
    channel: str


@dataclass(frozen=True, slots=True)
class Boost:
    """Multiply points by ``numerator / denominator`` while ``when`` holds."""

    when: Condition
    numerator: int
    denominator: int


@dataclass(frozen=True, slots=True)
class PointsRule:
    """A compiled points rule.

    ``slot`` is -1 when the rule reads the window's per-category blocks (``block``) over
    ``categories``; otherwise the index of its own running total in the window.
    """

    id: str
    event: str
    categories: tuple[int, ...]
    when: Condition | None
    measure: str
    money: bool  # the measure is an amount (converted to the base currency)
    points: int  # hundredths per ``per``
    per: int  # base-currency units (money) or 1 (count)
    boosts: tuple[Boost, ...]
    daily_cap: int | None
    slot: int
    blocks: tuple[int, ...]  # window blocks summed when slot == -1
    cells: tuple[int, ...] = ()  # the window indexes those blocks cover (set below)

    def __post_init__(self) -> None:
        cells = tuple(block + c for block in self.blocks for c in self.categories)
        object.__setattr__(self, "cells", cells)


@dataclass(frozen=True, slots=True)
class Level:
    """One rung of the ladder."""

    id: str
    name: str
    rank: int
    min_points: int
    requires: Condition | None
    maintain: int
    reward: RewardSpec | None
    message: MessageSpec | None
    demotion_message: MessageSpec | None


@dataclass(frozen=True, slots=True)
class Ladder:
    """The levels, lowest first, and the maintenance calendar."""

    levels: tuple[Level, ...]
    by_id: dict[str, Level]
    maintenance: Calendar

    def of(self, level_id: str) -> Level:
        """The player's level (the first one for an id no longer configured)."""
        return self.by_id.get(level_id) or self.levels[0]


@dataclass(frozen=True, slots=True)
class Badge:
    """A compiled badge."""

    id: str
    name: str
    events: tuple[str, ...]  # event types, or one pseudo-event
    when: Condition | None
    repeat: str
    points: int
    reward: RewardSpec | None
    message: MessageSpec | None


@dataclass(frozen=True, slots=True)
class Objective:
    """A compiled mission objective; ``target`` is in the measure's units.

    ``categories`` is a bit mask of game category indexes (bit i: ``CATEGORIES[i]``),
    -1 for any category.
    """

    id: str
    event: str
    categories: int
    when: Condition | None
    measure: str
    target: int


# What an objective measures, as the small integers its step carries.
COUNT, DISTINCT_GAMES, DISTINCT_CATEGORIES, WAGER, REAL_WAGER, AMOUNT = range(6)
MEASURES = {
    "count": COUNT,
    "distinct_games": DISTINCT_GAMES,
    "distinct_categories": DISTINCT_CATEGORIES,
    "wager": WAGER,
    "real_wager": REAL_WAGER,
    "amount": AMOUNT,
}
# (objective index, its bit in MissionRun.done, category mask, condition, measure, target)
Step = tuple[int, int, int, Condition | None, int, int]


@dataclass(frozen=True, slots=True)
class Mission:
    """A compiled mission."""

    id: str
    name: str
    automatic: bool
    opt_in_code: str | None  # upper case
    segment: Condition | None
    recurrence: PeriodKind | None  # "day" or "week", in the player's zone
    time_limit: int | None
    sequential: bool
    objectives: tuple[Objective, ...]
    by_event: dict[str, tuple[int, ...]]  # event type -> indexes of its objectives
    targets: tuple[int, ...]
    points: int
    reward: RewardSpec | None
    message: MessageSpec | None
    all_done: int = 0  # the MissionRun.done mask of a completed mission (set below)
    # event type -> its objectives as flat steps for the per-event loop (set below)
    steps: dict[str, tuple[Step, ...]] = field(default_factory=dict)
    # game category index -> the bet steps that count that category (set below): a bet
    # walks only those
    bet_steps: tuple[tuple[Step, ...], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "all_done", (1 << len(self.objectives)) - 1)
        steps = {
            event: tuple(
                (j, 1 << j, o.categories, o.when, MEASURES[o.measure], o.target)
                for j in indexes
                for o in (self.objectives[j],)
            )
            for event, indexes in self.by_event.items()
        }
        object.__setattr__(self, "steps", steps)
        bets = steps.get("bet", ())
        by_category = tuple(
            tuple(step for step in bets if step[2] >> index & 1) for index in range(N_CATEGORIES)
        )
        object.__setattr__(self, "bet_steps", by_category)

    @property
    def money(self) -> int:
        """Bit i set: objective i measures money."""
        return sum(
            1 << i
            for i, objective in enumerate(self.objectives)
            if objective.measure in ("wager", "real_wager", "amount")
        )


@dataclass(frozen=True, slots=True)
class Prize:
    """A prize for ranks ``first`` to ``last``."""

    first: int
    last: int
    reward: RewardSpec


@dataclass(frozen=True, slots=True)
class TournamentRules:
    """What makes a leaderboard a tournament."""

    prizes: tuple[Prize, ...]
    tie: str  # "earliest" or "split"
    min_score: int  # hundredths
    settle_after: int

    @property
    def places(self) -> int:
        """How many ranks are paid."""
        return max(prize.last for prize in self.prizes)

    def prize_for(self, rank: int) -> RewardSpec | None:
        """The prize of ``rank``, if it has one."""
        for prize in self.prizes:
            if prize.first <= rank <= prize.last:
                return prize.reward
        return None


@dataclass(frozen=True, slots=True)
class Board:
    """A compiled leaderboard or tournament.

    Scored from the window's per-category blocks over ``categories`` (``slot`` -1), or
    from its own slots (value, time) when it has a ``when`` condition. A win-scored board
    with a condition has a ``bit`` in the round records: whether the round's bet matched.
    """

    id: str
    name: str
    campaign_id: str
    calendar: Calendar
    score: ScoreKind
    categories: tuple[int, ...]
    when: Condition | None
    eligible: Condition | None
    slot: int
    bit: int
    tournament: TournamentRules | None = None
    is_max: bool = False  # a best value (win multiplier) rather than a sum (set below)
    # Window indexes read when ``slot`` is -1: the values (summed, or the best multiplier
    # of each category) and their times (set below from ``score`` and ``categories``).
    value_cells: tuple[int, ...] = ()
    time_cells: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        is_max = self.score == "win_multiplier"
        values: tuple[int, ...]
        if is_max:
            values, times = (MULT,), MULT_AT
        else:
            values, times = _SUM_BLOCKS.get(self.score, ((), BET_AT))
        cells = tuple(block + c for block in values for c in self.categories)
        object.__setattr__(self, "is_max", is_max)
        object.__setattr__(self, "value_cells", cells)
        object.__setattr__(self, "time_cells", tuple(times + c for c in self.categories))

    def span(self, ts: int) -> Span:
        """The period event time ``ts`` falls in."""
        return self.calendar.span(ts)


@dataclass(frozen=True)
class Program:
    """Everything a loaded configuration says, ready for the hot path."""

    version: str
    settings: Settings
    points: tuple[PointsRule, ...] = ()
    daily_cap: int | None = None
    ladder: Ladder | None = None
    badges: tuple[Badge, ...] = ()
    missions: tuple[Mission, ...] = ()
    boards: tuple[Board, ...] = ()
    slots: int = 0  # window size
    layout: str = ""  # identifies which rule owns which window slot
    track_rounds: bool = False  # remember open rounds' stakes (for win-based rules)
    sources: tuple[str, ...] = field(default_factory=tuple)
    templates: TemplateStore | None = None  # messages are rendered with these, if set

    @property
    def tournaments(self) -> tuple[Board, ...]:
        """The boards that are tournaments."""
        return tuple(board for board in self.boards if board.tournament is not None)

    def board(self, board_id: str) -> Board | None:
        """The leaderboard or tournament called ``board_id``."""
        return next((board for board in self.boards if board.id == board_id), None)
