"""Per-evaluation cost of compiled conditions, against a real PlayerState and real events.

Run: ``.venv/bin/python bench/expressions.py`` (about 15 s). For each example condition of
the campaign engine it prints the result, the one-off compile cost, the cost per
evaluation through ``Condition.__call__`` and through the raw closure
(``Condition.evaluate``), and the cost of the same logic hand-written as a Python lambda
over the same objects (the floor a compiler of closures can approach). Every row takes the
longest path (no short-circuit) except the one marked so.

Figures (AMD EPYC, 2 shared vCPUs, Python 3.11.7, 2026-05; min of 7 x 200k calls):

    1  state.loss_streak >= 5
    2  state.loss_streak >= 5 and state.favourite_category == "slots"
    3  event.amount >= 100 and state.deposit_count == 1
    4  state.lifecycle in ("at_risk", "lapsed") and attributes.vip == true
    5  state.wager_24h > 500 or state.net_7d < -200
    6  event.game_category == "sports" and not state.self_excluded

    case               result   call ns  evaluate ns  by hand ns  compile us
    1                  True         161           96          73          19
    2                  True        1242         1143        1042          44
    2 (short-circuit)  False        182          115          74          42
    3                  True         329          234         146          41
    4                  True         508          409         257          45
    5                  True        1137          973         738          52
    6                  True         271          203         121          34

The player state's own reads dominate the slow rows: ``favourite_category`` scans the
category wagers (~1 us on its own), a window total (``wager_24h``) 0.3-0.6 us,
``lifecycle(now)`` ~0.2 us. Money (5) is compared in the state's integer ten-thousandths
against the constant rescaled at load, so no ``Decimal`` is built per evaluation. The
compiled closures cost 20-260 ns more than the hand-written lambdas; calling the
``Condition`` object adds one Python frame (60-100 ns) over ``Condition.evaluate``.
"""

from __future__ import annotations

import datetime as dt
import platform
import sys
import timeit
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

# Run as a script, sys.path[0] is bench/, where bench/pipeline.py would shadow the
# pipeline package: put the repository root there instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from operators.expressions import EvalContext, compile_condition
from operators.expressions_roots import rule_schema
from operators.player_state import PlayerState
from pipeline.events import (
    Bet,
    Consents,
    Deposit,
    Event,
    GameCategory,
    ProfileUpdate,
    Registration,
    Win,
)

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
DAY = 86_400
NUMBER = 200_000
REPEAT = 7


