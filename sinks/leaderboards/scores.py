"""Write the player operator's ``leaderboard_score`` actions into a leaderboard store.

A ``leaderboard_score`` action (kind ``gamification``) carries, in ``payload["scores"]``,
one entry per board a flushed window scored on: ``board``, ``period``, ``delta``
(hundredths) and ``at`` (event time, for ties). The action id is the idempotency token of
every entry, so writing the same actions again (a replay after a crash) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from operators.actions import Action, Decision
from sinks.leaderboards.base import LeaderboardStore

SCORE_EVENT = "leaderboard_score"


def is_score(action: Action) -> bool:
    """Whether ``action`` is a leaderboard score to write."""
    return (
        action.kind == "gamification"
        and action.payload.get("event") == SCORE_EVENT
        and action.decision == Decision.SENT.value
    )


def apply_scores(store: LeaderboardStore, actions: Iterable[Action]) -> int:
    """Write the score entries of ``actions`` (others are skipped); how many were new."""
    applied = 0
    for action in actions:
        if not is_score(action):
            continue
        entries: list[dict[str, Any]] = action.payload.get("scores", [])
        for entry in entries:
            at = entry.get("at")
            if store.add(
                str(entry["board"]),
                str(entry["period"]),
                action.player_id,
                int(entry["delta"]),
                action.action_id,
                at=None if at is None else int(at),
            ):
                applied += 1
    return applied
