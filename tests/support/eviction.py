"""Fold the same events through a shard that evicts lapsed players and one that does not.

``feed`` moves the watermark like the job does (``lag`` behind each chunk's newest
event); ``rows`` describes every player of a shard, evicted or not, the way
players.parquet does, so two shards' states can be compared; ``FlakyStore`` wraps a cold
store to record what is written and to fail on demand.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from operators.actions import Action
from operators.campaigns import CampaignRules, campaign_rows
from operators.engine import PlayerShard
from operators.eviction import ColdKey, ColdStore, ColdStoreError
from operators.gamification import GamificationRules, gamification_rows
from operators.player_state import NEXT_DUE, player_row
from operators.triggers import TriggerSettings
from pipeline.events import Event
from pipeline.rulebook import Rules, load_rules

CONFIG = Path(__file__).resolve().parents[2] / "config"


@cache
def starter_pack() -> Rules:
    """Campaigns, gamification and guards of ``config/``."""
    return load_rules(CONFIG, TriggerSettings())


def feed(
    shard: PlayerShard,
    events: Sequence[tuple[int, Event]],
    *,
    chunk: int = 10_000,
    lag: int = 0,
    final: int | None = None,
) -> list[Action]:
    """Fold ``events`` in chunks, the watermark ``lag`` behind each chunk's newest event."""
    actions: list[Action] = []
    for i in range(0, len(events), chunk):
        part = list(events[i : i + chunk])
        actions += shard.process(part)
        actions += shard.advance(max(ts for ts, _ in part) - lag)
    if final is not None:
        actions += shard.advance(final)
    return actions


def canonical(actions: Sequence[Action]) -> list[str]:
    """Actions as sorted JSON: equal lists mean the same decisions, whatever the order."""
    return sorted(a.model_dump_json() for a in actions)


def rows(shard: PlayerShard, now: int) -> dict[str, dict[str, Any]]:
    """Every player of ``shard`` (evicted ones read back) as players.parquet describes
    them at ``now``, with campaign and gamification columns."""
    out: dict[str, dict[str, Any]] = {}
    for state in shard.every_player():
        row = player_row(state, now)
        row["next_due"] = state.n[NEXT_DUE]  # deadlines must survive eviction too
        for rule_set in shard.rules:
            if isinstance(rule_set, CampaignRules):
                row.update(campaign_rows(state))
            elif isinstance(rule_set, GamificationRules):
                row.update(gamification_rows(state))
        out[state.player_id] = row
    return out


class FlakyStore(ColdStore):
    """A cold store that records writes and disposals, and fails while told to."""

    def __init__(self, inner: ColdStore) -> None:
        self.inner = inner
        self.written: list[ColdKey] = []
        self.disposed: list[ColdKey] = []
        self.fail_reads = False
        self.fail_writes = False

    def put_many(self, blobs: Sequence[tuple[str, int, bytes]]) -> None:
        if self.fail_writes:
            raise ColdStoreError("cold store down (test)")
        self.inner.put_many(blobs)
        self.written += [(pid, version) for pid, version, _ in blobs]

    def get_many(self, keys: Sequence[ColdKey]) -> list[bytes | None]:
        if self.fail_reads:
            raise ColdStoreError("cold store down (test)")
        return self.inner.get_many(keys)

    def dispose_many(self, keys: Sequence[ColdKey]) -> None:
        self.inner.dispose_many(keys)
        self.disposed += keys
