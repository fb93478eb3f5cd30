"""Event -> decision latency of the live job at a fixed input rate.

Two child processes, started together:

* the job: ``pitboss run``'s live flow (unbounded Kafka source, wall-clock watermark,
  the channel senders), whose action log is wrapped to note the wall time each batch
  of decided actions reaches it, and whose senders note when each delivery starts;
* a producer: pre-generates the simulated events, waits until the job has opened its
  partitions, then produces them at a fixed rate (``linger.ms`` 1), noting the wall
  time of each ``produce`` call by event id.

Latency of an action = the wall time it reached the action log (or its delivery
started) minus the produce time of the event that caused it (``Action.event_id``).
Only actions decided on their event's arrival count (``decided_at == event_at``):
timers, drip steps and quiet-hours deferrals decide later on purpose. The first
``warmup`` seconds of events are left out. Both processes read the same clock
(``time.time``) on one machine.

Why not the job's own ``pitboss_event_to_decision_seconds``: it starts when a batch is
read off Kafka, so it misses the time in the producer, the broker and the consumer's
fetch (Tansu answers an empty fetch only after ``fetch.wait.max.ms``).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import orjson
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.run import cli_main
from confluent_kafka import Producer

from bench.jobs import Decided, JobSpec, ProcessRun, assemble, counting, finish
from pipeline.cli import tune_gc
from pipeline.kafka import KafkaBatchSource, KafkaProducerSink, kafka_producer_config
from pipeline.metrics import Metrics
from pipeline.records import RawBatch
from pipeline.simulator import SimulatorConfig, simulate


class _StoppablePartition(StatefulSourcePartition[RawBatch, int]):
    """A Kafka partition that ends once told to and idle for ``idle_s``."""

    def __init__(self, inner: StatefulSourcePartition[RawBatch, int], stop: Path, idle_s: float):
        self._inner = inner
        self._stop = stop
        self._idle_s = idle_s
        self._active_at = time.monotonic()

    def next_batch(self) -> Iterable[RawBatch]:
        batch = list(self._inner.next_batch())
        now = time.monotonic()
        if batch:
            self._active_at = now
        elif now - self._active_at > self._idle_s and self._stop.exists():
            raise StopIteration
        return batch

    def next_awake(self) -> Any:
        return self._inner.next_awake()

    def snapshot(self) -> int:
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


class StoppableSource(FixedPartitionedSource[RawBatch, int]):
    """A tailing Kafka source that says when it is reading and stops when told to.

    ``ready`` is created once every partition is open; after ``stop`` appears, each
    partition ends at its first poll after ``idle_s`` without records.
    """

    def __init__(self, inner: KafkaBatchSource, ready: Path, stop: Path, idle_s: float = 1.0):
        self._inner = inner
        self._ready = ready
        self._stop = stop
        self._idle_s = idle_s
        self._parts = 0
        self._built = 0

    def list_parts(self) -> list[str]:
        parts = self._inner.list_parts()
        self._parts = len(parts)
        return parts

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> StatefulSourcePartition[RawBatch, int]:
        part = self._inner.build_part(step_id, for_part, resume_state)
        self._built += 1
        if self._built == self._parts:
            self._ready.touch()
        return _StoppablePartition(part, self._stop, self._idle_s)


class _TimedPartition(StatelessSinkPartition[tuple[bytes | None, bytes]]):
    def __init__(
        self,
        inner: StatelessSinkPartition[tuple[bytes | None, bytes]],
        batches: list[tuple[float, list[bytes]]],
    ):
        self._inner = inner
        self._batches = batches

    def write_batch(self, items: list[tuple[bytes | None, bytes]]) -> None:
        self._batches.append((time.time(), [value for _, value in items]))
        self._inner.write_batch(items)

    def close(self) -> None:
        self._inner.close()


class TimedActionLog(DynamicSink[tuple[bytes | None, bytes]]):
    """The Kafka action log, noting the wall time each batch of actions reaches it."""

    def __init__(self, inner: KafkaProducerSink) -> None:
        self._inner = inner
        self.batches: list[tuple[float, list[bytes]]] = []

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[tuple[bytes | None, bytes]]:
        return _TimedPartition(self._inner.build(step_id, worker_index, worker_count), self.batches)


def _live_job(
    spec: JobSpec, ready: Path, stop: Path
) -> tuple[list[Decided], list[Decided], ProcessRun]:
    """Child process: run the live job until stopped; (action log, delivery starts, what
    the process did)."""
    tune_gc()
    run = ProcessRun()
    source = KafkaBatchSource(spec.brokers, [spec.topic], tail=True, batch_size=spec.batch_size)
    log = TimedActionLog(KafkaProducerSink(spec.brokers, spec.actions_topic))
    flow, deliveries = assemble(
        spec,
        StoppableSource(source, ready, stop),
        Metrics(),
        live=True,
        progress=counting(run),
        actions_sink=log,
    )
    cli_main(  # type: ignore[no-untyped-call]
        flow, workers_per_process=1, epoch_interval=timedelta(seconds=spec.epoch_seconds)
    )
    finish(run, deliveries)
    logged: list[Decided] = []
    for at, values in log.batches:
        for value in values:
            action = orjson.loads(value)
            on_arrival = action["decided_at"] == action["event_at"]
            logged.append((action["event_id"], on_arrival, at))
    return logged, deliveries, run


@dataclass
class Produced:
    """What the producer did: produce time by event id, and when it ran."""

    at: dict[str, float]
    started: float
    ended: float

    @property
    def rate(self) -> float:
        return len(self.at) / (self.ended - self.started)


def _restamp(record: bytes, ts: str) -> bytes:
    """The record with its event time replaced (the text between ``"ts":"`` and ``"``)."""
    start = record.index(b'"ts":"') + 6
    end = record.index(b'"', start)
    return record[:start] + ts.encode() + record[end:]


def _paced_producer(
    brokers: str,
    topic: str,
    *,
    rate: float,
    seconds: float,
    seed: int,
    ready: Path,
    clock: str = "simulated",
) -> Produced:
    """Child process: produce ``rate`` x ``seconds`` simulated events at a fixed rate.

    ``clock``: ``simulated`` keeps the simulator's event times, so the run replays weeks
    of event time in seconds and every daily and weekly deadline of every player falls
    due during it; ``wall`` stamps each event with the time it is produced, as a live
    casino's firehose is (the players, their order and what they do are the same).
    """
    count = int(rate * seconds)
    records = []
    for record in simulate(SimulatorConfig(seed=seed, events=count)):
        event = orjson.loads(record)
        records.append((event["player_id"].encode(), record, event["event_id"]))
    restamp = clock == "wall"
    producer = Producer(kafka_producer_config(brokers, {"linger.ms": "1"}))
    producer.list_topics(timeout=10)  # an idempotent producer starts slowly without it
    deadline = time.monotonic() + 120
    while not ready.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the live job did not open its partitions within 120 s")
        time.sleep(0.01)
    time.sleep(1.0)  # let the job's first fetches settle
    produce, poll, at = producer.produce, producer.poll, {}
    sent = 0
    started = time.time()
    while sent < count:
        now = time.time()
        due = min(count, int((now - started) * rate) + 1)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        for key, record, event_id in records[sent:due]:
            value = _restamp(record, stamp) if restamp else record
            while True:
                try:
                    produce(topic, value, key)
                    break
                except BufferError:
                    poll(0.01)
            at[event_id] = now
        sent = due
        poll(0)
        time.sleep(0.001)
    ended = time.time()
    if producer.flush(30):
        raise RuntimeError(f"producing to {topic!r}: records left unacknowledged")
    return Produced(at, started, ended)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (q in 0..100)."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class LatencyRun:
    """One run's figures: latencies in seconds, ascending."""

    target_rate: float
    clock: str
    produced_rate: float
    to_log: list[float]
    to_delivery: list[float]
    job: ProcessRun  # the live job's records, batches and CPU time

    def summary(self, which: str) -> tuple[float, float, float]:
        values = self.to_log if which == "log" else self.to_delivery
        return percentile(values, 50), percentile(values, 99), percentile(values, 99.9)


