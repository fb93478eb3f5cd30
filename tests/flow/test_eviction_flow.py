"""Eviction under Bytewax: the same actions and players.parquet with it as without, and
Bytewax recovery resumes a snapshot that holds evicted players."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

from operators.actions import Action
from operators.eviction import Eviction, MemoryColdStore
from operators.player_state import DAY
from pipeline.cli import main
from pipeline.flow import FlowOptions, build_flow
from pipeline.metrics import Metrics
from pipeline.records import RawBatch
from pipeline.simulator import SimulatorConfig, write_jsonl
from tests.support.scenario import Script


def _run(
    batches: list[RawBatch],
    eviction: Eviction | None,
    recovery: RecoveryConfig | None = None,
    metrics: Metrics | None = None,
) -> tuple[list[str], Metrics]:
    actions: list[tuple[str, bytes]] = []
    metrics = metrics or Metrics()
    flow = build_flow(
        TestingSource(batches),
        TestingSink(actions),
        TestingSink([]),
        options=FlowOptions(shards=4, eviction=eviction),
        metrics=metrics,
    )
    run_main(flow, epoch_interval=timedelta(seconds=0), recovery_config=recovery)
    return sorted(Action.model_validate_json(v).model_dump_json() for _, v in actions), metrics


def _comers_and_goers() -> Script:
    s = Script()
    for n in range(12):
        s.at(days=n * 3).register(f"p{n}").deposit(f"p{n}", "25").round(f"p{n}", "1.00", "0")
        if n >= 4:
            s.after(hours=2).login(f"p{n - 4}").round(f"p{n - 4}", "2.00", "5.00")
    return s


def test_the_dataflow_decides_the_same_with_eviction_and_counts_it() -> None:
    batches = _comers_and_goers().batches(3)
    reference, _ = _run(batches, None)
    evicting, metrics = _run(batches, Eviction(MemoryColdStore(retention_seconds=0), 2 * DAY))
    assert evicting == reference
    assert metrics.value("pitboss_player_evictions_total") > 5
    assert metrics.value("pitboss_player_restores_total") > 3
    resident = metrics.value("pitboss_players_in_state")
    cold = metrics.value("pitboss_players_evicted")
    assert cold > 0 and resident + cold == 12


def test_a_resumed_job_restores_players_its_snapshot_holds_as_evicted(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)  # type: ignore[no-untyped-call]
    recovery = RecoveryConfig(str(tmp_path))  # type: ignore[no-untyped-call]
    store = MemoryColdStore()  # outlives the "crash", as Redis would
    s = _comers_and_goers()
    batches = s.batches(3)
    reference, _ = _run(batches, None)
    cut = len(batches) // 2
    first, _ = _run(batches[:cut], Eviction(store, 2 * DAY), recovery)
    # Bytewax resumes the input after what the snapshot covers: the rest of the stream.
    rest, metrics = _run(batches, Eviction(store, 2 * DAY), recovery)
    assert metrics.value("pitboss_player_restores_total") > 0
    assert sorted(first + rest) == reference


def test_a_snapshot_holding_evicted_players_refuses_to_resume_without_a_store(
    tmp_path: Path,
) -> None:
    init_db_dir(tmp_path, 1)  # type: ignore[no-untyped-call]
    recovery = RecoveryConfig(str(tmp_path))  # type: ignore[no-untyped-call]
    batches = _comers_and_goers().batches(3)
    _run(batches[: len(batches) // 2], Eviction(MemoryColdStore(), 2 * DAY), recovery)
    with pytest.raises(Exception, match="evicted players but no cold store"):
        _run(batches, None, recovery)


def test_players_parquet_has_every_player_evicted_or_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    write_jsonl(events, SimulatorConfig(seed=3, events=20_000))
    for name, days in (("kept", "0"), ("evicted", "1")):
        monkeypatch.setenv("PITBOSS_EVICTION__AFTER_DAYS", days)
        assert main(["replay", str(events), "--out", str(tmp_path / name)]) == 0
    assert "lapsed players evicted: " in capsys.readouterr().out
    kept = pl.read_parquet(tmp_path / "kept" / "players.parquet").sort("player_id")
    evicted = pl.read_parquet(tmp_path / "evicted" / "players.parquet").sort("player_id")
    assert kept.height > 10 and evicted.equals(kept)

    def actions(name: str) -> list[bytes]:
        lines = (tmp_path / name / "actions.jsonl").read_bytes().splitlines()
        return sorted(orjson.dumps(orjson.loads(line)) for line in lines)

    assert actions("evicted") == actions("kept")
