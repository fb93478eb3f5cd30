"""Bounded sources: a JSONL file replay and the built-in simulator.

Both emit ``RawBatch`` items (one per ``next_batch``), resume from a snapshot (a byte
offset and line number for a file, a record count for the seeded simulator) and end by
themselves. The Kafka source lives in ``pipeline.kafka``.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import BinaryIO

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from pipeline.records import RawBatch
from pipeline.simulator import SimulatorConfig, simulate


class _FilePartition(StatefulSourcePartition[RawBatch, tuple[int, int]]):
    def __init__(self, path: Path, batch_size: int, resume: tuple[int, int] | None) -> None:
        self._path = path
        self._source = str(path)
        self._batch_size = batch_size
        self._file: BinaryIO = path.open("rb")
        offset, self._line = resume if resume is not None else (0, 0)
        self._file.seek(offset)

    def next_batch(self) -> list[RawBatch]:
        batch = RawBatch(self._source)
        values, positions = batch.values, batch.positions
        readline = self._file.readline
        line_no = self._line
        while len(values) < self._batch_size:
            line = readline()
            if not line:
                break
            line_no += 1
            record = line.rstrip(b"\r\n")
            if record.strip():  # blank lines separate nothing and are not records
                values.append(record)
                positions.append(line_no)
        self._line = line_no
        if not values:
            raise StopIteration
        return [batch]

    def snapshot(self) -> tuple[int, int]:
        return self._file.tell(), self._line

    def close(self) -> None:
        self._file.close()


class JsonlSource(FixedPartitionedSource[RawBatch, tuple[int, int]]):
    """Replay a JSONL file of events, one record per line, in file order."""

    def __init__(self, path: Path, batch_size: int = 2000) -> None:
        if not path.is_file():
            msg = f"events file not found: {path}"
            raise FileNotFoundError(msg)
        self._path = path
        self._batch_size = batch_size

    def list_parts(self) -> list[str]:
        return [str(self._path)]

    def build_part(
        self, step_id: str, for_part: str, resume_state: tuple[int, int] | None
    ) -> _FilePartition:
        return _FilePartition(self._path, self._batch_size, resume_state)


class _SimulatorPartition(StatefulSourcePartition[RawBatch, int]):
    def __init__(self, config: SimulatorConfig, batch_size: int, resume: int | None) -> None:
        self._done = resume or 0
        # The simulator is seeded: regenerating and skipping reproduces the same records.
        self._records: Iterator[bytes] = islice(simulate(config), self._done, None)
        self._batch_size = batch_size

    def next_batch(self) -> list[RawBatch]:
        values = list(islice(self._records, self._batch_size))
        if not values:
            raise StopIteration
        start = self._done
        self._done += len(values)
        return [RawBatch("simulator", values, list(range(start + 1, self._done + 1)))]

    def snapshot(self) -> int:
        return self._done

    def close(self) -> None:
        pass


class SimulatorSource(FixedPartitionedSource[RawBatch, int]):
    """The seeded casino firehose simulator as a dataflow source."""

    def __init__(self, config: SimulatorConfig, batch_size: int = 2000) -> None:
        self._config = config
        self._batch_size = batch_size

    def list_parts(self) -> list[str]:
        return ["simulator"]

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _SimulatorPartition:
        return _SimulatorPartition(self._config, self._batch_size, resume_state)
