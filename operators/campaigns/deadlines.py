"""Deadlines of time and schedule triggers, derived from the player's state alone.

No timer is stored per campaign: each deadline is computed from the state (the last
activity, registration, first deposit, birth date, cron ticks in the player's zone) and
the store's ``cursor``: a deadline at or before the cursor has been handled. Firing the
earliest deadline moves the cursor to it, so each fires once, in time order, at its own
event time, however late the engine asks.

:func:`deadline_of` compiles a campaign's trigger into a function
``(state, store, cursor) -> deadline or None``, specialised per kind of trigger.
"""

from __future__ import annotations

from collections.abc import Callable

from operators.campaigns.compiled import CompiledCampaign
from operators.campaigns.config import ScheduleTrigger, TimeTrigger
from operators.campaigns.store import PlayerCampaigns
from operators.campaigns.timing import local_date, next_yearly
from operators.player_state import DAY, PlayerState

__all__ = ["Deadline", "anchor", "deadline_of", "is_timed"]

Deadline = Callable[[PlayerState, PlayerCampaigns | None, int], int | None]


def is_timed(c: CompiledCampaign) -> bool:
    """Whether the campaign's trigger is a deadline (time or schedule)."""
    return isinstance(c.config.trigger, TimeTrigger | ScheduleTrigger)


def anchor(c: CompiledCampaign, state: PlayerState) -> int | None:
    """What a wait counts from: the last activity, registration or first deposit."""
    trigger = c.config.trigger
    if not isinstance(trigger, TimeTrigger):
        return None
    found: int | None = None
    if trigger.after == "inactivity":
        found = state.last_activity
        if found is None:
            found = state.registered_at
    elif trigger.after == "registration":
        found = state.registered_at
    elif trigger.after == "first_deposit":
        found = state.first_deposit_at
    return found


def _floor(state: PlayerState, start: int | None) -> int:
    """Calendar triggers count from the player's registration (or first event) and the
    campaign's start."""
    registered: int | None = state.registered_at
    floor: int = registered if registered is not None else state.first_seen
    return floor if start is None else max(floor, start - 1)


def deadline_of(c: CompiledCampaign) -> Deadline:
    """The campaign's deadline function: its first deadline after ``cursor``, if any."""
    trigger = c.config.trigger
    cid, once, start, end = c.id, c.once, c.start, c.end

    def limited(store: PlayerCampaigns | None) -> bool:
        return once and store is not None and cid in store.fired

    def bounded(due: int | None, cursor: int) -> int | None:
        if due is None or due <= cursor or (end is not None and due >= end):
            return None
        return due

    if isinstance(trigger, ScheduleTrigger):
        schedule = c.schedule
        if schedule is None:
            raise ValueError(f"campaign {cid!r}: a schedule trigger without a compiled cron")
        next_tick = schedule.next_after

        def tick(state: PlayerState, store: PlayerCampaigns | None, cursor: int) -> int | None:
            if limited(store):
                return None
            at = next_tick(max(cursor, _floor(state, start)), state.timezone)
            return bounded(at, cursor)

        return tick
    if not isinstance(trigger, TimeTrigger):
        raise ValueError(f"campaign {cid!r} is not triggered by time")
    local_time = trigger.local_time
    if trigger.at == "birthday":

        def birthday(state: PlayerState, store: PlayerCampaigns | None, cursor: int) -> int | None:
            born = state.birth_date
            if born is None or limited(store):
                return None
            after = max(cursor, _floor(state, start))
            at = next_yearly(int(born[5:7]), int(born[8:10]), local_time, state.timezone, after)
            return bounded(at, cursor)

        return birthday
    if trigger.at == "anniversary":

        def anniversary(
            state: PlayerState, store: PlayerCampaigns | None, cursor: int
        ) -> int | None:
            registered = state.registered_at
            if registered is None or limited(store):
                return None
            date = local_date(registered, state.timezone)
            after = max(cursor, _floor(state, start), registered + DAY)
            return bounded(
                next_yearly(date.month, date.day, local_time, state.timezone, after), cursor
            )

        return anniversary
    wait = trigger.wait or 0
    after = trigger.after

    def waited(state: PlayerState, store: PlayerCampaigns | None, cursor: int) -> int | None:
        if limited(store):
            return None
        if after == "inactivity":
            base = state.last_activity
            if base is None:
                base = state.registered_at
        elif after == "registration":
            base = state.registered_at
        else:
            base = state.first_deposit_at
        return None if base is None else bounded(base + wait, cursor)

    return waited
