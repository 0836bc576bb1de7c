"""What notify delivers where: the webhooks (a file or one environment variable) and the settings.

Webhooks are validated when the service starts, before it connects to anything: a bad URL, an
unknown event type, a missing secret stop it with one clear message per problem.

    # FLEXCHAIN_NOTIFY_CONFIG=notify.toml            (or .json; or the same list as JSON in
    [[webhooks]]                                       FLEXCHAIN_NOTIFY_WEBHOOKS)
    name = "ops"
    url = "https://hooks.example.com/flexchain"
    secret_env = "NOTIFY_SECRET_OPS"                 # or secret = "…" (keep secrets out of git)
    events = ["LowStockAlertRaised", "ReplenishmentSuggested"]   # or ["*"]: every notifiable type
"""

from __future__ import annotations

import contextlib
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.notify.catalog import NOTIFIABLE, current_name

ALL = "*"


class ConfigError(Exception):
    """The notify configuration is not usable; the message says what to fix."""


class Webhook(BaseModel):
    """One endpoint: where, the HMAC secret of its signatures, and which event types it gets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", description="names it in logs, metrics and dead letters")
    url: HttpUrl
    secret: SecretStr | None = Field(None, description="the HMAC-SHA256 key (prefer secret_env)")
    secret_env: str | None = Field(None, description="the environment variable holding the key")
    events: list[str] = Field(min_length=1, description="event types, or ['*'] for every notifiable type")
    timeout_s: float = Field(10.0, gt=0, le=120)

    @field_validator("events")
    @classmethod
    def _known(cls, events: list[str]) -> list[str]:
        events = [current_name(e) for e in events]  # a type's former name (before a rename) still subscribes
        unknown = [e for e in events if e != ALL and e not in NOTIFIABLE]
        if unknown:
            raise ValueError(f"unknown event type(s) {unknown}; notifiable: {', '.join(NOTIFIABLE)}")
        return events

    @model_validator(mode="after")
    def _one_secret(self) -> Webhook:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give exactly one of secret or secret_env")
        return self

    def key(self, env: Mapping[str, str] | None = None) -> bytes:
        """The signing key; ConfigError if its variable is unset or it is shorter than 16 bytes."""
        if self.secret is not None:
            value = self.secret.get_secret_value()
        else:
            assert self.secret_env is not None
            value = (env if env is not None else os.environ).get(self.secret_env, "")
            if not value:
                raise ConfigError(f"webhook {self.name!r}: environment variable {self.secret_env} (its secret) is not set")
        if len(value.encode()) < 16:
            raise ConfigError(f"webhook {self.name!r}: the secret is shorter than 16 bytes")
        return value.encode()

    def wants(self, event_type: str) -> bool:
        return ALL in self.events or event_type in self.events


class NotifyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    webhooks: list[Webhook] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> NotifyConfig:
        names = [w.name for w in self.webhooks]
        if len(set(names)) != len(names):
            raise ValueError(f"webhook names must be unique: {names}")
        return self

    def targets(self, event_type: str) -> list[Webhook]:
        return [w for w in self.webhooks if w.wants(event_type)]


class NotifySettings(BaseSettings):
    """notify's own settings (the Kafka ones are flexchain's, see flexchain.settings)."""

    model_config = SettingsConfigDict(env_prefix="FLEXCHAIN_NOTIFY_", extra="ignore", case_sensitive=False)

    config: Path | None = Field(None, description="a .toml or .json file with the webhooks")
    webhooks: str | None = Field(None, description="the webhooks as a JSON list (instead of a file)")
    max_attempts: int = Field(8, ge=1, le=100, description="attempts per delivery before the event goes to notify.dlq")
    backoff_initial_s: float = Field(1.0, gt=0, description="the first wait between attempts; doubles each time")
    backoff_max_s: float = Field(60.0, gt=0, description="the longest wait between attempts")
    commit_interval_s: float = Field(1.0, gt=0, description="how often delivered offsets are committed")


def _describe(exc: ValidationError, data: Any) -> str:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "webhooks" and isinstance(loc[1], int):
            with contextlib.suppress(KeyError, IndexError, TypeError, AttributeError):
                where = f"webhook {data['webhooks'][loc[1]].get('name', loc[1])!r}" + "".join(f".{p}" for p in loc[2:])
        given = f" (given: {err['input']!r})" if not isinstance(err.get("input"), dict | list) else ""
        lines.append(f"  {where}: {err['msg']}{given}")
    return "\n".join(lines)


def parse(data: Any, source: str, env: Mapping[str, str] | None = None) -> NotifyConfig:
    """Validate webhook data (``{"webhooks": [...]}`` or the bare list); ConfigError saying what is wrong."""
    if isinstance(data, list):
        data = {"webhooks": data}
    try:
        config = NotifyConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"bad notify configuration in {source}:\n{_describe(exc, data)}") from None
    for hook in config.webhooks:
        hook.key(env)  # a secret variable that is not set fails now, not at the first delivery
    return config


def load(settings: NotifySettings, env: Mapping[str, str] | None = None) -> NotifyConfig:
    """The webhooks of ``FLEXCHAIN_NOTIFY_CONFIG`` (a file) or ``FLEXCHAIN_NOTIFY_WEBHOOKS`` (JSON)."""
    if settings.config is not None and settings.webhooks:
        raise ConfigError("set FLEXCHAIN_NOTIFY_CONFIG or FLEXCHAIN_NOTIFY_WEBHOOKS, not both")
    if settings.config is not None:
        path = settings.config
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read FLEXCHAIN_NOTIFY_CONFIG={path}: {exc.strerror}") from None
        try:
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}") from None
        return parse(data, str(path), env)
    if settings.webhooks:
        try:
            data = json.loads(settings.webhooks)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"FLEXCHAIN_NOTIFY_WEBHOOKS is not valid JSON: {exc}") from None
        return parse(data, "FLEXCHAIN_NOTIFY_WEBHOOKS", env)
    raise ConfigError("no webhooks: set FLEXCHAIN_NOTIFY_CONFIG (a .toml/.json file) or FLEXCHAIN_NOTIFY_WEBHOOKS (JSON)")
