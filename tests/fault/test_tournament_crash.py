"""Tournament end under `kill -9`: every prize is paid once, to the players who won it.

The real job (`pitboss run`: Kafka in and out on the Tansu broker, Bytewax recovery,
Redis stores under this test's key prefix, a wallet API on loopback) runs two daily
tournaments over one day of play. The stream is produced in three parts, so each crash
lands at a known point in event time:

1. the day up to 30 s before the end; the job is killed in the final minute, once the
   scores up to there (the final minute's first ones too) reached the leaderboard
   store. It never took a snapshot (a long epoch), so the restart replays the whole
   day: every score is offered to the store again;
2. the rest of the final minute (a lead changes hands, a tie at the prize cut forms)
   and play past the end; the job is killed once the final standings are in the store
   but before the tournaments settle;
3. time moves past the end plus ``settle_after``: the job settles and starts paying,
   and is killed while the wallet holds its third prize call.

The fourth run finishes the job. The prizes at the wallet must be the prize tables
applied to a ranking computed here from the same events, in plain Python (scoring,
eligibility, minimum score and tie rules), each credited once; the action log must
hold a ``tournament_finished`` record for each paid place.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from itertools import count
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from operators.actions import derive_action_id
from sinks.leaderboards.redis import RedisLeaderboardStore
from sinks.stores.redis import connect
from tests.support.fault_helpers import (
    PARTITIONS,
    Job,
    TopicReader,
    Topics,
    produce_stream,
    read_topic,
    values,
    wait_until,
)
from tests.support.fault_servers import running_gated_providers
from tests.support.tansu import TansuBroker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOURNAMENTS = """
settings:
  flush_seconds: 10m
tournaments:
  - id: final_minute_cup
    name: Final minute cup
    period: day
    categories: [live, table]
    score: real_wager
    eligible: state.deposit_count >= 1
    min_score: 10
    tie: earliest
    settle_after: 2m
    prizes:
      - {rank: 1, reward: {type: bonus_credit, amount: "500.00", wagering: 10}}
      - {rank: 2, reward: {type: bonus_credit, amount: "250.00", wagering: 10}}
      - {rank: 3, reward: {type: bonus_credit, amount: "100.00", wagering: 10}}
      - {ranks: 4-5, reward: {type: free_spins, count: 50, value_per_spin: "0.20", game: starburst}}
  - id: slots_split_cup
    name: Slots cup, ties share
    period: day
    categories: [slots]
    score: real_wager
    tie: split
    settle_after: 2m
    prizes:
      - {rank: 1, reward: {type: cash, amount: "300.00"}}
      - {rank: 2, reward: {type: cash, amount: "200.00"}}
      - {rank: 3, reward: {type: cash, amount: "100.00"}}
"""
BOARDS: list[dict[str, Any]] = yaml.safe_load(TOURNAMENTS)["tournaments"]
DAY = "2026-03-09"
START = datetime(2026, 3, 9, tzinfo=UTC)
END = START + timedelta(days=1)
LATENESS = 60  # seconds; the job's watermark trails the newest event time by this much
SETTLE_AFTER = 120
KILL_AT = END - timedelta(seconds=30)  # the first part of the stream stops before this
HELD_PRIZE_CALL = 3  # the wallet holds this call while the job is killed

Standings = dict[str, tuple[int, int]]
"""Player -> (score in hundredths, event time the score was reached)."""


class Day:
    """The day's events, each at an explicit time."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._ids = count(1)

    def add(self, ts: datetime, etype: str, player: str, **fields: Any) -> None:
        stamp = ts.isoformat().replace("+00:00", "Z")
        self.records.append(
            {"event_id": f"t{next(self._ids)}", "type": etype, "player_id": player, "ts": stamp}
            | fields
        )

    def register(self, player: str, *, deposit: bool = True) -> None:
        consents = {"email": True, "sms": True, "push": True, "in_app": True}
        self.add(
            START + timedelta(hours=18),
            "registration",
            player,
            country="MT",
            currency="EUR",
            timezone="UTC",
            channel="organic",
            consents=consents,
        )
        if deposit:
            self.add(
                START + timedelta(hours=18, minutes=1),
                "deposit",
                player,
                amount="1000.00",
                currency="EUR",
            )

    def bet(
        self, ts: datetime, player: str, stake: str, category: str, bonus: str | None = None
    ) -> None:
        rid = f"r{len(self.records)}"
        extra = {} if bonus is None else {"bonus_amount": bonus}
        self.add(
            ts,
            "bet",
            player,
            round_id=rid,
            amount=stake,
            currency="EUR",
            game_id="g1",
            game_category=category,
            **extra,
        )
        self.add(ts, "win", player, round_id=rid, amount="0", currency="EUR")

    def session(self, start: datetime, player: str, *bets: tuple[int, str, str]) -> None:
        """Login, bets ``(seconds after the login, stake, category)``, then logout."""
        self.add(start, "login", player)
        for offset, stake, category in bets:
            self.bet(start + timedelta(seconds=offset), player, stake, category)
        self.add(start + timedelta(seconds=max(o for o, _, _ in bets) + 5), "logout", player)


