"""Flat columns describing a player's gamification, for ``players.parquet``.

Every player gets the same columns (zeros and nulls without gamification state), so the
rows stack into one table. Points are exact decimals; badges and running missions are
readable strings.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from operators.gamification.state import NO_DUE, GamState, gam_state
from operators.player_state import PlayerState


def _points(hundredths: int) -> Decimal:
    return Decimal(hundredths).scaleb(-2)


def gamification_rows(state: PlayerState) -> dict[str, Any]:
    """The player's gamification columns (merge them into ``player_row``'s dict)."""
    gs = gam_state(state) or GamState()
    badges = gs.badges or {}
    return {
        "gam_points": _points(gs.points),
        "gam_status_points": _points(gs.status),
        "gam_level": gs.level or None,
        "gam_period_points": _points(gs.period_points),
        "gam_points_today": _points(gs.today),
        "gam_badge_count": sum(badges.values()),
        "gam_badges": ",".join(
            badge if times == 1 else f"{badge}x{times}" for badge, times in sorted(badges.items())
        ),
        "gam_login_streak": gs.streak,
        "gam_missions_completed": gs.missions_done,
        "gam_missions_active": gs.progress_text(),
        "gam_pending_flush_at": None if gs.flush_due == NO_DUE else gs.flush_due,
    }
