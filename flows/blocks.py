"""Secrets from Prefect Secret blocks, for the engine's config models.

Block names are ``<prefix>-<field>`` with underscores as dashes, e.g.
``planar-telegram-bot-token``; a block that does not exist leaves the
environment value (or the default) in place.
"""

from __future__ import annotations

from collections.abc import Iterable

from prefect.blocks.system import Secret

from planar_core.alerts.config import AlertConfig

ALERT_SECRET_FIELDS = ("telegram_bot_token", "telegram_chat_id", "smtp_password", "smtp_username", "discord_webhook_url", "webhook_url")


def block_name(prefix: str, field: str) -> str:
    return f"{prefix}-{field.replace('_', '-')}"


def load_secret_blocks(prefix: str, fields: Iterable[str]) -> dict[str, str]:
    """Values of the Secret blocks that exist for ``fields``."""
    out: dict[str, str] = {}
    for field in fields:
        try:
            block = Secret.load(block_name(prefix, field), _sync=True)  # type: ignore[call-arg]
        except ValueError:  # no such block
            continue
        out[field] = str(block.get())
    return out


def alert_config_from_blocks(prefix: str = "planar", **overrides: object) -> AlertConfig:
    """Environment first, then Prefect Secret blocks win, then explicit overrides."""
    values = {**load_secret_blocks(prefix, ALERT_SECRET_FIELDS), **overrides}
    return AlertConfig.from_env(**values)


def secret_block_provider(env_name: str) -> str | None:
    """Credentials provider for StrategyConfig: the Secret block named after the variable
    (``BINANCE_SCALPING_KEY`` -> ``binance-scalping-key``), or None so the environment is used."""
    try:
        return str(Secret.load(env_name.lower().replace("_", "-"), _sync=True).get())  # type: ignore[call-arg]
    except (ValueError, RuntimeError):
        return None
