"""Leaderboards and tournament standings: the store, the score writer and the settler.

:mod:`sinks.leaderboards.base` is the store's contract (re-exported here), with an
in-process implementation (:mod:`sinks.leaderboards.memory`) and a Redis one
(:mod:`sinks.leaderboards.redis`). :func:`~sinks.leaderboards.scores.apply_scores` writes the
player operator's ``leaderboard_score`` actions into a store; the
:class:`~sinks.leaderboards.settler.TournamentSettler` pays each ended tournament once.
"""

from sinks.leaderboards.base import SCORE_SCALE, LeaderboardStore, Standing
from sinks.leaderboards.memory import MemoryLeaderboardStore
from sinks.leaderboards.scores import apply_scores, is_score
from sinks.leaderboards.settler import TournamentSettler

__all__ = [
    "SCORE_SCALE",
    "LeaderboardStore",
    "MemoryLeaderboardStore",
    "Standing",
    "TournamentSettler",
    "apply_scores",
    "is_score",
]
