"""Poison input: 1% invalid records mixed into a clean stream change nothing but the dead letters.

Every way a firehose breaks the contract (bytes that are not JSON, JSON that is not an
object, an unknown type, a naive timestamp, missing fields, fields of the wrong type) is
mixed in at random positions. The bad records name a real player, so one that slipped
through would change that player's actions.
"""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path

import pytest

from pipeline.simulator import SimulatorConfig, simulate
from tests.support.fault_helpers import (
    Job,
    TopicReader,
    Topics,
    decisions,
    produce_stream,
    read_topic,
    replay,
    sentinels,
    values,
)
from tests.support.fault_streams import mix_in, poison, without_suppression_changes
from tests.support.tansu import TansuBroker

pytestmark = pytest.mark.integration

EVENTS = 15_000
POISON_SHARE = 0.01


@pytest.fixture
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No configuration: the first triggers, no caps, so decisions do not depend on order."""
    path = tmp_path / "config"
    path.mkdir()
    monkeypatch.setenv("PITBOSS_CONFIG_DIR", str(path))
    return path


def _filed(letters: list[dict[str, str]]) -> Counter[tuple[str, bytes]]:
    """What the dead letters hold: (kind of fault, the raw record)."""
    return Counter((letter["kind"], base64.b64decode(letter["raw_base64"])) for letter in letters)


def test_one_percent_poison_is_dead_lettered_and_the_good_records_decide_as_a_clean_run(
    kafka_broker: TansuBroker, config_dir: Path, tmp_path: Path
) -> None:
    clean = without_suppression_changes(simulate(SimulatorConfig(seed=23, events=EVENTS)))
    bad = poison(round(len(clean) * POISON_SHARE))
    poisoned = mix_in(clean, [p.raw for p in bad], seed=23)
    marks = sentinels(clean)
    reference = replay(clean + marks, tmp_path / "clean")
    assert len(reference.decisions) > 300 and not reference.dead_letters

    # Offline: the replay of the poisoned file decides exactly what the clean one did,
    # and files every bad record, byte for byte, under the kind of fault it has.
    offline = replay(poisoned + marks, tmp_path / "poisoned")
    assert decisions(offline.actions) == decisions(reference.actions)
    assert _filed(offline.dead_letters) == Counter((p.kind, p.raw) for p in bad)

    # Live: the same poisoned stream through Kafka and `pitboss run` with two workers.
    topics = Topics.create(kafka_broker.bootstrap)
    produce_stream(topics, poisoned, marks)
    brokers = topics.brokers
    with (
        Job(topics.env(config_dir), "-w", "2", log_dir=tmp_path) as job,
        TopicReader(brokers, topics.actions) as actions,
        TopicReader(brokers, topics.dead_letters) as dead,
    ):
        actions.wait_for(len(reference.actions), 60, job)
        dead.wait_for(len(bad), 30, job)
        job.check()  # the job kept running through every bad record
        # Asked where it waits (SIGUSR1), it prints its threads' stacks and runs on.
        stacks = job.stacks()
        assert "most recent call first" in stacks and "pipeline/cli.py" in stacks
        job.check()

    assert decisions(values(read_topic(brokers, topics.actions))) == decisions(reference.actions)
    letters = values(read_topic(brokers, topics.dead_letters))
    assert _filed(letters) == Counter((p.kind, p.raw) for p in bad)
