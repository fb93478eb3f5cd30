"""Contract of the guard stores, run against the memory and the Redis implementation.

Every test receives a ``Harness``: stores of one backend under a namespace of its own (for
Redis a random key prefix, whose keys, and only those, are deleted afterwards) and a way
to let the stores' bookkeeping clock pass (for Redis, by shortening the keys' TTLs).
Cap windows never read a clock: each call brings its ``now``.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.stores import (
    DEFAULT_LATENESS_SECONDS,
    DEFAULT_LEDGER_TTL_SECONDS,
    BudgetNotConfiguredError,
    Budgets,
    CapRule,
    DecisionLedger,
    FrequencyCaps,
    StoreUnavailable,
    SuppressionList,
)
from sinks.stores.memory import (
    MemoryBudgets,
    MemoryDecisionLedger,
    MemoryFrequencyCaps,
    MemorySuppressionList,
)
from sinks.stores.redis import (
    RedisBudgets,
    RedisDecisionLedger,
    RedisFrequencyCaps,
    RedisSuppressionList,
    connect,
    redis_stores,
)

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")
T0 = 1_700_000_000.0  # event time around which the cap tests run
HOUR = 3600.0
DAY = 86_400.0
# Concurrency examples run two threads each; no per-example deadline on a shared CPU.
CONCURRENT = settings(max_examples=40, deadline=None)

SMS = CapRule("sms", 1, DAY, channels={"sms"})
PROMO = CapRule("promo", 3, DAY, channels={"email", "sms", "push", "in_app"})
BONUS = CapRule("bonus", 1, 12 * HOUR, kinds={"reward"})
HOUSE_RULES = (SMS, PROMO, BONUS)


# ---------------------------------------------------------------------------- harnesses


class Harness(ABC):
    """One test's stores on one backend, and the clock their bookkeeping expires on."""

    @abstractmethod
    def ledger(self, ttl_seconds: float = DEFAULT_LEDGER_TTL_SECONDS) -> DecisionLedger: ...

    @abstractmethod
    def suppression(self) -> SuppressionList: ...

    @abstractmethod
    def caps(
        self, rules: Sequence[CapRule], lateness_seconds: float = DEFAULT_LATENESS_SECONDS
    ) -> FrequencyCaps: ...

    @abstractmethod
    def budgets(self, token_ttl_seconds: float = DEFAULT_LEDGER_TTL_SECONDS) -> Budgets: ...

    @abstractmethod
    def second_worker(self) -> Harness:
        """Another worker's view of the same shared state (for Redis: its own client)."""

    @abstractmethod
    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for expiring bookkeeping (ledger entries, spend tokens)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the harness holds."""


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class MemoryHarness(Harness):
    """In-process stores; a second worker is another thread on the same objects."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self._built: dict[tuple[Any, ...], Any] = {}

    def _once(self, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        if key not in self._built:
            self._built[key] = build()
        return self._built[key]

    def ledger(self, ttl_seconds: float = DEFAULT_LEDGER_TTL_SECONDS) -> DecisionLedger:
        built: DecisionLedger = self._once(
            ("ledger", ttl_seconds), lambda: MemoryDecisionLedger(ttl_seconds, self.clock)
        )
        return built

    def suppression(self) -> SuppressionList:
        built: SuppressionList = self._once(("suppression",), MemorySuppressionList)
        return built

    def caps(
        self, rules: Sequence[CapRule], lateness_seconds: float = DEFAULT_LATENESS_SECONDS
    ) -> FrequencyCaps:
        built: FrequencyCaps = self._once(
            ("caps", tuple(rules), lateness_seconds),
            lambda: MemoryFrequencyCaps(rules, lateness_seconds),
        )
        return built

    def budgets(self, token_ttl_seconds: float = DEFAULT_LEDGER_TTL_SECONDS) -> Budgets:
        built: Budgets = self._once(
            ("budgets", token_ttl_seconds), lambda: MemoryBudgets(token_ttl_seconds, self.clock)
        )
        return built

    def second_worker(self) -> Harness:
        return self

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    def close(self) -> None:
        self._built.clear()


class RedisHarness(Harness):
    """Redis stores under a random prefix; closing deletes exactly the keys under it."""

    def __init__(self, prefix: str | None = None) -> None:
        self.owner = prefix is None
        self.prefix = prefix if prefix is not None else f"pitboss-test:{uuid.uuid4().hex}:"
        self.client = connect(REDIS_URL)
        self.workers: list[RedisHarness] = []

    def ledger(self, ttl_seconds: float = DEFAULT_LEDGER_TTL_SECONDS) -> DecisionLedger:
        return RedisDecisionLedger(self.client, self.prefix, ttl_seconds)

    def suppression(self) -> SuppressionList:
        return RedisSuppressionList(self.client, self.prefix)

    def caps(
        self, rules: Sequence[CapRule], lateness_seconds: float = DEFAULT_LATENESS_SECONDS
    ) -> FrequencyCaps:
        return RedisFrequencyCaps(self.client, rules, self.prefix, lateness_seconds)

    def budgets(self, token_ttl_seconds: float = DEFAULT_LEDGER_TTL_SECONDS) -> Budgets:
        return RedisBudgets(self.client, self.prefix, token_ttl_seconds)

    def second_worker(self) -> Harness:
        worker = RedisHarness(self.prefix)
        self.workers.append(worker)
        return worker

    def keys(self) -> list[bytes]:
        return list(self.client.scan_iter(match=self.prefix + "*", count=1000))

    def advance(self, seconds: float) -> None:
        for key in self.keys():
            left_ms: int = cast("int", self.client.pttl(key))
            if left_ms < 0:
                continue
            if left_ms - seconds * 1000 <= 0:
                self.client.delete(key)
            else:
                self.client.pexpire(key, round(left_ms - seconds * 1000))

    def close(self) -> None:
        for worker in self.workers:
            worker.client.close()
        if self.owner:
            keys = self.keys()
            if keys:
                self.client.delete(*keys)
        self.client.close()


HarnessFactory = Callable[[], Harness]


@pytest.fixture(
    scope="module", params=["memory", pytest.param("redis", marks=pytest.mark.integration)]
)
def backend(request: pytest.FixtureRequest) -> HarnessFactory:
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
def harness(backend: HarnessFactory) -> Iterator[Harness]:
    built = backend()
    yield built
    built.close()


def run_two_workers(first: Callable[[], None], second: Callable[[], None]) -> None:
    """Run both at once from a common start, switching threads as often as possible."""
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def body(work: Callable[[], None]) -> None:
        try:
            start.wait()
            work()
        except BaseException as exc:  # re-raised in the test thread below
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=body, args=(work,)) for work in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    if errors:
        raise errors[0]


