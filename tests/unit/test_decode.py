"""Decoding: every record becomes an event or a dead letter with a precise reason."""

from __future__ import annotations

import pickle
from decimal import Decimal
from typing import Annotated

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import Field, TypeAdapter, ValidationError

from pipeline.decode import EventSlice, decode_batch
from pipeline.events import Amount
from pipeline.records import RawBatch
from pipeline.simulator import SimulatorConfig, simulate

BET = (
    b'{"event_id":"e1","type":"bet","player_id":"p1","ts":"2026-01-05T10:00:00+02:00",'
    b'"round_id":"r1","amount":"1.2345","currency":"EUR","game_id":"g","game_category":"slots"'
)


SELF_EXCLUSION = (
    b'{"event_id":"e2","type":"self_exclusion","player_id":"p1","ts":"2026-01-05T10:00:00Z",'
    b'"until":%s}'
)


REGISTRATION = (
    b'{"event_id":"e3","type":"registration","player_id":"p1","ts":"2026-01-05T10:00:00Z",'
    b'"country":"MT","currency":"EUR","timezone":"Europe/Malta","channel":"organic",'
    b'"consents":{"email":true,"sms":false,"push":false,"in_app":true},"birth_date":%s}'
)


def decode_one(raw: bytes) -> tuple[str, str] | None:
    out = decode_batch(RawBatch("t/0", [raw], [17]))
    if out.events:
        return None
    (letter,) = out.dead_letters
    assert letter.raw == raw and letter.position == 17 and letter.source == "t/0"
    return letter.kind, letter.reason


def test_a_valid_bet_decodes_with_decimal_amount_and_aware_time() -> None:
    out = decode_batch(RawBatch("t/0", [BET + b"}"], [1]))
    ((ts, event),) = out.events
    assert event.type == "bet" and event.amount == Decimal("1.2345")
    assert ts == 1767600000 and out.high_mark == ts


def test_extra_fields_are_ignored_not_fatal() -> None:
    assert decode_one(BET + b',"new_field":{"x":1}}') is None


@pytest.mark.parametrize(
    "until", [b"null", b'"2026-07-05T10:00:00Z"', b'"2026-07-05T12:00:00+02:00"']
)
def test_a_self_exclusion_until_a_time_or_for_good_decodes(until: bytes) -> None:
    assert decode_one(SELF_EXCLUSION % until) is None


@pytest.mark.parametrize("birth_date", [b"null", b'"1990-01-31"'])
def test_a_registration_with_or_without_a_birth_date_decodes(birth_date: bytes) -> None:
    assert decode_one(REGISTRATION % birth_date) is None


@pytest.mark.parametrize(
    ("raw", "kind", "says"),
    [
        (b"{oops", "not_json", "not JSON"),
        (b"", "not_json", "not JSON"),
        (b'["a"]', "not_object", "list"),
        (
            b'{"type":"jackpot","event_id":"e","player_id":"p","ts":"2026-01-01T00:00:00Z"}',
            "unknown_type",
            "'jackpot'",
        ),
        (
            b'{"event_id":"e","player_id":"p","ts":"2026-01-01T00:00:00Z"}',
            "missing_field",
            "'type'",
        ),
        (BET.replace(b',"game_id":"g"', b"") + b"}", "missing_field", "game_id"),
        (BET.replace(b"+02:00", b"") + b"}", "naive_timestamp", "'ts'"),
        (BET.replace(b'"1.2345"', b'"abc"') + b"}", "invalid_field", "'amount'"),
        (BET.replace(b'"1.2345"', b'"1.23456"') + b"}", "invalid_field", "'amount'"),
        (BET.replace(b'"1.2345"', b'"-5"') + b"}", "invalid_field", "'amount'"),
        (BET.replace(b'"slots"', b'"bingo"') + b"}", "invalid_field", "'game_category'"),
        # Unix time, which pydantic alone would take (guessing seconds or milliseconds):
        (
            BET.replace(b'"2026-01-05T10:00:00+02:00"', b"1767600000") + b"}",
            "invalid_field",
            "'ts' must be an ISO-8601 timestamp",
        ),
        (
            BET.replace(b'"2026-01-05T10:00:00+02:00"', b'"1767600000000"') + b"}",
            "invalid_field",
            "'ts' must be an ISO-8601 timestamp",
        ),
        (SELF_EXCLUSION % b"1767600000.5", "invalid_field", "'until' must be an ISO-8601"),
        (REGISTRATION % b"631152000", "invalid_field", "'birth_date' must be an ISO-8601 date"),
        (REGISTRATION % b'"631152000"', "invalid_field", "'birth_date' must be an ISO-8601"),
    ],
)
def test_bad_records_become_dead_letters_that_say_what_is_wrong(
    raw: bytes, kind: str, says: str
) -> None:
    result = decode_one(raw)
    assert result is not None
    assert result[0] == kind
    assert says in result[1]


