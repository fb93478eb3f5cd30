"""Recipients from the Redis contact directory, sent to real providers, kept out of the log.

The contacts live in ``{prefix}contact:{player_id}`` hashes on the Redis at REDIS_URL; the
providers are a real SMTP server (aiosmtpd) and the fake SMS and push APIs on loopback.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from bytewax.testing import TestingSink, TestingSource, run_main

from operators.actions import Action, ActionKind
from operators.guards import GuardConfig
from operators.triggers import TriggerSettings
from pipeline.delivery import DeliveryStage, cap_rules
from pipeline.flow import FlowOptions, Services, build_flow
from pipeline.metrics import Metrics
from pipeline.rulebook import RuleBook, Rules
from sinks.base import DeliveryPolicy, RedisDeliveryLedger, ResilientSender
from sinks.contacts import Contacts, RedisContactDirectory
from sinks.email import SmtpEmailSink, SmtpSettings
from sinks.http import HttpProviderSettings, PushSink, SmsSettings, SmsSink
from sinks.stores import StoreUnavailable
from sinks.stores.memory import memory_stores
from sinks.stores.redis import connect, redis_stores
from tests.support.actions import message as shared_message
from tests.support.campaign_config import rules_for
from tests.support.fault_helpers import wait_until
from tests.support.fault_servers import RedisServer
from tests.support.providers import Providers
from tests.support.scenario import Script
from tests.support.smtp import Mailbox, SmtpServers

pytestmark = pytest.mark.integration

FAST = DeliveryPolicy(
    attempt_timeout_seconds=1.0,
    deadline_seconds=3.0,
    max_attempts=2,
    backoff_initial_seconds=0.01,
    backoff_max_seconds=0.05,
)
ADA = {"email": "ada@example.com", "phone": "+4915112345678", "push_token": "tok-ada-0001"}
BOB = {"email": "bob@example.com"}  # no phone, no app


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    c = connect(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    yield c
    c.close()


@pytest.fixture
def smtp() -> Iterator[SmtpServers]:
    servers = SmtpServers()
    yield servers
    for port in list(servers.running):
        servers.stop(port)


def close_all(senders: dict[str, ResilientSender]) -> None:
    for sender in senders.values():
        sender.sink.close()


def senders(
    client: redis.Redis, prefix: str, smtp_port: int, providers: Providers
) -> dict[str, ResilientSender]:
    sinks = [
        SmtpEmailSink(
            SmtpSettings(name="smtp", port=smtp_port, helo_hostname="pitboss.test", delivery=FAST)
        ),
        SmsSink(SmsSettings(name="sms", url=providers.url("/sms"), delivery=FAST)),
        PushSink(HttpProviderSettings(name="push", url=providers.url("/push"), delivery=FAST)),
    ]
    return {
        sink.channel: ResilientSender(
            sink, ledger=RedisDeliveryLedger(client, prefix=f"{prefix}{sink.name}:")
        )
        for sink in sinks
    }


WELCOME = {"subject": "Welcome", "title": "Welcome", "text": "Hello there"}


def message(channel: str, player: str) -> Action:
    return shared_message(channel, player, rendered=WELCOME)


def assert_no_contact_in(logged: bytes) -> None:
    for contacts in (ADA, BOB):
        for value in contacts.values():
            assert value.encode() not in logged


def test_providers_get_the_looked_up_contacts_and_the_log_lines_do_not(
    client: redis.Redis, redis_prefix: str, smtp: SmtpServers, providers: Providers
) -> None:
    client.hset(f"{redis_prefix}contact:ada", mapping=ADA)
    client.hset(f"{redis_prefix}contact:bob", mapping=BOB)
    mailbox, port = smtp.start(Mailbox())
    channels = senders(client, redis_prefix, port, providers)
    stage = DeliveryStage(
        channels,
        memory_stores([]),
        Metrics(),
        contacts=RedisContactDirectory(client, redis_prefix),
    )
    batch = [message(c, p) for p in ("ada", "bob") for c in ("email", "sms", "push")]
    out = stage.process(batch)
    stage.close()
    close_all(channels)

    assert [(a.player_id, a.channel, a.decision) for a in out] == [
        ("ada", "email", "sent"),
        ("ada", "sms", "sent"),
        ("ada", "push", "sent"),
        ("bob", "email", "sent"),
        ("bob", "sms", "suppressed:no_contact"),
        ("bob", "push", "suppressed:no_contact"),
    ]
    assert sorted(e.rcpt_tos[0] for e in mailbox.accepted) == [ADA["email"], BOB["email"]]
    assert [r.json()["to"] for r in providers.on("/sms")] == [ADA["phone"]]
    assert [r.json()["device_token"] for r in providers.on("/push")] == [ADA["push_token"]]
    for action in out:
        assert_no_contact_in(action.to_json())


def test_the_dataflow_sends_campaign_messages_to_directory_contacts(
    client: redis.Redis,
    redis_prefix: str,
    smtp: SmtpServers,
    providers: Providers,
    tmp_path: Path,
) -> None:
    client.hset(f"{redis_prefix}contact:ada", mapping=ADA)
    client.hset(f"{redis_prefix}contact:bob", mapping=BOB)
    campaigns = rules_for(
        tmp_path,
        """
        campaigns:
          - id: hello_mail
            trigger: {on: event, events: [registration]}
            message: {template: note, channels: [email]}
          - id: hello_sms
            trigger: {on: event, events: [registration]}
            message: {template: note, channels: [sms]}
          - id: hello_push
            trigger: {on: event, events: [registration]}
            message: {template: note, channels: [push]}
        """,
    )
    guards = GuardConfig()
    rulebook = RuleBook(None, TriggerSettings(), lambda *_: Rules("test", [campaigns], guards))
    mailbox, port = smtp.start(Mailbox())
    channels = senders(client, redis_prefix, port, providers)
    services = Services(
        redis_stores(client, cap_rules(guards), prefix=redis_prefix),
        channels,
        contacts=RedisContactDirectory(client, redis_prefix),
    )
    out: list[tuple[str, bytes]] = []
    flow = build_flow(
        TestingSource(Script().register("ada").register("bob").batches(2)),
        TestingSink(out),
        TestingSink([]),
        options=FlowOptions(shards=2, rulebook=rulebook),
        metrics=Metrics(),
        services=services,
    )
    run_main(flow)
    close_all(channels)

    logged = [value for _, value in out]
    decided = sorted(
        (a.player_id, a.channel, a.decision)
        for a in map(Action.model_validate_json, logged)
        if a.kind is ActionKind.MESSAGE
    )
    assert decided == [
        ("ada", "email", "sent"),
        ("ada", "push", "sent"),
        ("ada", "sms", "sent"),
        ("bob", "email", "sent"),
        ("bob", "push", "suppressed:no_contact"),
        ("bob", "sms", "suppressed:no_contact"),
    ]
    assert sorted(e.rcpt_tos[0] for e in mailbox.accepted) == [ADA["email"], BOB["email"]]
    assert [r.json()["to"] for r in providers.on("/sms")] == [ADA["phone"]]
    assert [r.json()["device_token"] for r in providers.on("/push")] == [ADA["push_token"]]
    for line in logged:
        assert_no_contact_in(line)


class WatchedDirectory(RedisContactDirectory):
    """The Redis directory, counting the lookups that found Redis away."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        super().__init__(client, prefix)
        self.unavailable = 0

    def lookup(self, player_id: str) -> Contacts | None:
        try:
            return super().lookup(player_id)
        except StoreUnavailable:
            self.unavailable += 1
            raise


