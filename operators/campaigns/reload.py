"""Swapping campaign configurations between batches without losing player state.

Per-player campaign data lives in the player state (``state.extra["campaigns"]``), keyed
by campaign and step ids, never by compiled objects; a new :class:`CampaignRules` reads
it as the old one left it. What a swap must do is re-arm deadlines: the new campaigns'
deadlines may be earlier than the wake-up the engine holds for a player.
"""

from __future__ import annotations

from collections.abc import Sequence

from operators.campaigns.engine import CampaignRules
from operators.engine import NEVER, PlayerShard
from operators.rules import RuleSet

__all__ = ["swap_rules"]


def swap_rules(shard: PlayerShard, rules: Sequence[RuleSet]) -> None:
    """Run ``rules`` on ``shard`` from now on, re-arming every player's campaign deadlines.

    Call it between batches, after ``shard.advance``: deadlines of the new configuration
    at or before the shard's watermark count as passed (nothing fires retroactively), and
    instances in progress (journeys, offers, wagering) carry on under the same ids.
    """
    shard.with_rules(rules, shard.guards)
    watermark = shard.watermark
    if watermark == NEVER:
        return
    for rule_set in rules:
        if isinstance(rule_set, CampaignRules):
            for state in shard.players.values():
                due = rule_set.rearm(state, watermark)
                if due is not None:
                    shard.schedule(state, due)
