"""Redis stores: shared by every worker and process, atomic through Lua scripts.

Every check-then-write is one Lua script (shipped beside this module in ``lua/`` and
registered once per store), so two workers can never both take the last unit of a cap or
of a budget. Reads that only observe use plain commands.

Why Lua and not ``limits``: the ``limits`` moving-window strategy (``acquire_entry``)
takes one key at a time and stamps entries with ``time.time()`` inside the storage. A
guard needs an action to take one unit of *every* applicable rule (the SMS cap and the
cross-channel promo cap) or of none, with the caller's event time as the stamp; chaining
per-key acquisitions would need compensation and would still expose a window where a
unit is held that the action never uses. So this module follows the ``limits`` design
(one API over pluggable storages, Lua shipped as package data, one contract suite) with
its own all-or-none script: one sorted set per (player, rule), scored by stamp, trimmed
by score, counted with ``ZCOUNT`` and added to all or none.

Keys, all under the configurable prefix (default ``pitboss:``):

- ``ledger:<action_id>``: string, the first decision; expires after the ledger TTL.
- ``suppression:<player_id>``: hash ``reason -> until`` ('' for indefinite).
- ``optout:<player_id>``: hash ``<channel>\\x1f<product or *> -> '1' | '0'``.
- ``cap:{<player_id>}:<rule key>``: sorted set of acquisitions; the hash tag keeps one
  player's rules in one Redis Cluster slot so the script may touch them together.
- ``{budgets}:budget:<budget key>`` and ``{budgets}:spend:<token>``: one slot for every
  budget, so a reward can be charged to its campaign and its reward type at once.

Failure mode: when Redis cannot be reached (connection refused, timeout, loading,
read-only replica after a failover) every method raises :class:`StoreUnavailable`
chained to the client's error, so the guards can fail closed. Build the client with
:func:`connect` (small socket timeouts, one quick retry) so that happens fast.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from importlib import resources
from typing import Any

import redis
from redis.backoff import ConstantBackoff
from redis.commands.core import Script
from redis.exceptions import (
    ClusterDownError,
    ReadOnlyError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)
from redis.retry import Retry

from sinks.stores.base import (
    DEFAULT_LATENESS_SECONDS,
    DEFAULT_LEDGER_TTL_SECONDS,
    DEFAULT_PREFIX,
    SCOPE_SEPARATOR,
    BudgetNotConfiguredError,
    Budgets,
    CapRule,
    DecisionLedger,
    FrequencyCaps,
    StoreError,
    Stores,
    StoreUnavailable,
    SuppressionList,
    require_name,
    require_scope_part,
    require_time,
)

UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,
    TryAgainError,
    ClusterDownError,
)
"""Errors that mean "Redis is not there right now", as opposed to a bad request."""


@cache
def lua_script(name: str, package: str = "sinks.stores") -> str:
    """The text of ``lua/<name>.lua`` shipped as package data of ``package``."""
    return (resources.files(package) / "lua" / f"{name}.lua").read_text(encoding="utf-8")


def connect(
    url: str, *, socket_timeout: float = 0.25, retries: int = 1, **options: Any
) -> redis.Redis:
    """A client for the stores: small timeouts and a quick retry, so an outage is seen fast.

    redis-py's default retry backs off for seconds; a guard on the hot path would rather
    fail closed within a fraction of a second. ``options`` go to :func:`redis.from_url`.
    """
    client: redis.Redis = redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(ConstantBackoff(0.01), retries),
        **options,
    )
    return client


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _score(value: float) -> str:
    """A stamp as Redis reads it back exactly (the shortest round-trip repr)."""
    return repr(float(value))


class RedisStore:
    """A client, a key prefix, registered scripts and the error translation."""

    _store_name = "store"

    def __init__(self, client: redis.Redis, prefix: str, scripts: Sequence[str]) -> None:
        if not isinstance(prefix, str):
            raise ValueError(f"prefix must be a string, got {prefix!r}")
        self._client = client
        self._prefix = prefix
        self._scripts: dict[str, Script] = {
            name: client.register_script(lua_script(name)) for name in scripts
        }

    @property
    def prefix(self) -> str:
        """The prefix of every key this store writes."""
        return self._prefix

    def _where(self) -> str:
        kwargs = self._client.connection_pool.connection_kwargs
        address = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
        return f"Redis {self._store_name} at {address} (prefix {self._prefix!r})"

    @contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        try:
            yield
        except UNAVAILABLE as exc:
            raise StoreUnavailable(
                f"{self._where()}: {operation} failed, Redis unavailable: {exc}"
            ) from exc
        except RedisError as exc:
            raise StoreError(f"{self._where()}: {operation} failed: {exc}") from exc

    def _run(self, operation: str, call: Callable[[], Any]) -> Any:
        with self._errors(operation):
            return call()

    def _script(self, operation: str, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        script = self._scripts[name]
        with self._errors(operation):
            return script(keys=list(keys), args=list(args))


class RedisDecisionLedger(RedisStore, DecisionLedger):
    """First decision per action id, as a string key with a TTL (set atomically by Lua)."""

    _store_name = "decision ledger"

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = DEFAULT_PREFIX,
        ttl_seconds: float = DEFAULT_LEDGER_TTL_SECONDS,
    ) -> None:
        super().__init__(client, prefix, ("claim",))
        if require_time(ttl_seconds, "ttl_seconds") <= 0:
            raise ValueError(f"ttl_seconds must be > 0, got {ttl_seconds!r}")
        self._ttl_ms = max(1, round(ttl_seconds * 1000))

    def _key(self, action_id: str) -> str:
        return f"{self._prefix}ledger:{require_name(action_id, 'action_id')}"

    def claim(self, action_id: str, decision: str) -> str | None:
        key = self._key(action_id)
        require_name(decision, "decision")
        recorded = self._script("claim", "claim", (key,), (decision, self._ttl_ms))
        return None if recorded is None else _text(recorded)

    def decision_of(self, action_id: str) -> str | None:
        key = self._key(action_id)
        recorded = self._run("decision_of", lambda: self._client.get(key))
        return None if recorded is None else _text(recorded)


class RedisSuppressionList(RedisStore, SuppressionList):
    """Suppressions and opt-outs as one hash per player each."""

    _store_name = "suppression list"

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        super().__init__(client, prefix, ("consent",))

    def _suppression_key(self, player_id: str) -> str:
        return f"{self._prefix}suppression:{require_name(player_id, 'player_id')}"

    def _opt_out_key(self, player_id: str) -> str:
        return f"{self._prefix}optout:{require_name(player_id, 'player_id')}"

    def suppress_player(self, player_id: str, reason: str, until: int | None) -> None:
        key = self._suppression_key(player_id)
        require_name(reason, "reason")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int)):
            raise ValueError(f"until must be integer epoch seconds or None, got {until!r}")
        value = "" if until is None else str(until)
        self._run("suppress_player", lambda: self._client.hset(key, reason, value))

    def lift_player(self, player_id: str, reason: str | None = None) -> None:
        key = self._suppression_key(player_id)
        if reason is None:
            self._run("lift_player", lambda: self._client.delete(key))
        else:
            self._run("lift_player", lambda: self._client.hdel(key, reason))

    def suppressions(self, player_id: str) -> dict[str, int | None]:
        key = self._suppression_key(player_id)
        raw: dict[Any, Any] = self._run("suppressions", lambda: self._client.hgetall(key))
        entries: dict[str, int | None] = {}
        for reason, until in raw.items():
            text = _text(until)
            entries[_text(reason)] = None if text == "" else int(text)
        return entries

    def opt_out(self, player_id: str, channel: str, product: str | None = None) -> None:
        self._statement("opt_out", player_id, channel, product, "1")

    def opt_in(self, player_id: str, channel: str, product: str | None = None) -> None:
        self._statement("opt_in", player_id, channel, product, "0")

    def _statement(
        self, operation: str, player_id: str, channel: str, product: str | None, flag: str
    ) -> None:
        key = self._opt_out_key(player_id)
        require_scope_part(channel, "channel")
        if product is not None:
            require_scope_part(product, "product")
        self._script(operation, "consent", (key,), (channel, product or "", flag))

    def opt_out_records(self, player_id: str) -> dict[tuple[str, str | None], bool]:
        key = self._opt_out_key(player_id)
        raw: dict[Any, Any] = self._run("opt_out_records", lambda: self._client.hgetall(key))
        records: dict[tuple[str, str | None], bool] = {}
        for name, flag in raw.items():
            channel, _, product = _text(name).partition(SCOPE_SEPARATOR)
            records[(channel, None if product == "*" else product)] = _text(flag) == "1"
        return records


class RedisFrequencyCaps(RedisStore, FrequencyCaps):
    """Sliding windows as one sorted set per (player, rule), acquired all-or-none in Lua.

    Each key expires ``window + lateness`` seconds of wall time after its last
    acquisition; that only collects garbage (correctness comes from trimming by score),
    and keeps working while event time lags wall time by less than ``lateness``.
    """

    _store_name = "frequency caps"

    def __init__(
        self,
        client: redis.Redis,
        rules: Sequence[CapRule],
        prefix: str = DEFAULT_PREFIX,
        lateness_seconds: float = DEFAULT_LATENESS_SECONDS,
    ) -> None:
        FrequencyCaps.__init__(self, rules, lateness_seconds)
        RedisStore.__init__(self, client, prefix, ("acquire",))

    def _key(self, player_id: str, rule: CapRule) -> str:
        return f"{self._prefix}cap:{{{player_id}}}:{rule.key}"

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
        args: list[Any] = [_score(now), token if token is not None else uuid.uuid4().hex, reserve]
        for rule in rules:
            retention_ms = max(1, round((rule.window_seconds + self._lateness) * 1000))
            args += [
                rule.limit,
                "(" + _score(self.window_start(rule, now)),
                _score(self.forget_before(rule, now)),
                retention_ms,
            ]
        keys = [self._key(player_id, rule) for rule in rules]
        refused = int(self._script("try_acquire", "acquire", keys, args))
        return None if refused == 0 else rules[refused - 1].key

    def remaining(self, player_id: str, channel: str, kind: str, now: float) -> dict[str, int]:
        rules = self._check_acquire(player_id, channel, kind, now)
        if not rules:
            return {}

        def counts() -> list[Any]:
            pipe = self._client.pipeline(transaction=False)
            for rule in rules:
                start = "(" + _score(self.window_start(rule, now))
                pipe.zcount(self._key(player_id, rule), start, "+inf")
            return pipe.execute()

        used = self._run("remaining", counts)
        return {
            rule.key: max(0, rule.limit - int(count))
            for rule, count in zip(rules, used, strict=True)
        }


class RedisBudgets(RedisStore, Budgets):
    """Budgets as one hash each, spent all-or-none by Lua; spend tokens expire after a TTL."""

    _store_name = "budgets"

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = DEFAULT_PREFIX,
        token_ttl_seconds: float = DEFAULT_LEDGER_TTL_SECONDS,
    ) -> None:
        super().__init__(client, prefix, ("spend", "set_cap"))
        if require_time(token_ttl_seconds, "token_ttl_seconds") <= 0:
            raise ValueError(f"token_ttl_seconds must be > 0, got {token_ttl_seconds!r}")
        self._token_ttl_ms = max(1, round(token_ttl_seconds * 1000))

    def _key(self, budget_key: str) -> str:
        return f"{self._prefix}{{budgets}}:budget:{budget_key}"

    def set_cap(self, budget_key: str, money_cap: int | None, count_cap: int | None) -> None:
        self._check_caps(budget_key, money_cap, count_cap)
        args = ["" if cap is None else cap for cap in (money_cap, count_cap)]
        self._script("set_cap", "set_cap", (self._key(budget_key),), args)

    def try_spend_all(
        self, budget_keys: Sequence[str], money: int, count: int = 1, *, token: str | None = None
    ) -> str | None:
        keys = self._check_spend(budget_keys, money, count, token)
        redis_keys = [self._key(key) for key in keys]
        if token is not None:
            redis_keys.append(f"{self._prefix}{{budgets}}:spend:{token}")
        args = (money, count, len(keys), self._token_ttl_ms)
        outcome = int(self._script("try_spend", "spend", redis_keys, args))
        if outcome < 0:
            raise BudgetNotConfiguredError(keys[-outcome - 1])
        return None if outcome == 0 else keys[outcome - 1]

    def caps_and_spent(self, budget_key: str) -> tuple[int | None, int | None, int, int]:
        key = self._key(require_name(budget_key, "budget key"))
        fields = ["configured", "money_cap", "count_cap", "money_spent", "count_spent"]
        raw: list[Any] = self._run("caps_and_spent", lambda: self._client.hmget(key, fields))
        configured, money_cap, count_cap, money_spent, count_spent = raw
        if configured is None:
            raise BudgetNotConfiguredError(budget_key)
        return (
            None if money_cap is None else int(money_cap),
            None if count_cap is None else int(count_cap),
            int(money_spent or 0),
            int(count_spent or 0),
        )


def redis_stores(
    client: redis.Redis,
    rules: Sequence[CapRule],
    *,
    prefix: str = DEFAULT_PREFIX,
    ledger_ttl_seconds: float = DEFAULT_LEDGER_TTL_SECONDS,
    lateness_seconds: float = DEFAULT_LATENESS_SECONDS,
) -> Stores:
    """The four Redis stores over one client and one key prefix."""
    return Stores(
        ledger=RedisDecisionLedger(client, prefix, ledger_ttl_seconds),
        suppression=RedisSuppressionList(client, prefix),
        caps=RedisFrequencyCaps(client, rules, prefix, lateness_seconds),
        budgets=RedisBudgets(client, prefix, ledger_ttl_seconds),
    )
