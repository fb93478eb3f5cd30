"""Retries, backoff, deadlines, circuit breaker, rate limit and dedup around any sink.

Pure logic: a scripted sink and a fake monotonic clock whose ``sleep`` moves time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pytest
from pydantic import ValidationError

from operators.actions import Action, ActionKind
from sinks.base import (
    ChannelSink,
    CircuitBreaker,
    CircuitState,
    DeliveryObserver,
    DeliveryPolicy,
    DeliveryStatus,
    MemoryDeliveryLedger,
    PermanentDeliveryError,
    ProviderRateLimiter,
    ResilientSender,
    TransientDeliveryError,
)

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


class FakeClock:
    """Monotonic seconds that move only when someone sleeps or the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


Outcome = str | Exception | None


class ScriptedSink(ChannelSink):
    """Answers each send with the next scripted outcome (the last one repeats)."""

    def __init__(
        self, outcomes: Iterable[Outcome], policy: DeliveryPolicy, clock: FakeClock | None = None
    ) -> None:
        super().__init__("scripted", "sms", policy)
        self.outcomes = list(outcomes)
        self.clock = clock
        self.calls: list[tuple[str, float | None]] = []
        self.spend_timeout = False  # an attempt that hangs until its timeout

    def send(self, action: Action, timeout: float | None = None) -> str | None:
        self.calls.append((action.action_id, timeout))
        if self.spend_timeout and self.clock is not None and timeout is not None:
            self.clock.now += timeout
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class CountingObserver(DeliveryObserver):
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.circuit: list[CircuitState] = []

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def delivered(self, provider: str, attempts: int) -> None:
        self._count("delivered")

    def retried(self, provider: str) -> None:
        self._count("retried")

    def errored(self, provider: str, kind: str) -> None:
        self._count(f"errored:{kind}")

    def dead_lettered(self, provider: str) -> None:
        self._count("dead_lettered")

    def skipped_duplicate(self, provider: str) -> None:
        self._count("skipped_duplicate")

    def circuit_changed(self, provider: str, state: CircuitState) -> None:
        self.circuit.append(state)


def action(n: int = 1) -> Action:
    return Action(
        action_id=f"a-{n:04d}",
        campaign_id="welcome",
        player_id=f"p-{n}",
        kind=ActionKind.MESSAGE,
        channel="sms",
        payload={"to": "+441234567890", "rendered": {"text": "hi"}},
        event_id=f"e-{n}",
        decision="sent",
        event_at=T0,
        decided_at=T0,
    )


def transient(retry_after: float | None = None) -> TransientDeliveryError:
    return TransientDeliveryError(
        "HTTP 503", provider="scripted", action_id="a", retry_after=retry_after
    )


def permanent() -> PermanentDeliveryError:
    return PermanentDeliveryError("HTTP 400", provider="scripted", action_id="a")


def policy(**overrides: float | int | None) -> DeliveryPolicy:
    values: dict[str, float | int | None] = {
        "attempt_timeout_seconds": 1.0,
        "deadline_seconds": 60.0,
        "max_attempts": 4,
        "backoff_initial_seconds": 0.1,
        "backoff_max_seconds": 0.8,
        "circuit_failure_threshold": 100,
        "circuit_cool_down_seconds": 30.0,
    }
    values.update(overrides)
    return DeliveryPolicy.model_validate(values)


def sender(
    sink: ScriptedSink, clock: FakeClock, **kwargs: object
) -> tuple[ResilientSender, list[tuple[str, str]]]:
    dead: list[tuple[str, str]] = []
    built = ResilientSender(
        sink,
        clock=clock,
        sleep=clock.sleep,
        dead_letter=lambda a, reason: dead.append((a.action_id, reason)),
        **kwargs,  # type: ignore[arg-type]
    )
    return built, dead


# Backoff and retries


def test_full_jitter_backoff_stays_inside_the_doubling_envelope_and_spreads() -> None:
    rules = policy(max_attempts=6, backoff_initial_seconds=0.1, backoff_max_seconds=0.8)
    waits_by_retry: dict[int, list[float]] = {i: [] for i in range(5)}
    for _ in range(200):
        clock = FakeClock()
        built, _ = sender(ScriptedSink([transient()], rules), clock)
        built.deliver(action())
        assert len(clock.sleeps) == 5
        for i, wait in enumerate(clock.sleeps):
            waits_by_retry[i].append(wait)
    for i, waits in waits_by_retry.items():
        ceiling = min(0.8, 0.1 * 2**i)
        assert all(0 <= w <= ceiling for w in waits)
        # Full jitter: the whole [0, ceiling] range is used, not just its top.
        assert min(waits) < ceiling / 4 and max(waits) > ceiling * 3 / 4


