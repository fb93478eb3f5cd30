"""Guards: decide whether an intent may become an action.

This is the in-pipeline part that needs only the player's state: responsible-gaming
suppression and channel consent. Nothing promotional reaches a self-excluded player, and
a suppressed intent is recorded with its reason, never silently dropped.
"""

from __future__ import annotations

from operators.actions import Action, Decision, derive_action_id, epoch_to_datetime, suppressed
from operators.player_state import CHANNEL_BITS, PlayerState
from operators.rules import Intent


def decide(intent: Intent, state: PlayerState) -> Action:
    """Turn an intent into a decided action using what the state knows."""
    if state.is_self_excluded:
        decision = suppressed("self_excluded")
    elif intent.channel in CHANNEL_BITS and not state.has_consent(intent.channel):
        decision = suppressed("no_consent")
    else:
        decision = Decision.SENT.value
    return Action(
        action_id=derive_action_id(intent.campaign_id, intent.player_id, intent.occurrence),
        campaign_id=intent.campaign_id,
        player_id=intent.player_id,
        kind=intent.kind,
        channel=intent.channel,
        payload=intent.payload,
        event_id=intent.event_id,
        decision=decision,
        event_at=epoch_to_datetime(intent.event_at),
        decided_at=epoch_to_datetime(intent.decided_at),
        priority=intent.priority,
        campaign_version=intent.version,
        variant=intent.variant,
    )
