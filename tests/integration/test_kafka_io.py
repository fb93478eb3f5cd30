"""Kafka in and out against a real broker (Tansu on loopback)."""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from collections import defaultdict
from pathlib import Path

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.inputs import StatefulSourcePartition
from bytewax.testing import TestingSink, TestingSource, cluster_main, run_main
from confluent_kafka import OFFSET_BEGINNING, KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    ResourceType,
)

from pipeline.kafka import KafkaBatchSource, KafkaProducerSink, ensure_topics
from pipeline.records import RawBatch
from tests.support.tansu import (
    TansuBroker,
    TansuStartError,
    consume_all,
    create_topic,
    free_port,
    produce_all,
)

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def event(seq: int) -> bytes:
    return orjson.dumps({"seq": seq, "player_id": f"p-{seq % 101}"})


def seq_of(value: bytes) -> int:
    seq: int = orjson.loads(value)["seq"]
    return seq


def drain(part: StatefulSourcePartition[RawBatch, int], timeout_s: float = 10.0) -> list[RawBatch]:
    """Poll a partition built with ``tail=False`` until it reports its end."""
    batches: list[RawBatch] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            batches.extend(part.next_batch())
        except StopIteration:
            return batches
        time.sleep(0.002)
    pytest.fail(f"partition did not reach its end within {timeout_s}s")


def run_source(source: KafkaBatchSource, workers: int = 1) -> list[RawBatch]:
    out: list[RawBatch] = []
    flow = Dataflow("kafka-read")
    batches = op.input("kafka-in", flow, source)
    op.output("out", batches, TestingSink(out))
    if workers == 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_source_delivers_every_record_once_in_offset_order_in_large_batches(
    kafka_broker: TansuBroker, workers: int
) -> None:
    topic = unique("events")
    create_topic(kafka_broker.bootstrap, topic, partitions=3)
    total = 20_000
    produce_all(
        kafka_broker.bootstrap, topic, ((b"p-%d" % (i % 101), event(i)) for i in range(total))
    )

    source = KafkaBatchSource(kafka_broker.bootstrap, [topic], tail=False, batch_size=2000)
    out = run_source(source, workers)

    by_partition: dict[str, list[RawBatch]] = defaultdict(list)
    for batch in out:
        assert len(batch.values) == len(batch.positions) <= 2000
        by_partition[batch.source].append(batch)
    assert sorted(by_partition) == [f"{topic}/0", f"{topic}/1", f"{topic}/2"]
    seen: list[int] = []
    for batches in by_partition.values():
        positions = [pos for batch in batches for pos in batch.positions]
        assert positions == list(range(len(positions)))
        seqs = [seq_of(value) for batch in batches for value in batch.values]
        # The producer keeps each partition in send order: offsets follow it.
        assert seqs == sorted(seqs)
        seen += seqs
    assert sorted(seen) == list(range(total))
    # 20k records in 2000-record polls: about ten batches, not thousands.
    assert len(out) <= 30


def test_tombstone_reaches_the_flow_as_empty_bytes_at_its_offset(kafka_broker: TansuBroker) -> None:
    topic = unique("events")
    create_topic(kafka_broker.bootstrap, topic)
    produce_all(
        kafka_broker.bootstrap, topic, [(b"p-1", event(0)), (b"p-1", None), (b"p-1", event(2))]
    )

    out = run_source(KafkaBatchSource(kafka_broker.bootstrap, [topic], tail=False))

    records = [pair for batch in out for pair in zip(batch.positions, batch.values, strict=True)]
    assert records == [(0, event(0)), (1, b""), (2, event(2))]


def test_partition_resumes_at_the_snapshot_offset_and_reports_lag(
    kafka_broker: TansuBroker,
) -> None:
    topic = unique("events")
    create_topic(kafka_broker.bootstrap, topic)
    produce_all(kafka_broker.bootstrap, topic, ((b"p-1", event(i)) for i in range(300)))
    lags: list[tuple[str, int, int]] = []
    source = KafkaBatchSource(
        kafka_broker.bootstrap,
        [topic],
        tail=False,
        batch_size=50,
        lag_observer=lambda *report: lags.append(report),
        lag_interval_s=0.0,
    )
    assert source.list_parts() == [f"0-{topic}"]

    part = source.build_part("kafka-in", f"0-{topic}", 120)
    assert part.snapshot() == 120
    batches = drain(part)
    part.close()

    assert [pos for batch in batches for pos in batch.positions] == list(range(120, 300))
    assert [seq_of(v) for batch in batches for v in batch.values] == list(range(120, 300))
    assert part.snapshot() == 300
    assert lags, "the lag observer was never called"
    assert all(t == topic and p == 0 and 0 <= lag <= 180 for t, p, lag in lags)
    assert lags[-1][2] == 0

    # Resuming at the end reads nothing again.
    again = source.build_part("kafka-in", f"0-{topic}", part.snapshot())
    assert drain(again) == []
    again.close()


def test_fresh_partition_starts_at_the_beginning(kafka_broker: TansuBroker) -> None:
    topic = unique("events")
    create_topic(kafka_broker.bootstrap, topic)
    produce_all(kafka_broker.bootstrap, topic, ((None, event(i)) for i in range(5)))
    part = KafkaBatchSource(kafka_broker.bootstrap, [topic], tail=False).build_part(
        "kafka-in", f"0-{topic}", None
    )
    assert part.snapshot() == OFFSET_BEGINNING

    assert [pos for batch in drain(part) for pos in batch.positions] == [0, 1, 2, 3, 4]
    assert part.snapshot() == 5
    part.close()


