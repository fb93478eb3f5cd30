"""The ``pitboss`` command: demo, replay, run, simulate."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import gc
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main
from pythonjsonlogger.json import JsonFormatter
from tqdm import tqdm

from pipeline.flow import FlowOptions, Services, build_flow
from pipeline.leaderboard_api import leaderboard_command
from pipeline.metrics import Metrics
from pipeline.outputs import JsonlSink, PlayersParquetSink
from pipeline.rulebook import ConfigError, RuleBook, load_rules
from pipeline.services import board_names, build_eviction, build_services, serve_boards
from pipeline.settings import Settings, SettingsError, load_settings
from pipeline.simulator import SimulatorConfig, simulate, write_jsonl
from pipeline.sources import JsonlSource, SimulatorSource
from sinks.contacts import Contacts, RedisContactDirectory
from sinks.leaderboards.redis import RedisLeaderboardStore
from sinks.stores import StoreError
from sinks.stores.redis import connect

log = logging.getLogger("pitboss")


def _progress(total: int | None, label: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A progress bar on a terminal; nothing at all otherwise."""
    bar = tqdm(
        total=total, unit=" ev", unit_scale=True, desc=label, disable=not sys.stderr.isatty()
    )

    def update(n: int) -> None:
        bar.update(n)

    return update, bar.close


def _rulebook(settings: Settings) -> RuleBook:
    config_dir = settings.config_dir
    if config_dir is not None and not config_dir.is_dir():
        log.info("no configuration directory %s: running the first triggers", config_dir)
        config_dir = None
    return RuleBook(config_dir, settings.triggers())


def _options(
    settings: Settings, *, live: bool, emit_players: bool, rulebook: RuleBook | None = None
) -> FlowOptions:
    return FlowOptions(
        # Bounded runs keep evicted players in this process (nothing to recover them for).
        eviction=build_eviction(settings, shared=live),
        rulebook=rulebook or _rulebook(settings),
        shards=settings.shards,
        lateness_seconds=settings.lateness_seconds,
        ordered=settings.order_by_event_time,
        triggers=settings.triggers(),
        live=live,
        idle_tick_seconds=settings.idle_tick_seconds,
        emit_players=emit_players,
    )


def _run(flow: Dataflow, settings: Settings, workers: int, **cluster: Any) -> None:
    cli_main(  # type: ignore[no-untyped-call]
        flow,
        workers_per_process=workers,
        epoch_interval=timedelta(seconds=settings.epoch_interval_seconds),
        **cluster,
    )


_PARTS_BEING_CREATED = ".creating-partitions"
_PARTS_COMPLETE = "complete"


def recovery_config(settings: Settings) -> RecoveryConfig | None:
    """Bytewax recovery for ``pitboss run``, creating the partitions on first start."""
    directory = settings.recovery_dir
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    ensure_recovery_partitions(directory, settings.recovery_partitions)
    return RecoveryConfig(  # type: ignore[no-untyped-call]
        str(directory), backup_interval=timedelta(seconds=settings.backup_interval_seconds)
    )


def ensure_recovery_partitions(directory: Path, count: int) -> None:
    """Create ``count`` empty recovery partitions in ``directory`` unless it has them.

    Crash-safe: a job killed while creating them must not leave some of the set, which
    Bytewax refuses at the next start ("missing recovery partitions") and which this
    function could not tell from a set someone damaged. So the partitions are created
    in a staging folder inside ``directory``, marked complete, then moved in one rename
    each; a start that finds a complete staging folder finishes the moves, and one that
    finds an incomplete one starts over.
    """
    staging = directory / _PARTS_BEING_CREATED
    if staging.is_dir() and not (staging / _PARTS_COMPLETE).exists():
        shutil.rmtree(staging)  # killed while creating: nothing was moved yet
    if not staging.is_dir():
        if any(directory.glob("part-*.sqlite3")):
            return  # created before (a set Bytewax itself checks)
        log.info("creating %d recovery partitions in %s", count, directory)
        staging.mkdir()
        init_db_dir(staging, count)  # type: ignore[no-untyped-call]
        (staging / _PARTS_COMPLETE).touch()
    for part in sorted(staging.glob("part-*.sqlite3")):
        os.replace(part, directory / part.name)
    shutil.rmtree(staging)


