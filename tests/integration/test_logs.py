"""Logs: JSON lines on request, and no personal data at any level, even on failures."""

from __future__ import annotations

import datetime as dt
import logging

import orjson
import pytest

from operators.actions import Action, ActionKind
from operators.guards import GuardConfig
from pipeline.cli import setup_logging
from pipeline.decode import decode_batch
from pipeline.delivery import DeliveryStage, GuardStage
from pipeline.flow import Services
from pipeline.metrics import Metrics
from pipeline.records import RawBatch
from pipeline.services import MetricsObserver, _dead_letter
from pipeline.settings import load_settings
from sinks.base import DeliveryPolicy, ResilientSender
from sinks.email import SmtpEmailSink, SmtpSettings
from sinks.http import HttpProviderSettings, SmsSettings, SmsSink, WalletSink
from tests.support.providers import Providers
from tests.support.tansu import free_port

pytestmark = pytest.mark.integration

EMAIL, PHONE, NAME = "alice.liddell@example.com", "+491511234567", "Alice Liddell"
FAST = DeliveryPolicy(
    attempt_timeout_seconds=0.3,
    deadline_seconds=1.0,
    max_attempts=2,
    backoff_initial_seconds=0.01,
    backoff_max_seconds=0.02,
)


def _action(n: int, channel: str, kind: str = "message") -> Action:
    rendered = {"subject": f"Hi {NAME}", "text": f"Dear {NAME}", "html": f"<p>{NAME}</p>"}
    return Action(
        action_id=f"a-log-{n}",
        campaign_id="welcome",
        player_id=f"p{n}",
        kind=ActionKind(kind),
        channel=channel,
        payload={
            "to": EMAIL if channel == "email" else PHONE,
            "name": NAME,
            "rendered": rendered,
            "reward_type": "bonus",
        },
        event_id="e1",
        decision="sent",
        event_at=dt.datetime(2026, 3, 2, tzinfo=dt.UTC),
        decided_at=dt.datetime(2026, 3, 2, tzinfo=dt.UTC),
    )


def test_failures_anywhere_log_no_email_phone_or_name(
    caplog: pytest.LogCaptureFixture, providers: Providers
) -> None:
    caplog.set_level(logging.DEBUG)
    providers.script("/sms", 503, 503, 503)
    down = free_port()
    metrics = Metrics()
    observer = MetricsObserver(metrics)
    senders = {
        "email": ResilientSender(
            SmtpEmailSink(SmtpSettings(host="127.0.0.1", port=down, delivery=FAST)),
            dead_letter=_dead_letter,
            observer=observer,
        ),
        "sms": ResilientSender(
            SmsSink(SmsSettings(name="sms", url=providers.url("/sms"), delivery=FAST)),
            dead_letter=_dead_letter,
            observer=observer,
        ),
        "wallet": ResilientSender(
            WalletSink(
                HttpProviderSettings(name="wallet", url=f"http://127.0.0.1:{down}/w", delivery=FAST)
            ),
            dead_letter=_dead_letter,
            observer=observer,
        ),
    }
    services = Services.in_memory()
    actions = [_action(1, "email"), _action(2, "sms"), _action(3, "wallet", "reward")]
    out = DeliveryStage(senders, services.stores, metrics).process(
        GuardStage(services.stores, GuardConfig(), metrics).process(actions)
    )
    assert [a.decision for a in out] == ["failed", "failed", "failed"]
    bad = RawBatch(
        "t/0", [orjson.dumps({"type": "registration", "email": EMAIL, "name": NAME})], [1]
    )
    assert decode_batch(bad).dead_letters  # and its reason is logged nowhere with values
    logged = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.stack_info or ''}" for r in caplog.records
    )
    assert caplog.records, "the failures above should have been logged"
    for secret in (EMAIL, PHONE, NAME, "Dear", "liddell"):
        assert secret.lower() not in logged.lower()


def test_json_log_format_writes_one_json_object_per_line(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PITBOSS_LOG_FORMAT", "json")
    setup_logging(load_settings())
    try:
        logging.getLogger("pitboss.test").warning("campaign %s paused", "welcome")
        line = capfd.readouterr().err.strip().splitlines()[-1]
        record = orjson.loads(line)
        assert record["message"] == "campaign welcome paused"
        assert record["levelname"] == "WARNING" and record["name"] == "pitboss.test"
    finally:
        logging.basicConfig(force=True)
