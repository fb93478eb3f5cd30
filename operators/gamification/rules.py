"""The gamification rule set: points, levels, badges, missions and leaderboard scores.

It runs in the player operator like any rule set (:mod:`operators.rules`): ``on_event``
after each event is folded, ``fire_due`` for its deadlines. Its own events are intents of
kind ``GAMIFICATION`` (:mod:`operators.gamification.intents`), which the engine passes to
the other rule sets as signals.

The hot path is a bet: it adds the stake to the player's *window* (real money and bonus
money per game category) and touches nothing else unless a rule needs it. Points and
leaderboard scores are computed from the window when it is *flushed*: ``flush_seconds``
after its first contribution, at the end of the player's local day and of every board's
period, and when the player logs out. One flush emits at most one ``points_awarded`` and
one ``leaderboard_score`` (listing every board scored), so the action volume follows
sessions, not bets. Missions and badges are checked per event (a mission completes on
the event that completes it), but only for players who have one running or pending.

One rule set may serve several worker threads: per-step scratch (the :class:`Turn`) is
per thread, and everything else it holds is read-only after loading.

Deadlines (all in event time, each fired at its own time, earliest first; on a tie the
flush comes first so a period's last points count before its maintenance check): the
window flush, mission expiries and level maintenance.
"""

from __future__ import annotations

import ast
import math
import threading
from array import array
from decimal import Decimal
from typing import Any

from operators.expressions import Condition
from operators.gamification import badges, boards, levels, missions, points
from operators.gamification.context import Turn
from operators.gamification.intents import Emitter
from operators.gamification.periods import FOREVER, calendar
from operators.gamification.program import Badge, Board, Mission, PointsRule, Program
from operators.gamification.state import (
    BET_AT,
    BETS,
    BONUS,
    KEY,
    MAX_OPEN_ROUNDS,
    MULT,
    MULT_AT,
    NO_DUE,
    REAL,
    WIN_AT,
    WINS,
    GamState,
)
from operators.player_state import BET_COUNT, CATEGORIES, WAGER_TOTAL, PlayerState
from operators.rules import Intent, Schedule
from pipeline.events import EVENT_TYPES, Event

_CATEGORY = {category: i for i, category in enumerate(CATEGORIES)}
# Events that may change who a mission is for: re-check assignment on each of them.
_ASSIGN_ON = frozenset({"registration", "login", "deposit", "profile_update"})


def reads_multiplier(condition: Condition) -> bool:
    """Whether a condition reads the ``multiplier`` root."""
    return any(ref.split(".")[0] == "multiplier" for ref in condition.references)


def multiplier_floor(condition: Condition | None) -> int | None:
    """The multiplier, in hundredths, below which ``condition`` cannot hold, when its
    source says so plainly (``multiplier >= 100``, ``10 < multiplier``, either one
    joined by ``and`` to anything); None otherwise. Sound, not complete: a floor it does
    not see only costs the condition's evaluation."""
    if condition is None:
        return None
    try:
        return _floor(ast.parse(condition.source, mode="eval").body)
    except SyntaxError:  # compiled already, so unreachable; no floor is always safe
        return None


def _floor(node: ast.expr) -> int | None:
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        floors = [f for f in map(_floor, node.values) if f is not None]
        return max(floors) if floors else None
    if not isinstance(node, ast.Compare) or len(node.ops) != 1:
        return None
    left, op, right = node.left, node.ops[0], node.comparators[0]
    if _is_multiplier(left) and isinstance(op, ast.GtE | ast.Gt):
        bound = right
    elif _is_multiplier(right) and isinstance(op, ast.LtE | ast.Lt):
        bound = left
    else:
        return None
    if isinstance(bound, ast.Constant) and type(bound.value) in (int, float):
        return math.ceil(Decimal(str(bound.value)) * 100)
    return None