# ---------------------------------------------------------------------------- dedup ledger


def test_the_first_claim_records_the_decision(harness: Harness) -> None:
    ledger = harness.ledger()
    assert ledger.claim("a-1", "sent") is None
    assert ledger.decision_of("a-1") == "sent"


def test_a_later_claim_gets_the_first_decision_and_changes_nothing(harness: Harness) -> None:
    ledger = harness.ledger()
    ledger.claim("a-1", "held_out")
    assert ledger.claim("a-1", "sent") == "held_out"
    assert ledger.claim("a-1", "capped") == "held_out"
    assert ledger.decision_of("a-1") == "held_out"


def test_claims_of_different_action_ids_are_independent(harness: Harness) -> None:
    ledger = harness.ledger()
    assert ledger.claim("a-1", "sent") is None
    assert ledger.claim("a-2", "suppressed:self_excluded") is None
    assert ledger.decision_of("a-2") == "suppressed:self_excluded"
    assert ledger.decision_of("a-3") is None


def test_a_decision_is_forgotten_after_the_ttl_and_not_before(harness: Harness) -> None:
    ledger = harness.ledger(ttl_seconds=60)
    ledger.claim("a-1", "sent")
    harness.advance(59)
    assert ledger.claim("a-1", "capped") == "sent"
    harness.advance(2)
    assert ledger.decision_of("a-1") is None
    assert ledger.claim("a-1", "capped") is None


