"""What decoding costs per event, by step, on the simulator's firehose.

Run: ``.venv/bin/python bench/decode.py [--events N] [--rounds R]``. It simulates N
events (their JSON records, as the producer writes them), then times, best of R in one
process with the job's garbage-collector settings: ``orjson.loads`` of every record;
pydantic validation of the parsed batch (the ``list[Event]`` adapter ``decode_batch``
uses); the whole ``decode_batch`` (parse, pre-checks, validation, event times,
dead-letter bookkeeping); and rebuilding a shard slice that crossed to another process
(``pickle.loads`` of a pickled ``EventSlice``). Then validation per event type.
Best-of rather than median: each step is deterministic work, and the minimum is the
least disturbed by the machine's other tenants.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.cli import tune_gc
from pipeline.decode import _CLEAN_BATCH, EventSlice, decode_batch
from pipeline.records import RawBatch
from pipeline.simulator import SimulatorConfig, simulate


def best_per_event(work: Callable[[], Any], count: int, rounds: int) -> float:
    """The fastest of ``rounds`` runs of ``work``, in µs per event."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    tune_gc()  # as `pitboss` does: otherwise the cyclic collector's passes dominate

    raws = list(simulate(SimulatorConfig(seed=1, events=args.events)))
    count, rounds = len(raws), args.rounds
    parsed = [orjson.loads(raw) for raw in raws]
    batch = RawBatch("bench/0", raws, list(range(count)))
    decoded = decode_batch(batch)
    part = EventSlice()
    for pair, raw in zip(decoded.events, decoded.raws, strict=True):
        part.add(pair, raw)
    pickled = pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)

    print(f"{count:,} simulated records, best of {rounds} runs, µs per event")
    print()
    print("| step | µs per event |")
    print("|---|---|")
    steps: dict[str, Callable[[], Any]] = {
        "orjson.loads of each record": lambda: [orjson.loads(raw) for raw in raws],
        "validation of the parsed batch (list[Event])": lambda: _CLEAN_BATCH.validate_python(
            parsed
        ),
        "decode_batch (all of the above and the rest)": lambda: decode_batch(batch),
        "a slice arriving from another process (unpickle)": lambda: pickle.loads(pickled),
    }
    for name, work in steps.items():
        print(f"| {name} | {best_per_event(work, count, rounds):.2f} |")

    by_type: dict[str, list[Any]] = defaultdict(list)
    for record in parsed:
        by_type[record["type"]].append(record)
    print()
    print("| event type | records | validation, µs per event |")
    print("|---|---|---|")
    for etype, records in sorted(by_type.items(), key=lambda kv: -len(kv[1])):
        cost = best_per_event(partial(_CLEAN_BATCH.validate_python, records), len(records), rounds)
        print(f"| {etype} | {len(records):,} | {cost:.2f} |")


if __name__ == "__main__":
    main()
