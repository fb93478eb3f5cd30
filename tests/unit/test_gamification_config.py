"""The gamification configuration: the shipped one loads; broken ones say where and what."""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.gamification import (
    GamificationConfigError,
    check_gamification,
    compile_program,
    load_gamification,
)

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "gamification"


def test_the_shipped_configuration_is_valid_and_complete() -> None:
    assert check_gamification(SHIPPED) == []
    program = compile_program(SHIPPED)
    assert [rule.id for rule in program.points] == [
        "slots_wager",
        "casino_wager",
        "sports_wager",
        "deposit",
    ]
    assert program.ladder is not None and len(program.ladder.levels) == 5
    assert len(program.badges) >= 6
    assert [m.id for m in program.missions] == [
        "daily_spinner",
        "weekly_explorer",
        "high_roller_challenge",
    ]
    assert [(b.id, b.calendar.kind) for b in program.boards] == [
        ("daily_wager", "day"),
        ("weekly_points", "week"),
        ("slots_big_win", "week"),
        ("weekly_live_race", "week"),
    ]
    assert [b.id for b in program.tournaments] == ["weekly_live_race"]
    assert load_gamification(SHIPPED).version == program.version


POINTS_WHEN = "points:\n  rules:\n    - id: a\n      event: bet\n      points: 1\n      when: "
MISSION = "missions:\n  - id: m\n"
ONE_BET = "    objectives: [{id: o, event: bet, target: 1}]\n"
TOURNAMENT = "tournaments:\n  - id: t\n    period: week\n    score: wager\n"

BROKEN: list[tuple[str, dict[str, str], str]] = [
    (
        "misspelt field",
        {"points.yaml": "points:\n  rules:\n    - {id: a, event: bet, wen: x, points: 1}\n"},
        "points.yaml: points.rules[0].wen: unknown field; did you mean 'when'?",
    ),
    (
        "misspelt section",
        {"b.yaml": "badgs: []\n"},
        "b.yaml: badgs: unknown field; did you mean 'badges'?",
    ),
    (
        "misspelt choice",
        {"b.yaml": "leaderboards:\n  - {id: a, period: dayly, score: wager}\n"},
        "b.yaml: leaderboards[0].period: 'dayly' is not one of day, week, month, all_time; "
        "did you mean 'day'?",
    ),
    (
        "misspelt field in a condition",
        {"p.yaml": POINTS_WHEN + "'event.game_categry == \"slots\"'\n"},
        "p.yaml: points.rules[0].when: unknown field 'game_categry' on event (bet) at column 7; "
        "did you mean 'game_category'?",
    ),
    (
        "impossible value in a condition",
        {"p.yaml": POINTS_WHEN + "'event.game_category == \"sltos\"'\n"},
        "'sltos' is not a possible value of event.game_category at column 24; "
        "did you mean 'slots'?",
    ),
    (
        "unknown event type",
        {"p.yaml": "points:\n  rules:\n    - {id: a, event: bets, points: 1}\n"},
        "p.yaml: points.rules[0].event: unknown event type 'bets'; did you mean 'bet'?",
    ),
    (
        "an id used twice",
        {
            "a.yaml": "badges:\n  - {id: x, event: login}\n",
            "b.yaml": "badges:\n  - {id: x, event: deposit}\n",
        },
        "b.yaml: badges[0].id: badge id 'x' is already used at ",
    ),
    (
        "a section given twice",
        {"a.yaml": "settings: {}\n", "b.yaml": "settings: {}\n"},
        "b.yaml: settings: settings is already given in ",
    ),
    (
        "levels out of order",
        {
            "l.yaml": "levels:\n  ladder:\n    - id: a\n    - {id: b, min_points: 10}\n"
            "    - {id: c, min_points: 5}\n"
        },
        "l.yaml: levels.ladder[2].min_points: must be above the previous level's (b: 10)",
    ),
    (
        "two prizes for one rank",
        {
            "t.yaml": TOURNAMENT + "    prizes:\n"
            "      - {rank: 1, reward: {type: cash, amount: '1'}}\n"
            "      - {ranks: 1-3, reward: {type: cash, amount: '1'}}\n"
        },
        "t.yaml: tournaments[0]: rank 1 has two prizes (prizes[0] and prizes[1])",
    ),
    (
        "a split tie without money prizes",
        {
            "t.yaml": TOURNAMENT + "    tie: split\n    prizes:\n      - rank: 1\n"
            "        reward: {type: free_spins, count: 1, value_per_spin: 1}\n"
        },
        "tie: split divides money: prizes[0] need a reward with amount",
    ),
    (
        "an opt-in mission without a code",
        {"m.yaml": MISSION + "    assign: opt_in\n" + ONE_BET},
        "m.yaml: missions[0]: an opt_in mission needs opt_in_code",
    ),
    (
        "game categories on a deposit",
        {
            "m.yaml": MISSION + "    objectives:\n"
            "      - {id: o, event: deposit, categories: [slots], target: 1}\n"
        },
        "m.yaml: missions[0].objectives[0].categories: game categories only apply to bet",
    ),
    (
        "a reward missing a field",
        {"b.yaml": "badges:\n  - {id: x, event: login, reward: {type: free_spins, count: 3}}\n"},
        "b.yaml: badges[0].reward: a free_spins reward needs value_per_spin",
    ),
    (
        "a duration in words",
        {"m.yaml": MISSION + "    time_limit: 24 hours\n" + ONE_BET},
        "m.yaml: missions[0].time_limit: expected a duration such as 90s, 30m, 24h, 7d or 2w",
    ),
    (
        "an unknown time zone",
        {"s.yaml": "settings:\n  timezone: Europe/Atlantis\n"},
        "s.yaml: settings.timezone: unknown time zone 'Europe/Atlantis'",
    ),
    (
        "not YAML",
        {"x.yaml": "points:\n  rules: [\n"},
        "x.yaml: line 3, column 1: not valid YAML",
    ),
    (
        "a list at the top",
        {"b.yaml": "- a\n"},
        "b.yaml: (top level): expected a mapping of sections",
    ),
    (
        "a fractional count",
        {"m.yaml": MISSION + "    objectives: [{id: o, event: bet, target: 1.5}]\n"},
        "m.yaml: missions[0].objectives[0].target: a count target must be a whole number",
    ),
    (
        "a measure the event does not have",
        {
            "p.yaml": "points:\n  rules:\n"
            "    - {id: a, event: deposit, measure: real_wager, per: 1, points: 1}\n"
        },
        "p.yaml: points.rules[0].measure: real_wager is measured on bet, not deposit",
    ),
]


