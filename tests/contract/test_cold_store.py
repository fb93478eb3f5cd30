"""Contract of the cold store (evicted players' state), run against memory and Redis, and
the shard's recovery story on both: resume an old snapshot, replay, decide the same.

Redis tests use the ``redis_prefix`` fixture: keys of their own, deleted afterwards.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

import pytest
import redis

from operators.engine import PlayerShard
from operators.eviction import (
    DEFAULT_RETENTION_SECONDS,
    ColdStore,
    ColdStoreError,
    Eviction,
    MemoryColdStore,
)
from operators.player_state import DAY
from sinks.stores.cold import RedisColdStore
from sinks.stores.redis import connect
from tests.support.eviction import FlakyStore, canonical, feed, rows, starter_pack
from tests.support.scenario import Script, day


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Backend:
    """One cold store, and a way to let its retention clock pass."""

    store: ColdStore
    advance: Callable[[float], None]


def _memory() -> Backend:
    clock = FakeClock()
    store = MemoryColdStore(DEFAULT_RETENTION_SECONDS, clock)

    def advance(seconds: float) -> None:
        clock.now += seconds

    return Backend(store, advance)


def _redis(client: redis.Redis, prefix: str, batch: int = 1000) -> Backend:
    store = RedisColdStore(client, prefix, DEFAULT_RETENTION_SECONDS, batch=batch)

    def advance(seconds: float) -> None:  # shorten every expiring key of this test
        for key in client.scan_iter(match=f"{prefix}*"):
            left_ms = cast("int", client.pttl(key))
            if left_ms < 0:
                continue
            if left_ms <= seconds * 1000:
                client.delete(key)
            else:
                client.pexpire(key, round(left_ms - seconds * 1000))

    return Backend(store, advance)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        yield _memory()
        return
    client: redis.Redis = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("redis_prefix")
    yield _redis(client, prefix, batch=7)  # small batches: several round trips per call


# -- the store --------------------------------------------------------------------------


def test_a_blob_reads_back_as_written(backend: Backend) -> None:
    backend.store.put("p1", 0, b"\x00state\xff")
    assert backend.store.get("p1", 0) == b"\x00state\xff"


def test_a_missing_blob_reads_as_none(backend: Backend) -> None:
    backend.store.put("p1", 0, b"a")
    assert backend.store.get("p1", 1) is None
    assert backend.store.get("p2", 0) is None


def test_versions_of_one_player_are_separate_blobs(backend: Backend) -> None:
    backend.store.put_many([("p1", 0, b"old"), ("p1", 1, b"new")])
    assert backend.store.get_many([("p1", 1), ("p1", 0)]) == [b"new", b"old"]


def test_many_blobs_in_one_call_keep_their_order_with_gaps(backend: Backend) -> None:
    blobs = [(f"p{i}", i % 3, bytes([i % 256]) * (i + 1)) for i in range(50)]
    backend.store.put_many(blobs)
    keys = [(pid, version) for pid, version, _ in blobs]
    keys.insert(10, ("nobody", 0))
    found = backend.store.get_many(keys)
    assert found[10] is None
    assert [b for b in found if b is not None] == [blob for _, _, blob in blobs]


def test_player_ids_may_contain_the_key_separator(backend: Backend) -> None:
    backend.store.put_many([("a:1", 2, b"x"), ("a", 12, b"y")])
    assert backend.store.get_many([("a:1", 2), ("a", 12), ("a:12", 0)]) == [b"x", b"y", None]


def test_a_disposed_blob_stays_readable_for_the_retention_then_goes(backend: Backend) -> None:
    backend.store.put_many([("p1", 0, b"a"), ("p2", 0, b"b")])
    backend.store.dispose("p1", 0)
    backend.advance(DEFAULT_RETENTION_SECONDS - 60)
    assert backend.store.get_many([("p1", 0), ("p2", 0)]) == [b"a", b"b"]
    backend.advance(120)
    assert backend.store.get_many([("p1", 0), ("p2", 0)]) == [None, b"b"]


def test_writing_a_disposed_version_again_makes_it_durable(backend: Backend) -> None:
    backend.store.put("p1", 3, b"first")
    backend.store.dispose("p1", 3)
    backend.store.put("p1", 3, b"second")  # a version reused after a failed sweep
    backend.advance(DEFAULT_RETENTION_SECONDS + 60)
    assert backend.store.get("p1", 3) == b"second"


def test_disposing_what_is_not_there_is_harmless(backend: Backend) -> None:
    backend.store.dispose_many([("ghost", 1)])
    assert backend.store.get("ghost", 1) is None


@pytest.mark.integration
def test_redis_keys_are_under_the_prefix_and_expire_only_after_a_restore(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    store = RedisColdStore(redis_client, redis_prefix, retention_seconds=3600)
    store.put_many([("p1", 4, b"a"), ("p2", 5, b"b")])
    assert sorted(redis_client.scan_iter(match=f"{redis_prefix}*")) == [
        f"{redis_prefix}cold:p1:4".encode(),
        f"{redis_prefix}cold:p2:5".encode(),
    ]
    assert redis_client.ttl(f"{redis_prefix}cold:p1:4") == -1
    store.dispose("p1", 4)
    assert 3500 < cast("int", redis_client.ttl(f"{redis_prefix}cold:p1:4")) <= 3600


@pytest.mark.integration
def test_an_unreachable_redis_is_a_cold_store_error() -> None:
    client = connect("redis://127.0.0.1:1", socket_timeout=0.05, retries=0)
    store = RedisColdStore(client, "pitboss-test-unreachable:")
    for call in (
        lambda: store.put("p1", 0, b"a"),
        lambda: store.get("p1", 0),
        lambda: store.dispose("p1", 0),
    ):
        with pytest.raises(ColdStoreError, match="cold store"):
            call()


# -- the shard on each store: recovery ----------------------------------------------------


def _population() -> Script:
    """Players who register over two months; a third come back after weeks away."""
    s = Script()
    for n in range(24):
        pid = f"p{n}"
        s.at(days=n * 2.5).register(pid, birth_date=f"1990-04-{1 + n:02d}").deposit(pid, "30")
        s.after(minutes=3).round(pid, "2.00", "0").round(pid, "1.00", "4.00")
        if n % 3 == 0:
            back = n - 9  # someone from about three weeks ago returns
            if back >= 0:
                s.after(hours=1).login(f"p{back}").deposit(f"p{back}", "15")
    return s


def _evicting(store: ColdStore) -> PlayerShard:
    rules = starter_pack()
    shard = PlayerShard(rules=rules.rule_sets, guards=rules.guards)
    return shard.with_eviction(Eviction(store, 7 * DAY, 3600))


def test_a_shard_on_this_store_decides_as_one_that_never_evicts(backend: Backend) -> None:
    rules = starter_pack()
    keeps = PlayerShard(rules=rules.rule_sets, guards=rules.guards)
    evicts = _evicting(backend.store)
    events = _population().events()
    reference = feed(keeps, events, chunk=5, lag=600, final=day(120))
    actions = feed(evicts, events, chunk=5, lag=600, final=day(120))
    assert evicts.evictions > 10 and evicts.restores > 3
    assert canonical(actions) == canonical(reference)
    assert rows(evicts, day(120)) == rows(keeps, day(120))


def test_a_resumed_snapshot_replays_to_the_same_decisions_without_overwriting_its_versions(
    backend: Backend,
) -> None:
    recorded = FlakyStore(backend.store)
    shard = _evicting(recorded)
    events = _population().events()
    cut = len(events) // 2
    feed(shard, events[:cut], chunk=5, lag=600)
    assert shard.evicted, "the snapshot should hold evicted players"
    snapshot = pickle.dumps(shard)  # what Bytewax keeps at the end of an epoch
    referenced = set(shard.evicted.items())
    # The job carries on (evicting, restoring, disposing), then dies.
    lost = feed(shard, events[cut:], chunk=5, lag=600, final=day(120))
    # It brought back players the snapshot holds as evicted, and marked their blobs
    # disposable: the replay needs them again.
    assert referenced & set(recorded.disposed)
    # It restarts from the snapshot, gets its store back, and reads the same events again.
    resumed: PlayerShard = pickle.loads(snapshot)
    rules = starter_pack()
    resumed.with_rules(rules.rule_sets, rules.guards)
    resumed.with_eviction(Eviction(recorded, 7 * DAY, 3600))
    written_before = len(recorded.written)
    replayed = feed(resumed, events[cut:], chunk=5, lag=600, final=day(120))
    assert canonical(replayed) == canonical(lost)
    assert rows(resumed, day(120)) == rows(shard, day(120))
    assert len(recorded.written) > written_before  # the replay evicted again...
    assert not referenced & set(recorded.written[written_before:])  # ...under new versions
