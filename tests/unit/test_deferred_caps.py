"""A capped action whose campaign asked to wait is tried again later, not dropped."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from operators.actions import Action, ActionKind
from operators.guards import CapConfig, GuardConfig
from pipeline.delivery import DeferredCaps, GuardStage
from pipeline.flow import Services
from pipeline.metrics import Metrics
from tests.support.campaign_config import replay, rules_for
from tests.support.scenario import Script

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
HOUR = 3600
SMS_ONCE_A_DAY = GuardConfig(
    caps=[CapConfig(key="sms", limit=1, window_hours=24, channels=["sms"])]
)


def sms(n: int, at_hours: float, defer_hours: float = 0) -> Action:
    at = T0 + dt.timedelta(hours=at_hours)
    return Action(
        action_id=f"a-{n}",
        campaign_id="reminder",
        player_id="p1",
        kind=ActionKind.MESSAGE,
        channel="sms",
        payload={},
        event_id=f"e{n}",
        decision="sent",
        event_at=at,
        decided_at=at,
        defer_when_capped=int(defer_hours * HOUR),
    )


def caps() -> DeferredCaps:
    return DeferredCaps(
        GuardStage(Services.in_memory(SMS_ONCE_A_DAY).stores, SMS_ONCE_A_DAY, Metrics()), None
    )


def at(hours: float) -> int:
    return int((T0 + dt.timedelta(hours=hours)).timestamp())


def test_without_the_campaign_asking_a_capped_action_is_recorded_as_capped() -> None:
    deferred = caps()
    assert [a.decision for a in deferred.decide(sms(1, 0)) + deferred.decide(sms(2, 1))] == [
        "sent",
        "capped",
    ]
    assert deferred.waiting == []


def test_a_deferred_action_is_sent_once_the_cap_has_room_at_its_retry_time() -> None:
    deferred = caps()
    assert deferred.decide(sms(1, 0))[0].decision == "sent"
    assert deferred.decide(sms(2, 1, defer_hours=13))[0].decision == "deferred"
    assert deferred.release(at(13)) == []  # its wait is not over
    retried = deferred.release(at(14))  # 14:00 after the first: still inside its 24 h
    assert [(a.action_id, a.decision) for a in retried] == [("a-2", "deferred")]
    sent = deferred.release(at(27))
    assert [(a.action_id, a.decision, a.decided_at) for a in sent] == [
        ("a-2", "sent", T0 + dt.timedelta(hours=27))
    ]
    assert deferred.waiting == []


def test_after_three_tries_a_still_capped_action_is_recorded_as_capped() -> None:
    deferred = caps()
    deferred.decide(sms(1, 0))
    deferred.decide(sms(2, 1, defer_hours=2))
    decisions = [a.decision for h in (3, 5, 7) for a in deferred.release(at(h))]
    assert decisions == ["deferred", "deferred", "capped"]
    assert deferred.waiting == []


def test_a_campaign_that_asks_to_wait_puts_the_wait_on_its_actions(tmp_path: Path) -> None:
    rules = rules_for(
        tmp_path,
        """
        campaigns:
          - id: hello
            trigger: {on: event, events: [registration]}
            limits: {once: true, defer_when_capped: 6h}
            message: {template: note, channels: [email]}
        """,
    )
    actions = replay(Script().register("p1"), rules)
    assert [(a.campaign_id, a.defer_when_capped) for a in actions if a.channel == "email"] == [
        ("hello", 6 * HOUR)
    ]
