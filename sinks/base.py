"""The delivery contract: what a channel sink is, and how it is made safe to call.

A :class:`ChannelSink` makes *one* attempt to hand one action to one provider and says how
it went: a provider message id, or a :class:`TransientDeliveryError` (worth retrying) or a
:class:`PermanentDeliveryError` (not). Everything else lives in :class:`ResilientSender`,
the same for every provider: dedup through a :class:`DeliveryLedger` (an action id already
delivered is skipped, so a replay after a crash pays nothing twice), a requests/s limit, a
circuit breaker, retries with exponential backoff and full jitter, a per-attempt timeout
and an overall deadline per action, and a dead-letter callback with the reason when
delivery finally fails. Counters go to a :class:`DeliveryObserver`.

Reasons and log lines name the provider and the action id, never personal data: sinks
put status codes in their errors, never a provider's response text or the recipient.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import redis
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage, Storage
from limits.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field, model_validator
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from operators.actions import Action

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
DeadLetter = Callable[[Action, str], None]


class DeliveryError(Exception):
    """A delivery attempt failed; the message names the provider and the action."""

    def __init__(self, message: str, *, provider: str, action_id: str) -> None:
        super().__init__(f"{provider}: action {action_id}: {message}")
        self.provider = provider
        self.action_id = action_id


class TransientDeliveryError(DeliveryError):
    """Worth retrying (timeout, connection error, 429, 5xx, SMTP 4xx)."""

    def __init__(
        self, message: str, *, provider: str, action_id: str, retry_after: float | None = None
    ) -> None:
        super().__init__(message, provider=provider, action_id=action_id)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Retrying cannot help (bad request, rejected recipient, SMTP 5xx, bad payload)."""


class CircuitOpenError(DeliveryError):
    """The provider's circuit is open: it was not called."""


class DeliveryStatus(StrEnum):
    """How a delivery ended."""

    DELIVERED = "delivered"
    FAILED = "failed"
    SKIPPED_DUPLICATE = "skipped_duplicate"


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of delivering one action through one provider."""

    action_id: str
    provider: str
    status: DeliveryStatus
    attempts: int = 0
    provider_message_id: str | None = None
    reason: str | None = None  # why it failed; None otherwise
    delivered_at: dt.datetime | None = None  # wall clock, stamped on delivery


class DeliveryPolicy(BaseModel):
    """Timeouts, retries, rate limit and circuit breaker for one provider."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempt_timeout_seconds: float = Field(default=5.0, gt=0)
    deadline_seconds: float = Field(default=15.0, gt=0)  # one action, all attempts and waits
    max_attempts: int = Field(default=4, ge=1, le=20)
    backoff_initial_seconds: float = Field(default=0.25, ge=0)  # first retry waits up to this
    backoff_max_seconds: float = Field(default=5.0, ge=0)
    rate_limit_per_second: int | None = Field(default=None, ge=1)
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_cool_down_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _deadline_covers_an_attempt(self) -> DeliveryPolicy:
        if self.deadline_seconds < self.attempt_timeout_seconds:
            raise ValueError("deadline_seconds must be at least attempt_timeout_seconds")
        return self


class ChannelSink(ABC):
    """One provider on one channel; ``send`` makes exactly one attempt."""

    def __init__(self, name: str, channel: str, policy: DeliveryPolicy) -> None:
        self.name = name  # the provider, as errors, logs and metrics name it
        self.channel = channel
        self.policy = policy

    @abstractmethod
    def send(self, action: Action, timeout: float | None = None) -> str | None:
        """Deliver ``action`` once, within ``timeout`` seconds (default: the policy's).

        Returns the provider's message id, if it gives one. Raises
        :class:`TransientDeliveryError` or :class:`PermanentDeliveryError`.
        """

    def close(self) -> None:  # noqa: B027 - most sinks hold nothing to release
        """Release connections; the sink is not used afterwards."""


class DeliveryLedger(Protocol):
    """Which action ids were already delivered."""

    def seen(self, action_id: str) -> bool:
        """Whether ``action_id`` was delivered."""
        ...

    def record(self, action_id: str) -> None:
        """Remember that ``action_id`` was delivered."""
        ...