def tournament_day() -> list[dict[str, Any]]:
    """One day of play, in time order within each player, ending in a close finish."""
    d = Day()
    for player in ("alice", "bob", "carol", "dave", "erin", "gina", "hank", "ivan", "jack"):
        d.register(player)
    d.register("kate")
    d.register("lena")
    d.register("frank", deposit=False)  # never deposits: not eligible for the live cup
    evening = START + timedelta(hours=20)
    minute = timedelta(minutes=1)
    d.session(evening, "alice", (0, "300.00", "live"), (300, "800.00", "slots"))
    d.session(evening + 10 * minute, "bob", (0, "400.00", "live"))
    d.session(evening + 20 * minute, "carol", (0, "200.00", "live"), (60, "100.00", "table"))
    d.session(evening + 30 * minute, "dave", (0, "250.00", "live"))
    d.add(evening + 40 * minute, "login", "erin")
    d.bet(evening + 40 * minute, "erin", "140.00", "live", bonus="20.00")  # 120.00 real money
    d.add(evening + 41 * minute, "logout", "erin")
    d.session(evening + 50 * minute, "frank", (0, "1000.00", "live"))
    d.session(evening + 55 * minute, "gina", (0, "9.00", "live"))  # under min_score
    d.session(evening + 60 * minute, "hank", (0, "5000.00", "slots"))
    d.session(evening + 70 * minute, "jack", (0, "600.00", "slots"))
    d.session(evening + 80 * minute, "kate", (0, "400.00", "slots"))
    d.session(evening + 90 * minute, "lena", (0, "100.00", "slots"))
    # The final minute, before the first crash.
    d.session(END - timedelta(seconds=60), "alice", (10, "150.00", "live"))  # 450.00
    d.session(END - timedelta(seconds=45), "ivan", (5, "250.00", "live"))  # 250.00, at -40 s
    # The final minute, after it: bob takes the lead, erin ties dave and ivan at 250.00 but
    # reached it last (no prize), kate ties jack across the slots cup's last paid rank.
    d.add(END - timedelta(seconds=25), "login", "bob")
    d.bet(END - timedelta(seconds=20), "bob", "100.00", "live")  # 500.00; flushed at the end
    d.session(END - timedelta(seconds=18), "kate", (3, "200.00", "slots"))  # 600.00
    d.add(END - timedelta(seconds=15), "login", "erin")
    d.bet(END - timedelta(seconds=10), "erin", "130.00", "live")  # 250.00; flushed at the end
    # Past the end: tomorrow's tournament, not today's.
    d.session(END + timedelta(seconds=5), "alice", (5, "1000.00", "live"), (6, "50.00", "slots"))
    return d.records


def clock_marks(at: datetime, part: str) -> list[bytes]:
    """One login per partition at ``at``: every partition's event time reaches it."""
    stamp = at.isoformat().replace("+00:00", "Z")
    return [
        orjson.dumps(
            {
                "event_id": f"clock-{part}{i}",
                "type": "login",
                "player_id": f"clock-{part}{i}",
                "ts": stamp,
            }
        )
        for i in range(PARTITIONS)
    ]