def test_two_workers_claiming_the_same_ids_each_id_is_decided_once(harness: Harness) -> None:
    ids = [f"a-{n}" for n in range(150)]
    ledgers = (harness.ledger(), harness.second_worker().ledger())
    outcomes: dict[str, list[str | None]] = {"w0": [], "w1": []}

    def claim_all(worker: str, ledger: DecisionLedger, order: list[str]) -> None:
        outcomes[worker] = [ledger.claim(action_id, worker) for action_id in order]

    run_two_workers(
        lambda: claim_all("w0", ledgers[0], ids),
        lambda: claim_all("w1", ledgers[1], ids[::-1]),
    )
    by_id = {
        action_id: (first, second)
        for action_id, first, second in zip(ids, outcomes["w0"], outcomes["w1"][::-1], strict=True)
    }
    for action_id, (first, second) in by_id.items():
        winner = ledgers[0].decision_of(action_id)
        assert (first, second) in {(None, "w0"), ("w1", None)}, action_id
        assert winner == ("w0" if first is None else "w1")


# ---------------------------------------------------------------------------- suppression


def test_an_indefinite_suppression_holds_until_lifted(harness: Harness) -> None:
    suppression = harness.suppression()
    suppression.suppress_player("p1", "self_excluded", None)
    assert suppression.is_player_suppressed("p1", T0 + 10 * 365 * DAY) == "self_excluded"
    assert suppression.is_player_suppressed("p2", T0) is None
    suppression.lift_player("p1")
    assert suppression.is_player_suppressed("p1", T0) is None


def test_a_suppression_with_an_end_holds_before_it_and_not_from_it(harness: Harness) -> None:
    suppression = harness.suppression()
    until = int(T0 + DAY)
    suppression.suppress_player("p1", "cooling_off", until)
    assert suppression.is_player_suppressed("p1", until - 1) == "cooling_off"
    assert suppression.is_player_suppressed("p1", until) is None
    assert suppression.suppressions("p1") == {"cooling_off": until}


def test_the_longest_lasting_reason_wins_and_each_is_lifted_on_its_own(harness: Harness) -> None:
    suppression = harness.suppression()
    suppression.suppress_player("p1", "cooling_off", int(T0 + DAY))
    suppression.suppress_player("p1", "self_excluded", None)
    assert suppression.is_player_suppressed("p1", T0) == "self_excluded"
    suppression.lift_player("p1", "self_excluded")
    assert suppression.is_player_suppressed("p1", T0) == "cooling_off"
    assert suppression.is_player_suppressed("p1", T0 + DAY) is None


def test_suppressing_again_for_a_reason_replaces_its_end(harness: Harness) -> None:
    suppression = harness.suppression()
    suppression.suppress_player("p1", "self_excluded", int(T0 + DAY))
    suppression.suppress_player("p1", "self_excluded", None)
    assert suppression.is_player_suppressed("p1", T0 + 2 * DAY) == "self_excluded"
    suppression.suppress_player("p1", "self_excluded", int(T0))
    assert suppression.is_player_suppressed("p1", T0 + 1) is None


def test_a_channel_opt_out_covers_every_product_and_no_other_channel(harness: Harness) -> None:
    suppression = harness.suppression()
    suppression.opt_out("p1", "email", None)
    assert suppression.has_opted_out("p1", "email", "casino")
    assert suppression.has_opted_out("p1", "email", "sports")
    assert suppression.has_opted_out("p1", "email", None)
    assert not suppression.has_opted_out("p1", "sms", "casino")
    assert not suppression.has_opted_out("p2", "email", "casino")


def test_a_product_opt_out_covers_that_product_and_product_less_messages(
    harness: Harness,
) -> None:
    suppression = harness.suppression()
    suppression.opt_out("p1", "sms", "sports")
    assert suppression.has_opted_out("p1", "sms", "sports")
    assert not suppression.has_opted_out("p1", "sms", "casino")
    # A message for no particular product concerns sports too.
    assert suppression.has_opted_out("p1", "sms", None)


def test_a_product_opt_in_overrides_a_channel_opt_out_for_that_product(harness: Harness) -> None:
    suppression = harness.suppression()
    suppression.opt_out("p1", "email", None)
    suppression.opt_in("p1", "email", "casino")
    assert not suppression.has_opted_out("p1", "email", "casino")
    assert suppression.has_opted_out("p1", "email", "sports")


