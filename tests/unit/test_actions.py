"""The action log's JSON: the same bytes as pydantic's serializer, whatever the payload."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.actions import FIELD_ORDER, Action, ActionKind
from operators.guards import to_action
from operators.rules import Intent

JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)  # beyond 64 bits: orjson refuses, pydantic takes over
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
PAYLOADS = st.dictionaries(
    st.text(max_size=10),
    st.recursive(
        JSON_LEAVES,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=8,
    ),
    max_size=5,
)
TIMES = st.datetimes(
    min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
)


@settings(max_examples=300, deadline=None)
@given(
    payload=PAYLOADS,
    kind=st.sampled_from(list(ActionKind)),
    times=st.tuples(TIMES, TIMES, st.none() | TIMES),
    texts=st.lists(st.text(), min_size=4, max_size=4),
    numbers=st.tuples(st.integers(-(2**31), 2**31), st.integers(0, 2**62)),
)
def test_to_json_is_the_bytes_pydantic_gives(
    payload: dict[str, Any],
    kind: ActionKind,
    times: tuple[dt.datetime, dt.datetime, dt.datetime | None],
    texts: list[str],
    numbers: tuple[int, int],
) -> None:
    action = Action(
        action_id="a-1",
        campaign_id=texts[0],
        player_id=texts[1],
        kind=kind,
        channel="email",
        payload=payload,
        event_id=texts[2],
        decision="sent",
        event_at=times[0],
        decided_at=times[1],
        delivered_at=times[2],
        priority=numbers[0],
        cost=numbers[1],
        detail=texts[3],
    )
    assert action.to_json() == action.model_dump_json().encode()
    copied = action.model_copy(update={"decision": "failed", "detail": texts[0]})
    assert copied.to_json() == copied.model_dump_json().encode()


@settings(max_examples=200, deadline=None)
@given(
    payload=PAYLOADS,
    kind=st.sampled_from(list(ActionKind)),
    times=st.tuples(st.integers(86_400, 4_000_000_000), st.integers(0, 3600)),
    texts=st.lists(st.text(), min_size=6, max_size=6),
    numbers=st.tuples(st.integers(-(2**31), 2**31), st.integers(0, 2**62), st.integers(0, 10**6)),
)
def test_a_decided_intent_is_the_action_pydantic_would_validate(
    payload: dict[str, Any],
    kind: ActionKind,
    times: tuple[int, int],
    texts: list[str],
    numbers: tuple[int, int, int],
) -> None:
    intent = Intent(
        texts[0],
        texts[1],
        texts[2],
        kind,
        texts[3],
        payload,
        texts[4],
        times[0],
        times[0] + times[1],
        priority=numbers[0],
        version=texts[5],
        variant=texts[2],
        cost=numbers[1],
        currency=texts[3],
        defer_when_capped=numbers[2],
    )
    action = to_action(intent, "sent")
    validated = Action.model_validate(action.model_dump())
    assert action == validated
    assert list(action.__dict__) == list(validated.__dict__) == list(FIELD_ORDER)
    assert action.to_json() == validated.to_json() == validated.model_dump_json().encode()
    assert action.kind is kind
    assert action.model_fields_set == set(FIELD_ORDER)
    changed = action.model_copy(update={"decision": "failed"})
    assert changed.decision == "failed"
    assert changed.to_json() == changed.model_dump_json().encode()