def lines(records: list[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(r) for r in records]


# -- the reference: the tournaments' rules applied to the events, independently --------


def _at(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["ts"])


def expected_standings(records: list[dict[str, Any]], board: dict[str, Any]) -> Standings:
    """What the leaderboard store must hold for ``board`` today, from ``records``."""
    depositors = {
        r["player_id"]
        for r in records
        if r["type"] == "deposit" and r.get("status", "ok") == "ok" and _at(r) < END
    }
    if board.get("eligible") not in (None, "state.deposit_count >= 1"):
        raise AssertionError(f"the reference does not know the condition {board['eligible']!r}")
    found: Standings = {}
    for r in records:
        if r["type"] != "bet" or not START <= _at(r) < END:
            continue
        if r["game_category"] not in board["categories"]:
            continue
        if board.get("eligible") and r["player_id"] not in depositors:
            continue
        real = Decimal(r["amount"]) - Decimal(r.get("bonus_amount", "0"))
        score, reached = found.get(r["player_id"], (0, 0))
        ts = int(_at(r).timestamp())
        found[r["player_id"]] = (score + int(real * 100), max(reached, ts))
    return found


@dataclass(frozen=True)
class Prize:
    """A paid place: who, which rank, and what the wallet must be asked to credit."""

    tournament: str
    player_id: str
    rank: int
    reward: dict[str, Any]

    @property
    def action_id(self) -> str:
        """The deterministic id: campaign, player and period (issue 4's contract)."""
        return derive_action_id(f"tournament:{self.tournament}", self.player_id, f"{DAY}:prize")


def _prize_table(board: dict[str, Any]) -> dict[int, dict[str, Any]]:
    table: dict[int, dict[str, Any]] = {}
    for prize in board["prizes"]:
        first, _, last = str(prize.get("ranks", prize.get("rank"))).partition("-")
        for rank in range(int(first), int(last or first) + 1):
            table[rank] = dict(prize["reward"])
    return table


def expected_prizes(board: dict[str, Any], standings: Standings) -> list[Prize]:
    """The board's prize table applied to its final standings."""
    table = _prize_table(board)
    floor = int(Decimal(str(board.get("min_score", 0))) * 100)
    ranked = sorted(
        ((player, score, reached) for player, (score, reached) in standings.items()),
        key=lambda row: (-row[1], row[2], row[0]),  # score, then who reached it first
    )
    ranked = [row for row in ranked if row[1] >= floor and row[1] > 0]
    tid = board["id"]
    if board.get("tie", "earliest") == "earliest":
        return [
            Prize(tid, player, rank, table[rank])
            for rank, (player, _, _) in enumerate(ranked[: len(table)], start=1)
        ]
    prizes: list[Prize] = []
    rank = 1
    while ranked and rank <= len(table):
        group = [row for row in ranked if row[1] == ranked[0][1]]
        ranked = ranked[len(group) :]
        pooled = sum(
            (Decimal(table[r]["amount"]) for r in range(rank, rank + len(group)) if r in table),
            Decimal(0),
        )
        share = (pooled / len(group)).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
        for player, _, _ in group:
            prizes.append(Prize(tid, player, rank, table[rank] | {"amount": str(share)}))
        rank += len(group)
    return prizes


def credited(body: dict[str, Any]) -> tuple[str, str, int, dict[str, Any]]:
    """What a wallet call credits, comparable with a :class:`Prize`."""
    reward = dict(body["reward"])
    assert reward.pop("period") == DAY and reward.pop("currency") == "EUR", body
    tournament = reward.pop("tournament")
    rank = reward.pop("rank")
    reward["type"] = reward.pop("reward_type")
    for money in ("amount", "value_per_spin"):
        if money in reward:
            reward[money] = Decimal(reward[money])
    assert body["campaign_id"] == f"tournament:{tournament}", body
    return tournament, body["player_id"], rank, reward


def _who(credit: tuple[str, str, int, dict[str, Any]]) -> tuple[str, str]:
    return credit[0], credit[1]


def as_credit(prize: Prize) -> tuple[str, str, int, dict[str, Any]]:
    reward = {
        k: Decimal(v) if k in ("amount", "value_per_spin") else v for k, v in prize.reward.items()
    }
    return prize.tournament, prize.player_id, prize.rank, reward


# -- the test --------------------------------------------------------------------------


@pytest.fixture
def store(redis_prefix: str) -> Iterator[RedisLeaderboardStore]:
    """The job's leaderboard store, read from the test (same Redis, same prefix)."""
    client = connect(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    yield RedisLeaderboardStore(client, redis_prefix)
    client.close()


def stored(store: RedisLeaderboardStore, board: str, period: str = DAY) -> Standings:
    return {s.player_id: (s.score, s.reached_at or 0) for s in store.top(board, period, 100)}


def test_kills_around_a_tournament_end_pay_each_prize_once_to_the_right_players(
    kafka_broker: TansuBroker,
    redis_prefix: str,
    store: RedisLeaderboardStore,
    tmp_path: Path,
) -> None:
    config_dir = tmp_path / "config"
    (config_dir / "gamification").mkdir(parents=True)
    (config_dir / "gamification" / "tournaments.yaml").write_text(TOURNAMENTS)
    day = tournament_day()
    before_kill = [r for r in day if _at(r) < KILL_AT]
    after_kill = [r for r in day if _at(r) >= KILL_AT]
    finals = {b["id"]: expected_standings(day, b) for b in BOARDS}
    prizes = [p for b in BOARDS for p in expected_prizes(b, finals[b["id"]])]
    # The scenario is what it claims: the final minute changes the outcome.
    at_kill = {b["id"]: expected_standings(before_kill, b) for b in BOARDS}
    assert {b["id"]: expected_prizes(b, at_kill[b["id"]]) for b in BOARDS} != {
        b["id"]: expected_prizes(b, finals[b["id"]]) for b in BOARDS
    }
    assert [(p.player_id, p.rank) for p in prizes] == [
        ("bob", 1),
        ("alice", 2),
        ("carol", 3),
        ("dave", 4),
        ("ivan", 5),  # not erin: later
        ("hank", 1),
        ("alice", 2),
        ("jack", 3),
        ("kate", 3),  # jack and kate share rank 3
    ]
    by_id = {p.action_id: p for p in prizes}
    assert len(by_id) == len(prizes)

    with running_gated_providers() as wallet:
        topics = Topics.create(kafka_broker.bootstrap)
        env = topics.env(
            config_dir,
            REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"),
            REDIS_PREFIX=redis_prefix,
            RECOVERY_DIR=str(tmp_path / "recovery"),
            RECOVERY_PARTITIONS="4",
            WALLET__NAME="wallet",
            WALLET__URL=wallet.url("/wallet"),
            LATENESS_SECONDS=str(LATENESS),
            EPOCH_INTERVAL_SECONDS="0.5",
        )
        jobs: list[Job] = []

        def start(workers: int, **settings: str) -> Job:
            job = Job(
                env | {f"PITBOSS_{k}": v for k, v in settings.items()},
                *("-w", str(workers)),
                log_dir=tmp_path,
                own_process_group=True,
            )
            jobs.append(job)
            job.start()
            return job

        def logs() -> str:
            return "\n".join(f"--- run {i + 1}:\n{job.log()}" for i, job in enumerate(jobs))

        def store_holds(job: Job, expected: dict[str, Standings]) -> Callable[[], bool]:
            def holds() -> bool:
                job.check()
                return all(stored(store, board) == want for board, want in expected.items())

            return holds

        try:
            # 1. Killed in the final minute, once every score up to there is in the store.
            #    An epoch longer than the run: no snapshot, the restart replays it all.
            produce_stream(topics, lines(before_kill), clock_marks(KILL_AT, "a"))
            #    The kill also waits for a score action in the action log: the store and the
            #    log are separate outputs, and the replay check at the end needs a score
            #    the first run logged before it died.
            first = start(1, EPOCH_INTERVAL_SECONDS="600")
            what = "the scores up to the final minute in the leaderboard store"
            wait_until(store_holds(first, at_kill), 30, what, logs)
            with TopicReader(topics.brokers, topics.actions) as early:

                def score_logged() -> bool:
                    first.check()
                    early.poll()
                    return any(
                        a["payload"].get("event") == "leaderboard_score"
                        for a in values(early.records)
                    )

                wait_until(score_logged, 30, "a score action in the action log", logs)
            first.kill()

            # 2. The rest of the final minute and play past the end; killed once the final
            #    standings (and tomorrow's first score) are in the store, before settling.
            produce_stream(topics, lines(after_kill), clock_marks(END + timedelta(seconds=90), "b"))
            second = start(2)
            wait_until(store_holds(second, finals), 30, "the final standings in the store", logs)
            tomorrow = (END + timedelta(seconds=1)).date().isoformat()
            wait_until(
                lambda: "alice" in stored(store, "final_minute_cup", tomorrow), 30, tomorrow, logs
            )
            assert all(store.settlement(b["id"], DAY) is None for b in BOARDS)  # not yet
            second.kill()

            # 3. Event time passes the end plus settle_after: the job settles, starts paying
            #    and is killed inside a wallet call.
            settle_at = END + timedelta(seconds=SETTLE_AFTER + LATENESS + 30)
            produce_stream(topics, [], clock_marks(settle_at, "c"))
            wallet.hold("/wallet", HELD_PRIZE_CALL)
            third = start(1)
            wait_until(wallet.holding.is_set, 30, "the wallet call to hold", logs)
            assert all(store.settlement(b["id"], DAY) is not None for b in BOARDS)
            third.kill()
            wallet.let_go()

            # 4. The last run pays what is left; it stops once as many prizes as the
            #    reference expects were paid and logged (which ones is checked below).
            fourth = start(2)
            with TopicReader(topics.brokers, topics.actions) as reader:

                def paid_and_logged() -> bool:
                    fourth.check()
                    reader.poll()
                    paid = {r.headers["idempotency-key"] for r in wallet.on("/wallet")}
                    logged = Counter(
                        a["payload"].get("event", a["kind"])
                        for a in {a["action_id"]: a for a in values(reader.records)}.values()
                    )
                    return len(paid) >= len(prizes) and min(
                        logged["tournament_finished"], logged["reward"]
                    ) >= len(prizes)

                def paid_players() -> str:
                    paid = [r.json() for r in wallet.on("/wallet")]
                    return f"paid: {[(b['campaign_id'], b['player_id']) for b in paid]}\n{logs()}"

                wait_until(paid_and_logged, 30, "every prize paid and logged", paid_players)
            fourth.stop()
        finally:
            for job in jobs:
                job.stop()
        calls = wallet.on("/wallet")
    actions = values(read_topic(topics.brokers, topics.actions))

    # Each prize reached the wallet, credited to the right player with the right reward,
    # under its deterministic id; a call repeated carries the same credit.
    keys = [call.headers["idempotency-key"] for call in calls]
    credits = {key: credited(call.json()) for key, call in zip(keys, calls, strict=True)}
    assert all(credited(c.json()) == credits[k] for k, c in zip(keys, calls, strict=True))
    assert all(call.json()["action_id"] == key for key, call in zip(keys, calls, strict=True))
    assert sorted(credits.values(), key=_who) == sorted(map(as_credit, prizes), key=_who)
    assert set(credits) == set(by_id)
    # Once: the one call repeated is the call in flight when the job was killed: its
    # outcome unknown, it is sent again under the same idempotency key (credited once).
    in_flight = keys[HELD_PRIZE_CALL - 1]
    calls_per_prize = Counter(keys)
    expected_calls = {k: 2 if k == in_flight else 1 for k in by_id}
    assert calls_per_prize == expected_calls, f"calls per prize id: {dict(calls_per_prize)}"

    # The action log: a tournament_finished record for each paid place, each prize sent.
    finished_records = {
        (a["payload"]["tournament"], a["player_id"], a["payload"]["rank"])
        for a in actions
        if a["payload"].get("event") == "tournament_finished"
    }
    assert finished_records == {(p.tournament, p.player_id, p.rank) for p in prizes}
    rewards = [a for a in actions if a["kind"] == "reward"]
    assert {a["action_id"] for a in rewards} == set(by_id)
    assert {a["decision"] for a in rewards} == {"sent"}, [
        a for a in rewards if a["decision"] != "sent"
    ]

    # The crashes really replayed: score actions were logged again after a restart, yet
    # the store counted each once.
    scores = Counter(
        a["action_id"] for a in actions if a["payload"].get("event") == "leaderboard_score"
    )
    assert max(scores.values()) > 1
    assert all(stored(store, b["id"]) == finals[b["id"]] for b in BOARDS)
