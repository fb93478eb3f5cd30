"""Running an offer for a player: messages, rewards and the instance lifecycle.

An activation sends the offer's message and pays (or promises) its reward; a reward with
a later condition (a deposit match waiting for the next deposit, a personal coupon
waiting for its code) or a wagering requirement leaves an :class:`Instance` in the
player's store. Every lifecycle transition is reported as an intent on the
``lifecycle`` channel, one per decision moment, listing the transitions it made::

    {"instance": "welcome_offer", "status": "wagering",
     "transitions": ["condition_checked", "rewarded", "wagering"], ...}

Action ids: with the campaign and the player, ``occurrence`` (the trigger occurrence)
derives every id; the message is ``<occurrence>:message``, the reward
``<occurrence>:reward``, a lifecycle report ``<occurrence>:<status>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from operators.actions import ActionKind
from operators.campaigns.compiled import CampaignSet, CompiledCampaign, Offer
from operators.campaigns.config_rewards import Cashback, Coupon, DepositMatch
from operators.campaigns.messages import choose_channel, message_context, render
from operators.campaigns.rewards import (
    CompiledReward,
    cashback,
    fmt_money,
    grant_value,
    match,
    personal_code,
    reward_payload,
    reward_view,
)
from operators.campaigns.store import Instance, PlayerCampaigns, Status
from operators.player_state import PlayerState
from operators.rules import Intent

__all__ = ["LIFECYCLE", "WALLET", "Cause", "Runner"]


LIFECYCLE: Final = "lifecycle"  # the channel of lifecycle reports (the action log only)
WALLET: Final = "wallet"  # the channel of rewards
_PENDING: Final = (Status.ACTIVATED, Status.NOTIFIED)


@dataclass(frozen=True, slots=True)
class Cause:
    """Why and when: the triggering event ("" for a deadline), its time, the decision time."""

    event_id: str
    event_at: int
    at: int


class Runner:
    """Turns activations and instance events into intents for one configuration."""

    def __init__(self, campaigns: CampaignSet) -> None:
        self.version = campaigns.version
        self.templates = campaigns.templates
        self.default_locale = campaigns.settings.default_locale
        self.by_id = {c.id: c for c in campaigns.campaigns}
        # instance key -> (campaign, offers per variant), for offers that pay something
        self.offers: dict[str, tuple[CompiledCampaign, tuple[Offer, ...]]] = {}
        # coupon code (a personal code's prefix) -> instance key
        self.codes: dict[str, str] = {}
        for c in campaigns.campaigns:
            groups = [c.offers] if c.journey is None else [s.offers for s in c.journey.steps]
            for offers in groups:
                if any(o.reward is not None for o in offers):
                    self.offers[offers[0].key] = (c, offers)
                for offer in offers:
                    reward = offer.reward
                    if reward is not None and isinstance(reward.config, Coupon):
                        self.codes[reward.config.code] = offer.key

    # -- intents -----------------------------------------------------------------------

    def intent(
        self,
        c: CompiledCampaign,
        state: PlayerState,
        occurrence: str,
        *,
        kind: ActionKind,
        channel: str,
        payload: dict[str, Any],
        cause: Cause,
        variant: str,
        cost: int = 0,
    ) -> Intent:
        """An intent of campaign ``c`` stamped with this configuration's version."""
        return Intent(
            c.id,
            state.player_id,
            occurrence,
            kind,
            channel,
            payload,
            cause.event_id,
            cause.event_at,
            cause.at,
            c.priority,
            self.version,
            variant,
            cost,
            (state.currency or "") if cost else "",
            c.defer_when_capped,
        )

    def lifecycle(
        self,
        c: CompiledCampaign,
        state: PlayerState,
        occurrence: str,
        *,
        key: str,
        transitions: list[Status],
        cause: Cause,
        variant: str,
        out: list[Intent],
        **details: Any,
    ) -> None:
        """Report an instance's transitions (to the action log, channel ``lifecycle``)."""
        final = transitions[-1]
        payload = {
            "instance": key,
            "status": final.label,
            "transitions": [status.label for status in transitions],
            **details,
        }
        out.append(
            self.intent(
                c,
                state,
                f"{occurrence}:{final.label}",
                kind=c.kind,
                channel=LIFECYCLE,
                payload=payload,
                cause=cause,
                variant=variant,
            )
        )

    def message(
        self,
        c: CompiledCampaign,
        state: PlayerState,
        occurrence: str,
        *,
        offer: Offer,
        view: dict[str, Any] | None,
        step: str | None,
        cause: Cause,
        variant: str,
        out: list[Intent],
    ) -> None:
        """Render and send the offer's message (if it has one)."""
        message = offer.message
        if message is None:
            return
        channel = choose_channel(message, state)
        context = message_context(
            state,
            cause.at,
            campaign_id=c.id,
            campaign_name=c.config.name or c.id,
            variant=variant,
            reward=view,
            journey_step=step,
        )
        payload = render(
            self.templates,
            self.default_locale,
            message,
            channel=channel,
            state=state,
            context=context,
            what=f"campaign {c.id}",
        )
        out.append(
            self.intent(
                c,
                state,
                f"{occurrence}:message",
                kind=ActionKind.MESSAGE,
                channel=channel,
                payload=payload,
                cause=cause,
                variant=variant,
            )
        )

    # -- activation --------------------------------------------------------------------

    def activate(
        self,
        c: CompiledCampaign,
        state: PlayerState,
        store: PlayerCampaigns,
        *,
        offer: Offer,
        occurrence: str,
        step: str | None,
        cause: Cause,
        variant: str,
        out: list[Intent],
    ) -> bool:
        """Run ``offer``: its message and its reward (paid now, or an open offer).

        A cashback that comes to less than its minimum does not run at all (False).
        """
        reward = offer.reward
        if reward is None:
            self.message(
                c, state, occurrence, offer=offer, view=None, step=step, cause=cause,
                variant=variant, out=out,
            )  # fmt: skip
            return True
        config = reward.config
        at = cause.at
        if isinstance(config, DepositMatch | Coupon):
            code = None
            if isinstance(config, Coupon) and config.personal:
                code = personal_code(config.code, c.id, state.player_id)
            self.message(
                c, state, occurrence, offer=offer, view=reward_view(reward, state, at, code=code),
                step=step, cause=cause, variant=variant, out=out,
            )  # fmt: skip
            if isinstance(config, Coupon) and not config.personal:
                return True  # a shared code: redeeming it starts the instance
            instance = Instance(occurrence, at, variant)
            valid_for = config.valid_for
            instance.due = at + valid_for if valid_for is not None else None
            statuses = [Status.ACTIVATED]
            if offer.message is not None:
                instance.status = Status.NOTIFIED
                statuses.append(Status.NOTIFIED)
            store.live[offer.key] = instance
            details: dict[str, Any] = {"expires_at": instance.due}
            if code is not None:
                details["code"] = code
            self.lifecycle(
                c, state, occurrence, key=offer.key, transitions=statuses, cause=cause,
                variant=variant, out=out, **details,
            )  # fmt: skip
            return True
        if isinstance(config, Cashback):
            amount, basis = cashback(config, state, at)
            if amount == 0:
                return False
        else:
            amount, basis = grant_value(config, state.currency), None
        view = reward_view(reward, state, at, amount=amount, basis=basis)
        self.message(
            c, state, occurrence, offer=offer, view=view, step=step, cause=cause,
            variant=variant, out=out,
        )  # fmt: skip
        statuses = [Status.ACTIVATED]
        if offer.message is not None:
            statuses.append(Status.NOTIFIED)
        self.pay(
            c, state, store, reward=reward, key=offer.key, occurrence=occurrence, amount=amount,
            basis=basis, code=None, statuses=statuses, cause=cause, variant=variant, out=out,
        )  # fmt: skip
        return True

    def pay(
        self,
        c: CompiledCampaign,
        state: PlayerState,
        store: PlayerCampaigns,
        *,
        reward: CompiledReward,
        key: str,
        occurrence: str,
        amount: int,
        basis: int | None,
        code: str | None,
        statuses: list[Status],
        cause: Cause,
        variant: str,
        out: list[Intent],
    ) -> None:
        """Pay ``amount``, then start wagering (an instance with a deadline) or complete."""
        payload = reward_payload(reward, state, cause.at, amount, basis=basis, code=code)
        payload["instance"] = key
        out.append(
            self.intent(
                c,
                state,
                f"{occurrence}:reward",
                kind=ActionKind.REWARD,
                channel=WALLET,
                payload=payload,
                cause=cause,
                variant=variant,
                cost=amount,
            )
        )
        statuses += [Status.CHECKED, Status.REWARDED]
        wagering = reward.wagering
        details: dict[str, Any] = {"amount": fmt_money(amount)}
        if wagering is not None:
            instance = Instance(occurrence, cause.at, variant)
            instance.status = Status.WAGERING
            instance.amount = amount
            instance.need = wagering.required(amount)
            instance.max_bet = wagering.max_bet(state.currency)
            instance.weights = wagering.weights
            instance.due = cause.at + wagering.config.expires_in
            store.live[key] = instance
            store.wagering += 1
            statuses.append(Status.WAGERING)
            details |= {"required": fmt_money(instance.need), "expires_at": instance.due}
        else:
            store.live.pop(key, None)
            statuses.append(Status.COMPLETED)
        self.lifecycle(
            c, state, occurrence, key=key, transitions=statuses, cause=cause, variant=variant,
            out=out, **details,
        )  # fmt: skip

    # -- instances -----------------------------------------------------------------------

    def finish(
        self,
        key: str,
        instance: Instance,
        state: PlayerState,
        store: PlayerCampaigns,
        *,
        status: Status,
        reason: str,
        event_id: str,
        at: int,
        out: list[Intent],
        **details: Any,
    ) -> None:
        """End an instance (expired, cancelled, completed...) and report it."""
        if store.live.get(key) is instance:
            del store.live[key]
        if instance.status == Status.WAGERING:
            store.wagering -= 1
            details |= {"required": fmt_money(instance.need), "progress": fmt_money(instance.done)}
        campaign = self.by_id.get(key.split("/", 1)[0])
        if campaign is None:
            return  # the campaign left the configuration: its instances end quietly
        if reason:
            details["reason"] = reason
        self.lifecycle(
            campaign, state, instance.occurrence, key=key, transitions=[status],
            cause=Cause(event_id, instance.started, at), variant=instance.variant, out=out,
            **details,
        )  # fmt: skip

    def _reward_of(self, key: str, instance: Instance) -> tuple[CompiledCampaign | None, Any]:
        found = self.offers.get(key)
        if found is None:
            return None, None
        c, offers = found
        offer = offers[min(c.variant_index(instance.variant), len(offers) - 1)]
        return c, offer.reward

    def qualify_deposit(
        self, state: PlayerState, store: PlayerCampaigns, *, deposit: int, cause: Cause,
        out: list[Intent],
    ) -> None:  # fmt: skip
        """Pay every open deposit match that this deposit qualifies for."""
        for key, instance in list(store.live.items()):
            if instance.status not in _PENDING or instance.step is not None:
                continue
            c, reward = self._reward_of(key, instance)
            if c is None or reward is None or not isinstance(reward.config, DepositMatch):
                continue
            amount = match(reward.config, deposit, state.currency)
            if amount:
                self.pay(
                    c, state, store, reward=reward, key=key, occurrence=instance.occurrence,
                    amount=amount, basis=deposit, code=None, statuses=[],
                    cause=Cause(cause.event_id, instance.started, cause.at),
                    variant=instance.variant, out=out,
                )  # fmt: skip

    def wagered(
        self, state: PlayerState, store: PlayerCampaigns, *, ended: list[tuple[str, Instance]],
        stake: int, event_id: str, at: int, out: list[Intent],
    ) -> None:  # fmt: skip
        """End the bonuses a bet completed (requirement met) or forfeited (stake too high)."""
        for key, instance in ended:
            if instance.done >= instance.need:
                status, reason, details = Status.COMPLETED, "", {}
            else:
                status, reason = Status.CANCELLED, "max_bet_exceeded"
                details = {"stake": fmt_money(stake), "max_bet": fmt_money(instance.max_bet)}
            self.finish(
                key, instance, state, store, status=status, reason=reason, event_id=event_id,
                at=at, out=out, **details,
            )  # fmt: skip

    def forfeit_on_withdrawal(
        self, state: PlayerState, store: PlayerCampaigns, event_id: str, at: int, out: list[Intent]
    ) -> None:
        """A withdrawal forfeits bonuses still being wagered (unless configured not to)."""
        for key, instance in list(store.live.items()):
            if instance.status != Status.WAGERING:
                continue
            _, reward = self._reward_of(key, instance)
            wagering = reward.wagering if reward is not None else None
            if wagering is not None and not wagering.config.forfeit_on_withdrawal:
                continue
            self.finish(
                key, instance, state, store, status=Status.CANCELLED, reason="withdrawal",
                event_id=event_id, at=at, out=out,
            )  # fmt: skip

    def redeem(
        self, state: PlayerState, store: PlayerCampaigns, ctx: Any, *, code: str, cause: Cause,
        out: list[Intent],
    ) -> None:  # fmt: skip
        """Validate a redeemed code and pay its grant.

        Codes no campaign issues are ignored (other systems' codes); a code that does not
        qualify is reported as ``rejected`` with the reason.
        """
        key = self.codes.get(code.split("-", 1)[0])
        if key is None:
            return
        c, offers = self.offers[key]
        instance = store.live.get(key)
        index = c.variant_index(instance.variant) if instance else c.variant_of(state.player_id)
        reward = offers[min(index, len(offers) - 1)].reward
        if reward is None or not isinstance(reward.config, Coupon):
            return
        config = reward.config
        personal = config.personal
        at = cause.at
        ctx.state, ctx.now, ctx.event, ctx.journey, ctx.signal = state, at, None, None, None
        redeemed = f"{key}#redeemed"
        before = store.fired.get(redeemed)
        reason = ""
        if personal and code != personal_code(config.code, c.id, state.player_id):
            reason = "not_issued_to_player"
        elif not personal and code != config.code:
            reason = "unknown_code"
        elif not c.active_at(at):
            reason = "campaign_inactive"
        elif instance is not None and instance.status == Status.WAGERING:
            reason = "bonus_in_progress"
        elif personal and instance is None:
            reason = "no_open_offer"
        elif not personal and before is not None and before[0] >= config.max_uses:
            reason = "used_up"
        elif before is not None and c.once_per is not None and at < before[1] + c.once_per:
            reason = "too_soon"
        elif not c.in_segment(ctx):
            reason = "not_in_segment"
        occurrence = f"e{cause.event_id}"
        variant = c.variant_name(index)
        if reason:
            self.lifecycle(
                c, state, occurrence, key=key, transitions=[Status.REJECTED], cause=cause,
                variant=variant, out=out, code=code, reason=reason,
            )  # fmt: skip
            return
        store.record_fired(redeemed, at)
        statuses = [Status.ACTIVATED]
        if instance is not None:
            instance.uses += 1
            statuses = []
        self.pay(
            c, state, store, reward=reward, key=key, occurrence=occurrence,
            amount=grant_value(config.grant, state.currency), basis=None, code=code,
            statuses=statuses, cause=cause, variant=variant, out=out,
        )  # fmt: skip
        if instance is not None and key not in store.live and instance.uses < config.max_uses:
            store.live[key] = instance  # a personal code with uses left stays open
