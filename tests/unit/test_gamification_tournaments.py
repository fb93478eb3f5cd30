"""Tournaments: settlement by rank with tie rules, and paying each ended period once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from operators.actions import derive_action_id
from operators.gamification import Board, placements, settle
from operators.gamification.tournaments import ended_periods
from sinks.leaderboards import MemoryLeaderboardStore, Standing, TournamentSettler
from sinks.stores.memory import MemoryDecisionLedger
from tests.unit.test_gamification_kit import configure

TOURNAMENTS = """
tournaments:
  - id: race
    period: week
    timezone: Europe/Malta
    score: real_wager
    min_score: 1
    prizes:
      - {rank: 1, reward: {type: cash, amount: "100.00"}}
      - {rank: 2, reward: {type: cash, amount: "50.00"}}
      - {rank: 3, reward: {type: cash, amount: "20.00"}}
  - id: split_race
    period: week
    score: real_wager
    tie: split
    prizes:
      - {rank: 1, reward: {type: cash, amount: "100.00"}}
      - {rank: 2, reward: {type: cash, amount: "50.00"}}
      - {rank: 3, reward: {type: cash, amount: "20.00"}}
"""
T = 1_772_900_000  # some time in week 10 of 2026


@pytest.fixture
def boards(tmp_path: Path) -> dict[str, Board]:
    rules = configure(tmp_path, leaderboards=TOURNAMENTS)
    return {board.id: board for board in rules.tournaments}


def standings(*rows: tuple[str, int, int]) -> list[Standing]:
    return [Standing(0, player, score, reached) for player, score, reached in rows]


def paid(board: Board, rows: list[Standing]) -> list[tuple[str, int, int, str | None]]:
    return [
        (p.player_id, p.rank, p.tied, None if p.reward is None else p.reward.payload["amount"])
        for p in placements(board, rows)
    ]


def test_on_equal_scores_the_player_who_got_there_first_takes_the_higher_prize(
    boards: dict[str, Board],
) -> None:
    rows = standings(("a", 50_000, T + 10), ("b", 50_000, T + 5), ("c", 30_000, T), ("d", 90, T))
    assert paid(boards["race"], rows) == [
        ("b", 1, 1, "100.00"),
        ("a", 2, 1, "50.00"),
        ("c", 3, 1, "20.00"),
    ]  # d is below the minimum score of 1.00


def test_a_tie_across_the_prize_cut_splits_what_is_left_of_the_table(
    boards: dict[str, Board],
) -> None:
    rows = standings(("a", 900, T), ("b", 500, T), ("c", 500, T + 1), ("d", 500, T + 2))
    rows += standings(("e", 100, T))
    assert paid(boards["split_race"], rows) == [
        ("a", 1, 1, "100.00"),
        ("b", 2, 3, "23.33"),  # (50 + 20) / 3, rounded down to the cent
        ("c", 2, 3, "23.33"),
        ("d", 2, 3, "23.33"),
    ]


def test_a_tie_at_the_top_shares_the_first_two_prizes(boards: dict[str, Board]) -> None:
    rows = standings(("a", 900, T), ("b", 900, T + 99), ("c", 100, T))
    assert paid(boards["split_race"], rows) == [
        ("a", 1, 2, "75.00"),
        ("b", 1, 2, "75.00"),
        ("c", 3, 1, "20.00"),
    ]


def test_settlement_intents_have_ids_derived_from_tournament_period_and_player(
    boards: dict[str, Board],
) -> None:
    board = boards["race"]
    period = board.span(T)
    intents = settle(board, period, standings(("a", 500, T), ("b", 400, T)))
    assert [(i.kind.value, i.player_id, i.occurrence) for i in intents] == [
        ("gamification", "a", "2026-W10:finished"),
        ("reward", "a", "2026-W10:prize"),
        ("gamification", "b", "2026-W10:finished"),
        ("reward", "b", "2026-W10:prize"),
    ]
    finished, prize = intents[0], intents[1]
    assert finished.payload == {
        "event": "tournament_finished",
        "tournament": "race",
        "name": "Race",
        "period": "2026-W10",
        "rank": 1,
        "score": "5.00",
        "tied": 1,
        "prize": {"reward_type": "cash", "amount": "100.00", "currency": "EUR"},
    }
    assert prize.cost == 1_000_000 and prize.currency == "EUR" and prize.channel == "wallet"
    assert prize.decided_at == period.end  # decided in event time, at the end
    assert settle(board, period, standings(("b", 400, T), ("a", 500, T))) == intents


def test_a_weekly_tournament_ends_at_local_midnight_and_waits_for_settle_after(
    boards: dict[str, Board],
) -> None:
    board = boards["race"]  # Malta is UTC+1 in March; settle_after defaults to 5 minutes
    end = int(datetime(2026, 3, 8, 23, 0, tzinfo=UTC).timestamp())
    assert [p.id for p in ended_periods(board, end + 299, 7 * 86_400)] == []  # W09: too old
    assert [p.id for p in ended_periods(board, end + 300, 7 * 86_400)] == ["2026-W10"]
    assert [p.id for p in ended_periods(board, end + 300, 14 * 86_400)] == [
        "2026-W09",
        "2026-W10",
    ]


def test_settling_again_after_a_crash_pays_the_same_prizes_once(boards: dict[str, Board]) -> None:
    board = boards["race"]
    store = MemoryLeaderboardStore()
    for player, score in (("a", 9_000), ("b", 7_000), ("c", 5_000), ("d", 3_000)):
        store.add("race", "2026-W10", player, score, f"t-{player}", at=T)
    end = board.span(T).end
    ledger = MemoryDecisionLedger()
    first = TournamentSettler(store, [board]).due(end + 300)
    assert [a.action_id for a in first if a.kind == "reward"] == [
        derive_action_id("tournament:race", player, "2026-W10:prize") for player in "abc"
    ]
    assert [ledger.claim(a.action_id, a.decision) for a in first] == [None] * 6
    # A late score arrives, then the job restarts: a new settler, the same store.
    store.add("race", "2026-W10", "d", 10_000, "t-late", at=end - 1)
    again = TournamentSettler(store, [board]).due(end + 400)
    assert [a.model_dump() for a in again] == [a.model_dump() for a in first]
    assert all(ledger.claim(a.action_id, a.decision) == "sent" for a in again)  # deduped
    assert TournamentSettler(store, [board]).due(end + 400) == again


def test_a_settler_emits_a_period_once_per_process(boards: dict[str, Board]) -> None:
    board = boards["race"]
    store = MemoryLeaderboardStore()
    store.add("race", "2026-W10", "a", 500, "t1", at=T)
    settler = TournamentSettler(store, [board])
    end = board.span(T).end
    assert len(settler.due(end + 300)) == 2
    assert settler.due(end + 600) == []
    assert store.settlement("race", "2026-W10") is not None


def test_a_tournament_without_scores_is_settled_with_nobody_paid(boards: dict[str, Board]) -> None:
    board = boards["race"]
    store = MemoryLeaderboardStore()
    end = board.span(T).end
    assert TournamentSettler(store, [board]).due(end + 300) == []
    assert store.settlement("race", "2026-W10") is not None


def test_a_settler_asked_all_the_time_settles_at_the_first_watermark_past_settle_after(
    boards: dict[str, Board],
) -> None:
    """The settler skips the calls between period ends; it must not skip the one that
    matters (the race settles 300 s after its week ends), nor pay twice."""
    board = boards["race"]
    store = MemoryLeaderboardStore()
    store.add("race", "2026-W10", "a", 500, "t1", at=T)
    settler = TournamentSettler(store, [board])
    end = board.span(T).end
    asked = range(end - 86_400, end + 3_600, 7)
    paid_at = [watermark for watermark in asked if settler.due(watermark)]
    assert paid_at == [min(w for w in asked if w >= end + 300)]
