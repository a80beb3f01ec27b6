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
            out[field] = secret_value(block_name(prefix, field))
        except ValueError:  # no such block
            continue
    return out


def alert_config_from_blocks(prefix: str = "planar", **overrides: object) -> AlertConfig:
    """Environment first, then Prefect Secret blocks win, then explicit overrides."""
    values: dict[str, object] = {**load_secret_blocks(prefix, ALERT_SECRET_FIELDS), **overrides}
    return AlertConfig.from_env(None, **values)


def secret_block_provider(env_name: str) -> str | None:
    """Credentials provider for StrategyConfig: the Secret block named after the variable
    (``BINANCE_SCALPING_KEY`` -> ``binance-scalping-key``), or None so the environment is used."""
    try:
        return secret_value(env_name.lower().replace("_", "-"))
    except (ValueError, RuntimeError):
        return None


def secret_value(name: str) -> str:
    """The value of the Secret block ``name`` (ValueError when there is none), read synchronously even inside a
    running event loop (a flow building its strategy calls the credentials provider, which is synchronous)."""
    # _sync=True selects the synchronous path of Prefect's async_dispatch, which accepts it; load's signature omits it
    block = Secret.load(name, _sync=True)  # type: ignore[call-arg]
    if not isinstance(block, Secret):  # the dispatcher's other answer, a coroutine, is what _sync=True rules out
        raise TypeError(f"Secret.load({name!r}) answered {type(block).__name__}, not a Secret block")
    return str(block.get())
