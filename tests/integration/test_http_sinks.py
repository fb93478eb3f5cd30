"""SMS, push, webhook and wallet sinks against a real HTTP server on loopback.

One ``ThreadingHTTPServer`` per test plays the providers: each path answers 200 with a
message id unless the test scripts other statuses for it first; ``/slow`` answers only
after longer than any attempt timeout; a closed port plays a provider that is down.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from decimal import Decimal
from typing import Any

import pytest
import redis

from operators.actions import Action, ActionKind
from sinks.base import (
    CircuitBreaker,
    CircuitState,
    DeliveryPolicy,
    DeliveryStatus,
    RedisDeliveryLedger,
    ResilientSender,
)
from sinks.http import (
    HttpProviderSettings,
    PushSink,
    SmsSettings,
    SmsSink,
    WalletSink,
    WebhookSettings,
    WebhookSink,
    verify_webhook,
)
from tests.support.providers import Providers
from tests.support.tansu import free_port

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
FAST = DeliveryPolicy(
    attempt_timeout_seconds=0.5,
    deadline_seconds=2.0,
    max_attempts=4,
    backoff_initial_seconds=0.01,
    backoff_max_seconds=0.05,
)


def action(n: int = 1, channel: str = "sms", **payload: Any) -> Action:
    return Action(
        action_id=f"a-http-{n:04d}",
        campaign_id="welcome",
        player_id=f"p-{n}",
        kind=ActionKind.REWARD if channel == "wallet" else ActionKind.MESSAGE,
        channel=channel,
        payload=payload,
        event_id=f"e-{n}",
        decision="sent",
        event_at=T0,
        decided_at=T0,
    )


def sms_action(n: int = 1) -> Action:
    return action(n, to="+79991234567", rendered={"text": "Привет! Ваш бонус ждёт 🎰"})


def sms_sink(url: str, policy: DeliveryPolicy = FAST) -> SmsSink:
    return SmsSink(
        SmsSettings(
            name="sms-test", url=url, bearer_token="s3cret", sender_id="Casino", delivery=policy
        )
    )


def dead_letters() -> tuple[list[tuple[str, str]], Any]:
    dead: list[tuple[str, str]] = []
    return dead, lambda a, reason: dead.append((a.action_id, reason))


def test_an_sms_reaches_the_provider_once_with_its_unicode_text_and_bearer_token(
    providers: Providers,
) -> None:
    sender = ResilientSender(sms_sink(providers.url("/sms")))
    delivery = sender.deliver(sms_action())
    sender.close()
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.provider_message_id == "m-1"
    (request,) = providers.on("/sms")
    assert request.json() == {
        "to": "+79991234567",
        "text": "Привет! Ваш бонус ждёт 🎰",
        "reference": "a-http-0001",
        "sender": "Casino",
    }
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["content-type"] == "application/json; charset=utf-8"


def test_a_push_carries_token_title_body_and_deep_link_with_basic_auth(
    providers: Providers,
) -> None:
    settings = HttpProviderSettings(
        name="push-test", url=providers.url("/push"), username="pitboss", password="pw"
    )
    sink = PushSink(settings)
    push = action(
        channel="push",
        device_token="tok-123",
        deep_link="casino://missions/7",
        rendered={"subject": "Новая миссия", "text": "Крутите 10 раз"},
    )
    assert ResilientSender(sink).deliver(push).status is DeliveryStatus.DELIVERED
    sink.close()
    (request,) = providers.on("/push")
    assert request.json() == {
        "device_token": "tok-123",
        "title": "Новая миссия",
        "body": "Крутите 10 раз",
        "deep_link": "casino://missions/7",
        "reference": "a-http-0001",
    }
    assert request.headers["authorization"].startswith("Basic ")


def test_a_provider_failing_twice_with_503_is_retried_and_delivered_once(
    providers: Providers,
) -> None:
    providers.script("/sms", 503, 503)
    dead, on_dead = dead_letters()
    sender = ResilientSender(sms_sink(providers.url("/sms")), dead_letter=on_dead)
    delivery = sender.deliver(sms_action())
    assert delivery.status is DeliveryStatus.DELIVERED and delivery.attempts == 3
    assert len(providers.on("/sms")) == 3 and dead == []
    assert delivery.provider_message_id == "m-3"


def test_a_429_retry_after_sets_the_wait_before_the_next_attempt(providers: Providers) -> None:
    providers.script("/sms", 429, headers={"Retry-After": "1"})
    waits: list[float] = []
    sender = ResilientSender(sms_sink(providers.url("/sms")), sleep=waits.append)
    assert sender.deliver(sms_action()).status is DeliveryStatus.DELIVERED
    assert len(waits) == 1 and waits[0] >= 1.0


def test_a_slow_provider_is_cut_off_at_the_attempt_timeout_and_the_deadline(
    providers: Providers,
) -> None:
    policy = FAST.model_copy(
        update={"attempt_timeout_seconds": 0.2, "deadline_seconds": 0.5, "max_attempts": 10}
    )
    dead, on_dead = dead_letters()
    sender = ResilientSender(sms_sink(providers.url("/slow"), policy), dead_letter=on_dead)
    started = time.monotonic()
    delivery = sender.deliver(sms_action())
    elapsed = time.monotonic() - started
    assert delivery.status is DeliveryStatus.FAILED
    assert elapsed < 0.5 + 0.5  # the deadline plus slack; without it: 10 x 0.2 s or more
    assert 2 <= delivery.attempts <= 3
    assert "timed out" in dead[0][1] and "deadline reached" in dead[0][1]


def test_a_provider_that_stays_down_ends_in_the_dead_letter_with_the_reason() -> None:
    dead, on_dead = dead_letters()
    closed = f"http://127.0.0.1:{free_port()}/sms"
    sender = ResilientSender(sms_sink(closed), dead_letter=on_dead)
    delivery = sender.deliver(sms_action())
    assert delivery.status is DeliveryStatus.FAILED and delivery.attempts == FAST.max_attempts
    ((action_id, reason),) = dead
    assert action_id == "a-http-0001"
    assert reason.startswith("sms-test: action a-http-0001: connection failed (ConnectError)")
    assert "gave up after 4 attempt(s)" in reason
    assert "+7999" not in reason


def test_the_circuit_opens_stops_calling_the_provider_and_half_opens_after_cool_down(
    providers: Providers,
) -> None:
    clock = [0.0]
    breaker = CircuitBreaker(
        "sms-test", failure_threshold=3, cool_down_seconds=30, clock=lambda: clock[0]
    )
    dead, on_dead = dead_letters()
    one_try = FAST.model_copy(update={"max_attempts": 1})
    sender = ResilientSender(
        sms_sink(providers.url("/sms"), one_try), breaker=breaker, dead_letter=on_dead
    )
    providers.script("/sms", *[503] * 10)

    sender.deliver_many(sms_action(n) for n in range(3))
    assert breaker.state is CircuitState.OPEN and len(providers.on("/sms")) == 3
    sender.deliver_many(sms_action(n) for n in range(3, 8))
    assert len(providers.on("/sms")) == 3  # not called while open
    assert all("circuit open" in reason for _, reason in dead[3:]) and len(dead) == 8

    clock[0] += 30  # cool-down over: one trial, which fails, reopens
    sender.deliver_many(sms_action(n) for n in range(8, 10))
    assert len(providers.on("/sms")) == 4 and breaker.state is CircuitState.OPEN

    providers.script("/sms")  # the provider recovers
    clock[0] += 30
    results = sender.deliver_many(sms_action(n) for n in range(10, 12))
    assert [r.status for r in results] == [DeliveryStatus.DELIVERED] * 2
    assert breaker.state is CircuitState.CLOSED and len(providers.on("/sms")) == 6


def test_a_webhook_is_signed_so_the_receiver_can_verify_it_with_the_shared_secret(
    providers: Providers,
) -> None:
    secret = "whsec-test"
    settings = WebhookSettings(name="crm-hook", url=providers.url("/hook"), secret=secret)
    hook = action(channel="webhook", template_id="welcome", locale="ru")
    assert ResilientSender(WebhookSink(settings)).deliver(hook).status is DeliveryStatus.DELIVERED
    (request,) = providers.on("/hook")
    timestamp = request.headers["x-pitboss-timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256)
    assert request.headers["x-pitboss-signature"] == f"sha256={expected.hexdigest()}"
    assert abs(int(timestamp) - time.time()) < 60
    assert Action.model_validate_json(request.body) == hook
    signature = request.headers["x-pitboss-signature"]
    assert verify_webhook(secret, timestamp, request.body, signature, now=time.time())
    assert not verify_webhook(secret, timestamp, request.body + b" ", signature, now=time.time())
    assert not verify_webhook("other", timestamp, request.body, signature, now=time.time())


def test_the_wallet_gets_the_reward_with_the_action_id_as_idempotency_key(
    providers: Providers,
) -> None:
    settings = HttpProviderSettings(name="wallet", url=providers.url("/wallet"), bearer_token="t")
    reward = action(
        channel="wallet", reward_type="free_spins", count=20, value_per_spin=Decimal("0.10")
    )
    assert ResilientSender(WalletSink(settings)).deliver(reward).status is DeliveryStatus.DELIVERED
    (request,) = providers.on("/wallet")
    assert request.headers["idempotency-key"] == "a-http-0001"
    assert request.json() == {
        "action_id": "a-http-0001",
        "player_id": "p-1",
        "campaign_id": "welcome",
        "event_id": "e-1",
        "reward": {"reward_type": "free_spins", "count": 20, "value_per_spin": "0.10"},
    }


def test_the_same_action_delivered_twice_across_a_restart_reaches_the_provider_once(
    providers: Providers, redis_client: redis.Redis, redis_prefix: str
) -> None:
    settings = HttpProviderSettings(name="wallet", url=providers.url("/wallet"))
    reward = action(channel="wallet", reward_type="cashback", amount="12.50")
    first_run = ResilientSender(
        WalletSink(settings), ledger=RedisDeliveryLedger(redis_client, prefix=redis_prefix)
    )
    assert first_run.deliver(reward).status is DeliveryStatus.DELIVERED
    first_run.close()
    replay = ResilientSender(
        WalletSink(settings), ledger=RedisDeliveryLedger(redis_client, prefix=redis_prefix)
    )
    assert replay.deliver(reward).status is DeliveryStatus.SKIPPED_DUPLICATE
    replay.close()
    assert len(providers.on("/wallet")) == 1
    ttl = redis_client.ttl(f"{redis_prefix}delivered:a-http-0001")
    assert isinstance(ttl, int) and ttl > 0


def test_one_rejected_action_does_not_stop_the_rest_of_the_batch(providers: Providers) -> None:
    providers.rejected_players.add("p-2")
    settings = HttpProviderSettings(name="wallet", url=providers.url("/wallet"), delivery=FAST)
    dead, on_dead = dead_letters()
    sender = ResilientSender(WalletSink(settings), dead_letter=on_dead)
    batch = [action(n, channel="wallet", reward_type="bonus", amount="5") for n in range(1, 5)]
    results = sender.deliver_many(batch)
    assert [r.status for r in results] == [
        DeliveryStatus.DELIVERED,
        DeliveryStatus.FAILED,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.DELIVERED,
    ]
    assert results[1].attempts == 1  # a 4xx is permanent: no retries
    assert dead == [("a-http-0002", "wallet: action a-http-0002: HTTP 422")]
    assert len(providers.on("/wallet")) == 4


def test_a_payload_without_a_recipient_is_a_permanent_failure_naming_what_is_missing(
    providers: Providers,
) -> None:
    dead, on_dead = dead_letters()
    sender = ResilientSender(sms_sink(providers.url("/sms")), dead_letter=on_dead)
    delivery = sender.deliver(action(rendered={"text": "hi"}))
    assert delivery.status is DeliveryStatus.FAILED and providers.on("/sms") == []
    assert dead[0][1] == "sms-test: action a-http-0001: payload has no recipient number ('to')"
