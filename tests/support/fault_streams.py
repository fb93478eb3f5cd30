"""Streams for the fault tests: clean simulated traffic, poison mixed in, a hot player.

Everything here is seeded: one call, one byte stream.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson

SUPPRESSION_CHANGES = frozenset({"consent_change", "unsubscribed", "self_exclusion"})
"""Event types that update the shared suppression list."""


def without_suppression_changes(records: Iterable[bytes]) -> list[bytes]:
    """``records`` without consent changes, unsubscribes and self-exclusions.

    The shared suppression list takes a whole batch's changes as it is read, and the
    guards consult it as it stands when they decide, so a player who opts out minutes
    after an action can have that action suppressed or not depending on how records
    were batched (a known weakness, reported on issue 7). Fault tests compare runs
    batched differently, so their streams leave consent alone.
    """
    return [r for r in records if orjson.loads(r).get("type") not in SUPPRESSION_CHANGES]


@dataclass(frozen=True)
class Poison:
    """An invalid record and the dead-letter kind it must be filed under."""

    kind: str
    raw: bytes


_HEAD = b'"event_id":"%(id)s","player_id":"p000001","ts":"2026-01-05T10:00:00Z"'
_BET = b'"round_id":"r1","currency":"EUR","game_id":"starburst","game_category":"slots"'

# One template per way a firehose breaks the contract; %(id)s makes each record unique.
POISON_TEMPLATES: tuple[Poison, ...] = (
    Poison("not_json", b'{"event_id":"%(id)s","type":"bet","player_id":"p000001","ts":"20'),
    Poison("not_json", b"\xff\xfe\x00%(id)s binary noise"),
    Poison("not_json", b"{'event_id': '%(id)s', 'type': 'login'}"),
    Poison("not_object", b'["%(id)s", "login"]'),
    Poison("not_object", b'"%(id)s"'),
    Poison("unknown_type", b'{"type":"jackpot_spin",' + _HEAD + b',"amount":"1.00"}'),
    Poison("unknown_type", b'{"type":"BET",' + _HEAD + b"}"),
    Poison(
        "naive_timestamp",
        b'{"type":"login","event_id":"%(id)s","player_id":"p000001","ts":"2026-01-05T10:00:00"}',
    ),
    Poison("missing_field", b'{"type":"deposit",' + _HEAD + b',"currency":"EUR"}'),
    Poison("missing_field", b'{"type":"login","event_id":"%(id)s","ts":"2026-01-05T10:00:00Z"}'),
    Poison("missing_field", b"{" + _HEAD + b"}"),
    Poison("invalid_field", b'{"type":"bet",' + _HEAD + b',"amount":"abc",' + _BET + b"}"),
    Poison("invalid_field", b'{"type":"bet",' + _HEAD + b',"amount":"-5.00",' + _BET + b"}"),
    Poison(
        "invalid_field",
        b'{"type":"login","event_id":"%(id)s","player_id":12345,"ts":"2026-01-05T10:00:00Z"}',
    ),
    Poison(
        "invalid_field",
        b'{"type":"login","event_id":"%(id)s","player_id":"p000001","ts":"yesterday"}',
    ),
    Poison(
        "invalid_field",
        b'{"type":"consent_change",' + _HEAD + b',"channel":"email","granted":"maybe"}',
    ),
    Poison(
        "invalid_field", b'{"type":"deposit",' + _HEAD + b',"amount":"10.00","currency":"euro"}'
    ),
)


def poison(count: int) -> list[Poison]:
    """``count`` invalid records, every kind of :data:`POISON_TEMPLATES` in turn."""
    out = []
    for n in range(count):
        template = POISON_TEMPLATES[n % len(POISON_TEMPLATES)]
        out.append(Poison(template.kind, template.raw % {b"id": b"poison%05d" % n}))
    return out


def mix_in(clean: Sequence[bytes], bad: Sequence[bytes], seed: int) -> list[bytes]:
    """``clean`` with the ``bad`` records inserted at random positions (seeded)."""
    rng = random.Random(seed)
    slots = sorted(rng.sample(range(len(clean) + len(bad)), len(bad)))
    out: list[bytes] = []
    clean_iter, bad_iter = iter(clean), iter(bad)
    taken = 0
    for slot in slots:
        while taken < slot:
            out.append(next(clean_iter))
            taken += 1
        out.append(next(bad_iter))
        taken += 1
    out.extend(clean_iter)
    return out


HOT_PLAYER = "p-hot"


def with_hot_player(records: Sequence[bytes], share: float = 0.05) -> list[bytes]:
    """``records`` plus one player, ``HOT_PLAYER``, who sends ``share`` of all records.

    The hot player registers (all consents given) and deposits before the first record,
    then plays slots round after round, a bet and its settlement in turn, each event
    stamped with the time of the record before it so the stream stays in time order.
    Every sixth round wins, so losing streaks end and start again.
    """
    every = round((1 - share) / share)  # one hot record after this many others
    first_ts = orjson.loads(records[0])["ts"]
    out = [
        orjson.dumps(
            {
                "event_id": "hot-registration",
                "type": "registration",
                "player_id": HOT_PLAYER,
                "ts": first_ts,
                "country": "MT",
                "currency": "EUR",
                "timezone": "Europe/Malta",
                "channel": "organic",
                "consents": {"email": True, "sms": True, "push": True, "in_app": True},
            }
        ),
        orjson.dumps(
            {
                "event_id": "hot-deposit",
                "type": "deposit",
                "player_id": HOT_PLAYER,
                "ts": first_ts,
                "amount": "5000.00",
                "currency": "EUR",
            }
        ),
    ]
    hot = 0
    for index, record in enumerate(records, start=1):
        out.append(record)
        if index % every:
            continue
        ts = orjson.loads(record)["ts"]
        round_no = hot // 2
        event: dict[str, object] = {
            "event_id": f"hot-{hot:07d}",
            "player_id": HOT_PLAYER,
            "ts": ts,
            "round_id": f"hot-r{round_no:07d}",
            "currency": "EUR",
        }
        if hot % 2 == 0:
            event |= {
                "type": "bet",
                "amount": "2.00",
                "game_id": "starburst",
                "game_category": "slots",
            }
        else:
            event |= {"type": "win", "amount": "5.00" if round_no % 6 == 5 else "0"}
        out.append(orjson.dumps(event))
        hot += 1
    return out