def _bounded_flow(
    source: Any,
    out: Path,
    settings: Settings,
    metrics: Metrics,
    progress: Callable[[int], None],
    *,
    rulebook: RuleBook | None = None,
    services: Services | None = None,
) -> Dataflow:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("actions.jsonl", "dead_letters.jsonl"):
        (out / name).write_bytes(b"")  # present even when nothing is written to it
    return build_flow(
        source,
        JsonlSink(out / "actions.jsonl"),
        JsonlSink(out / "dead_letters.jsonl"),
        options=_options(settings, live=False, emit_players=True, rulebook=rulebook),
        metrics=metrics,
        players_sink=PlayersParquetSink(out / "players.parquet"),
        progress=progress,
        services=services,
    )


def summary(metrics: Metrics, seconds: float) -> str:
    """What a run did, for people: events, dead letters, actions, throughput."""
    events = metrics.samples("pitboss_events_total")
    dead = metrics.samples("pitboss_dead_letters_total")
    actions = metrics.samples("pitboss_actions_total")
    total = sum(events.values()) + sum(dead.values())
    lines = [f"records: {int(total):,} in {seconds:.1f} s ({total / max(seconds, 1e-9):,.0f}/s)"]
    lines.append("events by type:")
    lines += [f"  {k[0]:<16} {int(v):>10,}" for k, v in sorted(events.items())]
    lines.append(f"invalid records (dead letters): {int(sum(dead.values())):,}")
    lines += [f"  {k[0]:<16} {int(v):>10,}" for k, v in sorted(dead.items())]
    lines.append(f"late events: {int(metrics.value('pitboss_late_events_total')):,}")
    evicted = int(metrics.value("pitboss_player_evictions_total"))
    if evicted:
        restored = int(metrics.value("pitboss_player_restores_total"))
        lines.append(f"lapsed players evicted: {evicted:,}, brought back: {restored:,}")
    lines.append("actions by campaign, channel and decision:")
    lines += [
        f"  {campaign:<22} {channel:<9} {decision:<26} {int(v):>8,}"
        for (campaign, channel, decision), v in sorted(actions.items())
    ]
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    metrics = Metrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.metrics_addr)
        print(f"metrics: http://{settings.metrics_addr}:{settings.metrics_port}/metrics")
    config = SimulatorConfig(seed=args.seed, events=args.events)
    rulebook = _rulebook(settings)
    services = Services.in_memory(rulebook.current.guards)
    boards = serve_boards(services, rulebook, settings)
    update, close = _progress(args.events, "demo")
    flow = _bounded_flow(
        SimulatorSource(config),
        args.out,
        settings,
        metrics,
        update,
        rulebook=rulebook,
        services=services,
    )
    started = time.perf_counter()
    _run(flow, settings, args.workers)
    close()
    print(summary(metrics, time.perf_counter() - started))
    for name in board_names(rulebook)[:3]:
        with contextlib.suppress(LookupError, ValueError):
            print(leaderboard_command(services.leaderboards, name, top=3))
    if boards is not None:
        boards.close()
    print(f"wrote {args.out}/actions.jsonl, dead_letters.jsonl and players.parquet")
    return 0


def _count_lines(path: Path) -> int | None:
    if path.stat().st_size > 2**31:
        return None
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    metrics = Metrics()
    source = JsonlSource(args.events, batch_size=settings.consumer_batch_size)
    update, close = _progress(_count_lines(args.events), "replay")
    flow = _bounded_flow(source, args.out, settings, metrics, update)
    started = time.perf_counter()
    _run(flow, settings, args.workers)
    close()
    print(summary(metrics, time.perf_counter() - started))
    return 0


