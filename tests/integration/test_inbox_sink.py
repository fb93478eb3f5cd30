"""The in-app inbox against the Redis server at ``REDIS_URL``, and its in-memory twin.

Each test uses its own key prefix and deletes only its own keys afterwards.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from operators.actions import Action, ActionKind
from sinks.base import (
    ChannelSink,
    DeliveryStatus,
    RedisDeliveryLedger,
    ResilientSender,
    TransientDeliveryError,
)
from sinks.inbox import MemoryInboxSink, RedisInboxSink
from tests.support.tansu import free_port

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def client(redis_client: redis.Redis) -> redis.Redis:
    return redis_client


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return redis_prefix


def message(n: int, player_id: str = "p-1", **payload: Any) -> Action:
    return Action(
        action_id=f"a-inbox-{n:04d}",
        campaign_id="missions",
        player_id=player_id,
        kind=ActionKind.MESSAGE,
        channel="in_app",
        payload={"template_id": "mission", "rendered": {"title": f"Миссия {n}"}, **payload},
        event_id=f"e-{n}",
        decision="sent",
        event_at=T0,
        decided_at=T0,
    )


def test_a_message_lands_in_the_players_stream_without_contact_details(
    client: redis.Redis, prefix: str
) -> None:
    sink = RedisInboxSink(client, prefix=prefix)
    entry_id = sink.send(message(1, to="player@example.com"))
    assert client.xlen(f"{prefix}inbox:p-1") == 1
    (received,) = sink.messages("p-1")
    assert received.entry_id == entry_id
    assert (received.action_id, received.campaign_id, received.kind) == (
        "a-inbox-0001",
        "missions",
        "message",
    )
    assert received.decided_at == "2026-03-01T12:00:00+00:00"
    assert received.payload == {"template_id": "mission", "rendered": {"title": "Миссия 1"}}


def test_the_same_action_twice_adds_one_entry_and_returns_the_first_id(
    client: redis.Redis, prefix: str
) -> None:
    first, replay = RedisInboxSink(client, prefix=prefix), RedisInboxSink(client, prefix=prefix)
    assert first.send(message(1)) == replay.send(message(1))
    assert client.xlen(f"{prefix}inbox:p-1") == 1
    ttl = client.ttl(f"{prefix}inbox-sent:a-inbox-0001")
    assert isinstance(ttl, int) and ttl > 0


def test_an_exactly_trimmed_inbox_keeps_the_newest_n(client: redis.Redis, prefix: str) -> None:
    sink = RedisInboxSink(client, prefix=prefix, max_len=5, approximate_trim=False)
    for n in range(12):
        sink.send(message(n))
    assert client.xlen(f"{prefix}inbox:p-1") == 5
    assert [m.action_id for m in sink.messages("p-1")] == [
        f"a-inbox-{n:04d}" for n in range(11, 6, -1)
    ]


def test_an_approximately_trimmed_inbox_stays_bounded(client: redis.Redis, prefix: str) -> None:
    sink = RedisInboxSink(client, prefix=prefix, max_len=10)
    for n in range(400):
        sink.send(message(n))
    # MAXLEN ~ trims whole stream nodes (100 entries by default): bounded, not exact.
    length = client.xlen(f"{prefix}inbox:p-1")
    assert isinstance(length, int) and 10 <= length <= 10 + 100


def test_inboxes_are_per_player(client: redis.Redis, prefix: str) -> None:
    sink = RedisInboxSink(client, prefix=prefix)
    sink.send(message(1, player_id="p-a"))
    sink.send(message(2, player_id="p-b"))
    assert [m.action_id for m in sink.messages("p-a")] == ["a-inbox-0001"]
    assert [m.action_id for m in sink.messages("p-b")] == ["a-inbox-0002"]


def test_a_redis_outage_is_transient_and_names_the_sink_and_action() -> None:
    # No client-side retries: the sender owns retries and their deadline.
    down = redis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    with pytest.raises(TransientDeliveryError, match=r"inbox-redis: action a-inbox-0001: Redis"):
        RedisInboxSink(down).send(message(1))
    down.close()


def test_through_the_sender_a_replay_is_skipped_by_the_shared_ledger(
    client: redis.Redis, prefix: str
) -> None:
    def sender() -> ResilientSender:
        ledger = RedisDeliveryLedger(client, prefix=prefix)
        return ResilientSender(RedisInboxSink(client, prefix=prefix), ledger=ledger)

    assert sender().deliver(message(1)).status is DeliveryStatus.DELIVERED
    assert sender().deliver(message(1)).status is DeliveryStatus.SKIPPED_DUPLICATE
    assert client.xlen(f"{prefix}inbox:p-1") == 1


@pytest.mark.parametrize("make", [MemoryInboxSink, lambda: MemoryInboxSink(max_len=3)])
def test_the_memory_inbox_keeps_the_same_contract(make: Any) -> None:
    sink: ChannelSink = make()
    assert isinstance(sink, MemoryInboxSink)
    ids = [sink.send(message(n)) for n in range(5)]
    assert sink.send(message(4)) == ids[4]  # a replay returns the first id
    newest = sink.messages("p-1")
    assert newest[0].action_id == "a-inbox-0004"
    assert len(newest) == min(5, sink._max_len)
    assert newest[0].payload == {"template_id": "mission", "rendered": {"title": "Миссия 4"}}
