"""A tournament ends while the job crashes and restarts: prizes are paid once, rightly.

The player operator, the Redis leaderboard store, the settler and the delivery ledger
(the Redis decision ledger) play their real parts. The job is killed during the
tournament's final minute, after some of that minute's scores reached the store, and
restarts from its last snapshot (Bytewax recovery is at-least-once: the events after the
snapshot are processed again). The settler runs in the restarted job, and once more after
another restart. Every score is counted once and every prize is paid once, to the players
who really finished first.
"""

from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import redis

from operators.actions import Action, derive_action_id
from operators.engine import PlayerShard
from operators.gamification import GamificationRules, load_gamification
from sinks.leaderboards import TournamentSettler, apply_scores
from sinks.leaderboards.redis import RedisLeaderboardStore
from sinks.stores.redis import RedisDecisionLedger, connect
from tests.support.scenario import Script, epoch

pytestmark = pytest.mark.integration

TOURNAMENT = """
tournaments:
  - id: weekly_race
    period: week
    score: real_wager
    settle_after: 5m
    prizes:
      - {rank: 1, reward: {type: bonus_credit, amount: "500.00", wagering: 10}}
      - {rank: 2, reward: {type: bonus_credit, amount: "250.00", wagering: 10}}
      - {rank: 3, reward: {type: bonus_credit, amount: "100.00", wagering: 10}}
"""
END = datetime(2026, 3, 9, tzinfo=UTC)  # Monday 00:00: the end of ISO week 10
LATENESS = 60


@pytest.fixture
def redis_prefix() -> Iterator[tuple[redis.Redis, str]]:
    """A client of the Redis server at REDIS_URL and a key prefix of this test's own."""
    client = connect(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    prefix = f"pitboss-test:{uuid.uuid4().hex}:"
    yield client, prefix
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def rules(tmp_path: Path) -> GamificationRules:
    (tmp_path / "settings.yaml").write_text("settings:\n  flush_seconds: 15m\n")
    (tmp_path / "tournaments.yaml").write_text(TOURNAMENT)
    return load_gamification(tmp_path)


def week_of_bets() -> tuple[Script, int]:
    """The week's bets, and the index of the first event of the final minute."""
    s = Script()
    for player in ("p1", "p2", "p3", "p4"):
        s.register(player)
    stakes = {"p1": "40.00", "p2": "35.00", "p3": "20.00", "p4": "5.00"}
    for day in range(7):
        for player, stake in stakes.items():
            s.at(days=day, hours=2 + day % 3).round(player, stake, "0", category="live")
    s.now = END.replace(day=8, hour=23, minute=59)  # Sunday 23:59
    final_minute = len(s.records)
    s.after(seconds=10).round("p3", "150.00", "0", category="live")  # p3 takes the lead
    s.after(seconds=20).round("p1", "15.00", "0", category="live")
    s.after(seconds=20).round("p2", "500.00", "0", category="live")  # p2 wins it at the end
    s.now = END.replace(minute=10)
    s.login("p4")  # time moves on past the end and settle_after
    return s, final_minute


def expected_totals(s: Script) -> dict[str, int]:
    totals: dict[str, int] = {}
    for record in s.records:
        if record["type"] == "bet" and record["ts"] < END.isoformat():
            cents = int(Decimal(record["amount"]) * 100)
            totals[record["player_id"]] = totals.get(record["player_id"], 0) + cents
    return totals


def run(shard: PlayerShard, events: list[tuple[int, object]], chunk: int = 3) -> list[Action]:
    actions: list[Action] = []
    for i in range(0, len(events), chunk):
        part = events[i : i + chunk]
        actions += shard.process(part)  # type: ignore[arg-type]
        actions += shard.advance(max(ts for ts, _ in part) - LATENESS)
    return actions


def test_a_crash_during_the_final_minute_still_pays_each_prize_once_to_the_right_players(
    redis_prefix: tuple[redis.Redis, str], rules: GamificationRules
) -> None:
    client, prefix = redis_prefix
    store = RedisLeaderboardStore(client, prefix)
    ledger = RedisDecisionLedger(client, prefix)
    script, final_minute = week_of_bets()
    events = script.events()
    tournament = rules.tournaments[0]

    # The first run: snapshot just before the final minute, then die in the middle of it,
    # after the scores flushed so far (and part of the final minute's) reached the store.
    first = PlayerShard(rules=[rules])
    apply_scores(store, run(first, events[:final_minute]))
    snapshot = pickle.dumps(first)
    apply_scores(store, run(first, events[final_minute : final_minute + 2]))
    apply_scores(store, first.advance(epoch(END) + 30))  # the end's flush reached the store
    del first

    # The restart: restore the snapshot and process everything after it again.
    restored: PlayerShard = pickle.loads(snapshot).with_rules([rules])
    apply_scores(store, run(restored, events[final_minute:]))
    watermark = restored.watermark
    assert watermark >= epoch(END) + 300
    paid = TournamentSettler(store, [tournament]).due(watermark)
    first_claims = [ledger.claim(a.action_id, a.decision) for a in paid]

    # The scores are the real totals, counted once despite the replay.
    totals = expected_totals(script)
    standings = store.top("weekly_race", "2026-W10", 10)
    assert {s.player_id: s.score for s in standings} == totals
    assert [s.player_id for s in standings] == ["p2", "p1", "p3", "p4"]

    # The prizes go to the top three, each decided once.
    prizes = [a for a in paid if a.kind == "reward"]
    assert [(a.player_id, a.payload["amount"], a.payload["rank"]) for a in prizes] == [
        ("p2", "500.00", 1),
        ("p1", "250.00", 2),
        ("p3", "100.00", 3),
    ]
    assert [a.action_id for a in prizes] == [
        derive_action_id("tournament:weekly_race", p, "2026-W10:prize") for p in ("p2", "p1", "p3")
    ]
    assert first_claims == [None] * len(paid)

    # Another restart after the settlement: the same prizes again, all already decided.
    again = TournamentSettler(store, [tournament]).due(watermark + 3600)
    assert [a.action_id for a in again] == [a.action_id for a in paid]
    assert all(ledger.claim(a.action_id, "sent") == "sent" for a in again)
