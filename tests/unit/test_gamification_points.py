"""Points: per-event rules, real money only, weekends and daily caps in the player's zone."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from operators.actions import derive_action_id
from operators.gamification import GamificationRules, gamification_rows
from tests.support.scenario import Script, epoch
from tests.unit.test_gamification_kit import SETTINGS, bet, configure, named, replay

POINTS = """
points:
  daily_cap: 50
  rules:
    - id: slots_wager
      event: bet
      categories: [slots]
      per: 10
      points: 1
      boosts:
        - when: local.weekend
          multiply: 2
    - id: deposit
      event: deposit
      points: 5
"""


@pytest.fixture
def rules(tmp_path: Path) -> GamificationRules:
    return configure(tmp_path, points=POINTS)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_one_point_per_ten_euros_wagered_on_slots_paid_when_the_player_logs_out(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1").after(minutes=1)
    bet(s, "p1", "25.00").after(seconds=10)
    bet(s, "p1", "5.00").after(seconds=10)
    bet(s, "p1", "100.00", category="live").after(minutes=2)  # no rule for live
    s.add("logout", "p1")
    awarded = named(replay(rules, s), "points_awarded")
    assert [a.payload for a in awarded] == [
        {
            "event": "points_awarded",
            "points": "3.00",
            "total": "3.00",
            "rules": {"slots_wager": "3.00"},
        }
    ]
    assert epoch(awarded[0].decided_at) == epoch(s.now)  # the logout
    assert awarded[0].action_id == derive_action_id("points", "p1", "flush:1")
    assert awarded[0].channel == "gamification" and awarded[0].decision == "sent"


def test_without_a_logout_points_come_flush_seconds_after_the_first_bet(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1").after(minutes=1)
    first = epoch(s.now)
    bet(s, "p1", "10.00").after(minutes=5)
    bet(s, "p1", "10.00").after(minutes=20)
    bet(s, "p1", "10.00")  # after the flush: a new window
    awarded = named(replay(rules, s, final=first + 3600), "points_awarded")
    assert [(a.payload["points"], epoch(a.decided_at)) for a in awarded] == [
        ("2.00", first + 900),
        ("1.00", first + 25 * 60 + 900),
    ]


def test_the_bonus_money_part_of_a_stake_earns_nothing(rules: GamificationRules) -> None:
    s = Script().register("p1").after(minutes=1)
    bet(s, "p1", "30.00", bonus_amount="20.00").after(seconds=5)  # 10 real
    bet(s, "p1", "50.00", bonus_amount="50.00").after(seconds=5)  # all bonus
    bet(s, "p1", "5.00", bonus_amount="9.00").after(seconds=5)  # bonus above stake: 0 real
    s.add("logout", "p1")
    assert [a.payload["points"] for a in named(replay(rules, s), "points_awarded")] == ["1.00"]


def test_a_stake_paid_fully_with_bonus_money_awards_no_points_at_all(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1").after(minutes=1)
    bet(s, "p1", "50.00", bonus_amount="50.00").after(seconds=5).add("logout", "p1")
    assert named(replay(rules, s), "points_awarded") == []


def test_points_double_on_the_weekend_in_the_players_own_time_zone(
    rules: GamificationRules,
) -> None:
    # Friday 12:00 UTC: already Saturday 01:00 in Auckland, still Friday in Berlin.
    s = Script(at("2026-03-06T11:00:00"))
    s.register("auckland", timezone="Pacific/Auckland").register("berlin")
    s.at(days=4, hours=3)  # T0 is Monday 09:00, so Friday 12:00 UTC
    assert s.now == at("2026-03-06T12:00:00")
    bet(s, "auckland", "10.00")
    bet(s, "berlin", "10.00").after(seconds=5)
    s.add("logout", "auckland").add("logout", "berlin")
    points = {a.player_id: a.payload["points"] for a in named(replay(rules, s), "points_awarded")}
    assert points == {"auckland": "2.00", "berlin": "1.00"}


def test_the_daily_cap_resets_at_the_players_local_midnight_not_utc(
    rules: GamificationRules,
) -> None:
    # Sao Paulo is UTC-3: 02:00 UTC is 23:00 the day before, 03:30 UTC is 00:30 local.
    s = Script(at("2026-03-02T20:00:00")).register("p1", timezone="America/Sao_Paulo")
    s.now = at("2026-03-03T02:00:00")
    bet(s, "p1", "1000.00")  # 100 points, capped at 50 for Monday (local)
    s.now = at("2026-03-03T02:50:00")
    bet(s, "p1", "10.00")  # still Monday locally: the cap is reached, nothing more
    s.now = at("2026-03-03T03:30:00")
    bet(s, "p1", "1000.00")  # Tuesday locally: a new day, a new cap
    s.now = at("2026-03-03T03:31:00")
    bet(s, "p1", "10.00")
    awarded = named(replay(rules, s, final=epoch(at("2026-03-03T06:00:00"))), "points_awarded")
    assert [(a.payload["points"], a.payload.get("capped"), a.decided_at) for a in awarded] == [
        ("50.00", True, at("2026-03-03T02:15:00")),
        ("50.00", True, at("2026-03-03T03:45:00")),
    ]


def test_deposits_earn_fixed_points_only_when_they_succeed(rules: GamificationRules) -> None:
    s = Script().register("p1").after(minutes=1).deposit("p1")
    s.add("deposit", "p1", amount="20.00", currency="EUR", status="failed")
    s.after(minutes=1).add("logout", "p1")
    awarded = named(replay(rules, s), "points_awarded")
    assert [a.payload["rules"] for a in awarded] == [{"deposit": "5.00"}]


def test_amounts_are_converted_to_the_base_currency_and_unlisted_ones_earn_nothing(
    tmp_path: Path,
) -> None:
    settings = SETTINGS + '  rates: {EUR: "1", SEK: "0.1"}\n'
    rules = configure(tmp_path, settings=settings, points=POINTS)
    s = Script().register("sek", currency="SEK").register("nok", currency="NOK")
    s.after(minutes=1)
    bet(s, "sek", "100.00", currency="SEK")  # 10 EUR
    bet(s, "nok", "100.00", currency="NOK")
    s.after(minutes=1).add("logout", "sek").add("logout", "nok")
    awarded = named(replay(rules, s), "points_awarded")
    assert [(a.player_id, a.payload["points"]) for a in awarded] == [("sek", "1.00")]


def test_the_same_events_give_the_same_points_and_ids_whatever_the_batching(
    rules: GamificationRules,
) -> None:
    s = Script().register("p1").register("p2", timezone="Asia/Tokyo")
    for hour in range(30):
        s.at(hours=hour, minutes=7)
        bet(s, "p1", "12.50")
        bet(s, "p2", "40.00")
        if hour % 5 == 0:
            s.add("logout", "p2")
    final = epoch(s.now) + 86_400
    whole = replay(rules, s, final=final)
    for chunk in (1, 7):
        assert sorted(a.model_dump_json() for a in replay(rules, s, final=final, chunk=chunk)) == (
            sorted(a.model_dump_json() for a in whole)
        )


def test_the_players_points_are_in_their_row(rules: GamificationRules) -> None:
    from operators.engine import PlayerShard

    s = Script().register("p1").after(minutes=1).deposit("p1")
    bet(s, "p1", "25.00").after(minutes=1).add("logout", "p1")
    shard = PlayerShard(rules=[rules])
    shard.process(s.events())
    row = gamification_rows(shard.players["p1"])
    assert row["gam_points"] == row["gam_status_points"]
    assert str(row["gam_points"]) == "7.50"
    assert row["gam_pending_flush_at"] is None


def test_gamification_state_survives_a_snapshot_even_one_taken_before_new_fields(
    rules: GamificationRules,
) -> None:
    import pickle

    from operators.engine import PlayerShard
    from operators.gamification import gam_state

    s = Script().register("p1").after(minutes=1).deposit("p1")
    bet(s, "p1", "25.00")
    shard = PlayerShard(rules=[rules])
    shard.process(s.events())
    restored = pickle.loads(pickle.dumps(shard)).with_rules([rules])
    before, after = gam_state(shard.players["p1"]), gam_state(restored.players["p1"])
    assert before is not None and after is not None
    assert after.__getstate__() == before.__getstate__()
    older = type(before).__new__(type(before))
    older.__setstate__(before.__getstate__()[:-2])  # a snapshot without the newest fields
    assert older.points == before.points and older.bet_mark == -1