def _at(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(T0 + seconds, dt.UTC)


def _bet(i: int, category: str, seconds: int) -> Bet:
    return Bet(
        type="bet",
        event_id=f"bet-{i}",
        player_id="p1",
        ts=_at(seconds),
        round_id=f"round-{i}",
        amount=Decimal("50.00"),
        currency="EUR",
        game_id="book-of-dead",
        game_category=GameCategory(category),
    )


def _player() -> tuple[PlayerState, Deposit, Win]:
    """A VIP slots player: registered, one deposit of 150, then six lost 50 spins."""
    state = PlayerState("p1", T0)
    deposit = Deposit(
        type="deposit",
        event_id="dep-1",
        player_id="p1",
        ts=_at(60),
        amount=Decimal("150.00"),
        currency="EUR",
    )
    events: list[Event] = [
        Registration(
            type="registration",
            event_id="reg-1",
            player_id="p1",
            ts=_at(0),
            country="DE",
            currency="EUR",
            timezone="Europe/Berlin",
            channel="affiliate",
            consents=Consents(email=True, push=True),
        ),
        deposit,
    ]
    last_win: Win | None = None
    for i in range(6):
        events.append(_bet(i, "slots", 120 + 10 * i))
        last_win = Win(
            type="win",
            event_id=f"win-{i}",
            player_id="p1",
            ts=_at(125 + 10 * i),
            round_id=f"round-{i}",
            amount=Decimal("0"),
            currency="EUR",
        )
        events.append(last_win)
    events.append(
        ProfileUpdate(
            type="profile_update",
            event_id="pu-1",
            player_id="p1",
            ts=_at(300),
            attributes={"vip": True, "segment": "high_roller"},
        )
    )
    for event in events:
        is_activity = event.type in ("deposit", "bet", "login")
        state.apply(event, int(event.ts.timestamp()), is_activity)
    assert last_win is not None
    return state, deposit, last_win


def _cases() -> list[tuple[str, tuple[str, ...], EvalContext, Callable[[Any], bool]]]:
    """(condition, event types, context, the same logic written by hand)."""
    state, deposit, win = _player()
    attributes = state.attributes
    soon, week_later = T0 + 1_000, T0 + 8 * DAY
    sports_bet = _bet(99, "sports", 1_000)
    at_risk = frozenset({"at_risk", "lapsed"})
    return [
        (
            "state.loss_streak >= 5",
            ("win",),
            EvalContext(win, state, attributes, soon),
            lambda c: c.state.loss_streak >= 5,
        ),
        (
            'state.loss_streak >= 5 and state.favourite_category == "slots"',
            ("win",),
            EvalContext(win, state, attributes, soon),
            lambda c: c.state.loss_streak >= 5 and c.state.favourite_category == "slots",
        ),
        (
            'state.loss_streak >= 5 and state.favourite_category == "slots"  [short-circuit]',
            ("win",),
            EvalContext(win, PlayerState("new", T0), {}, soon),
            lambda c: c.state.loss_streak >= 5 and c.state.favourite_category == "slots",
        ),
        (
            "event.amount >= 100 and state.deposit_count == 1",
            ("deposit",),
            EvalContext(deposit, state, attributes, T0 + 60),
            lambda c: c.event.amount >= 100 and c.state.deposit_count == 1,
        ),
        (
            'state.lifecycle in ("at_risk", "lapsed") and attributes.vip == true',
            ("login",),
            EvalContext(None, state, attributes, week_later),
            lambda c: c.state.lifecycle(c.now) in at_risk and c.attributes.get("vip") == True,  # noqa: E712
        ),
        (
            "state.wager_24h > 500 or state.net_7d < -200",
            ("win",),
            EvalContext(win, state, attributes, soon),
            # In the state's integer ten-thousandths: the fastest it can be done by hand.
            lambda c: c.state.wager(1, c.now) > 5_000_000 or c.state.net(2, c.now) < -2_000_000,
        ),
        (
            'event.game_category == "sports" and not state.self_excluded',
            ("bet",),
            EvalContext(sports_bet, state, attributes, soon),
            lambda c: c.event.game_category == "sports" and not c.state.is_self_excluded,
        ),
    ]


def _per_call_ns(fn: Callable[[Any], Any], ctx: Any) -> float:
    timer = timeit.Timer("fn(ctx)", globals={"fn": fn, "ctx": ctx})
    return min(timer.repeat(repeat=REPEAT, number=NUMBER)) / NUMBER * 1e9


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    """Measure every case and print the table."""
    print(f"{_cpu()}, Python {platform.python_version()}, min of {REPEAT}x{NUMBER} calls")
    columns = ("result", "compile us", "call ns", "evaluate ns", "by hand ns")
    header = f"{'condition':<68} {'path':<5} " + " ".join(f"{c:>11}" for c in columns)
    print(header)
    print("-" * len(header))
    for label, event_types, ctx, by_hand in _cases():
        source, _, note = label.partition("  [")
        schema = rule_schema(event_types)
        condition = compile_condition(source, schema)
        result = condition(ctx)
        if result is not by_hand(ctx):
            raise SystemExit(f"{source}: compiled {result}, by hand {by_hand(ctx)}")
        compiling = timeit.Timer(
            "compile_condition(source, schema)",
            globals={"compile_condition": compile_condition, "source": source, "schema": schema},
        )
        compile_us = min(compiling.repeat(repeat=3, number=200)) / 200 * 1e6
        figures = (
            f"{result!s:>11}",
            f"{compile_us:>11.0f}",
            f"{_per_call_ns(condition, ctx):>11.0f}",
            f"{_per_call_ns(condition.evaluate, ctx):>11.0f}",
            f"{_per_call_ns(by_hand, ctx):>11.0f}",
        )
        path = "short" if note else "full"
        print(f"{source:<68} {path:<5} " + " ".join(figures))


if __name__ == "__main__":
    main()
