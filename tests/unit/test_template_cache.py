"""The render cache: a template's output is keyed by exactly the values it reads."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from operators.campaigns.templates import TRUTH, Template, load_templates, read_paths

GATED = (
    'title: "Done: {{ gamification.name }}"\n'
    "body: \"Well done!{% if reward and reward.type == 'free_spins' %} {{ reward.count }} "
    "spins.{% elif not reward %} No prize.{% else %} {{ reward.amount }}.{% endif %}"
    "{{ ' (VIP)' if reward and reward.vip else '' }}\"\n"
)


def _template(tmp_path: Path, source: str) -> Template:
    folder = tmp_path / "templates" / "in_app"
    folder.mkdir(parents=True)
    (folder / "done.en.yaml").write_text(source)
    store, problems = load_templates(tmp_path / "templates", str)
    assert problems == []
    return store.pick("in_app", "done", "en", "en")


def test_a_root_only_tested_is_keyed_by_its_truth() -> None:
    assert read_paths(["{% if reward and reward.type == 'x' %}{{ reward.count }}{% endif %}"]) == (
        (TRUTH, "reward"),
        ("reward", "count"),
        ("reward", "type"),
    )
    assert read_paths(["{{ 'a' if not player else player.currency }}"]) == (
        (TRUTH, "player"),
        ("player", "currency"),
    )


@pytest.mark.parametrize(
    "source",
    [
        "{{ reward }}",  # printed whole
        "{{ reward and reward.type }}",  # the value of `and` is printed, not its truth
        "{% if reward is none %}x{% endif %}",  # a test of its own, not truthiness
        "{{ reward | length }}",
        "{% set reward = 1 %}{{ reward }}",
    ],
)
def test_a_root_used_whole_cannot_key_the_cache(source: str) -> None:
    assert read_paths([source]) is None


def _reward(kind: str, count: int | None, amount: str | None, vip: bool) -> dict[str, Any]:
    return {"type": kind, "count": count, "amount": amount, "vip": vip}


REWARDS: list[dict[str, Any] | None] = [
    None,  # reading reward.type of none: not keyed, rendered each time
    {},  # reward.type undefined: not keyed either
    _reward("free_spins", 5, None, False),
    _reward("free_spins", 7, None, True),
    _reward("bonus_credit", None, "10.00", False),
    _reward("bonus_credit", None, "10.00", True),
    None,
    _reward("free_spins", 5, None, False),
]


def test_cached_renders_equal_fresh_ones_whatever_the_reward(tmp_path: Path) -> None:
    cached = _template(tmp_path, GATED)
    assert cached.paths is not None and (TRUTH, "reward") in cached.paths
    uncached = dataclasses.replace(cached, paths=None, cache={})
    seen = []
    for name in ("Daily", "Weekly"):
        for reward in REWARDS:
            context = {"gamification": {"name": name}, "reward": reward}
            rendered = cached.render(context)
            assert rendered == uncached.render(context)
            seen.append(rendered[0]["body"])
    assert len(cached.cache) == 8  # two names, four distinct rewards with every field
    assert seen[0] == seen[1] == "Well done! No prize."
    assert seen[3] == "Well done! 7 spins. (VIP)"
    assert seen[4] == "Well done! 10.00."


def test_a_tested_root_alone_keys_by_truth(tmp_path: Path) -> None:
    cached = _template(
        tmp_path, 'title: "Hi"\nbody: "{% if reward %}A prize{% else %}No prize{% endif %}"\n'
    )
    assert cached.paths == ((TRUTH, "reward"),)
    bodies = [
        cached.render({"reward": reward})[0]["body"]
        for reward in (None, {"type": "free_spins"}, {}, {"type": "bonus_credit"}, None)
    ]
    assert bodies == ["No prize", "A prize", "No prize", "A prize", "No prize"]
    assert len(cached.cache) == 2
