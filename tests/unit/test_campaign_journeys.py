"""Journeys, replayed: ordered steps with waits, guards, branches and exit conditions."""

from __future__ import annotations

from pathlib import Path

from tests.support.campaign_config import of, replay, rules_for, statuses, summary
from tests.support.scenario import Script, day

WELCOME = """
campaigns:
  - id: welcome
    trigger: {on: event, events: registration}
    limits: {once: true}
    journey:
      exit: {when: state.deposit_count > 0, on: [deposit]}
      steps:
        - id: hello
          message: {template: note, channels: [email]}
        - id: nudge
          wait: 1d
          when: not journey.bet_since_start
          message: {template: note, channels: [push]}
        - id: reminder
          wait: 2d
          message: {template: note, channels: [sms]}
"""


def test_a_journey_runs_its_steps_after_their_waits_and_completes(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, WELCOME)
    actions = replay(Script().register("p1"), rules, final=day(10))
    assert summary(actions, "welcome") == [
        ("lifecycle", "activated", day(0)),
        ("email", "note", day(0)),
        ("push", "note", day(1)),
        ("sms", "note", day(3)),
        ("lifecycle", "completed", day(3)),
    ]
    occurrences = {a.payload.get("template_id"): a.action_id for a in of(actions, "welcome")}
    assert len(set(occurrences.values())) == len(occurrences)


def test_the_next_step_has_not_run_one_second_before_its_wait_is_over(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, WELCOME)
    actions = replay(Script().register("p1"), rules, final=day(1) - 1)
    assert [a.channel for a in of(actions, "welcome")] == ["lifecycle", "email"]


def test_a_step_whose_condition_is_false_is_skipped_and_the_journey_goes_on(
    tmp_path: Path,
) -> None:
    rules = rules_for(tmp_path, WELCOME)
    s = Script().register("p1").at(hours=12).round("p1", "1.00", "0")  # bet since the start
    actions = replay(s, rules, final=day(10))
    assert [(c, at) for c, _, at in summary(actions, "welcome")] == [
        ("lifecycle", day(0)),
        ("email", day(0)),
        ("sms", day(3)),  # no push on day 1
        ("lifecycle", day(3)),
    ]


def test_the_first_deposit_ends_the_journey_at_once(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, WELCOME)
    s = Script().register("p1").at(days=2).deposit("p1")
    actions = replay(s, rules, final=day(10))
    assert summary(actions, "welcome") == [
        ("lifecycle", "activated", day(0)),
        ("email", "note", day(0)),
        ("push", "note", day(1)),
        ("lifecycle", "exited", day(2)),
    ]
    exited = of(actions, "welcome", "lifecycle")[-1]
    assert exited.payload == {
        "instance": "welcome",
        "status": "exited",
        "transitions": ["exited"],
        "step": "reminder",
        "reason": "exit_condition",
    }
    assert exited.event_id == "e2"


def test_without_exit_events_the_exit_condition_is_checked_when_the_next_step_is_due(
    tmp_path: Path,
) -> None:
    rules = rules_for(tmp_path, WELCOME.replace(", on: [deposit]", ""))
    s = Script().register("p1").at(days=2).deposit("p1")
    actions = replay(s, rules, final=day(10))
    assert summary(actions, "welcome")[-1] == ("lifecycle", "exited", day(3))


def test_a_journey_is_entered_once_however_often_the_trigger_fires(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, WELCOME)
    s = Script().register("p1").at(hours=1).register("p1").at(days=5).register("p1")
    actions = replay(s, rules, final=day(10))
    assert statuses(actions, "welcome") == [("welcome", "activated"), ("welcome", "completed")]


BRANCHES = """
campaigns:
  - id: upsell
    trigger: {on: event, events: deposit, when: state.deposit_count == 1}
    journey:
      steps:
        - id: thanks
          message: {template: note, channels: [in_app]}
        - id: check
          wait: 2d
          branch:
            - when: journey.bet_since_start
              goto: try_live
        - id: reminder
          message: {template: note, channels: [email]}
          branch: [{goto: end}]
        - id: try_live
          message: {template: note, channels: [push]}
"""


def test_a_branch_sends_players_who_bet_one_way_and_the_others_another(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, BRANCHES)
    s = Script().register("p1").register("p2").deposit("p1").deposit("p2")
    s.at(days=1).round("p1", "1.00", "0")
    actions = of(replay(s, rules, final=day(5)), "upsell")
    by_player = {
        pid: [(a.channel, int(a.decided_at.timestamp())) for a in actions if a.player_id == pid]
        for pid in ("p1", "p2")
    }
    assert by_player["p1"] == [
        ("lifecycle", day(0)),
        ("in_app", day(0)),
        ("push", day(2)),
        ("lifecycle", day(2)),
    ]
    assert by_player["p2"] == [
        ("lifecycle", day(0)),
        ("in_app", day(0)),
        ("email", day(2)),
        ("lifecycle", day(2)),
    ]


def test_a_journey_steps_reward_lives_on_after_the_journey_exits(tmp_path: Path) -> None:
    rules = rules_for(
        tmp_path,
        """
        campaigns:
          - id: welcome_offer
            trigger: {on: event, events: registration}
            journey:
              exit: {when: state.deposit_count > 0, on: [deposit]}
              steps:
                - id: offer
                  message: {template: note, channels: [email]}
                  reward:
                    type: deposit_match
                    percent: 100
                    max_amount: 50
                    valid_for: 7d
                - id: reminder
                  wait: 3d
                  message: {template: note, channels: [email]}
        """,
    )
    s = Script().register("p1").at(days=1).deposit("p1", "30")
    actions = replay(s, rules, final=day(10))
    assert statuses(actions, "welcome_offer") == [
        ("welcome_offer", "activated"),
        ("welcome_offer/offer", "notified"),
        ("welcome_offer/offer", "completed"),  # the deposit qualified...
        ("welcome_offer", "exited"),  # ...and ended the journey
    ]
    (paid,) = of(actions, "welcome_offer", "wallet")
    assert (paid.payload["amount"], paid.payload["deposit"], paid.cost) == (
        "30.00",
        "30.00",
        300_000,
    )
