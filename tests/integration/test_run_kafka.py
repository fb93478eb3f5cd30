"""`pitboss run` end to end: simulator -> Kafka-protocol broker -> job -> actions topic."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from pipeline.cli import main
from pipeline.produce import produce_records
from pipeline.simulator import SimulatorConfig, simulate
from tests.support.tansu import TansuBroker, consume_all, create_topic, free_port

pytestmark = pytest.mark.integration

PARTITIONS = 3


def _newest(records: list[bytes]) -> datetime:
    newest = datetime.min.replace(tzinfo=UTC)
    for record in records:
        try:
            ts = datetime.fromisoformat(orjson.loads(record)["ts"])
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
            continue  # a poison record
        if ts.tzinfo is not None and ts > newest:
            newest = ts
    return newest


def _sentinels(records: list[bytes]) -> list[bytes]:
    """One login per partition 30 days after the last event, so that every timer a replay
    fires at its end is also due, by event time, in the unbounded live run."""
    ts = (_newest(records) + timedelta(days=30)).isoformat()
    return [
        orjson.dumps({"event_id": f"s{i}", "type": "login", "player_id": f"s{i}", "ts": ts})
        for i in range(PARTITIONS)
    ]


@pytest.fixture
def job_env(
    kafka_broker: TansuBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    # Caps decide by arrival order, which differs between a 1-worker replay and a
    # 2-worker live run; this test compares the two, so it runs without a guards file.
    monkeypatch.setenv("PITBOSS_CONFIG_DIR", str(tmp_path / "no-config"))
    suffix = uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "PITBOSS_KAFKA_BROKERS": kafka_broker.bootstrap,
        "PITBOSS_EVENTS_TOPIC": f"events-{suffix}",
        "PITBOSS_ACTIONS_TOPIC": f"actions-{suffix}",
        "PITBOSS_DEAD_LETTERS_TOPIC": f"dead-{suffix}",
        "PITBOSS_METRICS_PORT": str(free_port()),
        "PITBOSS_LEADERBOARD_PORT": "0",
        "PITBOSS_EPOCH_INTERVAL_SECONDS": "1",
    }
    create_topic(kafka_broker.bootstrap, env["PITBOSS_EVENTS_TOPIC"], PARTITIONS)
    create_topic(kafka_broker.bootstrap, env["PITBOSS_ACTIONS_TOPIC"], 2)
    create_topic(kafka_broker.bootstrap, env["PITBOSS_DEAD_LETTERS_TOPIC"], 1)
    yield env


def _start(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _stop(proc: subprocess.Popen[bytes]) -> str:
    """Stop the job (SIGINT, then SIGKILL) and return what it printed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=10)
    return out.decode(errors="replace")


def test_pitboss_run_turns_the_kafka_firehose_into_the_same_actions_as_a_replay(
    job_env: dict[str, str], kafka_broker: TansuBroker, tmp_path: Path
) -> None:
    records = list(simulate(SimulatorConfig(seed=11, events=15_000, poison_rate=0.01)))
    sentinels = _sentinels(records)
    replay_file = tmp_path / "events.jsonl"
    replay_file.write_bytes(b"\n".join(records + sentinels) + b"\n")
    assert main(["replay", str(replay_file), "--out", str(tmp_path / "replay")]) == 0
    expected = {
        (a["action_id"], a["decision"])
        for a in map(orjson.loads, (tmp_path / "replay" / "actions.jsonl").read_bytes().split())
    }
    poison = len((tmp_path / "replay" / "dead_letters.jsonl").read_bytes().splitlines())
    assert len(expected) > 100 and poison > 50

    brokers = kafka_broker.bootstrap
    produce_records(brokers, job_env["PITBOSS_EVENTS_TOPIC"], records)
    producer = Producer({"bootstrap.servers": brokers})
    for partition, sentinel in enumerate(sentinels):
        producer.produce(job_env["PITBOSS_EVENTS_TOPIC"], sentinel, partition=partition)
    assert producer.flush(10) == 0

    proc = _start(job_env, "-w", "2")
    try:
        actions = consume_all(brokers, job_env["PITBOSS_ACTIONS_TOPIC"], len(expected), 90)
        dead = consume_all(brokers, job_env["PITBOSS_DEAD_LETTERS_TOPIC"], poison, 30)
        metrics_url = f"http://127.0.0.1:{job_env['PITBOSS_METRICS_PORT']}/metrics"
        exposition = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
        time.sleep(0.5)  # anything extra (a duplicate) would have arrived by now
        again = consume_all(brokers, job_env["PITBOSS_ACTIONS_TOPIC"], len(expected), 10)
    finally:
        output = _stop(proc)

    decoded = [orjson.loads(r.value or b"") for r in actions]
    got = {(a["action_id"], a["decision"]) for a in decoded}
    assert got == expected, output[-2000:]
    assert len(again) == len(expected)
    assert all(r.key for r in actions)  # keyed by player id
    letters = [orjson.loads(r.value or b"") for r in dead]
    assert len(letters) == poison and all(letter["raw_base64"] for letter in letters)
    assert 'pitboss_events_total{type="bet"}' in exposition
    assert "pitboss_dead_letters_total" in exposition


def test_pitboss_simulate_feeds_kafka_keyed_by_player(kafka_broker: TansuBroker) -> None:
    topic = f"sim-{uuid.uuid4().hex[:8]}"
    args = ["simulate", "--events", "3000", "--kafka", kafka_broker.bootstrap, "--topic", topic]
    assert main([*args, "--partitions", "3"]) == 0
    records = consume_all(kafka_broker.bootstrap, topic, 3000, 20)
    assert len(records) == 3000
    for record in records:
        assert orjson.loads(record.value or b"")["player_id"].encode() == record.key
