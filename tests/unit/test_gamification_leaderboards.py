"""Leaderboard scores from the player operator: periods, score rules, idempotent writes."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.actions import Action, derive_action_id
from operators.engine import PlayerShard
from operators.gamification import GamificationRules, load_gamification
from operators.gamification.periods import Calendar
from sinks.leaderboards import MemoryLeaderboardStore, apply_scores
from tests.support.scenario import Script, epoch
from tests.unit.test_gamification_kit import bet, configure, named, replay

POINTS = """
points:
  rules:
    - {id: wager, event: bet, per: 1, points: 1}
"""
BOARDS = """
leaderboards:
  - {id: daily_wager, period: day, score: real_wager}
  - {id: slots_bets, period: week, categories: [slots], score: bets}
  - {id: big_win, period: week, categories: [slots], score: win_multiplier}
  - {id: vip_points, period: week, score: points, eligible: state.deposit_count >= 1}
  - {id: big_stakes, period: day, score: wager, when: event.amount >= 5}
"""


@pytest.fixture
def rules(tmp_path: Path) -> GamificationRules:
    return configure(tmp_path, points=POINTS, leaderboards=BOARDS)


def scores(actions: list[Action]) -> list[tuple[str, str, str, int]]:
    return [
        (a.player_id, entry["board"], entry["period"], entry["delta"])
        for a in named(actions, "leaderboard_score")
        for entry in a.payload["scores"]
    ]


def test_a_flush_sends_each_scored_board_in_one_leaderboard_score(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1").deposit("p1").after(minutes=1)
    bet(s, "p1", "10.00", bonus_amount="4.00").after(seconds=30)
    bet(s, "p1", "2.50", category="live").after(seconds=30)
    last_bet = epoch(s.now)
    bet(s, "p1", "1.00").after(minutes=1).add("logout", "p1")
    (action,) = named(replay(rules, s), "leaderboard_score")
    assert action.campaign_id == "leaderboards"
    assert action.action_id == derive_action_id("leaderboards", "p1", "flush:1")
    assert action.payload["scores"] == [
        {"board": "daily_wager", "period": "2026-03-02", "delta": 950, "at": last_bet},
        {"board": "slots_bets", "period": "2026-W10", "delta": 200, "at": last_bet},
        {"board": "vip_points", "period": "2026-W10", "delta": 950, "at": last_bet},
        {"board": "big_stakes", "period": "2026-03-02", "delta": 1000, "at": last_bet - 60},
    ]


def test_a_daily_board_splits_a_session_at_midnight(rules: GamificationRules) -> None:
    s = Script(datetime(2026, 3, 2, 23, 0, tzinfo=UTC)).register("p1")
    s.now = datetime(2026, 3, 2, 23, 50, tzinfo=UTC)
    bet(s, "p1", "3.00")
    s.now = datetime(2026, 3, 3, 0, 10, tzinfo=UTC)
    bet(s, "p1", "4.00").after(minutes=1).add("logout", "p1")
    daily = [x for x in scores(replay(rules, s)) if x[1] == "daily_wager"]
    assert daily == [
        ("p1", "daily_wager", "2026-03-02", 300),
        ("p1", "daily_wager", "2026-03-03", 400),
    ]


def test_a_best_win_board_sends_only_improvements_within_the_period(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1")
    s.after(minutes=1).round("p1", "1.00", "5.00").after(minutes=1).add("logout", "p1")  # 5x
    s.after(minutes=1).round("p1", "1.00", "3.00").after(minutes=1).add("logout", "p1")  # 3x
    s.after(minutes=1).round("p1", "2.00", "20.00").after(minutes=1).add("logout", "p1")  # 10x
    s.after(minutes=1).round("p1", "1.00", "2.00", category="live").add("logout", "p1")  # live
    best = [x for x in scores(replay(rules, s)) if x[1] == "big_win"]
    assert best == [("p1", "big_win", "2026-W10", 500), ("p1", "big_win", "2026-W10", 500)]


def test_an_ineligible_player_is_not_scored_on_the_board(rules: GamificationRules) -> None:
    s = Script().register("p1").after(minutes=1)  # no deposit
    bet(s, "p1", "10.00").after(minutes=1).add("logout", "p1")
    assert "vip_points" not in {x[1] for x in scores(replay(rules, s))}


def test_writing_the_scores_twice_counts_them_once_and_earlier_reach_wins_a_tie(
    rules: GamificationRules,
) -> None:
    s = Script().register("a").register("b").after(minutes=1)
    bet(s, "b", "10.00").after(minutes=1)  # b reaches 10.00 first
    bet(s, "a", "6.00").after(minutes=1)
    bet(s, "a", "4.00").after(minutes=1)
    s.add("logout", "a").add("logout", "b")
    actions = replay(rules, s)
    store = MemoryLeaderboardStore()
    written = apply_scores(store, actions)
    assert apply_scores(store, actions) == 0  # a replay changes nothing
    assert written == 2 * 3  # daily, slots bets, big stakes (no win; no deposit: no VIP)
    top = store.top("daily_wager", "2026-03-02", 10)
    assert [(row.player_id, row.score) for row in top] == [("b", 1000), ("a", 1000)]


@st.composite
def sessions(draw: st.DrawFn) -> Script:
    """Players betting, winning and logging out at random times, in time order."""
    s = Script()
    for player in range(3):
        s.register(f"p{player}")
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(0, 2),
                st.sampled_from(["slots", "live", "logout", "deposit"]),
                st.integers(1, 4 * 3600),
                st.integers(1, 500),
            ),
            min_size=1,
            max_size=40,
        )
    )
    for player, what, gap, cents in steps:
        s.after(seconds=gap)
        pid = f"p{player}"
        if what == "logout":
            s.add("logout", pid)
        elif what == "deposit":
            s.deposit(pid)
        else:
            s.round(pid, f"{cents / 100:.2f}", f"{cents * (gap % 7) / 100:.2f}", category=what)
    return s


@settings(max_examples=40, deadline=None)
@given(script=sessions(), chunk=st.integers(1, 15), lag=st.integers(0, 2 * 3600))
def test_scores_do_not_depend_on_batching_or_watermark_lag(
    tmp_path_factory: pytest.TempPathFactory, script: Script, chunk: int, lag: int
) -> None:
    rules = configure(tmp_path_factory.mktemp("cfg"), points=POINTS, leaderboards=BOARDS)
    end = epoch(script.now) + 8 * 86_400
    reference = replay(rules, script, final=end)
    shard = PlayerShard(rules=[rules])
    events = script.events()
    got: list[Action] = []
    for i in range(0, len(events), chunk):
        part = events[i : i + chunk]
        got += shard.process(part)
        got += shard.advance(max(ts for ts, _ in part) - lag)
    got += shard.advance(end)
    assert sorted(a.model_dump_json() for a in got) == sorted(
        a.model_dump_json() for a in reference
    )
    assert len({a.action_id for a in got}) == len(got)


def test_one_rule_set_serves_several_worker_threads_at_once() -> None:
    shipped = load_gamification(Path(__file__).resolve().parents[2] / "config" / "gamification")
    scripts = []
    for worker in range(2):
        s = Script()
        for n in range(3):
            s.register(f"w{worker}p{n}").deposit(f"w{worker}p{n}")
        for step in range(600):
            player = f"w{worker}p{step % 3}"
            s.after(seconds=7).round(player, "1.50", "0" if step % 4 else "200.00")
            if step % 50 == 49:
                s.add("logout", player)
        scripts.append(s)
    alone = [sorted(a.model_dump_json() for a in replay(shipped, s)) for s in scripts]
    together: list[list[str]] = [[], []]

    def work(worker: int) -> None:
        actions = replay(shipped, scripts[worker], chunk=1)
        together[worker] = sorted(a.model_dump_json() for a in actions)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for _ in range(3):
            threads = [threading.Thread(target=work, args=(w,)) for w in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert together == alone
    finally:
        sys.setswitchinterval(interval)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["day", "week", "month"]),
    zone_name=st.sampled_from(["UTC", "Europe/Malta", "America/Sao_Paulo", "Asia/Kolkata"]),
    times=st.lists(st.integers(1_700_000_000, 1_800_000_000), min_size=1, max_size=60),
)
def test_a_calendar_answers_jumping_queries_as_a_fresh_one_would(
    kind: str, zone_name: str, times: list[int]
) -> None:
    """The calendar remembers recent periods: queries that jump back and forth between
    them (and onto their edges) get the period a calendar with no memory computes."""
    remembering = Calendar(kind, zone_name)  # type: ignore[arg-type]
    queries: list[int] = []
    for t in times:
        span = Calendar(kind, zone_name)._compute(t)  # type: ignore[arg-type]
        queries += [t, span.start, span.end - 1, span.end, span.start - 1]
    queries += times[::-1]
    for ts in queries:
        expected = Calendar(kind, zone_name)._compute(ts)  # type: ignore[arg-type]
        assert remembering.span(ts) == expected
        assert expected.start <= ts < expected.end
