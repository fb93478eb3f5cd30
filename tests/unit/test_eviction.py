"""Evicting lapsed players: given the same events, a shard that evicts and restores decides
exactly what a shard that keeps everyone in memory decides, deadlines included."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.campaigns import swap_rules
from operators.engine import PlayerShard
from operators.eviction import (
    ColdPlayer,
    ColdStoreError,
    EvictedStateError,
    Eviction,
    MemoryColdStore,
    pack,
    unpack,
)
from operators.player_state import DAY
from operators.triggers import FirstTriggers, TriggerSettings
from tests.support.campaign_config import rules_for
from tests.support.eviction import FlakyStore, canonical, feed, rows, starter_pack
from tests.support.scenario import Script, by_campaign, day, epoch, random_step

HOUR = 3600


def _shards(
    after: int = 2 * DAY, sweep: int = HOUR, store: MemoryColdStore | FlakyStore | None = None
) -> tuple[PlayerShard, PlayerShard, MemoryColdStore | FlakyStore]:
    """(keeps everyone, evicts) over the starter pack."""
    rules = starter_pack()
    cold = store if store is not None else MemoryColdStore(retention_seconds=0)
    keeps = PlayerShard(rules=rules.rule_sets, guards=rules.guards)
    evicts = PlayerShard(rules=rules.rule_sets, guards=rules.guards)
    evicts.with_eviction(Eviction(cold, after, sweep))
    return keeps, evicts, cold


def _returning_player() -> Script:
    s = Script().register("p1", birth_date="1990-03-20").deposit("p1", "50")
    for _ in range(3):
        s.after(minutes=1).round("p1", "2.00", "0", category="live")
    s.register("p2").deposit("p2", "20")
    s.at(days=45).login("p1").deposit("p1", "30").after(minutes=2).round("p1", "5.00", "12.00")
    s.at(days=50).login("p3")  # keeps event time moving
    return s


def test_a_lapsed_player_leaves_memory_and_comes_back_as_if_never_gone() -> None:
    keeps, evicts, store = _shards()
    s = _returning_player()
    events = s.events()
    first = [pair for pair in events if pair[0] < day(45)]
    reference = feed(keeps, first, chunk=3)
    actions = feed(evicts, first, chunk=3, final=day(40))
    reference += keeps.advance(day(40))
    assert set(evicts.evicted) == {"p1", "p2"} and evicts.players == {}
    assert isinstance(store, MemoryColdStore) and len(store) == 2
    rest = events[len(first) :]
    reference += feed(keeps, rest, chunk=2, final=day(80))
    actions += feed(evicts, rest, chunk=2, final=day(80))
    assert evicts.restores >= 1
    assert canonical(actions) == canonical(reference)
    assert rows(evicts, day(80)) == rows(keeps, day(80))


def test_a_30_day_win_back_fires_on_time_for_an_evicted_player() -> None:
    keeps, evicts, _ = _shards(after=10 * DAY)
    s = Script().register("p1").deposit("p1", "50").after(days=1).deposit("p1", "20")
    s.after(minutes=5).round("p1", "2.00", "0")
    last_activity = epoch(s.now)
    reference = feed(keeps, s.events(), final=day(20))
    actions = feed(evicts, s.events(), final=day(20))
    assert "p1" in evicts.evicted  # lapsed for 10 days, the next deadline weeks away
    reference += keeps.advance(day(70))
    actions += evicts.advance(day(70))
    win_back = by_campaign(actions)["reactivation_30d"]
    assert [epoch(a.decided_at) for a in win_back if a.channel != "lifecycle"][:1] == [
        last_activity + 30 * DAY
    ]
    assert canonical(actions) == canonical(reference)
    assert evicts.restores >= 1
    assert rows(evicts, day(70)) == rows(keeps, day(70))


def test_a_deadline_of_an_evicted_player_fires_with_the_first_triggers_too() -> None:
    # No deposit after 3 days: a nudge. The player is evicted after one quiet day.
    store = MemoryColdStore(retention_seconds=0)
    evicts = PlayerShard(rules=[FirstTriggers(TriggerSettings())])
    evicts.with_eviction(Eviction(store, DAY, 60))
    keeps = PlayerShard(rules=[FirstTriggers(TriggerSettings())])
    s = Script().register("p1").at(days=1, hours=2).login("p2")
    actions = feed(evicts, s.events())
    reference = feed(keeps, s.events())
    assert "p1" in evicts.evicted
    actions += evicts.advance(day(4))
    reference += keeps.advance(day(4))
    (nudge,) = by_campaign(actions)["no_deposit_3d"]
    assert epoch(nudge.decided_at) == day(3)
    assert canonical(actions) == canonical(reference)


def test_a_player_with_a_deadline_before_the_next_sweep_stays_in_memory() -> None:
    evicts = PlayerShard(rules=[FirstTriggers(TriggerSettings(no_deposit_seconds=3 * DAY))])
    evicts.with_eviction(Eviction(MemoryColdStore(), 2 * DAY, DAY))
    evicts.process(Script().register("p1").events())
    evicts.advance(day(2) + 60)  # quiet for two days, the nudge due within the next day
    assert "p1" in evicts.players and not evicts.evicted


def test_players_active_within_evict_after_are_not_evicted() -> None:
    _, evicts, _ = _shards(after=30 * DAY)
    feed(evicts, Script().register("p1").at(days=20).login("p1").at(days=45).login("p2").events())
    assert "p1" in evicts.players and "p1" not in evicts.evicted


def test_an_unreachable_store_on_restore_raises_and_leaves_the_shard_unchanged() -> None:
    flaky = FlakyStore(MemoryColdStore(retention_seconds=0))
    keeps, evicts, _ = _shards(store=flaky)
    s = _returning_player()
    events = s.events()
    first = [pair for pair in events if pair[0] < day(45)]
    reference = feed(keeps, first, final=day(40))
    actions = feed(evicts, first, final=day(40))
    watermark, evicted, resident = evicts.watermark, dict(evicts.evicted), set(evicts.players)
    rest = events[len(first) :]
    flaky.fail_reads = True
    with pytest.raises(ColdStoreError):
        evicts.process(rest)
    with pytest.raises(ColdStoreError):  # a deadline of an evicted player: same
        evicts.advance(day(200))
    assert (evicts.watermark, evicts.evicted, set(evicts.players)) == (
        watermark,
        evicted,
        resident,
    )
    flaky.fail_reads = False  # the store is back: carry on, nothing lost
    reference += feed(keeps, rest, final=day(80))
    actions += feed(evicts, rest, final=day(80))
    assert canonical(actions) == canonical(reference)


def test_an_unreachable_store_when_evicting_keeps_players_in_memory_until_it_is_back() -> None:
    flaky = FlakyStore(MemoryColdStore(retention_seconds=0))
    flaky.fail_writes = True
    _, evicts, _ = _shards(store=flaky)
    feed(evicts, Script().register("p1").at(days=5).login("p2").events())
    assert "p1" in evicts.players and evicts.evictions == 0
    flaky.fail_writes = False
    evicts.advance(day(5) + HOUR)
    assert evicts.evicted == {"p1": 0}


def test_a_missing_state_is_an_error_not_a_new_player() -> None:
    _, evicts, store = _shards()
    feed(evicts, Script().register("p1").at(days=5).login("p2").events())
    assert "p1" in evicts.evicted
    store.dispose_many([("p1", evicts.evicted["p1"])])  # retention 0: gone
    with pytest.raises(EvictedStateError, match="'p1'"):
        evicts.process(Script().at(days=6).login("p1").events())
    assert "p1" in evicts.evicted and "p1" not in evicts.players


def test_a_duplicate_of_an_event_from_before_eviction_is_still_recognised() -> None:
    # Evicted within the dedup window: the recent ids travel with the state.
    store = MemoryColdStore(retention_seconds=0)
    evicts = PlayerShard(dedup_window=3600)
    evicts.with_eviction(Eviction(store, 60, 60))
    keeps = PlayerShard(dedup_window=3600)
    s = Script().register("p1").deposit("p1").after(minutes=5).login("p2")
    replayed = s.events()[1]
    for shard in (keeps, evicts):
        feed(shard, s.events())
    assert "p1" in evicts.evicted
    for shard in (keeps, evicts):
        shard.process([replayed])
    assert evicts.stats.duplicate_events == keeps.stats.duplicate_events == 1
    assert evicts.players["p1"].deposit_count == keeps.players["p1"].deposit_count == 1


def test_the_snapshot_holds_the_index_but_not_the_store() -> None:
    _, evicts, store = _shards()
    feed(evicts, Script().register("p1").at(days=5).login("p2").events())
    restored: PlayerShard = pickle.loads(pickle.dumps(evicts))  # the store has a lock
    assert restored.evicted == evicts.evicted and restored.evictions == evicts.evictions
    assert restored.cold_store is None
    with pytest.raises(EvictedStateError, match="no cold store"):
        restored.process(Script().at(days=6).login("p1").events())
    restored.with_eviction(Eviction(store, 2 * DAY))
    restored.process(Script().at(days=6).login("p1").events())
    assert "p1" in restored.players


def test_turning_eviction_off_while_players_are_evicted_is_refused() -> None:
    _, evicts, _ = _shards()
    feed(evicts, Script().register("p1").at(days=5).login("p2").events())
    with pytest.raises(EvictedStateError, match="1 evicted players"):
        evicts.with_eviction(None)


def test_restore_only_brings_players_back_but_evicts_nobody_new() -> None:
    _, evicts, store = _shards()
    feed(evicts, Script().register("p1").at(days=5).login("p2").events())
    evicts.with_eviction(Eviction(store, None))
    feed(evicts, Script().at(days=6).login("p1").at(days=40).login("p3").events())
    assert set(evicts.players) == {"p1", "p2", "p3"} and not evicts.evicted


def test_a_snapshot_from_before_eviction_existed_still_loads() -> None:
    shard = PlayerShard()
    shard.process(Script().register("p1").events())
    old_layout = shard.__getstate__()[:9]
    restored = PlayerShard.__new__(PlayerShard)
    restored.__setstate__(old_layout)
    assert set(restored.players) == {"p1"} and restored.evicted == {}
    assert restored.evictions == 0


def test_a_blob_is_compact_and_reads_back() -> None:
    _, evicts, _ = _shards()
    feed(evicts, _returning_player().events()[:6])
    state = evicts.players["p1"]
    blob = pack(ColdPlayer(state, None, 0))
    # Campaigns and gamification included: about 850 bytes, 40% of the plain pickle.
    assert len(blob) < min(1024, len(pickle.dumps(state)) // 2)
    back = unpack(blob, "p1")
    assert back.state.n == state.n
    assert pickle.dumps(back.state.extra) == pickle.dumps(state.extra)
    with pytest.raises(EvictedStateError, match="unreadable"):
        unpack(b"not a blob", "p1")


def test_every_player_includes_the_evicted_ones_without_restoring_them() -> None:
    _, evicts, _ = _shards()
    feed(evicts, Script().register("p1").at(days=5).login("p2").events())
    assert {state.player_id for state in evicts.every_player()} == {"p1", "p2"}
    assert "p1" in evicts.evicted and evicts.restores == 0


def test_the_observer_hears_evictions_restores_and_the_cold_count() -> None:
    heard: list[tuple[str, int]] = []

    class Observer:
        def evicted(self, count: int) -> None:
            heard.append(("evicted", count))

        def restored(self, count: int) -> None:
            heard.append(("restored", count))

        def cold_players(self, count: int) -> None:
            heard.append(("cold", count))

    shard = PlayerShard(rules=[])  # no deadlines: only events bring players back
    shard.with_eviction(Eviction(MemoryColdStore(), DAY), Observer())
    s = Script().register("p1").register("p2").at(days=2).login("p3").at(days=3).login("p1")
    feed(shard, s.events(), chunk=1)
    assert heard == [("cold", 0), ("evicted", 2), ("cold", 2), ("restored", 1), ("cold", 1)]


# -- a hot reload while players are evicted ----------------------------------------------

BEFORE = """
campaigns:
  - id: hello
    trigger: {on: event, events: registration}
    message: {template: note, channels: [email]}
