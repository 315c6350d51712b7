"""Configuration: a TOML file (see config.example.toml) plus secrets from the environment.

Every key is validated; a mistake becomes one `ConfigError` naming the key and what is
wrong, which the CLI prints before exiting with status 2.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from handlers.core.limits import LimitSettings
from handlers.faq.defaults import FaqDefaults
from handlers.points.rules import PointsRules
from handlers.privacy.retention import PrivacySettings
from storage.activity import DEFAULT_BATCH_SIZE
from storage.db import DatabaseURLError, async_url

DEFAULT_CONFIG_FILE = "commops.toml"
DATABASE_URL_ENV = "COMMOPS_DATABASE_URL"


class ConfigError(Exception):
    """A configuration problem, phrased for the operator."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BotSection(_Section):
    adapters: list[Literal["auto", "console", "telegram", "discord"]] = Field(
        default_factory=lambda: ["auto"]
    )


class DiscordSection(_Section):
    """The Discord adapter; the token itself only ever comes from the environment."""

    token_env: str = "COMMOPS_DISCORD_TOKEN"
    prefix: str = Field("!", min_length=1, max_length=5)
    message_content: bool = False
    manager_role: str | None = None
    shard_count: int | None = Field(None, ge=1, le=1000)
    sync_state_file: str = "commops-discord-commands.json"


class TelegramSection(_Section):
    """The Telegram adapter; the token itself only ever comes from the environment."""

    token_env: str = "COMMOPS_TELEGRAM_TOKEN"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    listen: str = "127.0.0.1"
    port: int = Field(8443, ge=1, le=65535)
    secret_token_env: str = "COMMOPS_TELEGRAM_WEBHOOK_SECRET"
    api_base_url: str | None = None
    api_base_file_url: str | None = None
    admin_cache_seconds: float = Field(300, ge=0, le=86_400)


class DatabaseSection(_Section):
    url: str = "sqlite:///commops.db"
    password_env: str | None = None
    auto_migrate: bool | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        try:
            parsed = make_url(value)
            async_url(parsed)
        except (ArgumentError, ValueError) as exc:
            message = str(exc) if isinstance(exc, DatabaseURLError) else "not a database URL"
            raise ValueError(
                f"{message}; use sqlite:///commops.db or postgresql://user@host/db"
            ) from None
        if parsed.password:
            raise ValueError(
                "contains a password; put it in an environment variable and name that "
                f"variable in database.password_env (or set {DATABASE_URL_ENV})"
            )
        return value


class DefaultsSection(_Section):
    """Settings a community starts with; managers change them per community."""

    locale: Literal["en", "zh"] = "en"
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use a name like Europe/Berlin"
            ) from None
        return value


class ActivitySection(_Section):
    batch_size: int = Field(DEFAULT_BATCH_SIZE, ge=1, le=10_000)
    flush_interval: float = Field(1.0, gt=0, le=60)
    queue_size: int = Field(20_000, ge=100, le=10_000_000)


class LoggingSection(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
    file: str | None = None

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class ConsoleSection(_Section):
    identity: str = Field("you", min_length=1, max_length=32, pattern=r"^[^\s:@/#][^\s:]*$")
    manager: bool = True
    images_dir: str = "commops-images"


class Config(_Section):
    bot: BotSection = Field(default_factory=BotSection)
    database: DatabaseSection = Field(default_factory=DatabaseSection)
    defaults: DefaultsSection = Field(default_factory=DefaultsSection)
    activity: ActivitySection = Field(default_factory=ActivitySection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    console: ConsoleSection = Field(default_factory=ConsoleSection)
    telegram: TelegramSection = Field(default_factory=TelegramSection)
    discord: DiscordSection = Field(default_factory=DiscordSection)
    points: PointsRules = Field(default_factory=PointsRules)
    faq: FaqDefaults = Field(default_factory=FaqDefaults)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)

    source: str = Field("built-in defaults", exclude=True)
    env: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)

    def database_url(self) -> str:
        """The URL to connect with, secrets from the environment filled in."""
        override = self.env.get(DATABASE_URL_ENV)
        if override:
            return override
        url = make_url(self.database.url)
        if self.database.password_env:
            password = self.env.get(self.database.password_env)
            if not password:
                raise ConfigError(
                    f"database.password_env: the environment variable "
                    f"{self.database.password_env} is not set"
                )
            url = url.set(password=password)
        return url.render_as_string(hide_password=False)

    def secrets(self) -> list[str]:
        """Secret values to scrub from logs and messages."""
        values = []
        if self.database.password_env and self.env.get(self.database.password_env):
            values.append(self.env[self.database.password_env])
        for name in (
            self.telegram.token_env,
            self.telegram.secret_token_env,
            self.discord.token_env,
        ):
            if self.env.get(name):
                values.append(self.env[name])
        if self.env.get(DATABASE_URL_ENV):
            password = make_url(self.env[DATABASE_URL_ENV]).password
            if password:
                values.append(str(password))
        return values

    def token(self, platform: Literal["telegram", "discord"]) -> str | None:
        """The platform's bot token, from the environment variable its section names."""
        section: TelegramSection | DiscordSection = getattr(self, platform)
        return self.env.get(section.token_env) or None

    def require_token(self, platform: Literal["telegram", "discord"]) -> str:
        token = self.token(platform)
        if token is None:
            env_name = getattr(self, platform).token_env
            raise ConfigError(
                f"{platform}.token_env: {platform} needs a bot token in the environment "
                f"variable {env_name}"
            )
        return token

    def adapters(self) -> list[str]:
        """Adapters to start: `auto` means every platform with a token, else the console."""
        chosen = [a for a in self.bot.adapters if a != "auto"]
        if "auto" in self.bot.adapters:
            chosen += [p for p in ("telegram", "discord") if self.token(p)]
        chosen = list(dict.fromkeys(chosen))
        for platform in ("telegram", "discord"):
            if platform in chosen:
                self.require_token(platform)
        if self.telegram.mode == "webhook" and "telegram" in chosen:
            if not self.telegram.webhook_url:
                raise ConfigError("telegram.webhook_url: webhook mode needs the public URL")
            if not self.env.get(self.telegram.secret_token_env):
                raise ConfigError(
                    f"telegram.secret_token_env: webhook mode needs a secret token in "
                    f"{self.telegram.secret_token_env}"
                )
        return chosen or ["console"]


def _describe(error: Mapping[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (check the spelling against config.example.toml)"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key}: {message}"


def parse_config(
    data: Mapping[str, Any], *, source: str, env: Mapping[str, str] | None = None
) -> Config:
    """Validate a decoded TOML mapping."""
    try:
        config = Config.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(f"{source}: {_describe(first)}{suffix}") from None
    return config.model_copy(update={"source": source, "env": dict(env or os.environ)})


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the config file (`commops.toml` in the working directory when present)."""
    env = dict(os.environ if env is None else env)
    if path is None:
        default = Path(DEFAULT_CONFIG_FILE)
        if not default.exists():
            return parse_config({}, source="built-in defaults", env=env)
        path = default
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, source=str(path), env=env)
