"""Build the shared stores and channel senders from settings.

Production (``redis_url`` set): Redis stores shared by every worker and process, Redis
delivery ledgers, the in-app inbox and the contact directory (``contact:<player_id>``
hashes the operator's CRM sync writes) in Redis. Embedded default: the in-process
implementations of the same interfaces. A channel with no provider configured is not
delivered anywhere but the action log (the operator's systems read it from Kafka).
Lapsed players' state is evicted to Redis too (``build_eviction``), or, without Redis and
without recovery, to a compressed copy in this process.
"""

from __future__ import annotations

import logging

from operators.actions import Action
from operators.eviction import Eviction, MemoryColdStore
from operators.guards import GuardConfig
from operators.player_state import DAY
from pipeline.delivery import cap_rules, configure_budgets
from pipeline.flow import Services
from pipeline.leaderboard_api import LeaderboardServer, serve_leaderboards
from pipeline.metrics import Metrics
from pipeline.rulebook import RuleBook
from pipeline.settings import Settings
from sinks.base import (
    ChannelSink,
    CircuitState,
    DeliveryLedger,
    DeliveryObserver,
    MemoryDeliveryLedger,
    RedisDeliveryLedger,
    ResilientSender,
)
from sinks.contacts import ContactDirectory, MemoryContactDirectory, RedisContactDirectory
from sinks.email import SmtpEmailSink
from sinks.http import PushSink, SmsSink, WalletSink, WebhookSink
from sinks.inbox import MemoryInboxSink, RedisInboxSink
from sinks.leaderboards import MemoryLeaderboardStore
from sinks.leaderboards.redis import RedisLeaderboardStore
from sinks.stores.cold import RedisColdStore
from sinks.stores.memory import memory_stores
from sinks.stores.redis import connect, redis_stores

log = logging.getLogger(__name__)


class MetricsObserver(DeliveryObserver):
    """Delivery events as Prometheus metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def retried(self, provider: str) -> None:
        self._metrics.sink_retries.labels(provider).inc()

    def errored(self, provider: str, kind: str) -> None:
        self._metrics.sink_errors.labels(provider, kind).inc()

    def circuit_changed(self, provider: str, state: CircuitState) -> None:
        self._metrics.circuit_open.labels(provider).set(1 if state is CircuitState.OPEN else 0)


def _dead_letter(action: Action, reason: str) -> None:
    # The failed action itself reaches the action log with decision "failed".
    log.error(
        "delivery failed for action %s (campaign %s): %s",
        action.action_id,
        action.campaign_id,
        reason,
    )


def build_services(settings: Settings, guards: GuardConfig, metrics: Metrics) -> Services:
    """Stores and senders for ``pitboss run`` (and for a demo with Redis configured)."""
    client = connect(settings.redis_url) if settings.redis_url else None
    prefix = settings.redis_prefix
    rules = cap_rules(guards)
    stores = (
        redis_stores(client, rules, prefix=prefix) if client is not None else memory_stores(rules)
    )
    configure_budgets(stores, guards)

    sinks: list[ChannelSink] = []
    if settings.email is not None:
        sinks.append(SmtpEmailSink(settings.email))
    if settings.sms is not None:
        sinks.append(SmsSink(settings.sms))
    if settings.push is not None:
        sinks.append(PushSink(settings.push))
    if settings.wallet is not None:
        sinks.append(WalletSink(settings.wallet))
    if settings.webhook is not None:
        sinks.append(WebhookSink(settings.webhook))
    if client is not None:
        sinks.append(RedisInboxSink(client, prefix=prefix, max_len=settings.inbox_max_len))
    else:
        sinks.append(MemoryInboxSink(max_len=settings.inbox_max_len))

    observer = MetricsObserver(metrics)
    senders: dict[str, ResilientSender] = {}
    for sink in sinks:
        ledger: DeliveryLedger = (
            RedisDeliveryLedger(client, prefix=f"{prefix}{sink.name}:")
            if client is not None
            else MemoryDeliveryLedger()
        )
        senders[sink.channel] = ResilientSender(
            sink, ledger=ledger, dead_letter=_dead_letter, observer=observer
        )
    log.info(
        "stores: %s; channels with a provider: %s",
        "redis" if client is not None else "in-process",
        ", ".join(sorted(senders)) or "none",
    )
    leaderboards = (
        RedisLeaderboardStore(client, prefix) if client is not None else MemoryLeaderboardStore()
    )
    contacts: ContactDirectory = (
        RedisContactDirectory(client, prefix) if client is not None else MemoryContactDirectory()
    )
    return Services(stores, senders, leaderboards, settings.delivery_concurrency, contacts=contacts)


def build_eviction(settings: Settings, *, shared: bool = True) -> Eviction | None:
    """Where lapsed players' state goes (``settings.eviction``), or None for nowhere.

    ``shared`` (``pitboss run``): Redis when ``redis_url`` is set. It is attached even
    with ``after_days`` 0, so players a snapshot holds as evicted still come back. Else,
    and for bounded runs (``shared`` False): this process's memory, forgotten on exit;
    refused with recovery, since a restart would find its snapshot's evicted players
    gone.
    """
    config = settings.eviction
    after = round(config.after_days * DAY) or None
    if shared and settings.redis_url:
        client = connect(settings.redis_url, socket_timeout=1.0, retries=3)
        store = RedisColdStore(
            client, settings.redis_prefix, retention_seconds=config.retention_days * DAY
        )
        return Eviction(store, after, config.sweep_seconds)
    if after is None:
        return None
    if shared and settings.recovery_dir is not None:
        log.warning(
            "eviction is off: with recovery, evicted players must outlive the process; "
            "set PITBOSS_REDIS_URL to evict them to Redis"
        )
        return None
    return Eviction(MemoryColdStore(retention_seconds=0), after, config.sweep_seconds)


def board_names(rulebook: RuleBook) -> list[str]:
    """The leaderboards the current gamification configuration defines."""
    for rule_set in rulebook.current.rule_sets:
        program = getattr(rule_set, "program", None)
        if program is not None:
            return [board.id for board in program.boards]
    return []


def serve_boards(
    services: Services, rulebook: RuleBook, settings: Settings
) -> LeaderboardServer | None:
    """The leaderboard read path next to the metrics endpoint (``leaderboard_port``)."""
    if not settings.leaderboard_port:
        return None
    server = serve_leaderboards(
        services.leaderboards,
        settings.leaderboard_port,
        settings.metrics_addr,
        names=board_names(rulebook),
    )
    log.info(
        "leaderboards: http://%s:%d/leaderboards", settings.metrics_addr, settings.leaderboard_port
    )
    return server