@pytest.mark.parametrize(("files", "expected"), [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_a_broken_configuration_is_refused_with_file_path_and_reason(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    problems = check_gamification(tmp_path)
    assert any(expected in problem for problem in problems), problems
    assert all(problem.startswith(str(tmp_path)) for problem in problems)
    with pytest.raises(GamificationConfigError) as raised:
        load_gamification(tmp_path)
    assert raised.value.problems == problems


def test_the_problems_of_every_file_are_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("badges:\n  - {id: x, event: login, wen: y}\n")
    (tmp_path / "b.yaml").write_text("leaderboards:\n  - {id: y, period: week, scor: wager}\n")
    problems = [p.removeprefix(f"{tmp_path}/") for p in check_gamification(tmp_path)]
    assert problems == [
        "a.yaml: badges[0].wen: unknown field; did you mean 'when'?",
        "b.yaml: leaderboards[0].score: Field required",
        "b.yaml: leaderboards[0].scor: unknown field; did you mean 'score'?",
    ]


def test_conditions_are_checked_across_files_once_every_file_is_well_formed(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.yaml").write_text("badges:\n  - {id: x, event: logn}\n")
    (tmp_path / "b.yaml").write_text("leaderboards:\n  - {id: y, period: week, score: wagr}\n")
    assert len(check_gamification(tmp_path)) == 1  # the model error first
    (tmp_path / "b.yaml").write_text("leaderboards:\n  - {id: y, period: week, score: wager}\n")
    assert [p.removeprefix(f"{tmp_path}/") for p in check_gamification(tmp_path)] == [
        "a.yaml: badges[0].event: unknown event type 'logn'; did you mean 'login'?"
    ]


def test_a_missing_directory_is_an_error_not_an_empty_program(tmp_path: Path) -> None:
    assert check_gamification(tmp_path / "nowhere") == [
        f"{tmp_path / 'nowhere'}: no such file or directory"
    ]
