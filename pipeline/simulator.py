"""A seeded, deterministic casino firehose: the demo's source and the benchmarks' workload.

Every player is a small state machine (register, then sessions of login, rounds of bet and
win, deposits, logout) whose next event time sits in one heap, so records come out in
non-decreasing ``ts`` order like a real firehose while each player's events stay causal.
Only ``random.Random(seed)`` is used, never the wall clock: one config, one byte stream.

Hot records are formatted from byte templates with precomputed clock strings; the rare ones
(registration, consent, profile, bonus, limits, self-exclusion) go through orjson.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import orjson

from pipeline.simulator_poison import poison_record
from pipeline.simulator_population import ARCHETYPES, Archetype, Player, allocate
from pipeline.simulator_population import markets_at as _markets_at

__all__ = ["ARCHETYPES", "EVENTS_PER_PLAYER_DAY", "SimulatorConfig", "simulate", "write_jsonl"]

EVENTS_PER_PLAYER_DAY = 40  # density used to derive the population when players is None
_DAY = 86_400
_SHIFT = 32  # heap keys are (time << _SHIFT) | player index: one int, cheap to compare
_MASK = (1 << _SHIFT) - 1
_REG, _LOGIN, _PLAY, _WIN = 0, 1, 2, 3  # what a player does when next popped
_WITHDRAW, _BONUS, _CONSENT, _PROFILE, _LIMIT, _EXCLUDE, _DEPOSIT = range(1, 8)

# Per category: hit rate, multiplier offset, Pareto tail index, cap; each gives RTP ~96%.
_PAYTABLE: dict[bytes, tuple[float, float, float, float]] = {
    b"slots": (0.30, 0.573, 1.6, 500.0),
    b"live": (0.47, 0.900, 8.0, 50.0),
    b"table": (0.47, 0.900, 8.0, 50.0),
    b"sports": (0.42, 0.786, 3.0, 50.0),
    b"other": (0.40, 0.733, 2.5, 100.0),
}
# Per category: seconds from bet to its settlement (minimum, spread).
_SETTLE: dict[bytes, tuple[int, float]] = {
    b"slots": (1, 3.0), b"live": (20, 25.0), b"table": (4, 10.0), b"sports": (60, 840.0),
    b"other": (2, 8.0),
}  # fmt: skip

_BET = (b'{"event_id":"e%08d","type":"bet","player_id":"%s","ts":"%s","round_id":"r%09d",'
        b'"amount":"%d.%02d","currency":"%s","game_id":"%s","game_category":"%s"')  # fmt: skip
_WIN_T = (b'{"event_id":"e%08d","type":"win","player_id":"%s","ts":"%s","round_id":"r%09d",'
          b'"amount":"%d.%02d","currency":"%s"}')  # fmt: skip
_SESSION = (b'{"event_id":"e%08d","type":"%s","player_id":"%s","ts":"%s",'
            b'"session_id":"s%08d","device":"%s"}')  # fmt: skip
_MONEY = (b'{"event_id":"e%08d","type":"%s","player_id":"%s","ts":"%s","amount":"%d.%02d",'
          b'"currency":"%s","method":"%s","status":"%s"}')  # fmt: skip


@dataclass(frozen=True)
class SimulatorConfig:
    """What to simulate; the same config always yields the same bytes."""

    seed: int = 42
    events: int = 200_000  # exactly this many records are produced
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)
    days: float = 35.0  # simulated span the events cover (roughly)
    players: int | None = None  # None: events / (EVENTS_PER_PLAYER_DAY * days)
    poison_rate: float = 0.0  # fraction of records that are deliberately invalid


def simulate(config: SimulatorConfig) -> Iterator[bytes]:
    """Yield ``config.events`` records, each one JSON object as bytes without a newline."""
    if config.events < 0 or config.days <= 0 or not 0.0 <= config.poison_rate <= 1.0:
        raise ValueError(f"invalid simulator config: {config!r}")
    if config.start.utcoffset() is None:
        raise ValueError(f"simulator start must carry a time zone, got {config.start!r}")
    return _Simulation(config).run()


def write_jsonl(path: Path, config: SimulatorConfig) -> int:
    """Write the simulated records to ``path``, one per line; return how many were written."""
    count = 0
    with path.open("wb") as out:
        batch: list[bytes] = []
        for record in simulate(config):
            batch.append(record)
            if len(batch) == 4096:
                out.write(b"\n".join(batch) + b"\n")
                count += len(batch)
                batch.clear()
        if batch:
            out.write(b"\n".join(batch) + b"\n")
            count += len(batch)
    return count


@cache
def _clock() -> tuple[bytes, ...]:
    """``HH:MM:SS`` for every second of a day, built once per process (~4 MB)."""
    return tuple(b"%02d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60) for s in range(_DAY))


class _Simulation:
    """One run: the population, the heap of next-event times and the id counters."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.rng = rng = random.Random(config.seed)
        self.rand = rng.random
        start = config.start.astimezone(UTC)
        self.base = datetime(start.year, start.month, start.day, tzinfo=UTC)
        self.base_weekday = self.base.weekday()
        t0 = int((start - self.base).total_seconds())
        self.clock = _clock()
        self.days: dict[int, bytes] = {}
        self.seq = self.round_seq = self.session_seq = 0
        self.remaining = config.events
        self.open_rounds = 0
        self.handlers: tuple[Callable[[Player, int], bytes], ...] = (
            self._on_registration, self._on_login, self._on_play, self._on_win,
        )  # fmt: skip
        self.markets, self.market_weights = _markets_at(self.base)
        count = config.players
        if count is None:
            count = round(config.events / (EVENTS_PER_PLAYER_DAY * config.days))
        count = max(1, count)
        self.players: list[Player] = []
        self.heap: list[int] = []
        span_days = max(1, int(config.days))
        for arch in allocate(count, rng):
            # ~60% exist from the start (register on day one); the rest arrive over the span.
            late = rng.random() >= 0.6 and span_days > 1
            self._add(arch, 1 + int(rng.random() * (span_days - 1)) if late else 0, t0)

    def _add(self, arch: Archetype, day: int, earliest: int) -> None:
        """A player registering on ``day`` at one of the archetype's local hours."""
        pick = bisect.bisect_right(self.market_weights, self.rand())
        market = self.markets[min(pick, len(self.markets) - 1)]
        player = Player(len(self.players) + 1, arch, market, self.rng)
        self.players.append(player)
        hour = arch.hours[int(self.rand() * len(arch.hours))]
        t = day * _DAY + hour * 3600 + int(self.rand() * 3600) - player.tz
        while t < earliest:
            t += _DAY
        heapq.heappush(self.heap, (t << _SHIFT) | (player.idx - 1))

    def run(self) -> Iterator[bytes]:
        """Pop the earliest player, emit its next record; near the end only settle rounds."""
        heap, players, handlers, rand = self.heap, self.players, self.handlers, self.rand
        poison_rate = self.config.poison_rate
        remaining, t = self.config.events, 0
        while remaining > 0:
            if poison_rate and remaining > self.open_rounds and rand() < poison_rate:
                victim = players[int(rand() * len(players))]
                yield poison_record(rand, self._eid(), victim.pid, self._ts(t, victim))
                remaining -= 1
                continue
            if not heap:  # everyone went quiet for good: a newcomer keeps the stream going
                self._add(ARCHETYPES[1], (t + 3600) // _DAY, t + 3600)
            key = heapq.heappop(heap)
            t = key >> _SHIFT
            player = players[key & _MASK]
            if remaining == self.open_rounds and player.state != _WIN:
                continue  # the stream is ending: only settle the rounds still open
            self.remaining = remaining
            yield handlers[player.state](player, t)
            remaining -= 1

    # -- formatting -------------------------------------------------------------------

    def _ts(self, t: int, player: Player) -> bytes:
        day, second = divmod(t + player.ts_offset, _DAY)
        prefix = self.days.get(day)
        if prefix is None:
            prefix = self.days[day] = (
                (self.base + timedelta(days=day)).strftime("%Y-%m-%dT").encode()
            )
        return prefix + self.clock[second] + player.suffix

    def _eid(self) -> int:
        self.seq += 1
        return self.seq

    def _json(self, player: Player, t: int, kind: str, fields: dict[str, object]) -> bytes:
        head = {"event_id": f"e{self._eid():08d}", "type": kind,
                "player_id": player.pid.decode(), "ts": self._ts(t, player).decode()}  # fmt: skip
        return orjson.dumps(head | fields)

    def _push(self, player: Player, t: int) -> None:
        heapq.heappush(self.heap, (t << _SHIFT) | (player.idx - 1))

    # -- state handlers: each emits one record and schedules the player's next one -----

    def _on_registration(self, p: Player, t: int) -> bytes:
        record = self._json(p, t, "registration", p.registration(self.rng, self.base.year))
        if p.arch.active_days is not None:
            low, high = p.arch.active_days
            p.active_until = t + int((low + self.rand() * (high - low)) * _DAY)
        p.state = _LOGIN
        if p.sessions_cap == 0:
            return record  # registers and is never seen again
        if self.rand() < 0.8 * (1.0 - p.arch.weekend_bias):  # most sign-ups play straight away
            self._push(p, t + 30 + int(self.rand() * 600))
        else:
            self._push(p, self._next_session(p, t))
        return record

    def _on_login(self, p: Player, t: int) -> bytes:
        rand, arch = self.rand, p.arch
        p.sessions += 1
        self.session_seq += 1
        p.session_id = self.session_seq
        mean = arch.rounds_per_session
        p.rounds_left = int(-mean * math.log(1.0 - rand())) + 1 if mean else 0
        p.bet = p.stake
        p.session_deposits = 0
        p.pick_game(self.rng)
        if rand() < arch.bonus_prob:
            p.queue.append(_BONUS)
            if arch.name == "bonus_hunter":
                p.queue.append(_DEPOSIT)  # the small deposit that unlocks the bonus, first
        u = rand()
        if u < 0.06:  # now and then a consent or profile change around a login
            p.queue.append(_CONSENT if u < 0.03 else _PROFILE)
        p.state = _PLAY
        self._push(p, t + 5 + int(rand() * 60))
        return _SESSION % (self._eid(), b"login", p.pid, self._ts(t, p), p.session_id, p.device)

    def _on_play(self, p: Player, t: int) -> bytes:
        if p.queue:
            return self._extra(p, t, p.queue.pop())
        if p.rounds_left < 0 or self.remaining <= self.open_rounds + 1:
            return self._logout(p, t)
        bet = p.bet
        if p.rounds_left == 0 or (
            p.balance + p.bonus < bet and p.session_deposits >= p.arch.max_deposits_per_session
        ):
            return self._wind_down(p, t)
        if p.balance + p.bonus < bet:
            return self._deposit(p, t)
        rand = self.rand
        if rand() < 0.05:
            p.pick_game(self.rng)
        if p.arch.chases_losses:  # reckless sizing: an eighth of the bankroll per round
            bet = min(max(bet, p.balance // 800 * 100), 20 * p.stake)
        from_bonus = min(p.bonus, bet)
        p.bonus -= from_bonus
        p.balance -= bet - from_bonus
        p.round_stake = bet
        self.round_seq += 1
        p.round_id = self.round_seq
        p.state = _WIN
        self.open_rounds += 1
        low, spread = _SETTLE[p.cat]
        self._push(p, t + low + int(rand() * spread))
        record = _BET % (self._eid(), p.pid, self._ts(t, p), p.round_id, bet // 100, bet % 100,
                         p.market.currency, p.game, p.cat)  # fmt: skip
        if from_bonus:
            return record + b',"bonus_amount":"%d.%02d"}' % (from_bonus // 100, from_bonus % 100)
        return record + b"}"

    def _on_win(self, p: Player, t: int) -> bytes:
        rand, stake = self.rand, p.round_stake
        hit, offset, alpha, cap = _PAYTABLE[p.cat]
        u = rand()
        won = 0
        if u < hit:  # reuse the draw: u / hit is uniform on [0, 1)
            won = int(stake * min(cap, offset + (1.0 - u / hit) ** (-1.0 / alpha)) + 0.5)
            p.balance += won
            if won >= 20 * stake and rand() < p.arch.withdraw_prob:
                p.queue.append(_WITHDRAW)
        self.open_rounds -= 1
        p.rounds_left -= 1
        p.state = _PLAY
        self._push(p, t + 1 + int(rand() * 2 * p.arch.think_s))
        return _WIN_T % (self._eid(), p.pid, self._ts(t, p), p.round_id, won // 100, won % 100,
                         p.market.currency)  # fmt: skip

    def _deposit(self, p: Player, t: int) -> bytes:
        rand, arch, scale = self.rand, p.arch, p.market.scale
        units = int(arch.deposit * scale * (0.6 + 0.8 * rand()))
        units = max(units // 5 * 5, p.bet * 10 // 100, 5 * scale)
        if arch.chases_losses and p.session_deposits:
            p.bet = min(p.bet * 3 // 2, p.stake * 8)  # chasing: bigger stakes, sooner deposits
        p.session_deposits += 1
        status = b"failed" if rand() < 0.03 else b"ok"
        if status == b"ok":
            p.balance += units * 100
            p.last_deposit = units * 100
        delay = 20 + int(rand() * 60) if arch.chases_losses else 5 + int(rand() * 20)
        self._push(p, t + delay)
        method = p.market.methods[int(rand() * len(p.market.methods))]
        return _MONEY % (self._eid(), b"deposit", p.pid, self._ts(t, p), units, 0,
                         p.market.currency, method, status)  # fmt: skip

    def _wind_down(self, p: Player, t: int) -> bytes:
        """End the session: queue a withdrawal or limits first, then log out."""
        rand, arch = self.rand, p.arch
        p.rounds_left = -1
        if arch.chases_losses and p.session_deposits >= 3:
            if rand() < 0.06:
                p.queue.append(_EXCLUDE)
            if rand() < 0.3:
                p.queue.append(_LIMIT)
        elif rand() < 0.003:
            p.queue.append(_LIMIT)
        ahead = p.balance > 2 * max(p.last_deposit, 1000 * p.market.scale)
        if p.balance >= 1000 * p.market.scale and rand() < arch.withdraw_prob * (ahead + 0.3):
            p.queue.append(_WITHDRAW)
        return self._on_play(p, t)

    def _logout(self, p: Player, t: int) -> bytes:
        p.state = _LOGIN
        quiet = (p.sessions_cap is not None and p.sessions >= p.sessions_cap) or (
            p.excluded_until == -1
        )
        if not quiet:
            nxt = self._next_session(p, max(t, p.excluded_until or 0))
            if p.active_until is None or nxt <= p.active_until:
                self._push(p, nxt)  # otherwise a churner, gone quiet for good
        return _SESSION % (self._eid(), b"logout", p.pid, self._ts(t, p), p.session_id, p.device)

    def _next_session(self, p: Player, t: int) -> int:
        rand, arch = self.rand, p.arch
        gap = -7.0 / arch.sessions_per_week * math.log(1.0 - rand())
        day = (t + p.tz + int(gap * _DAY)) // _DAY
        hour = arch.hours[int(rand() * len(arch.hours))]
        start = day * _DAY + hour * 3600 + int(rand() * 3600) - p.tz
        while start < t + 1800:
            start += _DAY
        if rand() < arch.weekend_bias:  # move forward to the player's local weekend
            weekday = (self.base_weekday + (start + p.tz) // _DAY) % 7
            if weekday < 5:
                start += (5 - weekday + (rand() < 0.5)) * _DAY
        return start

    def _extra(self, p: Player, t: int, kind: int) -> bytes:
        """The low-rate events: withdrawals, bonuses, consents, profile, limits, exclusion."""
        rand, rng, scale = self.rand, self.rng, p.market.scale
        if kind == _DEPOSIT:
            return self._deposit(p, t)
        if kind == _WITHDRAW:
            units = max(10 * scale, int(p.balance * (0.5 + 0.5 * rand())) // 100 // 10 * 10)
            if units * 100 > p.balance:
                return self._on_play(p, t)  # lost it again before cashing out
        self._push(p, t + 3 + int(rand() * 30))
        if kind == _WITHDRAW:
            p.balance -= units * 100
            method = p.market.methods[int(rand() * len(p.market.methods))]
            return _MONEY % (self._eid(), b"withdrawal", p.pid, self._ts(t, p), units, 0,
                             p.market.currency, method, b"ok")  # fmt: skip
        if kind == _BONUS:
            p.bonus += int((10 + 40 * rand()) * scale) * 100
            return self._json(p, t, "bonus_redeemed", p.bonus_fields(rng))
        if kind == _CONSENT:
            return self._json(p, t, "consent_change", p.consent_fields(rng))
        if kind == _PROFILE:
            return self._json(p, t, "profile_update", p.profile_fields(rng))
        if kind == _LIMIT:
            return self._json(p, t, "limit_change", p.limit_fields(rng))
        # _EXCLUDE: indefinite (null) or for 1, 3 or 6 months; play resumes after a timed one.
        p.queue.clear()
        p.rounds_left = -1
        if rand() < 0.4:
            p.excluded_until = -1
            return self._json(p, t, "self_exclusion", {"until": None})
        p.excluded_until = t + rng.choice((30, 90, 180)) * _DAY
        until = self._ts(p.excluded_until, p).decode()
        return self._json(p, t, "self_exclusion", {"until": until})
