"""Contract of the leaderboard store, run against the memory and the Redis implementation.

Every test receives a ``Harness``: a store of one backend under a namespace of its own
(for Redis a random key prefix, whose keys, and only those, are deleted afterwards) and
a second worker's view of the same shared state.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.leaderboards import LeaderboardStore, MemoryLeaderboardStore, Standing
from sinks.leaderboards.redis import RedisLeaderboardStore
from sinks.stores import StoreUnavailable
from sinks.stores.redis import connect

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
T0 = 1_772_442_000  # 2026-03-02 09:00 UTC


class Harness(ABC):
    """One test's leaderboard store on one backend."""

    @abstractmethod
    def store(self) -> LeaderboardStore: ...

    @abstractmethod
    def second_worker(self) -> LeaderboardStore:
        """Another worker's view of the same shared state (for Redis: its own client)."""

    @abstractmethod
    def close(self) -> None: ...


class MemoryHarness(Harness):
    def __init__(self) -> None:
        self._store = MemoryLeaderboardStore()

    def store(self) -> LeaderboardStore:
        return self._store

    def second_worker(self) -> LeaderboardStore:
        return self._store

    def close(self) -> None:
        pass


class RedisHarness(Harness):
    """A store under a random prefix; closing deletes exactly the keys under it."""

    def __init__(self) -> None:
        self.prefix = f"pitboss-test:{uuid.uuid4().hex}:"
        self.clients = [connect(REDIS_URL)]

    def store(self) -> LeaderboardStore:
        return RedisLeaderboardStore(self.clients[0], self.prefix)

    def second_worker(self) -> LeaderboardStore:
        client = connect(REDIS_URL)
        self.clients.append(client)
        return RedisLeaderboardStore(client, self.prefix)

    def close(self) -> None:
        first = self.clients[0]
        keys = list(first.scan_iter(match=self.prefix + "*", count=1000))
        if keys:
            first.delete(*keys)
        for client in self.clients:
            client.close()


@pytest.fixture(
    scope="module", params=["memory", pytest.param("redis", marks=pytest.mark.integration)]
)
def backend(request: pytest.FixtureRequest) -> Callable[[], Harness]:
    """Builds fresh harnesses of one backend; module-scoped so hypothesis tests can use it."""
    if request.param == "memory":
        return MemoryHarness
    client = connect(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"the Redis server at REDIS_URL={REDIS_URL} is not reachable: {exc}")
    finally:
        client.close()
    return RedisHarness


@pytest.fixture
def harness(backend: Callable[[], Harness]) -> Iterator[Harness]:
    built = backend()
    yield built
    built.close()


def rows(standings: list[Standing]) -> list[tuple[int, str, int]]:
    return [(s.rank, s.player_id, s.score) for s in standings]


# ---------------------------------------------------------------------------- scores


def test_increments_add_up_per_player_and_rank_by_score(harness: Harness) -> None:
    store = harness.store()
    store.add("daily", "2026-03-02", "p1", 500, "t1", at=T0)
    store.add("daily", "2026-03-02", "p2", 800, "t2", at=T0 + 1)
    store.add("daily", "2026-03-02", "p1", 450, "t3", at=T0 + 2)
    assert rows(store.top("daily", "2026-03-02", 10)) == [(1, "p1", 950), (2, "p2", 800)]
    assert store.score("daily", "2026-03-02", "p1") == 950
    assert store.rank("daily", "2026-03-02", "p2") == 2
    assert store.size("daily", "2026-03-02") == 2


def test_a_token_already_applied_is_not_counted_again(harness: Harness) -> None:
    store = harness.store()
    assert store.add("daily", "2026-03-02", "p1", 500, "a-1", at=T0) is True
    assert store.add("daily", "2026-03-02", "p1", 500, "a-1", at=T0) is False
    assert store.score("daily", "2026-03-02", "p1") == 500


def test_boards_and_periods_are_independent(harness: Harness) -> None:
    store = harness.store()
    store.add("daily", "2026-03-02", "p1", 100, "t1")
    store.add("daily", "2026-03-03", "p1", 200, "t2")
    store.add("weekly", "2026-W10", "p1", 300, "t3")
    assert store.score("daily", "2026-03-02", "p1") == 100
    assert store.score("daily", "2026-03-03", "p1") == 200
    assert store.score("weekly", "2026-W10", "p1") == 300
    assert store.score("weekly", "2026-W11", "p1") is None


