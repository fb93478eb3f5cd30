"""Feed the simulated firehose into Kafka, keyed by player id like the casino platform."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import islice

import orjson

from pipeline.kafka import KafkaProducerSink
from pipeline.simulator import SimulatorConfig, simulate


def keyed(records: Iterable[bytes]) -> Iterator[tuple[bytes | None, bytes]]:
    """``(player_id, record)`` pairs; a record without a readable player id has no key."""
    for record in records:
        try:
            player = orjson.loads(record).get("player_id")
        except (orjson.JSONDecodeError, AttributeError):
            player = None
        yield (player.encode() if isinstance(player, str) else None), record


def produce_records(
    brokers: str,
    topic: str,
    records: Iterable[bytes],
    *,
    batch_size: int = 20_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Produce every record (keyed by player) and wait until Kafka acknowledged each one."""
    sink = KafkaProducerSink(brokers, topic).build("produce", 0, 1)
    pairs = keyed(records)
    count = 0
    try:
        while batch := list(islice(pairs, batch_size)):
            sink.write_batch(batch)  # raises if any record was not delivered
            count += len(batch)
            if progress is not None:
                progress(len(batch))
    finally:
        sink.close()
    return count


def produce_events(
    brokers: str, topic: str, config: SimulatorConfig, progress: Callable[[int], None] | None = None
) -> int:
    """Produce ``config.events`` simulated records to ``topic``."""
    return produce_records(brokers, topic, simulate(config), progress=progress)
