"""The whole dataflow under Bytewax: testing source in, testing sink out."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import polars as pl
import pytest
from bytewax.testing import TestingSink, TestingSource, run_main

from operators.actions import Action
from operators.guards import CapConfig, GuardConfig
from operators.triggers import TriggerSettings
from pipeline.cli import main
from pipeline.flow import FlowOptions, build_flow
from pipeline.metrics import Metrics
from pipeline.records import RawBatch
from pipeline.rulebook import RuleBook, Rules
from pipeline.simulator import SimulatorConfig, simulate, write_jsonl
from tests.support.campaign_config import rules_for
from tests.support.scenario import Script, day, epoch


def run_flow(
    batches: list[RawBatch], **options: int
) -> tuple[list[Action], list[dict[str, object]], Metrics]:
    actions: list[tuple[str, bytes]] = []
    dead: list[tuple[str, bytes]] = []
    metrics = Metrics()
    flow = build_flow(
        TestingSource(batches),
        TestingSink(actions),
        TestingSink(dead),
        options=FlowOptions(**options),  # type: ignore[arg-type]
        metrics=metrics,
    )
    run_main(flow, epoch_interval=timedelta(seconds=0))
    decoded = [Action.model_validate_json(value) for _, value in actions]
    return decoded, [orjson.loads(value) for _, value in dead], metrics


def _scenario() -> Script:
    s = Script().register("p1").register("p2").after(hours=1).deposit("p1").login("p1")
    for _ in range(5):
        s.after(seconds=30).round("p1", "2.50", "0")
    s.at(days=6, hours=23).login("p9")
    return s


def test_the_dataflow_emits_the_first_triggers_with_deterministic_ids() -> None:
    actions, dead, metrics = run_flow(_scenario().batches(4), shards=4)
    assert dead == []
    # p9 never registered: no welcome, no nudge; p1's 7 days of quiet are not over yet.
    assert sorted((a.campaign_id, a.player_id) for a in actions) == [
        ("first_deposit", "p1"),
        ("loss_streak_5", "p1"),
        ("no_deposit_3d", "p2"),
        ("welcome", "p1"),
        ("welcome", "p2"),
    ]
    assert len({a.action_id for a in actions}) == 5
    assert metrics.value("pitboss_events_total", {"type": "bet"}) == 5


def test_timers_fire_at_the_right_event_time_and_not_before() -> None:
    s = _scenario()
    actions, _, _ = run_flow(s.batches(3), shards=3)
    assert not [a for a in actions if a.campaign_id == "inactive_7d"]
    s.at(days=7, hours=1, minutes=3).login("p9")
    actions, _, _ = run_flow(s.batches(3), shards=3)
    inactive = [a for a in actions if a.campaign_id == "inactive_7d"]
    assert [a.player_id for a in inactive] == ["p1"]
    # p1's last activity was its fifth round, 2.5 minutes after 10:00 on day 0.
    assert epoch(inactive[0].decided_at) == day(7) + 3600 + 150
    nudges = [a for a in actions if a.campaign_id == "no_deposit_3d"]
    assert [(a.player_id, epoch(a.decided_at)) for a in nudges] == [("p2", day(3))]


def test_bad_records_reach_the_dead_letter_output_with_their_bytes_and_a_reason() -> None:
    good = Script().register("p1").lines()
    bad = [b"{not json", b'{"type":"bet","event_id":"x"}', b'{"type":"jackpot","player_id":"p"}']
    batch = RawBatch("file.jsonl", good + bad, [1, 2, 3, 4])
    actions, dead, metrics = run_flow([batch], shards=2)
    assert [a.campaign_id for a in actions] == ["welcome"]
    assert sorted((d["position"], d["kind"]) for d in dead) == [
        (2, "not_json"),
        (3, "missing_field"),
        (4, "unknown_type"),
    ]
    assert {d["raw"].encode() for d in dead} == set(bad)
    assert metrics.value("pitboss_dead_letters_total", {"kind": "not_json"}) == 1


def test_a_registration_in_an_unknown_time_zone_is_kept_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = Script().register("p1", timezone="Mars/Olympus_Mons").register("p2", timezone="UTC")
    s.register("p3", timezone="Europe/Malta")
    actions, dead, metrics = run_flow(s.batches(1), shards=2)
    assert dead == []  # the player is not lost: local times fall back to UTC
    assert sorted(a.player_id for a in actions if a.campaign_id == "welcome") == ["p1", "p2", "p3"]
    assert metrics.value("pitboss_unknown_timezones_total") == 1
    assert "1 registration(s) with a time zone the zone database lacks" in caplog.text
    assert "Mars" not in caplog.text  # what a producer sent stays out of the logs


def _simulated(tmp_path: Path, events: int = 40_000) -> Path:
    path = tmp_path / "events.jsonl"
    write_jsonl(path, SimulatorConfig(seed=7, events=events, poison_rate=0.01))
    return path


def test_replay_is_byte_identical_and_worker_count_does_not_change_action_ids(
    tmp_path: Path,
) -> None:
    events = _simulated(tmp_path)
    for name, workers in (("a", "1"), ("b", "1"), ("c", "2")):
        assert main(["replay", str(events), "--out", str(tmp_path / name), "-w", workers]) == 0
    first = (tmp_path / "a" / "actions.jsonl").read_bytes()
    assert first and first == (tmp_path / "b" / "actions.jsonl").read_bytes()

    def ids(name: str) -> set[str]:
        lines = (tmp_path / name / "actions.jsonl").read_bytes().splitlines()
        return {orjson.loads(line)["action_id"] for line in lines}

    assert len(ids("a")) > 100
    assert ids("a") == ids("c")
    dead = (tmp_path / "a" / "dead_letters.jsonl").read_bytes().splitlines()
    assert 200 <= len(dead) <= 600  # 1% of 40k poisoned
    players = pl.read_parquet(tmp_path / "a" / "players.parquet")
    assert players["player_id"].is_unique().all()
    assert players.equals(pl.read_parquet(tmp_path / "c" / "players.parquet"))


def test_players_parquet_holds_the_final_state_of_each_player(tmp_path: Path) -> None:
    s = Script().register("p1", country="SE", currency="SEK").deposit("p1", "100.25")
    s.after(minutes=1).round("p1", "10.00", "0").after(minutes=1).round("p1", "5.00", "12.50")
    events = tmp_path / "e.jsonl"
    events.write_bytes(b"\n".join(s.lines()) + b"\n")
    assert main(["replay", str(events), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "dead_letters.jsonl").read_bytes() == b""  # none, but there
    row = pl.read_parquet(tmp_path / "out" / "players.parquet").row(0, named=True)
    assert row["player_id"] == "p1" and row["country"] == "SE"
    assert row["deposit_count"] == 1 and row["deposit_total"] == Decimal("100.25")
    assert row["wager_total"] == Decimal("15") and row["net_total"] == Decimal("-2.5")
    assert row["wager_1h"] == Decimal("15") and row["net_24h"] == Decimal("-2.5")
    assert row["loss_streak"] == 0 and row["longest_loss_streak"] == 1
    assert row["lifecycle"] == "depositor" and row["favourite_category"] == "slots"


def test_a_shuffled_stream_with_duplicates_replays_to_the_event_time_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PITBOSS_CONFIG_DIR", str(tmp_path / "no-config"))
    records = list(simulate(SimulatorConfig(seed=9, events=20_000)))
    clean = tmp_path / "clean.jsonl"
    clean.write_bytes(b"\n".join(records) + b"\n")
    rng = random.Random(9)

    def arrival(record: bytes) -> float:
        ts = datetime.fromisoformat(orjson.loads(record)["ts"]).timestamp()
        return ts + rng.uniform(0, 300)  # up to five minutes late

    duplicates = rng.sample(records, 200)
    shuffled = sorted(records + duplicates, key=arrival)
    assert shuffled != records
    messy = tmp_path / "messy.jsonl"
    messy.write_bytes(b"\n".join(shuffled) + b"\n")

    assert main(["replay", str(clean), "--out", str(tmp_path / "clean")]) == 0
    monkeypatch.setenv("PITBOSS_ORDER_BY_EVENT_TIME", "true")
    monkeypatch.setenv("PITBOSS_LATENESS_SECONDS", "600")
    assert main(["replay", str(messy), "--out", str(tmp_path / "messy")]) == 0

    def decisions(name: str) -> set[tuple[str, str]]:
        lines = (tmp_path / name / "actions.jsonl").read_bytes().splitlines()
        return {(a["action_id"], a["decision"]) for a in map(orjson.loads, lines)}

    assert len(decisions("clean")) > 100
    assert decisions("messy") == decisions("clean")
    clean_players = pl.read_parquet(tmp_path / "clean" / "players.parquet")
    assert pl.read_parquet(tmp_path / "messy" / "players.parquet").equals(clean_players)


def test_a_capped_message_whose_campaign_waits_is_sent_when_the_cap_has_room(
    tmp_path: Path,
) -> None:
    campaigns = rules_for(
        tmp_path,
        """
        campaigns:
          - id: hello
            trigger: {on: event, events: [registration]}
            limits: {once: true}
            message: {template: note, channels: [sms]}
          - id: come_again
            trigger: {on: event, events: [login]}
            limits: {once: true, defer_when_capped: 12h}
            message: {template: note, channels: [sms]}
        """,
    )
    guards = GuardConfig(caps=[CapConfig(key="sms", limit=1, window_hours=24, channels=["sms"])])
    rulebook = RuleBook(None, TriggerSettings(), lambda *_: Rules("test", [campaigns], guards))
    s = Script().register("p1").after(hours=1).login("p1").after(hours=40).login("p9")
    out: list[tuple[str, bytes]] = []
    flow = build_flow(
        TestingSource(s.batches(1)),
        TestingSink(out),
        TestingSink([]),
        options=FlowOptions(shards=2, lateness_seconds=0, rulebook=rulebook),
        metrics=Metrics(),
    )
    run_main(flow)
    sms = [Action.model_validate_json(v) for _, v in out]
    got = [(a.campaign_id, a.decision, a.decided_at.hour) for a in sms if a.player_id == "p1"]
    # hello at 09:00 takes the day's SMS; come_again (10:00) waits 12 h, is still capped
    # at 22:00, and goes out at 10:00 the next day, when the 24-hour window has room.
    assert got == [
        ("hello", "sent", 9),
        ("come_again", "deferred", 10),
        ("come_again", "deferred", 22),
        ("come_again", "sent", 10),
    ]
