"""Deliberately invalid records, so the decode step's dead-letter path gets exercised.

Each kind breaks the contract in one way a real firehose does: bytes that are not JSON,
JSON that is not an object, a missing required field, a field of the wrong type, a naive
timestamp and an event type nobody knows.
"""

from __future__ import annotations

from collections.abc import Callable

POISON_KINDS = (
    "not_json",
    "not_object",
    "missing_field",
    "wrong_type",
    "naive_ts",
    "unknown_type",
)


def poison_record(rand: Callable[[], float], event_id: int, player_id: bytes, ts: bytes) -> bytes:
    """One invalid record of a kind drawn with ``rand``; ``ts`` is a valid aware timestamp."""
    kind = POISON_KINDS[int(rand() * len(POISON_KINDS))]
    eid = b"e%08d" % event_id
    head = b'{"event_id":"%s","player_id":"%s","ts":"%s"' % (eid, player_id, ts)
    if kind == "not_json":  # a truncated record or binary noise
        return head[: 20 + int(rand() * 30)] if rand() < 0.5 else b"\xff\xfe\x00garbage\x01"
    if kind == "not_object":
        return (b"[1,2,3]", b'"bet"', b"42", b"null")[int(rand() * 4)]
    if kind == "missing_field":  # a deposit without its amount
        return head + b',"type":"deposit","currency":"EUR","method":"card"}'
    if kind == "wrong_type":
        return head + (
            b',"type":"bet","round_id":"rx","amount":"abc","currency":"EUR",'
            b'"game_id":"starburst","game_category":"slots"}'
        )
    if kind == "naive_ts":  # YYYY-MM-DDTHH:MM:SS with the zone cut off
        return b'{"event_id":"%s","type":"login","player_id":"%s","ts":"%s"}' % (
            eid,
            player_id,
            ts[:19],
        )
    return head + b',"type":"jackpot_spin","amount":"1.00"}'
