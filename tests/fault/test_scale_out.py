"""Scale-out: the layout of the job changes nothing it decides, and a hot player stalls no one.

The same Kafka input goes through `pitboss run` as one worker, two workers in one process
and two processes of one worker each (a Bytewax cluster on loopback). With no
configuration (the first triggers, no caps) a decision does not depend on arrival order,
so every layout must log exactly the actions of a replay.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.simulator import SimulatorConfig, simulate
from tests.support.fault_helpers import (
    Decision,
    Job,
    TopicReader,
    Topics,
    decisions,
    produce_stream,
    replay,
    sentinels,
    values,
)
from tests.support.fault_streams import HOT_PLAYER, with_hot_player, without_suppression_changes
from tests.support.tansu import TansuBroker, free_port

pytestmark = pytest.mark.integration

LAYOUT_EVENTS = 20_000
HOT_EVENTS = 100_000  # enough that processing, not start-up, takes most of a run
ROUNDS = 3  # timed runs of each stream in the hot-player test (best of: the machine is shared)


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No configuration: the first triggers, no caps, so decisions do not depend on order."""
    path = tmp_path / "config"
    path.mkdir()
    monkeypatch.setenv("PITBOSS_CONFIG_DIR", str(path))
    return path


def _stream(events: int) -> list[bytes]:
    """A simulated firehose that leaves consent alone."""
    return without_suppression_changes(simulate(SimulatorConfig(seed=53, events=events)))


@dataclass(frozen=True)
class Run:
    """What one run of the job logged, and how long it took."""

    actions: list[dict[str, Any]]
    seconds: float  # from the start of the processes to the last action logged
    processing_seconds: float  # from the first action logged to the last

    @property
    def decisions(self) -> Counter[Decision]:
        """Every logged ``(action_id, decision)``, counted."""
        return decisions(self.actions)


def _run(
    topics: Topics, config_dir: Path, processes: Sequence[list[str]], expected: int, logs: Path
) -> Run:
    """Run the job (one process per argument list) on fresh output topics until
    ``expected`` actions are logged, then stop it and read what it logged."""
    out = topics.fresh_outputs()
    env = out.env(config_dir)
    jobs = [Job(env, *args, log_dir=logs) for args in processes]
    with TopicReader(out.brokers, out.actions) as reader:
        try:
            for job in jobs:
                job.start()
            reader.wait_for(1, 60, *jobs)
            first = time.monotonic()
            reader.wait_for(expected, 90, *jobs)
            last = time.monotonic()
            for job in jobs:
                job.check()
        finally:
            for job in jobs:  # a cluster stops only when all its processes are told to
                job.interrupt()
            for job in jobs:
                job.stop()
        # Everything the job wrote, late duplicates included, by the reader that counted
        # while it ran (a fresh consumer's read once came back 28 records short of it).
        logged = reader.read_to_end()
    started = min(job.started_at for job in jobs)
    return Run(values(logged), last - started, last - first)


def test_one_worker_two_workers_and_two_processes_log_the_same_actions(
    kafka_broker: TansuBroker, config_dir: Path, tmp_path: Path
) -> None:
    stream = _stream(LAYOUT_EVENTS)
    marks = sentinels(stream)
    reference = replay(stream + marks, tmp_path / "reference")
    expected = decisions(reference.actions)
    assert len(expected) > 300
    topics = Topics.create(kafka_broker.bootstrap)
    produce_stream(topics, stream, marks)
    cluster = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    layouts = {
        "1 worker": [["-w", "1"]],
        "2 workers": [["-w", "2"]],
        "2 processes": [["-w", "1", "-i", str(i), "-a", cluster] for i in (0, 1)],
    }

    for layout, processes in layouts.items():
        run = _run(topics, config_dir, processes, len(reference.actions), tmp_path)
        print(f"\n{layout}: {len(run.actions)} actions logged in {run.seconds:.1f}s")
        assert run.decisions == expected, layout


def test_a_hot_player_with_five_percent_of_the_traffic_does_not_hold_the_others_back(
    kafka_broker: TansuBroker, config_dir: Path, tmp_path: Path
) -> None:
    stream = _stream(HOT_EVENTS)
    hot_stream = with_hot_player(stream)
    hot_share = sum(HOT_PLAYER.encode() in r for r in hot_stream) / len(hot_stream)
    assert 0.049 < hot_share < 0.051
    marks = sentinels(stream)
    plain = replay(stream + marks, tmp_path / "plain")
    with_hot = replay(hot_stream + marks, tmp_path / "hot")
    assert sum(a["player_id"] == HOT_PLAYER for a in with_hot.actions) > 100  # busy, too

    plain_topics = Topics.create(kafka_broker.bootstrap)
    produce_stream(plain_topics, stream, marks)
    hot_topics = Topics.create(kafka_broker.bootstrap)
    produce_stream(hot_topics, hot_stream, marks)
    streams = {"without": (plain_topics, plain), "with": (hot_topics, with_hot)}
    runs: dict[str, list[Run]] = {name: [] for name in streams}
    for _ in range(ROUNDS):  # interleaved, so that a busy moment of the machine hits both
        for name, (topics, reference) in streams.items():
            run = _run(topics, config_dir, [["-w", "2"]], len(reference.actions), tmp_path)
            assert run.decisions == decisions(reference.actions), f"{name} the hot player"
            runs[name].append(run)

    others = decisions(a for a in runs["with"][-1].actions if a["player_id"] != HOT_PLAYER)
    assert others == decisions(plain.actions)  # everyone else's actions, all there
    plain_s = min(run.processing_seconds for run in runs["without"])
    hot_s = min(run.processing_seconds for run in runs["with"])
    print(
        f"\nwithout the hot player: {len(stream) + len(marks):,} records, "
        f"{len(plain.actions):,} actions, processed in {plain_s:.2f}s (best of {ROUNDS})"
        f"\nwith the hot player:    {len(hot_stream) + len(marks):,} records, "
        f"{len(with_hot.actions):,} actions, processed in {hot_s:.2f}s (best of {ROUNDS}), "
        f"{hot_s / plain_s:.2f}x"
    )
    assert hot_s < 2 * plain_s
