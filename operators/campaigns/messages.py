"""Rendering campaign messages: the template context, the channel, the payload.

The context a template sees is built here and nowhere else, for real players and for the
loader's sample render alike, so a template that renders at load renders at run time:

* ``player``: id, country, currency, locale, timezone, vip_level, lifecycle, churn_risk,
  favourite_category, last_category, deposit_count, deposit_total, sessions,
  days_inactive, days_registered, age, attributes (:class:`PlayerView`, computed lazily);
* ``reward``: the reward's view (``operators.campaigns.rewards.reward_view``) or none;
* ``campaign``: id, name, variant; ``journey``: id and step (none outside journeys).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from typing import Any

import jinja2

from operators.campaigns.config import Message
from operators.campaigns.context import churn_risk, days_inactive
from operators.campaigns.rewards import fmt_money
from operators.campaigns.store import STORE_KEY
from operators.campaigns.templates import TemplateStore
from operators.player_state import DAY, PlayerState
from pipeline.events import Deposit, Login, ProfileUpdate, Registration

log = logging.getLogger(__name__)

__all__ = [
    "PlayerView",
    "choose_channel",
    "message_context",
    "player_view",
    "render",
    "sample_state",
    "template_payload",
]


class PlayerView:
    """What templates read as ``player``, each field computed only if a template reads it.

    Templates cannot reach the state itself: the sandbox refuses names starting with ``_``.
    """

    __slots__ = ("_now", "_state")

    def __init__(self, state: PlayerState, now: int) -> None:
        self._state = state
        self._now = now

    @property
    def id(self) -> str:
        """The player id."""
        return self._state.player_id

    @property
    def country(self) -> str | None:
        """ISO country code."""
        return self._state.country

    @property
    def currency(self) -> str | None:
        """ISO currency code."""
        return self._state.currency

    @property
    def locale(self) -> str | None:
        """Preferred locale, as registered."""
        return self._state.locale

    @property
    def timezone(self) -> str | None:
        """IANA time zone."""
        return self._state.timezone

    @property
    def vip_level(self) -> int | str | None:
        """VIP level, if any."""
        return self._state.vip_level

    @property
    def lifecycle(self) -> str:
        """Lifecycle stage now."""
        return self._state.lifecycle(self._now).value

    @property
    def churn_risk(self) -> str:
        """``none``, ``low``, ``medium`` or ``high``."""
        return churn_risk(self._state, self._now)

    @property
    def favourite_category(self) -> str | None:
        """The category with the most money wagered."""
        return self._state.favourite_category

    @property
    def last_category(self) -> str | None:
        """The category of the newest bet."""
        extra = self._state.extra
        store = extra.get(STORE_KEY) if extra is not None else None
        return None if store is None else store.last_category

    @property
    def deposit_count(self) -> int:
        """Successful deposits."""
        count: int = self._state.deposit_count
        return count

    @property
    def deposit_total(self) -> str:
        """Money deposited, with two decimals."""
        return fmt_money(self._state.deposit_total)

    @property
    def sessions(self) -> int:
        """Logins seen."""
        sessions: int = self._state.sessions
        return sessions

    @property
    def days_inactive(self) -> int | None:
        """Whole days since the last activity (or registration)."""
        return days_inactive(self._state, self._now)

    @property
    def days_registered(self) -> int | None:
        """Whole days since registration."""
        registered = self._state.registered_at
        return None if registered is None else max(0, self._now - registered) // DAY

    @property
    def age(self) -> int | None:
        """Age in years, from the birth date."""
        born = self._state.birth_date
        if born is None:
            return None
        today = dt.datetime.fromtimestamp(self._now, dt.UTC).date()
        month_day = (int(born[5:7]), int(born[8:10]))
        return today.year - int(born[:4]) - ((today.month, today.day) < month_day)

    @property
    def attributes(self) -> dict[str, Any]:
        """Custom attributes (a copy)."""
        return dict(self._state.attributes)


def player_view(state: PlayerState, now: int) -> PlayerView:
    """What templates read as ``player``."""
    return PlayerView(state, now)


def message_context(
    state: PlayerState,
    now: int,
    *,
    campaign_id: str,
    campaign_name: str,
    variant: str,
    reward: dict[str, Any] | None,
    journey_step: str | None,
) -> dict[str, Any]:
    """The whole template context."""
    return {
        "player": player_view(state, now),
        "reward": reward,
        "campaign": {"id": campaign_id, "name": campaign_name, "variant": variant},
        "journey": None if journey_step is None else {"id": campaign_id, "step": journey_step},
    }


def choose_channel(message: Message, state: PlayerState) -> str:
    """The first of the message's channels the player consents to (else the first)."""
    consents = state.has_consent
    for channel in message.channels:
        if consents(channel.value):
            return channel.value
    return message.channels[0].value


def render(
    templates: TemplateStore,
    default_locale: str,
    message: Message,
    *,
    channel: str,
    state: PlayerState,
    context: dict[str, Any],
    what: str = "",
) -> dict[str, Any]:
    """The message payload: template id, locale, rendered content (and a deep link)."""
    return template_payload(
        templates,
        channel,
        message.template,
        locale=state.locale,
        default_locale=default_locale,
        context=context,
        what=what,
    )


def template_payload(
    templates: TemplateStore,
    channel: str,
    template_id: str,
    *,
    locale: str | None,
    default_locale: str,
    context: dict[str, Any],
    what: str = "",
) -> dict[str, Any]:
    """A message payload rendered from ``template_id`` in ``locale`` (else the default):
    template id, locale, rendered content (and a deep link). Campaign and gamification
    messages both come through here.

    Every template rendered at load against a sample; one that fails on a real player's
    data (something the sample lacked) marks the message with the error, logged under
    ``what`` (the campaign), instead of stopping the job.
    """
    try:
        template = templates.pick(channel, template_id, locale, default_locale)
        rendered, link = template.render(context)
    except (jinja2.TemplateError, TypeError, ValueError, LookupError) as exc:
        log.warning("%s: template %s failed: %s", what, template_id, exc)
        return {"template_id": template_id, "locale": "", "error": str(exc)}
    payload: dict[str, Any] = {
        "template_id": template_id,
        "locale": template.locale,
        "rendered": rendered,
    }
    if link is not None:
        payload["deep_link"] = link
    return payload


@functools.cache
def sample_state() -> PlayerState:
    """A plausible player, folded from real events: the loader renders templates for it."""
    at = int(dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC).timestamp())
    state = PlayerState("p000001", at)
    common = {"player_id": "p000001", "ts": dt.datetime.fromtimestamp(at, dt.UTC)}
    state.apply(
        Registration.model_validate(
            {
                **common,
                "event_id": "sample-1",
                "type": "registration",
                "country": "DE",
                "currency": "EUR",
                "timezone": "Europe/Berlin",
                "channel": "organic",
                "consents": {"email": True, "sms": True, "push": True, "in_app": True},
                "locale": "en",
                "birth_date": "1990-06-15",
            }
        ),
        at,
        False,
    )
    state.apply(Login.model_validate({**common, "event_id": "sample-2", "type": "login"}), at, True)
    deposit = {
        **common,
        "event_id": "sample-3",
        "type": "deposit",
        "amount": "50",
        "currency": "EUR",
    }
    state.apply(Deposit.model_validate(deposit), at, True)
    profile = {**common, "event_id": "sample-4", "type": "profile_update", "attributes": {}}
    state.apply(ProfileUpdate.model_validate({**profile, "vip_level": "gold"}), at, False)
    return state
