"""Issue 7's benchmark suite: one command, one machine, one table.

Run: ``.venv/bin/python bench/suite.py`` (about 13 minutes here; ``--quick`` about 3).

It starts Tansu (the Kafka-protocol broker the tests use) and the loopback channel
providers of ``bench/servers.py``, produces N simulated events into a 4-partition
topic, then measures, interleaving R rounds and reporting medians:

* events/s of the raw ceiling (``bench/throughput.py``'s bare confluent-kafka consumer
  that only decodes), of Pitboss with no config and of Pitboss with the full starter
  pack (campaigns, gamification, guards, every channel sender pointed at the loopback
  providers, action log and dead letters to Kafka), one worker each;
* the full starter pack with 2 workers in one process and with 2 processes of one
  worker (a Bytewax cluster on loopback), and the CPU seconds per million events of
  each (user + system of every process, first batch decoded to the end of the run);
* event -> decision latency (p50, p99, p99.9) of the live job with the full starter
  pack while events are produced at a fixed share (50%) of the full pack's median
  rate above (``bench/latency.py`` says how it is measured);
* resident memory per player and peak RSS at 100k and 1M players
  (``bench/memory.py``'s fold, each size in a fresh process).

Every job runs in a fresh process (``bench/jobs.py``). Guard stores, delivery ledgers
and the in-app inbox are in process memory unless ``--redis URL`` is given.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.jobs import ClusterRun, JobSpec, bounded, in_child
from bench.latency import LatencyRun, measure
from bench.memory import fold
from bench.servers import loopback_providers
from bench.throughput import PARTITIONS, ceiling, variants
from pipeline.produce import produce_records
from pipeline.simulator import SimulatorConfig, simulate
from tests.support.tansu import TansuBroker, create_topic

TARGET_RATE = 100_000  # events/s per worker, full starter pack
TARGET_CPU_RATIO = 1.20  # CPU s per million events, 2 processes vs 1
TARGET_P99 = 0.250  # seconds, event -> decision at 50% of the maximum rate
TARGET_RSS = 1024  # bytes resident per player


@dataclass
class Round:
    """One round of the throughput measurements."""

    ceiling: float
    bare: ClusterRun  # no config
    full: ClusterRun  # full starter pack, 1 process x 1 worker
    workers2: ClusterRun  # 1 process x 2 workers
    processes2: ClusterRun  # 2 processes x 1 worker


@dataclass
class Row:
    """A line of the table: per-round values, their median, the target if any."""

    name: str
    values: list[float]
    fmt: Callable[[float], str]
    target: str = ""
    met: Callable[[float], bool] | None = None
    median: float = field(init=False)

    def __post_init__(self) -> None:
        self.median = statistics.median(self.values)

    def cells(self, rounds: int) -> list[str]:
        values = [self.fmt(v) for v in self.values] + [""] * (rounds - len(self.values))
        verdict = ""
        if self.met is not None:
            verdict = "met" if self.met(self.median) else "missed"
        return [self.name, *values, f"**{self.fmt(self.median)}**", self.target, verdict]


def rate(value: float) -> str:
    return f"{value:,.0f}"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


def seconds(value: float) -> str:
    return f"{value:.1f}"


def millis(value: float) -> str:
    return f"{value * 1000:,.0f} ms"


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def code_state() -> str:
    """The commit measured, and whether the working tree differs from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True)
        return done.stdout

    try:
        head = git("rev-parse", "--short", "HEAD").strip()
        changed = git("status", "--porcelain", "pipeline", "operators", "sinks").splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{head}" + (f" + uncommitted changes in {len(changed)} files" if changed else "")


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 2**20:.0f} GiB"
    return (
        f"{os.cpu_count()} vCPU {model}, {memory}, CPython {platform.python_version()}, "
        f"load average {load_average()}"
    )