def test_a_channel_statement_replaces_the_product_statements(harness: Harness) -> None:
    suppression = harness.suppression()
    suppression.opt_out("p1", "push", "casino")
    suppression.opt_out("p1", "sms", "casino")
    suppression.opt_in("p1", "push", None)
    assert not suppression.has_opted_out("p1", "push", "casino")
    assert suppression.has_opted_out("p1", "sms", "casino")
    suppression.opt_in("p1", "email", "casino")
    suppression.opt_out("p1", "email", None)
    assert suppression.has_opted_out("p1", "email", "casino")
    assert suppression.opt_out_records("p1") == {
        ("email", None): True,
        ("sms", "casino"): True,
    }


# ---------------------------------------------------------------------------- frequency caps


def test_one_sms_per_day_and_the_refusal_names_the_rule(harness: Harness) -> None:
    caps = harness.caps(HOUSE_RULES)
    assert caps.try_acquire("p1", "sms", "message", T0) is None
    assert caps.try_acquire("p1", "sms", "message", T0 + 60) == "sms"
    assert caps.try_acquire("p1", "email", "message", T0 + 60) is None
    assert caps.try_acquire("p2", "sms", "message", T0 + 60) is None


def test_promotional_messages_are_capped_across_channels(harness: Harness) -> None:
    caps = harness.caps(HOUSE_RULES)
    for offset, channel in enumerate(["email", "push", "sms"]):
        assert caps.try_acquire("p1", channel, "message", T0 + offset) is None
    assert caps.try_acquire("p1", "in_app", "message", T0 + 10) == "promo"
    assert caps.remaining("p1", "email", "message", T0 + 10) == {"promo": 0}


def test_one_bonus_per_twelve_hours_whatever_the_channel(harness: Harness) -> None:
    caps = harness.caps(HOUSE_RULES)
    assert caps.try_acquire("p1", "wallet", "reward", T0) is None
    assert caps.try_acquire("p1", "wallet", "reward", T0 + 12 * HOUR - 1) == "bonus"
    assert caps.try_acquire("p1", "wallet", "reward", T0 + 12 * HOUR) is None


def test_the_window_slides_with_now(harness: Harness) -> None:
    caps = harness.caps([CapRule("hourly", 2, HOUR)])
    assert caps.try_acquire("p1", "email", "message", T0) is None
    assert caps.try_acquire("p1", "email", "message", T0 + 1800.5) is None
    assert caps.try_acquire("p1", "email", "message", T0 + HOUR - 0.25) == "hourly"
    # The first unit leaves the window (now - 3600, now] exactly an hour later.
    assert caps.try_acquire("p1", "email", "message", T0 + HOUR) is None
    assert caps.try_acquire("p1", "email", "message", T0 + HOUR + 1800) == "hourly"
    assert caps.remaining("p1", "email", "message", T0 + HOUR + 1800.5) == {"hourly": 1}


def test_a_refused_acquisition_consumes_no_rule(harness: Harness) -> None:
    caps = harness.caps(HOUSE_RULES)
    for offset in range(3):
        caps.try_acquire("p1", "email", "message", T0 + offset)
    assert caps.try_acquire("p1", "sms", "message", T0 + 10) == "promo"
    assert caps.remaining("p1", "sms", "message", T0 + 10) == {"sms": 1, "promo": 0}


def test_the_first_full_rule_in_rule_order_is_named(harness: Harness) -> None:
    caps = harness.caps(HOUSE_RULES)
    caps.try_acquire("p1", "sms", "message", T0)
    caps.try_acquire("p1", "email", "message", T0)
    caps.try_acquire("p1", "push", "message", T0)
    assert caps.peek("p1", "sms", "message", T0) == "sms"
    assert caps.try_acquire("p1", "sms", "message", T0) == "sms"


def test_reserve_keeps_the_last_units_for_higher_priorities(harness: Harness) -> None:
    caps = harness.caps(HOUSE_RULES)
    caps.try_acquire("p1", "email", "message", T0)
    assert caps.peek("p1", "push", "message", T0, reserve=1) is None
    assert caps.try_acquire("p1", "push", "message", T0, reserve=1) is None
    assert caps.peek("p1", "push", "message", T0, reserve=1) == "promo"
    assert caps.try_acquire("p1", "push", "message", T0, reserve=1) == "promo"
    assert caps.try_acquire("p1", "push", "message", T0) is None