"""
AFTER = (
    BEFORE
    + """
  - id: idle_week
    trigger: {on: time, after: inactivity, wait: 7d}
    message: {template: note, channels: [in_app]}
"""
)


def test_players_evicted_before_a_reload_get_the_new_deadlines_when_they_return(
    tmp_path: Path,
) -> None:
    before = rules_for(tmp_path / "before", BEFORE)
    after = rules_for(tmp_path / "after", AFTER)
    keeps = PlayerShard(rules=[before])
    evicts = PlayerShard(rules=[before])
    evicts.with_eviction(Eviction(MemoryColdStore(retention_seconds=0), 2 * DAY, HOUR))
    s = Script().register("p1").login("p1").at(days=3).login("p2")
    reference = feed(keeps, s.events())
    actions = feed(evicts, s.events())
    assert "p1" in evicts.evicted
    swap_rules(keeps, [after])  # at day 3: p1's week of inactivity ends on day 7
    swap_rules(evicts, [after])
    later = Script().at(days=20).login("p1").at(days=21).login("p2").events()
    reference += feed(keeps, later, final=day(40))
    actions += feed(evicts, later, final=day(40))
    assert canonical(actions) == canonical(reference)
    assert rows(evicts, day(40)) == rows(keeps, day(40))


# -- random streams ------------------------------------------------------------------------


@st.composite
def populations(draw: st.DrawFn) -> Script:
    """A few players doing random things, with quiet spells long enough to be evicted."""
    s = Script()
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(0, 5),  # player
                st.sampled_from(
                    ["register", "login", "deposit", "lose", "win", "vip", "code", "again"]
                ),
                st.integers(0, 9 * DAY),  # seconds since the previous step
            ),
            min_size=1,
            max_size=40,
        )
    )
    for player, what, gap in steps:
        if not random_step(s, player, what, gap, losses=7) and s.records:
            s.records.append(dict(s.records[gap % len(s.records)]))  # a duplicate delivery
    return s


@settings(max_examples=60, deadline=None)
@given(
    s=populations(),
    chunk=st.integers(1, 12),
    lag=st.integers(0, DAY),
    after=st.integers(HOUR, 10 * DAY),
    sweep=st.integers(60, 2 * DAY),
)
def test_evicting_never_changes_a_decision_or_a_state(
    s: Script, chunk: int, lag: int, after: int, sweep: int
) -> None:
    keeps, evicts, _ = _shards(after=after, sweep=sweep)
    end = epoch(s.now) + 60 * DAY
    events = sorted(s.events(), key=lambda pair: pair[0])
    reference = feed(keeps, events, chunk=chunk, lag=lag, final=end)
    actions = feed(evicts, events, chunk=chunk, lag=lag, final=end)
    assert canonical(actions) == canonical(reference)
    assert rows(evicts, end) == rows(keeps, end)
    assert evicts.stats.duplicate_events == keeps.stats.duplicate_events


def test_the_random_streams_do_evict_and_restore() -> None:
    """The property above is not vacuous: such streams evict and bring players back."""
    _, evicts, _ = _shards(after=DAY, sweep=HOUR)
    s = Script()
    for n in range(30):
        s.at(days=n * 2).register(f"p{n}").deposit(f"p{n}", "30")
        s.after(hours=1).login(f"p{n // 2}")
    feed(evicts, s.events(), chunk=5, final=day(120))
    assert evicts.evictions > 30 and evicts.restores > 10