def test_a_transient_failure_is_retried_until_delivered_once() -> None:
    clock, observer = FakeClock(), CountingObserver()
    sink = ScriptedSink([transient(), transient(), "msg-1"], policy())
    built, dead = sender(sink, clock, observer=observer)
    delivery = built.deliver(action())
    assert delivery.status is DeliveryStatus.DELIVERED
    assert (delivery.attempts, delivery.provider_message_id) == (3, "msg-1")
    assert len(sink.calls) == 3 and dead == []
    assert observer.counts == {"errored:transient": 2, "retried": 2, "delivered": 1}


def test_retry_after_is_a_floor_for_the_next_wait() -> None:
    clock = FakeClock()
    built, _ = sender(ScriptedSink([transient(retry_after=7.5), "ok"], policy()), clock)
    assert built.deliver(action()).status is DeliveryStatus.DELIVERED
    assert clock.sleeps[0] >= 7.5


def test_a_retry_after_beyond_the_deadline_gives_up_at_once() -> None:
    clock = FakeClock()
    sink = ScriptedSink([transient(retry_after=120.0), "ok"], policy(deadline_seconds=10.0))
    built, dead = sender(sink, clock)
    delivery = built.deliver(action())
    assert delivery.status is DeliveryStatus.FAILED and len(sink.calls) == 1
    assert clock.sleeps == []
    assert dead and "deadline reached" in dead[0][1]


def test_a_permanent_failure_is_not_retried_and_goes_to_the_dead_letter() -> None:
    clock, observer = FakeClock(), CountingObserver()
    sink = ScriptedSink([permanent()], policy())
    built, dead = sender(sink, clock, observer=observer)
    delivery = built.deliver(action())
    assert delivery.status is DeliveryStatus.FAILED and delivery.attempts == 1
    assert len(sink.calls) == 1
    assert dead == [("a-0001", "scripted: action a: HTTP 400")]
    assert observer.counts == {"errored:permanent": 1, "dead_lettered": 1}


def test_exhausted_attempts_dead_letter_the_last_reason() -> None:
    clock = FakeClock()
    sink = ScriptedSink([transient()], policy(max_attempts=3))
    built, dead = sender(sink, clock)
    delivery = built.deliver(action())
    assert delivery.status is DeliveryStatus.FAILED and len(sink.calls) == 3
    assert delivery.reason == dead[0][1]
    assert "HTTP 503" in dead[0][1] and "gave up after 3 attempt(s): attempts reached" in dead[0][1]


def test_attempt_timeouts_shrink_to_fit_the_deadline() -> None:
    clock = FakeClock()
    rules = policy(
        attempt_timeout_seconds=3.0,
        deadline_seconds=7.0,
        max_attempts=10,
        backoff_initial_seconds=0,
    )
    sink = ScriptedSink([transient()], rules, clock)
    sink.spend_timeout = True
    started = clock.now
    assert sender(sink, clock)[0].deliver(action()).status is DeliveryStatus.FAILED
    assert [timeout for _, timeout in sink.calls] == pytest.approx([3.0, 3.0, 1.0])
    assert clock.now - started <= 7.0 + 1e-9


def test_an_unexpected_error_in_a_sink_fails_only_that_action() -> None:
    clock = FakeClock()
    sink = ScriptedSink(["ok"], policy())
    built, dead = sender(sink, clock)
    sink.outcomes = [KeyError("bug"), "ok"]
    results = built.deliver_many([action(1), action(2)])
    assert [r.status for r in results] == [DeliveryStatus.FAILED, DeliveryStatus.DELIVERED]
    assert dead == [("a-0001", "scripted: action a-0001: unexpected KeyError")]


def test_the_policy_rejects_a_deadline_shorter_than_one_attempt() -> None:
    with pytest.raises(ValidationError, match="deadline_seconds"):
        DeliveryPolicy(attempt_timeout_seconds=5, deadline_seconds=1)


# Dedup


def test_an_action_already_delivered_is_skipped_without_calling_the_provider() -> None:
    clock, observer = FakeClock(), CountingObserver()
    sink = ScriptedSink(["ok"], policy())
    built, _ = sender(sink, clock, ledger=MemoryDeliveryLedger(), observer=observer)
    first, again = built.deliver(action()), built.deliver(action())
    assert first.status is DeliveryStatus.DELIVERED
    assert again.status is DeliveryStatus.SKIPPED_DUPLICATE and again.attempts == 0
    assert len(sink.calls) == 1 and observer.counts["skipped_duplicate"] == 1


def test_a_failed_action_is_not_recorded_so_a_replay_tries_again() -> None:
    clock, ledger = FakeClock(), MemoryDeliveryLedger()
    built, _ = sender(ScriptedSink([permanent(), "ok"], policy()), clock, ledger=ledger)
    assert built.deliver(action()).status is DeliveryStatus.FAILED
    assert not ledger.seen("a-0001")
    assert built.deliver(action()).status is DeliveryStatus.DELIVERED


