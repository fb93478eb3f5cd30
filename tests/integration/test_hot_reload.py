"""Hot reload: campaign files changed while `pitboss run` runs take effect at once,
without a restart and without losing player state; each action names its version."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.produce import produce_records
from tests.support.tansu import TansuBroker, consume_all, create_topic

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NEW_CAMPAIGN = """
campaigns:
  - id: login_thanks
    name: Thanks for coming back
    priority: 10
    trigger:
      on: event
      events: [login]
    limits:
      once_per: 1d
    message:
      template: vip_upgrade
      channels: [in_app]
"""


def _events(players: list[str], start: datetime, kinds: list[str]) -> list[bytes]:
    out = []
    for n, pid in enumerate(players):
        ts = (start + timedelta(minutes=n)).isoformat().replace("+00:00", "Z")
        for k, kind in enumerate(kinds):
            record: dict[str, object] = {
                "event_id": f"{pid}-{kind}-{start.day}-{k}",
                "type": kind,
                "player_id": pid,
                "ts": ts,
            }
            if kind == "registration":
                record |= {
                    "country": "DE",
                    "currency": "EUR",
                    "timezone": "Europe/Berlin",
                    "channel": "organic",
                    "consents": {"email": True, "sms": True, "push": True, "in_app": True},
                    "locale": "en",
                }
            out.append(orjson.dumps(record))
    return out


def _actions(brokers: str, topic: str, at_least: int) -> list[dict[str, object]]:
    return [orjson.loads(r.value or b"") for r in consume_all(brokers, topic, at_least, 60)]


def test_a_new_campaign_file_takes_effect_live_and_players_keep_their_state(
    kafka_broker: TansuBroker, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config" / "campaigns", config / "campaigns")
    shutil.copytree(REPO / "config" / "templates", config / "templates")
    suffix = uuid.uuid4().hex[:8]
    brokers = kafka_broker.bootstrap
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PITBOSS_")},
        "PITBOSS_KAFKA_BROKERS": brokers,
        "PITBOSS_EVENTS_TOPIC": f"events-{suffix}",
        "PITBOSS_ACTIONS_TOPIC": f"actions-{suffix}",
        "PITBOSS_DEAD_LETTERS_TOPIC": f"dead-{suffix}",
        "PITBOSS_METRICS_PORT": "0",
        "PITBOSS_LEADERBOARD_PORT": "0",
        "PITBOSS_CONFIG_DIR": str(config),
        "PITBOSS_CONFIG_RELOAD_SECONDS": "0.3",
        "PITBOSS_LATENESS_SECONDS": "0",
    }
    for topic in ("EVENTS", "ACTIONS", "DEAD_LETTERS"):
        create_topic(brokers, env[f"PITBOSS_{topic}_TOPIC"], 1)
    log = (tmp_path / "job.log").open("wb")
    job = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run"], env=env, stdout=log, stderr=log, cwd=REPO
    )
    try:
        day1 = datetime(2026, 3, 2, 12, tzinfo=UTC)
        produce_records(
            brokers,
            env["PITBOSS_EVENTS_TOPIC"],
            _events(["p1", "p2"], day1, ["registration", "login"]),
        )
        before = _actions(brokers, env["PITBOSS_ACTIONS_TOPIC"], 2)
        welcomed = {a["player_id"] for a in before if a["campaign_id"] == "welcome_series"}
        assert welcomed == {"p1", "p2"}
        old_version = {a["campaign_version"] for a in before}
        assert len(old_version) == 1

        (config / "campaigns" / "login_thanks.yaml").write_text(NEW_CAMPAIGN)
        deadline = time.monotonic() + 20
        while b"configuration reloaded" not in (tmp_path / "job.log").read_bytes():
            assert time.monotonic() < deadline, (tmp_path / "job.log").read_text()[-3000:]
            time.sleep(0.1)

        day2 = day1 + timedelta(days=1)
        produce_records(
            brokers, env["PITBOSS_EVENTS_TOPIC"], _events(["p1", "p3"], day2, ["login"])
        )
        deadline = time.monotonic() + 30
        while True:
            after = _actions(brokers, env["PITBOSS_ACTIONS_TOPIC"], len(before))
            thanks = [a for a in after if a["campaign_id"] == "login_thanks"]
            if len(thanks) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    finally:
        job.send_signal(signal.SIGINT)
        try:
            job.wait(timeout=15)
        except subprocess.TimeoutExpired:
            job.kill()
            job.wait(timeout=10)
        log.close()

    assert sorted(a["player_id"] for a in thanks) == ["p1", "p3"]
    new_version = {a["campaign_version"] for a in thanks}
    assert new_version and new_version.isdisjoint(old_version)
    # Player state survived: p1's welcome journey, started before the reload, went on to
    # its next step instead of starting again (one welcome email, no action twice).
    journey = [a for a in after if a["campaign_id"] == "welcome_series" and a["player_id"] == "p1"]
    templates = [a["payload"].get("template_id") for a in journey]
    assert templates.count("welcome") == 1
    assert len({a["action_id"] for a in journey}) == len(journey)
    assert "getting_started" in templates  # the next step, under the new version