def _latencies(decided: list[Decided], produced: Produced, warmup: float) -> list[float]:
    since = produced.started + warmup
    out = []
    for event_id, on_arrival, at in decided:
        sent_at = produced.at.get(event_id)
        if on_arrival and sent_at is not None and sent_at >= since:
            out.append(at - sent_at)
    return sorted(out)


def measure(
    spec: JobSpec,
    rate: float,
    seconds: float,
    workdir: Path,
    *,
    seed: int = 7,
    warmup: float = 2.0,
    clock: str = "simulated",
) -> LatencyRun:
    """Run the live job with events produced at ``rate`` for ``seconds``, their event
    times as simulated or the wall clock's (``clock``: see ``_paced_producer``).

    ``spec.topic`` must exist and be empty: the job reads it from the beginning.
    """
    ready, stop = workdir / f"{spec.topic}.ready", workdir / f"{spec.topic}.stop"
    spawn = get_context("spawn")
    with (
        ProcessPoolExecutor(1, mp_context=spawn) as job_pool,
        ProcessPoolExecutor(1, mp_context=spawn) as producer_pool,
    ):
        job = job_pool.submit(_live_job, spec, ready, stop)
        producer = producer_pool.submit(
            _paced_producer,
            spec.brokers,
            spec.topic,
            rate=rate,
            seconds=seconds,
            seed=seed,
            ready=ready,
            clock=clock,
        )
        produced: Produced = producer.result()
        stop.touch()
        logged, deliveries, run = job.result()
    return LatencyRun(
        rate,
        clock,
        produced.rate,
        _latencies(logged, produced, warmup),
        _latencies(deliveries, produced, warmup),
        run,
    )