@contextmanager
def redis_prefixes(url: str | None) -> Iterator[Callable[[JobSpec], JobSpec]]:
    """Give each run its own Redis key prefix (ledgers would otherwise skip every
    delivery of a repeated run as a duplicate), and delete the keys afterwards."""
    prefixes: list[str] = []

    def fresh(spec: JobSpec) -> JobSpec:
        if url is None:
            return spec
        prefix = f"pitboss-bench:{uuid.uuid4().hex[:8]}:"
        prefixes.append(prefix)
        return replace(spec, redis_url=url, redis_prefix=prefix)

    try:
        yield fresh
    finally:
        if url is not None and prefixes:
            from sinks.stores.redis import connect

            client = connect(url)
            for prefix in prefixes:
                keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
                for start in range(0, len(keys), 1000):
                    client.delete(*keys[start : start + 1000])


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Setup:
    """What every throughput round reads and runs."""

    brokers: str
    topic: str
    events: int
    bare: JobSpec  # no config
    full: JobSpec  # the full starter pack
    fresh: Callable[[JobSpec], JobSpec]  # a spec with its own Redis prefix, if any


def throughput_round(number: int, setup: Setup) -> Round:
    """One interleaved round of every throughput measurement."""
    full, fresh = setup.full, setup.fresh
    top = ceiling(setup.brokers, setup.topic, setup.events)
    none = bounded(setup.bare)
    one = bounded(fresh(full))
    two_workers = bounded(fresh(replace(full, workers=2)))
    two_processes = bounded(fresh(full), processes=2)
    _say(
        f"round {number}: ceiling {top:,.0f}/s, no config {none.rate:,.0f}/s, full pack "
        f"{one.rate:,.0f}/s ({one.cpu_per_million:.1f} CPU s/M), 2 workers "
        f"{two_workers.rate:,.0f}/s ({two_workers.cpu_per_million:.1f}), 2 processes "
        f"{two_processes.rate:,.0f}/s ({two_processes.cpu_per_million:.1f}); "
        f"deliveries per run {one.deliveries:,}; load {load_average()}"
    )
    return Round(top, none, one, two_workers, two_processes)


def throughput_rows(rounds: Sequence[Round]) -> list[Row]:
    def each(get: Callable[[Round], float]) -> list[float]:
        return [get(r) for r in rounds]

    return [
        Row(
            "raw ceiling: bare consumer + orjson decode, events/s", each(lambda r: r.ceiling), rate
        ),
        Row("Pitboss, no config, 1 worker, events/s", each(lambda r: r.bare.rate), rate),
        Row(
            "Pitboss, full starter pack, 1 worker, events/s",
            each(lambda r: r.full.rate),
            rate,
            f">= {TARGET_RATE:,}",
            lambda v: v >= TARGET_RATE,
        ),
        Row(
            "full pack, 2 workers in 1 process, events/s per worker",
            each(lambda r: r.workers2.rate / 2),
            rate,
        ),
        Row(
            "full pack, 2 processes x 1 worker, events/s per worker",
            each(lambda r: r.processes2.rate / 2),
            rate,
        ),
        Row(
            "speed-up, 2 workers / 1 (total events/s, same round)",
            each(lambda r: r.workers2.rate / r.full.rate),
            ratio,
        ),
        Row(
            "speed-up, 2 processes / 1 (total events/s, same round)",
            each(lambda r: r.processes2.rate / r.full.rate),
            ratio,
        ),
        Row(
            "CPU s per million events, no config, 1 worker",
            each(lambda r: r.bare.cpu_per_million),
            seconds,
        ),
        Row(
            "CPU s per million events, full pack, 1 process",
            each(lambda r: r.full.cpu_per_million),
            seconds,
        ),
        Row(
            "CPU s per million events, full pack, 2 workers in 1 process",
            each(lambda r: r.workers2.cpu_per_million),
            seconds,
        ),
        Row(
            "CPU s per million events, full pack, 2 processes",
            each(lambda r: r.processes2.cpu_per_million),
            seconds,
        ),
        Row(
            "CPU per event, 2 workers / 1 (same round)",
            each(lambda r: r.workers2.cpu_per_million / r.full.cpu_per_million),
            ratio,
        ),
        Row(
            "CPU per event, 2 processes / 1 (same round)",
            each(lambda r: r.processes2.cpu_per_million / r.full.cpu_per_million),
            ratio,
            f"<= {TARGET_CPU_RATIO:.2f}x",
            lambda v: v <= TARGET_CPU_RATIO,
        ),
    ]


