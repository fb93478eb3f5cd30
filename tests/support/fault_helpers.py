"""What the fault tests share: the job as a subprocess, its topics, replays as the reference.

A fault test runs `pitboss run` as its own process against real servers (a Tansu broker,
a redis-server, HTTP providers on loopback), does something bad to it or around it, and
compares what came out with what `pitboss replay` decides for the same records. Records
carry one sentinel login per partition 30 days after the last event, so every deadline a
replay fires at the end of its file is also due, in event time, in the unbounded live run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from pipeline.cli import main
from pipeline.produce import produce_records
from tests.support.tansu import ConsumedRecord, create_topic

PARTITIONS = 3
"""Partitions of every events topic the fault tests create."""

Decision = tuple[str, str]
"""``(action_id, decision)``: what the tests compare between runs."""


def newest_ts(records: Iterable[bytes]) -> datetime:
    """The latest aware ``ts`` among ``records`` (invalid records are skipped)."""
    newest = datetime.min.replace(tzinfo=UTC)
    for record in records:
        try:
            ts = datetime.fromisoformat(orjson.loads(record)["ts"])
        except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
            continue
        if ts.tzinfo is not None and ts > newest:
            newest = ts
    return newest


def sentinels(records: Iterable[bytes], partitions: int = PARTITIONS) -> list[bytes]:
    """One login per partition 30 days after the last event: every deadline comes due."""
    ts = (newest_ts(records) + timedelta(days=30)).astimezone(UTC).isoformat()
    return [
        orjson.dumps({"event_id": f"s{i}", "type": "login", "player_id": f"s{i}", "ts": ts})
        for i in range(partitions)
    ]


def decisions(actions: Iterable[Mapping[str, Any]]) -> Counter[Decision]:
    """Every ``(action_id, decision)`` of ``actions``, counted (a multiset)."""
    return Counter((a["action_id"], a["decision"]) for a in actions)


@dataclass(frozen=True)
class Reference:
    """What `pitboss replay` decided for a file of records."""

    actions: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]

    @property
    def decisions(self) -> set[Decision]:
        """The set of ``(action_id, decision)``."""
        return set(decisions(self.actions))

    def sent_on(self, channel: str) -> set[str]:
        """Ids of the actions the replay decided to send on ``channel``."""
        return {
            a["action_id"]
            for a in self.actions
            if a["channel"] == channel and a["decision"] == "sent"
        }


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():  # a sink that received nothing writes no file
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


def replay(records: Sequence[bytes], out: Path, *args: str) -> Reference:
    """Run `pitboss replay` in this process over ``records``; ``out`` gets its files.

    The settings come from this process's environment (set ``PITBOSS_CONFIG_DIR`` with
    ``monkeypatch`` first); ``args`` go to the command (``-w 2``).
    """
    out.mkdir(parents=True, exist_ok=True)
    events = out / "events.jsonl"
    events.write_bytes(b"\n".join(records) + b"\n")
    assert main(["replay", str(events), "--out", str(out), *args]) == 0
    return Reference(_jsonl(out / "actions.jsonl"), _jsonl(out / "dead_letters.jsonl"))


@dataclass(frozen=True)
class Topics:
    """One test's topics on a broker, with unique names."""

    brokers: str
    events: str
    actions: str
    dead_letters: str

    @classmethod
    def create(cls, brokers: str, events_partitions: int = PARTITIONS) -> Topics:
        """Create fresh events, actions and dead-letter topics."""
        suffix = uuid.uuid4().hex[:8]
        topics = cls(brokers, f"events-{suffix}", f"actions-{suffix}", f"dead-{suffix}")
        create_topic(brokers, topics.events, events_partitions)
        create_topic(brokers, topics.actions, 2)
        create_topic(brokers, topics.dead_letters, 1)
        return topics

    def fresh_outputs(self) -> Topics:
        """The same events topic with new, empty actions and dead-letter topics."""
        suffix = uuid.uuid4().hex[:8]
        topics = Topics(self.brokers, self.events, f"actions-{suffix}", f"dead-{suffix}")
        create_topic(self.brokers, topics.actions, 2)
        create_topic(self.brokers, topics.dead_letters, 1)
        return topics

    def env(self, config_dir: Path, **settings: str) -> dict[str, str]:
        """The environment of a `pitboss run` on these topics.

        ``settings`` are more ``PITBOSS_*`` variables, named without the prefix
        (``REDIS_URL="redis://..."``); metrics are off unless ``METRICS_PORT`` is given.
        """
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("PITBOSS_")  # a developer's shell must not leak in
        }
        env |= {
            "PITBOSS_KAFKA_BROKERS": self.brokers,
            "PITBOSS_EVENTS_TOPIC": self.events,
            "PITBOSS_ACTIONS_TOPIC": self.actions,
            "PITBOSS_DEAD_LETTERS_TOPIC": self.dead_letters,
            "PITBOSS_CONFIG_DIR": str(config_dir),
            "PITBOSS_METRICS_PORT": "0",
            "PITBOSS_LEADERBOARD_PORT": "0",
            "PITBOSS_EPOCH_INTERVAL_SECONDS": "1",
        }
        env |= {f"PITBOSS_{name}": value for name, value in settings.items()}
        return env