def test_tailing_partition_waits_for_new_records_instead_of_ending(
    kafka_broker: TansuBroker,
) -> None:
    topic = unique("events")
    create_topic(kafka_broker.bootstrap, topic)
    produce_all(kafka_broker.bootstrap, topic, [(b"p-1", event(0))])
    part = KafkaBatchSource(kafka_broker.bootstrap, [topic], tail=True).build_part(
        "kafka-in", f"0-{topic}", None
    )

    def poll_until(count: int) -> list[int]:
        positions: list[int] = []
        deadline = time.monotonic() + 10
        while len(positions) < count and time.monotonic() < deadline:
            positions += [pos for batch in part.next_batch() for pos in batch.positions]
            time.sleep(0.005)
        return positions

    assert poll_until(1) == [0]
    assert part.next_batch() == []
    assert part.next_awake() is not None, "an idle partition should back off, not spin"
    produce_all(kafka_broker.bootstrap, topic, [(b"p-1", event(1)), (b"p-2", event(2))])
    assert poll_until(2) == [1, 2]
    assert part.snapshot() == 3
    part.close()


def test_missing_topic_is_an_error_and_is_not_created(kafka_broker: TansuBroker) -> None:
    topic = unique("missing")
    source = KafkaBatchSource(kafka_broker.bootstrap, [topic])

    with pytest.raises(RuntimeError, match=f"Kafka topic '{topic}' does not exist"):
        source.list_parts()

    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    assert topic not in admin.list_topics(timeout=5).topics


def test_source_keeps_polling_through_transient_errors_without_moving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = KafkaBatchSource(f"127.0.0.1:{free_port()}", ["events"], tail=False)
    part = source.build_part("kafka-in", "0-events", 42)

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "pipeline.kafka"]

    deadline = time.monotonic() + 10
    with caplog.at_level(logging.WARNING, logger="pipeline.kafka"):
        while not warnings() and time.monotonic() < deadline:
            assert part.next_batch() == []
            time.sleep(0.01)
    part.close()

    assert warnings(), "no transient error was logged within 10s"
    assert "Kafka consumer for events/0" in warnings()[0]
    assert "retrying from offset 42" in warnings()[0]
    assert part.snapshot() == 42


def test_producer_sink_writes_every_item(kafka_broker: TansuBroker) -> None:
    topic = unique("actions")
    create_topic(kafka_broker.bootstrap, topic, partitions=2)
    items = [(b"p-%d" % (i % 7), event(i)) for i in range(5000)] + [(None, event(5000))]
    flow = Dataflow("kafka-write")
    stream = op.input("in", flow, TestingSource(items, batch_size=500))
    op.output("kafka-out", stream, KafkaProducerSink(kafka_broker.bootstrap, topic))

    run_main(flow)

    records = consume_all(kafka_broker.bootstrap, topic, expected=len(items))
    assert sorted((r.key or b"", r.value or b"") for r in records) == sorted(
        (key or b"", value) for key, value in items
    )


def test_producer_sink_raises_instead_of_losing_records_when_kafka_is_unreachable() -> None:
    sink = KafkaProducerSink(
        f"127.0.0.1:{free_port()}", "actions", extra={"message.timeout.ms": "1500"}
    )
    part = sink.build("kafka-out", 0, 1)
    started = time.monotonic()

    with pytest.raises(
        RuntimeError, match=r"topic 'actions': 3 of 3 records were not delivered"
    ) as info:
        part.write_batch([(b"p-1", event(i)) for i in range(3)])

    assert time.monotonic() - started < 10
    assert isinstance(info.value.__cause__, KafkaException)
    assert "_MSG_TIMED_OUT" in str(info.value)


def test_ensure_topics_creates_missing_topics_with_retention_and_is_idempotent(
    kafka_broker: TansuBroker,
) -> None:
    events, actions = unique("events"), unique("actions")
    create_topic(kafka_broker.bootstrap, events, partitions=2)

    created = ensure_topics(kafka_broker.bootstrap, {events: 2, actions: 4}, retention_ms=3_600_000)
    assert created == [actions]
    assert ensure_topics(kafka_broker.bootstrap, {events: 2, actions: 4}, 3_600_000) == []

    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    assert len(admin.list_topics(timeout=5).topics[actions].partitions) == 4
    resource = ConfigResource(ResourceType.TOPIC, actions)
    config = admin.describe_configs([resource])[resource].result(timeout=5)
    assert config["retention.ms"].value == "3600000"


def processes_mentioning(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def test_broker_leaves_no_process_behind() -> None:
    with TansuBroker() as broker:
        create_topic(broker.bootstrap, "events")
        assert processes_mentioning(broker.cluster_id) == [broker.pid]
    assert processes_mentioning(broker.cluster_id) == []
    assert broker.log_path is not None and not broker.log_path.exists()


def test_broker_that_ignores_sigterm_is_killed() -> None:
    with TansuBroker(stop_grace_s=0.2) as broker:
        # A stopped process cannot act on SIGTERM; only SIGKILL ends it.
        os.kill(broker.pid, signal.SIGSTOP)
    assert processes_mentioning(broker.cluster_id) == []


def test_broker_that_cannot_start_reports_why_and_leaves_nothing(kafka_broker: TansuBroker) -> None:
    taken = int(kafka_broker.bootstrap.rsplit(":", 1)[1])
    broker = TansuBroker(port=taken)

    with pytest.raises(TansuStartError, match=f"127.0.0.1:{taken}.*log"):
        broker.start()
    assert processes_mentioning(broker.cluster_id) == []
    # The log is kept for a failed start, for whoever debugs it.
    assert broker.log_path is not None and broker.log_path.exists()
    broker.log_path.unlink()
