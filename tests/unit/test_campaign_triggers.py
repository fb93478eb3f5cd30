"""Campaign triggers, replayed: event, signal, time and schedule triggers, and the
per-campaign rules around them (active window, segment, limits, variants)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from operators.actions import ActionKind, derive_action_id
from operators.campaigns import CampaignRules
from operators.player_state import PlayerState
from operators.rules import Intent, Schedule
from pipeline.events import Event
from tests.support.campaign_config import of, replay, rules_for, statuses, summary
from tests.support.scenario import T0, Script, day, epoch

DAY = 86_400
HOUR = 3_600


def utc(year: int, month: int, day: int, hour: int = 0, *hms: int) -> int:
    """Epoch seconds of a UTC date and time (minutes and seconds optional)."""
    minute, second = (*hms, 0, 0)[:2]
    return epoch(datetime(year, month, day, hour, minute, second, tzinfo=UTC))


# -- on: event -----------------------------------------------------------------------------

FIRST_DEPOSIT = """
campaigns:
  - id: first_deposit_bonus
    priority: 10
    trigger: {on: event, events: [deposit], when: "state.deposit_count == 1"}
    limits: {once: true}
    message: {template: note, channels: [email]}
    reward: {type: free_spins, game: starburst, count: 20, value_per_spin: 0.10}
"""


def test_first_deposit_sends_the_message_pays_the_spins_and_reports_the_lifecycle(
    tmp_path: Path,
) -> None:
    rules = rules_for(tmp_path, FIRST_DEPOSIT)
    s = Script().register("p1").after(hours=1).deposit("p1").after(hours=1).deposit("p1")
    actions = of(replay(s, rules), "first_deposit_bonus")
    first = epoch(T0) + HOUR
    assert summary(actions, "first_deposit_bonus") == [
        ("email", "note", first),
        ("wallet", "free_spins", first),
        ("lifecycle", "completed", first),
    ]
    message, reward, lifecycle = actions
    assert all(a.event_id == "e2" and a.priority == 10 for a in actions)
    assert all(a.campaign_version == rules.version and len(rules.version) == 12 for a in actions)
    assert reward.payload == {
        "reward_type": "free_spins",
        "amount": "2.00",
        "game": "starburst",
        "count": 20,
        "value_per_spin": "0.10",
        "instance": "first_deposit_bonus",
    }
    assert (reward.kind, reward.cost, reward.currency) == (ActionKind.REWARD, 20_000, "EUR")
    assert (message.cost, message.currency) == (0, "")
    assert lifecycle.payload["transitions"] == [
        "activated",
        "notified",
        "condition_checked",
        "rewarded",
        "completed",
    ]
    assert reward.action_id == derive_action_id("first_deposit_bonus", "p1", "ee2:reward")


def test_a_deposit_count_trigger_fires_on_the_third_deposit_only(tmp_path: Path) -> None:
    rules = rules_for(
        tmp_path,
        """
        campaigns:
          - id: third_deposit
            trigger: {on: event, events: deposit, when: "state.deposit_count == 3"}
            message: {template: note, channels: [email]}
        """,
    )
    s = Script().register("p1")
    for hour in range(1, 5):
        s.at(hours=hour).deposit("p1")
    s.at(hours=5).add("deposit", "p1", amount="5", currency="EUR", status="failed")
    fired = of(replay(s, rules), "third_deposit")
    assert [a.event_id for a in fired] == ["e4"]


def test_a_wager_milestone_fires_on_the_bet_that_crosses_it(tmp_path: Path) -> None:
    rules = rules_for(
        tmp_path,
        """
        campaigns:
          - id: wagered_100
            trigger:
              on: event
              events: [bet]
              when: state.wager_total >= 100 and state.wager_total - event.amount < 100
            message: {template: note, channels: [in_app]}
        """,
    )
    s = Script().register("p1").deposit("p1", "500")
    for _ in range(5):
        s.after(minutes=1).round("p1", "40.00", "0")
    fired = of(replay(s, rules), "wagered_100")
    third_bet = [r for r in s.records if r["type"] == "bet"][2]
    assert [a.event_id for a in fired] == [third_bet["event_id"]]


def test_a_big_win_fires_at_500_and_not_at_499_99(tmp_path: Path) -> None:
    rules = rules_for(
        tmp_path,
        """
        campaigns:
          - id: big_win
            trigger: {on: event, events: [win], when: event.amount >= 500}
            message: {template: note, channels: [push]}
        """,
    )
    s = Script().register("p1").deposit("p1")
    s.after(minutes=1).round("p1", "5.00", "499.99").after(minutes=1).round("p1", "5.00", "500")
    fired = of(replay(s, rules), "big_win")
    assert [a.event_id for a in fired] == [s.records[-1]["event_id"]]
    assert fired[0].payload["deep_link"] == "app://big_win"


def test_a_loss_streak_fires_on_the_fifth_lost_round_once_a_day(tmp_path: Path) -> None:
    rules = rules_for(
        tmp_path,
        """
        campaigns:
          - id: streak
            trigger: {on: event, events: [win], when: state.loss_streak == 5}
            limits: {once_per: 1d}
            message: {template: note, channels: [in_app]}
        """,
    )
    s = Script().register("p1").deposit("p1")
    for _ in range(5):
        s.after(minutes=1).round("p1", "1.00", "0")
    fifth = s.records[-1]["event_id"]
    s.after(minutes=1).round("p1", "1.00", "3.00")  # a win resets the streak
    for _ in range(5):
        s.after(minutes=1).round("p1", "1.00", "0")  # a second streak, the same day: limited
    fired = of(replay(s, rules), "streak")
    assert [a.event_id for a in fired] == [fifth]


# -- on: signal -----------------------------------------------------------------------------


class LevelOnLogin:
    """A stand-in gamification rule set: every login is a level up to the next level."""

    name = "levels"

    def on_event(
        self, state: PlayerState, event: Event, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        if event.type == "login":
            level = state.sessions
            payload = {"event": "level_up", "level": f"level{level}", "rank": level}
            out.append(
                Intent(
                    campaign_id="levels",
                    player_id=state.player_id,
                    occurrence=f"level{level}",
                    kind=ActionKind.GAMIFICATION,
                    channel="gamification",
                    payload=payload,
                    event_id=event.event_id,
                    event_at=ts,
                    decided_at=ts,
                )
            )

    def fire_due(self, state: PlayerState, now: int, out: list[Intent]) -> int | None:
        return None


def test_a_signal_trigger_reacts_to_gamification_level_ups(tmp_path: Path) -> None:
    rules = rules_for(
        tmp_path,
        """
        campaigns:
          - id: level_five
            trigger: {on: signal, signals: level_up, when: signal.rank >= 5}
            message: {template: note, channels: [in_app]}
        """,
    )
    s = Script().register("p1")
    for hour in range(1, 7):
        s.at(hours=hour).login("p1")
    fired = of(replay(s, [LevelOnLogin(), rules]), "level_five")
    assert [a.event_id for a in fired] == ["e6", "e7"]  # levels 5 and 6
    assert fired[0].action_id == derive_action_id("level_five", "p1", "slevels:level5:message")


# -- on: time -------------------------------------------------------------------------------

INACTIVE = """
campaigns:
  - id: missed_live
    trigger:
      on: time
      after: inactivity
      wait: 7d
      when: player.last_category == "live"
    message: {template: note, channels: [email]}
