"""Specification of operators.windows: bucketed sliding-window sums per player."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.windows import DEFAULT_WINDOWS, WindowedSums, WindowSpec, window_layout

HOUR_1, HOUR_24, DAY_7 = 0, 1, 2
WAGER, NET, DEPOSIT = 0, 1, 2
MINUTE = 60
HOUR = 3600
DAY = 86400
# 2023-11-14 22:00:00 UTC: a whole hour, so 10-minute and hourly buckets start here.
T0 = 1_700_000_000 - 1_700_000_000 % HOUR
UNIT = 10_000  # amounts are ten-thousandths of a currency unit

# No per-example deadline: the CPU is shared with other test runs, and slow is not wrong.
PROPERTY = settings(max_examples=150, deadline=None)


@dataclass
class Oracle:
    """The definition, by brute force: every add kept, every total recomputed."""

    specs: tuple[WindowSpec, ...]
    adds: list[tuple[int, int, int]] = field(default_factory=list)
    newest: int | None = None

    def add(self, ts: int, metric: int, amount: int) -> bool:
        self.adds.append((ts, metric, amount))
        self.newest = ts if self.newest is None else max(self.newest, ts)
        return any(self._in_retained_range(spec, ts, self.newest) for spec in self.specs)

    def total(self, window: int, metric: int, now: int) -> int:
        spec = self.specs[window]
        return sum(
            amount for ts, m, amount in self.adds if m == metric and self._in_window(spec, ts, now)
        )

    def _in_window(self, spec: WindowSpec, ts: int, now: int) -> bool:
        in_definition = self._in_range(spec, ts, now)
        if self.newest is None or now >= self.newest:
            return in_definition
        # Before the newest add only the ring's buckets are retained.
        return in_definition and self._in_retained_range(spec, ts, self.newest)

    @staticmethod
    def _in_range(spec: WindowSpec, ts: int, now: int) -> bool:
        bucket, end = ts // spec.bucket_seconds, now // spec.bucket_seconds
        return end - spec.buckets < bucket <= end

    @staticmethod
    def _in_retained_range(spec: WindowSpec, ts: int, newest: int) -> bool:
        return newest // spec.bucket_seconds - ts // spec.bucket_seconds < spec.buckets

    def oldest_retained_ts(self) -> int:
        """The earliest timestamp some window still accepts."""
        assert self.newest is not None
        return min(
            (self.newest // s.bucket_seconds - s.buckets + 1) * s.bucket_seconds for s in self.specs
        )


def all_totals(sums: WindowedSums, now: int) -> list[int]:
    return [
        sums.total(window, metric, now)
        for window in range(len(sums.specs))
        for metric in range(sums.metrics)
    ]


def assert_matches_oracle(sums: WindowedSums, oracle: Oracle, now: int) -> None:
    for window in range(len(oracle.specs)):
        for metric in range(sums.metrics):
            expected = oracle.total(window, metric, now)
            assert sums.total(window, metric, now) == expected, (window, metric, now)


# --- strategies -------------------------------------------------------------------------

amounts = st.integers(-1_000_000 * UNIT, 1_000_000 * UNIT)
months = st.integers(30 * DAY, 400 * DAY)


@st.composite
def small_specs(draw: st.DrawFn) -> tuple[WindowSpec, ...]:
    """Tiny buckets, so that random steps cross bucket edges and ring ends often."""
    sizes = draw(st.lists(st.tuples(st.integers(1, 30), st.integers(1, 6)), min_size=1, max_size=3))
    return tuple(WindowSpec(f"w{i}", seconds, n) for i, (seconds, n) in enumerate(sizes))


@dataclass(frozen=True)
class Step:
    """Move the clock by `delta` (maybe backwards), add, then query at `query_offset`."""

    delta: int
    metric: int
    amount: int
    query_offset: int


def steps(
    deltas: st.SearchStrategy[int], metrics: int, min_size: int = 0
) -> st.SearchStrategy[list[Step]]:
    return st.lists(
        st.builds(Step, deltas, st.integers(0, metrics - 1), amounts, st.integers(-300, 300)),
        min_size=min_size,
        max_size=40,
    )


def small_deltas(max_span: int) -> st.SearchStrategy[int]:
    return st.one_of(
        st.integers(0, 3), st.integers(-max_span, max_span), months, st.just(0), st.just(-1)
    )


default_deltas = st.one_of(
    st.integers(0, 10 * MINUTE),
    st.integers(-2 * HOUR, 2 * HOUR),
    st.integers(-8 * DAY, 8 * DAY),
    months,
)


def replay(
    specs: tuple[WindowSpec, ...], metrics: int, history: list[Step]
) -> tuple[WindowedSums, Oracle]:
    sums, oracle = WindowedSums(metrics, specs), Oracle(specs)
    cursor = T0
    for step in history:
        cursor += step.delta
        assert sums.add(cursor, step.metric, step.amount) == oracle.add(
            cursor, step.metric, step.amount
        )
    return sums, oracle


def check_run(specs: tuple[WindowSpec, ...], metrics: int, history: list[Step], scale: int) -> None:
    sums, oracle = WindowedSums(metrics, specs), Oracle(specs)
    cursor = T0
    for step in history:
        cursor += step.delta
        counted = sums.add(cursor, step.metric, step.amount)
        assert counted == oracle.add(cursor, step.metric, step.amount)
        assert oracle.newest is not None
        assert_matches_oracle(sums, oracle, oracle.newest)
        assert_matches_oracle(sums, oracle, oracle.newest + abs(step.query_offset) * scale)
        assert_matches_oracle(sums, oracle, oracle.newest + step.query_offset * scale)


# --- properties -------------------------------------------------------------------------


@PROPERTY
@given(specs=small_specs(), metrics=st.integers(1, 3), data=st.data())
def test_sums_match_the_brute_force_oracle_for_any_small_windows(
    specs: tuple[WindowSpec, ...], metrics: int, data: st.DataObject
) -> None:
    span = max(s.bucket_seconds * s.buckets for s in specs)
    history = data.draw(steps(small_deltas(2 * span), metrics))
    check_run(specs, metrics, history, scale=max(1, span // 100))


@PROPERTY
@given(history=steps(default_deltas, 3))
def test_sums_match_the_brute_force_oracle_for_the_default_windows(history: list[Step]) -> None:
    check_run(DEFAULT_WINDOWS, 3, history, scale=HOUR)


@PROPERTY
@given(specs=small_specs(), data=st.data())
def test_add_too_old_for_every_window_is_refused_and_changes_no_total(
    specs: tuple[WindowSpec, ...], data: st.DataObject
) -> None:
    span = max(s.bucket_seconds * s.buckets for s in specs)
    history = data.draw(steps(small_deltas(2 * span), 2, min_size=1))
    sums, oracle = replay(specs, 2, history)
    assert oracle.newest is not None
    too_old = oracle.oldest_retained_ts() - data.draw(st.integers(1, 3 * span))
    nows = [oracle.newest + offset for offset in (-span, -1, 0, 1, span // 2, span)]
    before = [all_totals(sums, now) for now in nows]

    assert sums.add(too_old, data.draw(st.integers(0, 1)), data.draw(amounts)) is False

    assert [all_totals(sums, now) for now in nows] == before


@PROPERTY
@given(specs=small_specs(), data=st.data())
def test_pickled_sums_restore_the_same_totals_and_keep_counting_alike(
    specs: tuple[WindowSpec, ...], data: st.DataObject
) -> None:
    span = max(s.bucket_seconds * s.buckets for s in specs)
    deltas = small_deltas(2 * span)
    sums, oracle = replay(specs, 2, data.draw(steps(deltas, 2)))
    restored = pickle.loads(pickle.dumps(sums))
    assert restored.specs == sums.specs
    assert restored.metrics == sums.metrics

    cursor = oracle.newest if oracle.newest is not None else T0
    for step in data.draw(steps(deltas, 2)):
        cursor += step.delta
        assert restored.add(cursor, step.metric, step.amount) == sums.add(
            cursor, step.metric, step.amount
        )
    for offset in (-span, 0, span // 2, span):
        assert all_totals(restored, cursor + offset) == all_totals(sums, cursor + offset)


def dense_v1_state(
    specs: tuple[WindowSpec, ...], metrics: int, oracle: Oracle
) -> tuple[object, ...]:
    """What the dense implementation (state version 1, before 2026-12-07) pickled after
    the oracle's adds: each ring's buckets at slot bucket % n, window by window, then
    metric by metric."""
    sums: list[int] = []
    newest = oracle.newest
    for spec in specs:
        ring = [[0] * spec.buckets for _ in range(metrics)]
        if newest is not None:
            head = newest // spec.bucket_seconds
            for ts, metric, amount in oracle.adds:
                bucket = ts // spec.bucket_seconds
                if head - spec.buckets < bucket <= head:
                    ring[metric][bucket % spec.buckets] += amount
        sums += [value for series in ring for value in series]
    raw = b"".join(value.to_bytes(8, "little", signed=True) for value in sums)
    names = tuple((s.name, s.bucket_seconds, s.buckets) for s in specs)
    return (1, metrics, names, -(2**62) if newest is None else newest, raw)


@PROPERTY
@given(specs=small_specs(), data=st.data())
def test_a_dense_version_1_snapshot_restores_the_same_totals_and_keeps_counting_alike(
    specs: tuple[WindowSpec, ...], data: st.DataObject
) -> None:
    span = max(s.bucket_seconds * s.buckets for s in specs)
    deltas = small_deltas(2 * span)
    sums, oracle = replay(specs, 2, data.draw(steps(deltas, 2)))
    restored = WindowedSums.__new__(WindowedSums)
    restored.__setstate__(dense_v1_state(specs, 2, oracle))

    cursor = oracle.newest if oracle.newest is not None else T0
    for offset in (-span, 0, span // 2, span):
        assert all_totals(restored, cursor + offset) == all_totals(sums, cursor + offset)
    for step in data.draw(steps(deltas, 2)):
        cursor += step.delta
        counted = restored.add(cursor, step.metric, step.amount)
        assert counted == oracle.add(cursor, step.metric, step.amount)
        assert oracle.newest is not None
        assert_matches_oracle(restored, oracle, oracle.newest)
        assert_matches_oracle(restored, oracle, oracle.newest + abs(step.query_offset))


@PROPERTY
@given(specs=small_specs(), metrics=st.integers(1, 3), data=st.data())
def test_sums_hold_one_entry_per_bucket_in_use_and_never_write_the_shared_empty_array(
    specs: tuple[WindowSpec, ...], metrics: int, data: st.DataObject
) -> None:
    layout = window_layout(metrics, specs)
    pristine = layout.empty.tobytes()
    span = max(s.bucket_seconds * s.buckets for s in specs)
    sums, oracle = replay(specs, metrics, data.draw(steps(small_deltas(2 * span), metrics)))

    assert layout.empty.tobytes() == pristine
    assert WindowedSums(metrics, specs).sums is layout.empty
    if oracle.newest is None:
        assert sums.sums is layout.empty
        return
    # At most: the head bucket of each window, plus every retained bucket added to.
    in_use = sum(
        len(
            {oracle.newest // spec.bucket_seconds}
            | {
                ts // spec.bucket_seconds
                for ts, _, _ in oracle.adds
                if Oracle._in_retained_range(spec, ts, oracle.newest)
            }
        )
        for spec in specs
    )
    assert len(sums.sums) <= 1 + len(specs) + in_use * (1 + metrics)


# --- examples ---------------------------------------------------------------------------


def test_a_version_1_snapshot_whose_newest_bucket_sums_to_zero_keeps_adding_there() -> None:
    oracle = Oracle(DEFAULT_WINDOWS)
    oracle.add(T0, WAGER, UNIT)
    oracle.add(T0 + 3 * HOUR, WAGER, 0)  # the head buckets hold only zeros
    restored = WindowedSums.__new__(WindowedSums)
    restored.__setstate__(dense_v1_state(DEFAULT_WINDOWS, 1, oracle))

    restored.add(T0 + 3 * HOUR, WAGER, 2 * UNIT)

    now = T0 + 3 * HOUR
    assert [restored.total(w, WAGER, now) for w in range(3)] == [2 * UNIT, 3 * UNIT, 3 * UNIT]


def test_a_player_who_bet_in_one_bucket_keeps_one_entry_per_window() -> None:
    sums = WindowedSums(2)
    for second in range(0, 90, 10):
        sums.add(T0 + second, WAGER, UNIT)
        sums.add(T0 + second, NET, -UNIT)

    # newest, three entry counts, then per window [bucket, wager, net]: 13 slots, where
    # dense rings took 2 x 37 (and 2 x 25 for the player windows).
    assert len(sums.sums) == 1 + 3 + 3 * 3
    assert [sums.total(w, WAGER, T0 + 90) for w in range(3)] == [9 * UNIT] * 3


def test_a_head_that_moves_forgets_the_buckets_that_leave_each_ring() -> None:
    sums = WindowedSums(1)
    for hour in range(48):
        sums.add(T0 + hour * HOUR, WAGER, UNIT)

    # 1h: the head only; 24h: the last 24 hours; 7d: days T0 and T0 + 1 (T0 is 22:00).
    assert len(sums.sums) == 1 + 3 + 2 * (1 + 24 + 3)
    assert [sums.total(w, WAGER, T0 + 47 * HOUR) for w in range(3)] == [UNIT, 24 * UNIT, 48 * UNIT]


def test_a_bucket_beyond_the_int64_range_raises_overflow() -> None:
    sums = WindowedSums(1)
    sums.add(T0, WAGER, 2**63 - 1)

    with pytest.raises(OverflowError):
        sums.add(T0, WAGER, 1)
    with pytest.raises(OverflowError):
        sums.add(T0 + 10 * MINUTE, WAGER, 2**63)


def test_restoring_sums_whose_bytes_do_not_fit_the_layout_fails_clearly() -> None:
    sums = WindowedSums(2)
    sums.add(T0, WAGER, UNIT)
    version, metrics, specs, raw = sums.__getstate__()
    fresh = WindowedSums.__new__(WindowedSums)

    with pytest.raises(ValueError, match="does not fit 2 metrics"):
        fresh.__setstate__((version, metrics, specs, raw[:-8]))
    with pytest.raises(ValueError, match="expected 592"):
        fresh.__setstate__((1, metrics, specs, T0, raw))


def test_wager_older_than_one_hour_leaves_the_1h_window_but_stays_in_24h_and_7d() -> None:
    sums = WindowedSums(3)
    sums.add(T0 + 5 * MINUTE, WAGER, 20 * UNIT)

    assert sums.total(HOUR_1, WAGER, T0 + 59 * MINUTE) == 20 * UNIT
    later = T0 + 61 * MINUTE
    assert sums.total(HOUR_1, WAGER, later) == 0
    assert sums.total(HOUR_24, WAGER, later) == 20 * UNIT
    assert sums.total(DAY_7, WAGER, later) == 20 * UNIT


def test_1h_window_drops_a_wager_when_its_ten_minute_bucket_is_six_buckets_old() -> None:
    sums = WindowedSums(1)
    sums.add(T0 + 9 * MINUTE, WAGER, UNIT)  # bucket [T0, T0 + 10 min)

    assert sums.total(HOUR_1, WAGER, T0 + 59 * MINUTE + 59) == UNIT
    assert sums.total(HOUR_1, WAGER, T0 + 60 * MINUTE) == 0


def test_late_wager_inside_the_hour_lands_in_its_own_bucket() -> None:
    sums = WindowedSums(1)
    sums.add(T0 + 50 * MINUTE, WAGER, 2 * UNIT)
    assert sums.add(T0 + 5 * MINUTE, WAGER, 3 * UNIT) is True  # arrives late

    assert sums.total(HOUR_1, WAGER, T0 + 50 * MINUTE) == 5 * UNIT
    # The late wager leaves with its own 10-minute bucket, not with the newest one.
    assert sums.total(HOUR_1, WAGER, T0 + 60 * MINUTE) == 2 * UNIT


def test_wager_too_old_for_every_window_is_refused() -> None:
    sums = WindowedSums(1)
    sums.add(T0 + 30 * DAY, WAGER, UNIT)

    assert sums.add(T0, WAGER, 99 * UNIT) is False
    assert [sums.total(w, WAGER, T0 + 30 * DAY) for w in range(3)] == [UNIT, UNIT, UNIT]


def test_wager_too_old_for_the_hour_still_counts_in_longer_windows() -> None:
    sums = WindowedSums(1)
    sums.add(T0 + 3 * HOUR, WAGER, UNIT)

    assert sums.add(T0, WAGER, 4 * UNIT) is True
    assert sums.total(HOUR_1, WAGER, T0 + 3 * HOUR) == UNIT
    assert sums.total(HOUR_24, WAGER, T0 + 3 * HOUR) == 5 * UNIT


def test_gap_of_months_empties_every_window_before_the_next_wager() -> None:
    sums = WindowedSums(1)
    for minute in range(0, 7 * 24 * 60, 7):
        sums.add(T0 + minute * MINUTE, WAGER, UNIT)
    comeback = T0 + 90 * DAY + 17

    sums.add(comeback, WAGER, 7 * UNIT)

    assert [sums.total(w, WAGER, comeback) for w in range(3)] == [7 * UNIT] * 3


def test_net_result_can_go_negative() -> None:
    sums = WindowedSums(2)
    sums.add(T0, NET, 50 * UNIT)
    sums.add(T0 + MINUTE, NET, -80 * UNIT)

    assert sums.total(HOUR_1, NET, T0 + MINUTE) == -30 * UNIT
    assert sums.total(HOUR_1, WAGER, T0 + MINUTE) == 0


def test_metrics_are_summed_separately() -> None:
    sums = WindowedSums(3)
    sums.add(T0, WAGER, 1)
    sums.add(T0, NET, 20)
    sums.add(T0, DEPOSIT, 300)

    assert [sums.total(DAY_7, m, T0) for m in (WAGER, NET, DEPOSIT)] == [1, 20, 300]


def test_total_before_the_newest_add_counts_only_buckets_still_retained() -> None:
    sums = WindowedSums(1)
    sums.add(T0, WAGER, UNIT)
    sums.add(T0 + 40 * MINUTE, WAGER, 2 * UNIT)
    sums.add(T0 + 65 * MINUTE, WAGER, 4 * UNIT)  # the T0 bucket leaves the 1h ring

    # By the definition the 1h window at T0 + 45 min would hold 3 units; T0's is gone.
    assert sums.total(HOUR_1, WAGER, T0 + 45 * MINUTE) == 2 * UNIT
    assert sums.total(HOUR_24, WAGER, T0 + 45 * MINUTE) == 3 * UNIT


def test_empty_sums_total_zero_everywhere() -> None:
    sums = WindowedSums(2)

    assert all_totals(sums, T0) == [0] * 6
    assert all_totals(sums, -T0) == [0] * 6


def test_snapshot_of_default_player_sums_stays_compact() -> None:
    sums = WindowedSums(3)
    for i in range(500):
        sums.add(T0 + i * 97, i % 3, (i - 250) * UNIT)

    # The int64 sums alone are 3 metrics x 37 buckets x 8 bytes = 888 bytes.
    assert len(pickle.dumps(sums)) < 1_100


def test_unknown_metric_is_refused_with_the_valid_range() -> None:
    sums = WindowedSums(2)

    with pytest.raises(IndexError, match=r"metric 2 not in range\(0, 2\)"):
        sums.add(T0, 2, UNIT)
    with pytest.raises(IndexError, match="metric -1"):
        sums.add(T0, -1, UNIT)
    assert all_totals(sums, T0) == [0] * 6


@pytest.mark.parametrize(("window", "metric"), [(3, 0), (-1, 0), (0, 2), (0, -1)])
def test_unknown_window_or_metric_in_a_query_is_refused(window: int, metric: int) -> None:
    with pytest.raises(IndexError, match=r"\(window, metric\)"):
        WindowedSums(2).total(window, metric, T0)


@pytest.mark.parametrize(
    ("name", "bucket_seconds", "buckets", "message"),
    [("", 60, 1, "name"), ("1h", 0, 6, "bucket_seconds"), ("1h", 600, 0, "buckets")],
)
def test_window_spec_refuses_empty_windows(
    name: str, bucket_seconds: int, buckets: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        WindowSpec(name, bucket_seconds, buckets)


def test_sums_need_at_least_one_metric_and_one_window() -> None:
    with pytest.raises(ValueError, match="metrics"):
        WindowedSums(0)
    with pytest.raises(ValueError, match="specs"):
        WindowedSums(1, ())


def test_restoring_a_snapshot_of_an_unknown_format_version_fails_clearly() -> None:
    state = WindowedSums(1).__getstate__()
    fresh = WindowedSums.__new__(WindowedSums)

    with pytest.raises(ValueError, match="version 99"):
        fresh.__setstate__((99, *state[1:]))