def test_the_same_token_on_another_period_is_another_increment(harness: Harness) -> None:
    store = harness.store()
    assert store.add("daily", "2026-03-02", "p1", 100, "t1")
    assert store.add("daily", "2026-03-03", "p1", 100, "t1")


def test_an_unknown_player_or_board_has_no_standing(harness: Harness) -> None:
    store = harness.store()
    store.add("daily", "2026-03-02", "p1", 100, "t1")
    assert store.standing("daily", "2026-03-02", "p9") is None
    assert store.rank("daily", "2026-03-02", "p9") is None
    assert store.top("nothing", "2026-03-02", 5) == []
    assert store.size("nothing", "2026-03-02") == 0


def test_top_n_returns_at_most_n_in_order(harness: Harness) -> None:
    store = harness.store()
    for i in range(12):
        store.add("daily", "d", f"p{i:02d}", 100 * (i + 1), f"t{i}", at=T0)
    top = store.top("daily", "d", 3)
    assert rows(top) == [(1, "p11", 1200), (2, "p10", 1100), (3, "p09", 1000)]
    assert store.top("daily", "d", 0) == []


# ---------------------------------------------------------------------------- ties


def test_on_equal_scores_the_player_who_reached_it_first_ranks_higher(harness: Harness) -> None:
    store = harness.store()
    store.add("race", "w", "late", 300, "t1", at=T0 + 50)
    store.add("race", "w", "early", 300, "t2", at=T0 + 10)
    store.add("race", "w", "top", 900, "t3", at=T0 + 99)
    assert rows(store.top("race", "w", 3)) == [(1, "top", 900), (2, "early", 300), (3, "late", 300)]
    assert store.rank("race", "w", "early") == 2
    assert store.rank("race", "w", "late") == 3
    assert store.standing("race", "w", "late") == Standing(3, "late", 300, T0 + 50)


def test_the_reach_time_is_the_newest_increment_whatever_the_arrival_order(
    harness: Harness,
) -> None:
    store = harness.store()
    store.add("race", "w", "a", 100, "a2", at=T0 + 20)
    store.add("race", "w", "a", 100, "a1", at=T0 + 5)  # arrives late, older
    store.add("race", "w", "b", 200, "b1", at=T0 + 15)
    assert rows(store.top("race", "w", 2)) == [(1, "b", 200), (2, "a", 200)]
    assert store.standing("race", "w", "a") == Standing(2, "a", 200, T0 + 20)


def test_equal_score_and_reach_time_fall_back_to_the_player_id(harness: Harness) -> None:
    store = harness.store()
    for player in ("pc", "pa", "pb"):
        store.add("race", "w", player, 100, f"t-{player}", at=T0)
    assert [s.player_id for s in store.top("race", "w", 3)] == ["pa", "pb", "pc"]


def test_a_tie_across_the_edge_of_top_n_is_broken_on_the_whole_group(harness: Harness) -> None:
    store = harness.store()
    # Members tied on score that the backend might list in any order: only the reach
    # time decides, even for the ones just past the n-th row.
    for i, player in enumerate(["zz", "yy", "xx", "ww", "vv"]):
        store.add("race", "w", player, 500, f"t{i}", at=T0 + 10 - i)
    store.add("race", "w", "lead", 900, "t-lead", at=T0)
    assert [s.player_id for s in store.top("race", "w", 3)] == ["lead", "vv", "ww"]
    with_ties = store.top_with_ties("race", "w", 3)
    assert [s.player_id for s in with_ties] == ["lead", "vv", "ww", "xx", "yy", "zz"]


def test_top_with_ties_stops_at_the_cut_when_nobody_is_tied(harness: Harness) -> None:
    store = harness.store()
    for i in range(6):
        store.add("race", "w", f"p{i}", 100 * (i + 1), f"t{i}", at=T0)
    assert [s.rank for s in store.top_with_ties("race", "w", 3)] == [1, 2, 3]
    assert len(store.top_with_ties("race", "w", 10)) == 6


# ---------------------------------------------------------------------------- periods


