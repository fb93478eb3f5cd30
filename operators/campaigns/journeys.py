"""Journeys (drip chains): ordered steps with waits, guards, branches and an exit.

A player in a journey has one :class:`~operators.campaigns.store.Instance` under the
campaign id: ``step`` is the next step's id, ``due`` when it runs. At that time the
exit condition is checked first, then the step's ``when`` (false: the step is skipped),
then its branches pick the next step (they read ``journey.*_since_step`` as it was
before this step ran); the step's message and reward go out as an ordinary offer with the
occurrence ``<journey occurrence>:<step id>``. Waits count from the previous step's
time, so a journey replays identically whatever the batching.
"""

from __future__ import annotations

from operators.campaigns.compiled import CompiledCampaign, Offer
from operators.campaigns.context import Context
from operators.campaigns.runner import Cause, Runner
from operators.campaigns.store import Instance, PlayerCampaigns, Status
from operators.player_state import PlayerState
from operators.rules import Intent

__all__ = ["Journeys"]


class Journeys:
    """Starts, advances and ends journeys; shares the rule set's runner and context."""

    def __init__(self, runner: Runner, ctx: Context) -> None:
        self.runner = runner
        self.ctx = ctx

    def start(
        self,
        c: CompiledCampaign,
        state: PlayerState,
        store: PlayerCampaigns,
        occurrence: str,
        *,
        event_id: str,
        event_at: int,
        at: int,
        out: list[Intent],
    ) -> int | None:
        """Enter the journey; run the steps already due; the next step's time."""
        journey = c.journey
        if journey is None:
            return None
        variant = c.variant_name(c.variant_of(state.player_id))
        instance = Instance(occurrence, at, variant)
        first = journey.steps[0]
        instance.step = first.id
        instance.due = at + first.wait
        deposits, bets = state.deposit_count, state.bet_count
        instance.memo = (deposits, bets, deposits, bets, at)
        store.live[c.id] = instance
        store.record_fired(c.id, at)
        self.runner.lifecycle(
            c, state, occurrence, key=c.id, transitions=[Status.ACTIVATED],
            cause=Cause(event_id, event_at, at), variant=variant, out=out, step=first.id,
        )  # fmt: skip
        while instance.due is not None and instance.due <= at and store.live.get(c.id) is instance:
            self.advance(c, instance, state, store, out, event_id=event_id)
        return instance.due if store.live.get(c.id) is instance else None

    def advance(
        self,
        c: CompiledCampaign,
        instance: Instance,
        state: PlayerState,
        store: PlayerCampaigns,
        out: list[Intent],
        *,
        event_id: str = "",
    ) -> None:
        """Run the step due at ``instance.due`` and move to the next one (or end).

        ``event_id`` is the event that started the journey, for steps run at its start.
        """
        journey = c.journey
        at = instance.due
        if journey is None or at is None or instance.step is None:
            return
        ctx = self.ctx
        ctx.state, ctx.now, ctx.journey, ctx.event, ctx.signal = state, at, instance, None, None
        if journey.exit_when is not None and journey.exit_when(ctx):
            self.end(
                c,
                instance,
                state,
                store,
                status=Status.EXITED,
                reason="exit_condition",
                at=at,
                out=out,
            )
            return
        index = journey.index.get(instance.step)
        if index is None:
            self.end(
                c,
                instance,
                state,
                store,
                status=Status.EXITED,
                reason="step_removed",
                at=at,
                out=out,
            )
            return
        step = journey.steps[index]
        runs = step.when is None or step.when(ctx)
        following = index + 1
        for condition, target in step.branches:
            if condition is None or condition(ctx):
                following = target
                break
        if runs:
            offers = step.offers
            offer = offers[min(c.variant_index(instance.variant), len(offers) - 1)]
            if offer.reward is not None and offer.key in store.live:
                # The same step's bonus from an earlier journey is still open: message only.
                offer = Offer(offer.key, offer.message, None)
            self.runner.activate(
                c, state, store, offer=offer, occurrence=f"{instance.occurrence}:{step.id}",
                step=step.id, cause=Cause(event_id, instance.started, at), variant=instance.variant,
                out=out,
            )  # fmt: skip
            memo = instance.memo or (0, 0, 0, 0, at)
            instance.memo = (memo[0], memo[1], state.deposit_count, state.bet_count, at)
        if following < 0 or following >= len(journey.steps):
            self.end(c, instance, state, store, status=Status.COMPLETED, reason="", at=at, out=out)
            return
        upcoming = journey.steps[following]
        instance.step = upcoming.id
        instance.due = at + upcoming.wait

    def exit_on_event(
        self,
        c: CompiledCampaign,
        state: PlayerState,
        store: PlayerCampaigns,
        *,
        event_id: str,
        at: int,
        out: list[Intent],
    ) -> None:
        """An exit event arrived: leave the journey if its exit condition holds."""
        journey = c.journey
        instance = store.live.get(c.id)
        if journey is None or journey.exit_when is None or instance is None:
            return
        ctx = self.ctx
        ctx.state, ctx.now, ctx.journey, ctx.event, ctx.signal = state, at, instance, None, None
        if journey.exit_when(ctx):
            self.end(
                c, instance, state, store, status=Status.EXITED, reason="exit_condition",
                event_id=event_id, at=at, out=out,
            )  # fmt: skip

    def end(
        self,
        c: CompiledCampaign,
        instance: Instance,
        state: PlayerState,
        store: PlayerCampaigns,
        *,
        status: Status,
        reason: str,
        at: int,
        out: list[Intent],
        event_id: str = "",
    ) -> None:
        """Leave the journey (completed or exited) and report it."""
        step = instance.step
        instance.step = None
        instance.due = None
        self.runner.finish(
            c.id, instance, state, store, status=status, reason=reason, event_id=event_id,
            at=at, out=out, step=step,
        )  # fmt: skip