def test_a_token_is_charged_once_so_a_replay_succeeds_without_consuming(
    harness: Harness,
) -> None:
    caps = harness.caps(HOUSE_RULES)
    assert caps.try_acquire("p1", "sms", "message", T0, token="a-1") is None
    assert caps.try_acquire("p1", "sms", "message", T0, token="a-1") is None
    assert caps.remaining("p1", "sms", "message", T0) == {"sms": 0, "promo": 2}
    assert caps.try_acquire("p1", "sms", "message", T0, token="a-2") == "sms"


def test_an_out_of_order_call_is_never_more_permissive(harness: Harness) -> None:
    caps = harness.caps([CapRule("hourly", 1, HOUR)])
    assert caps.try_acquire("p1", "email", "message", T0 + HOUR) is None
    # Earlier than a unit already taken: that unit still counts.
    assert caps.try_acquire("p1", "email", "message", T0) == "hourly"


def test_an_action_no_rule_applies_to_is_never_capped(harness: Harness) -> None:
    caps = harness.caps([SMS, CapRule("none", 0, DAY, kinds={"reward"})])
    assert caps.try_acquire("p1", "email", "gamification", T0) is None
    assert caps.remaining("p1", "email", "gamification", T0) == {}
    assert caps.try_acquire("p1", "email", "reward", T0) == "none"


def test_bad_cap_arguments_are_rejected_with_their_name(harness: Harness) -> None:
    caps = harness.caps(HOUSE_RULES)
    with pytest.raises(ValueError, match="player_id"):
        caps.try_acquire("", "sms", "message", T0)
    with pytest.raises(ValueError, match="now"):
        caps.try_acquire("p1", "sms", "message", float("nan"))
    with pytest.raises(ValueError, match="reserve"):
        caps.try_acquire("p1", "sms", "message", T0, reserve=-1)
    with pytest.raises(ValueError, match="unique"):
        harness.caps([SMS, CapRule("sms", 2, HOUR)])


# ---------------------------------------------------------------------------- budgets


def test_money_is_spent_up_to_the_cap_and_never_beyond(harness: Harness) -> None:
    budgets = harness.budgets()
    budgets.set_cap("campaign:welcome", 100_0000, None)
    assert budgets.try_spend("campaign:welcome", 60_0000)
    assert not budgets.try_spend("campaign:welcome", 50_0000)
    assert budgets.try_spend("campaign:welcome", 40_0000)
    assert budgets.remaining("campaign:welcome") == (0, None)
    assert budgets.spent("campaign:welcome") == (100_0000, 2)
    assert budgets.is_exhausted("campaign:welcome")


def test_count_is_capped_and_a_refusal_charges_neither_dimension(harness: Harness) -> None:
    budgets = harness.budgets()
    budgets.set_cap("reward:free_spins", 1_000_0000, 2)
    assert budgets.try_spend("reward:free_spins", 10_0000)
    assert budgets.try_spend("reward:free_spins", 10_0000)
    assert not budgets.try_spend("reward:free_spins", 10_0000)
    assert budgets.remaining("reward:free_spins") == (980_0000, 0)


def test_an_exhausted_budget_resumes_when_its_cap_is_raised(harness: Harness) -> None:
    budgets = harness.budgets()
    budgets.set_cap("campaign:reload", 50, 1)
    assert budgets.try_spend("campaign:reload", 50)
    assert budgets.is_exhausted("campaign:reload")
    budgets.set_cap("campaign:reload", 150, 3)
    assert not budgets.is_exhausted("campaign:reload")
    assert budgets.remaining("campaign:reload") == (100, 2)
    assert budgets.try_spend("campaign:reload", 100)


def test_lowering_a_cap_below_the_spend_leaves_nothing_rather_than_a_debt(
    harness: Harness,
) -> None:
    budgets = harness.budgets()
    budgets.set_cap("campaign:vip", 1000, 10)
    budgets.try_spend("campaign:vip", 800, 5)
    budgets.set_cap("campaign:vip", 500, None)
    assert budgets.remaining("campaign:vip") == (0, None)
    assert budgets.is_exhausted("campaign:vip")
    assert not budgets.try_spend("campaign:vip", 0)


