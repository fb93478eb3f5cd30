"""Levels: promotion on points and conditions, rewards and messages, maintenance and demotion."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from operators.actions import derive_action_id
from operators.engine import PlayerShard
from operators.gamification import GamificationRules, gam_state
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
LEVELS = """
levels:
  maintenance:
    period: month
  ladder:
    - id: bronze
    - id: silver
      min_points: 10
      maintain: 5
      reward: {type: free_spins, count: 10, value_per_spin: "0.20", game: starburst}
      message: {template_id: level_up, channel: in_app}
      demotion_message: {template_id: level_down, channel: email}
    - id: gold
      min_points: 30
      requires: state.deposit_count >= 2
      maintain: 20
"""


@pytest.fixture
def rules(tmp_path: Path) -> GamificationRules:
    return configure(tmp_path, points=POINTS, levels=LEVELS)


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def test_reaching_a_threshold_levels_up_with_its_reward_and_message(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1", locale="ru").after(minutes=1)
    bet(s, "p1", "12.00").after(minutes=1).add("logout", "p1")
    actions = replay(rules, s)
    (level_up,) = named(actions, "level_up")
    assert level_up.payload == {
        "event": "level_up",
        "level": "silver",
        "name": "Silver",
        "rank": 1,
        "previous": "bronze",
        "points": "12.00",
    }
    assert level_up.campaign_id == "level:silver"
    assert level_up.action_id == derive_action_id("level:silver", "p1", "up:1")
    (reward,) = by_kind(actions, "reward")
    assert reward.payload == {
        "reward_type": "free_spins",
        "count": 10,
        "value_per_spin": "0.20",
        "game": "starburst",
        "currency": "EUR",
    }
    assert reward.channel == "wallet" and reward.cost == 20_000
    (message,) = by_kind(actions, "message")
    assert message.payload["template_id"] == "level_up" and message.payload["locale"] == "ru"
    assert message.channel == "in_app" and message.payload["level"] == "silver"


def test_a_big_award_climbs_several_levels_each_with_its_own_level_up(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1").deposit("p1").deposit("p1").after(minutes=1)
    bet(s, "p1", "35.00").after(minutes=1).add("logout", "p1")
    ups = named(replay(rules, s), "level_up")
    assert [(a.payload["level"], a.payload["previous"]) for a in ups] == [
        ("silver", "bronze"),
        ("gold", "silver"),
    ]


def test_a_level_whose_condition_fails_waits_for_it_even_with_the_points(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1").deposit("p1").after(minutes=1)
    bet(s, "p1", "40.00").after(minutes=1).add("logout", "p1")  # one deposit: silver only
    first_logout = epoch(s.now)
    s.after(hours=1).deposit("p1").after(minutes=1)
    bet(s, "p1", "1.00").after(minutes=1).add("logout", "p1")  # the next flush: gold
    ups = named(replay(rules, s), "level_up")
    assert [(a.payload["level"], epoch(a.decided_at)) for a in ups] == [
        ("silver", first_logout),
        ("gold", epoch(s.now)),
    ]


def test_missing_maintenance_drops_one_level_when_the_month_ends(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1").after(minutes=1)
    bet(s, "p1", "12.00").after(minutes=1).add("logout", "p1")  # silver in March: grace
    s.at(days=35)  # April 6
    bet(s, "p1", "3.00").after(minutes=1).add("logout", "p1")  # 3 < 5 in April
    shard = PlayerShard(rules=[rules])
    actions = shard.process(s.events())
    actions += shard.advance(at("2026-05-01T00:00:00") - 1)
    assert named(actions, "level_down") == []
    actions += shard.advance(at("2026-05-01T00:00:00"))
    (down,) = named(actions, "level_down")
    assert down.decided_at == datetime(2026, 5, 1, tzinfo=UTC)
    assert down.payload == {
        "event": "level_down",
        "level": "bronze",
        "name": "Bronze",
        "rank": 0,
        "previous": "silver",
        "period": "2026-04",
        "period_points": "3.00",
        "required": "5.00",
    }
    assert [m.channel for m in by_kind(actions, "message") if m.campaign_id == "level:silver"][
        -1
    ] == "email"
    gs = gam_state(shard.players["p1"])
    assert gs is not None and gs.level == "bronze" and gs.status == 0  # restart at bronze
    assert gs.points == 1500  # lifetime points are kept


def test_earning_the_maintenance_keeps_the_level(rules: GamificationRules) -> None:
    s = Script().register("p1").after(minutes=1)
    bet(s, "p1", "12.00").after(minutes=1).add("logout", "p1")
    s.at(days=35)
    bet(s, "p1", "6.00").after(minutes=1).add("logout", "p1")
    actions = replay(rules, s, final=at("2026-06-15T00:00:00"))
    downs = named(actions, "level_down")
    # April kept (6 >= 5); May had no points: dropped on June 1.
    assert [(a.payload["period"], a.decided_at) for a in downs] == [
        ("2026-05", datetime(2026, 6, 1, tzinfo=UTC))
    ]


def test_after_a_demotion_the_points_to_climb_back_must_be_earned_again(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1").after(minutes=1)
    bet(s, "p1", "12.00").after(minutes=1).add("logout", "p1")
    s.at(days=62)  # May 3: demoted on May 1 (no April points)
    bet(s, "p1", "9.00").after(minutes=1).add("logout", "p1")
    assert [a.payload["level"] for a in named(replay(rules, s), "level_up")] == ["silver"]
    bet(s.after(minutes=1), "p1", "1.00").after(minutes=1).add("logout", "p1")
    ups = named(replay(rules, s), "level_up")
    assert [a.payload["level"] for a in ups] == ["silver", "silver"]
    assert ups[1].action_id == derive_action_id("level:silver", "p1", "up:2")