class MemoryDeliveryLedger:
    """In-process ledger for the embedded default; forgets the oldest ids past a bound."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._ids: dict[str, None] = {}  # insertion-ordered: the oldest go first
        self._max_entries = max_entries
        self._lock = threading.Lock()

    def seen(self, action_id: str) -> bool:
        """Whether ``action_id`` was delivered (and not forgotten)."""
        return action_id in self._ids

    def record(self, action_id: str) -> None:
        """Remember ``action_id``."""
        with self._lock:
            self._ids[action_id] = None
            while len(self._ids) > self._max_entries:
                del self._ids[next(iter(self._ids))]


class RedisDeliveryLedger:
    """Ledger shared by every worker: one ``SET NX`` key per action id, with a TTL."""

    def __init__(
        self, client: redis.Redis, *, prefix: str = "pitboss:", ttl_seconds: int = 90 * 86_400
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_seconds = ttl_seconds

    def key(self, action_id: str) -> str:
        """The Redis key that marks ``action_id`` delivered."""
        return f"{self._prefix}delivered:{action_id}"

    def seen(self, action_id: str) -> bool:
        """Whether ``action_id`` was delivered."""
        return bool(self._client.exists(self.key(action_id)))

    def record(self, action_id: str) -> None:
        """Mark ``action_id`` delivered; the first record wins."""
        self._client.set(self.key(action_id), b"1", nx=True, ex=self._ttl_seconds)


class CircuitState(StrEnum):
    """A circuit breaker's state."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class DeliveryObserver:
    """Counters for metrics; every method is a no-op here, subclass to bind Prometheus.

    Labels are the provider and small fixed sets, never a player or an action id.
    """

    def delivered(self, provider: str, attempts: int) -> None:
        """An action was delivered after ``attempts`` attempts."""

    def retried(self, provider: str) -> None:
        """An attempt failed transiently and another follows."""

    def errored(self, provider: str, kind: str) -> None:
        """An attempt failed; ``kind`` is ``transient``, ``permanent`` or ``unexpected``."""

    def dead_lettered(self, provider: str) -> None:
        """An action went to the dead-letter path."""

    def skipped_duplicate(self, provider: str) -> None:
        """An action already delivered was skipped."""

    def rate_limited(self, provider: str, wait_seconds: float) -> None:
        """An attempt waited ``wait_seconds`` for the rate limit."""

    def circuit_changed(self, provider: str, state: CircuitState) -> None:
        """The provider's circuit moved to ``state``."""


class CircuitBreaker:
    """Closed -> open after N consecutive failures -> half-open after a cool-down.

    Half-open lets one trial call through: success closes the circuit, failure opens it
    for another cool-down. ``clock`` is monotonic seconds, injectable for tests.
    """

    def __init__(
        self,
        provider: str,
        *,
        failure_threshold: int,
        cool_down_seconds: float,
        clock: Clock = time.monotonic,
        on_change: Callable[[str, CircuitState], None] | None = None,
    ) -> None:
        self.provider = provider
        self._threshold = failure_threshold
        self._cool_down = cool_down_seconds
        self._clock = clock
        self._on_change = on_change
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        self._lock = threading.Lock()

    @property
    def state(self) -> CircuitState:
        """The current state (open stays open until a call is asked for)."""
        return self._state

    def allow(self) -> bool:
        """Whether a call may go to the provider now; takes the half-open trial."""
        with self._lock:
            if self._state is CircuitState.OPEN:
                if self._clock() - self._opened_at < self._cool_down:
                    return False
                self._move(CircuitState.HALF_OPEN)
            if self._state is CircuitState.HALF_OPEN:
                if self._trial_in_flight:
                    return False
                self._trial_in_flight = True
            return True

    def abandon(self) -> None:
        """A call allowed by :meth:`allow` was not made: free the half-open trial."""
        with self._lock:
            self._trial_in_flight = False

    def record_success(self) -> None:
        """The provider answered: close the circuit."""
        with self._lock:
            self._failures = 0
            self._trial_in_flight = False
            if self._state is not CircuitState.CLOSED:
                self._move(CircuitState.CLOSED)

    def record_failure(self) -> None:
        """The provider failed; open after the threshold, or at once when half-open."""
        with self._lock:
            self._failures += 1
            self._trial_in_flight = False
            if self._state is CircuitState.HALF_OPEN or (
                self._state is CircuitState.CLOSED and self._failures >= self._threshold
            ):
                self._opened_at = self._clock()
                self._move(CircuitState.OPEN)

    def _move(self, state: CircuitState) -> None:
        self._state = state
        level = logging.WARNING if state is CircuitState.OPEN else logging.INFO
        logger.log(level, "circuit for %s is now %s", self.provider, state.value)
        if self._on_change is not None:
            self._on_change(self.provider, state)


