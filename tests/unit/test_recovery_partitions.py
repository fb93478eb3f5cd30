"""Recovery partitions: created whole or not at all, even when a start is killed."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipeline.cli
from pipeline.cli import ensure_recovery_partitions


def parts(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("part-*.sqlite3"))


def test_a_fresh_directory_gets_every_partition(tmp_path: Path) -> None:
    ensure_recovery_partitions(tmp_path, 4)
    assert parts(tmp_path) == [f"part-{i}.sqlite3" for i in range(4)]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_existing_partitions_are_left_as_they_are(tmp_path: Path) -> None:
    ensure_recovery_partitions(tmp_path, 2)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("part-*")}
    ensure_recovery_partitions(tmp_path, 8)  # a setting changed later: Bytewax decides
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("part-*")} == before


def test_a_start_killed_while_creating_leaves_no_partial_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = pipeline.cli.init_db_dir

    def killed_half_way(directory: Path, count: int) -> None:
        real(directory, count // 2)
        raise KeyboardInterrupt  # what a kill looks like from here: nothing after runs

    monkeypatch.setattr(pipeline.cli, "init_db_dir", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        ensure_recovery_partitions(tmp_path, 4)
    assert parts(tmp_path) == []  # the next start must not find 2 of 4
    monkeypatch.setattr(pipeline.cli, "init_db_dir", real)
    ensure_recovery_partitions(tmp_path, 4)
    assert parts(tmp_path) == [f"part-{i}.sqlite3" for i in range(4)]


def test_a_start_killed_while_moving_them_in_finishes_the_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves = 0
    real_replace = pipeline.cli.os.replace

    def killed_after_two(src: Path, dst: Path) -> None:
        nonlocal moves
        if moves == 2:
            raise KeyboardInterrupt
        moves += 1
        real_replace(src, dst)

    monkeypatch.setattr(pipeline.cli.os, "replace", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        ensure_recovery_partitions(tmp_path, 4)
    assert len(parts(tmp_path)) == 2
    monkeypatch.setattr(pipeline.cli.os, "replace", real_replace)
    ensure_recovery_partitions(tmp_path, 4)
    assert parts(tmp_path) == [f"part-{i}.sqlite3" for i in range(4)]
