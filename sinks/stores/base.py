"""The shared stores the guards consult, as small interfaces with one meaning.

Each store has an in-process implementation (:mod:`sinks.stores.memory`, the embedded
default) and a Redis one (:mod:`sinks.stores.redis`, shared by every worker and process);
one contract test suite (``tests/contract``) holds both to the same behaviour. The pure
rules both implementations share (which suppression wins, how consent scopes combine,
which cap rules apply, where a sliding window starts) live here, so they are written once.

Time is always passed in by the caller (event time or wall time: the caller decides);
the only clocks inside are the ones that expire bookkeeping (ledger entries, spend
tokens), which Redis keeps with its own clock and the memory stores with an injected one.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

DEFAULT_PREFIX = "pitboss:"
"""Every Redis key the stores write starts with this unless told otherwise."""

DEFAULT_LEDGER_TTL_SECONDS = 30 * 86_400
"""How long a decision (and a spend token) is remembered: longer than any replay."""

DEFAULT_LATENESS_SECONDS = 3_600
"""How far ``now`` may go back, across calls for one player, without loosening a cap."""

MAX_EXACT_INT = 2**53
"""Budget amounts stay below this so Lua's doubles compare them exactly."""

SCOPE_SEPARATOR = "\x1f"
"""Separates channel and product in opt-out records; not allowed inside either."""


class StoreError(Exception):
    """A store could not do what was asked; the message names the store and operation."""


class StoreUnavailable(StoreError):  # noqa: N818 (the guards' vocabulary: fail closed on it)
    """The backing server is unreachable or not accepting writes: fail closed."""


class BudgetNotConfiguredError(StoreError):
    """A spend or a read named a budget whose caps were never set."""

    def __init__(self, budget_key: str) -> None:
        super().__init__(
            f"budget {budget_key!r} has no caps: call set_cap({budget_key!r}, ...) at start"
        )
        self.budget_key = budget_key


# ---------------------------------------------------------------------------- validation


def require_name(value: object, what: str) -> str:
    """``value`` as a non-empty string, or a ValueError naming ``what``."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def require_time(value: object, what: str) -> float:
    """``value`` as finite epoch seconds, or a ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be finite epoch seconds, got {value!r}")
    return float(value)


