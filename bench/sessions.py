"""Typical players' sessions as firehose records, shared by the memory benchmarks.

``first_session`` is a new player's first visit (registration, login, deposit and three
settled rounds: two on slots, one live); ``second_session`` a return visit (login,
deposit, two rounds). Event times step forward within a session.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def iso(ts: int) -> str:
    """Epoch seconds as the firehose's ISO 8601 UTC text."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def first_session(index: int, ts: int) -> list[dict[str, Any]]:
    """Player ``index``'s first visit, starting at ``ts``."""
    pid = f"p{index:07d}"
    out: list[dict[str, Any]] = [
        {
            "event_id": f"{pid}-r",
            "type": "registration",
            "player_id": pid,
            "ts": iso(ts),
            "country": "DE",
            "currency": "EUR",
            "timezone": "Europe/Berlin",
            "channel": "organic",
            "consents": {"email": True, "sms": index % 2 == 0, "push": False, "in_app": True},
            "locale": "de",
            "birth_date": "1990-05-17",
        },
        {"event_id": f"{pid}-l", "type": "login", "player_id": pid, "ts": iso(ts + 10)},
        {
            "event_id": f"{pid}-d",
            "type": "deposit",
            "player_id": pid,
            "ts": iso(ts + 20),
            "amount": "25.00",
            "currency": "EUR",
        },
    ]
    return out + rounds(pid, "a", ts + 30, ("slots", "slots", "live"))


def second_session(index: int, ts: int) -> list[dict[str, Any]]:
    """Player ``index``'s return visit, starting at ``ts``."""
    pid = f"p{index:07d}"
    out: list[dict[str, Any]] = [
        {"event_id": f"{pid}-l2", "type": "login", "player_id": pid, "ts": iso(ts)},
        {
            "event_id": f"{pid}-d2",
            "type": "deposit",
            "player_id": pid,
            "ts": iso(ts + 10),
            "amount": "40.00",
            "currency": "EUR",
        },
    ]
    return out + rounds(pid, "b", ts + 20, ("live", "table"))


def rounds(pid: str, tag: str, ts: int, categories: tuple[str, ...]) -> list[dict[str, Any]]:
    """A bet and its settlement per category, 20 s apart; every other round is lost."""
    out: list[dict[str, Any]] = []
    for n, category in enumerate(categories):
        round_id = f"{pid}-{tag}{n}"
        at = iso(ts + 20 * n)
        out.append(
            {
                "event_id": f"{round_id}-b",
                "type": "bet",
                "player_id": pid,
                "ts": at,
                "round_id": round_id,
                "amount": "1.50",
                "currency": "EUR",
                "game_id": "book_of_dead",
                "game_category": category,
            }
        )
        out.append(
            {
                "event_id": f"{round_id}-w",
                "type": "win",
                "player_id": pid,
                "ts": at,
                "round_id": round_id,
                "amount": "0" if n % 2 else "3.00",
                "currency": "EUR",
            }
        )
    return out