"""


def test_inactivity_fires_exactly_seven_days_after_the_last_live_bet_not_a_second_before(
    tmp_path: Path,
) -> None:
    rules = rules_for(tmp_path, INACTIVE)
    s = Script().register("p1").register("p2").deposit("p1").deposit("p2")
    s.after(hours=1).round("p1", "1.00", "0", category="live")
    last = epoch(s.now)
    s.round("p2", "1.00", "0", category="slots")
    assert of(replay(s, rules, final=last + 7 * DAY - 1), "missed_live") == []
    fired = of(replay(s, rules, final=last + 7 * DAY), "missed_live")
    assert [(a.player_id, a.channel) for a in fired] == [("p1", "email")]
    assert epoch(fired[0].decided_at) == last + 7 * DAY
    assert epoch(fired[0].event_at) == last and fired[0].event_id == ""


def test_inactivity_fires_once_per_quiet_spell_and_again_after_a_return(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, INACTIVE)
    s = Script().register("p1").round("p1", "1.00", "0", category="live")
    s.at(days=10).round("p1", "1.00", "0", category="live")
    back = epoch(s.now)
    fired = of(replay(s, rules, final=day(40)), "missed_live")
    assert [epoch(a.decided_at) for a in fired] == [day(7), back + 7 * DAY]


NO_DEPOSIT = """
campaigns:
  - id: no_deposit_3d
    segment: {when: state.deposit_count == 0}
    trigger: {on: time, after: registration, wait: 3d}
    limits: {once: true}
    message: {template: note, channels: [email]}