def test_a_lookup_while_redis_is_down_holds_the_send_until_redis_returns(
    redis_prefix: str, providers: Providers
) -> None:
    # The directory's Redis is a server of this test's own, not started yet: refused.
    server = RedisServer()
    down = connect(server.url)
    directory = WatchedDirectory(down, redis_prefix)
    sms = SmsSink(SmsSettings(name="sms", url=providers.url("/sms"), delivery=FAST))
    stage = DeliveryStage(
        {"sms": ResilientSender(sms)}, memory_stores([]), Metrics(), contacts=directory
    )
    out: list[Action] = []
    sending = threading.Thread(
        target=lambda: out.extend(stage.process([message("sms", "ada")])), daemon=True
    )
    sending.start()
    try:
        wait_until(lambda: directory.unavailable >= 2, 10.0, "two refused lookups")
        assert sending.is_alive() and out == []  # held, not failed
        assert providers.on("/sms") == []
        server.start()
        writer = server.client()
        writer.hset(f"{redis_prefix}contact:ada", mapping=ADA)
        writer.close()
        sending.join(timeout=10)
    finally:
        sms.close()
        server.stop()
        down.close()
    assert not sending.is_alive()
    assert [a.decision for a in out] == ["sent"]
    assert [r.json()["to"] for r in providers.on("/sms")] == [ADA["phone"]]
