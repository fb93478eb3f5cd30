"""The job as the suite measures it: ``pitboss run``'s dataflow in a fresh child process.

Each measured run is a new process (``spawn``), so no run inherits another's heap, and
its CPU time is its own: ``getrusage`` of the process (every thread: Bytewax workers,
librdkafka's threads, the HTTP and SMTP clients) between the first batch decoded and
the end of the run. Several processes form one Bytewax cluster on loopback
(``process_id``/``addresses``, as ``python -m bytewax.run -i/-a`` and ``pitboss run
-i/-a`` do).

The flow is ``production_flow``'s shape: Kafka in, the action log and dead letters to
Kafka topics (``keyed_outputs=False``), with the services ``pitboss run`` builds from
settings (``build_services``): the channel senders point at the loopback providers of
``bench/servers.py``, stores in process memory (or Redis, with ``redis_url``).
"""

from __future__ import annotations

import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeAlias, cast

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink
from bytewax.run import cli_main

from operators.actions import Action
from operators.triggers import TriggerSettings
from pipeline.cli import tune_gc
from pipeline.flow import FlowOptions, Services, build_flow
from pipeline.kafka import KafkaBatchSource, KafkaProducerSink
from pipeline.metrics import Metrics
from pipeline.records import RawBatch
from pipeline.rulebook import RuleBook
from pipeline.services import build_services
from pipeline.settings import Settings
from sinks.base import ResilientSender
from sinks.contacts import Contacts
from tests.support.tansu import free_port


class EveryoneReachable:
    """A contact directory with an address, a number and a device token for every
    player: what the operator's CRM sync would have written (the engine's actions carry
    no contact details; without a directory entry every email, SMS and push is
    ``suppressed:no_contact`` and never reaches a provider)."""

    def lookup(self, player_id: str) -> Contacts | None:
        return Contacts.of(
            email=f"{player_id}@players.example",
            phone="+4915100000000",
            push_token=f"token-{player_id}",
        )


Decided: TypeAlias = tuple[str, bool, float]
"""(triggering event id, decided on that event's arrival, wall time): one action seen."""


@dataclass(frozen=True)
class JobSpec:
    """One measured configuration of the job."""

    brokers: str
    topic: str
    config: Path | None = None  # None: the first triggers, no guards file
    providers: dict[str, Any] | None = None  # Settings fields for the channel senders
    redis_url: str | None = None  # shared stores in Redis instead of process memory
    redis_prefix: str = "pitboss-bench:"
    contacts: bool = True  # a contact for every player (EveryoneReachable)
    workers: int = 1  # per process
    batch_size: int = 2000  # records per poll (Settings.consumer_batch_size)
    epoch_seconds: float = 10.0  # Settings.epoch_interval_seconds
    actions_topic: str = "bench-actions"
    dead_letters_topic: str = "bench-dead-letters"


@dataclass
class ProcessRun:
    """What one process saw: events decoded, wall and CPU time from its first batch."""

    events: int = 0  # records decoded after the first batch
    first_at: float = 0.0  # wall time (time.time) of the first batch decoded
    end_at: float = 0.0  # wall time the run ended
    cpu_seconds: float = 0.0  # user + system CPU of the process, first batch to end
    deliveries: int = 0  # actions handed to a channel sender
    batches: int = 0  # batches decoded (records per poll = events / batches)


@dataclass
class ClusterRun:
    """All processes of one run together."""

    processes: list[ProcessRun]
    workers: int = field(default=1)

    @property
    def events(self) -> int:
        return sum(p.events for p in self.processes)

    @property
    def deliveries(self) -> int:
        return sum(p.deliveries for p in self.processes)

    @property
    def seconds(self) -> float:
        return max(p.end_at for p in self.processes) - min(p.first_at for p in self.processes)

    @property
    def rate(self) -> float:
        """Events per second, all workers together."""
        return self.events / self.seconds

    @property
    def cpu_per_million(self) -> float:
        """CPU seconds of every process per million events."""
        return sum(p.cpu_seconds for p in self.processes) / self.events * 1e6


