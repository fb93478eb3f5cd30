"""Actions for the delivery tests: a decided message, ready for the guards or a sink."""

from __future__ import annotations

import datetime as dt
from typing import Any

from operators.actions import Action, ActionKind

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def message(channel: str, player: str = "ada", **payload: Any) -> Action:
    """The ``welcome`` campaign's message to ``player`` on ``channel``, sent at ``T0``;
    ``payload`` adds to (or replaces) its template id and rendered content."""
    return Action(
        action_id=f"a-{channel}-{player}",
        campaign_id="welcome",
        player_id=player,
        kind=ActionKind.MESSAGE,
        channel=channel,
        payload={"template_id": "note", "rendered": {"subject": "Hi", "text": "Hi"}, **payload},
        event_id="e1",
        decision="sent",
        event_at=T0,
        decided_at=T0,
    )