def production_flow(
    settings: Settings,
    metrics: Metrics,
    rulebook: RuleBook | None = None,
    services: Services | None = None,
) -> Dataflow:
    """The production job: Kafka in, Kafka out (actions and dead letters)."""
    rulebook = rulebook or _rulebook(settings)
    from pipeline.kafka import KafkaBatchSource, KafkaProducerSink

    extra = settings.kafka_config()
    source = KafkaBatchSource(
        settings.kafka_brokers,
        [settings.events_topic],
        tail=True,
        batch_size=settings.consumer_batch_size,
        extra=extra,
        lag_observer=metrics.observe_lag,
    )
    return build_flow(
        source,
        KafkaProducerSink(settings.kafka_brokers, settings.actions_topic, extra=extra),
        KafkaProducerSink(settings.kafka_brokers, settings.dead_letters_topic, extra=extra),
        options=_options(settings, live=True, emit_players=False, rulebook=rulebook),
        metrics=metrics,
        keyed_outputs=False,
        services=services or build_services(settings, rulebook.current.guards, metrics),
    )


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    # `kill -USR1 PID` prints every Python thread's stack to stderr: how to see where a
    # job that stopped making progress waits, without stopping it.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    metrics = Metrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.metrics_addr)
    log.info(
        "starting: topic %s -> %s, %d worker(s)",
        settings.events_topic,
        settings.actions_topic,
        args.workers,
    )
    cluster: dict[str, Any] = {"recovery_config": recovery_config(settings)}
    if args.addresses:
        cluster |= {"process_id": args.process_id, "addresses": args.addresses.split(";")}
    rulebook = _rulebook(settings)
    log.info("configuration version %s", rulebook.current.version)
    rulebook.watch(settings.config_reload_seconds)
    services = build_services(settings, rulebook.current.guards, metrics)
    serve_boards(services, rulebook, settings)
    flow = production_flow(settings, metrics, rulebook, services)
    _run(flow, settings, args.workers, **cluster)
    return 0


