"""Points: computed from a player's window when it is flushed, then capped per local day.

A window never spans the player's local midnight (the flush is due at the latest then),
so "per day" and "on weekends" are exact: boosts are checked once per window against the
window's local time, caps count against the window's local day. Amounts are converted to
the base currency here, once per window, at the rate of the player's currency.

Rules on bets without a condition read the window's per-category blocks (nothing is done
per bet for them); other rules keep their own running total, filled per event by
:func:`accumulate`.
"""

from __future__ import annotations

from array import array
from decimal import Decimal
from typing import Any

from operators.gamification.context import Turn
from operators.gamification.periods import calendar
from operators.gamification.program import PointsRule, Program


def quantity(rule: PointsRule, acc: array[int], layout_ok: bool) -> int:
    """What the rule measured in the window (money: ten-thousandths, player's currency)."""
    if rule.slot >= 0:
        return acc[rule.slot] if layout_ok else 0
    return sum(map(acc.__getitem__, rule.cells))


def accumulate(rule: PointsRule, acc: array[int], event: Any, stake: int, real: int) -> None:
    """Add one event to a rule's own running total (its condition already held)."""
    measure = rule.measure
    if measure == "count":
        acc[rule.slot] += 1
    elif measure == "real_wager":
        acc[rule.slot] += real
    elif measure == "wager":
        acc[rule.slot] += stake
    else:
        acc[rule.slot] += int(event.amount.scaleb(4))


def compute(
    program: Program, turn: Turn, acc: array[int] | None
) -> tuple[int, dict[str, int], bool]:
    """Points earned in the window: ``(total, per rule, whether a cap cut them)``.

    ``turn.now`` is the window's start (boosts read the local time then). Updates the
    day's counters in the player's gamification state.
    """
    gs, state = turn.gam, turn.state
    day = calendar("day", turn.zone_name).span(turn.now).serial
    if gs.day != day:
        gs.day, gs.today, gs.rule_today = day, 0, None
    if acc is None or not program.points:
        return 0, {}, False
    settings = program.settings
    currency = state.currency
    layout_ok = gs.layout == program.layout
    by_rule: dict[str, int] = {}
    total = 0
    capped = False
    for rule in program.points:
        measured = quantity(rule, acc, layout_ok)
        if measured <= 0:
            continue
        if rule.money:
            measured = settings.to_base(measured, currency)
        earned = measured * rule.points // rule.per
        for boost in rule.boosts:
            if boost.when.evaluate(turn):
                earned = earned * boost.numerator // boost.denominator
        if rule.daily_cap is not None:
            used = gs.rule_today.get(rule.id, 0) if gs.rule_today else 0
            room = max(0, rule.daily_cap - used)
            if earned > room:
                earned, capped = room, True
            if earned:
                if gs.rule_today is None:
                    gs.rule_today = {}
                gs.rule_today[rule.id] = used + earned
        if earned > 0:
            by_rule[rule.id] = earned
            total += earned
    if program.daily_cap is not None:
        room = max(0, program.daily_cap - gs.today)
        if total > room:
            total, capped = room, True
    gs.today += total
    return total, by_rule, capped


def as_text(hundredths: int) -> str:
    """Points in hundredths as text: ``"12.5"`` -> shown as ``12.50``."""
    return str(Decimal(hundredths).scaleb(-2))
