"""The player operator without Bytewax: given events, expect actions (and non-actions)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.actions import Action, derive_action_id
from operators.engine import PlayerShard
from tests.support.scenario import Script, by_campaign, day, epoch


def run(script: Script, *, final: int | None = None, chunk: int = 10_000) -> list[Action]:
    """Feed the script in chunks, moving the watermark to each chunk's newest time."""
    shard = PlayerShard()
    events = script.events()
    actions: list[Action] = []
    for i in range(0, len(events), chunk):
        part = events[i : i + chunk]
        actions += shard.process(part)
        actions += shard.advance(max(ts for ts, _ in part))
    if final is not None:
        actions += shard.advance(final)
    return actions


def test_registration_gets_one_welcome_message_in_the_players_locale() -> None:
    s = Script().register("p1", locale="ru").login("p1").register("p1")
    welcome = by_campaign(run(s))["welcome"]
    assert len(welcome) == 1
    assert welcome[0].payload == {"template_id": "welcome", "locale": "ru"}
    assert welcome[0].channel == "email" and welcome[0].decision == "sent"
    assert welcome[0].action_id == derive_action_id("welcome", "p1", "registration")


def test_first_deposit_is_rewarded_once_and_later_deposits_are_not() -> None:
    s = Script().register("p1").after(hours=1).deposit("p1").after(hours=1).deposit("p1")
    rewards = by_campaign(run(s))["first_deposit"]
    assert len(rewards) == 1
    assert rewards[0].event_id == "e2"
    assert rewards[0].kind == "reward"


def test_loss_streak_fires_when_the_fifth_consecutive_round_is_lost() -> None:
    s = Script().register("p1").deposit("p1")
    for _ in range(4):
        s.after(seconds=5).round("p1", "1.00", "0")
    s.after(seconds=5).round("p1", "1.00", "2.00")  # a win resets the streak
    for _ in range(4):
        s.after(seconds=5).round("p1", "1.00", "0")
    assert "loss_streak_5" not in by_campaign(run(s))
    s.after(seconds=5).round("p1", "1.00", "0")
    fired = by_campaign(run(s))["loss_streak_5"]
    assert len(fired) == 1
    assert fired[0].event_id == s.records[-1]["event_id"]


def test_inactivity_fires_exactly_seven_days_after_the_last_activity_and_not_before() -> None:
    s = Script().register("p1").after(hours=1).deposit("p1").after(hours=1).login("p1")
    last_activity = epoch(s.now)
    s.at(days=7, hours=1, minutes=59).register("p2")  # other players move time on
    assert "inactive_7d" not in by_campaign(run(s))
    s.at(days=7, hours=2).register("p3")
    fired = by_campaign(run(s))["inactive_7d"]
    assert [a.player_id for a in fired] == ["p1"]
    assert epoch(fired[0].decided_at) == last_activity + 7 * 86_400


def test_a_returning_player_after_a_long_gap_is_still_counted_inactive_at_the_deadline() -> None:
    # All in one batch: the player's own next event proves the deadline passed.
    s = Script().register("p1").deposit("p1").at(days=10).login("p1")
    fired = by_campaign(run(s))["inactive_7d"]
    assert len(fired) == 1
    assert epoch(fired[0].decided_at) == day(7)


def test_inactivity_fires_once_per_quiet_spell() -> None:
    s = Script().register("p1").deposit("p1").at(days=8).login("p1").at(days=20).login("p1")
    fired = by_campaign(run(s, final=day(40)))["inactive_7d"]
    assert [epoch(a.decided_at) for a in fired] == [day(7), day(15), day(27)]
    assert len({a.action_id for a in fired}) == 3


def test_no_deposit_nudge_fires_three_days_after_registration_without_a_deposit() -> None:
    s = Script().register("p1").register("p2").after(hours=1).deposit("p2")
    s.at(days=2, hours=23).login("p3")
    assert "no_deposit_3d" not in by_campaign(run(s))
    fired = by_campaign(run(s, final=day(3)))["no_deposit_3d"]
    assert [a.player_id for a in fired] == ["p1"]
    assert epoch(fired[0].decided_at) == day(3)


def test_a_deposit_after_the_deadline_does_not_cancel_the_nudge_already_due() -> None:
    s = Script().register("p1").at(days=4).deposit("p1")
    fired = by_campaign(run(s))["no_deposit_3d"]
    assert len(fired) == 1 and epoch(fired[0].decided_at) == day(3)


def test_self_excluded_players_are_suppressed_until_they_return_after_the_end() -> None:
    s = Script().register("p1").deposit("p1")
    s.add("self_exclusion", "p1", until=(s.now.replace(day=10)).isoformat())
    s.at(days=20).register("p2")  # p1's inactivity comes due while excluded
    fired = by_campaign(run(s))["inactive_7d"]
    assert [a.decision for a in fired] == ["suppressed:self_excluded"]


def test_a_channel_without_consent_is_suppressed_not_dropped() -> None:
    s = Script().register("p1", consents={"email": False, "sms": True})
    welcome = by_campaign(run(s))["welcome"]
    assert [a.decision for a in welcome] == ["suppressed:no_consent"]


def test_unsubscribe_withdraws_consent_for_that_channel() -> None:
    s = Script().register("p1").add("unsubscribed", "p1", action_id="a-1", channel="email")
    s.at(days=3).login("p9")
    nudge = by_campaign(run(s))["no_deposit_3d"]
    assert [a.decision for a in nudge] == ["suppressed:no_consent"]


def _population() -> Script:
    s = Script()
    for p in range(6):
        s.at(hours=p).register(f"p{p}")
    s.at(days=1).deposit("p0").deposit("p1")
    for i in range(6):
        s.at(days=2, minutes=i).round("p0", "1.00", "0")
    s.at(days=5).login("p1").at(days=9).login("p2").at(days=13).deposit("p3").login("p1")
    s.at(days=16).login("p4").at(days=30).login("p5")
    return s


