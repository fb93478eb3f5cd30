"""Leaderboard and tournament scores: what a flushed window adds to each board.

A window never spans a board's period boundary (the flush is due at the latest then), so
its contribution belongs to one period: the one its start falls in. A flush that scores
on any board emits one ``leaderboard_score`` intent (campaign ``leaderboards``) whose
``scores`` list one entry per board: the board, the period, the delta in hundredths and
``at``, the newest event time that contributed (the store keeps it to break ties: who
reached the score first). One intent per flush rather than per board keeps the action
volume down; its action id is the store's idempotency token for every entry (the store
keeps tokens per board and period), so a replayed flush is not counted twice.

Best-value boards (``win_multiplier``) send the improvement over the best already sent in
the period, so the store's sum is the player's best.
"""

from __future__ import annotations

from array import array
from typing import Any

from operators.gamification.context import Turn
from operators.gamification.intents import Emitter
from operators.gamification.program import Board, Program
from operators.gamification.state import BET_AT, N_CATEGORIES, WIN_AT

_MONEY_KINDS = frozenset({"real_wager", "wager", "wins"})
CAMPAIGN = "leaderboards"
"""The campaign id of ``leaderboard_score`` intents."""


def accumulate_bet(board: Board, acc: array[int], ts: int, stake: int, real: int) -> None:
    """A matching bet, for a board with a condition of its own (sum kinds on bets)."""
    score = board.score
    slot = board.slot
    if score == "real_wager":
        acc[slot] += real
    elif score == "wager":
        acc[slot] += stake
    elif score == "bets":
        acc[slot] += 1
    else:
        return  # win-based: counted when the round settles
    if ts > acc[slot + 1]:
        acc[slot + 1] = ts


def accumulate_win(board: Board, acc: array[int], ts: int, win: int, multiplier: int) -> None:
    """A won round whose bet matched a board with a condition of its own."""
    slot = board.slot
    if board.score == "wins":
        acc[slot] += win
        if ts > acc[slot + 1]:
            acc[slot + 1] = ts
    elif multiplier > acc[slot]:
        acc[slot] = multiplier
        acc[slot + 1] = ts


def _measured(board: Board, acc: array[int], layout_ok: bool) -> tuple[int, int]:
    """``(value, newest time)`` the window holds for a board, before unit conversion."""
    if board.slot >= 0:
        return (acc[board.slot], acc[board.slot + 1]) if layout_ok else (0, 0)
    get = acc.__getitem__
    if board.is_max:
        value, at = 0, 0
        for cell, time_cell in zip(board.value_cells, board.time_cells, strict=True):
            if acc[cell] > value:
                value, at = acc[cell], acc[time_cell]
        return value, at
    return sum(map(get, board.value_cells)), max(map(get, board.time_cells))


def newest(acc: array[int] | None, program: Program, default: int) -> int:
    """The newest event time that contributed to the window (``default`` if none did)."""
    if acc is None:
        return default
    found = max(acc[BET_AT : BET_AT + N_CATEGORIES] + acc[WIN_AT : WIN_AT + N_CATEGORIES])
    for board in program.boards:
        if board.slot >= 0 and len(acc) > board.slot + 1 and acc[board.slot + 1] > found:
            found = acc[board.slot + 1]
    return found if found > 0 else default


def score(
    program: Program,
    emit: Emitter,
    turn: Turn,
    acc: array[int] | None,
    *,
    points: int,
    window_start: int,
) -> None:
    """Emit the ``leaderboard_score`` of the flushed window (at ``turn.now``), if any."""
    gs, state = turn.gam, turn.state
    scores: list[dict[str, Any]] = []
    layout_ok = gs.layout == program.layout
    settings = program.settings
    reach_default = newest(acc, program, window_start)
    for board in program.boards:
        if board.score == "points":
            value, reached = points, reach_default
        elif acc is None:
            continue
        else:
            value, reached = _measured(board, acc, layout_ok)
            if board.score in _MONEY_KINDS and value > 0:
                value = settings.to_base(value, state.currency) // 100  # hundredths
            elif board.score == "bets":
                value *= 100
        if value <= 0:
            continue  # nothing to add (most windows score on few boards): no period needed
        span = board.span(window_start)
        if span.id in ("before", "after"):
            continue  # a one-off tournament not running at the time
        if board.eligible is not None and not board.eligible.evaluate(turn):
            continue
        delta = value
        if board.is_max:
            best = gs.best if gs.best is not None else {}
            previous = best.get(board.id)
            if previous is not None and previous[0] == span.id:
                if value <= previous[1]:
                    continue
                delta = value - previous[1]
            best[board.id] = (span.id, value)
            gs.best = best
        scores.append(
            {
                "board": board.id,
                "period": span.id,
                "delta": delta,
                "at": reached or window_start,
            }
        )
    if scores:
        payload = {"event": "leaderboard_score", "scores": scores}
        emit.event(turn, CAMPAIGN, f"flush:{gs.flushes}", payload)
