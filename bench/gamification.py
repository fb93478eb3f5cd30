"""The cost of gamification in the player operator: the shipped config vs no rules.

Run: ``.venv/bin/python bench/gamification.py [--events N] [--rounds R] [--config DIR]``.

The simulator's firehose is decoded once; then, alternating R times in one process, the
same pre-decoded events are folded through a fresh ``PlayerShard(rules=[])`` and through a
fresh ``PlayerShard(rules=[load_gamification(config, templates)])``, in batches of 2000 with the
watermark at each batch's newest event minus 60 s, then to the end of time (every window
flushed, every mission expired). It prints the medians (events/s, process CPU time, as
the machine may be shared), the slowdown, what the rule set emitted, and the state it
adds per player.

``--breakdown`` also times the configuration's files added one at a time.

Results, 2026-11-23, 2 vCPU AMD EPYC shared with other jobs (hence CPU time), Python
3.11, 200,000 simulated events (143 players, 35 days), 7 rounds, ``config/gamification``
as shipped (``bench/gamification.py --rounds 7 --breakdown``):

=========================================  ============  ==============
measure                                    no rules      gamification
=========================================  ============  ==============
median events/s, CPU time                  373,017       160,353
median events/s, wall time                 331,227       150,510
median slowdown, CPU time (wall)                         2.35x (2.29x)
actions emitted                            0             12,034
state per player, pickled bytes            706           879
=========================================  ============  ==============

Files added one at a time (median CPU slowdown, actions emitted): settings alone (the
window bookkeeping on every bet) 1.18x, 0; + points 1.42x, 2,831; + leaderboards 1.71x,
5,773; + levels 1.70x, 6,095; + badges 1.84x, 6,656; + missions 2.33x, 12,034.

The target was 1.3x; the shipped configuration misses it. Where the time goes: each
action costs the engine about 10 us (the ``Intent``, the guards' ``Action`` model, the
signal pass), about 0.25x for these 12,034; mission progress is checked on every bet of
a player with a running mission (two, for most depositors: the daily and the weekly
one), about 2 us a bet, about 0.25x; win multipliers need each round's stake remembered
(about 0.1x); the window itself costs about 0.45 us an event (the 1.18x).
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
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from operators.actions import Action
from operators.engine import PlayerShard
from operators.gamification import load_gamification
from operators.rules import RuleSet
from pipeline.cli import tune_gc
from pipeline.decode import decode_batch
from pipeline.events import Event
from pipeline.records import RawBatch
from pipeline.simulator import SimulatorConfig, simulate

BATCH = 2000
LATENESS = 60
Batches = list[tuple[int, list[tuple[int, Event]]]]


def decoded(events: int, seed: int) -> Batches:
    """The simulator's records, decoded once: ``(high mark, events)`` per batch."""
    records = list(simulate(SimulatorConfig(seed=seed, events=events)))
    batches: Batches = []
    for i in range(0, len(records), BATCH):
        batch = decode_batch(RawBatch("sim", records[i : i + BATCH], list(range(BATCH))))
        batches.append((batch.high_mark or 0, batch.events))
    return batches


def fold(batches: Batches, rules: list[RuleSet]) -> tuple[float, float, list[Action], PlayerShard]:
    """``(wall seconds, CPU seconds, actions, shard)`` of one full fold."""
    gc.collect()
    shard = PlayerShard(rules=rules)
    actions: list[Action] = []
    wall, cpu = time.perf_counter(), time.process_time()
    for high_mark, events in batches:
        actions += shard.process(events)
        actions += shard.advance(high_mark - LATENESS)
    actions += shard.advance(batches[-1][0] + 60 * 86_400)
    return time.perf_counter() - wall, time.process_time() - cpu, actions, shard


def kind_of(action: Action) -> str:
    payload: dict[str, Any] = action.payload
    return str(payload.get("event") or payload.get("reward_type") or payload.get("template_id"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "config/gamification",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time the config's files added one by one (settings, points, ...)",
    )
    args = parser.parse_args()
    tune_gc()

    batches = decoded(args.events, args.seed)
    count = sum(len(events) for _, events in batches)
    rules = load_gamification(args.config, args.config.parent / "templates")
    print(f"{count:,} events decoded; gamification config {args.config} ({rules.version})")
    plain: list[tuple[float, float]] = []
    gamified: list[tuple[float, float]] = []
    actions: list[Action] = []
    shards: dict[str, PlayerShard] = {}
    for round_no in range(args.rounds):
        wall, cpu, _, shards["plain"] = fold(batches, [])
        plain.append((wall, cpu))
        wall, cpu, actions, shards["gamified"] = fold(batches, [rules])
        gamified.append((wall, cpu))
        print(
            f"round {round_no + 1}: no rules {count / plain[-1][1]:,.0f} ev/s (CPU), "
            f"gamification {count / gamified[-1][1]:,.0f} ev/s (CPU), "
            f"{gamified[-1][1] / plain[-1][1]:.2f}x"
        )
    wall_ratio = statistics.median(g[0] / p[0] for p, g in zip(plain, gamified, strict=True))
    cpu_ratio = statistics.median(g[1] / p[1] for p, g in zip(plain, gamified, strict=True))
    plain_cpu = statistics.median(c for _, c in plain)
    gamified_cpu = statistics.median(c for _, c in gamified)
    players = len(shards["plain"].players)
    pickled = {name: len(pickle.dumps(shard.players)) / players for name, shard in shards.items()}
    print()
    print("| measure | no rules | gamification |")
    print("|---|---|---|")
    print(f"| median events/s, CPU time | {count / plain_cpu:,.0f} | {count / gamified_cpu:,.0f} |")
    print(
        f"| median events/s, wall time | {count / statistics.median(w for w, _ in plain):,.0f} | "
        f"{count / statistics.median(w for w, _ in gamified):,.0f} |"
    )
    print(f"| median slowdown, CPU time (wall) | | {cpu_ratio:.2f}x ({wall_ratio:.2f}x) |")
    print(f"| actions emitted | 0 | {len(actions):,} |")
    plain_bytes, gamified_bytes = pickled["plain"], pickled["gamified"]
    print(f"| state per player, pickled bytes | {plain_bytes:,.0f} | {gamified_bytes:,.0f} |")
    print(f"| players | {players:,} | {players:,} |")
    print()
    for name, n in Counter(kind_of(a) for a in actions).most_common():
        print(f"  {name}: {n:,}")
    if args.breakdown:
        breakdown(batches, args.config, args.rounds)


def breakdown(batches: Batches, config: Path, rounds: int) -> None:
    """The slowdown with the config's files added one at a time, in a fixed order."""
    order = ["settings", "points", "leaderboards", "levels", "badges", "missions"]
    files = {path.stem: path for path in config.glob("*.yaml")}
    print()
    print("| files loaded | actions | median slowdown (CPU) |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for stem in order:
            if stem not in files:
                continue
            shutil.copy(files[stem], Path(tmp) / files[stem].name)
            rules = load_gamification(Path(tmp), config.parent / "templates")
            ratios, emitted = [], 0
            for _ in range(rounds):
                _, plain, _, _ = fold(batches, [])
                _, cpu, actions, _ = fold(batches, [rules])
                ratios.append(cpu / plain)
                emitted = len(actions)
            print(f"| + {stem} | {emitted:,} | {statistics.median(ratios):.2f}x |")


if __name__ == "__main__":
    main()
