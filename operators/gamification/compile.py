"""Compile validated gamification files into a Program: cross-checks, conditions, units.

The :class:`Compiler` collects problems instead of stopping at the first; each names the
file and the path inside it (``missions[1].objectives[0].when``). It also lays out the
player's window: the per-category blocks every rule can read, and a slot (or two) for
each rule that keeps a running total of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from operators.expressions import Condition, ExpressionError, Schema, compile_condition
from operators.expressions_roots import EVENT_MODELS
from operators.expressions_types import suggest
from operators.gamification import config as cfg
from operators.gamification.context import Schemas
from operators.gamification.periods import Calendar, calendar
from operators.gamification.program import (
    MONEY_UNITS,
    POINTS_SCALE,
    PPM,
    Badge,
    Board,
    Boost,
    Ladder,
    Level,
    MessageSpec,
    Mission,
    Objective,
    PointsRule,
    Prize,
    Program,
    RewardSpec,
    Settings,
    TournamentRules,
)
from operators.gamification.state import BETS, BONUS, FIXED_SLOTS, REAL
from operators.player_state import CATEGORIES

_CATEGORY_INDEX = {category.value: i for i, category in enumerate(CATEGORIES)}
_AMOUNT_EVENTS = ("deposit", "withdrawal", "win")
_DEFAULT_MEASURE = {
    "bet": "real_wager",
    "deposit": "amount",
    "withdrawal": "amount",
    "win": "amount",
}


def _points(value: Decimal) -> int:
    return int(value * POINTS_SCALE)


def _money(value: Decimal) -> int:
    return int(value * MONEY_UNITS)


class Compiler:
    """Turns validated files into one Program, collecting every problem."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.problems: list[str] = []
        self._slots = FIXED_SLOTS
        self._owners: list[str] = []
        self._bits = 0
        self._seen: dict[tuple[str, str], str] = {}
        self.settings = Settings("UTC", "UTC", "EUR", None, 600, True)
        self.schemas = Schemas({})

    # -- helpers -----------------------------------------------------------------------

    def fail(self, file: Path, path: str, message: str) -> None:
        """Record a problem at ``path`` of ``file``."""
        self.problems.append(f"{file}: {path}: {message}")

    def condition(
        self, file: Path, path: str, source: str | None, schema: Schema
    ) -> Condition | None:
        """The compiled condition, or None (and a problem) if it does not compile."""
        if source is None:
            return None
        try:
            return compile_condition(source, schema)
        except ExpressionError as exc:
            self.fail(file, path, f"{exc} (in: {source})")
            return None

    def event_type(self, file: Path, path: str, name: str, also: Sequence[str] = ()) -> bool:
        """Whether ``name`` is an event type (or one of ``also``); a problem if not."""
        if name in EVENT_MODELS or name in also:
            return True
        hint = suggest(name, [*EVENT_MODELS, *also])
        self.fail(
            file,
            path,
            f"unknown event type {name!r}"
            + (f"; did you mean {hint!r}?" if hint else f"; one of {', '.join(EVENT_MODELS)}"),
        )
        return False

    def unique(self, kind: str, item_id: str, file: Path, path: str) -> None:
        """Ids are unique per kind across files; a problem naming both places if not."""
        first = self._seen.setdefault((kind, item_id), f"{file}: {path}")
        if first != f"{file}: {path}":
            self.fail(file, path, f"{kind} id {item_id!r} is already used at {first}")

    def slot(self, owner: str, size: int = 1) -> int:
        """Window slots of a rule's own running total."""
        index = self._slots
        self._slots += size
        self._owners.append(f"{owner}:{size}")
        return index

    def reward(self, reward: cfg.Reward | None) -> RewardSpec | None:
        """The wallet payload and budget cost of a reward."""
        if reward is None:
            return None
        payload: dict[str, Any] = {"reward_type": reward.type}
        for name in ("amount", "count", "value_per_spin", "game", "code", "wagering"):
            value = getattr(reward, name)
            if value is not None:
                payload[name] = str(value) if isinstance(value, Decimal) else value
        if reward.amount is not None or reward.value_per_spin is not None:
            payload["currency"] = self.settings.base_currency
        cost = _money(reward.amount or Decimal(0))
        if reward.count is not None and reward.value_per_spin is not None:
            cost = _money(reward.value_per_spin * reward.count)
        return RewardSpec(payload, cost)

    @staticmethod
    def message(message: cfg.Message | None) -> MessageSpec | None:
        """A message spec."""
        return None if message is None else MessageSpec(message.template_id, message.channel)

    def categories(
        self, file: Path, path: str, event: str, categories: list[Any] | None
    ) -> tuple[int, ...]:
        """Category indexes (all when None); categories only make sense on bets."""
        if categories is None:
            return tuple(range(len(CATEGORIES)))
        if event != "bet":
            self.fail(file, f"{path}.categories", f"game categories only apply to bet, not {event}")
        return tuple(sorted({_CATEGORY_INDEX[c.value] for c in categories}))

    # -- the program -------------------------------------------------------------------

    def compile(self, files: list[tuple[Path, cfg.GamificationFile]]) -> Program:
        """The program of all files (check ``problems`` afterwards)."""
        singles: dict[str, tuple[Path, Any]] = {}
        for file, parsed in files:
            for section in ("settings", "points", "levels"):
                value = getattr(parsed, section)
                if value is None:
                    continue
                if section in singles:
                    self.fail(file, section, f"{section} is already given in {singles[section][0]}")
                else:
                    singles[section] = (file, value)
        if "settings" in singles:
            self._settings(singles["settings"][1])
        ranks: dict[str, int] = {}
        if "levels" in singles:
            ranks = {level.id: i for i, level in enumerate(singles["levels"][1].ladder)}
        self.schemas = Schemas(ranks)
        ladder = self._ladder(*singles["levels"]) if "levels" in singles else None
        points: list[PointsRule] = []
        daily_cap = None
        if "points" in singles:
            file, section = singles["points"]
            daily_cap = None if section.daily_cap is None else _points(section.daily_cap)
            for i, rule in enumerate(section.rules):
                built = self._points_rule(file, f"points.rules[{i}]", rule)
                if built is not None:
                    points.append(built)
        badges, missions, boards = [], [], []
        for file, parsed in files:
            for i, badge in enumerate(parsed.badges):
                built_badge = self._badge(file, f"badges[{i}]", badge)
                if built_badge is not None:
                    badges.append(built_badge)
            for i, mission in enumerate(parsed.missions):
                built_mission = self._mission(file, f"missions[{i}]", mission)
                if built_mission is not None:
                    missions.append(built_mission)
            for i, board in enumerate(parsed.leaderboards):
                built_board = self._board(file, f"leaderboards[{i}]", board, None)
                if built_board is not None:
                    boards.append(built_board)
            for i, tournament in enumerate(parsed.tournaments):
                built_board = self._board(file, f"tournaments[{i}]", tournament, tournament)
                if built_board is not None:
                    boards.append(built_board)
        track_rounds = any(b.score in ("wins", "win_multiplier") for b in boards) or any(
            ref.split(".")[0] == "multiplier"
            for condition in self._win_conditions(points, badges, missions)
            for ref in condition.references
        )
        return Program(
            version=self.version,
            settings=self.settings,
            points=tuple(points),
            daily_cap=daily_cap,
            ladder=ladder,
            badges=tuple(badges),
            missions=tuple(missions),
            boards=tuple(boards),
            slots=self._slots,
            layout=",".join(self._owners),
            track_rounds=track_rounds,
            sources=tuple(str(file) for file, _ in files),
        )

    @staticmethod
    def _win_conditions(
        points: list[PointsRule], badges: list[Badge], missions: list[Mission]
    ) -> list[Condition]:
        found = [r.when for r in points if r.event == "win" and r.when is not None]
        found += [b.when for b in badges if "win" in b.events and b.when is not None]
        for mission in missions:
            found += [o.when for o in mission.objectives if o.event == "win" and o.when]
        return found

    def _settings(self, settings: cfg.Settings) -> None:
        rates = {code: int(rate * PPM) for code, rate in settings.rates.items()}
        self.settings = Settings(
            zone=settings.timezone,
            player_zone=settings.player_timezone,
            base_currency=settings.base_currency,
            rates=rates or None,
            flush_seconds=settings.flush_seconds,
            flush_on_logout=settings.flush_on_logout,
            default_locale=settings.default_locale,
        )

    def _points_rule(self, file: Path, path: str, rule: cfg.PointsRule) -> PointsRule | None:
        self.unique("points rule", rule.id, file, f"{path}.id")
        if not self.event_type(file, f"{path}.event", rule.event):
            return None
        # Without ``per`` a rule pays ``points`` per event; with it, per ``per`` units of
        # the event type's natural measure (real-money stake, or amount).
        measure = rule.measure or (
            "count" if rule.per is None else _DEFAULT_MEASURE.get(rule.event, "count")
        )
        if measure in ("real_wager", "wager") and rule.event != "bet":
            self.fail(file, f"{path}.measure", f"{measure} is measured on bet, not {rule.event}")
        if measure == "amount" and rule.event not in _AMOUNT_EVENTS:
            hint = "; on bets use wager or real_wager" if rule.event == "bet" else ""
            self.fail(
                file, f"{path}.measure", f"amount is measured on {', '.join(_AMOUNT_EVENTS)}{hint}"
            )
        money = measure != "count"
        per = rule.per if rule.per is not None else Decimal(1)
        if not money and per != per.to_integral_value():
            self.fail(file, f"{path}.per", f"per counts {rule.event} events: a whole number")
        categories = self.categories(file, path, rule.event, rule.categories)
        when = self.condition(file, f"{path}.when", rule.when, self.schemas.on_events([rule.event]))
        boosts = []
        for j, boost in enumerate(rule.boosts):
            condition = self.condition(
                file, f"{path}.boosts[{j}].when", boost.when, self.schemas.segment
            )
            if condition is not None:
                numerator, denominator = boost.multiply.as_integer_ratio()
                boosts.append(Boost(condition, numerator, denominator))
        fixed = rule.event == "bet" and rule.when is None
        blocks = {"real_wager": (REAL,), "wager": (REAL, BONUS), "count": (BETS,)}.get(measure, ())
        return PointsRule(
            id=rule.id,
            event=rule.event,
            categories=categories,
            when=when,
            measure=measure,
            money=money,
            points=_points(rule.points),
            per=_money(per) if money else int(per),
            boosts=tuple(boosts),
            daily_cap=None if rule.daily_cap is None else _points(rule.daily_cap),
            slot=-1 if fixed else self.slot(f"points.{rule.id}"),
            blocks=blocks if fixed else (),
        )

    def _ladder(self, file: Path, levels: cfg.LevelsConfig) -> Ladder:
        built: list[Level] = []
        for i, level in enumerate(levels.ladder):
            path = f"levels.ladder[{i}]"
            self.unique("level", level.id, file, f"{path}.id")
            if i == 0 and (level.min_points or level.requires or level.maintain):
                self.fail(
                    file,
                    path,
                    "the first level is where every player starts: "
                    "no min_points, requires or maintain",
                )
            if built and level.min_points <= Decimal(built[-1].min_points) / POINTS_SCALE:
                self.fail(
                    file,
                    f"{path}.min_points",
                    f"must be above the previous level's ({built[-1].id}: "
                    f"{Decimal(built[-1].min_points) / POINTS_SCALE})",
                )
            built.append(
                Level(
                    id=level.id,
                    name=level.name or level.id.replace("_", " ").title(),
                    rank=i,
                    min_points=_points(level.min_points),
                    requires=self.condition(
                        file, f"{path}.requires", level.requires, self.schemas.segment
                    ),
                    maintain=_points(level.maintain),
                    reward=self.reward(level.reward),
                    message=self.message(level.message),
                    demotion_message=self.message(level.demotion_message),
                )
            )
        period = levels.maintenance.period
        zone = levels.maintenance.timezone or self.settings.zone
        return Ladder(tuple(built), {lv.id: lv for lv in built}, calendar(period, zone))

    def _badge(self, file: Path, path: str, badge: cfg.Badge) -> Badge | None:
        self.unique("badge", badge.id, file, f"{path}.id")
        events = tuple(badge.event)
        pseudo = [e for e in events if e in cfg.PSEUDO_EVENTS]
        if pseudo and len(events) > 1:
            self.fail(file, f"{path}.event", f"{pseudo[0]} is checked on its own, not in a list")
            return None
        if not all(self.event_type(file, f"{path}.event", e, cfg.PSEUDO_EVENTS) for e in events):
            return None
        schema = self.schemas.segment if pseudo else self.schemas.on_events(events)
        return Badge(
            id=badge.id,
            name=badge.name or badge.id.replace("_", " ").title(),
            events=events,
            when=self.condition(file, f"{path}.when", badge.when, schema),
            repeat=badge.repeat,
            points=0 if badge.points is None else _points(badge.points),
            reward=self.reward(badge.reward),
            message=self.message(badge.message),
        )

    def _objective(self, file: Path, path: str, objective: cfg.Objective) -> Objective | None:
        if not self.event_type(file, f"{path}.event", objective.event):
            return None
        measure = objective.measure
        if measure in ("wager", "real_wager", "distinct_games", "distinct_categories") and (
            objective.event != "bet"
        ):
            self.fail(
                file, f"{path}.measure", f"{measure} is measured on bet, not {objective.event}"
            )
        if measure == "amount" and objective.event not in _AMOUNT_EVENTS:
            self.fail(file, f"{path}.measure", f"amount is measured on {', '.join(_AMOUNT_EVENTS)}")
        money = measure in ("wager", "real_wager", "amount")
        target = objective.target
        if not money and target != target.to_integral_value():
            self.fail(file, f"{path}.target", f"a {measure} target must be a whole number")
        indexes = self.categories(file, path, objective.event, objective.categories)
        return Objective(
            id=objective.id,
            event=objective.event,
            categories=-1 if objective.categories is None else sum(1 << i for i in indexes),
            when=self.condition(
                file, f"{path}.when", objective.when, self.schemas.on_events([objective.event])
            ),
            measure=measure,
            target=_money(target) if money else int(target),
        )

    def _mission(self, file: Path, path: str, mission: cfg.Mission) -> Mission | None:
        self.unique("mission", mission.id, file, f"{path}.id")
        objectives: list[Objective] = []
        seen: set[str] = set()
        for j, objective in enumerate(mission.objectives):
            if objective.id in seen:
                self.fail(file, f"{path}.objectives[{j}].id", f"objective {objective.id!r} repeats")
            seen.add(objective.id)
            built = self._objective(file, f"{path}.objectives[{j}]", objective)
            if built is not None:
                objectives.append(built)
        if len(objectives) != len(mission.objectives):
            return None
        by_event: dict[str, list[int]] = {}
        for j, built in enumerate(objectives):
            by_event.setdefault(built.event, []).append(j)
        return Mission(
            id=mission.id,
            name=mission.name or mission.id.replace("_", " ").title(),
            automatic=mission.assign == "automatic",
            opt_in_code=None if mission.opt_in_code is None else mission.opt_in_code.upper(),
            segment=self.condition(file, f"{path}.segment", mission.segment, self.schemas.segment),
            recurrence={"daily": "day", "weekly": "week", None: None}[mission.recurrence],
            time_limit=mission.time_limit,
            sequential=mission.sequential,
            objectives=tuple(objectives),
            by_event={event: tuple(indexes) for event, indexes in by_event.items()},
            targets=tuple(o.target for o in objectives),
            points=0 if mission.points is None else _points(mission.points),
            reward=self.reward(mission.reward),
            message=self.message(mission.message),
        )

    def _board(
        self,
        file: Path,
        path: str,
        board: cfg.Leaderboard | cfg.Tournament,
        tournament: cfg.Tournament | None,
    ) -> Board | None:
        self.unique("leaderboard or tournament", board.id, file, f"{path}.id")
        if board.score == "points" and (board.categories is not None or board.when is not None):
            self.fail(
                file, f"{path}.score", "a points score counts every point: no categories or when"
            )
        zone = board.timezone or self.settings.zone
        if tournament is not None and tournament.start is not None and tournament.end is not None:
            cal = Calendar.once(int(tournament.start.timestamp()), int(tournament.end.timestamp()))
        else:
            cal = calendar(board.period or "week", zone)
        when = self.condition(file, f"{path}.when", board.when, self.schemas.on_events(["bet"]))
        eligible = self.condition(file, f"{path}.eligible", board.eligible, self.schemas.segment)
        slot = self.slot(f"board.{board.id}", 2) if board.when is not None else -1
        bit = 0
        if board.when is not None and board.score in ("wins", "win_multiplier"):
            bit = 1 << self._bits
            self._bits += 1
        rules = None
        if tournament is not None:
            prizes = []
            for prize in tournament.prizes:
                reward = self.reward(prize.reward)
                if reward is not None:
                    prizes.append(Prize(*prize.bounds, reward))
            rules = TournamentRules(
                prizes=tuple(sorted(prizes, key=lambda p: p.first)),
                tie=tournament.tie,
                min_score=int(tournament.min_score * 100),
                settle_after=tournament.settle_after,
            )
        kind = "tournament" if tournament is not None else "leaderboard"
        return Board(
            id=board.id,
            name=board.name or board.id.replace("_", " ").title(),
            campaign_id=f"{kind}:{board.id}",
            calendar=cal,
            score=board.score,
            categories=tuple(range(len(CATEGORIES)))
            if board.categories is None
            else tuple(sorted({_CATEGORY_INDEX[c.value] for c in board.categories})),
            when=when,
            eligible=eligible,
            slot=slot,
            bit=bit,
            tournament=rules,
        )
