"""Guards on shared Redis stores, then delivery to real providers on loopback."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from bytewax.testing import TestingSink, TestingSource, run_main

from operators.actions import Action, ActionKind
from operators.guards import BudgetConfig, CapConfig, GuardConfig
from pipeline.delivery import (
    DeliveryStage,
    GuardStage,
    apply_suppression_updates,
    cap_rules,
    configure_budgets,
)
from pipeline.flow import FlowOptions, Services, build_flow
from pipeline.metrics import Metrics
from pipeline.rulebook import RuleBook
from sinks.base import DeliveryPolicy, RedisDeliveryLedger, ResilientSender
from sinks.http import HttpProviderSettings, WalletSink
from sinks.stores import Stores
from sinks.stores.redis import connect, redis_stores
from tests.support.providers import Providers
from tests.support.scenario import Script
from tests.support.tansu import free_port

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
FAST = DeliveryPolicy(
    attempt_timeout_seconds=0.5,
    deadline_seconds=1.5,
    max_attempts=3,
    backoff_initial_seconds=0.01,
    backoff_max_seconds=0.05,
)
GUARDS = GuardConfig(
    caps=[
        CapConfig(key="sms", limit=1, window_hours=24, channels=["sms"]),
        CapConfig(key="promo", limit=3, window_hours=24, channels=["email", "sms", "push"]),
    ],
    budgets={"campaign:first_deposit": BudgetConfig(money=10, count=2)},
)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    c = connect(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    yield c
    c.close()


@pytest.fixture
def prefix(redis_prefix: str) -> str:
    return redis_prefix


@pytest.fixture
def stores(client: redis.Redis, prefix: str) -> Stores:
    s = redis_stores(client, cap_rules(GUARDS), prefix=prefix)
    configure_budgets(s, GUARDS)
    return s


def action(n: int, channel: str = "sms", *, kind: str = "message", **extra: object) -> Action:
    return Action(
        action_id=f"a-{n}",
        campaign_id=str(extra.pop("campaign", "welcome")),
        player_id=str(extra.pop("player", "p1")),
        kind=ActionKind(kind),
        channel=channel,
        payload=dict(extra.pop("payload", {"to": "+4915100000", "rendered": {"text": "hi"}})),  # type: ignore[call-overload]
        event_id=f"e{n}",
        decision="sent",
        event_at=T0,
        decided_at=T0 + dt.timedelta(hours=n),
        cost=int(extra.pop("cost", 0)),  # type: ignore[call-overload]
    )


def reward(n: int, player: str) -> Action:
    return action(
        n,
        "wallet",
        kind="reward",
        campaign="first_deposit",
        player=player,
        cost=40_000,  # 4.00
        payload={"reward_type": "free_spins", "count": 20},
    )


def test_a_second_sms_within_24_hours_is_capped_and_recorded(stores: Stores) -> None:
    guards = GuardStage(stores, GUARDS, Metrics())
    got = guards.process([action(1), action(2), action(30, player="p2"), action(26)])
    assert [a.decision for a in got] == ["sent", "capped", "sent", "sent"]


def test_an_action_id_already_decided_keeps_its_decision(stores: Stores) -> None:
    guards = GuardStage(stores, GUARDS, Metrics())
    first = guards.process([action(1), action(2)])
    again = guards.process([action(2), action(1)])  # a replay, in another order
    assert [a.decision for a in first] == ["sent", "capped"]
    assert [a.decision for a in again] == ["capped", "sent"]


def test_budgets_pause_the_campaign_at_the_cap_and_resume_when_it_is_raised(
    stores: Stores,
) -> None:
    metrics = Metrics()
    guards = GuardStage(stores, GUARDS, metrics)
    got = guards.process([reward(i, f"p{i}") for i in range(1, 5)])
    assert [a.decision for a in got] == ["sent", "sent", "budget_exhausted", "budget_exhausted"]
    key = {"campaign": "campaign:first_deposit"}
    assert metrics.value("pitboss_campaign_paused", key) == 1
    raised = GuardConfig(budgets={"campaign:first_deposit": BudgetConfig(money=100, count=5)})
    configure_budgets(stores, raised)
    resumed = GuardStage(stores, raised, metrics).process([reward(5, "p5")])
    assert [a.decision for a in resumed] == ["sent"]
    assert metrics.value("pitboss_campaign_paused", key) == 0
    assert metrics.value("pitboss_budget_remaining", key | {"unit": "money"}) == 88


def test_gamification_records_pass_the_guards_without_touching_the_stores(
    client: redis.Redis, prefix: str, stores: Stores
) -> None:
    score = action(
        1,
        "gamification",
        kind="gamification",
        campaign="leaderboard:daily_wager",
        payload={"event": "leaderboard_score", "scores": {"daily_wager": "12.5"}},
    )
    got = GuardStage(stores, GUARDS, Metrics()).process([score, action(2), score])
    assert got[0] is score and got[2] is score  # as they were: nothing decided again
    assert got[1].decision == "sent"
    keys = {k.decode() for k in client.scan_iter(f"{prefix}*")}
    assert keys and not any("a-1" in key for key in keys)  # the message's claim is there


def wallet_sender(url: str, client: redis.Redis, prefix: str) -> ResilientSender:
    sink = WalletSink(HttpProviderSettings(name="wallet", url=url, delivery=FAST))
    return ResilientSender(sink, ledger=RedisDeliveryLedger(client, prefix=f"{prefix}wallet:"))


def test_the_same_reward_delivered_twice_reaches_the_wallet_once(
    stores: Stores, client: redis.Redis, prefix: str, providers: Providers
) -> None:
    senders = {"wallet": wallet_sender(providers.url("/wallet"), client, prefix)}
    metrics = Metrics()
    guards, delivery = GuardStage(stores, GUARDS, metrics), DeliveryStage(senders, stores, metrics)
    first = delivery.process(guards.process([reward(1, "p1")]))
    # A restart replays the same action through fresh stages over the same stores.
    senders2 = {"wallet": wallet_sender(providers.url("/wallet"), client, prefix)}
    again = DeliveryStage(senders2, stores, metrics).process(
        GuardStage(stores, GUARDS, metrics).process([reward(1, "p1")])
    )
    assert first[0].delivered_at is not None and first[0].decision == "sent"
    assert again[0].decision == "sent"
    assert len(providers.on("/wallet")) == 1
    assert providers.on("/wallet")[0].headers["idempotency-key"] == "a-1"


def test_a_self_exclusion_arriving_after_the_decision_stops_the_send(
    stores: Stores, client: redis.Redis, prefix: str, providers: Providers
) -> None:
    senders = {"wallet": wallet_sender(providers.url("/wallet"), client, prefix)}
    decided = GuardStage(stores, GUARDS, Metrics()).process([reward(1, "p1")])
    assert decided[0].decision == "sent"
    until = int((T0 + dt.timedelta(days=180)).timestamp())
    apply_suppression_updates(
        stores, [("suppress", {"player_id": "p1", "reason": "self_excluded", "until": until})]
    )
    sent = DeliveryStage(senders, stores, Metrics()).process(decided)
    assert sent[0].decision == "suppressed:self_excluded"
    assert providers.on("/wallet") == []


def test_a_provider_that_stays_down_fails_the_action_and_the_rest_keep_moving(
    stores: Stores, client: redis.Redis, prefix: str, providers: Providers
) -> None:
    down = f"http://127.0.0.1:{free_port()}/wallet"
    senders = {
        "wallet": wallet_sender(down, client, prefix),
        "sms": ResilientSender(
            WalletSink(HttpProviderSettings(name="sms", url=providers.url("/sms"), delivery=FAST)),
        ),
    }
    metrics = Metrics()
    batch = [reward(1, "p1"), action(2, player="p9", payload={"reward_type": "x"})]
    out = DeliveryStage(senders, stores, metrics).process(
        GuardStage(stores, GUARDS, metrics).process(batch)
    )
    assert out[0].decision == "failed" and "wallet" in out[0].detail
    assert out[1].decision == "sent" and out[1].delivered_at is not None
    assert (
        metrics.value("pitboss_deliveries_total", {"provider": "wallet", "outcome": "failed"}) == 1
    )


def test_the_dataflow_delivers_rewards_once_across_a_replay(
    stores: Stores, client: redis.Redis, prefix: str, providers: Providers, tmp_path: Path
) -> None:
    s = Script().register("p1").after(hours=1).deposit("p1").register("p2")
    s.add("self_exclusion", "p2", until=None).deposit("p2").register("p3").deposit("p3")
    guards = tmp_path / "config"
    guards.mkdir()
    (guards / "guards.yaml").write_text("budgets:\n  campaign:first_deposit: {count: 10}\n")
    rulebook = RuleBook(guards, FlowOptions().triggers)

    def replay() -> list[Action]:
        out: list[tuple[str, bytes]] = []
        senders = {"wallet": wallet_sender(providers.url("/wallet"), client, prefix)}
        flow = build_flow(
            TestingSource(s.batches(3)),
            TestingSink(out),
            TestingSink([]),
            options=FlowOptions(shards=4, rulebook=rulebook),
            metrics=Metrics(),
            services=Services(stores, senders),
        )
        run_main(flow)
        return [Action.model_validate_json(v) for _, v in out]

    first, second = replay(), replay()
    rewards = sorted((a.player_id, a.decision) for a in first if a.channel == "wallet")
    assert rewards == [("p1", "sent"), ("p2", "suppressed:self_excluded"), ("p3", "sent")]
    assert sorted(r.json()["player_id"] for r in providers.on("/wallet")) == ["p1", "p3"]
    assert {a.action_id for a in second} == {a.action_id for a in first}
    assert len(providers.on("/wallet")) == 2  # the replay paid nothing again
    assert orjson.loads(first[0].to_json())["action_id"]


def test_sends_of_a_batch_go_out_in_parallel_and_in_order_for_each_player(
    stores: Stores, client: redis.Redis, prefix: str, providers: Providers
) -> None:
    providers.delays["/wallet"] = 0.2  # a provider that takes 200 ms a call
    senders = {"wallet": wallet_sender(providers.url("/wallet"), client, prefix)}
    # Eight players, two rewards each: sixteen calls, 3.2 s one after another.
    batch = [reward(10 * p + n, f"p{p}") for n in (1, 2) for p in range(8)]
    stage = DeliveryStage(senders, stores, Metrics(), concurrency=8)
    started = time.monotonic()
    out = stage.process(batch)
    took = time.monotonic() - started
    stage.close()
    assert [a.action_id for a in out] == [a.action_id for a in batch]  # input order kept
    assert all(a.decision == "sent" and a.delivered_at is not None for a in out)
    assert took < 1.5, f"16 calls of 200 ms took {took:.2f} s: not in parallel"
    arrived = [r.headers["idempotency-key"] for r in providers.on("/wallet")]
    for p in range(8):  # each player's rewards reached the wallet in decision order
        mine = [a for a in arrived if a in (f"a-{10 * p + 1}", f"a-{10 * p + 2}")]
        assert mine == [f"a-{10 * p + 1}", f"a-{10 * p + 2}"]
