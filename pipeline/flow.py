"""The dataflow: source -> decode -> shard -> player operator -> outputs.

The Bytewax glue is thin on purpose: decoding is ``pipeline.decode``, the per-player
logic is ``operators.engine``. Items are whole batches until the player operator, so
Bytewax's cost per item is paid per batch, not per event. Every decoded batch is sent to
every shard (most with a slice of its events, some with none) so that all shards see
every source's progress in event time and fire their timers on time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulLogic
from bytewax.outputs import Sink

from operators.actions import Action, ActionKind
from operators.campaigns import CampaignRules, campaign_rows, swap_rules
from operators.engine import PlayerShard, shard_of
from operators.eviction import Eviction
from operators.gamification import GamificationRules, gamification_rows
from operators.guards import GuardConfig
from operators.player_state import player_row
from operators.triggers import TriggerSettings
from pipeline.clock import NEVER, EventClock
from pipeline.decode import DeadLetter, DecodedBatch, EventSlice, decode_batch, unknown_zones
from pipeline.delivery import (
    DeferredCaps,
    DeliveryStage,
    GuardStage,
    cap_rules,
    configure_budgets,
    suppression_updates,
)
from pipeline.events import Event
from pipeline.kafka import Throttled
from pipeline.metrics import Metrics
from pipeline.outputs import SuppressionListSink
from pipeline.records import RawBatch
from pipeline.rulebook import RuleBook
from sinks.base import ResilientSender
from sinks.contacts import ContactDirectory
from sinks.leaderboards import LeaderboardStore, MemoryLeaderboardStore
from sinks.leaderboards.scores import apply_scores, is_score
from sinks.leaderboards.settler import TournamentSettler
from sinks.stores import Stores
from sinks.stores.memory import memory_stores

log = logging.getLogger(__name__)

# What the shard step receives: (source, high mark, read_at, that shard's events).
ShardItem: TypeAlias = tuple[str, int | None, float, list[tuple[int, Event]]]
ShardSnapshot: TypeAlias = tuple[PlayerShard, dict[str, int]]
PlayerRows: TypeAlias = list[dict[str, Any]]


@dataclass(slots=True)
class ShardOutput:
    """Everything one call into a shard produced, as one item downstream.

    Bytewax charges per item, and a busy shard decides tens of actions per batch, so they
    travel together: the actions in the order they were decided, then the shard's
    watermark if it moved (tournaments and deferred actions wait for it), and at the end
    of a bounded run the players' rows.
    """

    actions: list[Action]  # to the guards: messages and rewards
    watermark: int | None = None
    rows: PlayerRows | None = None
    scores: list[Action] = field(default_factory=list)  # to the leaderboards
    records: list[Action] = field(default_factory=list)  # gamification records: to the log

    @classmethod
    def of(
        cls, actions: list[Action], watermark: int | None = None, rows: PlayerRows | None = None
    ) -> ShardOutput:
        """The call's actions sorted once by where they go, each list in decided order."""
        deliverable: list[Action] = []
        scores: list[Action] = []
        records: list[Action] = []
        for action in actions:
            if action.kind is not ActionKind.GAMIFICATION:
                deliverable.append(action)
            elif is_score(action):
                scores.append(action)
            else:
                records.append(action)
        return cls(deliverable, watermark, rows, scores, records)


@dataclass(frozen=True)
class FlowOptions:
    """How the dataflow runs, independent of where its input comes from."""

    shards: int = 64
    lateness_seconds: int = 60
    triggers: TriggerSettings = field(default_factory=TriggerSettings)
    live: bool = False  # unbounded input: the wall clock advances idle time
    idle_tick_seconds: float = 1.0
    emit_players: bool = False  # bounded runs: emit final player rows at the end
    rulebook: RuleBook | None = None  # None: the first triggers, no guards file
    ordered: bool = False  # fold in event-time order behind the watermark (see engine)
    eviction: Eviction | None = None  # lapsed players to a cold store (operators.eviction)


