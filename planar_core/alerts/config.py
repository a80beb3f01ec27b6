"""Alert and logging configuration, from the environment (``TELEGRAM_BOT_TOKEN``, ``SMTP_SERVER``, ... see
``AlertConfig.from_env``) or code."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator


class AlertConfigError(ValueError):
    """A missing or malformed alert setting, naming the variable."""


class LoggingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    max_size: int = Field(100 * 1024 * 1024, gt=0, description="bytes per log file before rotation")
    max_files: int = Field(10, ge=1, description="rotated files kept")
    console: bool = True

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v


class AlertConfig(BaseModel):
    """Where alerts go. Every secret is a ``SecretStr``; base URLs exist so tests can use loopback."""

    model_config = ConfigDict(extra="forbid")

    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = None
    telegram_api_base: str = "https://api.telegram.org"
    smtp_server: str | None = None
    smtp_port: int | None = Field(None, gt=0, lt=65536)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["starttls", "ssl", "insecure"] = "starttls"
    alert_email: str | None = None
    email_from: str | None = None
    discord_webhook_url: SecretStr | None = None
    webhook_url: SecretStr | None = Field(None, description="Slack-compatible webhook: POST {'text': ...}")
    dedupe_window_s: float = Field(60.0, ge=0, description="identical alerts within this window are sent once")
    channel_timeout_s: float = Field(10.0, gt=0)
    queue_size: int = Field(100, ge=1)

    ENV: ClassVar[dict[str, str]] = {
        "telegram_bot_token": "TELEGRAM_BOT_TOKEN",
        "telegram_chat_id": "TELEGRAM_CHAT_ID",
        "telegram_api_base": "TELEGRAM_API_BASE",
        "smtp_server": "SMTP_SERVER",
        "smtp_port": "SMTP_PORT",
        "smtp_username": "SMTP_USERNAME",
        "smtp_password": "SMTP_PASSWORD",
        "smtp_security": "SMTP_SECURITY",
        "alert_email": "ALERT_EMAIL",
        "email_from": "ALERT_EMAIL_FROM",
        "discord_webhook_url": "DISCORD_WEBHOOK_URL",
        "webhook_url": "ALERT_WEBHOOK_URL",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "AlertConfig":
        """Read the alert variables from the environment; a malformed or incomplete set fails here, naming the
        variable."""
        env = os.environ if env is None else env
        values: dict[str, object] = {field: env[var] for field, var in cls.ENV.items() if env.get(var)}
        values.update(overrides)
        try:
            cfg = cls.model_validate(values)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = str(err["loc"][0])
            raise AlertConfigError(f"{cls.ENV.get(field, field)}: {err['msg']}") from None
        cfg.check_complete()
        return cfg

    def check_complete(self) -> None:
        """Each channel needs all of its settings; say which one is missing."""
        if self.telegram_bot_token and not self.telegram_chat_id:
            raise AlertConfigError("TELEGRAM_CHAT_ID: required when TELEGRAM_BOT_TOKEN is set")
        if self.telegram_chat_id and not self.telegram_bot_token:
            raise AlertConfigError("TELEGRAM_BOT_TOKEN: required when TELEGRAM_CHAT_ID is set")
        email = [self.smtp_server, self.alert_email]
        if any(email) and not all(email):
            raise AlertConfigError("SMTP_SERVER and ALERT_EMAIL: both are required for email alerts")
        if self.smtp_username and not self.smtp_password:
            raise AlertConfigError("SMTP_PASSWORD: required when SMTP_USERNAME is set")
        if self.alert_email and "@" not in self.alert_email:
            raise AlertConfigError(f"ALERT_EMAIL: not an email address: {self.alert_email!r}")
        for name in ("discord_webhook_url", "webhook_url"):
            value = getattr(self, name)
            if value is not None and not value.get_secret_value().startswith(("http://", "https://")):
                raise AlertConfigError(f"{self.ENV[name]}: must be an http(s) URL")

    def secrets(self) -> list[str]:
        """Every secret value configured here, for the log redactor."""
        out = []
        for value in (self.telegram_bot_token, self.smtp_password, self.discord_webhook_url, self.webhook_url):
            if value is not None:
                out.append(value.get_secret_value())
        return out
