"""Badges: one-off and repeatable, awarded once per occurrence, with stable action ids."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.actions import Action, derive_action_id
from operators.expressions import compile_condition
from operators.gamification import GamificationRules
from operators.gamification.context import Schemas, Turn
from operators.gamification.rules import multiplier_floor
from operators.gamification.state import GamState
from operators.player_state import BET_COUNT, PlayerState
from tests.support import scenario
from tests.support.scenario import Script, epoch
from tests.unit.test_gamification_kit import bet, by_kind, configure, named, replay

POINTS = """
points:
  rules:
    - id: wager
      event: bet
      per: 1
      points: 1
"""
BADGES = """
badges:
  - id: first_deposit
    event: deposit
    when: state.deposit_count == 1
    points: 10
    reward: {type: bonus_credit, amount: "5.00", wagering: 10}
  - id: spins_3
    event: bet
    when: state.bet_count >= 3
  - id: login_streak_7
    event: login
    when: gam.login_streak >= 7
  - id: big_win
    event: win
    when: multiplier >= 100
    repeat: always
  - id: weekend_login
    event: login
    when: local.weekend
    repeat: weekly
  - id: twenty_points
    event: points_awarded
    when: gam.points >= 20
"""


@pytest.fixture
def rules(tmp_path: Path) -> GamificationRules:
    return configure(tmp_path, points=POINTS, badges=BADGES)


def badge_ids(actions: list[Action]) -> list[str]:
    return [a.payload["badge"] for a in named(actions, "badge_awarded")]


def awarded_badges(actions: list[Action], badge: str) -> list[Action]:
    return [a for a in named(actions, "badge_awarded") if a.payload["badge"] == badge]


def test_the_first_deposit_badge_is_awarded_once_with_its_reward_and_points(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1").after(minutes=1).deposit("p1").after(minutes=1).deposit("p1")
    s.after(minutes=1).add("logout", "p1")
    actions = replay(rules, s)
    (badge,) = named(actions, "badge_awarded")
    assert badge.payload == {
        "event": "badge_awarded",
        "badge": "first_deposit",
        "name": "First Deposit",
        "times": 1,
        "points": "10.00",
    }
    assert badge.action_id == derive_action_id("badge:first_deposit", "p1", "once")
    assert badge.event_id == s.records[1]["event_id"]
    (reward,) = by_kind(actions, "reward")
    assert reward.action_id == derive_action_id("badge:first_deposit", "p1", "once:reward")
    assert reward.payload["amount"] == "5.00" and reward.cost == 50_000
    (points,) = named(actions, "points_awarded")
    assert points.payload["bonus"] == "10.00" and points.payload["points"] == "10.00"


def test_a_bet_count_badge_comes_with_the_third_bet_and_never_again(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1")
    for _ in range(5):
        bet(s.after(seconds=5), "p1", "0.10")
    (badge,) = named(replay(rules, s), "badge_awarded")
    assert badge.payload["badge"] == "spins_3"
    assert badge.event_id == s.records[3]["event_id"]


def test_a_seven_day_login_streak_counts_local_days_and_restarts_after_a_gap(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1")
    for day in range(6):  # six days in a row, twice on the first
        s.at(days=day, hours=1).login("p1")
        if day == 0:
            s.after(hours=2).login("p1")
    for day in range(7, 14):  # a day missed: the streak starts again
        s.at(days=day, hours=1).login("p1")
    awarded = [
        a
        for a in named(replay(rules, s), "badge_awarded")
        if a.payload["badge"] == ("login_streak_7")
    ]
    assert [a.event_id for a in awarded] == [s.records[-1]["event_id"]]


def test_a_repeatable_big_win_badge_is_awarded_once_per_winning_round(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1")
    s.after(seconds=5).round("p1", "1.00", "100.00")  # 100x
    s.after(seconds=5).round("p1", "2.00", "99.00")  # 49.5x
    s.after(seconds=5).round("p1", "0.50", "0")  # lost
    s.after(seconds=5).round("p1", "0.20", "30.00")  # 150x
    awarded = [
        a for a in named(replay(rules, s), "badge_awarded") if a.payload["badge"] == "big_win"
    ]
    win_ids = [r["event_id"] for r in s.records if r["type"] == "win"]
    assert [(a.event_id, a.payload["times"]) for a in awarded] == [(win_ids[0], 1), (win_ids[3], 2)]
    assert [a.action_id for a in awarded] == [
        derive_action_id("badge:big_win", "p1", win_ids[0]),
        derive_action_id("badge:big_win", "p1", win_ids[3]),
    ]


def test_a_win_whose_bet_was_never_seen_has_no_multiplier_and_no_badge(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1").after(seconds=5)
    s.add("win", "p1", round_id="unknown", amount="500.00", currency="EUR")
    assert "big_win" not in badge_ids(replay(rules, s))


def test_a_weekly_badge_is_awarded_at_most_once_per_iso_week(rules: GamificationRules) -> None:
    s = Script().register("p1")  # Monday 2026-03-02
    s.at(days=5).login("p1").at(days=6).login("p1")  # Saturday, Sunday: week 10
    s.at(days=12).login("p1")  # Saturday of week 11
    awarded = awarded_badges(replay(rules, s), "weekend_login")
    assert [a.action_id for a in awarded] == [
        derive_action_id("badge:weekend_login", "p1", "2026-W10"),
        derive_action_id("badge:weekend_login", "p1", "2026-W11"),
    ]


def test_a_badge_on_points_awarded_is_checked_when_points_are_paid(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1").after(minutes=1)
    bet(s, "p1", "15.00").after(minutes=1).add("logout", "p1")
    bet(s.after(minutes=1), "p1", "6.00").after(minutes=1).add("logout", "p1")
    actions = replay(rules, s)
    (badge,) = awarded_badges(actions, "twenty_points")
    assert epoch(badge.decided_at) == epoch(s.now)
    assert badge.action_id == derive_action_id("badge:twenty_points", "p1", "once")


def test_replaying_the_same_events_awards_the_same_badges_with_the_same_ids(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1").deposit("p1")
    for i in range(6):
        s.at(days=i, hours=2).login("p1").after(seconds=5).round("p1", "1.00", "150.00")
    first = replay(rules, s)
    again = replay(rules, s, chunk=3)
    ids = sorted(a.action_id for a in named(first, "badge_awarded"))
    assert ids == sorted(a.action_id for a in named(again, "badge_awarded"))
    assert len(ids) == len(set(ids)) == 1 + 1 + 6 + 1  # deposit, spins, 6 big wins, weekend


FLOORS = {
    "multiplier >= 100": 10_000,
    "multiplier > 99.995": 10_000,
    "12.5 <= multiplier": 1_250,
    "local.weekend and 3 < multiplier": 300,
    "multiplier >= 2 and state.bet_count > 1 and multiplier >= 7": 700,
    "multiplier >= 50 or state.bet_count > 3": None,  # the other side may hold
    "not multiplier < 10": None,  # true, but not said plainly
    "multiplier <= 5": None,  # a ceiling, not a floor
    "multiplier >= -1": None,
}


@settings(max_examples=300, deadline=None)
@given(
    source=st.sampled_from(sorted(FLOORS)),
    hundredths=st.integers(min_value=0, max_value=20_000),
    bets=st.integers(min_value=0, max_value=5),
    day_no=st.integers(min_value=0, max_value=6),
)
def test_below_its_multiplier_floor_a_win_condition_never_holds(
    source: str, hundredths: int, bets: int, day_no: int
) -> None:
    # The floor lets a won round skip the plan's rules without evaluating them: it must
    # be exact for the plain forms and never claim a floor a condition does not have.
    condition = compile_condition(source, Schemas({}).on_events(("win",)))
    floor = multiplier_floor(condition)
    assert floor == FLOORS[source]
    state = PlayerState("p1", 0)
    state.n[BET_COUNT] = bets
    turn = Turn().begin(state, GamState(), scenario.day(day_no) + 12 * 3600, [], None)
    turn.multiplier = hundredths
    if floor is not None and hundredths < floor:
        assert not condition.evaluate(turn)
    if source == "multiplier >= 100":
        assert condition.evaluate(turn) == (hundredths >= 10_000)  # tight at the boundary
