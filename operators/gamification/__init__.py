"""Gamification: points, levels, badges, missions, leaderboards and tournaments as data.

``config/gamification/*.yaml`` is validated and compiled by :func:`load_gamification` into
a :class:`GamificationRules`, a rule set (:mod:`operators.rules`) the player operator runs
like any other: it keeps each player's progress in ``PlayerState.extra["gamification"]``
and emits gamification intents (kind ``GAMIFICATION``, channel ``gamification``,
``payload["event"]`` naming them) plus rewards and messages. Leaderboard scores leave as
``leaderboard_score`` intents for the leaderboard store (:mod:`sinks.leaderboards`);
tournaments are settled beside that store from the global standings
(:func:`~operators.gamification.tournaments.settle`).

Modules: ``config`` (the YAML's models), ``loader``/``compile`` (validation, errors,
compilation), ``program`` (the compiled form), ``rules`` (the rule set), one module per
mechanic (``points``, ``levels``, ``badges``, ``missions``, ``boards``, ``tournaments``),
``state`` (per-player state), ``periods`` (calendars), ``context`` (what conditions read),
``intents`` and ``rows``.
"""

from operators.gamification.errors import GamificationConfigError
from operators.gamification.loader import check_gamification, compile_program, load_gamification
from operators.gamification.program import Board, Program
from operators.gamification.rows import gamification_rows
from operators.gamification.rules import GamificationRules
from operators.gamification.state import KEY, GamState, gam_state
from operators.gamification.tournaments import Placement, placements, settle

__all__ = [
    "KEY",
    "Board",
    "GamState",
    "GamificationConfigError",
    "GamificationRules",
    "Placement",
    "Program",
    "check_gamification",
    "compile_program",
    "gam_state",
    "gamification_rows",
    "load_gamification",
    "placements",
    "settle",
]
