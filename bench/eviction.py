"""Resident memory per player when lapsed players are evicted, against keeping everyone.

Run: ``.venv/bin/python bench/eviction.py [--players 100000 1000000] [--store memory|redis]``

A population arrives over ``--days`` (90) of event time, one registration at a time at an
even pace. Each player plays a first session at registration (registration, login,
deposit, three settled rounds: bench/memory.py's session); ``--returning`` (30%) of them
come back once, 1 to 60 days later (if that is still within the 90 days) for a second
session (login, deposit, two rounds), so about half of those who return have already
been evicted. Everyone else lapses. Events are decoded in batches of 2,000 and folded
through 64 shards as the job does, the watermark a minute behind each batch.

Each configuration runs in a fresh process, so RSS belongs to it alone:

* ``off``: nobody is evicted (what the job did before eviction);
* ``on``: ``--evict-after`` (30 days) to ``--store``: ``memory`` keeps the compressed
  blobs in the process (the embedded default; they count in its RSS), ``redis`` writes
  them to the Redis at REDIS_URL under a key prefix of its own, deleted at the end (the
  production setup; the blobs then live in Redis, reported separately).

Reported per configuration: peak RSS (VmHWM) and RSS at the end minus RSS before the
first event, per *total* player (everyone who ever played, evicted or not), players
resident at the end, evictions and restores, and the blobs' size. ``--traced`` instead
measures, with tracemalloc in separate processes, the bytes the shards hold per resident
player and per total player (state, deadlines, the evicted index; dedup ids excluded as
in bench/throughput.py).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import signal
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import orjson

from bench.memory import BATCH, SHARDS, fold_batch, rss_kib
from bench.sessions import first_session, second_session
from operators.engine import PlayerShard
from operators.eviction import ColdStore, Eviction, MemoryColdStore
from pipeline.cli import tune_gc

DAY = 86_400
START = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())


def population(players: int, days: int, returning: float, seed: int) -> Iterator[list[bytes]]:
    """Batches of encoded records, in event-time order (sessions interleaved)."""
    rng = random.Random(seed)
    span = days * DAY
    step = span / players
    returns: list[tuple[int, int]] = []
    for index in range(players):
        if rng.random() < returning:
            back = int(START + index * step) + rng.randint(1 * DAY, 60 * DAY)
            if back < START + span:
                returns.append((back, index))
    returns.sort()
    batch: list[bytes] = []
    r = 0
    for index in range(players):
        at = int(START + index * step)
        while r < len(returns) and returns[r][0] <= at:
            batch += [orjson.dumps(x) for x in second_session(returns[r][1], returns[r][0])]
            r += 1
        batch += [orjson.dumps(x) for x in first_session(index, at)]
        if len(batch) >= BATCH:
            yield batch
            batch = []
    for back, index in returns[r:]:
        batch += [orjson.dumps(x) for x in second_session(index, back)]
    if batch:
        yield batch


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))


def _redis_keys(prefix: str) -> list[bytes]:
    return list(_redis().scan_iter(match=f"{prefix}*", count=5000))


def _redis_usage(prefix: str) -> int:
    """Redis memory this run's keys take, in bytes (``MEMORY USAGE`` of a sample)."""
    keys = _redis_keys(prefix)
    sample = keys[:200]
    sizes = [_redis().memory_usage(key) or 0 for key in sample]
    return int(sum(sizes) / max(1, len(sample)) * len(keys))


