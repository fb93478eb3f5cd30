"""Resident memory (RSS) per player at 100k and 1M players, and peak RSS.

Run: ``.venv/bin/python bench/memory.py [--players 100000 1000000]``

Folds each player's first session (registration, login, deposit, three settled rounds)
through 64 shards as the job does, then reads the process's resident set size from
/proc: (RSS after - RSS before) / players. Unlike bench/throughput.py's tracemalloc
figure, this includes the allocator's overhead and fragmentation.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.throughput import player_records
from operators.engine import PlayerShard, shard_of
from pipeline.cli import tune_gc
from pipeline.decode import decode_batch
from pipeline.records import RawBatch


def rss_kib(field: str = "VmRSS") -> int:
    """This process's resident (or peak, with VmHWM) memory in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def fold(players: int) -> tuple[float, int]:
    """(RSS bytes per player, peak RSS KiB) after folding ``players`` players."""
    gc.collect()
    before = rss_kib()
    shards = [PlayerShard() for _ in range(64)]
    for first in range(0, players, 500):
        records = [r for i in range(first, min(first + 500, players)) for r in player_records(i)]
        batch = decode_batch(RawBatch("bench", records, list(range(len(records)))))
        parts: list[list[tuple[int, object]]] = [[] for _ in shards]
        for pair in batch.events:
            parts[shard_of(pair[1].player_id, 64)].append(pair)
        for shard, part in zip(shards, parts, strict=True):
            shard.process(part)  # type: ignore[arg-type]
    for shard in shards:
        shard.recent_ids.clear()  # transient: players active in the last 10 minutes
    del batch, parts, records
    gc.collect()
    count = sum(len(s.players) for s in shards)
    assert count == players
    return (rss_kib() - before) * 1024 / players, rss_kib("VmHWM")


def main() -> None:
    tune_gc()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--players", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    print("| players | RSS per player, bytes | peak RSS of the process, MiB |")
    print("|---|---|---|")
    for players in args.players:
        per_player, peak = fold(players)
        print(f"| {players:,} | {per_player:,.0f} | {peak / 1024:,.0f} |")


if __name__ == "__main__":
    main()