@dataclass
class Services:
    """The shared stores and channel senders behind the guards and delivery steps."""

    stores: Stores
    senders: dict[str, ResilientSender] = field(default_factory=dict)
    leaderboards: LeaderboardStore = field(default_factory=MemoryLeaderboardStore)
    delivery_concurrency: int = 1  # provider calls in flight at once
    contacts: ContactDirectory | None = None  # recipients of email/SMS/push, at send time

    @classmethod
    def in_memory(cls, guards: GuardConfig | None = None) -> Services:
        """In-process stores (the embedded default); no channel providers."""
        config = guards or GuardConfig()
        stores = memory_stores(cap_rules(config))
        configure_budgets(stores, config)
        return cls(stores)


class ShardLogic(StatefulLogic[ShardItem, ShardOutput, ShardSnapshot]):
    """Bytewax's handle on one ``PlayerShard``: it only calls into it and counts."""

    def __init__(
        self, options: FlowOptions, metrics: Metrics, resume: ShardSnapshot | None
    ) -> None:
        # Bytewax does not tell the builder its key; any unique name serves the gauge.
        self._key = f"shard-{id(self)}"
        self._options = options
        self._metrics = metrics
        newest = None
        self._rulebook = options.rulebook or RuleBook(None, options.triggers)
        rules = self._rulebook.current
        self._version = rules.version
        if resume is not None:
            shard, newest = resume
            self._shard = shard.with_rules(rules.rule_sets, rules.guards)
            self._shard.ordered = options.ordered
        else:
            self._shard = PlayerShard(
                rules=rules.rule_sets, guards=rules.guards, ordered=options.ordered
            )
        # The cold store is not in the snapshot: attached anew, like the rules.
        self._shard.with_eviction(options.eviction, metrics.eviction_observer(self._key))
        lateness = options.lateness_seconds
        self._clock = (
            EventClock.live(lateness, newest)
            if options.live
            else EventClock(lateness, None, newest)
        )
        self._late_seen = self._shard.stats.late_events
        self._duplicates_seen = self._shard.stats.duplicate_events
        self._ticked = self._shard.watermark

    def _output(self, actions: list[Action], rows: PlayerRows | None = None) -> list[ShardOutput]:
        """The call's one item (none when nothing happened), with the watermark if it
        moved."""
        watermark = None
        if self._shard.watermark != self._ticked:
            watermark = self._ticked = self._shard.watermark
        if not actions and watermark is None and rows is None:
            return []
        return [ShardOutput.of(actions, watermark, rows)]

    def _account(self, actions: list[Action], read_at: float) -> None:
        metrics = self._metrics
        if actions:
            metrics.count_actions(actions, read_at, time.time())
        stats = self._shard.stats
        if stats.late_events != self._late_seen:
            metrics.late_events.inc(stats.late_events - self._late_seen)
            self._late_seen = stats.late_events
        if stats.duplicate_events != self._duplicates_seen:
            metrics.duplicate_events.inc(stats.duplicate_events - self._duplicates_seen)
            self._duplicates_seen = stats.duplicate_events
        metrics.set_players(self._key, len(self._shard.players))

    def on_item(self, value: ShardItem) -> tuple[list[ShardOutput], bool]:
        rules = self._rulebook.current
        if rules.version != self._version:  # a hot reload: new rules, same players
            swap_rules(self._shard, rules.rule_sets)
            self._shard.guards = rules.guards
            self._version = rules.version
        source, high_mark, read_at, events = value
        actions = self._shard.process(events) if events else []
        if events:
            self._metrics.stage_items.labels("players").inc(len(events))
        if high_mark is not None:
            self._clock.observe(source, high_mark)
        actions.extend(self._shard.advance(self._clock.watermark()))
        self._account(actions, read_at)
        return self._output(actions), StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[ShardOutput], bool]:
        actions = self._shard.advance(self._clock.watermark())
        self._account(actions, time.time())
        return self._output(actions), StatefulLogic.RETAIN

    def on_eof(self) -> tuple[list[ShardOutput], bool]:
        if self._options.live:
            return [], StatefulLogic.RETAIN
        # A bounded input has ended: nothing can still arrive, so drop the lateness.
        final = self._clock.final()
        actions = self._shard.advance(final)
        self._account(actions, time.time())
        rows: PlayerRows | None = None
        if self._options.emit_players:
            columns = _player_columns(self._shard.rules)
            rows = []
            for state in self._shard.every_player():
                row = player_row(state, final)
                for extra in columns:
                    row.update(extra(state))
                rows.append(row)
        return self._output(actions, rows), StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        if not self._options.live:
            return None
        return datetime.now(UTC) + timedelta(seconds=self._options.idle_tick_seconds)

    def snapshot(self) -> ShardSnapshot:
        return self._shard, self._clock.snapshot()


