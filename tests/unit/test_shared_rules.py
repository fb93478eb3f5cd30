"""One process's workers are threads sharing its rule sets (Bytewax runs ``-w N`` so).

Each rule set keeps scratch objects it reuses per event (the context conditions read the
player from); those must be per thread, or one worker's condition reads another
worker's player. The benchmark suite's 2-worker run crashed on exactly that before the
campaign engine's context became per thread.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from operators.actions import Action
from operators.engine import PlayerShard, shard_of
from operators.triggers import TriggerSettings
from pipeline.decode import decode_batch
from pipeline.events import Event
from pipeline.records import RawBatch
from pipeline.rulebook import RuleBook
from pipeline.simulator import SimulatorConfig, simulate

CONFIG = Path(__file__).resolve().parents[2] / "config"
BATCH = 200


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    """Switch threads every microsecond instead of every 5 ms: races show in seconds."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _fold(shard: PlayerShard, events: list[tuple[int, Event]], out: list[Action]) -> None:
    for i in range(0, len(events), BATCH):
        part = events[i : i + BATCH]
        out += shard.process(part)
        out += shard.advance(max(ts for ts, _ in part) - 60)
    out += shard.advance(events[-1][0] + 90 * 86_400)


def _canonical(actions: list[Action]) -> list[str]:
    return sorted(a.model_dump_json() for a in actions)


def test_two_threads_sharing_the_starter_packs_rules_decide_as_each_would_alone(
    tiny_switch_interval: None,
) -> None:
    records = list(simulate(SimulatorConfig(seed=11, events=30_000)))
    events = decode_batch(RawBatch("t/0", records, list(range(len(records))))).events
    halves = [[p for p in events if shard_of(p[1].player_id, 2) == i] for i in (0, 1)]
    assert all(halves)

    def run(concurrently: bool) -> list[list[Action]]:
        rules = RuleBook(CONFIG, TriggerSettings()).current  # one set, shared, as in a process
        shards = [PlayerShard(rules=list(rules.rule_sets), guards=rules.guards) for _ in halves]
        outs: list[list[Action]] = [[], []]
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                _fold(shards[i], halves[i], outs[i])
            except BaseException as exc:  # reported below, with the thread's traceback
                errors.append(exc)
                raise

        if concurrently:
            threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            work(0)
            work(1)
        assert not errors, errors
        return outs

    alone = run(concurrently=False)
    together = run(concurrently=True)
    assert sum(map(len, alone)) > 100  # the rules decided plenty
    for i in (0, 1):
        assert _canonical(together[i]) == _canonical(alone[i])