def _is_multiplier(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "multiplier"


class _Plan:
    """What one event type needs beyond the window's category blocks."""

    __slots__ = (
        "always",
        "any",
        "badges",
        "boards",
        "floor",
        "objectives",
        "points",
        "repeating",
    )

    def __init__(self, program: Program, event_type: str, *, lost_round: bool = False) -> None:
        # On a win without a multiplier (a lost round, or one whose bet was not seen),
        # rules whose condition reads the multiplier are not checked at all.
        def keep(condition: Condition | None) -> bool:
            return not (lost_round and condition is not None and reads_multiplier(condition))

        self.points: tuple[PointsRule, ...] = tuple(
            r for r in program.points if r.event == event_type and r.slot >= 0 and keep(r.when)
        )
        self.badges: tuple[Badge, ...] = tuple(
            b for b in program.badges if event_type in b.events and keep(b.when)
        )
        self.boards: tuple[Board, ...] = (
            tuple(b for b in program.boards if b.slot >= 0) if event_type == "bet" else ()
        )
        self.objectives = any(event_type in m.by_event for m in program.missions)
        self.always = bool(self.points or self.boards)
        self.repeating = any(b.repeat != "never" for b in self.badges)
        self.any = self.always or self.objectives or bool(self.badges)
        # On a won round: the multiplier below which none of the planned rules can hold
        # (``multiplier >= 100`` on a big-win badge skips the 99% of ordinary wins).
        self.floor: int | None = None
        conditions = [r.when for r in self.points] + [b.when for b in self.badges]
        if event_type == "win" and not lost_round and conditions and not self.objectives:
            floors = [multiplier_floor(c) for c in conditions]
            if None not in floors:
                self.floor = min(f for f in floors if f is not None)

    def needed(self, gs: GamState) -> bool:
        """Whether this event needs the planned rules for this player (cheap to ask)."""
        if self.always or (self.objectives and gs.missions is not None):
            return True
        return bool(self.badges) and self.badges_open(gs)

    def badges_open(self, gs: GamState) -> bool:
        """Whether a badge of this event type may still be awarded to the player."""
        if self.repeating or gs.badges is None:
            return True
        owned = gs.badges
        return any(badge.id not in owned for badge in self.badges)


class GamificationRules:
    """The rule set of one loaded gamification configuration (see the module docstring)."""

    name = "gamification"

    def __init__(self, program: Program) -> None:
        self.program = program
        self.version = program.version
        settings = program.settings
        self._emit = Emitter(
            program.version, settings.base_currency, program.templates, settings.default_locale
        )
        # One Turn per thread: Bytewax runs workers as threads of one process, and one
        # rule set may serve them all.
        self._turns = threading.local()
        self._missions = {m.id: m for m in program.missions}
        self._zeros = array("q", [0]) * program.slots
        self._flush_seconds = program.settings.flush_seconds
        self._player_zone = program.settings.player_zone
        self._plans = {etype: _Plan(program, etype) for etype in EVENT_TYPES}
        self._pseudo = {
            moment: tuple(b for b in program.badges if b.events == (moment,))
            for moment in ("points_awarded", "level_up", "mission_completed")
        }
        self._bet_plan = self._plans["bet"]
        self._win_plan = self._plans["win"]
        self._lost_plan = _Plan(program, "win", lost_round=True)
        self._wins = self._win_plan.any or program.track_rounds
        self._track_rounds = program.track_rounds
        self._round_boards = tuple(b for b in program.boards if b.bit)
        self._has_missions = bool(program.missions)
        self._boundaries = tuple(b.calendar for b in program.boards)
        if program.ladder is not None:
            self._boundaries += (program.ladder.maintenance,)
        self._handlers: dict[str, Any] = {etype: self._on_other for etype in self._plans}
        self._handlers["win"] = self._on_win

    def _turn(self) -> Turn:
        """This thread's turn."""
        turn: Turn | None = getattr(self._turns, "turn", None)
        if turn is None:
            turn = self._turns.turn = Turn(self.program.settings.player_zone)
        return turn

    @property
    def tournaments(self) -> tuple[Board, ...]:
        """The configured tournaments (for the settler)."""
        return self.program.tournaments

    # -- RuleSet -----------------------------------------------------------------------

    def on_event(
        self, state: PlayerState, event: Event, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        """Fold ``event`` into the player's window and progress; emit what it causes.

        A bet, the hot path, is handled inline: its stake goes into the window's category
        blocks and nothing else happens unless a rule needs it.
        """
        etype = event.type
        if etype != "bet":
            if etype != "win" or self._wins:
                self._handlers[etype](state, event, ts, out, schedule)
            return
        bet: Any = event
        extra = state.extra
        gs: GamState | None = extra.get(KEY) if extra is not None else None
        if gs is None:
            gs = self._state(state)
        n = state.n
        total, count = n[WAGER_TOTAL], n[BET_COUNT]
        # The stake is what the fold just added, unless this is the first bet seen (or
        # bets were folded while this rule set was not running): then convert it.
        stake = total - gs.wager_mark if gs.bet_mark == count - 1 else int(bet.amount.scaleb(4))
        gs.wager_mark, gs.bet_mark = total, count
        acc = gs.acc
        if acc is None:
            acc = self._open(state, gs, ts, schedule)
        cat = _CATEGORY[bet.game_category]
        bonus = bet.bonus_amount
        if bonus is None:
            real = stake
        else:
            part = int(bonus.scaleb(4))
            if part > stake:
                part = stake
            acc[BONUS + cat] += part
            real = stake - part
        acc[REAL + cat] += real
        acc[BETS + cat] += 1
        if ts > acc[BET_AT + cat]:
            acc[BET_AT + cat] = ts
        mask = 0
        if ts >= gs.assign_at and self._has_missions:
            turn = self._turn().begin(state, gs, ts, out, schedule, event=bet)
            missions.assign(self.program, self._emit, turn)
        plan = self._bet_plan
        if plan.always or (plan.badges and plan.badges_open(gs)):
            turn = self._turn().begin(state, gs, ts, out, schedule, event=bet)
            mask = self._planned(turn, plan, acc, category=cat, stake=stake, real=real)
        elif gs.missions is not None and plan.objectives:  # the common case: missions only
            turn = self._turn().begin(state, gs, ts, out, schedule, event=bet)
            done = missions.progress(
                self.program,
                self._missions,
                self._emit,
                turn,
                category=cat,
                stake=stake,
                real=real,
            )
            if done:
                self._completed(turn, done)
        if self._track_rounds:
            rounds = gs.rounds
            if rounds is None:
                rounds = gs.rounds = {}
            rounds[bet.round_id] = (stake, cat, mask)
            if len(rounds) > MAX_OPEN_ROUNDS:
                del rounds[next(iter(rounds))]

    def fire_due(self, state: PlayerState, now: int, out: list[Intent]) -> int | None:
        """Flush, expire missions and check level maintenance up to ``now``, in time order."""
        extra = state.extra
        gs: GamState | None = extra.get(KEY) if extra is not None else None
        if gs is None:
            return None
        due = gs.next_due()
        while due <= now:
            turn = self._turn().begin(state, gs, due, out, None)
            if gs.flush_due == due:
                self._flush(turn)
            elif gs.missions and any(run.ends == due for run in gs.missions):
                missions.expire(self._missions, self._emit, turn)
            elif self.program.ladder is not None:
                levels.maintain(self.program.ladder, self._emit, turn)
            else:
                gs.maint_due = NO_DUE
            due = gs.next_due()
        return None if due == NO_DUE else due

    # -- the player's state and window -------------------------------------------------

    def _state(self, state: PlayerState) -> GamState:
        """The player's gamification state, created on first use."""
        extra = state.extra
        gs: GamState | None = extra.get(KEY) if extra is not None else None
        if gs is None:
            ladder = self.program.ladder
            gs = GamState(ladder.levels[0].id if ladder is not None else "")
            if extra is None:
                state.extra = {KEY: gs}
            else:
                extra[KEY] = gs
        return gs

    def _open(
        self, state: PlayerState, gs: GamState, ts: int, schedule: Schedule | None
    ) -> array[int]:
        """The player's window, opened (and its flush scheduled) if nothing is pending."""
        acc = gs.acc
        if acc is None:
            acc = gs.acc = array("q", self._zeros)
            gs.layout = self.program.layout
        if gs.flush_due == NO_DUE:
            start = ts if ts > gs.last_flush else gs.last_flush
            gs.window_start = start
            due = start + self._flush_seconds
            boundary = calendar("day", state.timezone or self._player_zone).span(start).end
            if boundary < due:
                due = boundary
            for periods in self._boundaries:
                end = periods.span(start).end
                if end < due:
                    due = end
            gs.flush_due = due if due < FOREVER else NO_DUE
            if schedule is not None:
                schedule(state, due)
        return acc

    def _flush(self, turn: Turn) -> None:
        """Turn the window into points, levels and leaderboard scores, at ``turn.now``."""
        program = self.program
        gs, at = turn.gam, turn.now
        acc, window_start = gs.acc, gs.window_start
        gs.flushes += 1
        turn.now = window_start  # points are counted in the window's local day
        earned, by_rule, capped = points.compute(program, turn, acc)
        turn.now = at
        bonus, gs.bonus_points = gs.bonus_points, 0
        gs.acc, gs.flush_due, gs.last_flush = None, NO_DUE, at
        total = earned + bonus
        if total:
            ladder = program.ladder
            levels.credit(ladder, gs, total, window_start)
            payload: dict[str, Any] = {
                "event": "points_awarded",
                "points": points.as_text(total),
                "total": points.as_text(gs.points),
                "rules": {rule: points.as_text(p) for rule, p in by_rule.items()},
            }
            if bonus:
                payload["bonus"] = points.as_text(bonus)
            if capped:
                payload["capped"] = True
            self._emit.event(turn, "points", f"flush:{gs.flushes}", payload)
            self._moment(turn, "points_awarded", f"flush:{gs.flushes}")
            if ladder is not None:
                for _ in levels.promote(ladder, self._emit, turn):
                    self._moment(turn, "level_up", f"up:{gs.promotions}")
        boards.score(program, self._emit, turn, acc, points=total, window_start=window_start)
        if turn.schedule is not None:  # flushed on an event: a promotion may have armed
            due = gs.next_due()  # a maintenance deadline
            if due != NO_DUE:
                turn.schedule(turn.state, due)

    def _completed(self, turn: Turn, done: list[Mission]) -> None:
        """Missions just completed: their points, and badges on mission_completed."""
        for mission in done:
            if mission.points:
                self._bonus(turn, mission.points)
            self._moment(turn, "mission_completed", f"{mission.id}:{turn.gam.missions_done}")

    def _moment(self, turn: Turn, moment: str, occurrence: str) -> None:
        """Badges checked on a gamification moment (points awarded, level up...)."""
        found = self._pseudo[moment]
        if found:
            self._bonus(turn, badges.check(found, self._emit, turn, occurrence))

    def _bonus(self, turn: Turn, bonus: int) -> None:
        """Points from badges and missions: paid at the next flush, uncapped."""
        if bonus:
            gs = turn.gam
            gs.bonus_points += bonus
            if gs.flush_due == NO_DUE:
                self._open(turn.state, gs, turn.now, turn.schedule)

    # -- events ------------------------------------------------------------------------

    def _on_win(
        self, state: PlayerState, event: Any, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        extra = state.extra
        gs: GamState | None = extra.get(KEY) if extra is not None else None
        if gs is None:
            return self._on_other(state, event, ts, out, schedule)
        rounds = gs.rounds
        multiplier = None
        if rounds:
            settled = rounds.pop(event.round_id, None)
            if settled is not None and event.amount:
                stake, cat, mask = settled
                win = int(event.amount.scaleb(4))
                multiplier = win * 100 // stake if stake else 0
                acc = gs.acc
                if acc is None or gs.flush_due == NO_DUE:
                    acc = self._open(state, gs, ts, schedule)
                acc[WINS + cat] += win
                if ts > acc[WIN_AT + cat]:
                    acc[WIN_AT + cat] = ts
                if multiplier > acc[MULT + cat]:
                    acc[MULT + cat] = multiplier
                    acc[MULT_AT + cat] = ts
                if mask and gs.layout == self.program.layout:
                    for board in self._round_boards:
                        if mask & board.bit:
                            boards.accumulate_win(board, acc, ts, win, multiplier)
        plan = self._win_plan if multiplier is not None else self._lost_plan
        if plan.floor is not None and multiplier is not None and multiplier < plan.floor:
            return None
        if plan.any and plan.needed(gs):
            turn = self._turn().begin(state, gs, ts, out, schedule, event=event)
            turn.multiplier = multiplier
            self._planned(turn, plan, None)
        return None

    def _on_other(
        self, state: PlayerState, event: Any, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        etype = event.type
        gs = self._state(state)
        turn = self._turn().begin(state, gs, ts, out, schedule, event=event)
        if etype == "login":
            day = calendar("day", turn.zone_name).span(ts).serial
            if day == gs.streak_day + 1:
                gs.streak += 1
            elif day > gs.streak_day:
                gs.streak = 1
            gs.streak_day = max(day, gs.streak_day)
        if self._has_missions:
            if etype in _ASSIGN_ON or ts >= gs.assign_at:
                missions.assign(self.program, self._emit, turn)
            if etype == "bonus_redeemed":
                missions.opt_in(self.program, self._emit, turn, event.code)
        plan = self._plans[etype]
        if plan.any and plan.needed(gs):
            self._planned(turn, plan, None)
        if etype == "logout" and gs.flush_due != NO_DUE and self.program.settings.flush_on_logout:
            self._flush(turn)

    def _planned(
        self,
        turn: Turn,
        plan: _Plan,
        acc: array[int] | None,
        *,
        category: int = -1,
        stake: int = 0,
        real: int = 0,
    ) -> int:
        """The rules an event type needs beyond the window blocks; the bet's round mask."""
        event, gs, ts = turn.event, turn.gam, turn.now
        etype = event.type
        layout_ok = gs.layout == self.program.layout
        mask = 0
        if etype not in ("deposit", "withdrawal") or event.status == "ok":
            for rule in plan.points:
                if rule.when is None or rule.when.evaluate(turn):
                    if acc is None:
                        acc = self._open(turn.state, gs, ts, turn.schedule)
                        layout_ok = True
                    if layout_ok:
                        points.accumulate(rule, acc, event, stake, real)
            for board in plan.boards:
                if board.when is not None and board.when.evaluate(turn):
                    mask |= board.bit
                    if acc is not None and layout_ok:
                        boards.accumulate_bet(board, acc, ts, stake, real)
            if plan.objectives and gs.missions:
                done = missions.progress(
                    self.program,
                    self._missions,
                    self._emit,
                    turn,
                    category=category,
                    stake=stake,
                    real=real,
                )
                if done:
                    self._completed(turn, done)
        if plan.badges and plan.badges_open(gs):
            bonus = badges.check(plan.badges, self._emit, turn, None)
            if bonus:
                self._bonus(turn, bonus)
        return mask