def test_a_spend_charges_the_campaign_and_the_reward_type_or_neither(harness: Harness) -> None:
    budgets = harness.budgets()
    budgets.set_cap("campaign:weekend", 1000, None)
    budgets.set_cap("reward:cashback", None, 1)
    pair = ("campaign:weekend", "reward:cashback")
    assert budgets.try_spend_all(pair, 300) is None
    assert budgets.try_spend_all(pair, 300) == "reward:cashback"
    assert budgets.spent("campaign:weekend") == (300, 1)
    assert budgets.spent("reward:cashback") == (300, 1)


def test_a_spend_token_charges_once(harness: Harness) -> None:
    budgets = harness.budgets(token_ttl_seconds=3600)
    budgets.set_cap("campaign:welcome", 100, None)
    assert budgets.try_spend("campaign:welcome", 60, token="a-1")
    assert budgets.try_spend("campaign:welcome", 60, token="a-1")
    assert budgets.spent("campaign:welcome") == (60, 1)
    harness.advance(3601)
    assert not budgets.try_spend("campaign:welcome", 60, token="a-1")


def test_an_unconfigured_budget_is_an_error_naming_it(harness: Harness) -> None:
    budgets = harness.budgets()
    with pytest.raises(BudgetNotConfiguredError, match="campaign:ghost"):
        budgets.try_spend("campaign:ghost", 1)
    with pytest.raises(BudgetNotConfiguredError, match="campaign:ghost"):
        budgets.remaining("campaign:ghost")
    with pytest.raises(ValueError, match="money"):
        budgets.try_spend("campaign:ghost", -1)


# ---------------------------------------------------------------------------- concurrency

PROPERTY_RULES = (
    CapRule("sms", 1, 60, channels={"sms"}),
    CapRule("promo", 3, 120, channels={"sms", "email", "push"}, kinds={"message"}),
    CapRule("bonus", 2, 90, kinds={"reward"}),
)
attempts = st.tuples(
    st.sampled_from(["p1", "p2"]),
    st.sampled_from(["sms", "email", "push"]),
    st.sampled_from(["message", "reward"]),
    st.integers(min_value=0, max_value=40),  # quarter-seconds since the worker's last call
)
Attempt = tuple[str, str, str, int]


@CONCURRENT
@given(
    first=st.lists(attempts, max_size=40),
    second=st.lists(attempts, max_size=40),
)
def test_two_workers_never_exceed_a_cap_in_any_window(
    backend: HarnessFactory, first: list[Attempt], second: list[Attempt]
) -> None:
    harness = backend()
    try:
        workers = (harness.caps(PROPERTY_RULES), harness.second_worker().caps(PROPERTY_RULES))
        taken: list[tuple[str, str, str, float]] = []

        def drive(caps: FrequencyCaps, attempts: list[Attempt]) -> None:
            now = T0
            for player, channel, kind, step in attempts:
                now += step / 4
                if caps.try_acquire(player, channel, kind, now) is None:
                    taken.append((player, channel, kind, now))

        run_two_workers(lambda: drive(workers[0], first), lambda: drive(workers[1], second))
    finally:
        harness.close()
    for rule in PROPERTY_RULES:
        for player in ("p1", "p2"):
            stamps = [
                now
                for p, channel, kind, now in taken
                if p == player and rule.applies_to(channel, kind)
            ]
            for end in stamps:
                in_window = sum(1 for stamp in stamps if end - rule.window_seconds < stamp <= end)
                assert in_window <= rule.limit, (rule.key, player, end)


same_time_attempts = st.tuples(
    st.sampled_from(["p1", "p2"]),
    st.sampled_from(["sms", "email", "push"]),
    st.sampled_from(["message", "reward"]),
    st.one_of(st.none(), st.sampled_from([f"a-{n}" for n in range(10)])),
)
SameTimeAttempt = tuple[str, str, str, str | None]