def _player_columns(rule_sets: Any) -> list[Callable[[Any], dict[str, Any]]]:
    """Extra players.parquet columns from the rule sets that keep per-player progress."""
    columns: list[Callable[[Any], dict[str, Any]]] = []
    for rule_set in rule_sets:
        if isinstance(rule_set, CampaignRules):
            columns.append(campaign_rows)
        elif isinstance(rule_set, GamificationRules):
            columns.append(gamification_rows)
    return columns


class GuardLogic(StatefulLogic[ShardOutput, list[Action], list[tuple[int, int, Action]]]):
    """The shared-store guards for one shard's actions; keeps the actions a frequency
    cap deferred and tries them again when the shard's watermark reaches their time."""

    def __init__(self, stage: GuardStage, metrics: Metrics, resume: Any) -> None:
        self._caps = DeferredCaps(stage, resume)
        self._metrics = metrics

    def on_item(self, value: ShardOutput) -> tuple[list[list[Action]], bool]:
        decided: list[Action] = []
        if value.actions:
            self._metrics.stage_items.labels("guards").inc(len(value.actions))
            for action in value.actions:
                decided.extend(self._caps.decide(action))
        if value.watermark is not None:
            decided.extend(self._caps.release(value.watermark))
        return ([decided] if decided else []), StatefulLogic.RETAIN

    def snapshot(self) -> list[tuple[int, int, Action]]:
        return list(self._caps.waiting)


# What the leaderboard step receives: (shard, score actions, the shard's new watermark).
BoardItem: TypeAlias = tuple[str, list[Action], int | None]


class LeaderboardLogic(StatefulLogic[BoardItem, list[Action], dict[str, int]]):
    """One step for the whole job: applies score updates to the leaderboard store and
    settles tournaments once every shard's watermark has passed a period's end.

    Each shard sends its score actions and its watermark in one item, scores first, so
    when the slowest shard's watermark passes a period's end, every score of that
    period is already in the store.
    """

    def __init__(
        self, services: Services, rulebook: RuleBook | None, shards: int, resume: Any
    ) -> None:
        self._store = services.leaderboards
        self._shards = shards
        self._marks: dict[str, int] = dict(resume or {})
        self._settler = _settler(services, rulebook)

    def _settle(self) -> list[Action]:
        if self._settler is None or len(self._marks) < self._shards:
            return []
        return self._settler.due(min(self._marks.values()))

    def on_item(self, value: BoardItem) -> tuple[list[list[Action]], bool]:
        shard, scores, watermark = value
        out = list(scores)
        if scores:
            apply_scores(self._store, scores)
        if watermark is not None and watermark > self._marks.get(shard, NEVER):
            self._marks[shard] = watermark
            out.extend(self._settle())
        return ([out] if out else []), StatefulLogic.RETAIN

    def on_eof(self) -> tuple[list[list[Action]], bool]:
        settled = self._settle()
        return ([settled] if settled else []), StatefulLogic.RETAIN

    def snapshot(self) -> dict[str, int]:
        return dict(self._marks)


