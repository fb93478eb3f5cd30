"""The cold store in Redis: evicted players' states, one string key per version.

Keys, under the configurable prefix (default ``pitboss:``):

- ``cold:<player_id>:<version>``: the zlib-compressed pickle of one evicted player
  (``operators.eviction``). Written once, without expiry; after the state is restored it
  expires ``retention_seconds`` later (``EXPIRE``), because an older snapshot may still
  refer to it until then. The version is the last ``:``-separated part, so player ids
  may contain ``:``.

An eviction sweep writes its blobs in pipelines of ``batch`` commands (one round trip
each), and a restore reads its players the same way. Plain ``GET``/``SET`` in a
non-transactional pipeline rather than ``MGET``/``MSET``, so the keys need not share a
Redis Cluster slot.

Durability: a snapshot refers to these keys, so Redis must keep what it acknowledged
(``appendonly yes``, or a replica with ``WAIT``); a lost key makes its player's next event
stop the job (``EvictedStateError``) rather than treat the player as new.
Failure mode: when Redis cannot answer, every method raises
:class:`operators.eviction.ColdStoreError` chained to the store error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis

from operators.eviction import DEFAULT_RETENTION_SECONDS, ColdKey, ColdStore, ColdStoreError
from sinks.stores.base import DEFAULT_PREFIX, StoreError, require_name, require_time
from sinks.stores.redis import RedisStore


class RedisColdStore(RedisStore, ColdStore):
    """Evicted players' states as one Redis string per (player, version)."""

    _store_name = "cold store"

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = DEFAULT_PREFIX,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        batch: int = 1000,
    ) -> None:
        super().__init__(client, prefix, ())
        if require_time(retention_seconds, "retention_seconds") < 1:
            raise ValueError(f"retention_seconds must be >= 1, got {retention_seconds!r}")
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch!r}")
        self._retention = int(retention_seconds)
        self._batch = batch

    def _key(self, player_id: str, version: int) -> str:
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ValueError(f"version must be an integer >= 0, got {version!r}")
        return f"{self._prefix}cold:{require_name(player_id, 'player_id')}:{version}"

    def _pipelined(
        self, operation: str, items: Sequence[Any], command: Callable[[Any, Any], object]
    ) -> list[Any]:
        """Run ``command(pipe, item)`` for every item, ``batch`` per round trip."""
        replies: list[Any] = []

        def run() -> None:
            for first in range(0, len(items), self._batch):
                pipe = self._client.pipeline(transaction=False)
                for item in items[first : first + self._batch]:
                    command(pipe, item)
                replies.extend(pipe.execute())

        try:
            self._run(operation, run)
        except StoreError as exc:
            raise ColdStoreError(str(exc)) from exc
        return replies

    def put_many(self, blobs: Sequence[tuple[str, int, bytes]]) -> None:
        keyed = [(self._key(pid, version), blob) for pid, version, blob in blobs]
        # SET also clears an expiry: a version reused after a failed sweep is not disposable.
        self._pipelined("put_many", keyed, lambda pipe, kv: pipe.set(kv[0], kv[1]))

    def get_many(self, keys: Sequence[ColdKey]) -> list[bytes | None]:
        names = [self._key(pid, version) for pid, version in keys]
        replies = self._pipelined("get_many", names, lambda pipe, name: pipe.get(name))
        return [None if reply is None else bytes(reply) for reply in replies]

    def dispose_many(self, keys: Sequence[ColdKey]) -> None:
        names = [self._key(pid, version) for pid, version in keys]
        retention = self._retention
        self._pipelined("dispose_many", names, lambda pipe, name: pipe.expire(name, retention))