"""


def test_registered_without_a_deposit_after_three_days_fires_at_the_deadline(
    tmp_path: Path,
) -> None:
    rules = rules_for(tmp_path, NO_DEPOSIT)
    s = Script().register("p1").register("p2").at(days=2).deposit("p2")
    assert of(replay(s, rules, final=day(3) - 1), "no_deposit_3d") == []
    fired = of(replay(s, rules, final=day(3)), "no_deposit_3d")
    assert [(a.player_id, epoch(a.decided_at)) for a in fired] == [("p1", day(3))]


def test_a_deposit_one_second_after_the_deadline_does_not_undo_the_nudge(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, NO_DEPOSIT)
    s = Script().register("p1").at(days=3, seconds=1).deposit("p1")
    fired = of(replay(s, rules), "no_deposit_3d")
    assert [epoch(a.decided_at) for a in fired] == [day(3)]


BIRTHDAY = """
campaigns:
  - id: birthday
    trigger: {on: time, at: birthday, local_time: "10:00"}
    limits: {once_per: 300d}
    message: {template: note, channels: [email]}
"""


def test_a_birthday_fires_at_ten_in_the_players_time_zone_every_year(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, BIRTHDAY)
    s = Script().register("p1", birth_date="1990-03-05")  # Berlin: UTC+1 in March
    s.register("p2", birth_date="1990-03-05", timezone="Asia/Tokyo")
    s.register("p3")  # no birth date
    actions = replay(s, rules, final=utc(2027, 3, 6))
    fired = sorted((a.player_id, epoch(a.decided_at)) for a in of(actions, "birthday"))
    assert fired == [
        ("p1", utc(2026, 3, 5, 9)),
        ("p1", utc(2027, 3, 5, 9)),
        ("p2", utc(2026, 3, 5, 1)),
        ("p2", utc(2027, 3, 5, 1)),
    ]


def test_a_birthday_one_second_before_ten_has_not_fired(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, BIRTHDAY)
    s = Script().register("p1", birth_date="1990-03-05")
    assert of(replay(s, rules, final=utc(2026, 3, 5, 8, 59, 59)), "birthday") == []


def test_the_registration_anniversary_fires_a_year_later_at_local_noon(tmp_path: Path) -> None:
    rules = rules_for(
        tmp_path,
        """
        campaigns:
          - id: anniversary
            trigger: {on: time, at: anniversary, local_time: "12:00"}
            message: {template: note, channels: [email]}
        """,
    )
    s = Script().register("p1")  # 2026-03-02 10:00 in Berlin
    fired = of(replay(s, rules, final=utc(2028, 3, 3)), "anniversary")
    assert [epoch(a.decided_at) for a in fired] == [utc(2027, 3, 2, 11), utc(2028, 3, 2, 11)]


# -- on: schedule ---------------------------------------------------------------------------

WEEKLY = """
campaigns:
  - id: weekly_cashback
    trigger: {on: schedule, cron: "0 10 * * MON", when: state.net_7d < 0}
    limits: {once_per: 6d}
    reward: {type: cashback, percent: 10, window: 7d, min_amount: 1, max_amount: 50}
"""


def test_weekly_cashback_pays_ten_percent_of_last_weeks_loss_mondays_at_ten_local(
    tmp_path: Path,
) -> None:
    rules = rules_for(tmp_path, WEEKLY)
    s = Script().register("p1").register("p2", timezone="America/Toronto").register("p3")
    s.at(days=2).deposit("p1", "200").deposit("p2", "200").deposit("p3", "200")
    s.round("p1", "100.00", "0").round("p2", "120.00", "20.00").round("p3", "10.00", "15.00")
    actions = replay(s, rules, final=utc(2026, 3, 9, 23))
    paid = {a.player_id: a for a in of(actions, "weekly_cashback", "wallet")}
    assert sorted(paid) == ["p1", "p2"]  # p3 won last week
    assert epoch(paid["p1"].decided_at) == utc(2026, 3, 9, 9)  # 10:00 Berlin (UTC+1)
    assert epoch(paid["p2"].decided_at) == utc(2026, 3, 9, 14)  # 10:00 Toronto (DST: UTC-4)
    assert paid["p1"].payload["amount"] == "10.00"
    assert paid["p1"].payload["net_loss"] == "100.00"
    assert (paid["p1"].cost, paid["p2"].cost) == (100_000, 100_000)


def test_a_schedule_does_not_fire_before_the_player_registered(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, WEEKLY)
    s = Script().at(days=7, hours=2).register("p1")  # Monday, after 10:00 in Berlin
    s.at(days=8).round("p1", "100.00", "0")
    fired = of(replay(s, rules, final=utc(2026, 3, 16, 10)), "weekly_cashback", "wallet")
    assert [epoch(a.decided_at) for a in fired] == [utc(2026, 3, 16, 9)]


# -- window, segment, limits, variants ----------------------------------------------------


def test_a_campaign_fires_only_inside_its_active_window(tmp_path: Path) -> None:
    rules = rules_for(
        tmp_path,
        """
        campaigns:
          - id: spring
            active: {start: "2026-03-03T09:00:00Z", end: "2026-03-04T09:00:00Z"}
            trigger: {on: event, events: login}
            message: {template: note, channels: [email]}
        """,
    )
    s = Script().register("p1").at(days=1, seconds=-1).login("p1")
    s.at(days=1).login("p1").at(days=2, seconds=-1).login("p1").at(days=2).login("p1")
    fired = of(replay(s, rules), "spring")
    assert [epoch(a.decided_at) for a in fired] == [day(1), day(2) - 1]


def test_a_player_outside_the_segment_gets_nothing(tmp_path: Path) -> None:
    rules = rules_for(
        tmp_path,
        """
        campaigns:
          - id: german_logins
            segment: [germans]
            trigger: {on: event, events: login}
            message: {template: note, channels: [email]}
        """,
    )
    s = Script().register("p1").register("p2", country="SE").login("p1").login("p2")
    assert [a.player_id for a in of(replay(s, rules), "german_logins")] == ["p1"]


def test_once_per_seven_days_blocks_until_exactly_seven_days_have_passed(tmp_path: Path) -> None:
    rules = rules_for(
        tmp_path,
        """
        campaigns:
          - id: weekly_hello
            trigger: {on: event, events: login}
            limits: {once_per: 7d}
            message: {template: note, channels: [email]}
        """,
    )
    s = Script().register("p1").login("p1").at(days=7, seconds=-1).login("p1")
    s.at(days=7).login("p1").at(days=8).login("p1")
    fired = of(replay(s, rules), "weekly_hello")
    assert [epoch(a.decided_at) for a in fired] == [day(0), day(7)]


VARIANTS = """
campaigns:
  - id: ab_spins
    trigger: {on: event, events: registration}
    reward: {type: free_spins, game: starburst, count: 10, value_per_spin: 0.10}
    variants:
      - {name: ten, weight: 3}
      - name: twenty
        weight: 1
        reward: {type: free_spins, game: starburst, count: 20, value_per_spin: 0.10}
