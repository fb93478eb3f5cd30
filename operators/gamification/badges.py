"""Badges: awarded when their condition holds on one of their events, once or repeatedly.

``repeat: never`` awards once ever (occurrence ``once``); ``always`` once per matching
event (occurrence: the event id, or the gamification moment for pseudo-events); ``daily``
and ``weekly`` at most once per local day or ISO week of the player (occurrence: that day
or week). A replay of the same events awards the same occurrences, so the same action ids.
"""

from __future__ import annotations

from operators.gamification.context import Turn
from operators.gamification.intents import Emitter
from operators.gamification.periods import calendar
from operators.gamification.points import as_text
from operators.gamification.program import Badge


def occurrence(badge: Badge, turn: Turn, moment: str | None) -> str | None:
    """The occurrence an award now would be, or None if it was already awarded for it."""
    gs = turn.gam
    repeat = badge.repeat
    if repeat == "never":
        return None if gs.badges and badge.id in gs.badges else "once"
    if repeat == "always":
        return turn.event_id if moment is None else moment
    key = calendar("day" if repeat == "daily" else "week", turn.zone_name).span(turn.now).id
    if gs.badge_keys is not None and gs.badge_keys.get(badge.id) == key:
        return None
    return key


def check(badges: tuple[Badge, ...], emit: Emitter, turn: Turn, moment: str | None) -> int:
    """Award every badge in ``badges`` whose condition holds now; the points they give.

    ``moment`` is the occurrence of an ``always`` badge on a gamification moment (a
    pseudo-event); None on an event, whose id is then the occurrence.
    """
    gs = turn.gam
    points = 0
    for badge in badges:
        if badge.repeat == "never" and gs.badges is not None and badge.id in gs.badges:
            continue
        if badge.when is not None and not badge.when.evaluate(turn):
            continue
        key = occurrence(badge, turn, moment)
        if key is None:
            continue
        if gs.badges is None:
            gs.badges = {}
        times = gs.badges.get(badge.id, 0) + 1
        gs.badges[badge.id] = times
        if badge.repeat in ("daily", "weekly"):
            if gs.badge_keys is None:
                gs.badge_keys = {}
            gs.badge_keys[badge.id] = key
        payload: dict[str, object] = {
            "event": "badge_awarded",
            "badge": badge.id,
            "name": badge.name,
            "times": times,
        }
        if badge.points:
            payload["points"] = as_text(badge.points)
            points += badge.points
        emit.package(
            turn, f"badge:{badge.id}", key, payload, reward=badge.reward, message=badge.message
        )
    return points