def _settler(services: Services, rulebook: RuleBook | None) -> TournamentSettler | None:
    if rulebook is None:
        return None
    for rule_set in rulebook.current.rule_sets:
        program = getattr(rule_set, "program", None)
        tournaments = getattr(program, "tournaments", ())
        if tournaments:
            return TournamentSettler(
                services.leaderboards, tournaments, version=rulebook.current.version
            )
    return None


def _splitter(shards: int) -> Callable[[DecodedBatch], list[tuple[str, ShardItem]]]:
    """Each shard's slice of a batch. A shard whose slice is empty still gets the item
    when the batch moved its source's high mark (its clock must see every source move);
    otherwise it has nothing to learn and gets nothing, which spares 63 of 64 items for
    the small, frequent polls of a live job."""
    keys = [str(i) for i in range(shards)]
    told: dict[str, int] = {}  # source -> the high mark every shard has seen

    def split(decoded: DecodedBatch) -> list[tuple[str, ShardItem]]:
        parts = [EventSlice() for _ in keys]
        for pair, raw in zip(decoded.events, decoded.raws, strict=True):
            parts[shard_of(pair[1].player_id, shards)].add(pair, raw)
        source, high, read_at = decoded.source, decoded.high_mark, decoded.read_at
        if high is None or high <= told.get(source, NEVER):
            return [
                (keys[i], (source, None, read_at, part)) for i, part in enumerate(parts) if part
            ]
        told[source] = high
        return [(keys[i], (source, high, read_at, part)) for i, part in enumerate(parts)]

    return split