def produce_stream(topics: Topics, records: Sequence[bytes], marks: Sequence[bytes]) -> None:
    """Produce ``records`` keyed by player, then sentinel ``marks[i]`` to partition ``i``."""
    produce_records(topics.brokers, topics.events, records)
    producer = Producer({"bootstrap.servers": topics.brokers})
    for partition, mark in enumerate(marks):
        producer.produce(topics.events, mark, partition=partition)
    assert producer.flush(10) == 0


def _consumer(brokers: str, topic: str, timeout_s: float) -> tuple[Consumer, set[int]]:
    """A consumer assigned to every partition of ``topic`` from the beginning.

    It reports the end of each partition: Tansu's high watermarks are not a record
    count (after a batch of ten it reports 1), but its partition ends are right.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": "pitboss-fault-tests",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
        }
    )
    # The full listing: asking Tansu about one missing topic creates it.
    metadata = consumer.list_topics(timeout=timeout_s)
    if topic not in metadata.topics:
        consumer.close()
        raise AssertionError(f"topic {topic!r} does not exist")
    partitions = set(metadata.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    return consumer, partitions


class TopicReader:
    """Reads a topic from its beginning while something writes to it.

    Use as a context manager; :meth:`wait_for` polls until enough records arrived.
    """

    def __init__(self, brokers: str, topic: str, timeout_s: float = 10.0) -> None:
        """Assign every partition of ``topic`` from the beginning."""
        self.topic = topic
        self.brokers = brokers
        self.records: list[ConsumedRecord] = []
        self._consumer, self._partitions = _consumer(brokers, topic, timeout_s)
        self._at_end: set[int] = set()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def poll(self, timeout_s: float = 0.05) -> int:
        """Take what has arrived; return how many records were read in all."""
        for msg in self._consumer.consume(10_000, timeout_s):
            err = msg.error()
            partition = msg.partition() or 0
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(f"consuming {self.topic!r}: {err}")
                self._at_end.add(partition)
                continue
            self._at_end.discard(partition)
            record = ConsumedRecord(partition, msg.offset() or 0, msg.key(), msg.value())
            self.records.append(record)
        return len(self.records)

    def at_end(self) -> bool:
        """Whether every partition was read to the end the broker last reported."""
        return self._at_end == self._partitions

    def wait_for(self, count: int, timeout_s: float, *jobs: Job) -> float:
        """Poll until at least ``count`` records arrived; return the seconds it took.

        Fails at once, with its output, if one of ``jobs`` (the writers) died.
        """

        def arrived() -> bool:
            for job in jobs:
                job.check()
            return self.poll() >= count

        def diagnose() -> str:
            return "\n".join([self.second_opinion(), *(job.stacks() for job in jobs)])

        return wait_until(
            arrived,
            timeout_s,
            f"{count} records on {self.topic!r}",  # how many were read: in diagnose()
            diagnose,
            poll_s=0.0,
        )

    def second_opinion(self) -> str:
        """This reader's positions and what a fresh consumer reads of the topic now:
        tells a stalled writer (both short) from a stalled reader (only this one)."""
        assigned = [TopicPartition(self.topic, p) for p in sorted(self._partitions)]
        positions = {tp.partition: tp.offset for tp in self._consumer.position(assigned)}
        try:
            fresh = len(read_topic(self.brokers, self.topic, timeout_s=15.0))
        except Exception as exc:  # a diagnosis: say so, and let the stacks follow
            fresh_text = f"a fresh consumer failed: {exc!r}"
        else:
            fresh_text = f"a fresh consumer reads {fresh} records"
        return f"this reader read {len(self.records)} at positions {positions}; {fresh_text}"

    def read_to_end(self, timeout_s: float = 30.0, settle_s: float = 0.5) -> list[ConsumedRecord]:
        """Poll until every partition reported its end and ``settle_s`` then passed
        without another record; return everything read. Call it once nothing writes.

        The quiet time is there because a suite run under load once came back from a
        plain read to the ends 28 records short of what another reader of the same
        topic had already counted (not reproduced since; the cause is not known).
        """
        quiet_since: list[float] = []

        def settled() -> bool:
            before = len(self.records)
            self.poll()
            if not self.at_end() or len(self.records) != before:
                quiet_since.clear()
                return False
            if not quiet_since:
                quiet_since.append(time.monotonic())
            return time.monotonic() - quiet_since[0] >= settle_s

        wait_until(settled, timeout_s, f"{self.topic!r} read to the end", poll_s=0.0)
        return self.records

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()


def read_topic(
    brokers: str, topic: str, timeout_s: float = 30.0, settle_s: float = 0.5
) -> list[ConsumedRecord]:
    """Every record ``topic`` holds now: read with a fresh consumer to each partition's end.

    Call it once nothing writes any more (the job stopped) to see the final content,
    duplicates included.
    """
    with TopicReader(brokers, topic, timeout_s) as reader:
        return reader.read_to_end(timeout_s, settle_s)


def values(records: Iterable[ConsumedRecord]) -> list[dict[str, Any]]:
    """The JSON values of consumed records."""
    return [orjson.loads(r.value or b"") for r in records]


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    diagnose: Callable[[], str] = lambda: "",
    poll_s: float = 0.1,
) -> float:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout_s``.

    Returns the seconds it took.
    """
    started = time.monotonic()
    deadline = started + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            try:
                diagnosis = diagnose()
            except Exception as exc:  # it must not hide the timeout it explains
                diagnosis = f"(the diagnosis failed: {exc!r})"
            raise AssertionError(f"not within {timeout_s:.0f}s: {what}\n{diagnosis}")
        time.sleep(poll_s)
    return time.monotonic() - started


