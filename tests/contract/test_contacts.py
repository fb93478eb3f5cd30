"""Contract of the contact directory, run against the memory and the Redis implementation."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from sinks.contacts import (
    ContactDirectory,
    Contacts,
    MemoryContactDirectory,
    RedisContactDirectory,
)
from sinks.stores import StoreError, StoreUnavailable
from sinks.stores.redis import connect
from tests.support.tansu import free_port

Write = Callable[..., None]  # write(player_id, email=..., phone=..., push_token=...)


@pytest.fixture(params=["memory", "redis"])
def directory(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[ContactDirectory, Write]]:
    """A directory of one backend and how the operator's sync writes into it."""
    if request.param == "memory":
        memory = MemoryContactDirectory()

        def put(player_id: str, **fields: str) -> None:
            memory.put(player_id, Contacts.of(**fields))

        yield memory, put
        return
    client: redis.Redis = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("redis_prefix")

    def hset(player_id: str, **fields: str) -> None:
        client.hset(f"{prefix}contact:{player_id}", mapping=fields)

    yield RedisContactDirectory(client, prefix), hset


def test_a_player_the_directory_does_not_know_has_no_contacts(
    directory: tuple[ContactDirectory, Write],
) -> None:
    found, _ = directory
    assert found.lookup("nobody") is None


def test_a_players_contacts_are_found_by_player_id(
    directory: tuple[ContactDirectory, Write],
) -> None:
    found, write = directory
    write("p1", email="p1@example.com", phone="+4915100001", push_token="tok-1")
    write("p2", phone="+4915100002")
    assert found.lookup("p1") == Contacts("p1@example.com", "+4915100001", "tok-1")
    assert found.lookup("p2") == Contacts(phone="+4915100002")


def test_an_empty_value_counts_as_no_contact(directory: tuple[ContactDirectory, Write]) -> None:
    found, write = directory
    write("p1", email="", phone="+4915100001")
    write("p2", email="")
    assert found.lookup("p1") == Contacts(phone="+4915100001")
    assert found.lookup("p2") is None


def test_redis_contacts_are_one_hash_per_player_under_the_prefix(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    redis_client.hset(
        f"{redis_prefix}contact:p:1", mapping={"email": " p1@example.com ", "tier": "vip"}
    )
    found = RedisContactDirectory(redis_client, redis_prefix)
    assert found.key("p:1") == f"{redis_prefix}contact:p:1"
    assert found.lookup("p:1") == Contacts(email="p1@example.com")  # trimmed; extra fields ignored


def test_redis_down_is_unavailable_and_a_bad_record_is_an_error(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    down = connect(f"redis://127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailable, match="contact directory"):
        RedisContactDirectory(down, redis_prefix).lookup("p1")
    down.close()
    redis_client.set(f"{redis_prefix}contact:p1", "not a hash")
    with pytest.raises(StoreError, match="contact lookup failed") as raised:
        RedisContactDirectory(redis_client, redis_prefix).lookup("p1")
    assert not isinstance(raised.value, StoreUnavailable)