def cpu_seconds() -> float:
    """User + system CPU of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class TimedSender:
    """A channel sender, wrapped: notes when each delivery starts (the decision is made
    by then)."""

    def __init__(self, inner: ResilientSender, log: list[Decided]) -> None:
        self._inner = inner
        self._log = log

    def deliver(self, action: Action) -> Any:
        on_arrival = action.decided_at == action.event_at
        self._log.append((action.event_id, on_arrival, time.time()))
        return self._inner.deliver(action)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def services_for(spec: JobSpec, rulebook: RuleBook, metrics: Metrics) -> Services:
    """The stores and senders ``pitboss run`` would build for this configuration."""
    guards = rulebook.current.guards
    if spec.providers is None and spec.redis_url is None:
        return Services.in_memory(guards)
    settings = Settings(
        **(spec.providers or {}),
        redis_url=spec.redis_url,
        redis_prefix=spec.redis_prefix,
        metrics_port=0,
        leaderboard_port=0,
    )
    return build_services(settings, guards, metrics)


def time_deliveries(services: Services, contacts: bool) -> list[Decided]:
    """Wrap every sender in a TimedSender; returns the log they append to."""
    log: list[Decided] = []
    for channel, sender in list(services.senders.items()):
        services.senders[channel] = cast(ResilientSender, TimedSender(sender, log))
    if contacts and services.senders:
        services.contacts = EveryoneReachable()
    return log


def assemble(
    spec: JobSpec,
    source: Source[RawBatch],
    metrics: Metrics,
    *,
    live: bool,
    progress: Callable[[int], None] | None = None,
    actions_sink: Sink[Any] | None = None,
) -> tuple[Dataflow, list[Decided]]:
    """``production_flow`` with this source (and optionally another action log sink)."""
    rulebook = RuleBook(spec.config, TriggerSettings())
    services = services_for(spec, rulebook, metrics)
    deliveries = time_deliveries(services, spec.contacts)
    flow = build_flow(
        source,
        actions_sink or KafkaProducerSink(spec.brokers, spec.actions_topic),
        KafkaProducerSink(spec.brokers, spec.dead_letters_topic),
        options=FlowOptions(rulebook=rulebook, live=live),
        metrics=metrics,
        keyed_outputs=False,
        progress=progress,
        services=services,
    )
    return flow, deliveries


def counting(run: ProcessRun) -> Callable[[int], None]:
    """The flow's progress callback: counts batches and records into ``run``, and notes
    the wall and CPU time of the first batch (its records are not counted: the steady
    state starts after it)."""
    lock = threading.Lock()  # workers of one process call it from their own threads

    def mark(count: int) -> None:
        with lock:
            run.batches += 1
            if run.first_at == 0.0:
                run.first_at = time.time()
                run.cpu_seconds = -cpu_seconds()
            else:
                run.events += count

    return mark


def finish(run: ProcessRun, deliveries: Sequence[Decided]) -> ProcessRun:
    """Close ``run`` at the end of the job: wall and CPU time, deliveries."""
    run.end_at = time.time()
    run.cpu_seconds += cpu_seconds()
    run.deliveries = len(deliveries)
    return run


def _bounded_process(
    spec: JobSpec, process_id: int | None = None, addresses: Sequence[str] | None = None
) -> ProcessRun:
    """Child process: read the topic to its end and report what it measured."""
    tune_gc()  # as `pitboss` does
    run = ProcessRun()
    mark = counting(run)
    source = KafkaBatchSource(spec.brokers, [spec.topic], tail=False, batch_size=spec.batch_size)
    flow, deliveries = assemble(spec, source, Metrics(), live=False, progress=mark)
    cluster: dict[str, Any] = {}
    if addresses is not None:
        cluster = {"process_id": process_id, "addresses": list(addresses)}
    cli_main(  # type: ignore[no-untyped-call]
        flow,
        workers_per_process=spec.workers,
        epoch_interval=timedelta(seconds=spec.epoch_seconds),
        **cluster,
    )
    return finish(run, deliveries)


def in_child(function: Callable[..., Any], *args: Any) -> Any:
    """Run ``function(*args)`` in a fresh interpreter and return its result."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def bounded(spec: JobSpec, processes: int = 1) -> ClusterRun:
    """Run the job over the whole topic with ``processes`` x ``spec.workers`` workers."""
    if processes == 1:
        return ClusterRun([in_child(_bounded_process, spec)], spec.workers)
    addresses = [f"127.0.0.1:{free_port()}" for _ in range(processes)]
    pools = [ProcessPoolExecutor(1, mp_context=get_context("spawn")) for _ in range(processes)]
    try:
        futures = [
            pool.submit(_bounded_process, spec, index, addresses)
            for index, pool in enumerate(pools)
        ]
        runs = [future.result() for future in futures]
    finally:
        for pool in pools:
            pool.shutdown()
    return ClusterRun(runs, spec.workers * processes)
