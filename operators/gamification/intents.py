"""The intents gamification emits: its own events, rewards and messages.

Gamification events are intents of kind ``GAMIFICATION`` on channel ``gamification``,
whose payload names the event in ``"event"`` (``points_awarded``, ``level_up``,
``level_down``, ``badge_awarded``, ``mission_offered``, ``mission_started``,
``mission_progress``, ``mission_completed``, ``mission_expired``, ``leaderboard_score``,
``tournament_finished``). Their campaign id names the mechanic and its configuration id
(``badge:first_deposit``, ``mission:daily_spinner``, ``leaderboard:daily_wager``) and
their occurrence what made it happen, so action ids are stable across replays.

Rewards go to the ``wallet`` channel (kind ``REWARD``), messages to the configured
channel (kind ``MESSAGE``); both share the mechanic's campaign id, with the occurrence
suffixed ``:reward`` / ``:message``.
"""

from __future__ import annotations

from typing import Any

from operators.actions import ActionKind
from operators.campaigns.templates import TemplateStore
from operators.gamification.context import Turn
from operators.gamification.messages import DEFAULT_LOCALE, render
from operators.gamification.program import MessageSpec, RewardSpec
from operators.rules import Intent

CHANNEL = "gamification"
WALLET = "wallet"


class Emitter:
    """Builds the intents of one program version; appends them to the turn's ``out``.

    With ``templates``, messages are rendered (:mod:`operators.gamification.messages`);
    without (a program loaded on its own, in unit tests), they carry the template id and
    the event's fields only.
    """

    __slots__ = ("base_currency", "default_locale", "templates", "version")

    def __init__(
        self,
        version: str,
        base_currency: str,
        templates: TemplateStore | None = None,
        default_locale: str = DEFAULT_LOCALE,
    ) -> None:
        self.version = version
        self.base_currency = base_currency
        self.templates = templates
        self.default_locale = default_locale

    def event(self, turn: Turn, campaign_id: str, occurrence: str, payload: dict[str, Any]) -> None:
        """A gamification event (``payload["event"]`` names it), decided at ``turn.now``."""
        turn.out.append(
            Intent(
                campaign_id,
                turn.player_id,
                occurrence,
                ActionKind.GAMIFICATION,
                CHANNEL,
                payload,
                turn.event_id,
                turn.now,
                turn.now,
                version=self.version,
            )
        )

    def reward(self, turn: Turn, campaign_id: str, occurrence: str, reward: RewardSpec) -> None:
        """A reward paid through the wallet (occurrence suffixed ``:reward``)."""
        turn.out.append(
            reward_intent(
                campaign_id,
                turn.player_id,
                f"{occurrence}:reward",
                reward,
                at=turn.now,
                event_id=turn.event_id,
                version=self.version,
                currency=self.base_currency,
            )
        )

    def message(
        self,
        turn: Turn,
        campaign_id: str,
        occurrence: str,
        message: MessageSpec,
        detail: dict[str, Any],
        *,
        event: str = "",
        reward: RewardSpec | None = None,
    ) -> None:
        """A templated message in the player's locale (occurrence suffixed ``:message``),
        about ``event`` (its fields in ``detail``) and the ``reward`` paid with it."""
        payload: dict[str, Any]
        if self.templates is not None:
            payload = render(
                self.templates,
                message,
                state=turn.state,
                now=turn.now,
                event=event,
                detail=detail,
                reward=reward,
                default_locale=self.default_locale,
                what=campaign_id,
            )
            payload.update(detail)
        else:
            payload = {
                "template_id": message.template_id,
                "locale": turn.state.locale or self.default_locale,
                **detail,
            }
        turn.out.append(
            Intent(
                campaign_id,
                turn.player_id,
                f"{occurrence}:message",
                ActionKind.MESSAGE,
                message.channel,
                payload,
                turn.event_id,
                turn.now,
                turn.now,
                version=self.version,
            )
        )

    def package(
        self,
        turn: Turn,
        campaign_id: str,
        occurrence: str,
        payload: dict[str, Any],
        *,
        reward: RewardSpec | None = None,
        message: MessageSpec | None = None,
    ) -> None:
        """The gamification event, then its reward and its message, if any."""
        self.event(turn, campaign_id, occurrence, payload)
        if reward is not None:
            self.reward(turn, campaign_id, occurrence, reward)
        if message is not None:
            detail = {key: value for key, value in payload.items() if key != "event"}
            event = str(payload.get("event", ""))
            self.message(turn, campaign_id, occurrence, message, detail, event=event, reward=reward)


def reward_intent(
    campaign_id: str,
    player_id: str,
    occurrence: str,
    reward: RewardSpec,
    *,
    at: int,
    event_id: str = "",
    version: str = "",
    currency: str = "",
) -> Intent:
    """A wallet reward intent; its cost is charged to budgets in ``currency``."""
    return Intent(
        campaign_id,
        player_id,
        occurrence,
        ActionKind.REWARD,
        WALLET,
        dict(reward.payload),
        event_id,
        at,
        at,
        version=version,
        cost=reward.cost,
        currency=currency if reward.cost else "",
    )


def event_intent(
    campaign_id: str,
    player_id: str,
    occurrence: str,
    payload: dict[str, Any],
    *,
    at: int,
    version: str = "",
) -> Intent:
    """A gamification event intent outside a player's turn (a tournament settlement)."""
    return Intent(
        campaign_id,
        player_id,
        occurrence,
        ActionKind.GAMIFICATION,
        CHANNEL,
        payload,
        "",
        at,
        at,
        version=version,
    )