def _redis_delete(prefix: str) -> None:
    """Delete this run's keys (and only those)."""
    client = _redis()
    keys = _redis_keys(prefix)
    for first in range(0, len(keys), 5000):
        client.unlink(*keys[first : first + 5000])


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One configuration in this process; its figures. Redis keys go in any case."""
    store: ColdStore | None = None
    prefix = None
    if args.mode == "on" and args.store == "redis":
        from sinks.stores.cold import RedisColdStore
        from sinks.stores.redis import connect

        prefix = f"pitboss-bench-{uuid.uuid4().hex[:8]}:"
        client = connect(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"), socket_timeout=5)
        store = RedisColdStore(client, prefix)
    elif args.mode == "on":
        store = MemoryColdStore(retention_seconds=0)
    # A SIGTERM too ends in the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return _measure(args, store, prefix)
    finally:
        if prefix is not None:
            _redis_delete(prefix)


def _measure(
    args: argparse.Namespace, store: ColdStore | None, prefix: str | None
) -> dict[str, Any]:
    tune_gc()
    if args.traced:
        tracemalloc.start()
    gc.collect()
    before = rss_kib()
    eviction = None
    if store is not None:
        eviction = Eviction(store, args.evict_after * DAY, args.sweep_seconds)
    shards = [PlayerShard() for _ in range(SHARDS)]
    for shard in shards:
        shard.with_eviction(eviction)
    started = time.perf_counter()
    cpu = time.process_time()
    offset = 0
    for records in population(args.players, args.days, args.returning, args.seed):
        fold_batch(shards, records, offset)
        offset += len(records)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    for shard in shards:
        shard.recent_ids.clear()  # transient: players active in the last 10 minutes
    del records
    gc.collect()
    out: dict[str, Any] = {
        "mode": args.mode,
        "store": args.store if args.mode == "on" else "-",
        "players": args.players,
        "events": offset,
        "seconds": round(elapsed, 1),
        "cpu_seconds": round(cpu, 1),
        "resident": sum(len(s.players) for s in shards),
        "evicted": sum(len(s.evicted) for s in shards),
        "evictions": sum(s.evictions for s in shards),
        "restores": sum(s.restores for s in shards),
    }
    if args.traced:
        traced, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        if isinstance(store, MemoryColdStore):  # blobs are not state the shards hold
            traced -= store.nbytes()
        out["traced"] = traced
        return out
    out["rss_growth_kib"] = rss_kib() - before
    out["peak_kib"] = rss_kib("VmHWM")
    if isinstance(store, MemoryColdStore):
        out["blob_bytes"] = store.nbytes()
    if prefix is not None:
        out["redis_bytes"] = _redis_usage(prefix)
    return out


def _child(args: argparse.Namespace, players: int, mode: str, traced: bool) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--child",
        mode,
        "--players",
        str(players),
        "--store",
        args.store,
        "--days",
        str(args.days),
        "--returning",
        str(args.returning),
        "--evict-after",
        str(args.evict_after),
        "--sweep-seconds",
        str(args.sweep_seconds),
        "--seed",
        str(args.seed),
    ]
    if traced:
        command.append("--traced")
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--players", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--store", choices=["memory", "redis"], default="memory")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--returning", type=float, default=0.3)
    parser.add_argument("--evict-after", type=float, default=30, help="days")
    parser.add_argument("--sweep-seconds", type=int, default=3600)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--traced", action="store_true", help="tracemalloc instead of RSS")
    parser.add_argument("--modes", nargs="+", choices=["off", "on"], default=["off", "on"])
    parser.add_argument("--child", choices=["on", "off"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        args.mode = args.child
        args.players = args.players[0]
        print(json.dumps(run(args)))
        return
    if args.traced:
        print("| players | eviction | resident at end | traced per resident | per total |")
        print("|---|---|---|---|---|")
    else:
        print(
            "| players | eviction | events | resident at end | evictions | restores "
            "| RSS growth per total player, bytes | peak RSS, MiB | cold blobs, bytes each "
            "| decode + fold, s (CPU) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
    for players in args.players:
        for mode in args.modes:
            r = _child(args, players, mode, args.traced)
            label = "off" if mode == "off" else f"on ({r['store']})"
            if args.traced:
                print(
                    f"| {players:,} | {label} | {r['resident']:,} "
                    f"| {r['traced'] / max(1, r['resident']):,.0f} "
                    f"| {r['traced'] / players:,.0f} |",
                    flush=True,
                )
                continue
            cold = r.get("blob_bytes") or r.get("redis_bytes")
            each = f"{cold / max(1, r['evicted']):,.0f}" if cold and r["evicted"] else "-"
            print(
                f"| {players:,} | {label} | {r['events']:,} | {r['resident']:,} "
                f"| {r['evictions']:,} | {r['restores']:,} "
                f"| {r['rss_growth_kib'] * 1024 / players:,.0f} "
                f"| {r['peak_kib'] / 1024:,.0f} | {each} "
                f"| {r['seconds']:,.0f} ({r['cpu_seconds']:,.0f}) |",
                flush=True,
            )


if __name__ == "__main__":
    main()
