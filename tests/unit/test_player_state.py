"""Specification of PlayerState's memory and snapshot form: what a resident player holds,
and that states pickled by earlier versions (Bytewax snapshots, cold-store blobs) load."""

from __future__ import annotations

import base64
import pickle
import zlib
from datetime import UTC, datetime

import orjson

from bench.sessions import first_session, rounds, second_session
from operators.engine import PlayerShard
from operators.player_state import PlayerState
from pipeline.decode import decode_batch
from pipeline.records import RawBatch

START = int(datetime(2026, 1, 5, 21, 55, tzinfo=UTC).timestamp())

# A PlayerState pickled (zlib'd) by the code before 2026-12-07 (commit 2866123: windows
# as a WindowedSums object with dense rings, state version 1), after bench/sessions.py's
# first session of player 7 at START and its second session three hours later.
OLD_PICKLE = (
    "eNprYJ2qycwABj1i+QWpRYkl+UXFegU5iZWpRfHFJYklqVN6uAPA3GAwb/IUzcYpGj0cBQZgYD7F+YSJcUwm2IRY"
    "VBom7gGloaBhi3oCmM8EFYDRAq85GZABK5T+ocIIpifEQ2hGqDgjAyqA6YZ6iCF1hT5YiUEphA+jZ1gxYAVTegQR"
    "QVCemZeSX148pYcnHMxKTQkuzS2Get+b0Zuph8kwY4pvBJM3W/uUHmYjEyBHQcabB8hhMk+Z4tUQyMjgzd4+pX2K"
    "Fyg8nCYwMhANYA4lFZCrDxc4sZ6BpgBXRBByD6n+xBnhJVOSNHqYXFyBEegaGjSlh9e1tAiYBPSdUotyMvOAMZkC"
    "TP7s+UXpiXmZyUDVfkANegAfHGS6"
)
# Its (wager, net) per window (1h, 24h, 7d) at seconds after START, from that code.
OLD_TOTALS = {
    10_840: [(30_000, 0), (75_000, 15_000), (75_000, 15_000)],
    12_640: [(30_000, 0), (75_000, 15_000), (75_000, 15_000)],
    97_240: [(0, 0), (0, 0), (75_000, 15_000)],
    270_040: [(0, 0), (0, 0), (75_000, 15_000)],
}


def folded(records: list[dict[str, object]]) -> PlayerShard:
    raw = [orjson.dumps(record) for record in records]
    shard = PlayerShard()
    shard.process(decode_batch(RawBatch("t", raw, list(range(len(raw))))).events)
    return shard


def totals(state: PlayerState, now: int) -> list[tuple[int, int]]:
    return [(state.wager(w, now), state.net(w, now)) for w in range(3)]


def test_a_state_pickled_before_the_sparse_windows_loads_with_the_same_figures() -> None:
    old: PlayerState = pickle.loads(zlib.decompress(base64.b64decode(OLD_PICKLE)))
    now = folded(first_session(7, START) + second_session(7, START + 3 * 3600))
    fresh = now.players["p0000007"]

    assert old.n == fresh.n
    for offset, expected in OLD_TOTALS.items():
        assert totals(old, START + offset) == expected == totals(fresh, START + offset)
    assert old.windows.tobytes() == fresh.windows.tobytes()


def test_an_old_state_keeps_folding_like_a_fresh_one() -> None:
    old: PlayerState = pickle.loads(zlib.decompress(base64.b64decode(OLD_PICKLE)))
    shard = folded(first_session(7, START) + second_session(7, START + 3 * 3600))
    restored = PlayerShard()
    restored.players["p0000007"] = old
    # Rounds 5 hours on (new buckets in every window) and one late by 4 hours.
    later = folded_events(
        rounds("p0000007", "c", START + 5 * 3600, ("slots", "live"))
        + rounds("p0000007", "d", START + 3600, ("table",))
    )
    shard.process(later)
    restored.process(later)

    assert old.n == shard.players["p0000007"].n
    for offset in (3600, 5 * 3600 + 100, 6 * 3600, 30 * 3600, 8 * 86_400):
        assert totals(old, START + offset) == totals(shard.players["p0000007"], START + offset)


def folded_events(records: list[dict[str, object]]) -> list[tuple[int, object]]:
    raw = [orjson.dumps(record) for record in records]
    return list(decode_batch(RawBatch("t", raw, list(range(len(raw))))).events)


def test_a_state_round_trips_through_pickle_with_its_windows() -> None:
    state = folded(first_session(1, START)).players["p0000001"]
    back: PlayerState = pickle.loads(pickle.dumps(state))

    assert back.n == state.n
    assert back.windows == state.windows
    for offset in (0, 600, 7200, 86_400, 8 * 86_400):
        assert totals(back, START + offset) == totals(state, START + offset)


def test_players_who_never_bet_share_one_empty_windows_array() -> None:
    records = first_session(1, START)[:3] + first_session(2, START)[:3]  # no rounds
    shard = folded(records)
    one, two = shard.players["p0000001"], shard.players["p0000002"]

    assert one.windows is two.windows
    back: PlayerState = pickle.loads(pickle.dumps(one))
    assert back.windows is one.windows


def test_a_first_session_keeps_one_window_entry_per_window() -> None:
    state = folded(first_session(1, START)).players["p0000001"]

    # newest, three entry counts, one [bucket, wager, net] per window (the three rounds
    # are 70 seconds apart, inside one 10-minute bucket): 13 int64 slots, not 50.
    assert len(state.windows) == 13
    assert totals(state, START + 100) == [(45_000, 15_000)] * 3
