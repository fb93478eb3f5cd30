"""Pay each ended tournament once, from the shared standings, even across restarts.

A tournament's standings are global (every shard and worker adds to them), so it is
settled here, beside the leaderboard store, not in a player's shard. Given the event-time
watermark, :meth:`TournamentSettler.due` settles every period that ended at least
``settle_after`` before it:

1. read the final standings (the paid places, and everyone tied with the last one);
2. compute the placements (:func:`operators.gamification.tournaments.placements`);
3. record them with :meth:`~sinks.leaderboards.base.LeaderboardStore.settle_once`: the
   first record written wins, and every later settlement (another worker, a restart)
   reads it back instead of recomputing, so late scores cannot change who is paid;
4. turn the recorded placements into prize actions with deterministic ids.

A settler re-emits a settlement once per process lifetime (so a crash between recording
and delivering loses nothing); the delivery ledger drops the repeated action ids. Periods
that ended more than ``lookback_seconds`` before the watermark are not looked at again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from operators.actions import Action, Decision
from operators.gamification.periods import Span
from operators.gamification.program import Board
from operators.gamification.tournaments import (
    ended_periods,
    from_record,
    placements,
    prize_intents,
    to_record,
)
from operators.guards import to_action as guard_action
from operators.rules import Intent
from sinks.leaderboards.base import LeaderboardStore

log = logging.getLogger(__name__)

DEFAULT_LOOKBACK_SECONDS = 7 * 86_400
"""How far back a settler looks for ended periods it has not emitted yet."""


def to_action(intent: Intent, decision: str = Decision.SENT.value) -> Action:
    """A settlement intent as an action for the delivery guards (dedup, budgets...).

    Settlement happens outside the player operator, so the state-based guards have not
    run: the delivery stage's shared suppression list applies.
    """
    return guard_action(intent, decision)


class TournamentSettler:
    """Settles the tournaments of a gamification program against a leaderboard store."""

    def __init__(
        self,
        store: LeaderboardStore,
        tournaments: Sequence[Board],
        *,
        lookback_seconds: int = DEFAULT_LOOKBACK_SECONDS,
        version: str = "",
    ) -> None:
        missing = [board.id for board in tournaments if board.tournament is None]
        if missing:
            raise ValueError(f"not tournaments (no prize table): {missing}")
        self._store = store
        self._tournaments = tuple(tournaments)
        self._lookback = lookback_seconds
        self._version = version
        self._emitted: set[tuple[str, str]] = set()
        # Per tournament, the watermark before which no further period can have ended:
        # the set of ended periods only grows when the settlement horizon enters the next
        # period, so the calls in between (one per item of the flow) return at once.
        self._quiet_until: dict[str, int] = {}

    def due(self, watermark: int) -> list[Action]:
        """Prize actions of every period ended by ``watermark`` not yet emitted here."""
        actions: list[Action] = []
        for tournament in self._tournaments:
            if watermark < self._quiet_until.get(tournament.id, watermark):
                continue
            for period in ended_periods(tournament, watermark, self._lookback):
                key = (tournament.id, period.id)
                if key in self._emitted:
                    continue
                actions.extend(self.settle(tournament, period))
                self._emitted.add(key)
            settle_after = tournament.tournament.settle_after if tournament.tournament else 0
            current = tournament.calendar.span(watermark - settle_after)
            self._quiet_until[tournament.id] = current.end + settle_after
        return actions

    def settle(self, tournament: Board, period: Span) -> list[Action]:
        """Settle one period (idempotent through the store's settlement record)."""
        rules = tournament.tournament
        if rules is None:
            raise ValueError(f"board {tournament.id!r} is not a tournament")
        standings = self._store.top_with_ties(tournament.id, period.id, rules.places)
        record = to_record(tournament, period, placements(tournament, standings))
        kept, fresh = self._store.settle_once(tournament.id, period.id, record)
        placed = from_record(kept)
        log.info(
            "tournament %s period %s: %s, %d paid places",
            tournament.id,
            period.id,
            "settled" if fresh else "already settled, re-emitting the recorded prizes",
            sum(1 for p in placed if p.reward is not None),
        )
        intents = prize_intents(tournament, period, placed, self._version)
        return [to_action(intent) for intent in intents]
