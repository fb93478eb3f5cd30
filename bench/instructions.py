"""Instructions per event of the full pipeline, by configuration: a noise-free ratio.

Run: ``.venv/bin/python bench/instructions.py [--events 20000,120000] [--configs ...]``.

Wall and CPU time on a shared machine move 15-40% from one run of the same work to the
next (bench/README.md), more than the differences worth knowing. Instructions do not:
``valgrind --tool=callgrind`` counts the instructions a process executes, the same for
the same binary and input whatever else the machine is doing. This script starts Tansu,
produces the simulator's events into one topic per size, and runs ``bench/throughput.py``'s
pipeline (one Bytewax worker, reading the topic to its end) under callgrind, once per
configuration and size, each in a fresh process. Start-up (imports, loading the config,
connecting) is the same at every size, so the difference between two sizes divided by
the difference in events is the cost of one more event; the configurations are compared
by that marginal cost.

Instructions are not time: cache misses and the allocator cost cycles that no count
shows, so the wall-time ratio of ``bench/throughput.py --configs`` stays the figure of
record. This one says what the code costs, to the instruction. Each run takes about 50
times as long as it would natively (about 10 minutes for the defaults here).

The broker runs natively; the job's librdkafka threads run under valgrind with it, so
their polling counts too (the same in every configuration).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.throughput import PARTITIONS, variants
from pipeline.produce import produce_records
from pipeline.simulator import SimulatorConfig, simulate
from tests.support.tansu import TansuBroker, create_topic

REPO = Path(__file__).resolve().parent.parent
BASELINE = "no config (first triggers)"


def counted(brokers: str, topic: str, events: int, config: Path | None) -> int:
    """Instructions callgrind counted for one bounded run of the pipeline."""
    command = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "bench.instructions",
        "--job",
        brokers,
        topic,
        str(events),
        str(config or ""),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"callgrind run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(found.group(1))


def job(brokers: str, topic: str, events: int, config: str) -> None:
    """One pipeline run (what callgrind measures)."""
    from bench.throughput import pipeline
    from pipeline.cli import tune_gc

    tune_gc()  # as `pitboss` does
    pipeline(brokers, topic, events, Path(config) if config else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", default="20000,120000", help="two sizes, comma-separated")
    parser.add_argument(
        "--configs",
        default=f"{BASELINE},gamification",
        help="comma-separated, from: no config (first triggers), campaigns, gamification, "
        "full starter pack",
    )
    parser.add_argument("--job", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        brokers, topic, events, config = args.job
        job(brokers, topic, int(events), config)
        return
    small, large = sorted(int(n) for n in args.events.split(","))
    names = [name.strip() for name in args.configs.split(",")]
    with TansuBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        configs = variants(Path(tmp))
        unknown = [name for name in names if name not in configs]
        if unknown:
            raise SystemExit(f"unknown configuration(s) {unknown}; known: {sorted(configs)}")
        for size in (small, large):
            create_topic(broker.bootstrap, f"events-{size}", PARTITIONS)
            produce_records(
                broker.bootstrap, f"events-{size}", simulate(SimulatorConfig(seed=1, events=size))
            )
        per_event: dict[str, float] = {}
        for name in names:
            runs = [
                counted(broker.bootstrap, f"events-{n}", n, configs[name]) for n in (small, large)
            ]
            per_event[name] = (runs[1] - runs[0]) / (large - small)
            print(
                f"{name}: {runs[0]:,} instructions at {small:,} events, {runs[1]:,} at "
                f"{large:,}: {per_event[name]:,.0f} per event",
                flush=True,
            )
    base = per_event.get(BASELINE)
    print()
    print("| configuration | instructions per event | vs no config |")
    print("|---|---|---|")
    for name, value in per_event.items():
        ratio = f"{value / base:.3f}x" if base else "-"
        print(f"| {name} | {value:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
