"""The job's metrics: the batch histogram exports what the client's Histogram would."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from operators.actions import Action, ActionKind
from pipeline.metrics import LATENCY_BUCKETS, BatchHistogram, Metrics

T0 = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name.startswith(name) and not s.name.endswith("_created")
    }


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from(LATENCY_BUCKETS),  # on a bound: counts in that bucket (le)
                st.floats(min_value=0, max_value=30, allow_nan=False),
            ),
            st.integers(min_value=1, max_value=50),
        ),
        max_size=20,
    )
)
def test_a_batch_histogram_exports_what_the_clients_histogram_would(
    observations: list[tuple[float, int]],
) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batched = BatchHistogram("latency_seconds", "doc", LATENCY_BUCKETS, ours)
    one_by_one = Histogram("latency_seconds", "doc", buckets=LATENCY_BUCKETS, registry=theirs)
    for value, count in observations:
        batched.observe(value, count)
        for _ in range(count):
            one_by_one.observe(value)
    got, want = samples(ours, "latency_seconds"), samples(theirs, "latency_seconds")
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert abs(got[key] - value) <= 1e-9 * max(1.0, abs(value)), key


def action(n: int, kind: ActionKind = ActionKind.MESSAGE) -> Action:
    return Action(
        action_id=f"a-{n}",
        campaign_id="welcome" if kind is ActionKind.MESSAGE else "leaderboard:all",
        player_id="p1",
        kind=kind,
        channel="email" if kind is ActionKind.MESSAGE else "gamification",
        payload={} if kind is ActionKind.MESSAGE else {"event": "leaderboard_score"},
        event_id=f"e{n}",
        decision="sent",
        event_at=T0,
        decided_at=T0,
    )


def test_a_batch_of_actions_is_counted_once_per_action_at_its_latency() -> None:
    metrics = Metrics()
    batch = [action(1), action(2), action(3, ActionKind.GAMIFICATION)]
    metrics.count_actions(batch, read_at=100.0, now=100.03)
    metrics.count_actions([], read_at=100.0, now=107.0)  # nothing decided: nothing observed
    name = "pitboss_event_to_decision_seconds"
    assert metrics.value(f"{name}_count") == 3
    assert metrics.value(f"{name}_bucket", {"le": "0.025"}) == 0
    assert metrics.value(f"{name}_bucket", {"le": "0.05"}) == 3
    assert abs(metrics.value(f"{name}_sum") - 0.09) < 1e-9
    assert metrics.value("pitboss_intents_total", {"campaign": "welcome"}) == 2
    assert metrics.value("pitboss_gamification_events_total", {"kind": "leaderboard_score"}) == 1
    text = generate_latest(metrics.registry).decode()
    assert f"# TYPE {name} histogram" in text
    assert f'{name}_bucket{{le="+Inf"}} 3.0' in text
