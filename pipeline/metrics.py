"""Prometheus metrics: one object, built from an injected registry.

Tests build a fresh ``CollectorRegistry``; the job uses one per process and serves it on
``/metrics``. Labels are bounded sets (event type, dead-letter kind, campaign, decision):
never a player id.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from operators.actions import Action

# Seconds from a record being read off its source to the decision on what it triggered.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _ShardSum:
    """A gauge that reads the sum of what each shard last reported (shards report from
    several worker threads; the scrape reads under the same lock)."""

    def __init__(self, gauge: Gauge) -> None:
        self._by_shard: dict[str, int] = {}
        self._lock = threading.Lock()
        gauge.set_function(self._total)

    def set(self, shard: str, count: int) -> None:
        with self._lock:
            self._by_shard[shard] = count

    def _total(self) -> float:
        with self._lock:
            return float(sum(self._by_shard.values()))


class BatchHistogram:
    """A histogram that takes many observations of one value at once.

    The job observes one latency per shard batch for every action in it; the client's
    ``Histogram`` takes them one by one (a lock and a bucket search each, about 1.5 µs).
    This is the same histogram, exported through the client's custom-collector
    interface: one bucket search and one lock per batch.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Iterable[float],
        registry: CollectorRegistry,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = (*sorted(float(b) for b in buckets), math.inf)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._lock = threading.Lock()
        registry.register(self)

    def observe(self, value: float, count: int = 1) -> None:
        """``count`` observations of ``value``."""
        index = bisect.bisect_left(self._bounds, value)  # the first bucket with le >= value
        with self._lock:
            self._counts[index] += count
            self._sum += value * count

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self._name, self._documentation)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        buckets = [
            (floatToGoString(bound), float(cumulative))  # type: ignore[no-untyped-call]
            for bound, cumulative in zip(self._bounds, itertools.accumulate(counts), strict=True)
        ]
        yield HistogramMetricFamily(
            self._name, self._documentation, buckets=buckets, sum_value=total
        )


