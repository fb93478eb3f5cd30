"""In-process stores: the embedded default, one process, any number of threads.

Each store guards its state with one lock, so every operation is atomic with respect to
the others in this process, exactly as the Lua scripts make the Redis stores atomic
across processes. Nothing here is shared between processes: run ``-w 1`` (or one process
with several worker threads) with these, and Redis for anything wider.

Expiring bookkeeping (ledger entries, spend tokens) uses an injected ``clock``
(monotonic seconds by default) so tests can move it; cap windows never read a clock,
they use the ``now`` each call brings.
"""

from __future__ import annotations

import heapq
import threading
import time
import uuid
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sinks.stores.base import (
    DEFAULT_LATENESS_SECONDS,
    DEFAULT_LEDGER_TTL_SECONDS,
    BudgetNotConfiguredError,
    Budgets,
    CapRule,
    DecisionLedger,
    FrequencyCaps,
    Stores,
    SuppressionList,
    require_name,
    require_scope_part,
    require_time,
)

Clock = Callable[[], float]

SWEEP_EVERY = 10_000
"""Acquisitions between two sweeps of idle players' cap windows."""


class _ExpiringDict:
    """Values with a deadline on ``clock``; expired entries are dropped as time passes."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._entries: dict[str, tuple[float, str]] = {}
        self._heap: list[tuple[float, str]] = []

    def purge(self) -> float:
        """Drop what has expired; the current time on the clock."""
        now = self._clock()
        while self._heap and self._heap[0][0] <= now:
            deadline, key = heapq.heappop(self._heap)
            entry = self._entries.get(key)
            if entry is not None and entry[0] == deadline:
                del self._entries[key]
        return now

    def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[1]

    def put(self, key: str, value: str, deadline: float) -> None:
        self._entries[key] = (deadline, value)
        heapq.heappush(self._heap, (deadline, key))


class MemoryDecisionLedger(DecisionLedger):
    """Decisions kept in a dict, forgotten ``ttl_seconds`` after they were recorded."""

    def __init__(
        self, ttl_seconds: float = DEFAULT_LEDGER_TTL_SECONDS, clock: Clock = time.monotonic
    ) -> None:
        if require_time(ttl_seconds, "ttl_seconds") <= 0:
            raise ValueError(f"ttl_seconds must be > 0, got {ttl_seconds!r}")
        self._ttl = float(ttl_seconds)
        self._lock = threading.Lock()
        self._decisions = _ExpiringDict(clock)

    def claim(self, action_id: str, decision: str) -> str | None:
        require_name(action_id, "action_id")
        require_name(decision, "decision")
        with self._lock:
            now = self._decisions.purge()
            recorded = self._decisions.get(action_id)
            if recorded is not None:
                return recorded
            self._decisions.put(action_id, decision, now + self._ttl)
            return None

    def decision_of(self, action_id: str) -> str | None:
        require_name(action_id, "action_id")
        with self._lock:
            self._decisions.purge()
            return self._decisions.get(action_id)


class MemorySuppressionList(SuppressionList):
    """Suppressions and opt-outs in dicts keyed by player."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._suppressions: dict[str, dict[str, int | None]] = {}
        self._opt_outs: dict[str, dict[tuple[str, str | None], bool]] = {}

    def suppress_player(self, player_id: str, reason: str, until: int | None) -> None:
        require_name(player_id, "player_id")
        require_name(reason, "reason")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int)):
            raise ValueError(f"until must be integer epoch seconds or None, got {until!r}")
        with self._lock:
            self._suppressions.setdefault(player_id, {})[reason] = until

    def lift_player(self, player_id: str, reason: str | None = None) -> None:
        require_name(player_id, "player_id")
        with self._lock:
            if reason is None:
                self._suppressions.pop(player_id, None)
                return
            entries = self._suppressions.get(player_id, {})
            entries.pop(reason, None)
            if not entries:
                self._suppressions.pop(player_id, None)

    def suppressions(self, player_id: str) -> dict[str, int | None]:
        require_name(player_id, "player_id")
        with self._lock:
            return dict(self._suppressions.get(player_id, {}))

    def opt_out(self, player_id: str, channel: str, product: str | None = None) -> None:
        self._state(player_id, channel, product, opted_out=True)

    def opt_in(self, player_id: str, channel: str, product: str | None = None) -> None:
        self._state(player_id, channel, product, opted_out=False)

    def opt_out_records(self, player_id: str) -> dict[tuple[str, str | None], bool]:
        require_name(player_id, "player_id")
        with self._lock:
            return dict(self._opt_outs.get(player_id, {}))

    def _state(self, player_id: str, channel: str, product: str | None, opted_out: bool) -> None:
        require_name(player_id, "player_id")
        require_scope_part(channel, "channel")
        if product is not None:
            require_scope_part(product, "product")
        with self._lock:
            records = self._opt_outs.setdefault(player_id, {})
            if product is None:
                # A channel-wide statement replaces every product statement on the channel.
                for scope in [scope for scope in records if scope[0] == channel]:
                    del records[scope]
                if opted_out:
                    records[(channel, None)] = True
            else:
                records[(channel, product)] = opted_out
            if not records:
                del self._opt_outs[player_id]


@dataclass
class _Window:
    """One player's acquisitions under one rule, sorted by stamp."""

    stamps: list[float] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    def forget_until(self, bound: float) -> None:
        cut = bisect_right(self.stamps, bound)
        if cut:
            del self.stamps[:cut]
            del self.tokens[:cut]

    def count_after(self, start: float) -> int:
        return len(self.stamps) - bisect_right(self.stamps, start)

    def add(self, stamp: float, token: str) -> None:
        at = bisect_right(self.stamps, stamp)
        self.stamps.insert(at, stamp)
        self.tokens.insert(at, token)