class ProviderRateLimiter:
    """A requests/s limit for one provider on a moving window (the ``limits`` library).

    The storage defaults to in-process memory; pass a ``limits`` Redis storage to share the
    limit across processes.
    """

    def __init__(self, provider: str, per_second: int, storage: Storage | None = None) -> None:
        self.provider = provider
        self._item = RateLimitItemPerSecond(per_second)
        self._limiter = MovingWindowRateLimiter(storage if storage is not None else MemoryStorage())

    def try_acquire(self) -> float:
        """Take a slot and return 0, or return the seconds until one frees up."""
        if self._limiter.hit(self._item, self.provider):
            return 0.0
        reset_at = self._limiter.get_window_stats(self._item, self.provider).reset_time
        return max(reset_at - time.time(), 0.001)  # limits keeps epoch seconds


class _Calls:
    """How many times one delivery actually called the provider."""

    def __init__(self) -> None:
        self.made = 0


class _StopAtDeadline(stop_base):
    """Stop retrying when the next wait would end at or past the deadline."""

    def __init__(self, deadline: float, clock: Clock) -> None:
        self._deadline = deadline
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._clock() + retry_state.upcoming_sleep >= self._deadline


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class ResilientSender:
    """Deliver actions through ``sink`` safely: see the module docstring for what it adds.

    ``clock`` (monotonic seconds) and ``sleep`` drive deadlines and backoff; the breaker
    and rate limiter are built from the policy unless given (a given breaker reports
    state changes to its own ``on_change``, not to ``observer``).
    """

    def __init__(
        self,
        sink: ChannelSink,
        *,
        ledger: DeliveryLedger | None = None,
        dead_letter: DeadLetter | None = None,
        observer: DeliveryObserver | None = None,
        policy: DeliveryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        rate_limiter: ProviderRateLimiter | None = None,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.sink = sink
        self.policy = policy if policy is not None else sink.policy
        self._ledger: DeliveryLedger = ledger if ledger is not None else MemoryDeliveryLedger()
        self._dead_letter = dead_letter
        self._observer = observer if observer is not None else DeliveryObserver()
        self.breaker = (
            breaker
            if breaker is not None
            else CircuitBreaker(
                sink.name,
                failure_threshold=self.policy.circuit_failure_threshold,
                cool_down_seconds=self.policy.circuit_cool_down_seconds,
                clock=clock,
                on_change=self._observer.circuit_changed,
            )
        )
        per_second = self.policy.rate_limit_per_second
        if rate_limiter is None and per_second is not None:
            rate_limiter = ProviderRateLimiter(sink.name, per_second)
        self._rate_limiter = rate_limiter
        self._clock = clock
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._backoff = wait_random_exponential(
            multiplier=self.policy.backoff_initial_seconds, max=self.policy.backoff_max_seconds
        )

    def _record(self, provider: str, action_id: str) -> None:
        """Record a delivery, holding until the ledger answers: an unrecorded delivery
        would be sent again after a crash."""
        warned_at = -1e9
        while True:
            try:
                self._ledger.record(action_id)
                return
            except Exception:
                now = self._clock()
                if now - warned_at > 30:
                    logger.warning(
                        "%s: delivered action %s but cannot record it yet; holding",
                        provider,
                        action_id,
                    )
                    warned_at = now
                self._sleep(0.2)

    def deliver_many(self, actions: Iterable[Action]) -> list[Delivery]:
        """Deliver each action in turn; one failure never stops the rest."""
        return [self.deliver(action) for action in actions]

    def deliver(self, action: Action) -> Delivery:
        """Deliver one action, or dead-letter it with the reason; never raises for it."""
        provider = self.sink.name
        try:
            if self._ledger.seen(action.action_id):
                self._observer.skipped_duplicate(provider)
                return Delivery(action.action_id, provider, DeliveryStatus.SKIPPED_DUPLICATE)
        except Exception as exc:  # a ledger outage must not pass as "not delivered yet"
            return self._fail(
                action, 0, f"{provider}: action {action.action_id}: ledger unavailable ({exc!r})"
            )
        deadline = self._clock() + self.policy.deadline_seconds
        calls, tries = _Calls(), 0
        message_id: str | None = None
        retrying = Retrying(
            retry=retry_if_exception_type(TransientDeliveryError),
            wait=self._wait,
            stop=stop_after_attempt(self.policy.max_attempts)
            | _StopAtDeadline(deadline, self._clock),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                tries = attempt.retry_state.attempt_number
                with attempt:
                    message_id = self._attempt(action, deadline, calls)
        except DeliveryError as exc:
            reason = str(exc)
            if isinstance(exc, TransientDeliveryError):
                limit = "attempts" if tries >= self.policy.max_attempts else "deadline"
                reason = f"{reason} (gave up after {tries} attempt(s): {limit} reached)"
            return self._fail(action, calls.made, reason, quiet=isinstance(exc, CircuitOpenError))
        except Exception as exc:  # a bug in one sink must not stop the flow
            logger.exception(
                "%s: unexpected error delivering action %s", provider, action.action_id
            )
            self._observer.errored(provider, "unexpected")
            reason = f"{provider}: action {action.action_id}: unexpected {type(exc).__name__}"
            return self._fail(action, calls.made, reason)
        self._record(provider, action.action_id)
        self._observer.delivered(provider, calls.made)
        return Delivery(
            action.action_id,
            provider,
            DeliveryStatus.DELIVERED,
            attempts=calls.made,
            provider_message_id=message_id,
            delivered_at=self._wall_clock(),
        )

    def close(self) -> None:
        """Close the sink."""
        self.sink.close()

    def _attempt(self, action: Action, deadline: float, calls: _Calls) -> str | None:
        provider = self.sink.name
        if not self.breaker.allow():
            raise CircuitOpenError(
                "circuit open, provider not called", provider=provider, action_id=action.action_id
            )
        try:
            self._await_rate_slot(action, deadline)
        except BaseException:
            self.breaker.abandon()
            raise
        timeout = min(self.policy.attempt_timeout_seconds, max(deadline - self._clock(), 0.001))
        calls.made += 1
        try:
            message_id = self.sink.send(action, timeout=timeout)
        except TransientDeliveryError:
            self.breaker.record_failure()
            self._observer.errored(provider, "transient")
            raise
        except PermanentDeliveryError:
            self.breaker.record_success()  # the provider is up; the action was refused
            self._observer.errored(provider, "permanent")
            raise
        except BaseException:
            self.breaker.abandon()
            raise
        self.breaker.record_success()
        return message_id

    def _await_rate_slot(self, action: Action, deadline: float) -> None:
        if self._rate_limiter is None:
            return
        while (wait := self._rate_limiter.try_acquire()) > 0:
            if self._clock() + wait > deadline:
                raise TransientDeliveryError(
                    f"rate limit of {self.policy.rate_limit_per_second}/s leaves no slot "
                    "before the deadline",
                    provider=self.sink.name,
                    action_id=action.action_id,
                    retry_after=wait,
                )
            self._observer.rate_limited(self.sink.name, wait)
            self._sleep(wait)

    def _wait(self, state: RetryCallState) -> float:
        """Full-jitter exponential backoff, but never sooner than a provider's Retry-After."""
        delay = self._backoff(state)
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, TransientDeliveryError) and error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return delay

    def _before_sleep(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        logger.info(
            "retrying in %.3fs after attempt %d: %s",
            state.upcoming_sleep,
            state.attempt_number,
            error,
        )
        self._observer.retried(self.sink.name)

    def _fail(self, action: Action, attempts: int, reason: str, *, quiet: bool = False) -> Delivery:
        # While a circuit is open every action fails fast: the breaker logs the opening.
        logger.log(logging.DEBUG if quiet else logging.WARNING, "dead-lettered: %s", reason)
        self._observer.dead_lettered(self.sink.name)
        if self._dead_letter is not None:
            self._dead_letter(action, reason)
        return Delivery(
            action.action_id, self.sink.name, DeliveryStatus.FAILED, attempts, reason=reason
        )
