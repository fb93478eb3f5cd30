"""`pitboss simulate --contacts` seeds the contact directory in a real Redis."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
import redis

from pipeline.cli import main
from sinks.contacts import RedisContactDirectory
from tests.support.tansu import free_port

pytestmark = pytest.mark.integration


def test_every_simulated_player_gets_reachable_contacts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    redis_client: redis.Redis,
    redis_prefix: str,
) -> None:
    monkeypatch.setenv("PITBOSS_REDIS_URL", os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    monkeypatch.setenv("PITBOSS_REDIS_PREFIX", redis_prefix)
    out = tmp_path / "events.jsonl"
    assert main(["simulate", "--events", "3000", "--out", str(out), "--contacts"]) == 0
    events = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    registered = {e["player_id"] for e in events if e["type"] == "registration"}
    assert registered
    keys = {k.decode() for k in redis_client.scan_iter(match=f"{redis_prefix}contact:*")}
    assert keys == {f"{redis_prefix}contact:{pid}" for pid in registered}
    directory = RedisContactDirectory(redis_client, redis_prefix)
    for pid in registered:
        contacts = directory.lookup(pid)
        assert contacts is not None
        assert contacts.for_channel("email") == f"{pid}@players.example.com"
        assert contacts.for_channel("sms") is not None
        assert contacts.for_channel("push") == f"demo-{pid}"


def test_contacts_without_redis_stop_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PITBOSS_REDIS_URL", raising=False)
    code = main(["simulate", "--events", "10", "--out", str(tmp_path / "e.jsonl"), "--contacts"])
    assert code == 2
    assert "--contacts writes to Redis: set redis_url" in capsys.readouterr().err


def test_contacts_with_redis_away_stop_with_a_clear_error_and_produce_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PITBOSS_REDIS_URL", f"redis://127.0.0.1:{free_port()}")
    out = tmp_path / "e.jsonl"
    assert main(["simulate", "--events", "10", "--out", str(out), "--contacts"]) == 1
    assert "pitboss: --contacts:" in capsys.readouterr().err
    assert not out.exists()
