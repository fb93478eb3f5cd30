"""The leaderboard store: scores per (board, period), shared by every worker.

Scores arrive as increments from the player operator (``leaderboard_score`` gamification
actions): each names a board, a period (``2026-03-02``, ``2026-W10``...), a player, an
integer delta in hundredths (:data:`SCORE_SCALE`) and the event time the score was
reached. An increment carries a *token* (the action id): a token already applied is
ignored, so a replay after a crash never counts a score twice.

Order on a board: higher score first; on equal scores the player who reached it earlier
first (a reach time is the newest event time of the player's increments, so it does not
depend on the order increments arrive in); then the player id, so the order is total and
the same on every backend. A player without a reach time ranks after those with one.

A tournament is settled once per period: :meth:`LeaderboardStore.settle_once` keeps the
first settlement record written and returns it to every later caller.

The memory implementation is :mod:`sinks.leaderboards.memory`, the Redis one
:mod:`sinks.leaderboards.redis`; one contract suite (``tests/contract/test_leaderboards.py``)
holds both to this behaviour. Errors are the guard stores' (:mod:`sinks.stores.base`).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from sinks.stores.base import MAX_EXACT_INT

SCORE_SCALE = 100
"""Scores are integers in hundredths: 1250 is a score of 12.50."""

NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
"""What a board, a period or a player id in a store may look like."""

_NO_REACH = 2**62  # sorts after every real event time


@dataclass(frozen=True, slots=True)
class Standing:
    """One player's place on a board in a period."""

    rank: int  # 1-based
    player_id: str
    score: int  # hundredths (SCORE_SCALE)
    reached_at: int | None  # event time the score was reached, if known

    @property
    def value(self) -> Decimal:
        """The score as a decimal number (``12.50``)."""
        return Decimal(self.score).scaleb(-2)


def require_key_part(value: object, what: str) -> str:
    """A board, period or player id usable in a key, or a ValueError naming ``what``."""
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise ValueError(
            f"{what} must be 1-128 characters of letters, digits and _.:-, got {value!r}"
        )
    return value


def require_delta(value: object) -> int:
    """A score increment: an integer in ``[0, 2**53)``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_EXACT_INT:
        raise ValueError(f"delta must be an integer in [0, 2**53), got {value!r}")
    return value


def require_token(value: object) -> str:
    """An idempotency token: a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"token must be a non-empty string, got {value!r}")
    return value


def require_reach(value: object) -> int | None:
    """A reach time: integer epoch seconds, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= _NO_REACH:
        raise ValueError(f"at must be integer epoch seconds or None, got {value!r}")
    return value


def require_count(value: object, what: str) -> int:
    """A count of rows: an integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {value!r}")
    return value


def order_key(player_id: str, score: int, reached_at: int | None) -> tuple[int, int, str]:
    """The sort key of a player on a board: score down, reach time up, player id up."""
    return (-score, _NO_REACH if reached_at is None else reached_at, player_id)


def ranked(entries: Iterable[tuple[str, int, int | None]], first_rank: int = 1) -> list[Standing]:
    """``(player_id, score, reached_at)`` entries as standings, in board order."""
    ordered = sorted(entries, key=lambda e: order_key(*e))
    return [
        Standing(first_rank + i, player_id, score, reached_at)
        for i, (player_id, score, reached_at) in enumerate(ordered)
    ]


class LeaderboardStore(ABC):
    """Scores per board and period; increments idempotent by token; settle once."""

    @abstractmethod
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
        """Add ``delta`` to the player's score unless ``token`` was applied already.

        ``at`` is the event time of the increment; the player's reach time becomes the
        newest one seen. Returns True when this call applied the increment. Atomic
        across workers and processes sharing the store.
        """

    @abstractmethod
    def top(self, board: str, period: str, n: int) -> list[Standing]:
        """The first ``n`` standings, in board order (fewer if fewer players scored)."""

    @abstractmethod
    def standing(self, board: str, period: str, player_id: str) -> Standing | None:
        """The player's standing, or None if they have not scored in that period."""

    @abstractmethod
    def size(self, board: str, period: str) -> int:
        """How many players have a score in that period."""

    @abstractmethod
    def periods(self, board: str) -> list[str]:
        """Every period the board has scores for, newest first (period ids sort by time)."""

    @abstractmethod
    def settle_once(self, board: str, period: str, record: str) -> tuple[str, bool]:
        """Record the settlement of a period unless one is recorded already.

        Returns ``(record kept, True)`` when this call wrote it, else the record written
        first and False. Atomic across workers and processes sharing the store.
        """

    @abstractmethod
    def settlement(self, board: str, period: str) -> str | None:
        """The settlement record of a period, or None if it is not settled."""

    def score(self, board: str, period: str, player_id: str) -> int | None:
        """The player's score in hundredths, or None if they have not scored."""
        found = self.standing(board, period, player_id)
        return None if found is None else found.score

    def rank(self, board: str, period: str, player_id: str) -> int | None:
        """The player's 1-based rank, or None if they have not scored."""
        found = self.standing(board, period, player_id)
        return None if found is None else found.rank

    def latest_period(self, board: str) -> str | None:
        """The newest period the board has scores for, if any."""
        periods = self.periods(board)
        return periods[0] if periods else None

    def top_with_ties(self, board: str, period: str, n: int) -> list[Standing]:
        """The first ``n`` standings plus everyone tied on score with the n-th.

        What a prize table needs: a tie across the last paid rank must be seen whole.
        """
        require_count(n, "n")
        if n == 0:
            return []
        want = n + 1
        while True:
            rows = self.top(board, period, want)
            if len(rows) <= n:
                return rows
            if len(rows) < want or rows[-1].score != rows[n - 1].score:
                return [row for row in rows if row.rank <= n or row.score == rows[n - 1].score]
            want *= 2