@settings(max_examples=60, deadline=None)
@given(chunk=st.integers(min_value=1, max_value=40), lateness=st.integers(0, 3 * 86_400))
def test_actions_do_not_depend_on_batching_or_watermark_lag(chunk: int, lateness: int) -> None:
    s = _population()
    reference = run(s, final=day(40))
    shard = PlayerShard()
    events = s.events()
    got: list[Action] = []
    for i in range(0, len(events), chunk):
        part = events[i : i + chunk]
        got += shard.process(part)
        got += shard.advance(max(ts for ts, _ in part) - lateness)
    got += shard.advance(day(40))
    assert sorted(a.model_dump_json() for a in got) == sorted(
        a.model_dump_json() for a in reference
    )


@st.composite
def populations(draw: st.DrawFn) -> Script:
    """Random players doing random things at random times, in time order."""
    s = Script()
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(0, 5),  # player
                st.sampled_from(["register", "login", "deposit", "lose", "win", "consent"]),
                st.integers(0, 4 * 86_400),  # seconds since the previous step
            ),
            min_size=1,
            max_size=60,
        )
    )
    for player, what, gap in steps:
        s.after(seconds=gap)
        pid = f"p{player}"
        if what == "register":
            s.register(pid)
        elif what == "login":
            s.login(pid)
        elif what == "deposit":
            s.deposit(pid)
        elif what == "lose":
            s.round(pid, "1.00", "0")
        elif what == "win":
            s.round(pid, "1.00", "3.00")
        else:
            s.add("consent_change", pid, channel="email", granted=gap % 2 == 0)
    return s


@settings(max_examples=200, deadline=None)
@given(s=populations(), chunk=st.integers(1, 25), lag=st.integers(0, 5 * 86_400))
def test_random_populations_give_the_same_actions_whatever_the_batching(
    s: Script, chunk: int, lag: int
) -> None:
    end = epoch(s.now) + 30 * 86_400
    one_by_one = PlayerShard()
    reference: list[Action] = []
    for pair in s.events():
        reference += one_by_one.process([pair])
        reference += one_by_one.advance(pair[0])
    reference += one_by_one.advance(end)

    batched = PlayerShard()
    events = s.events()
    got: list[Action] = []
    for i in range(0, len(events), chunk):
        part = events[i : i + chunk]
        got += batched.process(part)
        got += batched.advance(max(ts for ts, _ in part) - lag)
    got += batched.advance(end)
    assert sorted(a.model_dump_json() for a in got) == sorted(
        a.model_dump_json() for a in reference
    )
    assert len({a.action_id for a in got}) == len(got)  # no action decided twice


def test_a_deadline_later_in_the_watermarks_own_minute_still_fires_when_reached() -> None:
    shard = PlayerShard()
    s = Script().after(seconds=30).register("p1")
    shard.process(s.events())
    registered = epoch(s.now)
    assert shard.advance(registered + 3 * 86_400 - 20) == []  # same timer bucket, not due
    fired = shard.advance(registered + 3 * 86_400 + 5)
    assert [a.campaign_id for a in fired] == ["no_deposit_3d"]


def test_a_duplicated_event_is_counted_and_not_folded_again() -> None:
    s = Script().register("p1").deposit("p1", "50.00")
    s.records.append(dict(s.records[-1]))  # the same deposit, redelivered
    shard = PlayerShard()
    actions = shard.process(s.events())
    assert shard.stats.duplicate_events == 1
    assert shard.players["p1"].deposit_count == 1
    assert [a.campaign_id for a in actions].count("first_deposit") == 1


def test_recent_event_ids_are_forgotten_for_players_quiet_past_the_window() -> None:
    shard = PlayerShard(dedup_window=600)
    s = Script().register("p1").at(hours=2).register("p2")
    shard.process(s.events())
    shard.advance(epoch(s.now))
    assert set(shard.recent_ids) == {"p2"}


@settings(max_examples=150, deadline=None)
@given(
    s=populations(),
    data=st.data(),
    lateness=st.integers(60, 1800),
    chunk=st.integers(1, 20),
)
def test_shuffled_and_duplicated_events_give_the_event_time_result_in_ordered_mode(
    s: Script, data: st.DataObject, lateness: int, chunk: int
) -> None:
    # Timestamps made distinct so that the event-time order is unambiguous.
    events = [(ts + i, e) for i, (ts, e) in enumerate(s.events())]
    end = max(ts for ts, _ in events) + 30 * 86_400
    reference = PlayerShard()
    expected: list[Action] = []
    for pair in events:
        expected += reference.process([pair])
        expected += reference.advance(pair[0])
    expected += reference.advance(end)

    # Each event (and some duplicates) arrives up to `lateness` seconds late.
    delay = st.integers(0, lateness)
    arrivals = [(pair[0] + data.draw(delay), i, pair) for i, pair in enumerate(events)]
    for i in data.draw(st.lists(st.integers(0, len(events) - 1), max_size=5)):
        arrivals.append((events[i][0] + data.draw(delay), len(arrivals), events[i]))
    arrivals.sort()
    shard = PlayerShard(ordered=True)
    got: list[Action] = []
    newest = -(2**62)
    for start in range(0, len(arrivals), chunk):
        part = [pair for _, _, pair in arrivals[start : start + chunk]]
        got += shard.process(part)
        newest = max(newest, *(ts for ts, _ in part))
        got += shard.advance(newest - lateness)
    got += shard.advance(end)
    assert sorted(a.model_dump_json() for a in got) == sorted(a.model_dump_json() for a in expected)
    assert shard.stats.late_events == 0