def latency_rows(runs: Sequence[LatencyRun]) -> list[Row]:
    rows = [Row("latency runs: events/s produced", [r.produced_rate for r in runs], rate)]
    for which, label in (("log", "event -> action log"), ("delivery", "event -> delivery start")):
        for index, name in enumerate(("p50", "p99", "p99.9")):
            values = [r.summary(which)[index] for r in runs]
            target, met = "", None
            if which == "log" and name == "p99":
                target, met = f"< {TARGET_P99 * 1000:.0f} ms", (lambda v: v < TARGET_P99)
            rows.append(Row(f"{label}, {name}", values, millis, target, met))
    rows.append(
        Row(
            "actions measured per run (event -> action log)",
            [float(len(r.to_log)) for r in runs],
            rate,
        )
    )
    rows.append(
        Row(
            "live job: records per poll (mean)",
            [r.job.events / max(1, r.job.batches - 1) for r in runs],
            rate,
        )
    )
    rows.append(
        Row(
            "live job: CPU s per million events",
            [r.job.cpu_seconds / max(1, r.job.events) * 1e6 for r in runs],
            seconds,
        )
    )
    return rows


CLOCKS = {
    "wall": "stamped when produced (as live traffic)",
    "simulated": "as simulated (weeks in seconds: every daily and weekly deadline falls due)",
}


