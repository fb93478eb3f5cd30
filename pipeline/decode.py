"""Decode raw records into typed events, a whole batch at a time.

Each record is parsed on its own (so one bad record can never bleed into its
neighbours), then the batch is validated in one pydantic call; a wrap validator turns a
failing record into a dead letter instead of failing the batch. A dead letter keeps the
raw bytes, where they came from and a precise reason; its ``kind`` is a small fixed set
used as a metric label. Reasons name fields and rules, never field values, so they are
safe to log.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Annotated, Any

import orjson
from pydantic import TypeAdapter, ValidationError, ValidatorFunctionWrapHandler, WrapValidator

from operators.zones import known_zone
from pipeline.events import AMOUNT_BRANCHES, EVENT_TYPES, Event
from pipeline.records import RawBatch

# Dead-letter kinds (bounded: they are metric label values).
NOT_JSON = "not_json"
NOT_OBJECT = "not_object"
UNKNOWN_TYPE = "unknown_type"
MISSING_FIELD = "missing_field"
NAIVE_TIMESTAMP = "naive_timestamp"
INVALID_FIELD = "invalid_field"
DEAD_LETTER_KINDS: tuple[str, ...] = (
    NOT_JSON,
    NOT_OBJECT,
    UNKNOWN_TYPE,
    MISSING_FIELD,
    NAIVE_TIMESTAMP,
    INVALID_FIELD,
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be decoded, with everything needed to replay it."""

    source: str
    position: int
    kind: str
    reason: str
    raw: bytes

    def to_json(self) -> bytes:
        """The dead-letter record: raw bytes in base64, plus text when it is UTF-8."""
        try:
            text: str | None = self.raw.decode()
        except UnicodeDecodeError:
            text = None
        return orjson.dumps(
            {
                "source": self.source,
                "position": self.position,
                "kind": self.kind,
                "reason": self.reason,
                "raw": text,
                "raw_base64": base64.b64encode(self.raw).decode(),
            }
        )


@dataclass(slots=True)
class DecodedBatch:
    """The outcome of decoding one raw batch."""

    source: str
    events: list[tuple[int, Event]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    high_mark: int | None = None  # newest event time in the batch, epoch seconds
    read_at: float = 0.0  # wall time the raw batch left its source
    raws: list[bytes] = field(default_factory=list)  # each event's record, as read


class EventSlice(list[tuple[int, Event]]):
    """Decoded ``(ts, event)`` pairs that cross to another process as their raw records.

    Pickling decoded events (pydantic models with datetimes and decimals) cost about
    35 µs an event here, dumps and loads, where decoding the record again costs about
    5 and pickling its bytes a fraction of one. Bytewax pickles only the items it sends
    to another process, so a shard's slice keeps its records' bytes and, pickled, is
    rebuilt on the other side by decoding them: they were valid, so they decode to the
    same events (decoding is per record and deterministic).
    """

    __slots__ = ("raws",)

    def __init__(self) -> None:
        super().__init__()
        self.raws: list[bytes] = []

    def add(self, pair: tuple[int, Event], raw: bytes) -> None:
        """Append one event and its record."""
        self.append(pair)
        self.raws.append(raw)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_redecoded, (self.raws,))


def _redecoded(raws: list[bytes]) -> EventSlice:
    """The slice of ``raws``, decoded again: every record passed ``decode_batch`` before it
    was sent, so its checks ahead of validation (each can only reject) are skipped, and
    the same parse and validation give the same events."""
    loads = orjson.loads
    try:
        events: list[Any] = _CLEAN_BATCH.validate_python([loads(raw) for raw in raws])
    except (orjson.JSONDecodeError, ValidationError) as exc:  # a different decoder version
        raise ValueError(
            f"a record decoded once no longer decodes ({type(exc).__name__}): are the "
            "processes running different versions of Pitboss?"
        ) from None
    rebuilt = EventSlice()
    rebuilt.extend([(int(event.ts.timestamp()), event) for event in events])
    rebuilt.raws = list(raws)
    return rebuilt


class _Rejected:
    __slots__ = ("error",)

    def __init__(self, error: ValidationError) -> None:
        self.error = error


