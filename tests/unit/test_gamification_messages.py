"""Gamification messages rendered with the operator's templates (config/templates)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from operators.gamification import GamificationConfigError, load_gamification
from operators.triggers import TriggerSettings
from pipeline.rulebook import load_rules
from tests.support.scenario import Script
from tests.unit.test_gamification_kit import SETTINGS, bet, by_kind, replay
from tests.unit.test_gamification_levels import POINTS  # one point per EUR wagered

REPO = Path(__file__).resolve().parents[2]
LEVELS = """
levels:
  ladder:
    - id: bronze
    - id: silver
      min_points: 10
      reward: {type: free_spins, count: 10, value_per_spin: "0.20", game: starburst}
      message: {template_id: level_up, channel: email}
    - id: gold
      min_points: 30
      reward: {type: bonus_credit, amount: "5.00", wagering: 10}
      message: {template_id: level_up, channel: email}
"""
LEVEL_UP_EN = """\
---
subject: "You reached {{ gamification.name }}"
---
{{ gamification.points }} points.
{% if reward.type == 'free_spins' %}{{ reward.count }} spins on {{ reward.game }}.{% endif %}
{% if reward.type == 'bonus_credit' %}{{ reward.amount }} {{ reward.currency }} bonus.{% endif %}
"""
LEVEL_UP_DE = """\
---
subject: "Neue Stufe: {{ gamification.name }}"
---
{{ gamification.points }} Punkte.
"""


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return directory


def config(tmp_path: Path, **templates: str) -> tuple[Path, Path]:
    gamification = write(
        tmp_path / "gamification",
        {"settings.yaml": SETTINGS, "points.yaml": POINTS, "levels.yaml": LEVELS},
    )
    return gamification, write(tmp_path / "templates", templates)


def test_each_level_up_email_is_rendered_for_its_level_reward_and_locale(tmp_path: Path) -> None:
    gamification, templates = config(
        tmp_path,
        **{"email/level_up.en.md": LEVEL_UP_EN, "email/level_up.de.md": LEVEL_UP_DE},
    )
    rules = load_gamification(gamification, templates)
    s = Script().register("p1").register("p2", locale="de").after(minutes=1)
    bet(s, "p1", "12.00").after(minutes=1).add("logout", "p1").after(minutes=1)
    bet(s, "p1", "20.00").after(minutes=1).add("logout", "p1")
    bet(s, "p2", "12.00").after(minutes=1).add("logout", "p2")
    messages = by_kind(replay(rules, s), "message")
    rendered = [(m.player_id, m.payload["locale"], m.payload["rendered"]) for m in messages]
    assert [(p, locale, r["subject"]) for p, locale, r in rendered] == [
        ("p1", "en", "You reached Silver"),
        ("p1", "en", "You reached Gold"),  # the same template, another level: not cached
        ("p2", "de", "Neue Stufe: Silver"),
    ]
    assert "10 spins on starburst." in rendered[0][2]["text"]
    assert "5.00 EUR bonus." in rendered[1][2]["text"]
    assert all(m.payload["template_id"] == "level_up" for m in messages)
    assert messages[0].payload["level"] == "silver"  # the event's fields stay in the payload


def test_without_templates_messages_carry_the_template_id_and_fields(tmp_path: Path) -> None:
    gamification, _ = config(tmp_path)
    s = Script().register("p1").after(minutes=1)
    bet(s, "p1", "12.00").after(minutes=1).add("logout", "p1")
    (message,) = by_kind(replay(load_gamification(gamification), s), "message")
    assert "rendered" not in message.payload
    assert message.payload["template_id"] == "level_up"


def test_a_message_without_its_template_stops_the_load(tmp_path: Path) -> None:
    gamification, templates = config(tmp_path, **{"email/other.en.md": LEVEL_UP_EN})
    with pytest.raises(GamificationConfigError) as caught:
        load_gamification(gamification, templates)
    assert "levels.silver.message: unknown template 'level_up' for email" in str(caught.value)


def test_a_template_reading_what_the_event_lacks_stops_the_load(tmp_path: Path) -> None:
    broken = LEVEL_UP_EN.replace("gamification.points", "gamification.mission_count")
    gamification, templates = config(tmp_path, **{"email/level_up.en.md": broken})
    with pytest.raises(GamificationConfigError) as caught:
        load_gamification(gamification, templates)
    assert "does not render for a level_up message" in str(caught.value)
    assert "mission_count" in str(caught.value)


def test_a_template_without_the_default_locale_stops_the_load(tmp_path: Path) -> None:
    gamification, templates = config(tmp_path, **{"email/level_up.de.md": LEVEL_UP_DE})
    with pytest.raises(GamificationConfigError) as caught:
        load_gamification(gamification, templates)
    assert "has no 'en' version" in str(caught.value)


def test_a_template_that_does_not_compile_is_reported_with_its_file_and_line(
    tmp_path: Path,
) -> None:
    # Gamification alone (no campaigns to report the template files): the problem names
    # the file, the line and what is wrong, not only that the template is broken.
    broken = LEVEL_UP_EN.replace("{{ gamification.points }}", "{{ gamification.points }")
    gamification, templates = config(tmp_path, **{"email/level_up.en.md": broken})
    with pytest.raises(GamificationConfigError) as caught:
        load_gamification(gamification, templates)
    silver, gold = caught.value.problems  # both levels send it
    assert silver.startswith(f"{gamification}: levels.silver.message: template 'level_up'")
    assert gold.startswith(f"{gamification}: levels.gold.message: template 'level_up'")
    file = templates / "email" / "level_up.en.md"
    assert f"does not compile: {file}: line 4: template syntax error" in silver


def test_the_configured_default_locale_serves_players_without_one(tmp_path: Path) -> None:
    gamification, templates = config(
        tmp_path, **{"email/level_up.de.md": LEVEL_UP_DE, "email/level_up.en.md": LEVEL_UP_EN}
    )
    (gamification / "settings.yaml").write_text(SETTINGS + "  default_locale: de\n")
    s = Script().register("p1", locale=None).register("p2", locale="en")
    s.register("p3", locale="fr")
    for player in ("p1", "p2", "p3"):
        bet(s.after(minutes=1), player, "12.00").after(minutes=1).add("logout", player)
    messages = by_kind(replay(load_gamification(gamification, templates), s), "message")
    assert [
        (m.player_id, m.payload["locale"], m.payload["rendered"]["subject"]) for m in messages
    ] == [
        ("p1", "de", "Neue Stufe: Silver"),  # no locale: the configured default
        ("p2", "en", "You reached Silver"),
        ("p3", "de", "Neue Stufe: Silver"),  # no French template: the default
    ]
    # Without templates, the message says which locale it is for.
    (message, *_) = by_kind(replay(load_gamification(gamification), s), "message")
    assert message.payload["locale"] == "de"


def test_a_configured_default_locale_without_templates_stops_the_load(tmp_path: Path) -> None:
    gamification, templates = config(tmp_path, **{"email/level_up.en.md": LEVEL_UP_EN})
    (gamification / "settings.yaml").write_text(SETTINGS + "  default_locale: sv\n")
    with pytest.raises(GamificationConfigError) as caught:
        load_gamification(gamification, templates)
    assert "has no 'sv' version (the default locale); found en" in str(caught.value)


def test_the_starter_pack_renders_every_gamification_message() -> None:
    """The shipped config loads as `pitboss run` loads it: templates checked."""
    rules = load_rules(REPO / "config", TriggerSettings())
    (gamification,) = [r for r in rules.rule_sets if type(r).__name__ == "GamificationRules"]
    assert gamification.program.templates is not None


def test_a_template_failing_on_a_real_players_data_marks_the_message_not_the_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The sample player has a birth date, so this renders at load; p1 has none."""
    gamification, templates = config(
        tmp_path,
        **{"email/level_up.en.md": LEVEL_UP_EN.replace("points.", "points, {{ player.age + 1 }}.")},
    )
    rules = load_gamification(gamification, templates)
    s = Script().register("p1").after(minutes=1)
    bet(s, "p1", "12.00").after(minutes=1).add("logout", "p1")
    (message,) = by_kind(replay(rules, s), "message")
    assert "rendered" not in message.payload
    assert message.payload["template_id"] == "level_up"
    assert "error" in message.payload and message.payload["level"] == "silver"
    assert "template level_up failed" in caplog.text
