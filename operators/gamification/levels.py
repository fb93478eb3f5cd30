"""Levels: promotion on points (and conditions), maintenance and demotion at period end.

A player climbs on *status points* (every point earned counts) as soon as they reach the
next level's ``min_points`` and its ``requires`` condition holds; a big award can climb
several levels at once, each with its own ``level_up``, reward and message.

Maintenance (tiers): a level with ``maintain`` needs that many points in each maintenance
period (month or week). At the end of a period (a deadline) a player short of it drops
one level, and their status points restart at that level's threshold, so climbing back
takes the points again. The period in which a level was reached is a grace period.
"""

from __future__ import annotations

from operators.gamification.context import Turn
from operators.gamification.intents import Emitter
from operators.gamification.points import as_text
from operators.gamification.program import Ladder, Level
from operators.gamification.state import NO_DUE, GamState


def credit(ladder: Ladder | None, gs: GamState, points: int, window_start: int) -> None:
    """Add earned points to the player's totals (and the maintenance period's)."""
    gs.points += points
    gs.status += points
    if ladder is None:
        return
    index = ladder.maintenance.span(window_start).serial
    if gs.period_index != index:
        gs.period_index, gs.period_points = index, 0
    gs.period_points += points


def arm(ladder: Ladder, gs: GamState, level: Level, at: int) -> None:
    """Set the next maintenance deadline for ``level`` (none if it needs no maintenance)."""
    gs.maint_due = ladder.maintenance.span(at).end if level.maintain > 0 else NO_DUE


def promote(ladder: Ladder, emit: Emitter, turn: Turn) -> list[Level]:
    """Climb every level the player now qualifies for; the levels reached, in order."""
    gs = turn.gam
    reached: list[Level] = []
    levels = ladder.levels
    current = ladder.of(gs.level)
    while current.rank + 1 < len(levels):
        following = levels[current.rank + 1]
        if gs.status < following.min_points:
            break
        if following.requires is not None and not following.requires.evaluate(turn):
            break
        gs.promotions += 1
        gs.level = following.id
        gs.level_since = ladder.maintenance.span(turn.now).serial
        payload = {
            "event": "level_up",
            "level": following.id,
            "name": following.name,
            "rank": following.rank,
            "previous": current.id,
            "points": as_text(gs.points),
        }
        emit.package(
            turn,
            f"level:{following.id}",
            f"up:{gs.promotions}",
            payload,
            reward=following.reward,
            message=following.message,
        )
        reached.append(following)
        current = following
    if reached:
        arm(ladder, gs, current, turn.now)
    return reached


def maintain(ladder: Ladder, emit: Emitter, turn: Turn) -> None:
    """At the end of a maintenance period (``turn.now``): keep or drop the level, re-arm."""
    gs, due = turn.gam, turn.now
    current = ladder.of(gs.level)
    ended = ladder.maintenance.span(due - 1)
    earned = gs.period_points if gs.period_index == ended.serial else 0
    if current.rank > 0 and gs.level_since != ended.serial and earned < current.maintain:
        lower = ladder.levels[current.rank - 1]
        gs.level = lower.id
        gs.status = lower.min_points
        gs.level_since = ended.serial
        payload = {
            "event": "level_down",
            "level": lower.id,
            "name": lower.name,
            "rank": lower.rank,
            "previous": current.id,
            "period": ended.id,
            "period_points": as_text(earned),
            "required": as_text(current.maintain),
        }
        emit.package(
            turn,
            f"level:{current.id}",
            f"down:{ended.id}",
            payload,
            message=current.demotion_message,
        )
        current = lower
    arm(ladder, gs, current, due)
