"""``CampaignRules``: the campaign engine as a rule set of the player operator.

Built from a loaded :class:`~operators.campaigns.compiled.CampaignSet`. The hot path is
a dict lookup by event type: at construction every event type gets the short tuple of
handlers that can react to it (its triggers, the journeys it can end, the trackers of
deposits, bets, withdrawals and codes), so a bet only counts towards open wagering and
notes the category, a win only evaluates the conditions of the campaigns on wins.

Deadlines (time and schedule triggers, journey steps, expiries) follow the rule-set
contract: ``fire_due`` fires everything at or before ``now`` in time order, each at its
own time, and returns the next one. The rule set holds no per-player data: everything
is in ``state.extra["campaigns"]``, so a new configuration (a new ``CampaignRules``)
takes over between two batches without losing anything (see :meth:`rearm`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

from operators.campaigns.compiled import CampaignSet, CompiledCampaign
from operators.campaigns.config import EventTrigger, SignalTrigger, TimeTrigger
from operators.campaigns.context import Context
from operators.campaigns.deadlines import Deadline, anchor, deadline_of, is_timed
from operators.campaigns.journeys import Journeys
from operators.campaigns.runner import Cause, Runner
from operators.campaigns.store import (
    STORE_KEY,
    PlayerCampaigns,
    Status,
    ensure_store,
    store_of,
    wager,
)
from operators.player_state import (
    CATEGORIES,
    LAST_ACTIVITY,
    NEXT_DUE,
    NONE,
    PlayerState,
    to_money,
)
from operators.rules import Intent, Schedule
from pipeline.events import ACTIVITY_TYPES, EVENT_TYPES, Bet, Event, GameCategory

__all__ = ["CampaignRules"]

Handler = Callable[[PlayerState, Any, int, list[Intent], Schedule], None]
_MISSING: Final = object()
_CATEGORY_NAMES: Final = {category: category.value for category in GameCategory}
_CATEGORY_INDEX: Final = {category: index for index, category in enumerate(CATEGORIES)}


class _Scratch:
    """What one thread evaluates with: Bytewax runs a process's workers as threads that
    share the rule set, and a condition reads the player from the context, so each
    thread has its own context, and its own handlers closed over it."""

    __slots__ = ("ctx", "dispatch", "journeys", "on_bet", "on_win")

    def __init__(self, ctx: Context, journeys: Journeys) -> None:
        self.ctx = ctx
        self.journeys = journeys
        self.dispatch: dict[str, Handler] = {}
        self.on_bet: Handler | None = None
        self.on_win: Handler | None = None


def _chain(handlers: tuple[Handler, ...]) -> Handler:
    """One handler running ``handlers`` in order (itself when there is only one)."""
    if len(handlers) == 1:
        return handlers[0]

    def handle(
        state: PlayerState, event: Any, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        for handler in handlers:
            handler(state, event, ts, out, schedule)

    return handle


class CampaignRules:
    """The campaigns of one configuration version, run for every player."""

    name = "campaigns"

    def __init__(self, campaigns: CampaignSet) -> None:
        self.campaigns = campaigns
        self.version = campaigns.version
        self._runner = Runner(campaigns)
        self._threads = threading.local()
        active = campaigns.campaigns
        self._timed = tuple(c for c in active if is_timed(c))
        self._deadlines: tuple[Deadline, ...] = tuple(deadline_of(c) for c in self._timed)
        waits = [
            c.config.trigger.wait
            for c in self._timed
            if isinstance(c.config.trigger, TimeTrigger)
            and c.config.trigger.after == "inactivity"
            and c.config.trigger.wait is not None
        ]
        self._inactivity_wait: int | None = min(waits) if waits else None
        self._first_deposit_timed = any(
            isinstance(c.config.trigger, TimeTrigger) and c.config.trigger.after == "first_deposit"
            for c in self._timed
        )
        self._signals: dict[str, tuple[CompiledCampaign, ...]] = {}
        for c in active:
            if isinstance(c.config.trigger, SignalTrigger):
                for signal in c.config.trigger.signals:
                    self._signals[signal] = (*self._signals.get(signal, ()), c)
        self._wagering = any(
            offer.reward is not None and offer.reward.wagering is not None
            for key, (_, offers) in self._runner.offers.items()
            for offer in offers
        )
        self._mine()  # the constructing thread's, and a bad configuration fails here

    # -- construction --------------------------------------------------------------------

    def _mine(self) -> _Scratch:
        """This thread's context and handlers, built on its first call."""
        mine: _Scratch | None = getattr(self._threads, "scratch", None)
        if mine is None:
            ctx = Context()
            mine = self._threads.scratch = _Scratch(ctx, Journeys(self._runner, ctx))
            mine.dispatch = self._build_dispatch()
            mine.on_bet = mine.dispatch.get("bet")  # triggers on bets (the rest is inlined)
            mine.on_win = mine.dispatch.get("win")
        return mine

    @property
    def _ctx(self) -> Context:
        return self._mine().ctx

    @property
    def _journeys(self) -> Journeys:
        return self._mine().journeys

    def _build_dispatch(self) -> dict[str, Handler]:
        """The handlers of each event type, closed over this thread's context."""
        active = self.campaigns.campaigns
        wagering = self._wagering
        dispatch: dict[str, Handler] = {}
        for etype in EVENT_TYPES:
            handlers: list[Handler] = []
            if etype in ACTIVITY_TYPES and etype != "bet" and self._inactivity_wait is not None:
                handlers.append(self._on_activity)
            if etype == "registration" and self._timed:
                handlers.append(self._on_registration)
            if etype == "deposit":
                handlers.append(self._on_deposit)
            if etype == "withdrawal" and wagering:
                handlers.append(self._on_withdrawal)
            if etype == "bonus_redeemed" and self._runner.codes:
                handlers.append(self._on_redeem)
            if etype == "self_exclusion":
                handlers.append(self._on_self_exclusion)
            if etype == "profile_update":
                handlers.append(self._on_profile_update)
            exits = tuple(c for c in active if c.journey is not None and etype in c.journey.exit_on)
            if exits:
                handlers.append(self._exit_handler(exits))
            triggered = tuple(
                c
                for c in active
                if isinstance(c.config.trigger, EventTrigger) and etype in c.config.trigger.events
            )
            if triggered:
                handlers.append(self._trigger_handler(triggered))
            if handlers:
                dispatch[etype] = _chain(tuple(handlers))
        return dispatch

    def _trigger_handler(self, campaigns: tuple[CompiledCampaign, ...]) -> Handler:
        ctx = self._ctx
        enter = self._enter
        changed = self._changed

        first = campaigns[0]
        only = first.when
        if len(campaigns) == 1 and first.changed is None and only is not None:
            # The common case (a loss streak on every win): one condition, nothing else.
            def handle_one(
                state: PlayerState, event: Any, ts: int, out: list[Intent], schedule: Schedule
            ) -> None:
                ctx.state, ctx.event, ctx.now = state, event, ts
                if only(ctx):
                    cause = Cause(event.event_id, ts, ts)
                    enter(first, state, cause, f"e{event.event_id}", out=out, schedule=schedule)

            return handle_one

        def handle(
            state: PlayerState, event: Any, ts: int, out: list[Intent], schedule: Schedule
        ) -> None:
            # An event trigger's conditions cannot name journey or signal: no need to reset them.
            ctx.state, ctx.event, ctx.now = state, event, ts
            for c in campaigns:
                if c.changed is not None and not changed(c, state):
                    continue
                when = c.when
                if when is None or when(ctx):
                    cause = Cause(event.event_id, ts, ts)
                    enter(c, state, cause, f"e{event.event_id}", out=out, schedule=schedule)

        return handle

    def _exit_handler(self, journeys: tuple[CompiledCampaign, ...]) -> Handler:
        mine = self._journeys

        def handle(
            state: PlayerState, event: Any, ts: int, out: list[Intent], schedule: Schedule
        ) -> None:
            store = store_of(state)
            if store is None or not store.live:
                return
            for c in journeys:
                if c.id in store.live:
                    mine.exit_on_event(c, state, store, event_id=event.event_id, at=ts, out=out)

        return handle

    # -- the rule-set protocol -----------------------------------------------------------

    def on_event(
        self, state: PlayerState, event: Event, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        """React to an event already folded into ``state``."""
        etype = event.type
        mine = getattr(self._threads, "scratch", None) or self._mine()
        if etype == "bet":
            # About half of all events: inlined. Arm the inactivity deadline if nothing
            # earlier is pending, note the category, count towards open wagering.
            bet: Bet = event  # type: ignore[assignment]
            n = state.n
            wait = self._inactivity_wait
            if wait is not None and ts + wait < n[NEXT_DUE] and ts == n[LAST_ACTIVITY]:
                schedule(state, ts + wait)
            extra = state.extra
            store: PlayerCampaigns | None = extra.get(STORE_KEY) if extra is not None else None
            if store is None:
                store = ensure_store(state)
            category = bet.game_category
            store.last_category = _CATEGORY_NAMES[category]  # enum .value is a slow descriptor
            if store.wagering:
                stake = to_money(bet.amount)
                ended = wager(store, stake, _CATEGORY_INDEX[category])
                if ended:
                    self._runner.wagered(
                        state, store, ended=ended, stake=stake, event_id=bet.event_id, at=ts,
                        out=out,
                    )  # fmt: skip
            handle = mine.on_bet
        elif etype == "win":
            handle = mine.on_win  # the other half: no dict lookup
        else:
            handle = mine.dispatch.get(etype)
        if handle is not None:
            handle(state, event, ts, out, schedule)

    def on_signal(
        self, state: PlayerState, signal: Intent, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        """React to a gamification signal, named by ``payload["event"]`` (``level_up``,
        ``mission_completed``...), else the signalling rule's campaign id.

        The campaign decides at the signal's own time (``signal.decided_at``), not at
        ``ts``: a signal raised by a deadline is then decided the same whatever the batching.
        """
        payload = signal.payload
        name = payload.get("event") or signal.campaign_id
        campaigns = self._signals.get(str(name))
        if not campaigns:
            return
        at = signal.decided_at
        ctx = self._ctx
        ctx.state, ctx.event, ctx.now, ctx.journey, ctx.signal = state, None, at, None, payload
        occurrence = f"s{signal.campaign_id}:{signal.occurrence}"
        cause = Cause(signal.event_id, signal.event_at, at)
        for c in campaigns:
            if c.when is None or c.when(ctx):
                self._enter(c, state, cause, occurrence, out=out, schedule=schedule)

    def fire_due(self, state: PlayerState, now: int, out: list[Intent]) -> int | None:
        """Fire every deadline at or before ``now``, in time order; the next one."""
        store = store_of(state)
        timed = self._timed
        if store is None and not timed:
            return None
        deadlines = self._deadlines
        cursor = store.cursor if store is not None else NONE
        # Firing one deadline changes no other's (they depend on the state's anchors and
        # the cursor, and each was already later): compute them once, refresh the fired.
        dues = [deadline(state, store, cursor) for deadline in deadlines]
        while True:
            best: int | None = None
            for due in dues:
                if due is not None and (best is None or due < best):
                    best = due
            key, first = None, None
            if store is not None:
                for name, instance in store.live.items():
                    at = instance.due
                    if at is not None and (first is None or at < first):
                        key, first = name, at
            if key is not None and first is not None and (best is None or first <= best):
                if first > now or store is None:
                    return first
                self._fire_instance(state, store, key, out)
                continue
            if best is None or best > now:
                return best
            if store is None:
                store = ensure_store(state)
            fired = [i for i, d in enumerate(dues) if d == best]
            for i in fired:
                self._fire_timed(timed[i], state, store, best, out)
            store.cursor = best
            for i in fired:
                dues[i] = deadlines[i](state, store, best)

    # -- hot reload ----------------------------------------------------------------------

    def next_due(self, state: PlayerState) -> int | None:
        """The player's next campaign deadline, without firing anything."""
        store = store_of(state)
        cursor = store.cursor if store is not None else NONE
        found = [d for due in self._deadlines if (d := due(state, store, cursor)) is not None]
        if store is not None:
            found += [i.due for i in store.live.values() if i.due is not None]
        return min(found) if found else None

    def rearm(self, state: PlayerState, now: int) -> int | None:
        """Take over a player after a configuration change at event time ``now``.

        Deadlines of the new configuration at or before ``now`` count as passed (a new
        campaign does not fire retroactively); returns the next deadline, for the
        engine's ``schedule``. Call it after the old rules fired everything up to ``now``.
        """
        store = store_of(state)
        cursor = store.cursor if store is not None else NONE
        if cursor < now and any(
            (d := due(state, store, cursor)) is not None and d <= now for due in self._deadlines
        ):
            ensure_store(state).cursor = now
        return self.next_due(state)

    # -- entering a campaign -------------------------------------------------------------

    def _enter(
        self,
        c: CompiledCampaign,
        state: PlayerState,
        cause: Cause,
        occurrence: str,
        *,
        out: list[Intent],
        schedule: Schedule,
    ) -> None:
        """Enter ``c`` if its window, limits and segments allow (the trigger matched)."""
        at = cause.at
        if not c.active_at(at):
            return
        store = store_of(state)
        if store is not None and (not c.allowed(store.fired.get(c.id), at) or c.id in store.live):
            return
        if not c.in_segment(self._ctx):
            return
        if store is None:
            store = ensure_store(state)
        self._start(c, state, store, occurrence, cause=cause, out=out)
        due = store.next_due()
        if due is not None:
            schedule(state, due)

    def _start(
        self,
        c: CompiledCampaign,
        state: PlayerState,
        store: PlayerCampaigns,
        occurrence: str,
        *,
        cause: Cause,
        out: list[Intent],
    ) -> None:
        if c.journey is not None:
            self._journeys.start(
                c, state, store, occurrence, event_id=cause.event_id, event_at=cause.event_at,
                at=cause.at, out=out,
            )  # fmt: skip
            return
        index = c.variant_of(state.player_id)
        ran = self._runner.activate(
            c, state, store, offer=c.offers[index], occurrence=occurrence, step=None,
            cause=cause, variant=c.variant_name(index), out=out,
        )  # fmt: skip
        if ran:
            store.record_fired(c.id, cause.at)

    def _changed(self, c: CompiledCampaign, state: PlayerState) -> bool:
        """Note the ``changed`` expression's value; whether it changed (moved up a rank)."""
        value = c.changed(self._ctx) if c.changed is not None else None
        store = ensure_store(state)
        memo = store.memo
        if memo is None:
            memo = store.memo = {}
        before = memo.get(c.id, _MISSING)
        memo[c.id] = value
        if before == value:
            return False
        ranks = c.ranks
        if ranks is None:
            return True
        old = -1 if before is _MISSING or before is None else ranks.get(str(before), -1)
        new = ranks.get(str(value)) if value is not None else None
        return new is not None and new > old

    def _fire_timed(
        self, c: CompiledCampaign, state: PlayerState, store: PlayerCampaigns, at: int,
        out: list[Intent],
    ) -> None:  # fmt: skip
        ctx = self._ctx
        ctx.state, ctx.event, ctx.now, ctx.journey, ctx.signal = state, None, at, None, None
        if not c.active_at(at) or c.id in store.live:
            return
        if not c.allowed(store.fired.get(c.id), at):
            return
        if (c.when is not None and not c.when(ctx)) or not c.in_segment(ctx):
            return
        start = anchor(c, state)
        cause = Cause("", start if start is not None else at, at)
        self._start(c, state, store, f"t{at}", cause=cause, out=out)

    def _fire_instance(
        self, state: PlayerState, store: PlayerCampaigns, key: str, out: list[Intent]
    ) -> None:
        instance = store.live[key]
        at = instance.due if instance.due is not None else 0
        runner = self._runner
        if instance.step is not None:
            c = runner.by_id.get(key)
            if c is None or c.journey is None:
                instance.step = None
                runner.finish(
                    key, instance, state, store, status=Status.EXITED, reason="journey_removed",
                    event_id="", at=at, out=out,
                )  # fmt: skip
                return
            self._journeys.advance(c, instance, state, store, out)
            return
        reason = "wagering_expired" if instance.status == Status.WAGERING else "offer_expired"
        runner.finish(
            key, instance, state, store, status=Status.EXPIRED, reason=reason, event_id="",
            at=at, out=out,
        )  # fmt: skip

    # -- trackers ------------------------------------------------------------------------

    def _arm(self, state: PlayerState, schedule: Schedule) -> None:
        due = self.next_due(state)
        if due is not None and due < state.n[NEXT_DUE]:
            schedule(state, due)

    def _on_activity(
        self, state: PlayerState, event: Any, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        n = state.n
        if ts == n[LAST_ACTIVITY] and self._inactivity_wait is not None:
            due = ts + self._inactivity_wait
            if due < n[NEXT_DUE]:
                schedule(state, due)

    def _on_registration(
        self, state: PlayerState, event: Any, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        self._arm(state, schedule)

    def _on_deposit(
        self, state: PlayerState, event: Any, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        if event.status != "ok":
            return
        if self._first_deposit_timed and state.deposit_count == 1:
            self._arm(state, schedule)
        store = store_of(state)
        if store is not None and store.live:
            self._runner.qualify_deposit(
                state, store, deposit=to_money(event.amount), cause=Cause(event.event_id, ts, ts),
                out=out,
            )  # fmt: skip
            due = store.next_due()
            if due is not None:
                schedule(state, due)

    def _on_withdrawal(
        self, state: PlayerState, event: Any, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        store = store_of(state)
        if event.status == "ok" and store is not None and store.wagering:
            self._runner.forfeit_on_withdrawal(state, store, event.event_id, ts, out)

    def _on_redeem(
        self, state: PlayerState, event: Any, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        store = ensure_store(state)
        self._runner.redeem(
            state, store, self._ctx, code=event.code, cause=Cause(event.event_id, ts, ts), out=out
        )
        due = store.next_due()
        if due is not None:
            schedule(state, due)

    def _on_self_exclusion(
        self, state: PlayerState, event: Any, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        """Responsible gaming: every open offer, bonus and journey ends now."""
        self._end_everything(state, "self_exclusion", event.event_id, ts, out)

    def _on_profile_update(
        self, state: PlayerState, event: Any, ts: int, out: list[Intent], schedule: Schedule
    ) -> None:
        """An account now cooling off or closed for gambling: as for a self-exclusion."""
        block = state.rg_block
        if block is not None:
            self._end_everything(state, block, event.event_id, ts, out)

    def _end_everything(
        self, state: PlayerState, reason: str, event_id: str, at: int, out: list[Intent]
    ) -> None:
        store = store_of(state)
        if store is None:
            return
        for key, instance in list(store.live.items()):
            c = self._runner.by_id.get(key) if instance.step is not None else None
            if c is not None:
                self._journeys.end(
                    c, instance, state, store, status=Status.EXITED, reason=reason,
                    event_id=event_id, at=at, out=out,
                )  # fmt: skip
            else:
                self._runner.finish(
                    key, instance, state, store, status=Status.CANCELLED, reason=reason,
                    event_id=event_id, at=at, out=out,
                )  # fmt: skip