@CONCURRENT
@given(
    first=st.lists(same_time_attempts, max_size=30),
    second=st.lists(same_time_attempts, max_size=30),
)
def test_two_workers_at_one_instant_take_exactly_what_the_caps_allow(
    backend: HarnessFactory, first: list[SameTimeAttempt], second: list[SameTimeAttempt]
) -> None:
    """At one ``now`` nothing leaves a window, so every outcome is determined."""
    harness = backend()
    try:
        caps = harness.caps(PROPERTY_RULES)
        workers = (caps, harness.second_worker().caps(PROPERTY_RULES))
        outcomes: list[tuple[SameTimeAttempt, str | None]] = []

        def drive(worker: FrequencyCaps, attempts: list[SameTimeAttempt]) -> None:
            for attempt in attempts:
                player, channel, kind, token = attempt
                outcome = worker.try_acquire(player, channel, kind, T0, token=token)
                outcomes.append((attempt, outcome))

        run_two_workers(lambda: drive(workers[0], first), lambda: drive(workers[1], second))
        left = {
            (player, channel, kind): caps.remaining(player, channel, kind, T0)
            for player in ("p1", "p2")
            for channel in ("sms", "email", "push")
            for kind in ("message", "reward")
        }
    finally:
        harness.close()

    # A token's attempts all succeed or all fail: a replay of a taken unit succeeds
    # without taking another, and nothing frees a unit at one instant.
    by_token: dict[tuple[str, str, str, str], set[bool]] = {}
    for (player, channel, kind, token), outcome in outcomes:
        if token is not None:
            by_token.setdefault((player, channel, kind, token), set()).add(outcome is None)
    assert all(len(results) == 1 for results in by_token.values())
    # A refusal names a rule that is still full at the end.
    for (player, channel, kind, _), outcome in outcomes:
        if outcome is not None:
            assert left[(player, channel, kind)][outcome] == 0
    # All or none: the units a rule lost are exactly the distinct successes it covers.
    for rule in PROPERTY_RULES:
        for player in ("p1", "p2"):
            distinct = {
                token if token is not None else f"anonymous-{n}"
                for n, ((p, channel, kind, token), outcome) in enumerate(outcomes)
                if p == player and outcome is None and rule.applies_to(channel, kind)
            }
            for scope, units in left.items():
                if scope[0] == player and rule.key in units:
                    assert rule.limit - units[rule.key] == len(distinct), (rule.key, scope)


@CONCURRENT
@given(
    limit=st.integers(min_value=0, max_value=12),
    demand=st.tuples(st.integers(0, 15), st.integers(0, 15)),
)
def test_successful_acquisitions_are_min_of_demand_and_limit(
    backend: HarnessFactory, limit: int, demand: tuple[int, int]
) -> None:
    harness = backend()
    try:
        rules = [CapRule("any", limit, DAY)]
        workers = (harness.caps(rules), harness.second_worker().caps(rules))
        successes = Counter[int]()

        def drive(worker: int) -> None:
            for _ in range(demand[worker]):
                if workers[worker].try_acquire("p1", "email", "message", T0) is None:
                    successes[worker] += 1

        run_two_workers(lambda: drive(0), lambda: drive(1))
    finally:
        harness.close()
    assert successes.total() == min(sum(demand), limit)


spends = st.tuples(
    st.integers(min_value=0, max_value=30),  # money
    st.integers(min_value=1, max_value=2),  # count
    st.booleans(),  # also charge the reward-type budget
)
Spend = tuple[int, int, bool]


