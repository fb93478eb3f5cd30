"""Messages: templates per channel and locale, rendered in a sandbox into the payload."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.campaign_config import TEMPLATES, of, replay, rules_for
from tests.support.scenario import Script

HELLO = """
campaigns:
  - id: hello
    trigger: {on: event, events: login}
    message: {template: note, channels: [CHANNEL]}
"""


def _sent(tmp_path: Path, channel: str, script: Script) -> list[dict[str, object]]:
    rules = rules_for(tmp_path, HELLO.replace("CHANNEL", channel))
    return [a.payload for a in of(replay(script, rules), "hello", channel)]


def test_an_email_is_sent_as_subject_text_and_html_from_markdown(tmp_path: Path) -> None:
    (payload,) = _sent(tmp_path, "email", Script().register("p1").login("p1"))
    assert payload == {
        "template_id": "note",
        "locale": "en",
        "rendered": {
            "subject": "Note from hello",
            "text": "Hello **p1**.\n",
            "html": "<p>Hello <strong>p1</strong>.</p>",
        },
    }


def test_an_sms_in_russian_keeps_its_unicode_and_an_unknown_locale_falls_back(
    tmp_path: Path,
) -> None:
    s = Script().register("ru1", locale="ru").register("de1", locale="de").login("ru1")
    s.login("de1")
    payloads = _sent(tmp_path, "sms", s)
    assert [(p["locale"], p["rendered"]) for p in payloads] == [
        ("ru", {"text": "Привет, ru1 — это Pitboss"}),
        ("en", {"text": "Hello de1"}),
    ]


def test_a_push_has_a_title_a_body_and_a_deep_link(tmp_path: Path) -> None:
    (payload,) = _sent(tmp_path, "push", Script().register("p1").login("p1"))
    assert payload["rendered"] == {"title": "Hi", "body": "For p1"}
    assert payload["deep_link"] == "app://hello"


def test_an_in_app_message_has_a_title_and_a_body(tmp_path: Path) -> None:
    (payload,) = _sent(tmp_path, "in_app", Script().register("p1").login("p1"))
    assert payload == {
        "template_id": "note",
        "locale": "en",
        "rendered": {"title": "Hi", "body": "For p1"},
    }


def test_the_first_channel_the_player_consents_to_is_used(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, HELLO.replace("[CHANNEL]", "[push, email]"))
    s = Script().register("p1", consents={"email": True, "push": False}).login("p1")
    s.register("p2", consents={"email": False, "push": False}).login("p2")
    sent = {a.player_id: (a.channel, a.decision) for a in of(replay(s, rules), "hello")}
    assert sent == {"p1": ("email", "sent"), "p2": ("push", "suppressed:no_consent")}


def test_values_are_html_escaped_in_the_html_and_left_as_they_are_in_the_text(
    tmp_path: Path,
) -> None:
    templates = {
        **TEMPLATES,
        "email/note.en.md": (
            "---\nsubject: Hi {{ player.attributes.nick | default('friend') }}\n---\n"
            "Dear {{ player.attributes.nick | default('friend') }},\n"
        ),
    }
    rules = rules_for(tmp_path, HELLO.replace("CHANNEL", "email"), templates=templates)
    nick = "<b>Bob</b> [click](http://evil.example)"
    s = Script().register("p1").add("profile_update", "p1", attributes={"nick": nick})
    s.login("p1").register("p2").login("p2")
    first, second = (a.payload["rendered"] for a in of(replay(s, rules), "hello"))
    assert first["html"] == ("<p>Dear &lt;b&gt;Bob&lt;/b&gt; [click](http://evil.example),</p>")
    assert first["text"] == f"Dear {nick},\n" and first["subject"] == f"Hi {nick}"
    assert second["subject"] == "Hi friend"


def test_replaying_the_same_events_renders_the_same_payloads_and_ids(tmp_path: Path) -> None:
    rules = rules_for(tmp_path, HELLO.replace("CHANNEL", "email"))
    s = Script().register("p1").login("p1").register("p2", locale="ru").login("p2")
    first = [a.model_dump_json() for a in replay(s, rules)]
    again = [
        a.model_dump_json()
        for a in replay(s, rules_for(tmp_path / "b", HELLO.replace("CHANNEL", "email")))
    ]
    assert first == again


def test_a_template_failing_on_a_real_players_data_marks_the_message_not_the_job(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The sample player has a birth date, so this renders at load; p1 has none."""
    templates = {**TEMPLATES, "sms/note.en.txt": "Hello {{ player.id }}, {{ player.age + 1 }}\n"}
    rules = rules_for(tmp_path, HELLO.replace("CHANNEL", "sms"), templates=templates)
    (payload,) = [
        a.payload for a in of(replay(Script().register("p1").login("p1"), rules), "hello", "sms")
    ]
    assert payload["template_id"] == "note" and payload["locale"] == ""
    assert "rendered" not in payload and payload["error"]
    assert "campaign hello: template note failed" in caplog.text