def test_one_bad_record_does_not_spoil_its_batch() -> None:
    good = BET + b"}"
    out = decode_batch(RawBatch("t/0", [good, b"1},{", good.replace(b"e1", b"e2")], [1, 2, 3]))
    assert [e.event_id for _, e in out.events] == ["e1", "e2"]
    assert [d.position for d in out.dead_letters] == [2]


def test_dead_letter_reasons_carry_no_field_values() -> None:
    raw = BET.replace(b'"amount":"1.2345"', b'"amount":"alice@example.com"') + b"}"
    result = decode_one(raw)
    assert result is not None and "alice" not in result[1]


def test_a_shard_slice_crosses_processes_as_its_records_and_decodes_to_the_same_events() -> None:
    """Pickled (as Bytewax does for another process), a slice carries raw records, not
    pydantic models, and unpickles to equal events with their times, in order."""
    records = list(simulate(SimulatorConfig(seed=3, events=3_000, poison_rate=0.02)))
    decoded = decode_batch(RawBatch("t/0", records, list(range(len(records)))))
    assert decoded.dead_letters  # the poison stays behind: only good records travel
    assert len(decoded.raws) == len(decoded.events)
    part = EventSlice()
    for pair, raw in zip(decoded.events, decoded.raws, strict=True):
        part.add(pair, raw)
    data = pickle.dumps(part, protocol=5)
    assert len(data) < sum(len(raw) for raw in part.raws) + 64 * len(part)
    back = pickle.loads(data)
    assert type(back) is EventSlice
    assert list(back) == list(part)
    assert back.raws == part.raws
    assert pickle.loads(pickle.dumps(EventSlice())) == []


# The amounts pydantic's constrained decimal alone decides, and a grammar around the fast
# path's edges: signs, spaces, exponents, too many digits or places, leading zeros.
_CONSTRAINED = TypeAdapter(Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)])
_AMOUNT = TypeAdapter(Amount)
_TEXT_AMOUNTS = st.builds(
    lambda sign, whole, dot, frac, exp, pad: f"{pad}{sign}{whole}{dot}{frac}{exp}",
    st.sampled_from(["", "", "-", "+"]),
    st.text("0123456789", min_size=0, max_size=17),
    st.sampled_from([".", ".", ""]),
    st.text("0123456789", min_size=0, max_size=6),
    st.sampled_from(["", "", "", "e2", "E-3"]),
    st.sampled_from(["", "", "", " "]),
)


def _outcome(adapter: TypeAdapter[Decimal], value: object) -> tuple[str, Decimal | None]:
    try:
        got = adapter.validate_python(value)
    except ValidationError:
        return "rejected", None
    return type(got).__name__, got


@settings(max_examples=1500, deadline=None)
@example("123456789012345")  # 15 integer digits: one too many
@example("12345678901234.1234")  # the largest plain amount
@example("1.12345")
@example("000000000000001.5")
@given(
    st.one_of(
        _TEXT_AMOUNTS,
        st.decimals(allow_nan=False, allow_infinity=False).map(str),
        st.integers(min_value=-(10**16), max_value=10**16),
        st.floats(allow_nan=False, allow_infinity=False, width=32),
    )
)
def test_the_amount_fast_path_accepts_and_rejects_what_the_constrained_decimal_does(
    value: object,
) -> None:
    """Plain digits in a string skip pydantic's constrained decimal (about 1.1 µs a field);
    every amount, text or number, must still get exactly its answer, as a Decimal."""
    assert _outcome(_AMOUNT, value) == _outcome(_CONSTRAINED, value)


def test_a_bad_amount_is_explained_once_by_the_decimal_check() -> None:
    result = decode_one(BET.replace(b'"1.2345"', b'"1.23456"') + b"}")
    assert result == (
        "invalid_field",
        "invalid bet event: field 'amount': Decimal input should have no more than 4 "
        "decimal places",
    )


def test_a_slice_whose_records_no_longer_decode_fails_loudly_without_their_values() -> None:
    """Only a process running another decoder can get here; it must stop, not drop."""
    stale = EventSlice()
    stale.raws.append(BET.replace(b'"1.2345"', b'"alice@example.com"') + b"}")
    with pytest.raises(ValueError, match="different versions") as caught:
        pickle.loads(pickle.dumps(stale))
    assert "alice" not in str(caught.value)
