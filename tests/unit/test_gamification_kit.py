"""Helpers shared by the gamification tests (no tests here).

A test writes a small configuration (``configure(tmp_path, points=...)``), replays a
scripted stream of events through the player operator (``replay``) and looks at the
gamification events by name (``named``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from pathlib import Path

from operators.actions import Action
from operators.engine import PlayerShard
from operators.gamification import GamificationRules, load_gamification
from tests.support.scenario import Script

SETTINGS = """
settings:
  timezone: UTC
  base_currency: EUR
  flush_seconds: 15m
  flush_on_logout: true
"""


def configure(directory: Path, *, settings: str = SETTINGS, **files: str) -> GamificationRules:
    """Write ``settings.yaml`` and one file per keyword (``points=...`` -> points.yaml); load."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in {"settings": settings, **files}.items():
        (directory / f"{name}.yaml").write_text(textwrap.dedent(text))
    return load_gamification(directory)


def replay(
    rules: GamificationRules, script: Script, *, final: int | None = None, chunk: int = 10_000
) -> list[Action]:
    """Feed the script in chunks (watermark at each chunk's newest time), then ``final``."""
    shard = PlayerShard(rules=[rules])
    events = script.events()
    actions: list[Action] = []
    for i in range(0, len(events), chunk):
        part = events[i : i + chunk]
        actions += shard.process(part)
        actions += shard.advance(max(ts for ts, _ in part))
    if final is not None:
        actions += shard.advance(final)
    return actions


def named(actions: Iterable[Action], event: str, player: str | None = None) -> list[Action]:
    """The gamification actions whose payload event is ``event`` (for ``player``)."""
    return [
        a
        for a in actions
        if a.kind == "gamification"
        and a.payload.get("event") == event
        and (player is None or a.player_id == player)
    ]


def by_kind(actions: Iterable[Action], kind: str) -> list[Action]:
    """Actions of one kind (``reward``, ``message``, ``gamification``)."""
    return [a for a in actions if a.kind == kind]


def bet(script: Script, player: str, amount: str, category: str = "slots", **fields: str) -> Script:
    """One bet (no win), on ``game_id`` g1 unless given."""
    return script.add(
        "bet",
        player,
        round_id=f"r{len(script.records)}",
        amount=amount,
        currency=fields.pop("currency", "EUR"),
        game_id=fields.pop("game_id", "g1"),
        game_category=category,
        **fields,
    )
