"""Kafka in and out: a batching source, a producer sink that fails loudly, topic setup.

The source reads each topic partition with its own consumer, assigned (never
subscribed) at the offset Bytewax recovery saved, and hands the dataflow one
:class:`~pipeline.records.RawBatch` per poll. Offsets live in Bytewax snapshots, so
nothing is ever committed to a consumer group.

The sink produces with ``acks=all`` and idempotence, then checks every delivery
report: a record Kafka did not accept raises instead of vanishing (Bytewax's own
``KafkaSink`` ignores delivery failures, bytewax issue 522).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn, cast

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # NewTopic: stubs omit the re-export
    AdminClient,
    NewTopic,
)

from pipeline.records import RawBatch

__all__ = [
    "KafkaBatchSource",
    "KafkaProducerSink",
    "LagObserver",
    "Throttled",
    "ensure_topics",
    "kafka_consumer_config",
    "kafka_producer_config",
]

logger = logging.getLogger(__name__)
librdkafka_logger = logging.getLogger(f"{__name__}.librdkafka")

LagObserver = Callable[[str, int, int], None]
"""Called with ``(topic, partition, lag)``: records on the broker not yet read."""

# The group id is only a label: partitions are assigned, never subscribed, and no
# offset is ever committed, because Bytewax recovery snapshots hold the positions.
CONSUMER_GROUP_ID = "pitboss"

# After an empty poll, wait this long before polling again instead of spinning.
_IDLE_BACKOFF = timedelta(milliseconds=10)
# After a poll that brought only errors (broker unreachable...), back off longer.
_ERROR_BACKOFF = timedelta(milliseconds=100)
# How long a fresh partition waits for metadata before its first assignment.
_METADATA_WARMUP_TIMEOUT_S = 2.0
# A recurring log line is written once, then at most once per this many seconds.
_LOG_INTERVAL_S = 10.0

# Errors that librdkafka recovers from by itself (reconnect, leader change, retry):
# a consumer's fetch position is unchanged and a producer keeps its records queued,
# so waiting loses nothing. Every other error stops the job.
_TRANSIENT_ERRORS = frozenset(
    {
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._RESOLVE,
        KafkaError._WAIT_COORD,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.BROKER_NOT_AVAILABLE,
        KafkaError.REPLICA_NOT_AVAILABLE,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.KAFKA_STORAGE_ERROR,
        KafkaError.FENCED_LEADER_EPOCH,
        KafkaError.UNKNOWN_LEADER_EPOCH,
        KafkaError.OFFSET_NOT_AVAILABLE,
    }
)


def kafka_consumer_config(brokers: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Build a librdkafka consumer config for low-latency reads that never skip events.

    ``brokers`` is the bootstrap list (``host:port,host:port``); ``extra`` (security
    settings, tuning) is applied last and wins.
    """
    config = {
        "bootstrap.servers": brokers,
        "client.id": "pitboss",
        "group.id": CONSUMER_GROUP_ID,
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        # A resume offset that is no longer on the broker restarts at the oldest
        # record still there, never at the newest: we must not skip events.
        "auto.offset.reset": "earliest",
        # The default (1000 ms) leaves a consumer idle once its local queue is full.
        "fetch.queue.backoff.ms": "5",
        # Bounds how long a broker may hold an empty fetch. Kafka answers a long poll
        # as soon as data arrives; Tansu does not (measured median delivery latency:
        # ~200 ms at the default 500, ~27 ms at 100), so this caps latency there.
        "fetch.wait.max.ms": "100",
        "socket.nagle.disable": "true",
    }
    if extra:
        config.update(extra)
    return config