def scrape(port: int) -> dict[str, float]:
    """The job's metrics: every family's samples summed over their labels."""
    url = f"http://127.0.0.1:{port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def records_read(port: int) -> int:
    """Records the job has decoded so far: valid events plus dead letters."""
    metrics = scrape(port)
    total = metrics.get("pitboss_events_total", 0.0)
    return int(total + metrics.get("pitboss_dead_letters_total", 0.0))


class Job:
    """One `pitboss run` process; its output goes to a file, read with :meth:`log`.

    Leaving the ``with`` block stops it (SIGINT, then SIGKILL) and reaps it. With
    ``own_process_group`` it runs in a session of its own, so :meth:`kill` takes down
    everything it started and nothing of the test's.
    """

    def __init__(
        self, env: Mapping[str, str], *args: str, log_dir: Path, own_process_group: bool = False
    ) -> None:
        """Describe the process (``args`` after ``run``); :meth:`start` starts it."""
        self._env = dict(env)
        self._args = args
        self._own_group = own_process_group
        fd, name = tempfile.mkstemp(prefix="pitboss-run-", suffix=".log", dir=log_dir)
        os.close(fd)
        self.log_path = Path(name)
        self._proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

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
        """Start the process."""
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline.cli", "run", *self._args],
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self._own_group,
            )
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        """The process id."""
        assert self._proc is not None, "the job was never started"
        return self._proc.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self._proc is not None and self._proc.poll() is None

    def check(self) -> None:
        """Fail, with the job's output, if the process is not running."""
        if not self.alive():
            raise AssertionError(f"pitboss run exited; its output:\n{self.log()}")

    def log(self, tail: int = 4000) -> str:
        """The last ``tail`` characters of what the process printed."""
        return self.log_path.read_text(errors="replace")[-tail:]

    def stacks(self, wait_s: float = 1.0) -> str:
        """The output so far and, if it still runs, every Python thread's stack.

        For a job that stopped making progress: `pitboss run` dumps its stacks on
        SIGUSR1 without stopping.
        """
        if not self.alive():
            return self.log()
        assert self._proc is not None
        self._proc.send_signal(signal.SIGUSR1)
        time.sleep(wait_s)
        return self.log(tail=20_000)

    def interrupt(self) -> None:
        """Ask the process to stop (SIGINT), as Ctrl-C does; :meth:`stop` waits for it.

        The processes of a cluster stop together only if all of them are asked first.
        """
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        """Crash it: SIGKILL (to its whole process group, if it has its own), then reap it.

        Nothing is flushed, committed or snapshotted on the way down.
        """
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        if self._own_group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait(timeout=10)

    def stop(self) -> int | None:
        """Stop the process (SIGINT, then SIGKILL) and return its exit status."""
        proc = self._proc
        if proc is None:
            return None
        self.interrupt()
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=10)
