"""Broken configurations and the errors they produce: file, path inside it, what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from operators.campaigns import ConfigError, check_config, load_campaigns
from tests.support.campaign_config import TEMPLATES, write_config

GOOD = """
campaigns:
  - id: hello
    trigger: {on: event, events: [login], when: state.sessions == 1}
    message: {template: note, channels: [email]}
    reward: {type: free_spins, game: starburst, count: 10, value_per_spin: 0.1}
"""
FILE = "campaigns/test.yaml"

# (name, campaigns YAML, template overrides, expected problem lines: each a list of fragments)
CASES: list[tuple[str, str, dict[str, str | None], list[list[str]]]] = [
    (
        "unknown field, with a suggestion",
        GOOD.replace("when:", "wehn:"),
        {},
        [[FILE, "campaigns[0].trigger.wehn: unknown field 'wehn'; did you mean 'when'?"]],
    ),
    (
        "misspelt field of a reward",
        GOOD.replace("game:", "gmae:"),
        {},
        [
            [FILE, "campaigns[0].reward.game: missing required field 'game'"],
            [FILE, "campaigns[0].reward.gmae: unknown field 'gmae'; did you mean 'game'?"],
        ],
    ),
    (
        "wrong type",
        GOOD.replace("count: 10", "count: many"),
        {},
        [[FILE, "campaigns[0].reward.count: Input should be a valid integer", "(got 'many')"]],
    ),
    (
        "bad duration",
        GOOD.replace(
            "trigger: {on: event, events: [login], when: state.sessions == 1}",
            "trigger: {on: time, after: inactivity, wait: 7 days}",
        ),
        {},
        [[FILE, "campaigns[0].trigger.wait: '7 days' is not a duration"]],
    ),
    (
        "unknown kind of trigger",
        GOOD.replace("on: event", "on: evnt"),
        {},
        [
            [
                FILE,
                "campaigns[0].trigger.on: 'evnt' is not one of event, signal, time, schedule; "
                "did you mean 'event'?",
            ]
        ],
    ),
    (
        "unknown event type",
        GOOD.replace("events: [login]", "events: [login, deposits]"),
        {},
        [
            [
                FILE,
                "campaigns[0].trigger.events[1]: unknown event type 'deposits'; "
                "did you mean 'deposit'?",
            ]
        ],
    ),
    (
        "condition on an unknown state field",
        GOOD.replace("state.sessions", "state.sesions"),
        {},
        [
            [
                FILE,
                "campaigns[0].trigger.when: unknown field 'sesions' on state at column 7; "
                "did you mean 'sessions'?",
            ]
        ],
    ),
    (
        "condition of the wrong type",
        GOOD.replace("state.sessions == 1", 'state.sessions == "one"'),
        {},
        [[FILE, "campaigns[0].trigger.when: cannot compare int with string using '=='"]],
    ),
    (
        "event field not on the trigger's event type",
        GOOD.replace("state.sessions == 1", "event.amount > 5"),
        {},
        [[FILE, "campaigns[0].trigger.when: unknown field 'amount' on event (login)"]],
    ),
    (
        "unknown segment",
        GOOD.replace("    trigger:", "    segment: depositor\n    trigger:"),
        {},
        [[FILE, "campaigns[0].segment: unknown segment 'depositor'; did you mean 'depositors'?"]],
    ),
    (
        "unknown template",
        GOOD.replace("template: note", "template: nte"),
        {},
        [
            [
                FILE,
                "campaigns[0].message.template: unknown template 'nte' for email; "
                "did you mean 'note'?",
            ]
        ],
    ),
    (
        "unknown template variable",
        GOOD,
        {"email/note.en.md": "---\nsubject: Hi\n---\n{{ reward.cuont }} spins\n"},
        [
            [
                "templates/email/note.en.md: unknown variable 'cuont'; did you mean 'count'?",
                f"(as sent by {{root}}/{FILE}: campaigns[0].message)",
            ]
        ],
    ),
    (
        "template reading a reward the campaign does not give",
        GOOD,
        {"email/note.en.md": "---\nsubject: Hi\n---\n{{ reward.percent }}%\n"},
        [["templates/email/note.en.md: unknown variable 'percent'"]],
    ),
    (
        "template reading wagering of a reward that has none",
        GOOD,
        {"email/note.en.md": "---\nsubject: Hi\n---\n{{ reward.wagering.multiplier }}x\n"},
        [["templates/email/note.en.md: 'multiplier' is read from a value that is null here"]],
    ),
    (
        "template syntax error, with the file's line",
        GOOD,
        {"email/note.en.md": "---\nsubject: Hi\n---\nline one\n{% if player.id %}\n"},
        [["templates/email/note.en.md: line 5: template syntax error: Unexpected end of template"]],
    ),
    (
        "template without the default locale",
        GOOD,
        {"email/note.en.md": None, "email/note.ru.md": "---\nsubject: Привет\n---\nПривет\n"},
        [[FILE, "campaigns[0].message.template: template 'note' for email has no 'en' version"]],
    ),
    (
        "email template without a subject",
        GOOD,
        {"email/note.en.md": "Hello\n"},
        [["templates/email/note.en.md: an email template starts with a front matter"]],
    ),
    (
        "bad cron",
        GOOD.replace(
            "trigger: {on: event, events: [login], when: state.sessions == 1}",
            'trigger: {on: schedule, cron: "0 25 * * MON"}',
        ),
        {},
        [[FILE, "campaigns[0].trigger.cron: '0 25 * * MON' is not a valid cron expression"]],
    ),
    (
        "journey going backwards",
        """
        campaigns:
          - id: loop
            trigger: {on: event, events: registration}
            journey:
              steps:
                - id: hello
                  message: {template: note, channels: [email]}
                - id: again
                  wait: 1d
                  branch: [{goto: helo}]
        """,
        {},
        [
            [
                FILE,
                "campaigns[0].journey.steps[1].branch[0].goto: goto 'helo' must name a later "
                "step or 'end'",
            ]
        ],
    ),
    (
        "duplicate campaign ids, every problem listed",
        GOOD
        + GOOD.replace("campaigns:\n", "").replace("when: state.sessions", "when: state.sesions"),
        {},
        [
            [FILE, "campaigns[1].id: duplicate campaign id 'hello' (first in"],
            [FILE, "campaigns[1].trigger.when: unknown field 'sesions'"],
        ],
    ),
    (
        "misspelt section",
        GOOD.replace("campaigns:", "campaign:"),
        {},
        [[FILE, "campaign: unknown section 'campaign'; did you mean 'campaigns'?"]],
    ),
    (
        "YAML syntax error",
        "campaigns:\n  - id: [unclosed\n",
        {},
        [[FILE, "line 3, column 1: not valid YAML"]],
    ),
]


@pytest.mark.parametrize(
    ("campaigns", "templates", "expected"),
    [pytest.param(c, t, e, id=name) for name, c, t, e in CASES],
)
def test_a_broken_configuration_is_rejected_with_where_and_what(
    tmp_path: Path, campaigns: str, templates: dict[str, str | None], expected: list[list[str]]
) -> None:
    files = {k: v for k, v in {**TEMPLATES, **templates}.items() if v is not None}
    root = write_config(tmp_path, campaigns, templates=files)
    problems = check_config(root)
    assert len(problems) == len(expected), "\n".join(problems)
    for line, fragments in zip(problems, expected, strict=True):
        for fragment in fragments:
            assert fragment.replace("{root}", str(root)) in line, line
    with pytest.raises(ConfigError) as raised:
        load_campaigns(root)
    assert raised.value.lines() == problems
    assert f"{len(problems)} problem" in str(raised.value)


def test_the_file_named_is_the_one_with_the_problem(tmp_path: Path) -> None:
    root = write_config(tmp_path, GOOD)
    (root / "campaigns" / "later.yaml").write_text(
        GOOD.replace("id: hello", "id: other").replace("count: 10", "count: -1")
    )
    (problem,) = check_config(root)
    assert problem.startswith(f"{root}/campaigns/later.yaml: campaigns[0].reward.count: ")


def test_a_missing_directory_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    assert check_config(tmp_path / "nowhere") == [
        f"{tmp_path}/nowhere: no such configuration directory"
    ]


def test_a_valid_configuration_has_no_problems(tmp_path: Path) -> None:
    assert check_config(write_config(tmp_path, GOOD)) == []
