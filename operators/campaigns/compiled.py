"""Campaigns compiled for the hot path: conditions as closures, offers per variant.

The loader (``operators.campaigns.loader``) builds these from the validated YAML; the
engine (``operators.campaigns.engine``) only reads them. Everything here is immutable
and shared by all players.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from operators.actions import ActionKind
from operators.campaigns.config import Campaign, Message, Settings
from operators.campaigns.rewards import CompiledReward
from operators.campaigns.templates import TemplateStore
from operators.campaigns.timing import Schedule

__all__ = [
    "CampaignSet",
    "CompiledCampaign",
    "CompiledJourney",
    "CompiledStep",
    "Offer",
    "Predicate",
]

Predicate = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class Offer:
    """What one activation does: a message, a reward, or both.

    ``key`` names the instance a pending reward lives in: the campaign id, or
    ``campaign/step`` for a journey step's reward.
    """

    key: str
    message: Message | None
    reward: CompiledReward | None


@dataclass(frozen=True, slots=True)
class CompiledStep:
    """A journey step: its wait, guard, offer per variant and branches."""

    id: str
    wait: int
    when: Predicate | None
    offers: tuple[Offer, ...]  # one per variant (one if the campaign has none)
    branches: tuple[tuple[Predicate | None, int], ...]  # (condition, target index; -1: end)


@dataclass(frozen=True, slots=True)
class CompiledJourney:
    """A journey's steps, by position and by id, and its exit condition."""

    steps: tuple[CompiledStep, ...]
    index: Mapping[str, int]
    exit_when: Predicate | None
    exit_on: frozenset[str]


@dataclass(frozen=True, slots=True)
class CompiledCampaign:
    """One campaign, ready to run."""

    config: Campaign
    id: str
    priority: int
    kind: ActionKind  # of its lifecycle intents: reward if it pays anything, else message
    start: int | None
    end: int | None
    when: Predicate | None  # the trigger's condition
    segments: tuple[Predicate, ...]
    once: bool
    once_per: int | None
    variants: tuple[tuple[str, int], ...]  # (name, cumulative weight)
    offers: tuple[Offer, ...]  # one per variant (one if there are none)
    journey: CompiledJourney | None = None
    changed: Callable[[Any], Any] | None = None
    ranks: Mapping[str, int] | None = None
    schedule: Schedule | None = None
    defer_when_capped: int = 0  # seconds; 0: a capped action is dropped

    def variant_of(self, player_id: str) -> int:
        """The player's variant, by a stable hash of campaign and player (0 if none)."""
        variants = self.variants
        if not variants:
            return 0
        digest = hashlib.blake2b(f"{self.id}\x1f{player_id}".encode(), digest_size=8).digest()
        point = int.from_bytes(digest, "big") % variants[-1][1]
        for index, (_, bound) in enumerate(variants):
            if point < bound:
                return index
        return len(variants) - 1

    def variant_index(self, name: str) -> int:
        """The index of variant ``name`` (0 if unknown: the configuration changed)."""
        for index, (variant, _) in enumerate(self.variants):
            if variant == name:
                return index
        return 0

    def variant_name(self, index: int) -> str:
        """The name of variant ``index`` ("" when the campaign has no variants)."""
        return self.variants[index][0] if self.variants else ""

    def active_at(self, at: int) -> bool:
        """Whether ``at`` is inside the campaign's active window."""
        return (self.start is None or at >= self.start) and (self.end is None or at < self.end)

    def allowed(self, fired: tuple[int, int] | None, at: int) -> bool:
        """Whether the per-player limits allow entering the campaign at ``at``."""
        if fired is None:
            return True
        if self.once:
            return False
        return self.once_per is None or at >= fired[1] + self.once_per

    def in_segment(self, ctx: Any) -> bool:
        """Whether every segment condition holds."""
        return all(segment(ctx) for segment in self.segments)


@dataclass(frozen=True, slots=True)
class CampaignSet:
    """A loaded, validated configuration: what ``CampaignRules`` runs.

    ``version`` is a short hash of the files it came from; it is in every intent.
    """

    version: str
    campaigns: tuple[CompiledCampaign, ...]
    templates: TemplateStore
    settings: Settings
    files: tuple[str, ...] = ()

    def campaign(self, campaign_id: str) -> CompiledCampaign:
        """A campaign by id (``KeyError`` if absent)."""
        for campaign in self.campaigns:
            if campaign.id == campaign_id:
                return campaign
        raise KeyError(campaign_id)
