"""Missions: objectives, time limits (the expiry boundary), sequence, recurrence, opt-in."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from operators.actions import Action, derive_action_id
from operators.gamification import GamificationRules
from tests.support.scenario import T0, Script, epoch
from tests.unit.test_gamification_kit import bet, by_kind, configure, named, replay

WARMUP = """
missions:
  - id: warmup
    time_limit: 1h
    objectives:
      - id: spins
        event: bet
        categories: [slots]
        target: 3
      - id: deposit
        event: deposit
        measure: amount
        target: 50
    points: 5
    reward: {type: free_spins, count: 5, value_per_spin: "0.10"}
    message: {template_id: mission_complete}
"""


def warmup(tmp_path: Path) -> GamificationRules:
    return configure(tmp_path, missions=WARMUP)


def three_spins_then_deposit_at(seconds_after_start: int) -> Script:
    s = Script().register("p1")  # the mission starts with the player's first event
    for _ in range(3):
        bet(s.after(seconds=10), "p1", "1.00")
    s.at(seconds=seconds_after_start).deposit("p1", "50.00")
    return s


def kinds(actions: list[Action]) -> list[str]:
    return [a.payload.get("event") or a.kind for a in actions]


def test_completing_every_objective_in_time_completes_the_mission(tmp_path: Path) -> None:
    s = three_spins_then_deposit_at(3599)
    actions = replay(warmup(tmp_path), s)
    assert kinds(actions) == [
        "mission_started",
        "mission_progress",  # spins 3/3
        "mission_completed",
        "reward",
        "message",
    ]
    started, progress, completed, reward, message = actions
    assert started.payload["ends_at"] == epoch(T0) + 3600
    assert progress.payload == {
        "event": "mission_progress",
        "mission": "warmup",
        "instance": "once",
        "objective": "spins",
        "completed_objectives": 1,
        "objectives": 2,
    }
    assert completed.event_id == s.records[-1]["event_id"]
    assert completed.action_id == derive_action_id("mission:warmup", "p1", "once:completed")
    assert reward.payload["reward_type"] == "free_spins"
    assert message.payload["template_id"] == "mission_complete"


def test_bets_in_other_game_categories_do_not_count_towards_a_category_objective(
    tmp_path: Path,
) -> None:
    s = Script().register("p1")
    for category in ("live", "table", "sports", "other", "slots", "live", "slots"):
        bet(s.after(seconds=10), "p1", "1.00", category)
    s.after(seconds=10).deposit("p1", "50.00")
    actions = replay(warmup(tmp_path), s)
    assert named(actions, "mission_completed") == []  # two slots spins of three
    bet(s.after(seconds=10), "p1", "1.00", "slots")
    actions = replay(warmup(tmp_path), s)
    (completed,) = named(actions, "mission_completed")
    assert completed.event_id == s.records[-1]["event_id"]


def test_a_mission_expiring_one_second_before_the_last_objective_is_expired_not_completed(
    tmp_path: Path,
) -> None:
    s = three_spins_then_deposit_at(3601)
    actions = replay(warmup(tmp_path), s)
    assert named(actions, "mission_completed") == []
    assert by_kind(actions, "reward") == []
    (expired,) = named(actions, "mission_expired")
    assert epoch(expired.decided_at) == epoch(s.now) - 1  # at the deadline, not at the deposit
    assert expired.payload == {
        "event": "mission_expired",
        "mission": "warmup",
        "instance": "once",
        "completed_objectives": 1,
        "objectives": 2,
        "progress": {"spins": "3/3", "deposit": "0/50"},
    }
    assert expired.action_id == derive_action_id("mission:warmup", "p1", "once:expired")


def test_an_event_exactly_at_the_deadline_is_already_too_late(tmp_path: Path) -> None:
    actions = replay(warmup(tmp_path), three_spins_then_deposit_at(3600))
    assert named(actions, "mission_completed") == []
    assert len(named(actions, "mission_expired")) == 1


def test_the_expiry_fires_on_the_watermark_when_the_player_goes_quiet(tmp_path: Path) -> None:
    s = Script().register("p1").after(seconds=10)
    bet(s, "p1", "1.00")
    start = epoch(T0)
    actions = replay(warmup(tmp_path), s, final=start + 3599)
    assert named(actions, "mission_expired") == []
    more = replay(warmup(tmp_path / "again"), s, final=start + 3600)
    assert [epoch(a.decided_at) for a in named(more, "mission_expired")] == [start + 3600]


def test_a_sequential_mission_counts_an_objective_only_after_the_previous_one(
    tmp_path: Path,
) -> None:
    rules = configure(
        tmp_path,
        missions="""
        missions:
          - id: steps
            sequential: true
            objectives:
              - {id: deposit, event: deposit, target: 1}
              - {id: spins, event: bet, target: 2}
        """,
    )
    s = Script().register("p1")
    bet(s.after(seconds=5), "p1", "1.00")  # too early: the deposit comes first
    bet(s.after(seconds=5), "p1", "1.00")
    s.after(seconds=5).deposit("p1")
    bet(s.after(seconds=5), "p1", "1.00")
    assert named(replay(rules, s), "mission_completed") == []
    bet(s.after(seconds=5), "p1", "1.00")
    (completed,) = named(replay(rules, s), "mission_completed")
    assert completed.event_id == s.records[-1]["event_id"]


def test_play_k_distinct_games_counts_each_game_once(tmp_path: Path) -> None:
    rules = configure(
        tmp_path,
        missions="""
        missions:
          - id: explorer
            objectives:
              - {id: games, event: bet, measure: distinct_games, target: 3}
        """,
    )
    s = Script().register("p1")
    for game in ("g1", "g1", "g2", "g2", "g1"):
        bet(s.after(seconds=5), "p1", "1.00", game_id=game)
    assert named(replay(rules, s), "mission_completed") == []
    bet(s.after(seconds=5), "p1", "1.00", game_id="g3")
    assert len(named(replay(rules, s), "mission_completed")) == 1


def test_wager_x_counts_real_money_in_the_base_currency(tmp_path: Path) -> None:
    rules = configure(
        tmp_path,
        settings="""
        settings:
          rates: {EUR: "1", SEK: "0.1"}
        """,
        missions="""
        missions:
          - id: wager
            objectives:
              - {id: wager, event: bet, measure: real_wager, target: 20}
        """,
    )
    s = Script().register("p1", currency="SEK")
    bet(s.after(seconds=5), "p1", "150.00", currency="SEK")  # 15 EUR
    bet(s.after(seconds=5), "p1", "100.00", currency="SEK", bonus_amount="60.00")  # 4 EUR real
    assert named(replay(rules, s), "mission_completed") == []
    bet(s.after(seconds=5), "p1", "10.00", currency="SEK")  # 1 EUR: 20 in all
    assert len(named(replay(rules, s), "mission_completed")) == 1


DAILY = """
missions:
  - id: daily_spinner
    segment: state.deposit_count >= 1
    recurrence: daily
    objectives:
      - {id: spins, event: bet, categories: [slots], target: 2}
