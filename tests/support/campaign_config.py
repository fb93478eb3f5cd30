"""Campaign configurations for tests: a directory of YAML and templates, then run it.

``rules_for(tmp_path, CAMPAIGNS)`` writes ``campaigns/test.yaml`` (plus the segments and
a small set of templates) under ``tmp_path`` and loads it; ``replay(script, rules)`` folds
a :class:`~tests.support.scenario.Script` through a ``PlayerShard`` running those rules.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from operators.actions import Action
from operators.campaigns import CampaignRules, load_campaigns
from operators.engine import PlayerShard
from operators.rules import RuleSet
from tests.support.scenario import Script

SEGMENTS = """
segments:
  - id: depositors
    when: state.deposit_count > 0
  - id: germans
    when: state.country == "DE"
"""

# A plain template per channel (``note``) and one announcing a reward (``offer``).
TEMPLATES: dict[str, str] = {
    "email/note.en.md": (
        "---\nsubject: Note from {{ campaign.id }}\n---\nHello **{{ player.id }}**.\n"
    ),
    "email/note.ru.md": (
        "---\nsubject: Заметка {{ campaign.id }}\n---\nПривет, **{{ player.id }}**.\n"
    ),
    "sms/note.en.txt": "Hello {{ player.id }}\n",
    "sms/note.ru.txt": "Привет, {{ player.id }} — это Pitboss\n",
    "push/note.en.yaml": (
        'title: "Hi"\nbody: "For {{ player.id }}"\ndeep_link: "app://{{ campaign.id }}"\n'
    ),
    "in_app/note.en.yaml": 'title: "Hi"\nbody: "For {{ player.id }}"\n',
    "email/offer.en.md": "---\nsubject: Your {{ reward.type }}\n---\nIt is {{ reward }}.\n",
    "in_app/offer.en.yaml": (
        'title: "{{ reward.type }}"\nbody: "{{ reward.amount }} {{ player.currency }}"\n'
    ),
    "in_app/code.en.yaml": (
        'title: "Your code"\nbody: "{{ reward.code }} until {{ reward.expires_at }}"\n'
    ),
}


def write_config(
    root: Path,
    campaigns: str,
    *,
    segments: str = SEGMENTS,
    templates: Mapping[str, str] | None = None,
) -> Path:
    """A configuration directory under ``root``: one campaigns file, segments, templates."""
    (root / "campaigns").mkdir(parents=True, exist_ok=True)
    (root / "campaigns" / "test.yaml").write_text(textwrap.dedent(campaigns), encoding="utf-8")
    (root / "campaigns" / "segments.yaml").write_text(segments, encoding="utf-8")
    for name, text in (TEMPLATES if templates is None else templates).items():
        path = root / "templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def rules_for(root: Path, campaigns: str, **options: Any) -> CampaignRules:
    """Write and load a configuration; the rule set running it."""
    return CampaignRules(load_campaigns(write_config(root, campaigns, **options)))


def replay(
    script: Script,
    rules: RuleSet | Iterable[RuleSet],
    *,
    final: int | None = None,
    chunk: int = 10_000,
    lag: int = 0,
) -> list[Action]:
    """Fold the script in chunks, the watermark ``lag`` behind each chunk's newest event."""
    shard = PlayerShard(rules=[rules] if not isinstance(rules, Iterable) else list(rules))
    events = script.events()
    actions: list[Action] = []
    for i in range(0, len(events), chunk):
        part = events[i : i + chunk]
        actions += shard.process(part)
        actions += shard.advance(max(ts for ts, _ in part) - lag)
    if final is not None:
        actions += shard.advance(final)
    return actions


def of(actions: Iterable[Action], campaign_id: str, channel: str | None = None) -> list[Action]:
    """The actions of one campaign (on one channel)."""
    return [
        a
        for a in actions
        if a.campaign_id == campaign_id and (channel is None or a.channel == channel)
    ]


def statuses(actions: Iterable[Action], campaign_id: str) -> list[tuple[str, str]]:
    """The campaign's lifecycle reports in order: (instance, status)."""
    return [
        (a.payload["instance"], a.payload["status"]) for a in of(actions, campaign_id, "lifecycle")
    ]


def summary(actions: Iterable[Action], campaign_id: str) -> list[tuple[str, str, int]]:
    """(channel, what, decided_at epoch) per action of a campaign: a readable expectation."""
    out = []
    for a in of(actions, campaign_id):
        what = (
            a.payload.get("status")
            or a.payload.get("reward_type")
            or a.payload.get("template_id", "")
        )
        out.append((a.channel, str(what), int(a.decided_at.timestamp())))
    return out