def test_the_memory_ledger_forgets_the_oldest_ids_past_its_bound() -> None:
    ledger = MemoryDeliveryLedger(max_entries=2)
    for action_id in ("a", "b", "c"):
        ledger.record(action_id)
    assert [ledger.seen(i) for i in ("a", "b", "c")] == [False, True, True]


def test_a_ledger_outage_dead_letters_instead_of_risking_a_double_send() -> None:
    class BrokenLedger:
        def seen(self, action_id: str) -> bool:
            raise ConnectionError("redis down")

        def record(self, action_id: str) -> None:
            raise AssertionError("not reached")

    clock = FakeClock()
    sink = ScriptedSink(["ok"], policy())
    built, dead = sender(sink, clock, ledger=BrokenLedger())
    assert built.deliver(action()).status is DeliveryStatus.FAILED
    assert sink.calls == [] and "ledger unavailable" in dead[0][1]


# Circuit breaker


def test_the_circuit_opens_after_n_consecutive_failures_and_half_opens_after_cool_down() -> None:
    clock, changes = FakeClock(), list[CircuitState]()
    breaker = CircuitBreaker(
        "p",
        failure_threshold=3,
        cool_down_seconds=30,
        clock=clock,
        on_change=lambda _, s: changes.append(s),
    )
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN and not breaker.allow()
    clock.now += 29.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow() and breaker.state is CircuitState.HALF_OPEN
    assert not breaker.allow()  # one trial at a time
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED and breaker.allow()
    assert changes == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]


def test_a_success_resets_the_consecutive_failure_count() -> None:
    breaker = CircuitBreaker("p", failure_threshold=2, cool_down_seconds=1, clock=FakeClock())
    for _ in range(5):
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state is CircuitState.CLOSED


def test_a_failed_half_open_trial_opens_the_circuit_for_another_cool_down() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("p", failure_threshold=1, cool_down_seconds=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN and not breaker.allow()
    clock.now += 10
    assert breaker.allow()


def test_an_abandoned_half_open_trial_frees_the_slot() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("p", failure_threshold=1, cool_down_seconds=1, clock=clock)
    breaker.record_failure()
    clock.now += 1
    assert breaker.allow()
    breaker.abandon()
    assert breaker.allow()


def test_an_open_circuit_fails_fast_without_calling_the_provider() -> None:
    clock, observer = FakeClock(), CountingObserver()
    rules = policy(circuit_failure_threshold=2, circuit_cool_down_seconds=30, max_attempts=5)
    sink = ScriptedSink([transient()], rules)
    built, dead = sender(sink, clock, observer=observer)
    first = built.deliver(action(1))  # two failures open the circuit mid-retries
    assert first.status is DeliveryStatus.FAILED and first.attempts == len(sink.calls) == 2
    assert built.deliver(action(2)).status is DeliveryStatus.FAILED
    assert len(sink.calls) == 2
    assert all("circuit open" in reason for _, reason in dead)
    assert observer.circuit == [CircuitState.OPEN]

    clock.now += 30
    sink.outcomes = ["ok"]
    assert built.deliver(action(3)).status is DeliveryStatus.DELIVERED
    assert observer.circuit == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]


def test_permanent_errors_do_not_open_the_circuit() -> None:
    clock = FakeClock()
    built, _ = sender(ScriptedSink([permanent()], policy(circuit_failure_threshold=1)), clock)
    built.deliver_many(action(n) for n in range(3))
    assert built.breaker.state is CircuitState.CLOSED


# Rate limit (the limits library, moving window)


def test_the_rate_limiter_grants_n_requests_per_second_then_says_how_long_to_wait() -> None:
    limiter = ProviderRateLimiter("sms-a", per_second=5)
    assert [limiter.try_acquire() for _ in range(5)] == [0.0] * 5
    wait = limiter.try_acquire()
    assert 0 < wait <= 1.0


def test_rate_limits_are_per_provider() -> None:
    busy, other = ProviderRateLimiter("busy", per_second=1), ProviderRateLimiter("other", 1)
    assert busy.try_acquire() == 0.0
    assert busy.try_acquire() > 0
    assert other.try_acquire() == 0.0


def test_an_action_that_cannot_get_a_rate_slot_before_its_deadline_is_dead_lettered() -> None:
    clock = FakeClock()
    rules = policy(rate_limit_per_second=3, deadline_seconds=1.0, attempt_timeout_seconds=0.5)
    sink = ScriptedSink(["ok"], rules)
    built, dead = sender(sink, clock)
    results = built.deliver_many(action(n) for n in range(4))
    assert [r.status for r in results[:3]] == [DeliveryStatus.DELIVERED] * 3
    assert results[3].status is DeliveryStatus.FAILED and results[3].attempts == 0
    assert len(sink.calls) == 3
    assert "rate limit of 3/s" in dead[0][1]
