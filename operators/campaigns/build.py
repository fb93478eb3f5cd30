"""From validated campaign models to compiled campaigns, collecting every problem.

The pydantic models (``operators.campaigns.config``) check shapes and values; this
module checks what needs the whole configuration: conditions against their schema,
segment names, journey step references, coupon codes, cron expressions, and templates
(that each exists in the default locale and renders for the reward it announces).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from operators.actions import ActionKind
from operators.campaigns.compiled import (
    CompiledCampaign,
    CompiledJourney,
    CompiledStep,
    Offer,
    Predicate,
)
from operators.campaigns.config import (
    END,
    Campaign,
    EventTrigger,
    InlineSegment,
    Journey,
    Message,
    ScheduleTrigger,
    Settings,
    SignalTrigger,
    Variant,
)
from operators.campaigns.config_rewards import (
    BonusCredit,
    Cashback,
    Coupon,
    DepositMatch,
    FreeSpins,
)
from operators.campaigns.context import schema
from operators.campaigns.errors import Problem
from operators.campaigns.messages import message_context, sample_state
from operators.campaigns.rewards import CompiledReward, grant_value, personal_code, reward_view
from operators.campaigns.templates import Template, TemplateStore, render_problem
from operators.campaigns.timing import Schedule
from operators.expressions import ExpressionError, Schema, compile_condition, compile_expression
from operators.expressions_types import suggest
from operators.gamification.messages import sample_view as gamification_sample
from pipeline.events import EVENT_TYPES

__all__ = ["Builder"]


@dataclass(frozen=True, slots=True)
class _Usage:
    """A message some campaign sends: its templates must exist and render for it."""

    file: str
    path: str
    message: Message
    reward: CompiledReward | None
    campaign: str
    variant: str
    step: str | None


def _shape(value: Any) -> Any:
    """The structure of a sample context value: its keys, and which values are null."""
    if isinstance(value, dict):
        return tuple(sorted((key, _shape(item)) for key, item in value.items()))
    return value is None


def _epoch(moment: dt.datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


class Builder:
    """Compiles campaigns one by one; problems accumulate in ``problems``."""

    def __init__(
        self,
        *,
        templates: TemplateStore,
        settings: Settings,
        segments: Mapping[str, Any],
        problems: list[Problem],
    ) -> None:
        self.templates = templates
        self.settings = settings
        self.problems = problems
        self.usages: list[_Usage] = []
        self.codes: dict[str, tuple[str, str, str]] = {}  # code -> (campaign, file, path)
        self.segments: dict[str, Predicate | None] = {}
        for segment_id, item in segments.items():
            self.segments[segment_id] = self.condition(
                item.model.when, schema(), item.file, f"{item.path}.when"
            )

    # -- helpers -----------------------------------------------------------------------

    def problem(self, file: str, path: str, message: str) -> None:
        """Record one problem."""
        self.problems.append(Problem(file, path, message))

    def condition(self, source: str, where: Schema, file: str, path: str) -> Predicate | None:
        """Compile a condition; on error record it (prefixed with file and path)."""
        try:
            return compile_condition(source, where).evaluate
        except ExpressionError as exc:
            self.problem(file, path, str(exc))
            return None

    def events(self, names: list[str], file: str, path: str) -> tuple[str, ...] | None:
        """Check event type names; ``None`` if any is unknown."""
        ok = True
        for index, name in enumerate(names):
            if name not in EVENT_TYPES:
                ok = False
                hint = suggest(name, EVENT_TYPES)
                text = f"unknown event type {name!r}"
                text += (
                    f"; did you mean {hint!r}?" if hint else f"; one of {', '.join(EVENT_TYPES)}"
                )
                self.problem(file, f"{path}[{index}]", text)
        return tuple(names) if ok else None

    # -- campaigns ---------------------------------------------------------------------

    def campaign(self, item: Any) -> CompiledCampaign | None:
        """Compile one campaign (``None`` if it is disabled or has problems)."""
        c: Campaign = item.model
        file, path = item.file, item.path
        before = len(self.problems)
        segments = self._segments(c, file, path)
        when: Predicate | None = None
        changed = None
        ranks = None
        cron = None
        trigger = c.trigger
        tpath = f"{path}.trigger"
        if isinstance(trigger, EventTrigger):
            events = self.events(trigger.events, file, f"{tpath}.events")
            if events is not None:
                where = schema(events)
                if trigger.when is not None:
                    when = self.condition(trigger.when, where, file, f"{tpath}.when")
                if trigger.changed is not None:
                    try:
                        changed = compile_expression(trigger.changed, where).evaluate
                    except ExpressionError as exc:
                        self.problem(file, f"{tpath}.changed", str(exc))
            if trigger.ranks is not None:
                ranks = {str(value): rank for rank, value in enumerate(trigger.ranks)}
        elif isinstance(trigger, SignalTrigger):
            if trigger.when is not None:
                when = self.condition(trigger.when, schema(signal=True), file, f"{tpath}.when")
        elif trigger is not None:
            if trigger.when is not None:
                when = self.condition(trigger.when, schema(), file, f"{tpath}.when")
            if isinstance(trigger, ScheduleTrigger):
                if Schedule.valid(trigger.cron):
                    cron = Schedule(trigger.cron)
                else:
                    self.problem(
                        file,
                        f"{tpath}.cron",
                        f"{trigger.cron!r} is not a valid cron expression; five fields: "
                        "minute hour day-of-month month day-of-week, e.g. '0 10 * * MON'",
                    )
        journey = None
        if c.journey is not None:
            journey = self._journey(c, c.journey, file, path)
            offers: tuple[Offer, ...] = ()
        else:
            offers = self._offers(c, file, path)
        if len(self.problems) > before or not c.enabled:
            return None
        rewarded = any(o.reward is not None for o in offers) or (
            journey is not None and any(o.reward for s in journey.steps for o in s.offers)
        )
        cumulative = 0
        variants = []
        for variant in c.variants:
            cumulative += variant.weight
            variants.append((variant.name, cumulative))
        return CompiledCampaign(
            config=c,
            id=c.id,
            priority=c.priority,
            kind=ActionKind.REWARD if rewarded else ActionKind.MESSAGE,
            start=_epoch(c.active.start) if c.active else None,
            end=_epoch(c.active.end) if c.active else None,
            when=when,
            segments=tuple(s for s in segments if s is not None),
            once=c.limits.once,
            once_per=c.limits.once_per,
            defer_when_capped=c.limits.defer_when_capped or 0,
            variants=tuple(variants),
            offers=offers,
            journey=journey,
            changed=changed,
            ranks=ranks,
            schedule=cron,
        )

    def _segments(self, c: Campaign, file: str, path: str) -> list[Predicate | None]:
        ref = c.segment
        if ref is None:
            return []
        if isinstance(ref, InlineSegment):
            return [self.condition(ref.when, schema(), file, f"{path}.segment.when")]
        names = [ref] if isinstance(ref, str) else ref
        found: list[Predicate | None] = []
        for index, name in enumerate(names):
            if name not in self.segments:
                hint = suggest(name, self.segments)
                text = f"unknown segment {name!r}"
                known = ", ".join(sorted(self.segments)) or "none defined"
                text += f"; did you mean {hint!r}?" if hint else f"; the segments are {known}"
                where = f"{path}.segment" + (f"[{index}]" if not isinstance(ref, str) else "")
                self.problem(file, where, text)
            else:
                found.append(self.segments[name])
        return found

    def _reward(
        self, c: Campaign, reward: Any, key: str, file: str, path: str
    ) -> CompiledReward | None:
        if reward is None:
            return None
        compiled = CompiledReward.of(reward)
        if isinstance(reward, Coupon):
            code = reward.code
            taken = self.codes.get(code)
            if taken is not None and taken[0] != key:
                self.problem(
                    file,
                    f"{path}.code",
                    f"code {code!r} is already used by campaign {taken[0]!r} "
                    f"({taken[1]}: {taken[2]})",
                )
            else:
                self.codes[code] = (key, file, path)
        return compiled

    def _offers(self, c: Campaign, file: str, path: str) -> tuple[Offer, ...]:
        base = Offer(c.id, c.message, self._reward(c, c.reward, c.id, file, f"{path}.reward"))
        if not c.variants:
            self._use(file, f"{path}.message", base, campaign=c, variant="", step=None)
            return (base,)
        offers = []
        for index, variant in enumerate(c.variants):
            vpath = f"{path}.variants[{index}]"
            if variant.steps:
                self.problem(file, f"{vpath}.steps", "only a journey's variants can change steps")
            reward = base.reward
            if variant.reward is not None:
                reward = self._reward(c, variant.reward, c.id, file, f"{vpath}.reward")
            offer = Offer(c.id, variant.message or c.message, reward)
            where = f"{vpath}.message" if variant.message is not None else f"{path}.message"
            self._use(file, where, offer, campaign=c, variant=variant.name, step=None)
            offers.append(offer)
        return tuple(offers)

    def _use(
        self, file: str, path: str, offer: Offer, *, campaign: Campaign, variant: str,
        step: str | None,
    ) -> None:  # fmt: skip
        if offer.message is not None:
            self.usages.append(
                _Usage(file, path, offer.message, offer.reward, campaign.id, variant, step)
            )

    def _journey(self, c: Campaign, journey: Journey, file: str, path: str) -> CompiledJourney:
        jpath = f"{path}.journey"
        where = schema(journey=True)
        index: dict[str, int] = {}
        for i, step in enumerate(journey.steps):
            if step.id in index:
                self.problem(file, f"{jpath}.steps[{i}].id", f"duplicate step id {step.id!r}")
            elif step.id == END:
                self.problem(file, f"{jpath}.steps[{i}].id", f"{END!r} is reserved")
            index.setdefault(step.id, i)
        for vi, declared in enumerate(c.variants):
            if declared.message is not None or declared.reward is not None:
                self.problem(
                    file,
                    f"{path}.variants[{vi}]",
                    "a journey's variant changes its steps: use 'steps: {step_id: {message: ...}}'",
                )
            for step_id in declared.steps:
                if step_id not in index:
                    hint = suggest(step_id, index)
                    text = f"unknown step {step_id!r}"
                    self.problem(
                        file,
                        f"{path}.variants[{vi}].steps.{step_id}",
                        f"{text}; did you mean {hint!r}?" if hint else text,
                    )
        steps = []
        variants: list[tuple[int, Variant | None]] = list(enumerate(c.variants)) or [(0, None)]
        for i, step in enumerate(journey.steps):
            spath = f"{jpath}.steps[{i}]"
            when = self.condition(step.when, where, file, f"{spath}.when") if step.when else None
            key = f"{c.id}/{step.id}"
            base_reward = self._reward(c, step.reward, key, file, f"{spath}.reward")
            offers = []
            for vi, variant in variants:
                override = variant.steps.get(step.id) if variant is not None else None
                message, reward = step.message, base_reward
                mpath = f"{spath}.message"
                if override is not None and override.message is not None:
                    message = override.message
                    mpath = f"{path}.variants[{vi}].steps.{step.id}.message"
                if override is not None and override.reward is not None:
                    reward = self._reward(c, override.reward, key, file, f"{mpath}.reward")
                offer = Offer(key, message, reward)
                name = variant.name if variant else ""
                self._use(file, mpath, offer, campaign=c, variant=name, step=step.id)
                offers.append(offer)
            branches = []
            for b, branch in enumerate(step.branch):
                bpath = f"{spath}.branch[{b}]"
                cond = (
                    self.condition(branch.when, where, file, f"{bpath}.when")
                    if branch.when
                    else None
                )
                if branch.goto == END:
                    target = -1
                elif branch.goto in index and index[branch.goto] > i:
                    target = index[branch.goto]
                else:
                    later = [s.id for s in journey.steps[i + 1 :]] + [END]
                    hint = suggest(branch.goto, later)
                    text = (
                        f"goto {branch.goto!r} must name a later step or {END!r} "
                        f"(journeys only move forward): one of {', '.join(later)}"
                    )
                    self.problem(
                        file, f"{bpath}.goto", f"{text}; did you mean {hint!r}?" if hint else text
                    )
                    target = -1
                branches.append((cond, target))
            steps.append(CompiledStep(step.id, step.wait, when, tuple(offers), tuple(branches)))
        exit_when = None
        exit_on: frozenset[str] = frozenset()
        if journey.exit is not None:
            exit_when = self.condition(journey.exit.when, where, file, f"{jpath}.exit.when")
            events = self.events(journey.exit.on, file, f"{jpath}.exit.on")
            exit_on = frozenset(events or ())
        return CompiledJourney(tuple(steps), index, exit_when, exit_on)

    # -- whole-configuration checks ------------------------------------------------------

    def check_templates(self) -> None:
        """Every message's templates exist (default locale included) and render."""
        state = sample_state()
        now = state.last_seen
        default = self.settings.default_locale
        rendered: set[tuple[str, Any, bool]] = set()
        used: set[str] = set()
        for usage in self.usages:
            reward_sample = None
            if usage.reward is not None:
                reward_sample = self._sample_view(usage.reward, usage.campaign, state, now)
            context = message_context(
                state,
                now,
                campaign_id=usage.campaign,
                campaign_name=usage.campaign,
                variant=usage.variant,
                reward=reward_sample,
                journey_step=usage.step,
            )
            for channel in usage.message.channels:
                if (channel.value, usage.message.template) in self.templates.broken:
                    continue  # its own problem is reported already
                locales = self.templates.locales(channel.value, usage.message.template)
                if not locales:
                    self._unknown_template(usage, channel.value)
                    continue
                if default not in locales:
                    self.problem(
                        usage.file,
                        f"{usage.path}.template",
                        f"template {usage.message.template!r} for {channel.value} has no "
                        f"{default!r} version (the default locale); found "
                        f"{', '.join(sorted(locales))}",
                    )
                for template in locales.values():
                    used.add(template.file)
                    # Rendered once per shape of what it reads (a reward with or without
                    # wagering is two shapes): each way it can be sent is checked.
                    key = (template.file, _shape(reward_sample), usage.step is None)
                    if key in rendered:
                        continue
                    rendered.add(key)
                    self._render(template, context, f"{usage.file}: {usage.path}")
        for template in self.templates.all():
            if template.file not in used:
                self._render(template, self._any_context(state, now), "")

    def _sample_view(
        self, reward: CompiledReward, campaign: str, state: Any, now: int
    ) -> dict[str, Any]:
        """The reward as a template sees it when the campaign sends its message."""
        config = reward.config
        if isinstance(config, DepositMatch | Coupon):
            code = None
            if isinstance(config, Coupon) and config.personal:
                code = personal_code(config.code, campaign, state.player_id)
            return reward_view(reward, state, now, code=code)  # not paid yet
        if isinstance(config, Cashback):
            return reward_view(reward, state, now, amount=150_000, basis=1_500_000)
        return reward_view(reward, state, now, amount=grant_value(config, state.currency))

    def _unknown_template(self, usage: _Usage, channel: str) -> None:
        known = self.templates.ids(channel)
        hint = suggest(usage.message.template, known)
        text = f"unknown template {usage.message.template!r} for {channel}"
        if hint:
            text += f"; did you mean {hint!r}?"
        elif known:
            text += f"; the {channel} templates are {', '.join(known)}"
        else:
            text += f"; add templates/{channel}/{usage.message.template}.<locale>.<ext>"
        self.problem(usage.file, f"{usage.path}.template", text)

    def _render(self, template: Template, context: dict[str, Any], used_by: str) -> None:
        problem = render_problem(template, context)
        if problem is not None:
            suffix = f" (as sent by {used_by})" if used_by else ""
            self.problem(template.file, "", problem + suffix)

    def _any_context(self, state: Any, now: int) -> dict[str, Any]:
        """For a template no campaign uses: a reward with the fields of every type."""
        union: dict[str, Any] = {}
        wagering = {"multiplier": 10, "max_bet": 5}
        grant = {"type": "bonus_credit", "amount": 5, "wagering": wagering}
        samples: list[Any] = [
            Coupon.model_validate({"type": "coupon", "code": "SAMPLE", "grant": grant}),
            FreeSpins.model_validate(
                {"type": "free_spins", "game": "sample", "count": 10, "value_per_spin": 1}
                | {"wagering": wagering}
            ),
            BonusCredit.model_validate(grant),
            DepositMatch.model_validate(
                {"type": "deposit_match", "percent": 100, "max_amount": 100, "valid_for": "1d"}
                | {"min_deposit": 10, "wagering": wagering}
            ),
            Cashback.model_validate(
                {"type": "cashback", "percent": 10, "window": "7d", "max_amount": 100}
                | {"wagering": wagering}
            ),
        ]
        for sample in samples:
            union |= reward_view(CompiledReward.of(sample), state, now, amount=1, basis=1)
        context = message_context(
            state,
            now,
            campaign_id="sample",
            campaign_name="sample",
            variant="",
            reward=union,
            journey_step="sample",
        )
        # Gamification messages' templates live here too (operators.gamification.messages).
        context["gamification"] = gamification_sample()
        return context