class Metrics:
    """Every metric the job exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.stage_items = Counter(
            "pitboss_stage_items",
            "Items through each stage: records decoded, events folded, actions guarded, "
            "actions delivered",
            ["stage"],
            registry=r,
        )
        self.events = Counter(
            "pitboss_events", "Valid events decoded, by type", ["type"], registry=r
        )
        self.dead_letters = Counter(
            "pitboss_dead_letters",
            "Records sent to the dead-letter output, by kind",
            ["kind"],
            registry=r,
        )
        self.unknown_timezones = Counter(
            "pitboss_unknown_timezones",
            "Registrations whose time zone the zone database lacks (their local times are UTC)",
            registry=r,
        )
        self.late_events = Counter(
            "pitboss_late_events",
            "Events older than the watermark when they arrived (folded anyway)",
            registry=r,
        )
        self.duplicate_events = Counter(
            "pitboss_duplicate_events",
            "Events whose event_id was already seen for the player (not folded again)",
            registry=r,
        )
        self.intents = Counter(
            "pitboss_intents",
            "Intents emitted by the rules, by campaign",
            ["campaign"],
            registry=r,
        )
        self.actions = Counter(
            "pitboss_actions",
            "Decided actions, by campaign, channel and decision",
            ["campaign", "channel", "decision"],
            registry=r,
        )
        self.decision_latency = BatchHistogram(
            "pitboss_event_to_decision_seconds",
            "Wall time from reading a record off its source to the decision it caused",
            LATENCY_BUCKETS,
            r,
        )
        self.consumer_lag = Gauge(
            "pitboss_consumer_lag",
            "Records in the partition not yet read by the job",
            ["topic", "partition"],
            registry=r,
        )
        self.event_time_lag = Gauge(
            "pitboss_event_time_lag_seconds",
            "Wall time minus the newest event time decoded",
            registry=r,
        )
        self.deliveries = Counter(
            "pitboss_deliveries",
            "Delivery outcomes per provider (delivered, failed, skipped_duplicate)",
            ["provider", "outcome"],
            registry=r,
        )
        self.delivery_latency = Histogram(
            "pitboss_decision_to_delivery_seconds",
            "Wall time to deliver one action, retries included",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.sink_retries = Counter(
            "pitboss_sink_retries", "Delivery retries per provider", ["provider"], registry=r
        )
        self.sink_errors = Counter(
            "pitboss_sink_errors",
            "Delivery errors per provider and kind (transient, permanent, unexpected)",
            ["provider", "kind"],
            registry=r,
        )
        self.circuit_open = Gauge(
            "pitboss_sink_circuit_open",
            "1 while a provider's circuit breaker is open",
            ["provider"],
            registry=r,
        )
        self.budget_remaining = Gauge(
            "pitboss_budget_remaining",
            "Budget left (money in currency units, or a count)",
            ["campaign", "unit"],
            registry=r,
        )
        self.campaign_paused = Gauge(
            "pitboss_campaign_paused",
            "1 while a budget is exhausted and its campaign is paused",
            ["campaign"],
            registry=r,
        )
        self.gamification_events = Counter(
            "pitboss_gamification_events",
            "Gamification events emitted, by kind",
            ["kind"],
            registry=r,
        )
        self.players = Gauge(
            "pitboss_players_in_state",
            "Players resident in memory in this process (evicted players are not counted)",
            registry=r,
        )
        self.players_cold = Gauge(
            "pitboss_players_evicted",
            "Players of this process whose state is evicted to the cold store",
            registry=r,
        )
        self.evictions = Counter(
            "pitboss_player_evictions",
            "Lapsed players whose state was written to the cold store and left memory",
            registry=r,
        )
        self.restores = Counter(
            "pitboss_player_restores",
            "Evicted players brought back from the cold store (an event or deadline of theirs)",
            registry=r,
        )
        self._resident = _ShardSum(self.players)
        self._cold = _ShardSum(self.players_cold)

    def eviction_observer(self, shard: str) -> ShardEvictionMetrics:
        """What one shard reports about eviction (``operators.eviction.EvictionObserver``)."""
        return ShardEvictionMetrics(self, shard)

    def set_cold_players(self, shard: str, count: int) -> None:
        """Record how many evicted players a shard holds."""
        self._cold.set(shard, count)

    def set_players(self, shard: str, count: int) -> None:
        """Record how many players a shard holds (shards report independently)."""
        self._resident.set(shard, count)

    def count_actions(self, actions: Iterable[Action], read_at: float, now: float) -> None:
        """Count decided actions and their latency since their batch was read."""
        # A batch of actions shares a few label values: count per value, then add once
        # (a labelled child's lookup costs more than the increment).
        latency = max(0.0, now - read_at)
        campaigns: dict[str, int] = {}
        kinds: dict[str, int] = {}
        for action in actions:
            campaigns[action.campaign_id] = campaigns.get(action.campaign_id, 0) + 1
            if action.kind == "gamification":
                kind = str(action.payload.get("event", "other"))
                kinds[kind] = kinds.get(kind, 0) + 1
        if campaigns:
            self.decision_latency.observe(latency, sum(campaigns.values()))
        for campaign, count in campaigns.items():
            self.intents.labels(campaign).inc(count)
        for kind, count in kinds.items():
            self.gamification_events.labels(kind).inc(count)

    def count_decided(self, actions: Iterable[Action]) -> None:
        """Count final decisions, by campaign, channel and decision."""
        outcomes: dict[tuple[str, str, str], int] = {}
        for action in actions:
            key = (action.campaign_id, action.channel, action.decision)
            outcomes[key] = outcomes.get(key, 0) + 1
        for labels, count in outcomes.items():
            self.actions.labels(*labels).inc(count)

    def observe_lag(self, topic: str, partition: int, lag: int) -> None:
        """Record a partition's consumer lag (called by the Kafka source)."""
        self.consumer_lag.labels(topic, str(partition)).set(lag)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value (0 when absent), for summaries and tests."""
        sample = self.registry.get_sample_value(name, labels or {})
        return 0.0 if sample is None else sample

    def samples(self, name: str) -> dict[tuple[str, ...], float]:
        """All samples of a counter as {label values: value}."""
        out: dict[tuple[str, ...], float] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name:
                    out[tuple(sample.labels.values())] = sample.value
        return out


class ShardEvictionMetrics:
    """One shard's eviction counts, as the process's metrics."""

    def __init__(self, metrics: Metrics, shard: str) -> None:
        self._metrics = metrics
        self._shard = shard

    def evicted(self, count: int) -> None:
        self._metrics.evictions.inc(count)

    def restored(self, count: int) -> None:
        self._metrics.restores.inc(count)

    def cold_players(self, count: int) -> None:
        self._metrics.set_cold_players(self._shard, count)