@CONCURRENT
@given(
    caps=st.tuples(
        st.one_of(st.none(), st.integers(0, 300)),
        st.one_of(st.none(), st.integers(0, 20)),
        st.one_of(st.none(), st.integers(0, 200)),
    ),
    first=st.lists(spends, max_size=30),
    second=st.lists(spends, max_size=30),
)
def test_two_workers_never_overspend_and_every_refusal_is_justified(
    backend: HarnessFactory,
    caps: tuple[int | None, int | None, int | None],
    first: list[Spend],
    second: list[Spend],
) -> None:
    campaign_money, campaign_count, reward_money = caps
    harness = backend()
    try:
        budgets = harness.budgets()
        budgets.set_cap("campaign", campaign_money, campaign_count)
        budgets.set_cap("reward", reward_money, None)
        workers = (budgets, harness.second_worker().budgets())
        outcomes: list[tuple[Spend, str | None]] = []

        def drive(worker: Budgets, attempts: list[Spend]) -> None:
            for spend in attempts:
                money, count, with_reward = spend
                keys = ("campaign", "reward") if with_reward else ("campaign",)
                outcomes.append((spend, worker.try_spend_all(keys, money, count)))

        run_two_workers(lambda: drive(workers[0], first), lambda: drive(workers[1], second))
        final = {key: budgets.caps_and_spent(key) for key in ("campaign", "reward")}
    finally:
        harness.close()

    charged = {
        "campaign": [(m, c) for (m, c, _), outcome in outcomes if outcome is None],
        "reward": [
            (m, c) for (m, c, with_reward), outcome in outcomes if outcome is None and with_reward
        ],
    }
    for key, (money_cap, count_cap, money_spent, count_spent) in final.items():
        assert money_spent == sum(m for m, _ in charged[key])
        assert count_spent == sum(c for _, c in charged[key])
        assert money_cap is None or money_spent <= money_cap
        assert count_cap is None or count_spent <= count_cap
    # Spent totals only grow, so a spend refused then would not fit now either.
    for (money, count, _), outcome in outcomes:
        if outcome is not None:
            money_cap, count_cap, money_spent, count_spent = final[outcome]
            assert (money_cap is not None and money_spent + money > money_cap) or (
                count_cap is not None and count_spent + count > count_cap
            )


@CONCURRENT
@given(
    cap=st.integers(min_value=0, max_value=12),
    demand=st.tuples(st.integers(0, 15), st.integers(0, 15)),
    unit_money=st.integers(min_value=1, max_value=5),
    by_money=st.booleans(),
)
def test_successful_spends_are_min_of_demand_and_cap(
    backend: HarnessFactory, cap: int, demand: tuple[int, int], unit_money: int, by_money: bool
) -> None:
    harness = backend()
    try:
        budgets = harness.budgets()
        if by_money:
            budgets.set_cap("campaign", cap * unit_money + unit_money - 1, None)
        else:
            budgets.set_cap("campaign", None, cap)
        workers = (budgets, harness.second_worker().budgets())
        successes = Counter[int]()

        def drive(worker: int) -> None:
            for _ in range(demand[worker]):
                if workers[worker].try_spend("campaign", unit_money):
                    successes[worker] += 1

        run_two_workers(lambda: drive(0), lambda: drive(1))
    finally:
        harness.close()
    assert successes.total() == min(sum(demand), cap)


# ---------------------------------------------------------------------------- Redis down


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


DOWN_CALLS: dict[str, Callable[[Any], object]] = {
    "claim": lambda s: s.ledger.claim("a-1", "sent"),
    "decision_of": lambda s: s.ledger.decision_of("a-1"),
    "suppress_player": lambda s: s.suppression.suppress_player("p1", "self_excluded", None),
    "lift_player": lambda s: s.suppression.lift_player("p1"),
    "is_player_suppressed": lambda s: s.suppression.is_player_suppressed("p1", T0),
    "opt_out": lambda s: s.suppression.opt_out("p1", "email", None),
    "has_opted_out": lambda s: s.suppression.has_opted_out("p1", "email", "casino"),
    "try_acquire": lambda s: s.caps.try_acquire("p1", "sms", "message", T0),
    "remaining": lambda s: s.caps.remaining("p1", "sms", "message", T0),
    "set_cap": lambda s: s.budgets.set_cap("campaign", 1, 1),
    "try_spend": lambda s: s.budgets.try_spend("campaign", 1),
    "budget_remaining": lambda s: s.budgets.remaining("campaign"),
}


@pytest.mark.integration
@pytest.mark.parametrize("call", DOWN_CALLS.values(), ids=DOWN_CALLS.keys())
def test_an_unreachable_redis_raises_store_unavailable_quickly(
    call: Callable[[Any], object],
) -> None:
    client = connect(f"redis://127.0.0.1:{closed_port()}", socket_timeout=0.2)
    stores = redis_stores(client, HOUSE_RULES, prefix="pitboss-test:down:")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unavailable") as raised:
        call(stores)
    assert time.monotonic() - started < 1.0
    assert isinstance(raised.value.__cause__, redis.ConnectionError)
    client.close()
