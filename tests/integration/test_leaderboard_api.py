"""The leaderboard read path: the CLI text and the HTTP endpoint on loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.leaderboard_api import (
    LeaderboardNotFound,
    LeaderboardServer,
    leaderboard_command,
    serve_leaderboards,
)
from sinks.leaderboards import MemoryLeaderboardStore

pytestmark = pytest.mark.integration
T = 1_772_442_000  # 2026-03-02 09:00 UTC
AT = "2026-03-02T09:00:"


@pytest.fixture
def store() -> MemoryLeaderboardStore:
    board = MemoryLeaderboardStore()
    board.add("daily_wager", "2026-03-01", "p9", 99_900, "old", at=T - 86_400)
    for i, (player, score) in enumerate([("p1", 12_050), ("p22", 98_000), ("p3", 12_050)]):
        board.add("daily_wager", "2026-03-02", player, score, f"t{i}", at=T + i)
    return board


@pytest.fixture
def server(store: MemoryLeaderboardStore) -> Iterator[LeaderboardServer]:
    running = serve_leaderboards(store, 0, names=["daily_wager", "weekly_points"])
    yield running
    running.close()


def get(server: LeaderboardServer, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_command_prints_the_newest_period_and_the_players_own_rank(
    store: MemoryLeaderboardStore,
) -> None:
    assert leaderboard_command(store, "daily_wager", top=2, player="p3") == "\n".join(
        [
            "daily_wager  2026-03-02  (3 players)",
            "rank  player   score",
            "   1  p22     980.00",
            "   2  p1      120.50",
            "p3: rank 3, score 120.50",
        ]
    )


def test_the_command_reads_an_older_period_and_says_when_a_player_has_no_score(
    store: MemoryLeaderboardStore,
) -> None:
    text = leaderboard_command(store, "daily_wager", top=5, player="p1", period="2026-03-01")
    assert text.splitlines()[2:] == ["   1  p9      999.00", "p1: no score in 2026-03-01"]


def test_the_command_refuses_an_unknown_board_or_a_bad_top(store: MemoryLeaderboardStore) -> None:
    with pytest.raises(LeaderboardNotFound, match="'monthly' has no scores"):
        leaderboard_command(store, "monthly")
    with pytest.raises(ValueError, match="top must be an integer from 1 to 1000"):
        leaderboard_command(store, "daily_wager", top=0)


def test_the_endpoint_returns_the_same_standings_as_json(server: LeaderboardServer) -> None:
    status, body = get(server, "/leaderboards/daily_wager?top=2&player=p3")
    assert status == 200
    assert body == {
        "board": "daily_wager",
        "period": "2026-03-02",
        "players": 3,
        "top": [
            {
                "rank": 1,
                "player_id": "p22",
                "score": "980.00",
                "reached_at": "2026-03-02T09:00:01Z",
            },
            {"rank": 2, "player_id": "p1", "score": "120.50", "reached_at": "2026-03-02T09:00:00Z"},
        ],
        "player": {
            "rank": 3,
            "player_id": "p3",
            "score": "120.50",
            "reached_at": AT + "02Z",
        },
    }


def test_the_endpoint_lists_the_boards_and_answers_errors_with_their_status(
    server: LeaderboardServer,
) -> None:
    assert get(server, "/leaderboards") == (200, {"boards": ["daily_wager", "weekly_points"]})
    assert get(server, "/leaderboards/weekly_points")[0] == 404
    assert get(server, "/leaderboards/daily_wager?period=2025-01-01")[0] == 404
    assert get(server, "/leaderboards/daily_wager?top=many")[0] == 400
    assert get(server, "/leaderboards/daily_wager?top=5000")[0] == 400
    assert get(server, "/leaderboards/daily%20wager")[0] == 400
    assert get(server, "/elsewhere")[0] == 404
