"""Settings: environment variables (``PITBOSS_*``) and an optional YAML file.

Loaded once, at the entry point, into a frozen object. A wrong or misspelt setting stops
the job at start with a message naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from operators.triggers import TriggerSettings
from sinks.email import SmtpSettings
from sinks.http import HttpProviderSettings, SmsSettings, WebhookSettings


class SettingsError(Exception):
    """The settings are invalid; the message says which and why."""


class EvictionSettings(BaseModel):
    """Lapsed players' state leaves memory for a cold store (``operators.eviction``).

    The store is Redis when ``redis_url`` is set, else the process's memory (compressed,
    a fraction of the resident size), which is refused with recovery: a crash would lose
    it. Environment: ``PITBOSS_EVICTION__AFTER_DAYS`` and so on.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Event time without any event after which a player is evicted; 0: never (players
    # already evicted are still restored).
    after_days: float = Field(default=30, ge=0)
    # Event time between two looks for lapsed players.
    sweep_seconds: int = Field(default=3600, ge=1)
    # How long a restored player's old blob is kept: longer than the oldest snapshot a
    # restart may resume from (epoch interval, backup interval, time to notice a crash).
    retention_days: float = Field(default=7, gt=0)


class Settings(BaseSettings):
    """Everything the job can be told, with production-sane defaults."""

    model_config = SettingsConfigDict(
        env_prefix="PITBOSS_", env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    # Campaigns, gamification, guards: YAML (and templates) in this directory
    config_dir: Path | None = Path("config")
    config_reload_seconds: float = Field(default=2.0, gt=0)

    # Kafka
    kafka_brokers: str = "127.0.0.1:9092"
    events_topic: str = "casino.events"
    actions_topic: str = "pitboss.actions"
    dead_letters_topic: str = "pitboss.dead_letters"
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_extra: dict[str, str] = Field(default_factory=dict)
    consumer_batch_size: int = Field(default=2000, ge=1, le=100_000)

    # Dataflow
    shards: int = Field(default=64, ge=1, le=4096)
    lateness_seconds: int = Field(default=60, ge=0, le=86_400)
    # Fold events in event-time order behind the watermark: exact results for streams
    # shuffled by up to lateness_seconds, at the cost of that much decision latency.
    order_by_event_time: bool = False
    idle_tick_seconds: float = Field(default=1.0, gt=0, le=60)
    epoch_interval_seconds: float = Field(default=10.0, gt=0)

    # First triggers (until the campaign engine makes them data)
    inactivity_days: int = Field(default=7, ge=1)
    no_deposit_days: int = Field(default=3, ge=1)
    loss_streak: int = Field(default=5, ge=2)

    # Recovery (pitboss run): snapshots every epoch; partitions >= the most workers ever run
    recovery_dir: Path | None = None
    recovery_partitions: int = Field(default=8, ge=1, le=1024)
    backup_interval_seconds: float = Field(default=0.0, ge=0)

    # Shared state and delivery (None: in-process stores, actions only to the log)
    redis_url: str | None = None
    redis_prefix: str = "pitboss:"
    email: SmtpSettings | None = None
    sms: SmsSettings | None = None
    push: HttpProviderSettings | None = None
    wallet: HttpProviderSettings | None = None
    webhook: WebhookSettings | None = None
    inbox_max_len: int = Field(default=100, ge=1)
    # Provider calls in flight at once (one lane per player keeps each player's order);
    # above 1, a crash can catch that many sends in flight (sent again on restart).
    delivery_concurrency: int = Field(default=1, ge=1, le=256)
    eviction: EvictionSettings = Field(default_factory=EvictionSettings)

    # Operations
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    metrics_addr: str = "127.0.0.1"
    leaderboard_port: int = Field(default=9465, ge=0, le=65535)  # GET /leaderboards/NAME
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit values (the CLI, a file) win over the environment.
        return init_settings, env_settings

    def triggers(self) -> TriggerSettings:
        """The first triggers' thresholds."""
        return TriggerSettings(
            inactivity_seconds=self.inactivity_days * 86_400,
            no_deposit_seconds=self.no_deposit_days * 86_400,
            loss_streak=self.loss_streak,
        )

    def kafka_config(self) -> dict[str, str]:
        """Extra librdkafka properties: credentials plus ``kafka_extra``."""
        config = dict(self.kafka_extra)
        if self.kafka_username is not None and self.kafka_password is not None:
            config.setdefault("security.protocol", "SASL_SSL")
            config.setdefault("sasl.mechanisms", "PLAIN")
            config["sasl.username"] = self.kafka_username
            config["sasl.password"] = self.kafka_password.get_secret_value()
        return config


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """``PITBOSS_*`` variables that name no setting (pydantic-settings ignores them)."""
    fields = set(Settings.model_fields)
    return sorted(
        name
        for name in environ
        if name.startswith("PITBOSS_")
        and name[len("PITBOSS_") :].lower().split("__")[0] not in fields
    )


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``path`` (YAML mapping, optional), the environment and overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"cannot read settings file {path}: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise SettingsError(f"{path}: expected a mapping of setting names to values")
        values.update(loaded or {})
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = unknown_environment(os.environ)
    if unknown:
        raise SettingsError(
            f"unknown setting(s) in the environment: {', '.join(unknown)}; "
            "PITBOSS_* variables must name a setting (pitboss --help; pipeline/settings.py)"
        )
    try:
        return Settings(**values)
    except ValidationError as exc:
        where = f" in {path}" if path is not None else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise SettingsError(f"invalid settings{where}: {problems}") from exc