class MemoryFrequencyCaps(FrequencyCaps):
    """Sliding windows as sorted stamp lists per (player, rule), trimmed as Redis trims."""

    def __init__(
        self, rules: Sequence[CapRule], lateness_seconds: float = DEFAULT_LATENESS_SECONDS
    ) -> None:
        super().__init__(rules, lateness_seconds)
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], _Window] = {}
        self._newest = float("-inf")
        self._since_sweep = 0

    def try_acquire(
        self,
        player_id: str,
        channel: str,
        kind: str,
        now: float,
        *,
        token: str | None = None,
        reserve: int = 0,
    ) -> str | None:
        rules = self._check_acquire(player_id, channel, kind, now, token=token, reserve=reserve)
        if not rules:
            return None
        member = token if token is not None else uuid.uuid4().hex
        with self._lock:
            to_charge: list[_Window] = []
            for rule in rules:
                window = self._windows.setdefault((player_id, rule.key), _Window())
                window.forget_until(self.forget_before(rule, now))
                if token is not None and token in window.tokens:
                    continue
                if window.count_after(self.window_start(rule, now)) + 1 + reserve > rule.limit:
                    return rule.key
                to_charge.append(window)
            for window in to_charge:
                window.add(now, member)
            self._maybe_sweep(now)
            return None

    def remaining(self, player_id: str, channel: str, kind: str, now: float) -> dict[str, int]:
        rules = self._check_acquire(player_id, channel, kind, now)
        with self._lock:
            left: dict[str, int] = {}
            for rule in rules:
                window = self._windows.get((player_id, rule.key))
                used = 0 if window is None else window.count_after(self.window_start(rule, now))
                left[rule.key] = max(0, rule.limit - used)
            return left

    def _maybe_sweep(self, now: float) -> None:
        """Drop windows nobody will count again, so idle players do not pile up."""
        self._newest = max(self._newest, now)
        self._since_sweep += 1
        if self._since_sweep < SWEEP_EVERY:
            return
        self._since_sweep = 0
        rules = {rule.key: rule for rule in self.rules}
        for scope, window in list(self._windows.items()):
            window.forget_until(self.forget_before(rules[scope[1]], self._newest))
            if not window.stamps:
                del self._windows[scope]


class MemoryBudgets(Budgets):
    """Budgets as caps and spent totals in a dict; spend tokens expire on ``clock``."""

    def __init__(
        self, token_ttl_seconds: float = DEFAULT_LEDGER_TTL_SECONDS, clock: Clock = time.monotonic
    ) -> None:
        if require_time(token_ttl_seconds, "token_ttl_seconds") <= 0:
            raise ValueError(f"token_ttl_seconds must be > 0, got {token_ttl_seconds!r}")
        self._token_ttl = float(token_ttl_seconds)
        self._lock = threading.Lock()
        self._tokens = _ExpiringDict(clock)
        # budget key -> (money_cap, count_cap, money_spent, count_spent)
        self._budgets: dict[str, tuple[int | None, int | None, int, int]] = {}

    def set_cap(self, budget_key: str, money_cap: int | None, count_cap: int | None) -> None:
        self._check_caps(budget_key, money_cap, count_cap)
        with self._lock:
            _, _, money_spent, count_spent = self._budgets.get(budget_key, (None, None, 0, 0))
            self._budgets[budget_key] = (money_cap, count_cap, money_spent, count_spent)

    def try_spend_all(
        self, budget_keys: Sequence[str], money: int, count: int = 1, *, token: str | None = None
    ) -> str | None:
        keys = self._check_spend(budget_keys, money, count, token)
        with self._lock:
            now = self._tokens.purge()
            if token is not None and self._tokens.get(token) is not None:
                return None
            for key in keys:
                if key not in self._budgets:
                    raise BudgetNotConfiguredError(key)
                money_cap, count_cap, money_spent, count_spent = self._budgets[key]
                if (money_cap is not None and money_spent + money > money_cap) or (
                    count_cap is not None and count_spent + count > count_cap
                ):
                    return key
            for key in keys:
                money_cap, count_cap, money_spent, count_spent = self._budgets[key]
                self._budgets[key] = (
                    money_cap,
                    count_cap,
                    money_spent + money,
                    count_spent + count,
                )
            if token is not None:
                self._tokens.put(token, "spent", now + self._token_ttl)
            return None

    def caps_and_spent(self, budget_key: str) -> tuple[int | None, int | None, int, int]:
        require_name(budget_key, "budget key")
        with self._lock:
            if budget_key not in self._budgets:
                raise BudgetNotConfiguredError(budget_key)
            return self._budgets[budget_key]


def memory_stores(
    rules: Sequence[CapRule],
    *,
    ledger_ttl_seconds: float = DEFAULT_LEDGER_TTL_SECONDS,
    lateness_seconds: float = DEFAULT_LATENESS_SECONDS,
    clock: Clock = time.monotonic,
) -> Stores:
    """The four in-process stores, for the embedded default and unit tests."""
    return Stores(
        ledger=MemoryDecisionLedger(ledger_ttl_seconds, clock),
        suppression=MemorySuppressionList(),
        caps=MemoryFrequencyCaps(rules, lateness_seconds),
        budgets=MemoryBudgets(ledger_ttl_seconds, clock),
    )
