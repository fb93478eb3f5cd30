"""Load ``config/campaigns/*.yaml`` and ``config/templates/``, validate all, compile.

``load_campaigns(config_dir)`` returns a :class:`CampaignSet` or raises
:class:`ConfigError` listing *every* problem found, each as ``file: path: what is wrong``
(``config/campaigns/welcome.yaml: campaigns[3].trigger.when: unknown field 'los_streak'
on state at column 7; did you mean 'loss_streak'?``). Each campaign is validated on its
own, so one broken campaign does not hide the problems of the others.
``check_config(path)`` is the same check for ``pitboss check-config``: an empty list
means the configuration is valid.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from operators.campaigns.build import Builder
from operators.campaigns.compiled import CampaignSet
from operators.campaigns.config import Campaign, CampaignFile, Segment, Settings
from operators.campaigns.errors import ConfigError, Problem, format_path, pydantic_problems
from operators.campaigns.templates import load_templates
from operators.campaigns.yaml12 import read_yaml
from operators.expressions_types import suggest

__all__ = ["CAMPAIGNS_DIR", "TEMPLATES_DIR", "check_config", "load_campaigns"]

CAMPAIGNS_DIR = "campaigns"
TEMPLATES_DIR = "templates"

M = TypeVar("M", bound=BaseModel)


@dataclass(slots=True)
class _Found:
    """What the campaign files hold, as read so far."""

    problems: list[Problem] = field(default_factory=list)
    segments: list[Located] = field(default_factory=list)
    campaigns: list[Located] = field(default_factory=list)
    settings: list[Located] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Located:
    """A validated model and where it came from."""

    file: str
    path: str
    model: Any


def _label(path: Path) -> str:
    return str(path)


def _files(config_dir: Path) -> tuple[list[Path], list[Path]]:
    campaigns = sorted((config_dir / CAMPAIGNS_DIR).glob("*.yaml")) + sorted(
        (config_dir / CAMPAIGNS_DIR).glob("*.yml")
    )
    root = config_dir / TEMPLATES_DIR
    templates = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    return campaigns, templates


def config_version(config_dir: Path) -> str:
    """A short hash of every campaign and template file's name and content."""
    digest = hashlib.sha256()
    campaigns, templates = _files(config_dir)
    for path in campaigns + templates:
        digest.update(path.relative_to(config_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _yaml(path: Path, file: str, problems: list[Problem]) -> Any:
    try:
        return read_yaml(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problems.append(Problem(file, where, f"not valid YAML: {exc.problem}"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        problems.append(Problem(file, "", f"not valid YAML: {exc}"))
    return None


def _validate(
    model: type[M], data: Any, file: str, prefix: tuple[str | int, ...], problems: list[Problem]
) -> M | None:
    try:
        return TypeAdapter(model).validate_python(data)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, file=file, root=model, data=data, prefix=prefix))
        return None


def _items(
    data: dict[str, Any], key: str, file: str, problems: list[Problem]
) -> Iterator[tuple[int, Any]]:
    value = data.get(key)
    if value is None:
        return
    if not isinstance(value, list):
        problems.append(Problem(file, key, f"must be a list, got {type(value).__name__}"))
        return
    yield from enumerate(value)


def _read_file(path: Path, file: str, found: _Found) -> None:
    problems = found.problems
    data = _yaml(path, file, problems)
    if data is None:
        return
    if not isinstance(data, dict):
        problems.append(
            Problem(file, "", "must be a mapping with 'campaigns:', 'segments:' or 'settings:'")
        )
        return
    allowed = list(CampaignFile.model_fields)
    for key in data:
        if key not in allowed:
            hint = suggest(str(key), allowed)
            text = f"unknown section {key!r}"
            text += f"; did you mean {hint!r}?" if hint else f"; use {', '.join(allowed)}"
            problems.append(Problem(file, str(key), text))
    if data.get("settings") is not None:
        settings = _validate(Settings, data["settings"], file, ("settings",), problems)
        if settings is not None:
            found.settings.append(Located(file, "settings", settings))
    for index, item in _items(data, "segments", file, problems):
        segment = _validate(Segment, item, file, ("segments", index), problems)
        if segment is not None:
            found.segments.append(Located(file, format_path(("segments", index)), segment))
    for index, item in _items(data, "campaigns", file, problems):
        campaign = _validate(Campaign, item, file, ("campaigns", index), problems)
        if campaign is not None:
            found.campaigns.append(Located(file, format_path(("campaigns", index)), campaign))


def _unique(items: list[Located], what: str, problems: list[Problem]) -> dict[str, Located]:
    by_id: dict[str, Located] = {}
    for item in items:
        first = by_id.get(item.model.id)
        if first is not None:
            problems.append(
                Problem(
                    item.file,
                    f"{item.path}.id",
                    f"duplicate {what} id {item.model.id!r} (first in {first.file}: {first.path})",
                )
            )
            continue
        by_id[item.model.id] = item
    return by_id


def _load(
    config_dir: Path, label: Callable[[Path], str]
) -> tuple[CampaignSet | None, list[Problem]]:
    if not config_dir.is_dir():
        return None, [Problem(label(config_dir), "", "no such configuration directory")]
    campaign_dir = config_dir / CAMPAIGNS_DIR
    if not campaign_dir.is_dir():
        return None, [
            Problem(label(campaign_dir), "", "no campaigns directory (config/campaigns/*.yaml)")
        ]
    campaign_files, _ = _files(config_dir)
    found = _Found()
    for path in campaign_files:
        _read_file(path, label(path), found)
    problems, settings = found.problems, found.settings
    if len(settings) > 1:
        problems.extend(
            Problem(item.file, "settings", f"settings are also in {settings[0].file}; keep one")
            for item in settings[1:]
        )
    chosen = settings[0].model if settings else Settings()
    templates, template_problems = load_templates(config_dir / TEMPLATES_DIR, label)
    problems.extend(template_problems)
    builder = Builder(
        templates=templates,
        settings=chosen,
        segments=_unique(found.segments, "segment", problems),
        problems=problems,
    )
    unique = {id(item) for item in _unique(found.campaigns, "campaign", problems).values()}
    # Duplicates are compiled too, to report their own problems, but not kept.
    compiled = [(id(item) in unique, builder.campaign(item)) for item in found.campaigns]
    builder.check_templates()
    if problems:
        return None, problems
    result = CampaignSet(
        version=config_version(config_dir),
        campaigns=tuple(c for keep, c in compiled if keep and c is not None),
        templates=templates,
        settings=chosen,
        files=tuple(label(p) for p in campaign_files),
    )
    return result, []


def load_campaigns(config_dir: Path) -> CampaignSet:
    """Load and validate the campaign configuration under ``config_dir``.

    Raises :class:`ConfigError` listing every problem if anything is invalid.
    """
    result, problems = _load(Path(config_dir), _label)
    if result is None:
        raise ConfigError(problems)
    return result


def check_config(path: Path) -> list[str]:
    """Every problem with the configuration under ``path``, one line each (empty: valid)."""
    _, problems = _load(Path(path), _label)
    return [str(problem) for problem in problems]