def test_periods_are_listed_newest_first(harness: Harness) -> None:
    store = harness.store()
    for period in ("2026-03-02", "2026-03-04", "2026-03-03"):
        store.add("daily", period, "p1", 1, f"t{period}")
    assert store.periods("daily") == ["2026-03-04", "2026-03-03", "2026-03-02"]
    assert store.latest_period("daily") == "2026-03-04"
    assert store.latest_period("weekly") is None


# ---------------------------------------------------------------------------- settlement


def test_the_first_settlement_is_kept_and_returned_to_every_later_caller(
    harness: Harness,
) -> None:
    store = harness.store()
    assert store.settlement("race", "2026-W10") is None
    assert store.settle_once("race", "2026-W10", '{"winners": ["p1"]}') == (
        '{"winners": ["p1"]}',
        True,
    )
    again = harness.second_worker().settle_once("race", "2026-W10", '{"winners": ["p2"]}')
    assert again == ('{"winners": ["p1"]}', False)
    assert store.settlement("race", "2026-W10") == '{"winners": ["p1"]}'
    assert store.settle_once("race", "2026-W11", "{}") == ("{}", True)


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.add("bad board", "d", "p1", 1, "t"), "board"),
        (lambda s: s.add("b", "d{1}", "p1", 1, "t"), "period"),
        (lambda s: s.add("b", "d", "", 1, "t"), "player_id"),
        (lambda s: s.add("b", "d", "p1", -1, "t"), "delta"),
        (lambda s: s.add("b", "d", "p1", 1.5, "t"), "delta"),
        (lambda s: s.add("b", "d", "p1", 1, ""), "token"),
        (lambda s: s.add("b", "d", "p1", 1, "t", at=1.5), "at"),
        (lambda s: s.top("b", "d", -1), "n"),
        (lambda s: s.settle_once("b", "d", ""), "record"),
    ],
)
def test_bad_arguments_are_rejected_with_their_name(
    harness: Harness, call: Callable[[LeaderboardStore], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call(harness.store())


# ---------------------------------------------------------------------------- concurrency


def run_two_workers(first: Callable[[], None], second: Callable[[], None]) -> None:
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def body(work: Callable[[], None]) -> None:
        try:
            start.wait()
            work()
        except BaseException as exc:  # re-raised in the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(work,)) for work in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@settings(max_examples=15, deadline=None)
@given(
    increments=st.lists(
        st.tuples(st.sampled_from(["p1", "p2", "p3"]), st.integers(0, 1000)),
        min_size=1,
        max_size=30,
    )
)
def test_two_workers_replaying_the_same_increments_count_each_once(
    backend: Callable[[], Harness], increments: list[tuple[str, int]]
) -> None:
    harness = backend()
    try:
        stores = (harness.store(), harness.second_worker())
        applied: list[list[bool]] = [[], []]

        def replay(worker: int) -> None:
            for i, (player, delta) in enumerate(increments):
                applied[worker].append(stores[worker].add("b", "d", player, delta, f"tok{i}"))

        run_two_workers(lambda: replay(0), lambda: replay(1))
        expected: dict[str, int] = {}
        for player, delta in increments:
            expected[player] = expected.get(player, 0) + delta
        got = {s.player_id: s.score for s in stores[0].top("b", "d", 10)}
        assert got == expected
        assert [a or b for a, b in zip(*applied, strict=True)] == [True] * len(increments)
        assert not any(a and b for a, b in zip(*applied, strict=True))
    finally:
        harness.close()


# ---------------------------------------------------------------------------- outage


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.integration
@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.add("b", "d", "p1", 1, "t"),
        lambda s: s.top("b", "d", 3),
        lambda s: s.standing("b", "d", "p1"),
        lambda s: s.periods("b"),
        lambda s: s.settle_once("b", "d", "{}"),
    ],
    ids=["add", "top", "standing", "periods", "settle_once"],
)
def test_an_unreachable_redis_raises_store_unavailable_quickly(
    call: Callable[[LeaderboardStore], object],
) -> None:
    client = connect(f"redis://127.0.0.1:{closed_port()}", socket_timeout=0.2)
    store = RedisLeaderboardStore(client, "pitboss-test:down:")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unavailable") as raised:
        call(store)
    assert time.monotonic() - started < 1.0
    assert isinstance(raised.value.__cause__, redis.ConnectionError)
    client.close()
