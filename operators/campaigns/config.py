"""The campaign YAML as pydantic models: campaigns, triggers, journeys, segments.

A file under ``config/campaigns/`` holds any of ``campaigns:``, ``segments:`` and
``settings:``. Conditions (``when``) are strings here; the loader compiles them against
the schema their place implies (an event trigger's conditions can read ``event``, a
journey step's can read ``journey``...). Every model forbids unknown fields, so a typo
is an error with a "did you mean", never a silently ignored setting.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BeforeValidator, Field, model_validator

from operators.campaigns.config_rewards import Coupon, Reward
from operators.campaigns.config_types import Duration, Identifier, Strict
from pipeline.events import Channel

__all__ = [
    "Branch",
    "Campaign",
    "CampaignFile",
    "EventTrigger",
    "Journey",
    "JourneyExit",
    "Limits",
    "Message",
    "ScheduleTrigger",
    "Segment",
    "SegmentRef",
    "Settings",
    "SignalTrigger",
    "Step",
    "StepOverride",
    "TimeTrigger",
    "Trigger",
    "Variant",
    "Window",
]

END = "end"  # the step id a branch jumps to in order to finish the journey


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Names = Annotated[list[str], BeforeValidator(_listify), Field(min_length=1)]
Condition = Annotated[str, Field(min_length=1)]


class EventTrigger(Strict):
    """Fires on an event of one of ``events`` (after it is folded into the state).

    ``when`` filters; ``changed`` fires only when that expression's value differs from
    the one seen at the player's previous such event (with ``ranks``: only when it moves
    up that list, e.g. VIP levels).
    """

    on: Literal["event"]
    events: Names
    when: Condition | None = None
    changed: Condition | None = None
    ranks: list[int | str] | None = None

    @model_validator(mode="after")
    def _ranks_need_changed(self) -> EventTrigger:
        if self.ranks is not None and self.changed is None:
            raise ValueError("'ranks' orders the values of 'changed'; set 'changed' too")
        return self


class SignalTrigger(Strict):
    """Fires on a gamification signal (``level_up``, ``mission_completed``...)."""

    on: Literal["signal"]
    signals: Names
    when: Condition | None = None


class TimeTrigger(Strict):
    """A deadline: ``wait`` after an anchor, or a yearly date in the player's time zone.

    ``after: inactivity`` counts from the last player-initiated event (or registration),
    once per quiet spell; ``after: registration`` / ``first_deposit`` once. ``at:
    birthday`` / ``anniversary`` fires every year at ``local_time``.
    """

    on: Literal["time"]
    after: Literal["inactivity", "registration", "first_deposit"] | None = None
    wait: Duration | None = None
    at: Literal["birthday", "anniversary"] | None = None
    local_time: dt.time = dt.time(10, 0)
    when: Condition | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> TimeTrigger:
        if self.at is None and (self.after is None or self.wait is None):
            raise ValueError(
                "a time trigger needs 'after' and 'wait' (e.g. after: inactivity, wait: 7d) "
                "or 'at' (birthday or anniversary)"
            )
        if self.at is not None and (self.after is not None or self.wait is not None):
            raise ValueError("use either 'at' or 'after' with 'wait', not both")
        if self.wait is not None and self.wait <= 0:
            raise ValueError("'wait' must be longer than zero")
        return self


class ScheduleTrigger(Strict):
    """Cron in the player's time zone: ``"0 10 * * MON"`` is Mondays at 10:00 local."""

    on: Literal["schedule"]
    cron: Annotated[str, Field(min_length=9)]
    when: Condition | None = None


Trigger = Annotated[
    EventTrigger | SignalTrigger | TimeTrigger | ScheduleTrigger, Field(discriminator="on")
]


class Message(Strict):
    """A templated message on the first of ``channels`` the player consents to."""

    template: Identifier
    channels: Annotated[list[Channel], BeforeValidator(_listify), Field(min_length=1)]


class Branch(Strict):
    """Go to step ``goto`` (a later step, or ``end``) if ``when`` holds (always if unset)."""

    when: Condition | None = None
    goto: str


