"""Resident memory per player at 100k and 1M players: RSS, traced bytes and peak RSS.

Run: ``.venv/bin/python bench/memory.py [--players 100000 1000000] [--traced-up-to N]``

Each player plays a first session (bench/sessions.py: registration, login, deposit,
three settled rounds), registrations at an even pace over ``--days`` (20) of event time,
in event-time order. Records are decoded in batches of 2,000 and folded through 64 shards
as the job does, the watermark a minute behind each batch's newest event (``advance``
after every batch): deadlines due by then fire, and dedup ids are pruned as in
production, so what is measured is what a running job holds, with every player resident
(no eviction; bench/eviction.py measures a lapsing population with eviction).

Per size, in fresh processes:

* RSS per player: (RSS after the fold - RSS before) / players, read from /proc; it
  includes the allocator's overhead and fragmentation, and the arenas freed objects
  (decoded events, dedup ids) leave behind;
* peak RSS (VmHWM) of that process;
* traced bytes per player: what tracemalloc counts as still allocated after the fold,
  divided by players (in a separate process, as tracing slows the fold about threefold);
  run for sizes up to ``--traced-up-to`` (100,000), "-" above.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import orjson

from bench.sessions import first_session
from operators.engine import PlayerShard, shard_of
from pipeline.cli import tune_gc
from pipeline.decode import decode_batch
from pipeline.records import RawBatch

DAY = 86_400
SHARDS = 64
BATCH = 2_000  # records per decoded batch
LATENESS = 60  # the watermark trails each batch's newest event by this
START = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())


def rss_kib(field: str = "VmRSS") -> int:
    """This process's resident (or peak, with VmHWM) memory in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


@dataclass(frozen=True)
class Folded:
    """What the shards hold after a fold."""

    players: int
    resident: int
    timer_entries: int
    dedup_players: int  # players whose recent event ids are still kept


def fold_shards(players: int, days: int = 20) -> tuple[list[PlayerShard], Folded]:
    """``players`` first sessions folded through 64 shards, the watermark moving."""
    shards = [PlayerShard() for _ in range(SHARDS)]
    step = days * DAY / players
    records: list[bytes] = []
    for index in range(players):
        records += [orjson.dumps(r) for r in first_session(index, int(START + index * step))]
        if len(records) >= BATCH or index == players - 1:
            fold_batch(shards, records)
            records = []
    gc.collect()
    folded = Folded(
        players,
        sum(len(s.players) for s in shards),
        sum(len(s.timers) for s in shards),
        sum(len(s.recent_ids) for s in shards),
    )
    if folded.resident != players:
        raise RuntimeError(f"{folded.resident:,} players resident after folding {players:,}")
    return shards, folded


def fold_batch(shards: list[PlayerShard], records: list[bytes], first_offset: int = 0) -> None:
    """Decode ``records`` (offsets from ``first_offset``) and fold them through ``shards``
    as the job does, each shard's player partition, then the watermark a minute behind
    the batch's newest event."""
    offsets = list(range(first_offset, first_offset + len(records)))
    batch = decode_batch(RawBatch("bench", records, offsets))
    parts: list[list[Any]] = [[] for _ in shards]
    for pair in batch.events:
        parts[shard_of(pair[1].player_id, SHARDS)].append(pair)
    watermark = (batch.high_mark or 0) - LATENESS
    for shard, part in zip(shards, parts, strict=True):
        if part:
            shard.process(part)
        shard.advance(watermark)


def fold(players: int, days: int = 20) -> tuple[float, int]:
    """(RSS bytes per player, peak RSS KiB) after folding ``players`` players; run it in
    a fresh process (bench/suite.py does)."""
    tune_gc()  # as `pitboss` does
    gc.collect()
    before = rss_kib()
    shards, _ = fold_shards(players, days)
    per_player = (rss_kib() - before) * 1024 / players
    del shards
    return per_player, rss_kib("VmHWM")


def traced(players: int, days: int = 20) -> tuple[float, Folded]:
    """(traced bytes per player, what the shards hold) after folding ``players``."""
    tune_gc()
    gc.collect()
    tracemalloc.start()
    shards, folded = fold_shards(players, days)
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del shards
    return size / players, folded


def _in_child(function: Any, *args: Any) -> Any:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--players", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--days", type=int, default=20, help="registrations spread over")
    parser.add_argument("--traced-up-to", type=int, default=100_000)
    args = parser.parse_args()
    print(
        "| players | RSS per player, bytes | peak RSS, MiB | traced per player, bytes "
        "| armed timers | players with dedup ids |"
    )
    print("|---|---|---|---|---|---|")
    for players in args.players:
        per_player, peak = _in_child(fold, players, args.days)
        traced_cell = timers_cell = dedup_cell = "-"
        if players <= args.traced_up_to:
            bytes_per_player, folded = _in_child(traced, players, args.days)
            traced_cell = f"{bytes_per_player:,.0f}"
            timers_cell = f"{folded.timer_entries:,}"
            dedup_cell = f"{folded.dedup_players:,}"
        print(
            f"| {players:,} | {per_player:,.0f} | {peak / 1024:,.0f} | {traced_cell} "
            f"| {timers_cell} | {dedup_cell} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
