"""The starter pack in config/: it validates, it runs, and its decisions depend on nothing
but the events (not batching, watermark lag, snapshots or a configuration reload)."""

from __future__ import annotations

import pickle
from functools import cache
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.actions import Action
from operators.campaigns import (
    CampaignRules,
    CampaignSet,
    campaign_rows,
    check_config,
    load_campaigns,
    swap_rules,
)
from operators.engine import PlayerShard
from tests.support.campaign_config import of, replay, rules_for, statuses
from tests.support.scenario import Script, day, epoch, random_step

CONFIG = Path(__file__).resolve().parents[2] / "config"
STARTER_PACK = {
    "welcome_series",
    "first_deposit_upsell",
    "first_deposit_nudge",
    "reactivation_7d",
    "reactivation_30d",
    "lapsed_deposit_match",
    "loss_streak_cashback",
    "weekly_cashback",
    "vip_upgrade",
    "level_up_spins",
    "birthday_bonus",
    "weekend_reload",
}


@cache
def starter_pack() -> CampaignSet:
    return load_campaigns(CONFIG)


def test_the_starter_pack_is_valid() -> None:
    assert check_config(CONFIG) == []
    campaigns = starter_pack()
    assert {c.id for c in campaigns.campaigns} == STARTER_PACK
    assert len(campaigns.version) == 12 and int(campaigns.version, 16) >= 0


def test_a_new_player_walks_through_welcome_first_deposit_and_reactivation() -> None:
    rules = CampaignRules(starter_pack())
    s = Script().register("p1", birth_date="1990-03-20", locale="ru")
    s.at(days=2).deposit("p1", "50")  # qualifies for the welcome match, ends the welcome series
    for _ in range(3):
        s.after(minutes=1).round("p1", "2.00", "0", category="live")
    actions = replay(s, rules, final=day(40))
    assert statuses(actions, "welcome_series")[:3] == [
        ("welcome_series", "activated"),
        ("welcome_series/welcome", "notified"),
        ("welcome_series/welcome", "wagering"),
    ]
    assert ("welcome_series", "exited") in statuses(actions, "welcome_series")
    (match,) = of(actions, "welcome_series", "wallet")
    assert (match.payload["amount"], match.cost, match.currency) == ("50.00", 500_000, "EUR")
    welcome = of(actions, "welcome_series", "email")[0]
    assert welcome.payload["locale"] == "ru" and "100%" in welcome.payload["rendered"]["subject"]
    assert of(actions, "first_deposit_upsell", "wallet")[0].payload["count"] == 20
    reactivation = of(actions, "reactivation_7d")
    assert [epoch(a.decided_at) for a in reactivation] == [epoch(s.now) + 7 * 86_400]
    assert "live" in reactivation[0].payload["rendered"]["title"]
    assert [a.payload["reward_type"] for a in of(actions, "birthday_bonus", "wallet")] == [
        "bonus_credit"
    ]
    assert {a.campaign_version for a in actions} == {rules.version}


def test_campaign_rows_have_the_same_columns_for_every_player() -> None:
    shard = PlayerShard(rules=[CampaignRules(starter_pack())])
    s = Script().register("p1").deposit("p1").round("p1", "1.00", "0").register("p2")
    shard.process(s.events())
    shard.process(Script().at(days=1).login("p3").events())
    rows = [campaign_rows(state) for state in shard.players.values()]
    assert len({tuple(row) for row in rows}) == 1
    assert rows[0]["campaigns_live"] is not None and rows[2]["campaigns_live"] is None


# -- determinism ----------------------------------------------------------------------------


