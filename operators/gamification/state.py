"""A player's gamification state: kept in ``PlayerState.extra["gamification"]``, compact.

Lifetime facts (points, level, badges, streak, missions done) are a few ints and small
dicts keyed by configuration ids (so a configuration reload keeps them meaningful). What
the player did since the last flush of points and scores is one integer array, the
*window* (``acc``), dropped after each flush so an idle player carries none:

* per game category: real-money stake, bonus stake, bets, newest bet time, winnings,
  newest win time, best win multiplier (hundredths) and its time;
* then one or two slots per rule that needs its own running total (a points rule on
  another event type or with a condition, a leaderboard with a condition).

Amounts in the window are ten-thousandths of the player's currency; they are converted
to the base currency once, at the flush. The object pickles as a plain tuple.
"""

from __future__ import annotations

from array import array
from decimal import Decimal
from typing import Any

from operators.player_state import CATEGORIES, PlayerState

KEY = "gamification"
"""Where the state lives in ``PlayerState.extra``."""

NO_DUE = 2**63 - 1
"""A deadline that never comes."""

N_CATEGORIES = len(CATEGORIES)
# Offsets of the per-category blocks in the window.
REAL, BONUS, BETS, BET_AT, WINS, WIN_AT, MULT, MULT_AT = (i * N_CATEGORIES for i in range(8))
FIXED_SLOTS = 8 * N_CATEGORIES
"""Window slots before the rule-owned ones."""

MAX_OPEN_ROUNDS = 16
"""Open rounds remembered per player (for win multipliers); older ones are forgotten."""


class MissionRun:
    """One instance of a mission a player is doing."""

    __slots__ = (
        "done",
        "ends",
        "key",
        "mission",
        "money",
        "progress",
        "seen",
        "started",
        "targets",
    )

    def __init__(
        self, mission: str, key: str, started: int, ends: int, targets: tuple[int, ...]
    ) -> None:
        self.mission = mission
        self.key = key  # the instance: "once", a local date or an ISO week
        self.started = started
        self.ends = ends  # NO_DUE when it has no time limit
        self.targets = targets  # per objective, in the objective's units
        self.progress = [0] * len(targets)
        self.done = 0  # bit i: objective i complete
        self.seen: dict[int, set[str]] | None = None  # distinct-count objectives
        self.money = 0  # bit i: objective i counts money (ten-thousandths)

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _RUN_FIELDS)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        # Fields are only ever appended: an older snapshot's missing ones keep defaults.
        self.seen, self.money = None, 0
        for name, value in zip(_RUN_FIELDS, state, strict=False):
            setattr(self, name, value)


_RUN_FIELDS = ("mission", "key", "started", "ends", "targets", "progress", "done", "seen", "money")


class GamState:
    """Everything gamification keeps about one player."""

    __slots__ = (
        "acc",
        "assign_at",
        "badge_keys",
        "badges",
        "best",
        "bet_mark",
        "bonus_points",
        "day",
        "flush_due",
        "flushes",
        "last_flush",
        "layout",
        "level",
        "level_since",
        "maint_due",
        "mission_log",
        "missions",
        "missions_done",
        "period_index",
        "period_points",
        "points",
        "promotions",
        "rounds",
        "rule_today",
        "status",
        "streak",
        "streak_day",
        "today",
        "wager_mark",
        "window_start",
    )

    def __init__(self, level: str = "") -> None:
        self.points = 0  # lifetime points earned, hundredths
        self.status = 0  # points counting towards the next level, hundredths
        self.level = level  # current level id ("" without a ladder)
        self.level_since = -1  # maintenance period index the level was reached in
        self.promotions = 0
        self.period_index = -1  # maintenance period of period_points
        self.period_points = 0
        self.maint_due = NO_DUE
        self.day = -1  # player's local day (ordinal) of today / rule_today
        self.today = 0
        self.rule_today: dict[str, int] | None = None
        self.badges: dict[str, int] | None = None  # badge id -> times awarded
        self.badge_keys: dict[str, str] | None = None  # daily/weekly badges: last key
        self.streak_day = -1
        self.streak = 0  # consecutive local days with a login
        self.missions: list[MissionRun] | None = None
        self.mission_log: dict[str, str] | None = None  # mission id -> "S:key" / "O:key"
        self.missions_done = 0
        self.acc: array[int] | None = None  # the window; None when nothing is pending
        self.layout = ""  # the configuration layout the window's rule slots follow
        self.window_start = 0
        self.flush_due = NO_DUE
        self.flushes = 0
        self.last_flush = -(2**62)
        self.bonus_points = 0  # pending points from badges and missions, not capped
        self.best: dict[str, tuple[str, int]] | None = None  # max boards: (period, flushed)
        self.rounds: dict[str, tuple[int, int, int]] | None = None  # round -> stake, cat, mask
        self.assign_at = -(2**62)  # bets and wins re-check missions from this time
        # The state's bet count and wager total after the last bet seen: the next bet's
        # stake is the difference (cheaper than converting its Decimal again).
        self.bet_mark = -1
        self.wager_mark = 0

    def next_due(self) -> int:
        """The earliest deadline: window flush, mission expiry or level maintenance."""
        due = self.flush_due if self.flush_due < self.maint_due else self.maint_due
        if self.missions:
            for run in self.missions:
                if run.ends < due:
                    due = run.ends
        return due

    def __getstate__(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _PICKLED)

    def progress_text(self) -> str:
        """The running missions' progress: ``daily_spinner 12/50; weekly_explorer 3/5 20/200``."""
        parts = []
        for run in self.missions or ():
            counts = []
            for i, (value, target) in enumerate(zip(run.progress, run.targets, strict=False)):
                if run.money >> i & 1:
                    counts.append(f"{_money(value)}/{_money(target)}")
                else:
                    counts.append(f"{value}/{target}")
            parts.append(f"{run.mission} {' '.join(counts)}")
        return "; ".join(parts)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        # A snapshot from before a field was added lacks it (fields are only ever added,
        # at the end of _PICKLED): it keeps its default.
        self.__init__()  # type: ignore[misc]
        for name, value in zip(_PICKLED, state, strict=False):
            setattr(self, name, value)


# The order GamState pickles its fields in: append new fields, never reorder or remove,
# so snapshots taken by an older version still restore.
_PICKLED = (
    "points",
    "status",
    "level",
    "level_since",
    "promotions",
    "period_index",
    "period_points",
    "maint_due",
    "day",
    "today",
    "rule_today",
    "badges",
    "badge_keys",
    "streak_day",
    "streak",
    "missions",
    "mission_log",
    "missions_done",
    "acc",
    "layout",
    "window_start",
    "flush_due",
    "flushes",
    "last_flush",
    "bonus_points",
    "best",
    "rounds",
    "assign_at",
    "bet_mark",
    "wager_mark",
)


def _money(units: int) -> str:
    return f"{Decimal(units).scaleb(-4).normalize():f}"


def gam_state(state: PlayerState) -> GamState | None:
    """The player's gamification state, if they have one."""
    extra = state.extra
    if extra is None:
        return None
    found: GamState | None = extra.get(KEY)
    return found