def require_amount(value: object, what: str) -> int:
    """``value`` as an integer in ``[0, 2**53)``, or a ValueError naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_EXACT_INT:
        raise ValueError(f"{what} must be an integer in [0, 2**53), got {value!r}")
    return value


def require_scope_part(value: object, what: str) -> str:
    """A channel or product name usable inside an opt-out record."""
    name = require_name(value, what)
    if SCOPE_SEPARATOR in name or name == "*":
        raise ValueError(f"{what} must not be '*' nor contain \\x1f, got {name!r}")
    return name


# ---------------------------------------------------------------------------- dedup


class DecisionLedger(ABC):
    """First decision wins: an action id already decided is not decided again.

    Entries are forgotten after the ledger's TTL, which must outlast any replay.
    """

    @abstractmethod
    def claim(self, action_id: str, decision: str) -> str | None:
        """Record ``decision`` for ``action_id`` unless one is recorded already.

        Returns None when this call recorded it, else the decision recorded before
        (which is left unchanged). Atomic across workers and processes sharing the store.
        """

    @abstractmethod
    def decision_of(self, action_id: str) -> str | None:
        """The decision recorded for ``action_id``, or None if there is none."""


# ---------------------------------------------------------------------------- suppression


def active_suppression(entries: Mapping[str, int | None], now: float) -> str | None:
    """The reason that suppresses a player at ``now``, from ``reason -> until``.

    A reason is active when ``until`` is None (indefinite) or ``now < until``. When
    several are active the longest-lasting wins (indefinite first, then the latest
    ``until``, then the reason name), so the answer does not depend on storage order.
    """
    active = [
        (math.inf if until is None else until, reason)
        for reason, until in entries.items()
        if until is None or now < until
    ]
    if not active:
        return None
    return min(active, key=lambda item: (-item[0], item[1]))[1]


def opted_out(
    records: Mapping[tuple[str, str | None], bool], channel: str, product: str | None
) -> bool:
    """Whether opt-out ``records`` forbid ``channel`` for ``product``.

    ``records`` maps ``(channel, product)`` to True (opted out) or False (opted back
    in); ``product`` None is the channel-wide statement. A product statement overrides
    the channel-wide one. A message for no particular product (``product`` None) is
    about every product, so any opt-out on the channel forbids it.
    """
    channel_wide = records.get((channel, None), False)
    if product is not None:
        return records.get((channel, product), channel_wide)
    return channel_wide or any(
        out for (scope_channel, scope_product), out in records.items() if scope_channel == channel
    )


class SuppressionList(ABC):
    """The authoritative list of who must not be marketed to, consulted at send time.

    Two independent parts: player suppressions (self-exclusion, cooling-off, account
    closed for gambling reasons; several reasons may hold at once and each is lifted on
    its own) and opt-outs per channel and product.
    """

    @abstractmethod
    def suppress_player(self, player_id: str, reason: str, until: int | None) -> None:
        """Suppress ``player_id`` for ``reason`` until epoch second ``until`` (None: indefinitely).

        Suppressing again for the same reason replaces its ``until``; other reasons
        are kept.
        """

    @abstractmethod
    def lift_player(self, player_id: str, reason: str | None = None) -> None:
        """Lift one suppression ``reason``, or every suppression when ``reason`` is None."""

    @abstractmethod
    def suppressions(self, player_id: str) -> dict[str, int | None]:
        """Every recorded suppression of ``player_id``, expired or not: ``reason -> until``."""

    def is_player_suppressed(self, player_id: str, now: float) -> str | None:
        """The reason ``player_id`` is suppressed at ``now``, or None.

        See :func:`active_suppression` for which reason wins.
        """
        return active_suppression(self.suppressions(player_id), require_time(now, "now"))

    @abstractmethod
    def opt_out(self, player_id: str, channel: str, product: str | None = None) -> None:
        """Record that ``player_id`` opted out of ``channel`` for ``product`` (None: all products).

        A channel-wide opt-out replaces every product statement for that channel.
        """

    @abstractmethod
    def opt_in(self, player_id: str, channel: str, product: str | None = None) -> None:
        """Record that ``player_id`` opted back in to ``channel`` for ``product`` (None: all).

        A channel-wide opt-in clears every statement for that channel; a product opt-in
        overrides a channel-wide opt-out for that product only.
        """

    @abstractmethod
    def opt_out_records(self, player_id: str) -> dict[tuple[str, str | None], bool]:
        """Every opt-out statement of ``player_id``: ``(channel, product) -> opted out``."""

    def has_opted_out(self, player_id: str, channel: str, product: str | None = None) -> bool:
        """Whether ``player_id`` must not get ``channel`` for ``product``.

        See :func:`opted_out` for how channel-wide and product statements combine.
        """
        require_scope_part(channel, "channel")
        if product is not None:
            require_scope_part(product, "product")
        return opted_out(self.opt_out_records(player_id), channel, product)


# ---------------------------------------------------------------------------- frequency caps


@dataclass(frozen=True, init=False)
class CapRule:
    """At most ``limit`` actions per player in any ``window_seconds``, for matching actions.

    A rule applies to an action when its channel is in ``channels`` and its kind is in
    ``kinds``; None means any. ``CapRule("promo", 3, 86400, channels={"email", "sms"})``
    caps promotional messages across two channels.
    """

    key: str
    limit: int
    window_seconds: float
    channels: frozenset[str] | None
    kinds: frozenset[str] | None

    def __init__(
        self,
        key: str,
        limit: int,
        window_seconds: float,
        channels: Collection[str] | None = None,
        kinds: Collection[str] | None = None,
    ) -> None:
        require_name(key, "CapRule key")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"CapRule {key!r}: limit must be an integer >= 0, got {limit!r}")
        if require_time(window_seconds, f"CapRule {key!r} window_seconds") <= 0:
            raise ValueError(f"CapRule {key!r}: window_seconds must be > 0, got {window_seconds!r}")
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "limit", limit)
        object.__setattr__(self, "window_seconds", float(window_seconds))
        object.__setattr__(self, "channels", None if channels is None else frozenset(channels))
        object.__setattr__(self, "kinds", None if kinds is None else frozenset(kinds))

    def applies_to(self, channel: str, kind: str) -> bool:
        """Whether an action on ``channel`` of ``kind`` counts against this rule."""
        return (self.channels is None or channel in self.channels) and (
            self.kinds is None or kind in self.kinds
        )


class FrequencyCaps(ABC):
    """Sliding-window caps per player, per channel and across channels, all or none.

    At ``now`` a rule's window is ``(now - window_seconds, now]``; acquisitions stamped
    later than ``now`` (calls arriving out of order) count too, so a late call is never
    more permissive. Acquisitions older than ``now - window_seconds - lateness_seconds``
    are forgotten, so calls for one player may go back in time by up to
    ``lateness_seconds`` without loosening a cap.
    """

    def __init__(
        self, rules: Sequence[CapRule], lateness_seconds: float = DEFAULT_LATENESS_SECONDS
    ) -> None:
        keys = [rule.key for rule in rules]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ValueError(f"cap rule keys must be unique, repeated: {duplicates}")
        if require_time(lateness_seconds, "lateness_seconds") < 0:
            raise ValueError(f"lateness_seconds must be >= 0, got {lateness_seconds!r}")
        self._rules = tuple(rules)
        self._lateness = float(lateness_seconds)

    @property
    def rules(self) -> tuple[CapRule, ...]:
        """The rules, in the order they are checked."""
        return self._rules

    def applicable(self, channel: str, kind: str) -> tuple[CapRule, ...]:
        """The rules an action on ``channel`` of ``kind`` counts against, in order."""
        return tuple(rule for rule in self._rules if rule.applies_to(channel, kind))

    def window_start(self, rule: CapRule, now: float) -> float:
        """Acquisitions stamped after this count against ``rule`` at ``now``."""
        return now - rule.window_seconds

    def forget_before(self, rule: CapRule, now: float) -> float:
        """Acquisitions stamped at or before this may be dropped at ``now``."""
        return now - rule.window_seconds - self._lateness

    @abstractmethod
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
        """Take one unit of every applicable rule at ``now``, or none at all.

        Returns None when every applicable rule had room for ``1 + reserve`` units (one
        unit of each is then consumed, stamped ``now``), else the key of the first rule,
        in rule order, that had not (nothing is consumed). ``reserve`` keeps room for
        higher-priority actions: a low-priority campaign passes ``reserve=1`` so the last
        unit stays for others. ``token`` (e.g. the action id) makes the call idempotent:
        a rule already holding that token is not charged again, so a replay after a crash
        succeeds without consuming twice.
        """

    @abstractmethod
    def remaining(self, player_id: str, channel: str, kind: str, now: float) -> dict[str, int]:
        """Units left at ``now`` in each applicable rule: ``rule key -> units``, in rule order."""

    def peek(
        self, player_id: str, channel: str, kind: str, now: float, *, reserve: int = 0
    ) -> str | None:
        """The key of the first applicable rule without room for ``1 + reserve`` units, or None.

        Consumes nothing; an answer may be stale by the time it is acted on, so decide
        with :meth:`try_acquire` (and its ``reserve``) when it matters.
        """
        for key, units in self.remaining(player_id, channel, kind, now).items():
            if units < 1 + reserve:
                return key
        return None

    def _check_acquire(
        self,
        player_id: str,
        channel: str,
        kind: str,
        now: float,
        *,
        token: str | None = None,
        reserve: int = 0,
    ) -> tuple[CapRule, ...]:
        """Validate arguments; the applicable rules."""
        require_name(player_id, "player_id")
        require_name(channel, "channel")
        require_name(kind, "kind")
        require_time(now, "now")
        if token is not None:
            require_name(token, "token")
        if isinstance(reserve, bool) or not isinstance(reserve, int) or reserve < 0:
            raise ValueError(f"reserve must be an integer >= 0, got {reserve!r}")
        return self.applicable(channel, kind)


# ---------------------------------------------------------------------------- budgets


class Budgets(ABC):
    """Campaign and reward budgets in money (integer minor units) and in count.

    Global across workers and never overspent: a spend checks every cap and charges
    every dimension, or does nothing. A budget must be configured with :meth:`set_cap`
    before it is spent or read; raising its cap later makes spending possible again.
    """

    @abstractmethod
    def set_cap(self, budget_key: str, money_cap: int | None, count_cap: int | None) -> None:
        """Set (or change) the caps of ``budget_key``; None is unlimited. Spent totals are kept."""

    @abstractmethod
    def try_spend_all(
        self, budget_keys: Sequence[str], money: int, count: int = 1, *, token: str | None = None
    ) -> str | None:
        """Charge ``money`` and ``count`` to every budget in ``budget_keys``, or to none.

        Returns None when every budget had room (and was charged), else the first key
        that had not. ``token`` (e.g. the action id) makes the spend idempotent for the
        ledger's TTL: a spend already made under that token succeeds without charging.
        Raises :class:`BudgetNotConfiguredError` for a key without caps.
        """

    def try_spend(
        self, budget_key: str, money: int, count: int = 1, *, token: str | None = None
    ) -> bool:
        """Charge one budget; True if it had room (see :meth:`try_spend_all`)."""
        return self.try_spend_all((budget_key,), money, count, token=token) is None

    @abstractmethod
    def caps_and_spent(self, budget_key: str) -> tuple[int | None, int | None, int, int]:
        """``(money_cap, count_cap, money_spent, count_spent)`` of a configured budget."""

    def spent(self, budget_key: str) -> tuple[int, int]:
        """``(money_spent, count_spent)`` so far."""
        _, _, money_spent, count_spent = self.caps_and_spent(budget_key)
        return money_spent, count_spent

    def remaining(self, budget_key: str) -> tuple[int | None, int | None]:
        """``(money_left, count_left)``; None for an unlimited dimension, never negative."""
        money_cap, count_cap, money_spent, count_spent = self.caps_and_spent(budget_key)
        return (
            None if money_cap is None else max(0, money_cap - money_spent),
            None if count_cap is None else max(0, count_cap - count_spent),
        )

    def is_exhausted(self, budget_key: str) -> bool:
        """Whether a capped dimension has nothing left (the campaign should pause)."""
        return any(left is not None and left <= 0 for left in self.remaining(budget_key))

    @staticmethod
    def _check_spend(
        budget_keys: Sequence[str], money: int, count: int, token: str | None
    ) -> tuple[str, ...]:
        """Validate a spend's arguments; the keys as a tuple."""
        if isinstance(budget_keys, str):
            raise ValueError(
                f"budget_keys must be a sequence of keys, got the string {budget_keys!r}"
            )
        keys = tuple(require_name(key, "budget key") for key in budget_keys)
        if not keys:
            raise ValueError("budget_keys must name at least one budget")
        if len(set(keys)) != len(keys):
            raise ValueError(f"budget_keys must not repeat a key, got {list(keys)}")
        require_amount(money, "money")
        require_amount(count, "count")
        if token is not None:
            require_name(token, "token")
        return keys

    @staticmethod
    def _check_caps(budget_key: str, money_cap: int | None, count_cap: int | None) -> None:
        require_name(budget_key, "budget key")
        if money_cap is not None:
            require_amount(money_cap, f"money_cap of budget {budget_key!r}")
        if count_cap is not None:
            require_amount(count_cap, f"count_cap of budget {budget_key!r}")


# ---------------------------------------------------------------------------- bundle


@dataclass(frozen=True)
class Stores:
    """The four stores the guards consult, built together from one backend."""

    ledger: DecisionLedger
    suppression: SuppressionList
    caps: FrequencyCaps
    budgets: Budgets