@st.composite
def populations(draw: st.DrawFn) -> Script:
    """Random players doing random things at random times, in time order."""
    s = Script()
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(0, 4),  # player
                st.sampled_from(
                    ["register", "login", "deposit", "lose", "win", "big", "vip", "code", "cash"]
                ),
                st.integers(0, 5 * 86_400),  # seconds since the previous step
            ),
            min_size=1,
            max_size=50,
        )
    )
    for player, what, gap in steps:
        if random_step(s, player, what, gap, losses=12):
            continue
        if what == "big":
            s.round(f"p{player}", "20.00", "0")
        else:
            s.add("withdrawal", f"p{player}", amount="10", currency="EUR")
    return s


def _canonical(actions: list[Action]) -> list[str]:
    return sorted(a.model_dump_json() for a in actions)


@settings(max_examples=40, deadline=None)
@given(s=populations(), chunk=st.integers(1, 25), lag=st.integers(0, 5 * 86_400))
def test_the_starter_pack_decides_the_same_whatever_the_batching_and_lag(
    s: Script, chunk: int, lag: int
) -> None:
    campaigns = starter_pack()
    end = epoch(s.now) + 60 * 86_400
    one_by_one = PlayerShard(rules=[CampaignRules(campaigns)])
    reference: list[Action] = []
    for pair in s.events():
        reference += one_by_one.process([pair])
        reference += one_by_one.advance(pair[0])
    reference += one_by_one.advance(end)
    batched = replay(s, CampaignRules(campaigns), chunk=chunk, lag=lag, final=end)
    assert _canonical(batched) == _canonical(reference)
    assert len({a.action_id for a in batched}) == len(batched)  # nothing decided twice


def test_a_restored_snapshot_carries_on_exactly_where_it_stopped() -> None:
    s = Script().register("p1").deposit("p1", "50").at(days=1).round("p1", "5.00", "0")
    s.at(days=3).deposit("p1", "20").at(days=20).login("p1")
    events = s.events()
    straight = replay(s, CampaignRules(starter_pack()), final=day(60))
    shard = PlayerShard(rules=[CampaignRules(starter_pack())])
    first = shard.process(events[:3]) + shard.advance(events[2][0])
    restored: PlayerShard = pickle.loads(pickle.dumps(shard))
    restored.with_rules([CampaignRules(starter_pack())])
    rest = restored.process(events[3:]) + restored.advance(events[-1][0])
    rest += restored.advance(day(60))
    assert _canonical(first + rest) == _canonical(straight)


# -- hot reload -----------------------------------------------------------------------------

BEFORE = """
campaigns:
  - id: drip
    trigger: {on: event, events: registration}
    journey:
      steps:
        - id: one
          message: {template: note, channels: [email]}
        - id: two
          wait: 2d
          message: {template: note, channels: [email]}
"""
AFTER = (
    BEFORE
    + """
  - id: idle_day
    trigger: {on: time, after: inactivity, wait: 1d}
    message: {template: note, channels: [in_app]}
"""
)


def test_a_reload_keeps_journeys_going_and_new_campaigns_do_not_fire_retroactively(
    tmp_path: Path,
) -> None:
    old = rules_for(tmp_path / "v1", BEFORE)
    new = rules_for(tmp_path / "v2", AFTER)
    assert old.version != new.version
    s = Script().register("p1").register("p2").at(days=1).login("p2")
    shard = PlayerShard(rules=[old])
    actions = shard.process(s.events()) + shard.advance(day(1) + 3_600)
    swap_rules(shard, [new])  # p1 has been idle for a day already, p2 for an hour
    actions += shard.advance(day(10))
    assert statuses(actions, "drip") == [
        ("drip", "activated"),
        ("drip", "activated"),
        ("drip", "completed"),
        ("drip", "completed"),
    ]
    steps = [(a.player_id, a.campaign_version) for a in of(actions, "drip", "email")]
    assert steps == [
        ("p1", old.version),
        ("p2", old.version),
        ("p1", new.version),  # step two, under the new configuration
        ("p2", new.version),
    ]
    idle = [(a.player_id, epoch(a.decided_at)) for a in of(actions, "idle_day")]
    assert idle == [("p2", day(2))]  # p1's idle day passed before the reload
