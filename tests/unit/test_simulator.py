"""The seeded casino firehose: deterministic, valid, causal per player, realistic in mix."""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from pydantic import TypeAdapter, ValidationError

from pipeline.events import ACTIVITY_TYPES, EVENT_TYPES, Event
from pipeline.simulator import ARCHETYPES, SimulatorConfig, simulate, write_jsonl
from pipeline.simulator_poison import POISON_KINDS

EVENTS = TypeAdapter(Event)
Record = dict[str, Any]
CURRENCY_BY_COUNTRY = {
    "GB": "GBP", "SE": "SEK", "NO": "NOK", "CA": "CAD", "BR": "BRL", "NZ": "NZD",
    "DE": "EUR", "FI": "EUR", "IE": "EUR", "AT": "EUR", "EE": "EUR", "MT": "EUR",
}  # fmt: skip


def _ts(record: Record) -> datetime:
    return datetime.fromisoformat(record["ts"])


@pytest.fixture(scope="module")
def run_50k() -> list[Record]:
    return [orjson.loads(r) for r in simulate(SimulatorConfig(seed=7, events=50_000))]


@pytest.fixture(scope="module")
def raw_20k() -> list[bytes]:
    return list(simulate(SimulatorConfig(seed=3, events=20_000)))


def test_same_config_yields_byte_identical_output() -> None:
    config = SimulatorConfig(seed=11, events=5_000, poison_rate=0.02)
    assert list(simulate(config)) == list(simulate(config))


def test_different_seed_yields_different_output() -> None:
    first = list(simulate(SimulatorConfig(seed=1, events=2_000)))
    second = list(simulate(SimulatorConfig(seed=2, events=2_000)))
    assert first != second


@pytest.mark.parametrize("events", [0, 1, 2, 3, 17, 4_999])
@pytest.mark.parametrize("poison_rate", [0.0, 0.1])
def test_produces_exactly_the_configured_number_of_records(events: int, poison_rate: float) -> None:
    config = SimulatorConfig(seed=5, events=events, poison_rate=poison_rate)
    assert sum(1 for _ in simulate(config)) == events


def test_streams_lazily_without_materialising_the_run() -> None:
    # A billion events over a century: state grows with the ~700 players, not the events.
    config = SimulatorConfig(events=10**9, days=36_500)
    records = list(itertools.islice(simulate(config), 1_000))
    assert len(records) == 1_000


def test_write_jsonl_writes_one_record_per_line_and_returns_the_count(tmp_path: Path) -> None:
    config = SimulatorConfig(seed=9, events=3_000, poison_rate=0.01)
    path = tmp_path / "events.jsonl"
    assert write_jsonl(path, config) == 3_000
    assert path.read_bytes().split(b"\n") == [*simulate(config), b""]


def test_every_record_validates_against_the_contract(raw_20k: list[bytes]) -> None:
    events = [EVENTS.validate_json(record) for record in raw_20k]
    assert len({e.event_id for e in events}) == len(events)
    assert {e.type for e in events} >= {"registration", "login", "bet", "win", "deposit"}


def test_records_use_exact_contract_formats(raw_20k: list[bytes]) -> None:
    amount = re.compile(r"^\d+(\.\d{1,2})?$")
    for record in map(orjson.loads, raw_20k):
        assert re.fullmatch(r"e\d{8,}", record["event_id"])
        assert re.fullmatch(r"p\d{6,}", record["player_id"])
        assert re.search(r"(Z|[+-]\d\d:\d\d)$", record["ts"])
        for key in ("amount", "bonus_amount"):
            if key in record:
                assert isinstance(record[key], str) and amount.match(record[key]), record


def test_some_timestamps_carry_an_offset_instead_of_z(run_50k: list[Record]) -> None:
    stamps = [r["ts"] for r in run_50k]
    assert any(s.endswith("Z") for s in stamps)
    assert any(not s.endswith("Z") for s in stamps)


