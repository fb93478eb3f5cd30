"""The Redis leaderboard store: sorted sets, idempotent increments in Lua.

Keys, under the configurable prefix (default ``pitboss:``), with ``<bp>`` standing for
``<board>|<period>`` (a hash tag, so one period's keys share a Redis Cluster slot and the
increment script may touch them together):

- ``lb:{<bp>}:scores``: sorted set, player id -> score in hundredths;
- ``lb:{<bp>}:reached``: hash, player id -> newest event time of their increments;
- ``lb:{<bp>}:tokens``: set of the tokens applied (the idempotency record);
- ``lb:{<bp>}:settled``: string, the period's settlement record;
- ``lb:{<board>}:periods``: sorted set of the board's period ids (all score 0, read in
  lexicographic order: period ids sort by time).

Every period key expires ``retention_seconds`` (wall time) after its last increment;
settlement records live as long. The increment and the settlement are one Lua script
each (``lua/add.lua``, ``lua/settle.lua``, shipped as package data). Reads are plain
commands: the order on equal scores (reach time, then player id) is applied here, from
the whole group of tied players, so a tie at the edge of ``top(n)`` is resolved right.

Failure mode as for the guard stores: an unreachable Redis raises
:class:`~sinks.stores.base.StoreUnavailable` chained to the client's error; build the
client with :func:`sinks.stores.redis.connect` so that happens fast.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.commands.core import Script

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
from sinks.stores.base import DEFAULT_PREFIX, require_time
from sinks.stores.redis import RedisStore, lua_script

DEFAULT_RETENTION_SECONDS = 90 * 86_400
"""How long a period's scores are kept after its last increment."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _score(value: float | bytes | str) -> int:
    return int(float(value))


class RedisLeaderboardStore(RedisStore, LeaderboardStore):
    """Leaderboards in Redis sorted sets, shared by every worker and process."""

    _store_name = "leaderboard store"

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = DEFAULT_PREFIX,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        if require_time(retention_seconds, "retention_seconds") <= 0:
            raise ValueError(f"retention_seconds must be > 0, got {retention_seconds!r}")
        super().__init__(client, prefix, ())
        self._ttl_ms = max(1, round(retention_seconds * 1000))
        self._add: Script = client.register_script(lua_script("add", "sinks.leaderboards"))
        self._settle: Script = client.register_script(lua_script("settle", "sinks.leaderboards"))

    # -- keys and errors ---------------------------------------------------------------

    def _period_key(self, board: str, period: str, part: str) -> str:
        require_key_part(board, "board")
        require_key_part(period, "period")
        return f"{self._prefix}lb:{{{board}|{period}}}:{part}"

    def _periods_key(self, board: str) -> str:
        return f"{self._prefix}lb:{{{require_key_part(board, 'board')}}}:periods"

    # -- writes ------------------------------------------------------------------------

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
        keys = [self._period_key(board, period, part) for part in ("scores", "reached", "tokens")]
        require_key_part(player_id, "player_id")
        require_delta(delta)
        require_token(token)
        require_reach(at)
        args: list[str | int] = [player_id, delta, token, "" if at is None else at, self._ttl_ms]
        with self._errors("add"):
            pipe = self._client.pipeline(transaction=False)
            self._add(keys=keys, args=args, client=pipe)
            # Outside the script (another Cluster slot), and on every call, even a replay:
            # indexing the period is idempotent, and must not depend on the first call
            # having got this far.
            pipe.zadd(self._periods_key(board), {period: 0})
            applied, _ = pipe.execute()
        return bool(int(applied))

    def settle_once(self, board: str, period: str, record: str) -> tuple[str, bool]:
        key = self._period_key(board, period, "settled")
        if not isinstance(record, str) or not record:
            raise ValueError(f"record must be a non-empty string, got {record!r}")
        with self._errors("settle_once"):
            wrote, kept = self._settle(keys=[key], args=[record, self._ttl_ms])
        return _text(kept), bool(int(wrote))

    # -- reads -------------------------------------------------------------------------

    def top(self, board: str, period: str, n: int) -> list[Standing]:
        scores = self._period_key(board, period, "scores")
        reached = self._period_key(board, period, "reached")
        require_count(n, "n")
        if n == 0:
            return []

        def read() -> list[tuple[str, int, int | None]]:
            rows: Any = self._client.zrevrange(scores, 0, n - 1, True)
            if not rows:
                return []
            members = {_text(member): _score(value) for member, value in rows}
            if len(rows) == n:
                # Everyone tied with the last row, so ties are broken on the whole group.
                boundary = _score(rows[-1][1])
                tied: Any = self._client.zrangebyscore(scores, boundary, boundary)
                for member in tied:
                    members[_text(member)] = boundary
            return self._with_reach(reached, members)

        return ranked(self._run("top", read))[:n]

    def standing(self, board: str, period: str, player_id: str) -> Standing | None:
        scores = self._period_key(board, period, "scores")
        reached = self._period_key(board, period, "reached")
        require_key_part(player_id, "player_id")

        def read() -> Standing | None:
            raw: Any = self._client.zscore(scores, player_id)
            if raw is None:
                return None
            score = _score(raw)
            above: Any = self._client.zcount(scores, f"({score}", "+inf")
            ahead = int(above)
            members: Any = self._client.zrangebyscore(scores, score, score)
            tied = {_text(m): score for m in members}
            group = self._with_reach(reached, tied)
            mine = next(entry for entry in group if entry[0] == player_id)
            key = order_key(*mine)
            ahead += sum(1 for entry in group if order_key(*entry) < key)
            return Standing(ahead + 1, player_id, score, mine[2])

        found: Standing | None = self._run("standing", read)
        return found

    def _with_reach(
        self, reached: str, members: dict[str, int]
    ) -> list[tuple[str, int, int | None]]:
        players = list(members)
        times: Any = self._client.hmget(reached, players) if players else []
        return [
            (player, members[player], None if at is None else int(at))
            for player, at in zip(players, times, strict=True)
        ]

    def size(self, board: str, period: str) -> int:
        key = self._period_key(board, period, "scores")
        return int(self._run("size", lambda: self._client.zcard(key)))

    def periods(self, board: str) -> list[str]:
        key = self._periods_key(board)
        raw: list[Any] = self._run("periods", lambda: self._client.zrevrangebylex(key, "+", "-"))
        return [_text(period) for period in raw]

    def settlement(self, board: str, period: str) -> str | None:
        key = self._period_key(board, period, "settled")
        raw = self._run("settlement", lambda: self._client.get(key))
        return None if raw is None else _text(raw)