"""


def test_variants_are_assigned_by_a_stable_hash_in_proportion_to_their_weights(
    tmp_path: Path,
) -> None:
    rules = rules_for(tmp_path, VARIANTS)
    s = Script()
    for p in range(400):
        s.register(f"p{p}")
    paid = of(replay(s, rules), "ab_spins", "wallet")
    again = of(replay(s, rules_for(tmp_path / "again", VARIANTS)), "ab_spins", "wallet")
    assert [a.variant for a in paid] == [a.variant for a in again]
    counts = Counter(a.variant for a in paid)
    assert 250 <= counts["ten"] <= 350 and counts["ten"] + counts["twenty"] == 400
    assert {a.payload["count"] for a in paid if a.variant == "twenty"} == {20}
    assert {a.payload["count"] for a in paid if a.variant == "ten"} == {10}


def test_a_vip_upgrade_fires_when_the_level_moves_up_not_down(tmp_path: Path) -> None:
    rules = rules_for(
        tmp_path,
        """
        campaigns:
          - id: vip_upgrade
            trigger:
              on: event
              events: [profile_update]
              changed: state.vip_level
              ranks: [1, 2, 3, gold]
            message: {template: note, channels: [email]}
        """,
    )
    s = Script().register("p1")
    for level in (1, 2, 2, 1, 3, "gold", "mystery"):
        s.after(hours=1).add("profile_update", "p1", attributes={}, vip_level=level)
    s.after(hours=1).add("profile_update", "p1", attributes={"kyc": True})  # no level: no change
    fired = of(replay(s, rules), "vip_upgrade")
    assert [a.event_id for a in fired] == ["e2", "e3", "e6", "e7"]  # 1, 2, 3, gold


def test_message_only_campaigns_report_no_lifecycle(tmp_path: Path) -> None:
    rules: CampaignRules = rules_for(tmp_path, INACTIVE)
    s = Script().register("p1").round("p1", "1.00", "0", category="live")
    actions = replay(s, rules, final=day(8))
    assert statuses(actions, "missed_live") == []
    assert len(of(actions, "missed_live")) == 1


def test_a_wait_after_the_first_deposit_counts_from_the_first_successful_one(
    tmp_path: Path,
) -> None:
    rules = rules_for(
        tmp_path,
        """
        campaigns:
          - id: day_after
            trigger: {on: time, after: first_deposit, wait: 1d}
            limits: {once: true}
            message: {template: note, channels: [email]}
        """,
    )
    s = Script().register("p1").at(hours=1)
    s.add("deposit", "p1", amount="10", currency="EUR", status="failed")
    s.at(hours=2).deposit("p1").at(hours=3).deposit("p1")
    fired = of(replay(s, rules, final=day(5)), "day_after")
    assert [epoch(a.decided_at) for a in fired] == [day(1) + 2 * HOUR]
