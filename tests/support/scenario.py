"""Build scripted event streams for tests: readable, explicit, in event time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import orjson
from pydantic import TypeAdapter

from pipeline.events import Event
from pipeline.records import RawBatch

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
_EVENT = TypeAdapter(Event)


class Script:
    """An event script: ``s.at(days=1).bet("p1", "5.00")`` appends events in order."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self.records: list[dict[str, Any]] = []
        self._ids = count(1)

    def __repr__(self) -> str:
        return (
            "Script("
            + ", ".join(f"{r['ts'][5:19]} {r['type']} {r['player_id']}" for r in self.records)
            + ")"
        )

    def at(self, **delta: float) -> Script:
        """Move the script's clock to start + delta (absolute, not relative)."""
        self.now = T0 + timedelta(**delta)
        return self

    def after(self, **delta: float) -> Script:
        """Move the script's clock forward by delta."""
        self.now += timedelta(**delta)
        return self

    def add(self, etype: str, player_id: str, **fields: Any) -> Script:
        record = {
            "event_id": f"e{next(self._ids)}",
            "type": etype,
            "player_id": player_id,
            "ts": self.now.isoformat().replace("+00:00", "Z"),
            **fields,
        }
        self.records.append(record)
        return self

    def register(self, player_id: str, **fields: Any) -> Script:
        consents = fields.pop(
            "consents", {"email": True, "sms": True, "push": True, "in_app": True}
        )
        return self.add(
            "registration",
            player_id,
            country=fields.pop("country", "DE"),
            currency=fields.pop("currency", "EUR"),
            timezone=fields.pop("timezone", "Europe/Berlin"),
            channel=fields.pop("channel", "organic"),
            consents=consents,
            locale=fields.pop("locale", "en"),
            **fields,
        )

    def login(self, player_id: str) -> Script:
        return self.add("login", player_id)

    def deposit(self, player_id: str, amount: str = "20.00") -> Script:
        return self.add("deposit", player_id, amount=amount, currency="EUR")

    def round(self, player_id: str, stake: str, win: str, category: str = "slots") -> Script:
        rid = f"r{len(self.records)}"
        self.add(
            "bet",
            player_id,
            round_id=rid,
            amount=stake,
            currency="EUR",
            game_id="g1",
            game_category=category,
        )
        return self.add("win", player_id, round_id=rid, amount=win, currency="EUR")

    def lines(self) -> list[bytes]:
        return [orjson.dumps(r) for r in self.records]

    def events(self) -> list[tuple[int, Event]]:
        out = []
        for raw in self.lines():
            event = _EVENT.validate_json(raw)
            out.append((int(event.ts.timestamp()), event))
        return out

    def batches(self, size: int, source: str = "test") -> list[RawBatch]:
        lines = self.lines()
        return [
            RawBatch(
                source, lines[i : i + size], list(range(i + 1, i + 1 + len(lines[i : i + size])))
            )
            for i in range(0, len(lines), size)
        ]


def epoch(dt: datetime) -> int:
    return int(dt.timestamp())


def day(n: float) -> int:
    """Event time n days after T0."""
    return epoch(T0 + timedelta(days=n))


def by_campaign(actions: Iterable[Any]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for action in actions:
        out.setdefault(action.campaign_id, []).append(action)
    return out


ZONES = ("Europe/Berlin", "America/Toronto", "Asia/Tokyo")
"""Time zones the random populations' players register in (by player number)."""


def random_step(s: Script, player: int, what: str, gap: int, *, losses: int) -> bool:
    """One step of a random population's player ``p{player}``, ``gap`` seconds after the
    previous one: register, login, deposit, lose (``gap % losses`` lost rounds), win,
    vip or code. False for any other ``what``, which the caller's stream defines."""
    s.after(seconds=gap)
    pid = f"p{player}"
    if what == "register":
        s.register(pid, timezone=ZONES[player % 3], birth_date=f"1990-03-{10 + player:02d}")
    elif what == "login":
        s.login(pid)
    elif what == "deposit":
        s.deposit(pid, "30")
    elif what == "lose":
        for _ in range(gap % losses):
            s.round(pid, "1.00", "0", category="live" if gap % 2 else "slots")
    elif what == "win":
        s.round(pid, "1.00", "3.00")
    elif what == "vip":
        s.add("profile_update", pid, attributes={}, vip_level=1 + gap % 3)
    elif what == "code":
        s.add("bonus_redeemed", pid, code="WEEKEND25")
    else:
        return False
    return True
