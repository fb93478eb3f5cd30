"""Throughput of the full pipeline from a Kafka-protocol broker, beside the raw ceiling,
and memory per player in state.

Run: ``.venv/bin/python bench/throughput.py [--events N] [--rounds R]`` (or ``make bench``).
It starts Tansu on a free loopback port, produces N simulated events into a 4-partition
topic, then alternates, R times each, in one run:

* ceiling: a bare confluent-kafka consumer that reads every record and ``orjson``-decodes
  it (nothing else);
* pipeline: the real dataflow (``pitboss run``'s flow, bounded), one Bytewax worker:
  batch decode and validation, the full fold, the first triggers, the action log.

It prints medians (events/s, and the pipeline/ceiling ratio) and the resident state per
player at 100k players, measured with tracemalloc (state only, after a full fold) and
as pickled snapshot bytes.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

import orjson
from bytewax.run import cli_main
from confluent_kafka import Consumer, TopicPartition

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from operators.engine import PlayerShard, shard_of
from operators.triggers import TriggerSettings
from pipeline.cli import tune_gc
from pipeline.decode import decode_batch
from pipeline.flow import FlowOptions, Services, build_flow
from pipeline.kafka import KafkaBatchSource
from pipeline.metrics import Metrics
from pipeline.outputs import JsonlSink
from pipeline.produce import produce_records
from pipeline.records import RawBatch
from pipeline.rulebook import RuleBook
from pipeline.simulator import SimulatorConfig, simulate
from tests.support.tansu import TansuBroker, create_topic

PARTITIONS = 4


def ceiling(brokers: str, topic: str, expected: int) -> float:
    """Events/s of a bare consumer that only decodes JSON."""
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": "bench",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 1,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    loads = orjson.loads
    seen = 0
    started = time.perf_counter()
    while seen < expected:
        for msg in consumer.consume(2000, 0.1):
            if msg.error() is None:
                value = msg.value()
                if value is not None:  # a tombstone has nothing to decode
                    loads(value)
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return expected / elapsed


def variants(tmp: Path) -> dict[str, Path | None]:
    """The configurations compared: none (the first triggers), each part, everything."""
    config = REPO / "config"
    parts = {
        "campaigns": ("campaigns", "templates"),
        "gamification": ("gamification",),
        "full starter pack": ("campaigns", "templates", "gamification", "guards.yaml"),
    }
    out: dict[str, Path | None] = {"no config (first triggers)": None}
    for name, items in parts.items():
        target = tmp / name.replace(" ", "_")
        target.mkdir()
        for item in items:
            source = config / item
            if source.is_dir():
                shutil.copytree(source, target / item)
            else:
                shutil.copy(source, target / item)
        out[name] = target
    return out


def pipeline(
    brokers: str, topic: str, expected: int, config: Path | None = None, workers: int = 1
) -> float:
    """Events/s of the real dataflow reading the topic to its end."""
    metrics = Metrics()
    rulebook = RuleBook(config, TriggerSettings())
    marks: list[float] = []

    def mark(_: int) -> None:
        marks.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        flow = build_flow(
            KafkaBatchSource(brokers, [topic], tail=False, batch_size=2000),
            JsonlSink(Path(tmp) / "actions.jsonl"),
            JsonlSink(Path(tmp) / "dead.jsonl"),
            options=FlowOptions(rulebook=rulebook),
            metrics=metrics,
            progress=mark,
            services=Services.in_memory(rulebook.current.guards),
        )
        started = time.perf_counter()
        cli_main(  # type: ignore[no-untyped-call]
            flow, workers_per_process=workers, epoch_interval=timedelta(seconds=10)
        )
        elapsed = time.perf_counter() - started
        if marks:  # steady state: from the first batch decoded to the last
            elapsed = marks[-1] - marks[0]
    done = metrics.value("pitboss_events_total", {"type": "bet"})
    assert done > 0, "the pipeline processed nothing"
    return expected / elapsed


def _player_records(index: int) -> list[bytes]:
    """A typical player's first session: registration, a deposit, a few rounds."""
    pid = f"p{index:07d}"
    day = 5 + index % 20
    ts = f"2026-01-{day:02d}T{index % 24:02d}:{index % 60:02d}:00Z"
    out = [
        {
            "event_id": f"{pid}-r",
            "type": "registration",
            "player_id": pid,
            "ts": ts,
            "country": "DE",
            "currency": "EUR",
            "timezone": "Europe/Berlin",
            "channel": "organic",
            "consents": {"email": True, "sms": index % 2 == 0, "push": False, "in_app": True},
            "locale": "de",
            "birth_date": "1990-05-17",
        },
        {"event_id": f"{pid}-l", "type": "login", "player_id": pid, "ts": ts},
        {
            "event_id": f"{pid}-d",
            "type": "deposit",
            "player_id": pid,
            "ts": ts,
            "amount": "25.00",
            "currency": "EUR",
        },
    ]
    for n, category in enumerate(("slots", "slots", "live")):
        round_id = f"{pid}-{n}"
        out.append(
            {
                "event_id": f"{round_id}-b",
                "type": "bet",
                "player_id": pid,
                "ts": ts,
                "round_id": round_id,
                "amount": "1.50",
                "currency": "EUR",
                "game_id": "book_of_dead",
                "game_category": category,
            }
        )
        out.append(
            {
                "event_id": f"{round_id}-w",
                "type": "win",
                "player_id": pid,
                "ts": ts,
                "round_id": round_id,
                "amount": "0" if n % 2 else "3.00",
                "currency": "EUR",
            }
        )
    return [orjson.dumps(record) for record in out]


