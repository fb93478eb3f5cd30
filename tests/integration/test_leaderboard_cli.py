"""`pitboss leaderboard NAME` reads the standings the job keeps in Redis."""

from __future__ import annotations

import os

import pytest
import redis

from pipeline.cli import main
from sinks.leaderboards.redis import RedisLeaderboardStore

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return redis_prefix


def test_the_leaderboard_command_prints_the_top_players_and_one_players_rank(
    prefix: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
    store = RedisLeaderboardStore(redis.Redis.from_url(url), prefix)
    for n, (player, score) in enumerate([("p1", 500), ("p2", 900), ("p3", 100), ("p2", 50)]):
        store.add("daily_wager", "2026-03-02", player, score, f"t{n}", at=1_000 + n)
    monkeypatch.setenv("PITBOSS_REDIS_URL", url)
    monkeypatch.setenv("PITBOSS_REDIS_PREFIX", prefix)
    assert main(["leaderboard", "daily_wager", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert out.index("p2") < out.index("p1") and "p3" not in out
    assert main(["leaderboard", "daily_wager", "--player", "p3"]) == 0
    assert "p3" in capsys.readouterr().out


def test_without_redis_the_command_says_where_the_standings_are(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PITBOSS_REDIS_URL", raising=False)
    assert main(["leaderboard", "daily_wager"]) == 2
    assert "/leaderboards/daily_wager" in capsys.readouterr().err
