"""Missions: assigned by segment, progressed per event, completed or expired.

An *instance* of a mission is identified by its key: ``once`` for a one-time mission, the
player's local date (``daily``) or ISO week (``weekly``) for a recurring one. A player gets
each instance at most once: automatic missions start at the first event of the day that
finds the player in the segment (that event counts); opt-in missions are offered then
and start when the player redeems the mission's code.

Time limit: an instance started at ``S`` accepts events at ``S <= ts < ends``, where
``ends`` is ``S + time_limit`` and, for a recurring mission, at most the end of its day or
week. The expiry is a deadline at ``ends``; it fires before any event at or after it is
folded, so an objective completed one second after the end finds the mission expired.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from operators.gamification.context import Turn
from operators.gamification.intents import Emitter
from operators.gamification.periods import calendar
from operators.gamification.program import (
    COUNT,
    DISTINCT_GAMES,
    REAL_WAGER,
    WAGER,
    Mission,
    Objective,
    Program,
)
from operators.gamification.state import NO_DUE, GamState, MissionRun

STARTED, OFFERED = "S:", "O:"


def instance(mission: Mission, zone_name: str, ts: int) -> tuple[str, int]:
    """The instance key at ``ts`` and the latest it may end (NO_DUE: no limit)."""
    if mission.recurrence is None:
        ends = NO_DUE
        key = "once"
    else:
        span = calendar(mission.recurrence, zone_name).span(ts)
        key, ends = span.id, span.end
    if mission.time_limit is not None:
        ends = min(ends, ts + mission.time_limit)
    return key, ends


def progress_text(objective: Objective, value: int) -> str:
    """``"25/50"``; money objectives in base-currency units."""
    if objective.measure in ("wager", "real_wager", "amount"):
        done = Decimal(value).scaleb(-4).normalize()
        target = Decimal(objective.target).scaleb(-4).normalize()
        return f"{done:f}/{target:f}"
    return f"{value}/{objective.target}"


def _log(gs: GamState) -> dict[str, str]:
    if gs.mission_log is None:
        gs.mission_log = {}
    return gs.mission_log


def start(mission: Mission, emit: Emitter, turn: Turn) -> MissionRun:
    """Start an instance of ``mission`` at ``turn.now``."""
    gs = turn.gam
    key, ends = instance(mission, turn.zone_name, turn.now)
    run = MissionRun(mission.id, key, turn.now, ends, mission.targets)
    run.money = mission.money
    if gs.missions is None:
        gs.missions = []
    gs.missions.append(run)
    _log(gs)[mission.id] = STARTED + key
    payload: dict[str, Any] = {
        "event": "mission_started",
        "mission": mission.id,
        "name": mission.name,
        "instance": key,
        "objectives": [o.id for o in mission.objectives],
        "ends_at": None if ends == NO_DUE else ends,
    }
    emit.event(turn, f"mission:{mission.id}", f"{key}:started", payload)
    if ends != NO_DUE and turn.schedule is not None:
        turn.schedule(turn.state, ends)
    return run


def assign(program: Program, emit: Emitter, turn: Turn) -> None:
    """Start (automatic) or offer (opt-in) the missions the player qualifies for now."""
    gs, now, zone_name = turn.gam, turn.now, turn.zone_name
    gs.assign_at = calendar("day", zone_name).span(now).end
    for mission in program.missions:
        logged = gs.mission_log.get(mission.id) if gs.mission_log else None
        key, _ = instance(mission, zone_name, now)
        if logged == STARTED + key or (not mission.automatic and logged == OFFERED + key):
            continue
        if mission.segment is not None and not mission.segment.evaluate(turn):
            continue
        if mission.automatic:
            start(mission, emit, turn)
            continue
        _log(gs)[mission.id] = OFFERED + key
        payload = {
            "event": "mission_offered",
            "mission": mission.id,
            "name": mission.name,
            "instance": key,
            "opt_in_code": mission.opt_in_code,
        }
        emit.event(turn, f"mission:{mission.id}", f"{key}:offered", payload)


def opt_in(program: Program, emit: Emitter, turn: Turn, code: str) -> None:
    """A redeemed code joins the opt-in missions it names (if the player qualifies)."""
    gs = turn.gam
    wanted = code.strip().upper()
    for mission in program.missions:
        if mission.opt_in_code != wanted:
            continue
        key, _ = instance(mission, turn.zone_name, turn.now)
        logged = gs.mission_log.get(mission.id) if gs.mission_log else None
        if logged == STARTED + key:
            continue
        if mission.segment is not None and not mission.segment.evaluate(turn):
            continue
        start(mission, emit, turn)


def progress(
    program: Program,
    missions: dict[str, Mission],
    emit: Emitter,
    turn: Turn,
    *,
    category: int = -1,
    stake: int = 0,
    real: int = 0,
) -> list[Mission]:
    """Count ``turn.event`` towards the running missions; the missions it completed.

    For a bet, ``category`` is its game category's index, ``stake`` and ``real`` its
    stake and real-money part (ten-thousandths of the bet's currency, converted to the
    base currency only when an objective counts them).
    """
    gs, event, ts = turn.gam, turn.event, turn.now
    runs = gs.missions
    if not runs:
        return []
    etype = event.type
    bit = 1 << category if category >= 0 else -1
    finished: list[tuple[MissionRun, Mission]] | None = None
    settings = program.settings
    for run in runs:
        if ts >= run.ends or ts < run.started:
            continue
        mission = missions.get(run.mission)
        if mission is None:
            continue
        # A bet walks only the steps of its game category (often none).
        steps = mission.bet_steps[category] if category >= 0 else mission.steps.get(etype)
        if not steps:
            continue
        counts = run.progress
        for j, mask, categories, when, measure, target in steps:
            done = run.done
            if done & mask or not categories & bit:
                continue  # complete, or not this game category
            if mission.sequential and done != mask - 1:
                continue  # an earlier objective is still open
            if when is not None and not when.evaluate(turn):
                continue
            if measure == COUNT:
                value = counts[j] + 1
            elif measure >= WAGER:
                units = (
                    stake
                    if measure == WAGER
                    else real
                    if measure == REAL_WAGER
                    else int(event.amount.scaleb(4))
                )
                currency = event.currency
                if currency != settings.base_currency:  # else the units are base units
                    units = settings.to_base(units, currency)
                value = counts[j] + units
            else:
                seen = run.seen
                if seen is None:
                    seen = run.seen = {}
                values = seen.get(j)
                if values is None:
                    values = seen[j] = set()
                values.add(event.game_id if measure == DISTINCT_GAMES else str(category))
                value = len(values)
            counts[j] = value
            if value < target:
                continue
            run.done = done = done | mask
            if run.seen is not None:
                run.seen.pop(j, None)
            if done == mission.all_done:
                if finished is None:
                    finished = []
                finished.append((run, mission))
                break  # mission_completed says it all
            objective = mission.objectives[j]
            payload = {
                "event": "mission_progress",
                "mission": mission.id,
                "instance": run.key,
                "objective": objective.id,
                "completed_objectives": bin(done).count("1"),
                "objectives": len(mission.objectives),
            }
            emit.event(turn, f"mission:{mission.id}", f"{run.key}:{objective.id}", payload)
    if not finished:  # the common case: nothing more to do
        return []
    for run, mission in finished:
        runs.remove(run)
        gs.missions_done += 1
        payload = {
            "event": "mission_completed",
            "mission": mission.id,
            "name": mission.name,
            "instance": run.key,
            "started_at": run.started,
        }
        emit.package(
            turn,
            f"mission:{mission.id}",
            f"{run.key}:completed",
            payload,
            reward=mission.reward,
            message=mission.message,
        )
    if not runs:
        gs.missions = None
    return [mission for _, mission in finished]


def expire(missions: dict[str, Mission], emit: Emitter, turn: Turn) -> None:
    """Expire every running instance whose end is ``turn.now``."""
    gs, due = turn.gam, turn.now
    runs = gs.missions or []
    for run in [r for r in runs if r.ends == due]:
        runs.remove(run)
        mission = missions.get(run.mission)
        by_objective = (
            {o.id: progress_text(o, run.progress[j]) for j, o in enumerate(mission.objectives)}
            if mission is not None and len(mission.objectives) == len(run.progress)
            else {}
        )
        payload = {
            "event": "mission_expired",
            "mission": run.mission,
            "instance": run.key,
            "completed_objectives": bin(run.done).count("1"),
            "objectives": len(run.progress),
            "progress": by_objective,
        }
        emit.event(turn, f"mission:{run.mission}", f"{run.key}:expired", payload)
    if not runs:
        gs.missions = None
