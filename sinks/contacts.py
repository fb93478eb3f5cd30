"""The contact directory: where a player's e-mail address, phone number and push token live.

Events, player state and the action log carry no personal data, so an email, SMS or push
action is decided without a recipient. The delivery stage looks the recipient up here at
send time, puts it on the copy of the action it hands to the sink, and logs the action
without it.

The operator's CRM sync keeps the directory up to date. In Redis it is one hash per
player, ``{prefix}contact:{player_id}``, with the fields ``email``, ``phone`` and
``push_token`` (each optional; an empty value counts as absent), written with ``HSET``
and read with one ``HGETALL`` per lookup. The memory directory is the same contract for
the embedded default and tests.

Failure mode: when Redis cannot be reached the Redis directory raises
:class:`~sinks.stores.StoreUnavailable` (delivery holds and retries); any other Redis
error (a ``contact:`` key that is not a hash) raises :class:`~sinks.stores.StoreError`.
Neither message contains a contact.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from sinks.stores.base import DEFAULT_PREFIX, require_name
from sinks.stores.redis import RedisStore

CONTACT_FIELDS = ("email", "phone", "push_token")
"""The fields of a contact hash, as the operator's sync writes them."""

CHANNEL_FIELD = {"email": "email", "sms": "phone", "push": "push_token"}
"""Which contact a channel's provider needs."""


@dataclass(frozen=True, slots=True, repr=False)
class Contacts:
    """How one player can be reached; ``None`` where the player has no such contact."""

    email: str | None = None
    phone: str | None = None
    push_token: str | None = None

    @classmethod
    def of(cls, **fields: str | None) -> Contacts | None:
        """Contacts from raw values (trimmed; empty means absent), or None if none is left."""
        values = {name: (fields.get(name) or "").strip() or None for name in CONTACT_FIELDS}
        return cls(**values) if any(values.values()) else None

    def for_channel(self, channel: str) -> str | None:
        """The address, number or token for ``channel``, or None (also for other channels)."""
        field = CHANNEL_FIELD.get(channel)
        return None if field is None else getattr(self, field)

    def __repr__(self) -> str:
        # Contacts are personal data: a log line or a traceback shows only which exist.
        present = [name for name in CONTACT_FIELDS if getattr(self, name) is not None]
        return f"Contacts(<{', '.join(present) or 'none'}>)"


class ContactDirectory(Protocol):
    """Looks up a player's contacts at send time."""

    def lookup(self, player_id: str) -> Contacts | None:
        """The player's contacts, or None for a player the directory does not know.

        Raises :class:`~sinks.stores.StoreUnavailable` while the backing store is away.
        """
        ...


class MemoryContactDirectory:
    """Contacts in this process's memory: the embedded default (empty) and tests."""

    def __init__(self, contacts: Mapping[str, Contacts] | None = None) -> None:
        self._contacts: dict[str, Contacts] = dict(contacts or {})
        self._lock = threading.Lock()

    def put(self, player_id: str, contacts: Contacts | None) -> None:
        """Set (replace) the player's contacts; None forgets them."""
        require_name(player_id, "player_id")
        with self._lock:
            if contacts is None:
                self._contacts.pop(player_id, None)
            else:
                self._contacts[player_id] = contacts

    def lookup(self, player_id: str) -> Contacts | None:
        """The player's contacts, or None."""
        return self._contacts.get(player_id)


class RedisContactDirectory(RedisStore):
    """Contacts as one Redis hash per player, written by the operator's CRM sync."""

    _store_name = "contact directory"

    def __init__(self, client: redis.Redis, prefix: str = DEFAULT_PREFIX) -> None:
        super().__init__(client, prefix, ())

    def key(self, player_id: str) -> str:
        """The hash that holds ``player_id``'s contacts."""
        return f"{self._prefix}contact:{require_name(player_id, 'player_id')}"

    def lookup(self, player_id: str) -> Contacts | None:
        """The player's contacts (one ``HGETALL``), or None when the hash has none."""
        key = self.key(player_id)
        raw: dict[Any, Any] = self._run("contact lookup", lambda: self._client.hgetall(key))
        return Contacts.of(**{_text(name): _text(value) for name, value in raw.items()})

    def put_many(self, contacts: Mapping[str, Contacts]) -> None:
        """Replace these players' hashes in one round trip, as a CRM sync would (the
        simulator's ``--contacts`` seeds a demo this way)."""
        pipe = self._client.pipeline(transaction=False)
        for player_id, found in contacts.items():
            key = self.key(player_id)
            fields = {name: getattr(found, name) for name in CONTACT_FIELDS}
            pipe.delete(key)
            pipe.hset(key, mapping={k: v for k, v in fields.items() if v is not None})
        self._run("contact write", pipe.execute)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


__all__ = [
    "CHANNEL_FIELD",
    "CONTACT_FIELDS",
    "ContactDirectory",
    "Contacts",
    "MemoryContactDirectory",
    "RedisContactDirectory",
]