def build_flow(
    source: Source[RawBatch],
    actions_sink: Sink[Any],
    dead_letters_sink: Sink[Any],
    *,
    options: FlowOptions,
    metrics: Metrics,
    players_sink: Sink[Any] | None = None,
    keyed_outputs: bool = True,
    progress: Callable[[int], None] | None = None,
    services: Services | None = None,
) -> Dataflow:
    """Assemble the job.

    ``keyed_outputs``: file sinks are partitioned and take ``("", bytes)`` items; the
    Kafka sinks are dynamic and take ``(key, value)`` byte pairs with the player id (or
    nothing) as the key.
    """
    flow = Dataflow("pitboss")
    raw = op.input("source", flow, source)
    zone_log = Throttled(log)  # a producer sending bad zones would log every batch

    def decode(batch: RawBatch) -> DecodedBatch:
        decoded = decode_batch(batch)
        by_type: dict[str, int] = {}
        for _, event in decoded.events:
            by_type[event.type] = by_type.get(event.type, 0) + 1
        for etype, count in by_type.items():
            metrics.events.labels(etype).inc(count)
        if "registration" in by_type:
            unknown = unknown_zones(decoded.events)
            if unknown:  # kept, with local times in UTC: counted, not dropped
                metrics.unknown_timezones.inc(unknown)
                zone_log.log(
                    logging.WARNING,
                    "%d registration(s) with a time zone the zone database lacks: their "
                    "local times (quiet hours, birthdays, local days) use UTC",
                    unknown,
                )
        if decoded.high_mark is not None:
            metrics.event_time_lag.set(max(0.0, time.time() - decoded.high_mark))
        for letter in decoded.dead_letters:
            metrics.dead_letters.labels(letter.kind).inc()
        if progress is not None:
            progress(len(batch))
        metrics.stage_items.labels("decode").inc(len(batch))
        return decoded

    decoded = op.map("decode", raw, decode)

    def dead_letter_items(d: DecodedBatch) -> list[tuple[Any, bytes]]:
        letters: list[DeadLetter] = d.dead_letters
        return [("" if keyed_outputs else None, letter.to_json()) for letter in letters]

    op.output(
        "dead_letters_out",
        op.flat_map("dead_letters", decoded, dead_letter_items),
        dead_letters_sink,
    )
    rulebook = options.rulebook
    guards = rulebook.current.guards if rulebook is not None else GuardConfig()
    if services is None:
        services = Services.in_memory(guards)
    op.output(
        "suppression_list_out",
        op.flat_map("suppression_updates", decoded, suppression_updates),
        SuppressionListSink(services.stores),
    )

    keyed = op.flat_map("shard", decoded, _splitter(options.shards))
    results = op.stateful(
        "players",
        keyed,
        lambda resume: ShardLogic(options, metrics, resume),
    )
    # Each shard's output fans out, keeping the order the shard decided in: scores and
    # the watermark to the leaderboards, messages, rewards and the watermark to that
    # shard's guards (which hold back actions a cap deferred until event time reaches
    # them), gamification records straight to the log, and, at the end of a bounded run,
    # player rows to players.parquet. Items stay batches (one per shard call) until
    # they are encoded for the action log.
    guard_stage = GuardStage(services.stores, guards, metrics)
    delivery_stage = DeliveryStage(
        services.senders,
        services.stores,
        metrics,
        concurrency=services.delivery_concurrency,
        contacts=services.contacts,
    )

    def to_boards(kv: tuple[str, ShardOutput]) -> tuple[str, BoardItem] | None:
        shard, out = kv
        scores = out.scores
        if not scores and out.watermark is None:
            return None
        return "leaderboards", (shard, scores, out.watermark)

    def to_guards(kv: tuple[str, ShardOutput]) -> tuple[str, ShardOutput] | None:
        shard, out = kv
        deliverable = out.actions
        if not deliverable and out.watermark is None:
            return None
        return shard, ShardOutput(deliverable, out.watermark)

    def records(kv: tuple[str, ShardOutput]) -> list[Action] | None:
        # Gamification records (points awarded, mission progress...) are logged, not
        # delivered: nothing to dedup, cap or budget, so they skip the guards.
        return kv[1].records or None

    boards = op.stateful(
        "leaderboards",
        op.filter_map("to_boards", results, to_boards),
        lambda resume: LeaderboardLogic(services, rulebook, options.shards, resume),
    )
    guarded = op.stateful(
        "guards",
        op.filter_map("to_guards", results, to_guards),
        lambda resume: GuardLogic(guard_stage, metrics, resume),
    )

    def guard(batches: list[list[Action]]) -> list[list[Action]]:
        actions = [a for batch in batches for a in batch]
        metrics.stage_items.labels("guards").inc(len(actions))
        decided = guard_stage.process(actions)
        return [decided] if decided else []

    def deliver(batches: list[list[Action]]) -> list[list[Action]]:
        actions = [a for batch in batches for a in batch]
        metrics.stage_items.labels("deliver").inc(len(actions))
        delivered = delivery_stage.process(actions)
        metrics.count_decided(delivered)
        return [delivered] if delivered else []

    decided = op.merge(
        "decided",
        op.map("unkey_guarded", guarded, lambda kv: kv[1]),
        op.filter_map("records", results, records),
        op.flat_map_batch("guard_boards", op.map("unkey_boards", boards, lambda kv: kv[1]), guard),
    )
    delivered = op.flat_map_batch("deliver", decided, deliver)

    def action_items(actions: list[Action]) -> list[tuple[Any, bytes]]:
        if keyed_outputs:
            return [("", action.to_json()) for action in actions]
        return [(action.player_id.encode(), action.to_json()) for action in actions]

    op.output("actions_out", op.flat_map("encode_actions", delivered, action_items), actions_sink)
    if players_sink is not None:
        rows = op.filter_map("to_rows", results, lambda kv: kv[1].rows)
        op.output("players_out", op.map("players_rows", rows, lambda r: ("", r)), players_sink)
    return flow