def cmd_leaderboard(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.redis_url:
        print(
            "pitboss: leaderboards are kept by the running job; set PITBOSS_REDIS_URL to read "
            f"them from Redis, or GET http://HOST:{settings.leaderboard_port}/leaderboards/"
            f"{args.name} from the job",
            file=sys.stderr,
        )
        return 2
    store = RedisLeaderboardStore(connect(settings.redis_url), settings.redis_prefix)
    try:
        print(leaderboard_command(store, args.name, args.top, args.player, args.period))
    except (LookupError, ValueError) as exc:
        print(f"pitboss: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.path or settings.config_dir or Path("config")
    try:
        rules = load_rules(path, settings.triggers())
    except ConfigError as exc:
        print(f"pitboss: {path}: {exc}", file=sys.stderr)
        return 1
    names = ", ".join(type(r).__name__ for r in rules.rule_sets)
    print(f"{path}: valid (version {rules.version}; rule sets: {names})")
    return 0


def cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    config = SimulatorConfig(seed=args.seed, events=args.events, poison_rate=args.poison_rate)
    if args.contacts:
        if settings.redis_url is None:
            print("pitboss: --contacts writes to Redis: set redis_url", file=sys.stderr)
            return 2
        try:
            seeded = seed_contacts(config, settings.redis_url, settings.redis_prefix)
        except StoreError as exc:  # Redis away or the key is not a hash: nothing produced
            print(f"pitboss: --contacts: {exc}", file=sys.stderr)
            return 1
        print(f"wrote demo contacts of {seeded:,} players to Redis")
    if args.out is not None:
        count = write_jsonl(args.out, config)
        print(f"wrote {count:,} events to {args.out}")
        return 0
    from pipeline.kafka import ensure_topics
    from pipeline.produce import produce_events

    ensure_topics(args.kafka, {args.topic: args.partitions}, retention_ms=args.retention_ms)
    update, close = _progress(args.events, "simulate")
    count = produce_events(args.kafka, args.topic, config, progress=update)
    close()
    print(f"produced {count:,} events to {args.topic}")
    return 0


def seed_contacts(config: SimulatorConfig, redis_url: str, prefix: str) -> int:
    """Write a contact hash for every player the simulator registers (reserved example
    addresses, test numbers, fake tokens), as the operator's CRM sync would; how many."""
    client = connect(redis_url, socket_timeout=5.0, retries=3)
    directory = RedisContactDirectory(client, prefix)
    batch: dict[str, Contacts] = {}
    seeded = 0
    try:
        for record in simulate(config):
            if b'"type":"registration"' not in record:
                continue
            player_id = str(orjson.loads(record)["player_id"])
            digits = "".join(c for c in player_id if c.isdigit()).rjust(7, "0")[-7:]
            batch[player_id] = Contacts(
                email=f"{player_id}@players.example.com",
                phone=f"+1555{digits}",
                push_token=f"demo-{player_id}",
            )
            if len(batch) == 500:
                directory.put_many(batch)
                seeded += len(batch)
                batch.clear()
        if batch:
            directory.put_many(batch)
            seeded += len(batch)
    finally:
        client.close()
    return seeded


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pitboss", description=__doc__)
    parser.add_argument("--settings", type=Path, help="YAML file of settings (PITBOSS_* env too)")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the job on the built-in simulator")
    demo.add_argument("--events", type=int, default=200_000)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--out", type=Path, default=Path("out"))
    demo.add_argument("-w", "--workers", type=int, default=1)
    demo.set_defaults(handler=cmd_demo)

    replay = sub.add_parser("replay", help="run the job over a JSONL file of events")
    replay.add_argument("events", type=Path)
    replay.add_argument("--out", type=Path, required=True)
    replay.add_argument("-w", "--workers", type=int, default=1)
    replay.set_defaults(handler=cmd_replay)

    run = sub.add_parser("run", help="the production job: Kafka in, Kafka out")
    run.add_argument("-w", "--workers", type=int, default=1, help="workers in this process")
    run.add_argument("-i", "--process-id", type=int, default=0)
    run.add_argument("-a", "--addresses", help="host:port of every process, ';'-separated")
    run.set_defaults(handler=cmd_run)

    board = sub.add_parser("leaderboard", help="a leaderboard's standings (from Redis)")
    board.add_argument("name")
    board.add_argument("--top", type=int, default=10)
    board.add_argument("--player")
    board.add_argument("--period", help="e.g. 2026-W03; default: the latest")
    board.set_defaults(handler=cmd_leaderboard)

    check = sub.add_parser("check-config", help="validate campaigns, gamification, guards")
    check.add_argument("path", type=Path, nargs="?")
    check.set_defaults(handler=cmd_check_config)

    simulate = sub.add_parser("simulate", help="the seeded firehose simulator on its own")
    simulate.add_argument("--events", type=int, required=True)
    simulate.add_argument("--seed", type=int, default=42)
    simulate.add_argument("--poison-rate", type=float, default=0.0)
    target = simulate.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path)
    target.add_argument("--kafka", metavar="BROKERS")
    simulate.add_argument("--topic", default="casino.events")
    simulate.add_argument("--partitions", type=int, default=8)
    simulate.add_argument("--retention-ms", type=int, default=7 * 86_400_000)
    simulate.add_argument(
        "--contacts",
        action="store_true",
        help="also write every simulated player's contact hash to Redis (redis_url), so "
        "e-mail, SMS and push reach the demo's providers",
    )
    simulate.set_defaults(handler=cmd_simulate)
    return parser


def setup_logging(settings: Settings) -> None:
    """Plain text for people, or JSON lines for a log pipeline (``log_format``)."""
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", timestamp=True)
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level, handlers=[handler], force=True)


def tune_gc() -> None:
    """Collect garbage less often: the job allocates many short-lived objects per event
    (decoded events) around a large, long-lived heap (player state). With the default
    thresholds the cyclic collector rescans that heap so often that it costs about a
    third of the decode time (bench/README.md); the state holds no reference cycles
    that would need prompt collection."""
    gc.freeze()  # what was allocated at start-up is never garbage
    gc.set_threshold(50_000, 20, 100)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pitboss`` command."""
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.settings)
    except SettingsError as exc:
        print(f"pitboss: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings)
    tune_gc()
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        return handler(args, settings)
    except ConfigError as exc:
        print(f"pitboss: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
