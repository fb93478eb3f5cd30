"""The broker goes away mid-stream: the job waits, then resumes where it was.

The broker (a Tansu of this test's own: it keeps its data in memory, so it is frozen,
never restarted) stops answering for eight seconds while `pitboss run` works through a
backlog. Clients time out after two seconds here, so the outage is seen as errors
(request timeouts, all brokers down) and not merely as a slow answer; and the consumer
may prefetch only a little, so most of the backlog is still on the broker when it comes
back and must be fetched from the position the source kept.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from pipeline.simulator import SimulatorConfig, simulate
from tests.support.fault_helpers import (
    Job,
    TopicReader,
    Topics,
    decisions,
    produce_stream,
    read_topic,
    records_read,
    replay,
    sentinels,
    values,
    wait_until,
)
from tests.support.fault_servers import frozen
from tests.support.fault_streams import without_suppression_changes
from tests.support.tansu import TansuBroker, free_port

pytestmark = pytest.mark.integration

EVENTS = 20_000
OUTAGE_SECONDS = 8.0
CLIENT_TUNING = {
    # Requests to a silent broker fail after 2 s instead of 60 s.
    "socket.timeout.ms": "2000",
    # At most ~64 KB of records waits in the consumer per partition.
    "queued.max.messages.kbytes": "64",
    "max.partition.fetch.bytes": "16384",
}


def test_a_broker_outage_mid_stream_loses_skips_and_repeats_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "config"  # the first triggers, no caps: decisions are order-free
    config_dir.mkdir()
    monkeypatch.setenv("PITBOSS_CONFIG_DIR", str(config_dir))
    records = without_suppression_changes(simulate(SimulatorConfig(seed=31, events=EVENTS)))
    marks = sentinels(records)
    total = len(records) + len(marks)
    reference = replay(records + marks, tmp_path / "reference")
    assert len(reference.decisions) > 300

    with TansuBroker(stop_grace_s=1) as broker:
        topics = Topics.create(broker.bootstrap)
        produce_stream(topics, records, marks)
        port = free_port()
        env = topics.env(
            config_dir,
            METRICS_PORT=str(port),
            CONSUMER_BATCH_SIZE="200",
            KAFKA_EXTRA=orjson.dumps(CLIENT_TUNING).decode(),
        )
        with (
            Job(env, "-w", "2", log_dir=tmp_path) as job,
            TopicReader(broker.bootstrap, topics.actions) as actions,
        ):

            def under_way() -> bool:
                job.check()
                try:
                    return records_read(port) >= total // 10
                except OSError:  # the metrics endpoint is not up yet
                    return False

            wait_until(under_way, 30, "the job is under way", job.log, poll_s=0.02)
            with frozen(broker.pid):
                time.sleep(OUTAGE_SECONDS)  # the outage itself
                read_in_outage = records_read(port)
                job.check()  # waiting, not dead
            # Most of the stream was still on the broker when it came back.
            assert read_in_outage < total // 2, f"read {read_in_outage} of {total} before"

            actions.wait_for(len(reference.actions), 60, job)
            # Nothing skipped and nothing read twice: no offset reset either way.
            wait_until(lambda: records_read(port) >= total, 10, f"{total} records read", job.log)
            assert records_read(port) == total
            job.check()
            output = job.log(tail=1_000_000)

        # The job saw the outage as one (librdkafka's words), not as a slow broker.
        assert "brokers are down" in output, output[-3000:]

        logged = decisions(values(read_topic(broker.bootstrap, topics.actions)))
    assert logged == decisions(reference.actions)  # every action once, none extra
    print(f"\nread {read_in_outage} of {total} records before the broker came back")