class Step(Strict):
    """One step of a journey, ``wait`` after the previous one ran (or the journey began).

    A step whose ``when`` is false is skipped. After its message and reward, the first
    ``branch`` whose condition holds picks the next step; otherwise the next in order.
    """

    id: Identifier
    wait: Duration = 0
    when: Condition | None = None
    message: Message | None = None
    reward: Reward | None = None
    branch: list[Branch] = Field(default_factory=list)


class JourneyExit(Strict):
    """Leave the journey when ``when`` holds: checked before each step and on ``on`` events."""

    when: Condition
    on: Annotated[list[str], BeforeValidator(_listify)] = Field(default_factory=list)


class Journey(Strict):
    """A drip chain: ordered steps with waits, branches and an exit condition."""

    steps: Annotated[list[Step], Field(min_length=1)]
    exit: JourneyExit | None = None


class Window(Strict):
    """When a campaign is active, in event time: ``start`` inclusive, ``end`` exclusive."""

    start: AwareDatetime | None = None
    end: AwareDatetime | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("'end' must be after 'start'")
        return self


class Limits(Strict):
    """How often one player can enter the campaign: ``once`` ever or ``once_per`` period;
    and whether an action held back by a frequency cap waits (``defer_when_capped``:
    try again after this long, up to three times) instead of being dropped as capped."""

    once: bool = False
    once_per: Duration | None = None
    defer_when_capped: Duration | None = None

    @model_validator(mode="after")
    def _one(self) -> Limits:
        if self.once and self.once_per is not None:
            raise ValueError("use either 'once' or 'once_per', not both")
        return self


class StepOverride(Strict):
    """What an A/B variant changes in one journey step."""

    message: Message | None = None
    reward: Reward | None = None


class Variant(Strict):
    """An A/B variant: its share of players and what it changes."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    weight: Annotated[int, Field(ge=1, le=10_000)] = 1
    message: Message | None = None
    reward: Reward | None = None
    steps: dict[str, StepOverride] = Field(default_factory=dict)


class InlineSegment(Strict):
    """A segment written in place: ``segment: {when: "state.deposit_count > 0"}``."""

    when: Condition


SegmentRef = str | list[str] | InlineSegment


class Campaign(Strict):
    """One campaign: who (segment), when (trigger, window), what (message, reward or
    journey), how often (limits) and in which variants."""

    id: Identifier
    name: str | None = None
    description: str | None = None
    enabled: bool = True
    priority: Annotated[int, Field(ge=0, le=1000)] = 0
    active: Window | None = None
    segment: SegmentRef | None = None
    trigger: Trigger | None = None
    message: Message | None = None
    reward: Reward | None = None
    journey: Journey | None = None
    limits: Limits = Field(default_factory=Limits)
    variants: list[Variant] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> Campaign:
        if self.journey is not None and (self.message is not None or self.reward is not None):
            raise ValueError(
                "a journey campaign sends messages and rewards from its steps; "
                "move 'message'/'reward' into a step"
            )
        if self.journey is None and self.message is None and self.reward is None:
            raise ValueError("a campaign needs a 'message', a 'reward' or a 'journey'")
        public_code = isinstance(self.reward, Coupon) and not self.reward.personal
        if self.trigger is None and not public_code:
            raise ValueError(
                "a campaign needs a 'trigger' (only a shared coupon code, redeemed by "
                "players, can do without one)"
            )
        if self.trigger is None and self.message is not None:
            raise ValueError("a campaign without a trigger cannot send a 'message'")
        names = [variant.name for variant in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("variant names must be unique")
        return self


class Segment(Strict):
    """A named, reusable audience: a condition over the player's live state."""

    id: Identifier
    description: str | None = None
    when: Condition


class Settings(Strict):
    """Settings for all campaigns (at most one file may have them)."""

    default_locale: Annotated[str, Field(pattern=r"^[a-z]{2}$")] = "en"


class CampaignFile(Strict):
    """One YAML file under ``config/campaigns/``."""

    settings: Settings | None = None
    segments: list[Segment] = Field(default_factory=list)
    campaigns: list[Campaign] = Field(default_factory=list)
