"""State-based guards: holdout, quiet hours, suppression; and the guards file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from operators.engine import PlayerShard
from operators.guards import (
    GuardConfig,
    GuardConfigError,
    QuietHours,
    held_out,
    load_guard_config,
    quiet_until,
)
from operators.triggers import FirstTriggers
from tests.support.scenario import T0, Script, epoch

QUIET_EMAIL = GuardConfig(quiet_hours={"email": QuietHours(start=dt.time(21), end=dt.time(9))})


def test_holdout_is_deterministic_and_close_to_the_configured_share() -> None:
    config = GuardConfig(holdout_percent={"welcome": 10.0})
    players = [f"p{i}" for i in range(20_000)]
    first = [held_out(config, "welcome", p) for p in players]
    assert first == [held_out(config, "welcome", p) for p in players]
    assert 0.09 < sum(first) / len(players) < 0.11
    assert not any(held_out(config, "first_deposit", p) for p in players)


def test_the_global_control_group_is_the_same_players_for_every_campaign() -> None:
    config = GuardConfig(global_control_percent=5.0)
    players = [f"p{i}" for i in range(5_000)]
    welcome = {p for p in players if held_out(config, "welcome", p)}
    nudge = {p for p in players if held_out(config, "no_deposit_3d", p)}
    assert welcome == nudge and 200 < len(welcome) < 300


def test_quiet_hours_are_in_the_players_time_zone_and_wrap_midnight() -> None:
    # 21:30 UTC is 22:30 in Berlin (winter): quiet until 09:00 Berlin = 08:00 UTC.
    at = epoch(dt.datetime(2026, 3, 2, 21, 30, tzinfo=dt.UTC))
    release = quiet_until(QUIET_EMAIL, "email", "Europe/Berlin", at)
    assert release == epoch(dt.datetime(2026, 3, 3, 8, 0, tzinfo=dt.UTC))
    assert quiet_until(QUIET_EMAIL, "sms", "Europe/Berlin", at) is None
    noon = epoch(dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC))
    assert quiet_until(QUIET_EMAIL, "email", "Europe/Berlin", noon) is None
    # An unknown zone falls back to UTC rather than failing.
    assert quiet_until(QUIET_EMAIL, "email", "Mars/Olympus", at) is not None


def run(script: Script, config: GuardConfig, until: int) -> list[tuple[str, str, int]]:
    shard = PlayerShard(rules=[FirstTriggers()], guards=config)
    actions = shard.process(script.events()) + shard.advance(until)
    return [(a.campaign_id, a.decision, epoch(a.decided_at)) for a in actions]


def test_a_message_in_quiet_hours_is_deferred_then_sent_when_they_end() -> None:
    s = Script(T0.replace(hour=22)).register("p1")  # 23:00 in Berlin
    got = run(s, QUIET_EMAIL, epoch(T0) + 2 * 86_400)
    morning = epoch(dt.datetime(2026, 3, 3, 8, 0, tzinfo=dt.UTC))
    assert ("welcome", "deferred", epoch(T0.replace(hour=22))) in got
    assert ("welcome", "sent", morning) in got


def test_a_deferred_message_is_suppressed_if_the_player_self_excludes_meanwhile() -> None:
    s = Script(T0.replace(hour=22)).register("p1")
    s.after(hours=2).add("self_exclusion", "p1", until=None)
    got = run(s, QUIET_EMAIL, epoch(T0) + 2 * 86_400)
    welcome = [g for g in got if g[0] == "welcome"]
    assert [d for _, d, _ in welcome] == ["deferred", "suppressed:self_excluded"]


def test_a_bad_guards_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "guards.yaml"
    path.write_text("quiet_hours:\n  fax: {start: '21:00', end: '09:00'}\n")
    with pytest.raises(GuardConfigError, match=r"guards.yaml.*fax"):
        load_guard_config(path)
    path.write_text("capz: []\n")
    with pytest.raises(GuardConfigError, match=r"capz"):
        load_guard_config(path)


def test_cooling_off_and_accounts_closed_for_gambling_get_nothing_promotional() -> None:
    s = Script().register("p1").register("p2")
    s.add("profile_update", "p1", attributes={"rg_status": "cooling_off"})
    s.add("profile_update", "p2", attributes={"rg_status": "closed_gambling"})
    s.at(days=4).login("p3")
    got = run(s, GuardConfig(), epoch(T0) + 5 * 86_400)
    nudges = sorted(d for c, d, _ in got if c == "no_deposit_3d")
    assert nudges == ["suppressed:closed_gambling", "suppressed:cooling_off"]


def test_earned_rewards_are_never_held_out_but_promotions_are() -> None:
    config = GuardConfig(global_control_percent=100)
    assert held_out(config, "welcome", "p1")
    s = Script().register("p1")
    shard = PlayerShard(rules=[FirstTriggers()], guards=config)
    assert [a.decision for a in shard.process(s.events())] == ["held_out"]
    from operators.actions import ActionKind
    from operators.guards import decide
    from operators.rules import Intent

    prize = Intent("tournament:weekly", "p1", "w1:1", ActionKind.REWARD, "wallet", {}, "", 0, 0)
    action, _ = decide(prize, shard.players["p1"], config)
    assert action.decision == "sent"
