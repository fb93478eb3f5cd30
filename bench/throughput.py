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

With ``--fresh`` every pipeline run gets a fresh interpreter (as a job does), with the
job's garbage-collector settings; without it they share this one, one after another.

Slowdowns of one configuration against another are medians of per-round ratios, by wall
time and by the process's CPU time over the same steady state (the job's thread and
librdkafka's; the broker is another process). On a shared machine a neighbour's burst
moves one run's wall time by 20-40% and its CPU time much less, so the CPU ratio is the
steadier figure of what the configuration costs.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from bytewax.run import cli_main
from confluent_kafka import Consumer, TopicPartition

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.jobs import in_child
from bench.sessions import first_session
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
        "gamification": ("gamification", "templates"),
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
) -> tuple[float, float]:
    """Events/s of the real dataflow reading the topic to its end: ``(by wall time, by
    the process's CPU time)``, both over the steady state."""
    metrics = Metrics()
    rulebook = RuleBook(config, TriggerSettings())
    marks: list[tuple[float, float]] = []
    counts: list[int] = []

    def mark(count: int) -> None:
        marks.append((time.perf_counter(), time.process_time()))
        counts.append(count)

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
        cli_main(  # type: ignore[no-untyped-call]
            flow, workers_per_process=workers, epoch_interval=timedelta(seconds=10)
        )
    # Every record read, or the rate would be of a shorter run than it says.
    assert sum(counts) == expected, f"read {sum(counts):,} records of {expected:,}"
    # Steady state: from the first batch decoded to the last, the events after the first.
    started, ended = marks[0], marks[-1]
    events = expected - counts[0]
    return events / (ended[0] - started[0]), events / (ended[1] - started[1])


def fresh_pipeline(
    brokers: str, topic: str, expected: int, config: Path | None = None
) -> tuple[float, float]:
    """:func:`pipeline` in a spawned interpreter, with the job's collector settings."""
    tune_gc()
    return pipeline(brokers, topic, expected, config)


def player_records(index: int) -> list[bytes]:
    """A typical player's first session (:func:`bench.sessions.first_session`) as records,
    on one of 20 days in January 2026."""
    ts = int(datetime(2026, 1, 5 + index % 20, index % 24, index % 60, tzinfo=UTC).timestamp())
    return [orjson.dumps(record) for record in first_session(index, ts)]


def state_memory(players: int) -> tuple[int, float, float]:
    """(players, traced bytes per player, pickled bytes per player) after a full fold.

    Each player gets a registration, a login, a deposit and three settled rounds (the
    state of a player who has played once), folded through 64 shards as the job does.
    """
    gc.collect()
    tracemalloc.start()
    shards = [PlayerShard() for _ in range(64)]
    for first in range(0, players, 250):
        records = [r for i in range(first, min(first + 250, players)) for r in player_records(i)]
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
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="run each pipeline in a fresh interpreter (as a job runs) instead of in this one",
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
        cpu_rates: dict[str, list[float]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            configs = variants(Path(tmp)) if args.configs else {"no config (first triggers)": None}
            for round_no in range(args.rounds):
                ceilings.append(ceiling(broker.bootstrap, topic, args.events))
                line = [f"round {round_no + 1}: ceiling {ceilings[-1]:,.0f}/s"]
                for name, config in configs.items():
                    if args.fresh:
                        rate, cpu_rate = in_child(
                            fresh_pipeline, broker.bootstrap, topic, args.events, config
                        )
                    else:
                        rate, cpu_rate = pipeline(broker.bootstrap, topic, args.events, config)
                    rates.setdefault(name, []).append(rate)
                    cpu_rates.setdefault(name, []).append(cpu_rate)
                    line.append(f"{name} {rate:,.0f}/s ({cpu_rate:,.0f}/s CPU)")
                print(", ".join(line), flush=True)
    c = statistics.median(ceilings)
    base, cpu_base = rates["no config (first triggers)"], cpu_rates["no config (first triggers)"]
    count, traced, pickled = state_memory(args.players)
    print()
    print("| measure | median |")
    print("|---|---|")
    print(f"| raw ceiling (consume + orjson decode), events/s | {c:,.0f} |")
    for name, values in rates.items():
        cpu_values = cpu_rates[name]
        print(
            f"| pipeline, 1 worker, {name}, events/s (by CPU time) | "
            f"{statistics.median(values):,.0f} ({statistics.median(cpu_values):,.0f}) |"
        )
        if values is not base:
            wall = statistics.median(b / v for b, v in zip(base, values, strict=True))
            cpu = statistics.median(b / v for b, v in zip(cpu_base, cpu_values, strict=True))
            print(
                f"| slowdown of {name} vs no config, same round: CPU (wall) | "
                f"{cpu:.2f}x ({wall:.2f}x) |"
            )
    print(f"| players in state | {count:,} |")
    print(f"| state per player, traced bytes | {traced:,.0f} |")
    print(f"| snapshot per player, pickled bytes | {pickled:,.0f} |")


if __name__ == "__main__":
    main()