def state_memory(players: int) -> tuple[int, float, float]:
    """(players, traced bytes per player, pickled bytes per player) after a full fold.

    Each player gets a registration, a login, a deposit and three settled rounds (the
    state of a player who has played once), folded through 64 shards as the job does.
    """
    gc.collect()
    tracemalloc.start()
    shards = [PlayerShard() for _ in range(64)]
    for first in range(0, players, 250):
        records = [r for i in range(first, min(first + 250, players)) for r in _player_records(i)]
        batch = decode_batch(RawBatch("bench", records, list(range(len(records)))))
        parts: list[list[tuple[int, object]]] = [[] for _ in shards]
        for pair in batch.events:
            parts[shard_of(pair[1].player_id, 64)].append(pair)
        for shard, part in zip(shards, parts, strict=True):
            shard.process(part)  # type: ignore[arg-type]
    # Dedup memory is transient (players active in the last 10 minutes): measured apart.
    for shard in shards:
        shard.recent_ids.clear()
    del batch, parts, part, records
    gc.collect()
    traced, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    count = sum(len(s.players) for s in shards)
    pickled = sum(len(pickle.dumps(s)) for s in shards)
    return count, traced / count, pickled / count


def main() -> None:
    tune_gc()  # as `pitboss` does
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--players", type=int, default=100_000)
    parser.add_argument(
        "--configs", action="store_true", help="also run campaigns, gamification, everything"
    )
    args = parser.parse_args()

    with TansuBroker() as broker:
        topic = "bench-events"
        create_topic(broker.bootstrap, topic, PARTITIONS)
        started = time.perf_counter()
        produce_records(
            broker.bootstrap, topic, simulate(SimulatorConfig(seed=1, events=args.events))
        )
        print(f"produced {args.events:,} events in {time.perf_counter() - started:.1f} s")
        ceilings: list[float] = []
        rates: dict[str, list[float]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            configs = variants(Path(tmp)) if args.configs else {"no config (first triggers)": None}
            for round_no in range(args.rounds):
                ceilings.append(ceiling(broker.bootstrap, topic, args.events))
                line = [f"round {round_no + 1}: ceiling {ceilings[-1]:,.0f}/s"]
                for name, config in configs.items():
                    rate = pipeline(broker.bootstrap, topic, args.events, config)
                    rates.setdefault(name, []).append(rate)
                    line.append(f"{name} {rate:,.0f}/s")
                print(", ".join(line))
    c = statistics.median(ceilings)
    base = rates["no config (first triggers)"]
    count, traced, pickled = state_memory(args.players)
    print()
    print("| measure | median |")
    print("|---|---|")
    print(f"| raw ceiling (consume + orjson decode), events/s | {c:,.0f} |")
    for name, values in rates.items():
        print(f"| pipeline, 1 worker, {name}, events/s | {statistics.median(values):,.0f} |")
        if values is not base:
            slowdown = statistics.median(b / v for b, v in zip(base, values, strict=True))
            print(f"| slowdown of {name} vs no config (same round) | {slowdown:.2f}x |")
    print(f"| players in state | {count:,} |")
    print(f"| state per player, traced bytes | {traced:,.0f} |")
    print(f"| snapshot per player, pickled bytes | {pickled:,.0f} |")


if __name__ == "__main__":
    main()
