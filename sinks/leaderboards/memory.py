"""The in-process leaderboard store: the embedded default, one process, any threads.

One lock makes every operation atomic with respect to the others, as the Lua scripts do
for the Redis store. Nothing expires here: a long-running embedded job keeps every
period it has seen (the Redis store lets old periods expire).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sinks.leaderboards.base import (
    LeaderboardStore,
    Standing,
    order_key,
    ranked,
    require_count,
    require_delta,
    require_key_part,
    require_reach,
    require_token,
)


@dataclass
class _Board:
    scores: dict[str, int] = field(default_factory=dict)
    reached: dict[str, int] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)

    def entries(self) -> list[tuple[str, int, int | None]]:
        return [(pid, score, self.reached.get(pid)) for pid, score in self.scores.items()]


class MemoryLeaderboardStore(LeaderboardStore):
    """Scores in dicts keyed by (board, period)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._boards: dict[tuple[str, str], _Board] = {}
        self._periods: dict[str, set[str]] = {}
        self._settled: dict[tuple[str, str], str] = {}

    def add(
        self,
        board: str,
        period: str,
        player_id: str,
        delta: int,
        token: str,
        *,
        at: int | None = None,
    ) -> bool:
        key = (require_key_part(board, "board"), require_key_part(period, "period"))
        require_key_part(player_id, "player_id")
        require_delta(delta)
        require_token(token)
        require_reach(at)
        with self._lock:
            entry = self._boards.get(key)
            if entry is None:
                entry = self._boards[key] = _Board()
                self._periods.setdefault(board, set()).add(period)
            if token in entry.tokens:
                return False
            entry.tokens.add(token)
            entry.scores[player_id] = entry.scores.get(player_id, 0) + delta
            if at is not None and at > entry.reached.get(player_id, at - 1):
                entry.reached[player_id] = at
            return True

    def top(self, board: str, period: str, n: int) -> list[Standing]:
        key = (require_key_part(board, "board"), require_key_part(period, "period"))
        require_count(n, "n")
        with self._lock:
            entry = self._boards.get(key)
            entries = entry.entries() if entry is not None else []
        return ranked(entries)[:n]

    def standing(self, board: str, period: str, player_id: str) -> Standing | None:
        key = (require_key_part(board, "board"), require_key_part(period, "period"))
        require_key_part(player_id, "player_id")
        with self._lock:
            entry = self._boards.get(key)
            if entry is None or player_id not in entry.scores:
                return None
            score, reached = entry.scores[player_id], entry.reached.get(player_id)
            mine = order_key(player_id, score, reached)
            ahead = sum(1 for e in entry.entries() if order_key(*e) < mine)
            return Standing(ahead + 1, player_id, score, reached)

    def size(self, board: str, period: str) -> int:
        key = (require_key_part(board, "board"), require_key_part(period, "period"))
        with self._lock:
            entry = self._boards.get(key)
            return 0 if entry is None else len(entry.scores)

    def periods(self, board: str) -> list[str]:
        require_key_part(board, "board")
        with self._lock:
            return sorted(self._periods.get(board, ()), reverse=True)

    def settle_once(self, board: str, period: str, record: str) -> tuple[str, bool]:
        key = (require_key_part(board, "board"), require_key_part(period, "period"))
        if not isinstance(record, str) or not record:
            raise ValueError(f"record must be a non-empty string, got {record!r}")
        with self._lock:
            kept = self._settled.get(key)
            if kept is not None:
                return kept, False
            self._settled[key] = record
            return record, True

    def settlement(self, board: str, period: str) -> str | None:
        key = (require_key_part(board, "board"), require_key_part(period, "period"))
        with self._lock:
            return self._settled.get(key)
