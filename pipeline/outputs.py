"""File outputs: the JSONL logs (actions, dead letters) and the players Parquet file.

The JSONL sink writes on one worker, in arrival order, and resumes by truncating to its
snapshot offset, so a recovered run never leaves duplicate lines (Bytewax's own FileSink
does the same for text). The Parquet sink gathers the per-player rows the player
operator emits at the end of a bounded run and writes them once, sorted by player id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import polars as pl
from bytewax.outputs import (
    DynamicSink,
    FixedPartitionedSink,
    StatefulSinkPartition,
    StatelessSinkPartition,
)

from pipeline.delivery import apply_suppression_updates
from sinks.stores import Stores


class _JsonlPartition(StatefulSinkPartition[bytes, int]):
    def __init__(self, path: Path, resume: int | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = path.open("r+b" if path.exists() else "w+b")
        self._file.truncate(resume or 0)
        self._file.seek(resume or 0)

    def write_batch(self, values: list[bytes]) -> None:
        if values:
            self._file.write(b"\n".join(values) + b"\n")
            self._file.flush()

    def snapshot(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()


class JsonlSink(FixedPartitionedSink[bytes, int]):
    """Append JSON records (bytes) to one file, one per line. Items are ("", bytes)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def list_parts(self) -> list[str]:
        return [str(self._path)]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _JsonlPartition:
        return _JsonlPartition(self._path, resume_state)


def players_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Player rows as a typed frame: money as Decimal, times as UTC datetimes."""
    frame = pl.DataFrame(rows, infer_schema_length=None)
    if frame.is_empty():
        return frame
    times = [
        c
        for c in ("registered_at", "first_seen", "last_seen", "last_activity", "first_deposit_at")
        if c in frame.columns
    ]
    return frame.with_columns(
        [pl.from_epoch(pl.col(c), time_unit="s").dt.replace_time_zone("UTC") for c in times]
    ).sort("player_id")


class _ParquetPartition(StatefulSinkPartition[list[dict[str, Any]], None]):
    def __init__(self, path: Path) -> None:
        self._path = path
        self._rows: list[dict[str, Any]] = []

    def write_batch(self, values: list[list[dict[str, Any]]]) -> None:
        for rows in values:
            self._rows.extend(rows)

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        players_frame(self._rows).write_parquet(self._path)


class PlayersParquetSink(FixedPartitionedSink[list[dict[str, Any]], None]):
    """Write the final per-player state, one row per player, when the run ends."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def list_parts(self) -> list[str]:
        return [str(self._path)]

    def part_fn(self, item_key: str) -> int:
        return 0

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _ParquetPartition:
        return _ParquetPartition(self._path)


class _SuppressionPartition(StatelessSinkPartition[tuple[str, dict[str, Any]]]):
    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    def write_batch(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        apply_suppression_updates(self._stores, items)


class SuppressionListSink(DynamicSink[tuple[str, dict[str, Any]]]):
    """Keep the authoritative suppression list current from self-exclusion and consent
    events, so delivery can check it at send time."""

    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _SuppressionPartition:
        return _SuppressionPartition(self._stores)
