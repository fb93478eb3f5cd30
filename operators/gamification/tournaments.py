"""Tournament settlement: final standings in, prizes out. Pure: no store, no clock.

Standings are global (every shard's players), so a tournament is not settled inside the
player operator but by a settler next to the leaderboard store
(:class:`sinks.leaderboards.settler.TournamentSettler`), which calls these functions.

Order: higher score first; on equal scores, under ``tie: earliest`` the player who reached
the score first, then the player id; under ``tie: split`` tied players share the prizes of
the ranks they occupy together, in equal parts rounded down to the cent (so a tie across
the last paid rank splits what is left of the table among everyone in it). Players below
``min_score`` place nowhere.

Prize intents have deterministic action ids: campaign ``tournament:<id>``, the player, and
occurrence ``<period>:prize`` (``<period>:finished`` for the gamification event), so a
settlement computed twice (a restart) yields the same ids, which the delivery ledger
dedups, and one player is never paid twice for one period.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from operators.gamification.intents import event_intent, reward_intent
from operators.gamification.periods import Span
from operators.gamification.program import Board, RewardSpec
from operators.rules import Intent

_NO_REACH = 2**62


class Ranked(Protocol):
    """A row of final standings (``sinks.leaderboards.Standing`` is one)."""

    @property
    def player_id(self) -> str:
        """The player."""

    @property
    def score(self) -> int:
        """Score in hundredths."""

    @property
    def reached_at(self) -> int | None:
        """Event time the score was reached, if known."""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a player finished and what they won."""

    player_id: str
    rank: int  # unique under "earliest"; the tie group's first rank under "split"
    score: int  # hundredths
    reached_at: int | None
    tied: int  # players sharing this place (1 unless split)
    reward: RewardSpec | None


def _order(row: Ranked) -> tuple[int, int, str]:
    reached = row.reached_at
    return (-row.score, _NO_REACH if reached is None else reached, row.player_id)


def placements(tournament: Board, standings: Sequence[Ranked]) -> list[Placement]:
    """The paid places of ``tournament`` from its final standings (any order)."""
    rules = tournament.tournament
    if rules is None:
        raise ValueError(f"board {tournament.id!r} is not a tournament")
    ranked = sorted((row for row in standings if row.score >= rules.min_score), key=_order)
    ranked = [row for row in ranked if row.score > 0]
    places = rules.places
    found: list[Placement] = []
    if rules.tie == "earliest":
        for rank, row in enumerate(ranked[:places], start=1):
            reward = rules.prize_for(rank)
            found.append(Placement(row.player_id, rank, row.score, row.reached_at, 1, reward))
        return found
    rank = 1
    index = 0
    while index < len(ranked) and rank <= places:
        score = ranked[index].score
        group = [row for row in ranked[index:] if row.score == score]
        pooled: RewardSpec | None = None
        for position in range(rank, rank + len(group)):
            prize = rules.prize_for(position)
            if prize is not None:
                pooled = prize if pooled is None else pooled.combined(prize)
        share = None if pooled is None else pooled.split(len(group))
        if share is not None and share.cost <= 0:
            share = None
        for row in group:
            found.append(
                Placement(row.player_id, rank, row.score, row.reached_at, len(group), share)
            )
        rank += len(group)
        index += len(group)
    return found


def prize_intents(
    tournament: Board, period: Span, placed: Sequence[Placement], version: str = ""
) -> list[Intent]:
    """For each paid placement: the ``tournament_finished`` event, then the prize."""
    intents: list[Intent] = []
    campaign = tournament.campaign_id
    for place in placed:
        if place.reward is None:
            continue
        payload: dict[str, Any] = {
            "event": "tournament_finished",
            "tournament": tournament.id,
            "name": tournament.name,
            "period": period.id,
            "rank": place.rank,
            "score": str(Decimal(place.score).scaleb(-2)),
            "tied": place.tied,
            "prize": dict(place.reward.payload),
        }
        intents.append(
            event_intent(
                campaign,
                place.player_id,
                f"{period.id}:finished",
                payload,
                at=period.end,
                version=version,
            )
        )
        detail = {"tournament": tournament.id, "period": period.id, "rank": place.rank}
        reward = RewardSpec({**place.reward.payload, **detail}, place.reward.cost)
        intents.append(
            reward_intent(
                campaign,
                place.player_id,
                f"{period.id}:prize",
                reward,
                at=period.end,
                version=version,
                currency=str(place.reward.payload.get("currency", "")),
            )
        )
    return intents


def settle(tournament: Board, period: Span, standings: Sequence[Ranked]) -> list[Intent]:
    """The prize intents of one ended period of ``tournament`` (pure and deterministic)."""
    return prize_intents(tournament, period, placements(tournament, standings))


def to_record(tournament: Board, period: Span, placed: Sequence[Placement]) -> str:
    """A settlement as the JSON text the store keeps (its first writer's wins)."""
    rows = [
        {
            "player_id": p.player_id,
            "rank": p.rank,
            "score": p.score,
            "reached_at": p.reached_at,
            "tied": p.tied,
            "reward": None if p.reward is None else p.reward.payload,
            "cost": 0 if p.reward is None else p.reward.cost,
        }
        for p in placed
    ]
    record = {"tournament": tournament.id, "period": period.id, "end": period.end, "places": rows}
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def from_record(record: str) -> list[Placement]:
    """The placements of a settlement record written by :func:`to_record`."""
    data = json.loads(record)
    return [
        Placement(
            row["player_id"],
            row["rank"],
            row["score"],
            row["reached_at"],
            row["tied"],
            None if row["reward"] is None else RewardSpec(row["reward"], row["cost"]),
        )
        for row in data["places"]
    ]


def ended_periods(tournament: Board, watermark: int, lookback: int) -> list[Span]:
    """Periods that ended at least ``settle_after`` before ``watermark``, at most
    ``lookback`` seconds before it, oldest first."""
    rules = tournament.tournament
    settle_after = 0 if rules is None else rules.settle_after
    calendar = tournament.calendar
    horizon = watermark - settle_after
    found: list[Span] = []
    if calendar.kind == "once":
        span = calendar.span((calendar.window or (0, 0))[0])
        if span.end <= horizon and span.end > watermark - lookback:
            found.append(span)
        return found
    span = calendar.previous(calendar.span(horizon))
    while span.end > watermark - lookback:
        if span.end <= horizon:
            found.append(span)
        span = calendar.previous(span)
    return found[::-1]