def test_no_record_is_stamped_before_a_mid_day_start_in_another_zone() -> None:
    start = datetime(2026, 3, 2, 13, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    config = SimulatorConfig(events=2_000, start=start, players=50)
    records = [orjson.loads(r) for r in simulate(config)]
    assert min(_ts(r) for r in records) >= start
    assert _ts(records[0]) < start + timedelta(days=1)


def test_timestamps_never_go_backwards(run_50k: list[Record]) -> None:
    times = [_ts(r) for r in run_50k]
    assert all(a <= b for a, b in itertools.pairwise(times))


def test_registration_is_each_players_first_event(run_50k: list[Record]) -> None:
    seen: set[str] = set()
    for record in run_50k:
        if record["player_id"] not in seen:
            assert record["type"] == "registration", record
            seen.add(record["player_id"])
        else:
            assert record["type"] != "registration", record


def test_rounds_and_money_happen_inside_login_logout_sessions(run_50k: list[Record]) -> None:
    open_session: dict[str, str | None] = defaultdict(lambda: None)
    for record in run_50k:
        player, kind = record["player_id"], record["type"]
        if kind == "login":
            assert open_session[player] is None, record
            open_session[player] = record["session_id"]
        elif kind == "logout":
            assert open_session[player] == record["session_id"], record
            open_session[player] = None
        elif kind in {"bet", "win", "deposit", "withdrawal"}:
            assert open_session[player] is not None, record


def test_every_bet_is_settled_by_exactly_one_win_before_the_next_bet(
    run_50k: list[Record],
) -> None:
    open_round: dict[str, str | None] = defaultdict(lambda: None)
    settled: Counter[str] = Counter()
    for record in run_50k:
        player = record["player_id"]
        if record["type"] == "bet":
            assert open_round[player] is None, record
            open_round[player] = record["round_id"]
        elif record["type"] == "win":
            assert open_round[player] == record["round_id"], record
            open_round[player] = None
            settled[record["round_id"]] += 1
    assert all(round_id is None for round_id in open_round.values())
    assert set(settled.values()) == {1}


@pytest.mark.parametrize("seed", range(12))
def test_the_stream_ends_with_every_bet_settled(seed: int) -> None:
    # Many players in session at once, and cut-offs at arbitrary points of their rounds.
    config = SimulatorConfig(seed=seed, events=2_000 + 37 * seed, players=400, days=1)
    records = [orjson.loads(r) for r in simulate(config)]
    assert len(records) == config.events
    bets = [r["round_id"] for r in records if r["type"] == "bet"]
    wins = [r["round_id"] for r in records if r["type"] == "win"]
    assert sorted(bets) == sorted(wins)


def test_players_only_stake_money_they_have(run_50k: list[Record]) -> None:
    # Bonus credit is not in the events, so only the real-money part of a stake counts.
    balance: dict[str, Decimal] = defaultdict(Decimal)
    for record in run_50k:
        player, kind = record["player_id"], record["type"]
        if (kind == "deposit" and record["status"] == "ok") or kind == "win":
            balance[player] += Decimal(record["amount"])
        elif kind == "withdrawal":
            balance[player] -= Decimal(record["amount"])
        elif kind == "bet":
            balance[player] -= Decimal(record["amount"]) - Decimal(record.get("bonus_amount", 0))
        assert balance[player] >= 0, record


def test_return_to_player_is_about_96_percent(run_50k: list[Record]) -> None:
    # Per round return relative to stake, so a few whales do not dominate the estimate.
    stakes = {r["round_id"]: Decimal(r["amount"]) for r in run_50k if r["type"] == "bet"}
    returns = [Decimal(r["amount"]) / stakes[r["round_id"]] for r in run_50k if r["type"] == "win"]
    lost = sum(1 for r in returns if r == 0)
    assert 0.90 < float(sum(returns)) / len(returns) < 1.02
    assert 0.4 < lost / len(returns) < 0.8


def test_registrations_carry_consistent_market_data(run_50k: list[Record]) -> None:
    registrations = [r for r in run_50k if r["type"] == "registration"]
    for record in registrations:
        assert CURRENCY_BY_COUNTRY[record["country"]] == record["currency"]
        ZoneInfo(record["timezone"])  # a real IANA zone
        born = date.fromisoformat(record["birth_date"])
        registered = _ts(record).date()
        assert born.replace(year=born.year + 18) <= registered
        assert set(record["consents"]) == {"email", "sms", "push", "in_app"}
    consents = Counter(v for r in registrations for v in r["consents"].values())
    assert consents[True] > 0 and consents[False] > 0
    assert len({r["channel"] for r in registrations}) >= 3


def test_registrations_spread_over_the_span_with_most_on_day_one(run_50k: list[Record]) -> None:
    first = _ts(run_50k[0])
    days = [(_ts(r) - first).days for r in run_50k if r["type"] == "registration"]
    share_day_one = sum(1 for d in days if d == 0) / len(days)
    assert 0.4 < share_day_one < 0.8
    assert max(days) >= 14


def test_sports_bets_exist_and_fall_mostly_on_local_weekends(run_50k: list[Record]) -> None:
    zones = {r["player_id"]: ZoneInfo(r["timezone"]) for r in run_50k if "timezone" in r}
    sports = [
        _ts(r).astimezone(zones[r["player_id"]])
        for r in run_50k
        if r.get("game_category") == "sports"
    ]
    assert len(sports) > 100
    assert sum(1 for t in sports if t.weekday() >= 5) / len(sports) > 0.7


def test_at_risk_players_set_limits_or_self_exclude(run_50k: list[Record]) -> None:
    kinds = Counter(r["type"] for r in run_50k)
    assert kinds["limit_change"] + kinds["self_exclusion"] > 0
    assert max(Counter(r["player_id"] for r in run_50k if r["type"] == "deposit").values()) > 10


def test_some_players_register_and_never_deposit(run_50k: list[Record]) -> None:
    end = _ts(run_50k[-1])
    registered = {
        r["player_id"] for r in run_50k if r["type"] == "registration"
        and _ts(r) < end - timedelta(days=3)
    }  # fmt: skip
    depositors = {r["player_id"] for r in run_50k if r["type"] == "deposit"}
    assert len(registered - depositors) >= 2


def test_some_players_go_quiet_for_more_than_seven_days(run_50k: list[Record]) -> None:
    end = _ts(run_50k[-1])
    last_activity: dict[str, datetime] = {}
    for record in run_50k:
        if record["type"] in ACTIVITY_TYPES:
            last_activity[record["player_id"]] = _ts(record)
    quiet = [p for p, t in last_activity.items() if end - t > timedelta(days=7)]
    assert len(quiet) >= 2


def test_low_rate_events_appear(run_50k: list[Record]) -> None:
    kinds = Counter(r["type"] for r in run_50k)
    for kind in ("bonus_redeemed", "withdrawal", "consent_change", "profile_update"):
        assert 0 < kinds[kind] < 0.02 * len(run_50k), kind


def test_archetype_weights_form_a_population() -> None:
    assert len({a.name for a in ARCHETYPES}) == len(ARCHETYPES) >= 7
    assert sum(a.weight for a in ARCHETYPES) == pytest.approx(1.0)


def _poison_kind(record: bytes) -> str:
    try:
        value = orjson.loads(record)
    except orjson.JSONDecodeError:
        return "not_json"
    if not isinstance(value, dict):
        return "not_object"
    if value.get("type") not in EVENT_TYPES:
        return "unknown_type"
    if datetime.fromisoformat(value["ts"]).tzinfo is None:
        return "naive_ts"
    try:
        EVENTS.validate_python(value)
    except ValidationError as exc:
        return "missing_field" if exc.errors()[0]["type"] == "missing" else "wrong_type"
    return "valid"


def test_poison_rate_is_respected_and_every_poison_record_is_invalid() -> None:
    records = list(simulate(SimulatorConfig(seed=13, events=20_000, poison_rate=0.05)))
    kinds = Counter(_poison_kind(r) for r in records)
    poisoned = len(records) - kinds["valid"]
    assert 800 < poisoned < 1_200
    assert set(kinds) == {"valid", *POISON_KINDS}


def test_poison_leaves_the_good_records_causal() -> None:
    config = SimulatorConfig(seed=13, events=20_000, poison_rate=0.2)
    good = [orjson.loads(r) for r in simulate(config) if _poison_kind(r) == "valid"]
    open_round: dict[str, str | None] = defaultdict(lambda: None)
    seen: set[str] = set()
    for record in good:
        player = record["player_id"]
        assert (player in seen) == (record["type"] != "registration"), record
        seen.add(player)
        if record["type"] == "bet":
            assert open_round[player] is None
            open_round[player] = record["round_id"]
        elif record["type"] == "win":
            assert open_round.pop(player) == record["round_id"]
    assert all(round_id is None for round_id in open_round.values())