"""


def test_a_daily_mission_goes_to_the_segment_once_per_local_day_and_ends_at_midnight(
    tmp_path: Path,
) -> None:
    rules = configure(tmp_path, missions=DAILY)
    s = Script().register("p1").register("p2")  # Berlin: UTC+1 in March
    bet(s.after(minutes=1), "p2", "1.00")  # p2 never deposits: not in the segment
    s.after(minutes=1).deposit("p1")  # p1 joins the segment: today's instance starts
    bet(s.after(minutes=1), "p1", "1.00")  # 1/2, then the day ends
    s.at(days=1, hours=1)
    bet(s, "p1", "1.00")  # the first bet of Tuesday starts Tuesday's instance (and counts)
    bet(s.after(minutes=1), "p1", "1.00")
    actions = replay(rules, s)
    assert named(actions, player="p2", event="mission_started") == []
    assert [(a.payload["event"], a.payload["instance"]) for a in actions] == [
        ("mission_started", "2026-03-02"),
        ("mission_expired", "2026-03-02"),
        ("mission_started", "2026-03-03"),
        ("mission_completed", "2026-03-03"),
    ]
    expired = named(actions, "mission_expired")[0]
    assert expired.decided_at == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # Berlin midnight
    assert expired.payload["progress"] == {"spins": "1/2"}


def test_an_opt_in_mission_is_offered_and_starts_when_its_code_is_redeemed(
    tmp_path: Path,
) -> None:
    rules = configure(
        tmp_path,
        missions="""
        missions:
          - id: spin_challenge
            assign: opt_in
            opt_in_code: SPIN10
            objectives:
              - {id: spins, event: bet, target: 2}
        """,
    )
    s = Script().register("p1")
    bet(s.after(seconds=5), "p1", "1.00")  # before opting in: does not count
    s.after(seconds=5).add("bonus_redeemed", "p1", code="spin10")
    bet(s.after(seconds=5), "p1", "1.00")
    bet(s.after(seconds=5), "p1", "1.00")
    actions = replay(rules, s)
    assert [a.payload["event"] for a in actions] == [
        "mission_offered",
        "mission_started",
        "mission_completed",
    ]
    assert actions[0].payload["opt_in_code"] == "SPIN10"
    assert actions[1].event_id == s.records[2]["event_id"]
