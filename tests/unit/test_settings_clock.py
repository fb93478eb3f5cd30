"""Settings fail fast with a named problem; the clock moves in event time."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.clock import NEVER, EventClock
from pipeline.settings import SettingsError, load_settings


def test_defaults_load() -> None:
    settings = load_settings()
    assert settings.shards == 64 and settings.triggers().inactivity_seconds == 7 * 86_400


def test_a_misspelt_setting_in_a_file_stops_the_start_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "pitboss.yaml"
    path.write_text("shard: 8\n")
    with pytest.raises(SettingsError, match=r"pitboss.yaml.*shard"):
        load_settings(path)


def test_an_invalid_environment_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PITBOSS_LATENESS_SECONDS", "-3")
    with pytest.raises(SettingsError, match="lateness_seconds"):
        load_settings()


def test_secrets_are_not_shown_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PITBOSS_KAFKA_PASSWORD", "hunter2")
    monkeypatch.setenv("PITBOSS_KAFKA_USERNAME", "svc")
    settings = load_settings()
    assert "hunter2" not in repr(settings)
    assert settings.kafka_config()["sasl.password"] == "hunter2"


def test_the_watermark_follows_the_slowest_source_minus_lateness() -> None:
    clock = EventClock(lateness=10)
    assert clock.watermark() == NEVER
    clock.observe("a", 1000)
    clock.observe("b", 500)
    clock.observe("a", 900)  # never moves back
    assert clock.watermark() == 490
    assert clock.final() == 1000


def test_live_idle_sources_are_carried_forward_by_wall_time() -> None:
    wall = [100.0]
    clock = EventClock(lateness=5, wall=lambda: wall[0])
    clock.observe("a", 1000)
    wall[0] = 130.0
    assert clock.watermark() == 1000 + 30 - 5
    restored = EventClock(5, lambda: wall[0], clock.snapshot())
    assert restored.watermark() == 995


def test_a_misspelt_environment_variable_stops_the_start_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PITBOSS_SHARD", "8")
    with pytest.raises(SettingsError, match="PITBOSS_SHARD"):
        load_settings()
