"""Leaderboards from the player operator and the store equal an independent polars ranking.

The same simulated firehose is (1) folded by the player operator with a leaderboard
configuration, its ``leaderboard_score`` actions written into a leaderboard store (memory,
and the Redis server at ``REDIS_URL``), and (2) aggregated directly from the raw records
with polars. Every board and period must hold the same players with the same scores, in
the same order (score, then who reached it first, then player id).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import orjson
import polars as pl
import pytest
import redis

from operators.engine import PlayerShard
from operators.gamification import load_gamification
from pipeline.decode import decode_batch
from pipeline.records import RawBatch
from pipeline.simulator import SimulatorConfig, simulate
from sinks.leaderboards import LeaderboardStore, MemoryLeaderboardStore, apply_scores
from sinks.leaderboards.redis import RedisLeaderboardStore
from sinks.stores.redis import connect

CONFIG = {
    "settings.yaml": "settings:\n  flush_seconds: 15m\n",
    "leaderboards.yaml": """
leaderboards:
  - {id: daily_wager, period: day, score: real_wager}
  - {id: slots_bets, period: week, categories: [slots], score: bets}
  - {id: slots_big_win, period: week, categories: [slots], score: win_multiplier}
""",
}
Ranking = dict[tuple[str, str], list[tuple[str, int]]]


@pytest.fixture(scope="module")
def records() -> list[bytes]:
    return list(simulate(SimulatorConfig(seed=11, events=40_000, days=10.0)))


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest) -> Iterator[LeaderboardStore]:
    if request.param == "memory":
        yield MemoryLeaderboardStore()
        return
    client = connect(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    prefix = f"pitboss-test:{uuid.uuid4().hex}:"
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"the Redis server is not reachable: {exc}")
    yield RedisLeaderboardStore(client, prefix)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def engine_scores(records: list[bytes], tmp_path: Path, store: LeaderboardStore) -> None:
    for name, text in CONFIG.items():
        (tmp_path / name).write_text(text)
    shard = PlayerShard(rules=[load_gamification(tmp_path)])
    newest = 0
    for i in range(0, len(records), 2000):
        decoded = decode_batch(RawBatch("sim", records[i : i + 2000], list(range(2000))))
        apply_scores(store, shard.process(decoded.events))
        newest = max(newest, decoded.high_mark or 0)
        apply_scores(store, shard.advance(newest - 60))
    apply_scores(store, shard.advance(newest + 8 * 86_400))  # flush every window


def units(text: str | None) -> int:
    return 0 if text is None else int(Decimal(text).scaleb(4))


def polars_ranking(records: list[bytes]) -> Ranking:
    bets, wins = [], []
    for raw in records:
        r = orjson.loads(raw)
        ts = int(datetime.fromisoformat(r["ts"]).timestamp())
        if r["type"] == "bet":
            stake = units(r["amount"])
            bets.append(
                {
                    "player": r["player_id"],
                    "ts": ts,
                    "round": r["round_id"],
                    "stake": stake,
                    "real": stake - min(stake, units(r.get("bonus_amount"))),
                    "category": r["game_category"],
                }
            )
        elif r["type"] == "win":
            wins.append({"round": r["round_id"], "win_ts": ts, "win": units(r["amount"])})
    bet_frame = pl.DataFrame(bets).with_columns(pl.from_epoch("ts", time_unit="s").alias("time"))
    win_frame = pl.DataFrame(wins).with_columns(
        pl.from_epoch("win_ts", time_unit="s").alias("win_time")
    )

    def week(column: str) -> pl.Expr:
        time = pl.col(column)
        return pl.format("{}-W{}", time.dt.iso_year(), time.dt.week().cast(pl.String).str.zfill(2))

    daily = (
        bet_frame.group_by("player", pl.col("time").dt.date().cast(pl.String).alias("period"))
        .agg((pl.col("real").sum() // 100).alias("score"), pl.col("ts").max().alias("at"))
        .filter(pl.col("score") > 0)
        .with_columns(pl.lit("daily_wager").alias("board"))
    )
    slots = bet_frame.filter(pl.col("category") == "slots")
    slot_bets = (
        slots.group_by("player", week("time").alias("period"))
        .agg((pl.len().cast(pl.Int64) * 100).alias("score"), pl.col("ts").max().alias("at"))
        .with_columns(pl.lit("slots_bets").alias("board"))
    )
    multipliers = (
        slots.join(win_frame, on="round")
        .filter(pl.col("win") > 0)
        .with_columns(
            (pl.col("win") * 100 // pl.col("stake")).alias("score"),
            week("win_time").alias("period"),
        )
    )
    best = (
        multipliers.group_by("player", "period")
        .agg(pl.col("score").max())
        .join(multipliers, on=["player", "period", "score"])
        .group_by("player", "period", "score")
        .agg(pl.col("win_ts").min().alias("at"))
        .filter(pl.col("score") > 0)
        .with_columns(pl.lit("slots_big_win").alias("board"))
    )
    columns = ["board", "period", "player", "score", "at"]
    frame = pl.concat([daily.select(columns), slot_bets.select(columns), best.select(columns)])
    ranking: Ranking = {}
    for board, period, player, score, _ in frame.sort(
        ["board", "period", "score", "at", "player"], descending=[False, False, True, False, False]
    ).iter_rows():
        ranking.setdefault((board, period), []).append((player, score))
    return ranking


def test_engine_and_store_rank_players_exactly_as_polars_does(
    records: list[bytes], tmp_path: Path, store: LeaderboardStore
) -> None:
    engine_scores(records, tmp_path, store)
    expected = polars_ranking(records)
    assert len(expected) > 10 and sum(len(rows) for rows in expected.values()) > 200
    for (board, period), rows in expected.items():
        got = [(row.player_id, row.score) for row in store.top(board, period, len(rows) + 5)]
        if board == "daily_wager":
            # A window of bets paid entirely with bonus money scores nothing, so its last
            # bet is not the reach time: compare the scores, and the order by score.
            assert dict(got) == dict(rows), (board, period)
            assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
        else:
            assert got == rows, (board, period)
    for board in ("daily_wager", "slots_bets", "slots_big_win"):
        assert store.periods(board) == sorted(
            {period for b, period in expected if b == board}, reverse=True
        )