def _keep_going(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError as exc:
        return _Rejected(exc)


_BATCH = TypeAdapter(list[Annotated[Event, WrapValidator(_keep_going)]])
_CLEAN_BATCH = TypeAdapter(list[Event])  # no per-record Python frame: the common case
_KNOWN_TYPES = frozenset(EVENT_TYPES)


def explain(error: ValidationError, record: dict[str, Any]) -> tuple[str, str]:
    """The dead-letter kind and a readable reason for a failed record."""
    issues = error.errors(include_input=False, include_url=False)
    first = issues[0]
    etype = record.get("type")
    if first["type"] == "union_tag_not_found":
        return MISSING_FIELD, "missing field 'type'"
    if first["type"] == "union_tag_invalid":
        shown = etype if isinstance(etype, str) and len(etype) <= 40 else "?"
        return (
            UNKNOWN_TYPE,
            f"unknown event type {shown!r}; expected one of {', '.join(EVENT_TYPES)}",
        )
    parts = []
    kind = INVALID_FIELD
    for issue in issues:
        where = issue["loc"][1:]  # loc starts with the union tag (the event type): said once
        if where and where[-1] in AMOUNT_BRANCHES:
            # An amount is tried as plain digits, then as any decimal: the second says
            # what is wrong (a sign, too many places...); the first adds nothing.
            if where[-1] == AMOUNT_BRANCHES[0]:
                continue
            where = where[:-1]
        loc = ".".join(str(p) for p in where) or "record"
        if issue["type"] == "missing":
            kind = MISSING_FIELD if kind == INVALID_FIELD else kind
            parts.append(f"missing field '{loc}'")
        elif issue["type"] == "timezone_aware":
            kind = NAIVE_TIMESTAMP
            parts.append(f"field '{loc}' is a timestamp without a time zone")
        else:
            parts.append(f"field '{loc}': {issue['msg']}")
    return kind, f"invalid {etype} event: " + "; ".join(parts)


_TIMESTAMP = "an ISO-8601 timestamp with Z or an offset, such as 2026-01-05T10:00:00Z"
_DATE = "an ISO-8601 date, such as 1990-01-31"
# The time fields of each event type, and what each must be.
_TIME_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "self_exclusion": (("ts", _TIMESTAMP), ("until", _TIMESTAMP)),
    "registration": (("ts", _TIMESTAMP), ("birth_date", _DATE)),
}
_TS_ONLY = (("ts", _TIMESTAMP),)


def not_iso(record: dict[str, Any]) -> str | None:
    """Why a known event's time field is not ISO-8601 text, if one is not; else None.

    The contract (DESIGN.md) wants ``ts`` (and a self-exclusion's ``until``) as ISO-8601
    with ``Z`` or an offset, and a birth date as ``YYYY-MM-DD``. pydantic would also take
    a number, or digits in a string, as Unix time, guessing seconds or milliseconds from
    the size: a producer's unit bug would then shift events by decades, end an exclusion
    at the wrong time or move a birthday, silently. Missing fields and other types are
    left to the validation that follows.
    """
    etype = record.get("type")
    if etype not in _KNOWN_TYPES:
        return None
    for name, wanted in _TIME_FIELDS.get(etype, _TS_ONLY):
        value = record.get(name)
        if value is None or (type(value) is str and value[4:5] == "-"):
            continue
        given = "text that is not a date" if type(value) is str else "a " + type(value).__name__
        return f"invalid {etype} event: field '{name}' must be {wanted}; got {given}"
    return None


def unknown_zones(events: list[tuple[int, Event]]) -> int:
    """How many registrations among ``events`` name a time zone the database lacks."""
    return sum(
        1 for _, event in events if event.type == "registration" and not known_zone(event.timezone)
    )


def decode_batch(batch: RawBatch) -> DecodedBatch:
    """Decode every record of ``batch``; nothing is dropped."""
    out = DecodedBatch(batch.source, read_at=batch.read_at)
    dead = out.dead_letters
    parsed: list[Any] = []
    parsed_at: list[int] = []
    loads = orjson.loads
    for index, raw in enumerate(batch.values):
        try:
            value = loads(raw)
        except orjson.JSONDecodeError as exc:
            dead.append(
                DeadLetter(batch.source, batch.positions[index], NOT_JSON, f"not JSON: {exc}", raw)
            )
            continue
        if type(value) is not dict:
            dead.append(
                DeadLetter(
                    batch.source,
                    batch.positions[index],
                    NOT_OBJECT,
                    f"not a JSON object but {type(value).__name__}",
                    raw,
                )
            )
            continue
        # The common record (a text ts, no other time field) passes this in one look;
        # anything else gets not_iso's full check.
        ts = value.get("ts")
        if (
            (ts is not None and (type(ts) is not str or ts[4:5] != "-"))
            or "until" in value
            or "birth_date" in value
        ):
            reason = not_iso(value)
            if reason is not None:
                dead.append(
                    DeadLetter(batch.source, batch.positions[index], INVALID_FIELD, reason, raw)
                )
                continue
        parsed.append(value)
        parsed_at.append(index)
    if not parsed:
        return out
    events = out.events
    raws = out.raws
    values = batch.values
    high = None
    try:
        results: list[Any] = _CLEAN_BATCH.validate_python(parsed)
    except ValidationError:
        results = _BATCH.validate_python(parsed)  # some record is bad: find which
    for index, record, result in zip(parsed_at, parsed, results, strict=True):
        if type(result) is _Rejected:
            kind, reason = explain(result.error, record)
            dead.append(
                DeadLetter(batch.source, batch.positions[index], kind, reason, batch.values[index])
            )
            continue
        ts = int(result.ts.timestamp())
        if high is None or ts > high:
            high = ts
        events.append((ts, result))
        raws.append(values[index])
    out.high_mark = high
    return out
