"""Guards: decide whether an intent may become an action.

The guards run in this order, each decision recorded with its reason:

1. dedup, 2. suppression, 3. A/B holdout, 4. quiet hours, 5. frequency caps, 6. budgets.

This module holds the rules that need only the player's state and the configuration:
suppression from events (self-exclusion, consent per channel), the deterministic A/B
holdout split and quiet hours in the player's time zone (the message is deferred to the
end of the quiet period, not dropped). Dedup, the authoritative suppression list, caps
and budgets need shared stores and run after the player operator (``pipeline.delivery``);
their configuration is here too, so one file (``config/guards.yaml``) says it all.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from operators.actions import Action, ActionKind, Decision, derive_action_id, epoch_to_datetime
from operators.actions import suppressed as suppressed_because
from operators.player_state import CHANNEL_BITS, PlayerState
from operators.rules import Intent
from operators.zones import zone

DEFERRED = "deferred"
HELD_OUT = Decision.HELD_OUT.value
SENT = Decision.SENT.value
MARKETING_CHANNELS = frozenset(CHANNEL_BITS)
# Rewards and messages a player earned in a game mechanic (a mission completed, a
# tournament place, a level reached, a badge) are not promotions: never held out of an
# A/B test nor counted against promotional frequency caps. Self-exclusion and consent
# still apply to them.
EARNED_PREFIXES = ("badge:", "level:", "mission:", "tournament:")


def is_earned(campaign_id: str) -> bool:
    """Whether an action is something the player earned in a game mechanic."""
    return campaign_id.startswith(EARNED_PREFIXES)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class QuietHours(_Strict):
    """No messages on a channel between ``start`` and ``end`` local time (may wrap midnight)."""

    start: dt.time
    end: dt.time


class CapConfig(_Strict):
    """At most ``limit`` actions per player in ``window_hours`` for matching actions."""

    key: str
    limit: int = Field(ge=0)
    window_hours: float = Field(gt=0)
    channels: list[str] | None = None
    kinds: list[Literal["reward", "message"]] | None = None


class BudgetConfig(_Strict):
    """A spending cap: money in currency units and/or a number of rewards."""

    money: float | None = Field(default=None, ge=0)
    count: int | None = Field(default=None, ge=0)


class GuardConfig(_Strict):
    """What ``config/guards.yaml`` says."""

    global_control_percent: float = Field(default=0.0, ge=0, le=100)
    holdout_percent: dict[str, float] = Field(default_factory=dict)
    default_holdout_percent: float = Field(default=0.0, ge=0, le=100)
    quiet_hours: dict[str, QuietHours] = Field(default_factory=dict)
    caps: list[CapConfig] = Field(default_factory=list)
    # Priority at or above which an intent may use a cap's last unit.
    reserve_last_unit_below_priority: int = 0
    budgets: dict[str, BudgetConfig] = Field(default_factory=dict)

    @field_validator("holdout_percent")
    @classmethod
    def _percent(cls, value: dict[str, float]) -> dict[str, float]:
        for campaign, percent in value.items():
            if not 0 <= percent <= 100:
                msg = f"holdout for {campaign!r} must be within 0..100, got {percent}"
                raise ValueError(msg)
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _channels(cls, value: dict[str, QuietHours]) -> dict[str, QuietHours]:
        unknown = set(value) - MARKETING_CHANNELS
        if unknown:
            msg = f"quiet hours for unknown channel(s) {sorted(unknown)}"
            msg += f"; use {sorted(CHANNEL_BITS)}"
            raise ValueError(msg)
        return value


class GuardConfigError(ValueError):
    """``config/guards.yaml`` is invalid; the message names the file, the path and why."""


def load_guard_config(path: Path) -> GuardConfig:
    """Load and validate a guards file; a missing file means no holdout, caps or budgets."""
    if not path.exists():
        return GuardConfig()
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return GuardConfig.model_validate(data)
    except yaml.YAMLError as exc:
        raise GuardConfigError(f"{path}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise GuardConfigError(f"{path}: {problems}") from exc


def _bucket(salt: str, player_id: str) -> float:
    """A stable number in [0, 100) for (salt, player): the same on every worker and run."""
    digest = hashlib.blake2b(f"{salt}\x1f{player_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 / 100


def held_out(config: GuardConfig, campaign_id: str, player_id: str) -> bool:
    """Whether the player is in the global control group or this campaign's holdout."""
    if config.global_control_percent and _bucket("global", player_id) < (
        config.global_control_percent
    ):
        return True
    percent = config.holdout_percent.get(campaign_id, config.default_holdout_percent)
    return bool(percent) and _bucket(campaign_id, player_id) < percent


def quiet_until(config: GuardConfig, channel: str, timezone: str | None, at: int) -> int | None:
    """If ``at`` falls in the channel's quiet hours in the player's zone, when they end."""
    quiet = config.quiet_hours.get(channel)
    if quiet is None:
        return None
    local = dt.datetime.fromtimestamp(at, zone(timezone))
    now, start, end = local.time(), quiet.start, quiet.end
    inside = (start <= now < end) if start < end else (now >= start or now < end)
    if not inside:
        return None
    release = dt.datetime.combine(local.date(), end, local.tzinfo)
    if release <= local:
        release += dt.timedelta(days=1)
    return int(release.timestamp())


def decide(
    intent: Intent, state: PlayerState, config: GuardConfig | None = None
) -> tuple[Action, int | None]:
    """The state-based decision for an intent, and when to retry it if deferred."""
    release: int | None = None
    promotional = intent.kind is not ActionKind.GAMIFICATION
    if promotional and state.is_self_excluded:
        decision = suppressed_because("self_excluded")
    elif promotional and (block := state.rg_block) is not None:
        decision = suppressed_because(block)
    elif intent.channel in CHANNEL_BITS and not state.has_consent(intent.channel):
        decision = suppressed_because("no_consent")
    elif (
        config is not None
        and promotional
        and not is_earned(intent.campaign_id)
        and held_out(config, intent.campaign_id, state.player_id)
    ):
        decision = HELD_OUT
    elif config is not None and (
        release := quiet_until(config, intent.channel, state.timezone, intent.decided_at)
    ):
        decision = DEFERRED
    else:
        decision = SENT
    return to_action(intent, decision), release


def to_action(intent: Intent, decision: str, **changes: Any) -> Action:
    """An intent as a decided action (the action id derives from its occurrence)."""
    event_at = epoch_to_datetime(intent.event_at)
    decided_at = (
        event_at if intent.decided_at == intent.event_at else epoch_to_datetime(intent.decided_at)
    )
    values: dict[str, Any] = {
        "action_id": derive_action_id(intent.campaign_id, intent.player_id, intent.occurrence),
        "campaign_id": intent.campaign_id,
        "player_id": intent.player_id,
        "kind": intent.kind,
        "channel": intent.channel,
        "payload": intent.payload,
        "event_id": intent.event_id,
        "decision": decision,
        "event_at": event_at,
        "decided_at": decided_at,
        "delivered_at": None,
        "priority": intent.priority,
        "campaign_version": intent.version,
        "variant": intent.variant,
        "cost": intent.cost,
        "currency": intent.currency,
        "detail": "",
        "defer_when_capped": intent.defer_when_capped,
    }
    if changes:  # rare (a settlement's records): validated as given
        return Action(**{**values, **changes})
    return Action.trusted(values)
