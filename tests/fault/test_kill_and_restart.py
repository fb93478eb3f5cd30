"""Crash recovery with exactly-once effects: `kill -9` the job again and again.

The job runs as `pitboss run` on the Kafka-protocol broker with Bytewax recovery, Redis
stores and real providers (a wallet API on loopback and the in-app inbox in Redis). It
is killed with SIGKILL at random moments at least ten times, restarted each time (also
with a different worker count), and then left to finish. What reached the providers must
equal what an uninterrupted run decides: nothing lost, nothing paid twice.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import redis
from confluent_kafka import Producer

from pipeline.cli import main
from pipeline.produce import produce_records
from pipeline.simulator import SimulatorConfig, simulate
from tests.support.fault_helpers import TopicReader, decisions, values, wait_until
from tests.support.providers import Providers
from tests.support.tansu import TansuBroker, create_topic

pytestmark = pytest.mark.integration

PARTITIONS = 3
KILLS = 10


def _records() -> list[bytes]:
    records = list(simulate(SimulatorConfig(seed=5, events=20_000)))
    newest = max(datetime.fromisoformat(orjson.loads(r)["ts"]) for r in records)
    # One late login per partition so that every deadline a replay fires at its end is
    # also due, in event time, in the live run.
    ts = (newest + timedelta(days=30)).astimezone(UTC).isoformat()
    records += [
        orjson.dumps({"event_id": f"s{i}", "type": "login", "player_id": f"s{i}", "ts": ts})
        for i in range(PARTITIONS)
    ]
    return records


def _inbox_ids(prefix: str) -> Counter[str]:
    """Every action id in every player's in-app inbox stream, counted."""
    client = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    found: Counter[str] = Counter()
    for key in client.scan_iter(match=f"{prefix}inbox:*"):
        if client.type(key) != b"stream":
            continue
        for _, fields in client.xrange(key):
            found[fields[b"action_id"].decode()] += 1
    client.close()
    return found


def test_ten_kills_and_restarts_deliver_every_action_exactly_once(
    kafka_broker: TansuBroker,
    providers: Providers,
    redis_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config_dir = tmp_path / "config"  # first triggers, no caps: decisions are order-free
    config_dir.mkdir()
    monkeypatch.setenv("PITBOSS_CONFIG_DIR", str(config_dir))
    records = _records()
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(records) + b"\n")
    assert main(["replay", str(events), "--out", str(tmp_path / "reference")]) == 0
    reference = [
        orjson.loads(line)
        for line in (tmp_path / "reference" / "actions.jsonl").read_bytes().splitlines()
    ]
    expected = {(a["action_id"], a["decision"]) for a in reference}
    wallet = {
        a["action_id"] for a in reference if a["channel"] == "wallet" and a["decision"] == "sent"
    }
    inbox = {
        a["action_id"] for a in reference if a["channel"] == "in_app" and a["decision"] == "sent"
    }
    assert len(wallet) >= 5 and len(inbox) > 50

    suffix = uuid.uuid4().hex[:8]
    brokers = kafka_broker.bootstrap
    env = {
        **os.environ,
        "PITBOSS_KAFKA_BROKERS": brokers,
        "PITBOSS_EVENTS_TOPIC": f"events-{suffix}",
        "PITBOSS_ACTIONS_TOPIC": f"actions-{suffix}",
        "PITBOSS_DEAD_LETTERS_TOPIC": f"dead-{suffix}",
        "PITBOSS_METRICS_PORT": "0",
        "PITBOSS_LEADERBOARD_PORT": "0",
        "PITBOSS_EPOCH_INTERVAL_SECONDS": "0.5",
        "PITBOSS_RECOVERY_DIR": str(tmp_path / "recovery"),
        "PITBOSS_RECOVERY_PARTITIONS": "4",
        "PITBOSS_REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"),
        "PITBOSS_REDIS_PREFIX": redis_prefix,
        "PITBOSS_WALLET__NAME": "wallet",
        "PITBOSS_WALLET__URL": providers.url("/wallet"),
        "PITBOSS_CONSUMER_BATCH_SIZE": "500",
    }
    for topic, partitions in (
        (env["PITBOSS_EVENTS_TOPIC"], PARTITIONS),
        (env["PITBOSS_ACTIONS_TOPIC"], 2),
        (env["PITBOSS_DEAD_LETTERS_TOPIC"], 1),
    ):
        create_topic(brokers, topic, partitions)
    produce_records(brokers, env["PITBOSS_EVENTS_TOPIC"], records[:-PARTITIONS])
    producer = Producer({"bootstrap.servers": brokers})
    for partition, sentinel in enumerate(records[-PARTITIONS:]):
        producer.produce(env["PITBOSS_EVENTS_TOPIC"], sentinel, partition=partition)
    assert producer.flush(10) == 0

    logs: list[Path] = []

    def start(workers: int) -> subprocess.Popen[bytes]:
        # The job's log goes to a file: a pipe nobody reads while it runs could fill up
        # and stall it.
        logs.append(tmp_path / f"run-{len(logs) + 1}.log")
        with logs[-1].open("wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", "run", "-w", str(workers)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def log_tail() -> str:
        return logs[-1].read_text(errors="replace")[-3000:]

    rng = random.Random(20261123)
    kills = 0
    for round_no in range(KILLS):
        proc = start(1 if round_no % 2 else 2)  # alternate the worker count
        time.sleep(rng.uniform(1.5, 3.5))
        assert proc.poll() is None, log_tail()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
    final = start(2)
    try:
        with TopicReader(brokers, env["PITBOSS_ACTIONS_TOPIC"]) as reader:
            # Every decision logged (the killed runs logged some twice, so a count of
            # records would be reached too early), then every delivery made.
            def all_logged() -> bool:
                assert final.poll() is None, log_tail()
                reader.poll()
                return expected <= set(decisions(values(reader.records)))

            wait_until(all_logged, 120, "every expected decision in the action log", log_tail)

            def delivered() -> bool:
                wallet_keys = {r.headers["idempotency-key"] for r in providers.on("/wallet")}
                return wallet <= wallet_keys and len(_inbox_ids(redis_prefix)) >= len(inbox)

            with contextlib.suppress(AssertionError):  # what is missing is asserted below
                wait_until(delivered, 30, "every delivery")
            final.send_signal(signal.SIGINT)
            final.wait(timeout=15)
            actions = reader.read_to_end()
    finally:
        if final.poll() is None:
            final.kill()
            final.wait(timeout=10)

    assert kills >= 10
    logged = set(decisions(values(actions)))
    assert expected <= logged  # every decision is in the action log (at least once)
    assert {aid for aid, _ in logged} == {aid for aid, _ in expected}  # and nothing else

    paid = Counter(r.headers["idempotency-key"] for r in providers.on("/wallet"))
    assert set(paid) == wallet  # every reward reached the wallet, no other
    assert sum(paid.values()) == len(wallet), f"wallet calls repeated: {paid.most_common(3)}"

    inbox_ids = _inbox_ids(redis_prefix)
    assert set(inbox_ids) == inbox
    assert max(inbox_ids.values()) == 1  # no message twice in any inbox
