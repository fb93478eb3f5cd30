"""Gamification messages rendered with the operator's templates (``config/templates``).

A message of the ladder (level up, level down), of a badge or of a mission is rendered
when it is emitted, as a campaign's is: the template
``templates/<channel>/<template_id>.<locale>.<ext>`` in the player's locale (else the
``default_locale`` of ``settings.yaml``, ``en`` unless set) reads

* ``player``: the view campaign templates read (:mod:`operators.campaigns.messages`);
* ``gamification``: what happened: ``event`` (``level_up``, ``level_down``,
  ``badge_awarded``, ``mission_completed``) and that event's fields (:data:`FIELDS`;
  a field the event does not have this time, a badge's ``points`` say, is none);
* ``reward``: the reward paid with it, or none: ``type`` (``free_spins``,
  ``bonus_credit``...), ``count``, ``game``, ``value_per_spin``, ``amount``, ``wagering``
  (the multiplier) and ``currency``, each none where the type has no such field.

:func:`check_messages` is the load-time half: every message's template must exist, in
the default locale too, and every locale must render against a sample of its event, so a
configuration whose message could not render does not start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jinja2

from operators.campaigns.messages import player_view, sample_state, template_payload
from operators.campaigns.templates import TemplateStore
from operators.gamification.program import MessageSpec, Program, RewardSpec
from operators.player_state import PlayerState

DEFAULT_LOCALE = "en"
"""The default ``default_locale``: what a message falls back to when the player's locale
has no template."""

FIELDS: dict[str, dict[str, Any]] = {
    # event -> its fields, with the sample values the loader renders templates with
    "level_up": {
        "level": "gold",
        "name": "Gold",
        "rank": 2,
        "previous": "silver",
        "points": "512.50",
    },
    "level_down": {
        "level": "silver",
        "name": "Silver",
        "rank": 1,
        "previous": "gold",
        "period": "2026-01",
        "period_points": "40.00",
        "required": "150.00",
    },
    "badge_awarded": {
        "badge": "first_deposit",
        "name": "First deposit",
        "times": 1,
        "points": "10",
    },
    "mission_completed": {
        "mission": "daily_spinner",
        "name": "Daily Spinner",
        "instance": "2026-01-05",
        "started_at": 1_767_600_000,
    },
}


def gamification_view(event: str, detail: dict[str, Any]) -> dict[str, Any]:
    """What a template reads as ``gamification``: every field of the event, none if absent."""
    view: dict[str, Any] = dict.fromkeys(FIELDS.get(event, ()))
    view.update(detail)
    view["event"] = event
    return view


_REWARD_FIELDS = ("type", "count", "game", "value_per_spin", "amount", "wagering", "currency")


def reward_view(reward: RewardSpec | None) -> dict[str, Any] | None:
    """What a template reads as ``reward``: the wallet payload, its type as ``type``."""
    if reward is None:
        return None
    view: dict[str, Any] = dict.fromkeys(_REWARD_FIELDS)
    view.update(reward.payload)
    view["type"] = view.pop("reward_type", None)
    return view


def sample_view() -> dict[str, Any]:
    """A ``gamification`` with every field of every event: for the templates no message
    uses, which the campaign loader renders too (``operators.campaigns.build``)."""
    union: dict[str, Any] = {}
    for fields in FIELDS.values():
        union.update(fields)
    return gamification_view("level_up", union)


def _context(
    state: PlayerState, now: int, event: str, detail: dict[str, Any], reward: RewardSpec | None
) -> dict[str, Any]:
    """What a gamification message's template reads (see the module docstring)."""
    return {
        "player": player_view(state, now),
        "gamification": gamification_view(event, detail),
        "reward": reward_view(reward),
    }


def render(
    templates: TemplateStore,
    message: MessageSpec,
    *,
    state: PlayerState,
    now: int,
    event: str,
    detail: dict[str, Any],
    reward: RewardSpec | None,
    default_locale: str = DEFAULT_LOCALE,
    what: str = "",
) -> dict[str, Any]:
    """The message's payload: template id, locale, rendered content (and a deep link);
    a template failing on this player's data marks it (``template_payload``)."""
    context = _context(state, now, event, detail, reward)
    return template_payload(
        templates,
        message.channel,
        message.template_id,
        locale=state.locale,
        default_locale=default_locale,
        context=context,
        what=what,
    )


def _usages(program: Program) -> Iterator[tuple[str, str, MessageSpec, RewardSpec | None]]:
    """``(where, event, message, reward)`` of every message the program can send."""
    if program.ladder is not None:
        for level in program.ladder.levels:
            if level.message is not None:
                yield f"levels.{level.id}.message", "level_up", level.message, level.reward
            if level.demotion_message is not None:
                where = f"levels.{level.id}.demotion_message"
                yield where, "level_down", level.demotion_message, None
    for badge in program.badges:
        if badge.message is not None:
            yield f"badges.{badge.id}.message", "badge_awarded", badge.message, badge.reward
    for mission in program.missions:
        if mission.message is not None:
            where = f"missions.{mission.id}.message"
            yield where, "mission_completed", mission.message, mission.reward


def check_messages(
    program: Program, templates: TemplateStore, default_locale: str = DEFAULT_LOCALE
) -> list[str]:
    """Every problem with the program's messages against ``templates``; [] if none."""
    problems: list[str] = []
    state = sample_state()
    for where, event, message, reward in _usages(program):
        channel, template_id = message.channel, message.template_id
        locales = templates.locales(channel, template_id)
        reason = templates.broken.get((channel, template_id))
        if reason is not None:
            problems.append(
                f"{where}: template {template_id!r} for {channel} does not compile: {reason}"
            )
            continue
        if not locales:
            known = ", ".join(templates.ids(channel)) or "none"
            problems.append(
                f"{where}: unknown template {template_id!r} for {channel}: add "
                f"templates/{channel}/{template_id}.<locale>.<ext> (the {channel} templates: "
                f"{known})"
            )
            continue
        if default_locale not in locales:
            problems.append(
                f"{where}: template {template_id!r} for {channel} has no {default_locale!r} "
                f"version (the default locale); found {', '.join(sorted(locales))}"
            )
        context = _context(state, state.last_seen, event, FIELDS[event], reward)
        for locale, template in sorted(locales.items()):
            try:
                template.render(context)
            except jinja2.TemplateError as exc:
                problems.append(
                    f"{where}: template {template_id!r} ({channel}, {locale}) does not render "
                    f"for a {event} message: {exc}"
                )
    return problems