def print_table(title: str, rows: Sequence[Row], rounds: int) -> None:
    heads = ["measure", *(f"round {n + 1}" for n in range(rounds)), "median", "target", ""]
    print(f"\n{title}\n")
    print("| " + " | ".join(heads) + " |")
    print("|" + "---|" * len(heads))
    for row in rows:
        print("| " + " | ".join(row.cells(rounds)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=300_000, help="events in the topic")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved throughput rounds")
    parser.add_argument("--latency-rounds", type=int, default=3, help="0: none")
    parser.add_argument("--latency-seconds", type=float, default=15.0, help="per latency run")
    parser.add_argument("--latency-share", type=float, default=0.5, help="of the maximum rate")
    parser.add_argument(
        "--latency-clock",
        choices=("wall", "simulated", "both"),
        default="both",
        help="event times of the latency runs: stamped when produced (wall), as simulated "
        "(weeks of event time in seconds: every daily and weekly deadline falls due), or both",
    )
    parser.add_argument(
        "--max-rate",
        type=float,
        help="skip the throughput rounds and run the latency runs at a share of this rate",
    )
    parser.add_argument(
        "--players",
        type=int,
        nargs="*",
        default=[100_000, 1_000_000],
        help="sizes; --players alone skips the memory rows",
    )
    parser.add_argument("--epoch-seconds", type=float, default=10.0, help="Bytewax epoch")
    parser.add_argument("--redis", metavar="URL", help="guard stores etc. in Redis")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="100k events, 2 rounds, one 10 s latency run, 100k players only",
    )
    args = parser.parse_args()
    if args.quick:
        args.events, args.rounds = 100_000, 2
        args.latency_rounds, args.latency_seconds = 1, 10.0
        args.players = [100_000]

    started = time.perf_counter()
    print(f"machine: {machine()}")
    print(f"code: {code_state()}")
    print(f"command: {' '.join(sys.argv)}")
    with (
        TansuBroker() as broker,
        loopback_providers() as providers,
        tempfile.TemporaryDirectory() as tmp,
        redis_prefixes(args.redis) as fresh,
    ):
        brokers, topic = broker.bootstrap, "bench-events"
        create_topic(broker.bootstrap, topic, PARTITIONS)
        bare = JobSpec(brokers, topic, epoch_seconds=args.epoch_seconds)
        create_topic(brokers, bare.actions_topic, PARTITIONS)
        create_topic(brokers, bare.dead_letters_topic, 1)
        full = replace(
            bare,
            config=variants(Path(tmp))["full starter pack"],
            providers=providers.settings(),
        )
        began = time.perf_counter()
        produce_records(brokers, topic, simulate(SimulatorConfig(seed=1, events=args.events)))
        _say(f"produced {args.events:,} events in {time.perf_counter() - began:.1f} s")

        setup = Setup(brokers, topic, args.events, bare, full, fresh)
        rounds = []
        if args.max_rate is None:
            rounds = [throughput_round(n + 1, setup) for n in range(args.rounds)]
            max_rate = statistics.median(r.full.rate for r in rounds)
        else:
            max_rate = args.max_rate
        live_rate = args.latency_share * max_rate
        clocks = ("wall", "simulated") if args.latency_clock == "both" else (args.latency_clock,)
        runs: dict[str, list[LatencyRun]] = {clock: [] for clock in clocks}
        for n in range(args.latency_rounds):
            for clock in clocks:  # interleaved, like the throughput rounds
                live = fresh(replace(full, topic=f"bench-live-{clock}-{n}"))
                create_topic(brokers, live.topic, PARTITIONS)
                run = measure(
                    live, live_rate, args.latency_seconds, Path(tmp), seed=100 + n, clock=clock
                )
                runs[clock].append(run)
                p50, p99, p999 = run.summary("log")
                _say(
                    f"latency {n + 1} ({clock} clock) at {run.produced_rate:,.0f}/s: "
                    f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, p99.9 "
                    f"{p999 * 1000:.0f} ms; job {run.job.cpu_seconds:.1f} CPU s for "
                    f"{run.job.events:,} records in {run.job.batches:,} polls; "
                    f"load {load_average()}"
                )
        received = providers.counts()

    memory = []
    for players in args.players:
        per_player, peak_kib = in_child(fold, players)
        memory.append((players, per_player, peak_kib))
        _say(f"memory at {players:,} players: {per_player:,.0f} B/player")

    print(
        f"\n{args.events:,} events, {args.rounds} rounds; full starter pack = campaigns, "
        "gamification, guards, senders to loopback SMTP/HTTP providers, action log to Kafka; "
        f"stores {'in Redis' if args.redis else 'in process memory'}"
    )
    if rounds:
        print_table(
            "Throughput and scaling (medians of interleaved rounds)",
            throughput_rows(rounds),
            args.rounds,
        )
    for clock, clock_runs in runs.items():
        if not clock_runs:  # --latency-rounds 0
            continue
        print_table(
            f"Latency, live job at {args.latency_share:.0%} of the full pack's median rate "
            f"({live_rate:,.0f} events/s), {args.latency_seconds:.0f} s per run, event "
            f"times {CLOCKS[clock]}",
            latency_rows(clock_runs),
            args.latency_rounds,
        )
    print(
        "\nMemory (bench/memory.py: every player resident after a first session, no"
        " eviction, the watermark a minute behind each batch as in the job; bench/eviction.py"
        " measures a lapsing population with eviction)"
    )
    print("\n| players | RSS per player, bytes | peak RSS, MiB | target | |")
    print("|---|---|---|---|---|")
    for players, per_player, peak_kib in memory:
        verdict = "met" if per_player <= TARGET_RSS else "missed"
        print(
            f"| {players:,} | {per_player:,.0f} | {peak_kib / 1024:,.0f} | <= {TARGET_RSS:,} | "
            f"{verdict} |"
        )
    print(f"\nprovider requests received: {received}")
    print(f"suite time {time.perf_counter() - started:.0f} s; load average {load_average()}")


if __name__ == "__main__":
    main()