def kafka_producer_config(brokers: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Build a librdkafka producer config that favours never losing a record.

    ``acks=all`` and idempotence make retries safe (no duplicates, no reordering);
    ``message.timeout.ms`` bounds how long a record may wait for the broker before
    it counts as failed. ``extra`` is applied last and wins.
    """
    config = {
        "bootstrap.servers": brokers,
        "client.id": "pitboss",
        "acks": "all",
        "enable.idempotence": "true",
        "linger.ms": "5",
        "compression.type": "lz4",
        "message.timeout.ms": "60000",
        "socket.nagle.disable": "true",
    }
    if extra:
        config.update(extra)
    return config


def _describe(err: KafkaError) -> str:
    return f"{err.name()}: {err.str()}"


def _is_transient(err: KafkaError) -> bool:
    return not err.fatal() and (err.code() in _TRANSIENT_ERRORS or err.retriable())


class Throttled:
    """Passes a recurring log line once, then at most once per interval, with a count."""

    def __init__(self, target: logging.Logger, interval_s: float = _LOG_INTERVAL_S) -> None:
        self._target = target
        self._interval_s = interval_s
        self._next_at = 0.0
        self._suppressed = 0

    def log(self, level: int, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next_at:
            self._suppressed += 1
            return
        if self._suppressed:
            msg += " (%d similar suppressed)"
            args = (*args, self._suppressed)
        self._target.log(level, msg, *args)
        self._suppressed = 0
        self._next_at = now + self._interval_s


class _LibrdkafkaLog:
    """Routes librdkafka's own log lines into Python logging, throttled per facility.

    Without it librdkafka writes to stderr, e.g. a line per reconnect attempt (about
    20 a second) while a broker is down.
    """

    def __init__(self) -> None:
        self._by_facility: dict[str, Throttled] = {}

    def log(self, level: int, msg: str, *args: object) -> None:
        # confluent-kafka calls log(python_level, "%s [%s] %s", facility, client, text).
        facility = str(args[0]) if args else ""
        throttled = self._by_facility.get(facility)
        if throttled is None:
            throttled = self._by_facility[facility] = Throttled(librdkafka_logger)
        throttled.log(level, msg, *args)


class _KafkaBatchPartition(StatefulSourcePartition[RawBatch, int]):
    """Reads one topic partition; the snapshot is the next offset to read."""

    def __init__(
        self,
        config: dict[str, str],
        *,
        topic: str,
        partition: int,
        resume_offset: int | None,
        batch_size: int,
        lag_observer: LagObserver | None,
        lag_interval_s: float,
    ) -> None:
        self._topic = topic
        self._partition = partition
        self._source = f"{topic}/{partition}"
        self._batch_size = batch_size
        self._next_offset = OFFSET_BEGINNING if resume_offset is None else resume_offset
        self._first_batch = True
        self._eof = False
        self._awake_at: datetime | None = None
        self._transient_log = Throttled(logger)
        self._transient_seen = False
        self._client_failure: KafkaError | None = None
        self._lag_observer = lag_observer
        self._lag_interval_s = lag_interval_s
        self._next_lag_report = 0.0
        self._watermark_tp = TopicPartition(topic, partition)
        client_config: dict[str, Any] = dict(config)
        client_config["error_cb"] = self._on_client_error
        client_config["logger"] = _LibrdkafkaLog()
        try:
            self._consumer = Consumer(client_config)
            if self._next_offset < 0:
                self._warm_metadata()
            self._consumer.assign([TopicPartition(topic, partition, self._next_offset)])
        except KafkaException as exc:
            msg = f"cannot start a Kafka consumer for {self._source} at {self._position()}"
            raise RuntimeError(msg) from exc

    def _warm_metadata(self) -> None:
        # Assigned at a logical offset (the beginning) before librdkafka knows the
        # partition leader, the consumer waits a fixed 500 ms before looking the
        # offset up; fetching metadata first avoids that. Only an optimisation: if
        # the broker is unreachable, the polls report it.
        try:
            self._consumer.list_topics(timeout=_METADATA_WARMUP_TIMEOUT_S)
        except KafkaException as exc:
            logger.debug("Kafka %s: metadata warm-up failed: %s", self._source, exc)

    def next_batch(self) -> list[RawBatch]:
        """Return the records one poll brought, as a single batch (or none)."""
        if self._eof:
            raise StopIteration
        if self._lag_observer is not None:
            self._report_lag(self._lag_observer)
        msgs = self._consumer.consume(self._batch_size, 0)
        if self._client_failure is not None:
            self._fail(self._client_failure)
        values: list[bytes] = []
        # Typed loosely for librdkafka's stubs; a message without an error always
        # carries its offset.
        positions: list[int | None] = []
        append_value = values.append
        append_position = positions.append
        for msg in msgs:
            if msg.error() is not None:
                if self._on_message_error(msg):
                    break
                continue
            # A tombstone (no value) goes on as empty bytes, so decoding sends it to
            # the dead letters instead of it vanishing.
            append_value(msg.value() or b"")
            append_position(msg.offset())
        if not values:
            if self._eof:
                raise StopIteration
            backoff = _ERROR_BACKOFF if self._transient_seen else _IDLE_BACKOFF
            self._transient_seen = False
            self._awake_at = datetime.now(UTC) + backoff
            return []
        self._awake_at = None
        batch = RawBatch(self._source, values, cast("list[int]", positions))
        if self._first_batch:
            self._check_start(batch.positions[0])
        self._next_offset = batch.positions[-1] + 1
        return [batch]

    def _on_client_error(self, err: KafkaError) -> None:
        # librdkafka reports client-wide errors (connections, brokers) here, from
        # within consume(); raising is left to next_batch.
        if _is_transient(err):
            self._warn_transient(err)
        elif self._client_failure is None:
            self._client_failure = err

    def _on_message_error(self, msg: Message) -> bool:
        """Handle an error event; True when the partition's end was reached."""
        err = cast("KafkaError", msg.error())
        if err.code() == KafkaError._PARTITION_EOF:
            self._eof = True
            return True
        if not _is_transient(err):
            self._fail(err)
        self._warn_transient(err)
        return False

    def _warn_transient(self, err: KafkaError) -> None:
        self._transient_seen = True
        self._transient_log.log(
            logging.WARNING,
            "Kafka consumer for %s: %s; retrying from %s",
            self._source,
            _describe(err),
            self._position(),
        )

    def _position(self) -> str:
        if self._next_offset < 0:
            return "the beginning of the partition"
        return f"offset {self._next_offset}"

    def _fail(self, err: KafkaError) -> NoReturn:
        msg = (
            f"Kafka consumer for topic {self._topic!r} partition {self._partition} failed "
            f"at {self._position()}: {_describe(err)}"
        )
        raise RuntimeError(msg) from KafkaException(err)

    def _check_start(self, first_offset: int) -> None:
        self._first_batch = False
        if 0 <= self._next_offset < first_offset:
            logger.warning(
                "Kafka %s: resumed at offset %d but the first record available is %d; "
                "%d offsets are gone from the broker (retention, compaction or "
                "transaction markers)",
                self._source,
                self._next_offset,
                first_offset,
                first_offset - self._next_offset,
            )

    def _report_lag(self, observer: LagObserver) -> None:
        now = time.monotonic()
        if now < self._next_lag_report:
            return
        # Cached watermarks cost no request: librdkafka updates the high watermark
        # from every fetch response.
        try:
            low, high = self._consumer.get_watermark_offsets(self._watermark_tp, cached=True)
        except KafkaException:
            return  # A metric is not worth failing the job over; try again later.
        position = self._next_offset if self._next_offset >= 0 else low
        if high < 0 or position < 0:
            return  # Nothing fetched yet; ask again on the next poll.
        self._next_lag_report = now + self._lag_interval_s
        observer(self._topic, self._partition, max(high - position, 0))

    def next_awake(self) -> datetime | None:
        """Poll again at once while data flows; back off a little when idle."""
        return self._awake_at

    def snapshot(self) -> int:
        """The next offset to read (``OFFSET_BEGINNING`` before the first record)."""
        return self._next_offset

    def close(self) -> None:
        """Close the consumer; nothing is committed."""
        self._consumer.close()


class KafkaBatchSource(FixedPartitionedSource[RawBatch, int]):
    """Read Kafka topics as :class:`RawBatch` items, one per poll of a partition.

    Every topic partition is a Bytewax partition (``"{index}-{topic}"``, as in
    Bytewax's ``KafkaSource``), assigned at the offset from the recovery snapshot,
    or at the beginning of the partition on a fresh start.

    With ``tail=False`` each partition stops at the end it finds (replays,
    benchmarks, tests); otherwise it waits for new records forever.

    Transient consumer errors (broker down, transport failures, timeouts) are
    logged and retried without moving the position; any other consumer error
    raises ``RuntimeError`` naming the topic and partition.

    ``lag_observer``, if set, is called with ``(topic, partition, lag)`` at most
    once per ``lag_interval_s`` per partition, from the polling thread.
    """

    def __init__(
        self,
        brokers: str,
        topics: Iterable[str],
        *,
        tail: bool = True,
        batch_size: int = 2000,
        extra: Mapping[str, str] | None = None,
        lag_observer: LagObserver | None = None,
        lag_interval_s: float = 1.0,
        metadata_timeout_s: float = 10.0,
    ) -> None:
        """Configure the source; nothing connects until Bytewax lists the partitions."""
        if isinstance(topics, str):
            msg = f"topics must be a list of topic names, not the string {topics!r}"
            raise TypeError(msg)
        if batch_size < 1:
            msg = f"batch_size must be at least 1, got {batch_size}"
            raise ValueError(msg)
        self.brokers = brokers
        self.topics = list(topics)
        self.tail = tail
        self.batch_size = batch_size
        self.extra = dict(extra or {})
        self.lag_observer = lag_observer
        self.lag_interval_s = lag_interval_s
        self.metadata_timeout_s = metadata_timeout_s

    def _config(self) -> dict[str, str]:
        config = kafka_consumer_config(self.brokers, self.extra)
        # Not overridable: it decides whether a partition ever ends.
        config["enable.partition.eof"] = "false" if self.tail else "true"
        return config

    def list_parts(self) -> list[str]:
        """One part per partition of every topic; a missing topic is an error.

        Topics are looked up in the full topic list, never by name, because asking
        for a missing topic by name makes some brokers (Tansu, Kafka with
        ``auto.create.topics.enable``) create it.
        """
        consumer = Consumer({**self._config(), "logger": _LibrdkafkaLog()})
        try:
            metadata = consumer.list_topics(timeout=self.metadata_timeout_s)
        except KafkaException as exc:
            msg = f"cannot list the partitions of Kafka topics {self.topics} on {self.brokers}"
            raise RuntimeError(msg) from exc
        finally:
            consumer.close()
        parts: list[str] = []
        for topic in self.topics:
            topic_metadata = metadata.topics.get(topic)
            if topic_metadata is None:
                msg = f"Kafka topic {topic!r} does not exist on {self.brokers}"
                raise RuntimeError(msg)
            if topic_metadata.error is not None:
                msg = f"cannot list the partitions of Kafka topic {topic!r}: {topic_metadata.error}"
                raise RuntimeError(msg) from KafkaException(topic_metadata.error)
            parts.extend(f"{index}-{topic}" for index in sorted(topic_metadata.partitions))
        return parts

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> StatefulSourcePartition[RawBatch, int]:
        """Open a consumer for ``"{index}-{topic}"`` at the resume offset."""
        index, _, topic = for_part.partition("-")
        if topic not in self.topics or not index.isdigit():
            msg = (
                f"step {step_id!r}: cannot build Kafka part {for_part!r}; this source "
                f"reads topics {self.topics} (a snapshot from another topic set?)"
            )
            raise ValueError(msg)
        return _KafkaBatchPartition(
            self._config(),
            topic=topic,
            partition=int(index),
            resume_offset=resume_state,
            batch_size=self.batch_size,
            lag_observer=self.lag_observer,
            lag_interval_s=self.lag_interval_s,
        )


class _ProducerPartition(StatelessSinkPartition[tuple[bytes | None, bytes]]):
    """One producer per worker; every batch is flushed and checked before returning."""

    def __init__(self, config: dict[str, str], topic: str) -> None:
        self._topic = topic
        self._flush_timeout_s = int(config["message.timeout.ms"]) / 1000 + 5.0
        self._failed = 0
        self._first_error: KafkaError | None = None
        self._client_failure: KafkaError | None = None
        self._transient_log = Throttled(logger)
        producer_config: dict[str, Any] = dict(config)
        # Only failures are reported: that is all we act on, and it is cheaper.
        producer_config["delivery.report.only.error"] = True
        producer_config["on_delivery"] = self._on_delivery
        producer_config["error_cb"] = self._on_client_error
        producer_config["logger"] = _LibrdkafkaLog()
        try:
            self._producer = Producer(producer_config)
        except KafkaException as exc:
            msg = f"cannot start a Kafka producer for topic {topic!r}"
            raise RuntimeError(msg) from exc

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._failed += 1
            if self._first_error is None:
                self._first_error = err

    def _on_client_error(self, err: KafkaError) -> None:
        # Connection trouble is retried by librdkafka while records wait in its
        # queue (up to message.timeout.ms); anything else fails the next flush.
        if _is_transient(err):
            self._transient_log.log(
                logging.WARNING,
                "Kafka producer for topic %r: %s; retrying",
                self._topic,
                _describe(err),
            )
        elif self._client_failure is None:
            self._client_failure = err

    def write_batch(self, items: list[tuple[bytes | None, bytes]]) -> None:
        """Produce every item, wait until Kafka acknowledged all, raise if any failed."""
        produce = self._producer.produce
        topic = self._topic
        try:
            for key, value in items:
                try:
                    produce(topic, value, key)
                except BufferError:
                    self._produce_when_room(key, value)
        except KafkaException as exc:
            msg = f"Kafka producer for topic {topic!r} refused a record: {exc}"
            raise RuntimeError(msg) from exc
        self._flush_and_check(len(items))

    def _produce_when_room(self, key: bytes | None, value: bytes) -> None:
        # The local queue is full: serve delivery reports until there is room again.
        # Queued records time out after message.timeout.ms, so room always comes.
        deadline = time.monotonic() + self._flush_timeout_s
        while True:
            self._producer.poll(0.05)
            try:
                self._producer.produce(self._topic, value, key)
                return
            except BufferError as exc:
                if time.monotonic() > deadline:
                    msg = (
                        f"Kafka producer for topic {self._topic!r}: local queue still full "
                        f"after {self._flush_timeout_s:.0f}s"
                    )
                    raise RuntimeError(msg) from exc

    def _flush_and_check(self, produced: int) -> None:
        outstanding = self._producer.flush(self._flush_timeout_s)
        failed, first_error = self._failed, self._first_error
        self._failed, self._first_error = 0, None
        if self._client_failure is not None:
            err = self._client_failure
            msg = f"Kafka producer for topic {self._topic!r} failed: {_describe(err)}"
            raise RuntimeError(msg) from KafkaException(err)
        if failed:
            msg = (
                f"Kafka producer for topic {self._topic!r}: {failed} of {produced} records "
                f"were not delivered; first error: {_describe(cast('KafkaError', first_error))}"
            )
            raise RuntimeError(msg) from KafkaException(first_error)
        if outstanding:
            msg = (
                f"Kafka producer for topic {self._topic!r}: {outstanding} records still "
                f"unacknowledged after waiting {self._flush_timeout_s:.0f}s"
            )
            raise RuntimeError(msg)

    def close(self) -> None:
        """Flush what is left and fail if any of it was not delivered."""
        self._flush_and_check(len(self._producer))


class KafkaProducerSink(DynamicSink[tuple[bytes | None, bytes]]):
    """Write ``(key, value)`` items to one Kafka topic, failing loudly on any loss.

    Each ``write_batch`` returns only once Kafka acknowledged every record of the
    batch (``acks=all``); a record that could not be delivered within
    ``message.timeout.ms`` raises ``RuntimeError`` naming the topic, how many
    records failed and the first error. With Bytewax recovery that makes delivery
    at-least-once.
    """

    def __init__(self, brokers: str, topic: str, extra: Mapping[str, str] | None = None) -> None:
        """Configure the sink; each worker opens its producer when built."""
        self.brokers = brokers
        self.topic = topic
        self.extra = dict(extra or {})

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[tuple[bytes | None, bytes]]:
        """Open this worker's producer."""
        return _ProducerPartition(kafka_producer_config(self.brokers, self.extra), self.topic)


def ensure_topics(
    brokers: str,
    topics: Mapping[str, int],
    retention_ms: int,
    replication: int = 1,
    *,
    extra: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics (name -> partition count) that do not exist yet.

    Topics are created with an explicit ``retention.ms`` (some brokers report a
    topic's config only if it was given at creation). A topic that already exists
    is left as it is, with a warning if it has fewer partitions than asked for.
    Returns the names of the topics created.
    """
    for name, partitions in topics.items():
        if partitions < 1:
            msg = f"Kafka topic {name!r}: partition count must be at least 1, got {partitions}"
            raise ValueError(msg)
    admin_config: dict[str, str | int | float | bool] = {"bootstrap.servers": brokers}
    admin_config.update(extra or {})
    admin = AdminClient(admin_config, logger=_LibrdkafkaLog())
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        msg = f"cannot list Kafka topics on {brokers} to create {sorted(topics)}"
        raise RuntimeError(msg) from exc
    for name, partitions in topics.items():
        if name in existing and len(existing[name].partitions) < partitions:
            logger.warning(
                "Kafka topic %r has %d partitions, fewer than the %d configured",
                name,
                len(existing[name].partitions),
                partitions,
            )
    missing = [
        NewTopic(
            name,
            num_partitions=partitions,
            replication_factor=replication,
            config={"retention.ms": str(retention_ms)},
        )
        for name, partitions in topics.items()
        if name not in existing
    ]
    if not missing:
        return []
    futures = admin.create_topics(missing, request_timeout=timeout_s, operation_timeout=timeout_s)
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except TimeoutError as exc:
            msg = f"Kafka topic {name!r}: no answer from {brokers} within {timeout_s}s"
            raise RuntimeError(msg) from exc
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue  # Created meanwhile by another worker or process.
            msg = (
                f"cannot create Kafka topic {name!r} ({topics[name]} partitions, "
                f"replication {replication}, retention.ms {retention_ms}) on {brokers}: {exc}"
            )
            raise RuntimeError(msg) from exc
        created.append(name)
    return created
