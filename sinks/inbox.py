"""The in-app inbox: a bounded, per-player list of messages, idempotent by action id.

In Redis each player's inbox is a stream, ``{prefix}inbox:{player_id}``, trimmed with
``MAXLEN ~ N`` on every add. A companion key ``{prefix}inbox-sent:{action_id}`` holds the
entry id of a delivered action; one Lua script checks it, adds and marks atomically, so a
replayed action returns the first entry id and adds nothing. The memory sink is the same
contract for the embedded default.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis

from operators.actions import Action
from sinks.base import ChannelSink, DeliveryPolicy, PermanentDeliveryError, TransientDeliveryError

# Contact details stay out of the inbox: the app knows who the player is.
_CONTACT_FIELDS = frozenset({"to", "device_token"})

_ADD_ONCE = """
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
local entry_id = redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], ARGV[3], '*', unpack(ARGV, 4))
redis.call('SET', KEYS[1], entry_id, 'EX', ARGV[1])
return entry_id
"""


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """One message in a player's inbox."""

    entry_id: str
    action_id: str
    campaign_id: str
    kind: str
    decided_at: str  # ISO-8601, event time
    payload: dict[str, Any]


def _fields(action: Action) -> dict[str, str]:
    payload = {k: v for k, v in action.payload.items() if k not in _CONTACT_FIELDS}
    return {
        "action_id": action.action_id,
        "campaign_id": action.campaign_id,
        "kind": action.kind.value,
        "decided_at": action.decided_at.isoformat(),
        "payload": orjson.dumps(payload, default=str).decode(),
    }


def _text(value: bytes | str) -> str:
    """Redis replies as text, whether the client decodes responses or not."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _message(entry_id: str, fields: dict[str, str]) -> InboxMessage:
    return InboxMessage(
        entry_id=entry_id,
        action_id=fields["action_id"],
        campaign_id=fields["campaign_id"],
        kind=fields["kind"],
        decided_at=fields["decided_at"],
        payload=orjson.loads(fields["payload"]),
    )


class RedisInboxSink(ChannelSink):
    """Per-player inbox as a bounded Redis stream, shared by every worker.

    Redis calls are bounded by the client's own timeouts, not per send: give it short
    ``socket_timeout``/``socket_connect_timeout`` and no retries of its own
    (``retry=Retry(NoBackoff(), 0)``), since the sender owns retries and the deadline.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "pitboss:",
        max_len: int = 100,
        approximate_trim: bool = True,
        dedup_ttl_seconds: int = 90 * 86_400,
        name: str = "inbox-redis",
        policy: DeliveryPolicy | None = None,
    ) -> None:
        super().__init__(name, "in_app", policy if policy is not None else DeliveryPolicy())
        self._client = client
        self._prefix = prefix
        self._max_len = max_len
        self._trim = "~" if approximate_trim else "="
        self._ttl = dedup_ttl_seconds
        self._add_once = client.register_script(_ADD_ONCE)

    def stream_key(self, player_id: str) -> str:
        """The Redis stream holding ``player_id``'s inbox."""
        return f"{self._prefix}inbox:{player_id}"

    def send(self, action: Action, timeout: float | None = None) -> str | None:
        """Add the message unless this action id was added before; returns the entry id."""
        fields = _fields(action)
        args: list[str | int] = [self._ttl, self._trim, self._max_len]
        for name, value in fields.items():
            args += [name, value]
        keys = [f"{self._prefix}inbox-sent:{action.action_id}", self.stream_key(action.player_id)]
        try:
            entry_id = self._add_once(keys=keys, args=args)
        except redis.ResponseError as exc:  # e.g. WRONGTYPE: retrying will not fix it
            raise PermanentDeliveryError(
                f"Redis refused the add ({type(exc).__name__})",
                provider=self.name,
                action_id=action.action_id,
            ) from exc
        except redis.RedisError as exc:
            raise TransientDeliveryError(
                f"Redis unavailable ({type(exc).__name__})",
                provider=self.name,
                action_id=action.action_id,
            ) from exc
        return _text(entry_id)

    def messages(self, player_id: str, count: int = 50) -> list[InboxMessage]:
        """The newest ``count`` messages of ``player_id``, newest first."""
        entries = cast(
            list[tuple[bytes | str, dict[bytes | str, bytes | str]]],
            self._client.xrevrange(self.stream_key(player_id), count=count),
        )
        return [
            _message(_text(entry_id), {_text(k): _text(v) for k, v in raw_fields.items()})
            for entry_id, raw_fields in entries
        ]


class MemoryInboxSink(ChannelSink):
    """In-process inbox for the embedded default: same contract, nothing shared."""

    def __init__(
        self,
        *,
        max_len: int = 100,
        max_remembered_ids: int = 1_000_000,
        name: str = "inbox-memory",
        policy: DeliveryPolicy | None = None,
    ) -> None:
        super().__init__(name, "in_app", policy if policy is not None else DeliveryPolicy())
        self._max_len = max_len
        self._max_ids = max_remembered_ids
        self._inboxes: dict[str, deque[InboxMessage]] = {}
        self._entry_ids: dict[str, str] = {}  # action id -> entry id, oldest first
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()

    def send(self, action: Action, timeout: float | None = None) -> str | None:
        """Add the message unless this action id was added before; returns the entry id."""
        with self._lock:
            known = self._entry_ids.get(action.action_id)
            if known is not None:
                return known
            entry_id = f"{next(self._sequence)}-0"
            inbox = self._inboxes.setdefault(action.player_id, deque(maxlen=self._max_len))
            inbox.append(_message(entry_id, _fields(action)))
            self._entry_ids[action.action_id] = entry_id
            while len(self._entry_ids) > self._max_ids:
                del self._entry_ids[next(iter(self._entry_ids))]
            return entry_id

    def messages(self, player_id: str, count: int = 50) -> list[InboxMessage]:
        """The newest ``count`` messages of ``player_id``, newest first."""
        with self._lock:
            inbox = list(self._inboxes.get(player_id, ()))
        return inbox[::-1][:count]
