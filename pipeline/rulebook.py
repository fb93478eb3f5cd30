"""The rule book: the rule sets and guard configuration loaded from ``config/``.

Loaded once at start (a bad file stops the start with the file, the path inside it and
what is wrong) and, in ``pitboss run``, reloaded when the files change: the new version
is validated in full first and swapped in between batches; if it is invalid the old one
keeps running and the error is logged. Player state is untouched by a reload.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from operators.campaigns import ConfigError as CampaignConfigError
from operators.campaigns import load_campaign_rules
from operators.gamification import load_gamification
from operators.gamification.errors import GamificationConfigError
from operators.guards import GuardConfig, load_guard_config
from operators.rules import RuleSet
from operators.triggers import FirstTriggers, TriggerSettings

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """The configuration is invalid; the message lists every problem with its place."""


@dataclass(frozen=True)
class Rules:
    """One consistent version of everything the player operator runs."""

    version: str
    rule_sets: Sequence[RuleSet]
    guards: GuardConfig


def config_digest(config_dir: Path | None) -> str:
    """A short hash of every YAML and template file under ``config_dir``."""
    digest = hashlib.blake2b(digest_size=6)
    if config_dir is not None and config_dir.is_dir():
        for path in sorted(config_dir.rglob("*")):
            if path.is_file() and "grafana" not in path.parts and "prometheus" not in path.parts:
                digest.update(str(path.relative_to(config_dir)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


Loader = Callable[[Path | None, TriggerSettings], Rules]


def load_rules(config_dir: Path | None, triggers: TriggerSettings) -> Rules:
    """Rule sets and guards from ``config_dir``: campaigns and gamification when present,
    else the first triggers; ``guards.yaml`` for holdout, quiet hours, caps and budgets."""
    guards = GuardConfig()
    rule_sets: list[RuleSet] = []
    problems: list[str] = []
    if config_dir is not None:
        try:
            guards = load_guard_config(config_dir / "guards.yaml")
        except ValueError as exc:
            problems.append(str(exc))
        rule_sets.extend(_optional_rule_sets(config_dir, problems))
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    if not rule_sets:
        rule_sets = [FirstTriggers(triggers)]
    return Rules(config_digest(config_dir), rule_sets, guards)


def _optional_rule_sets(config_dir: Path, problems: list[str]) -> list[RuleSet]:
    """The campaign engine and gamification, for the parts of ``config/`` that exist."""
    found: list[RuleSet] = []
    if (config_dir / "campaigns").is_dir():
        try:  # campaigns read config/campaigns and config/templates
            found.append(load_campaign_rules(config_dir))
        except CampaignConfigError as exc:
            problems.append(str(exc))
    if (config_dir / "gamification").is_dir():
        try:
            found.append(load_gamification(config_dir / "gamification", config_dir / "templates"))
        except GamificationConfigError as exc:
            problems.append(str(exc))
    return found


class RuleBook:
    """The current ``Rules``, shared by every shard of this process."""

    def __init__(
        self, config_dir: Path | None, triggers: TriggerSettings, loader: Loader = load_rules
    ) -> None:
        self._config_dir = config_dir
        self._triggers = triggers
        self._loader = loader
        self._lock = threading.Lock()
        self._rules = loader(config_dir, triggers)
        self._stop = threading.Event()

    @property
    def current(self) -> Rules:
        """The version to run now."""
        return self._rules

    def reload(self) -> bool:
        """Load the files again; swap only if they are valid and changed."""
        if config_digest(self._config_dir) == self._rules.version:
            return False
        try:
            rules = self._loader(self._config_dir, self._triggers)
        except ConfigError as exc:
            log.error(
                "configuration change rejected, still running %s: %s", self._rules.version, exc
            )
            return False
        with self._lock:
            old, self._rules = self._rules.version, rules
        log.info("configuration reloaded: %s -> %s", old, rules.version)
        return True

    def watch(self, interval_seconds: float = 2.0) -> threading.Thread:
        """Reload in a daemon thread whenever the files change."""

        def loop() -> None:
            while not self._stop.wait(interval_seconds):
                self.reload()

        thread = threading.Thread(target=loop, name="pitboss-config-watch", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
