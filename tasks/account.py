"""Tasks on an exchange account: its snapshot, the daily reset, re-arming."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NO_CACHE

from planar_core.engine.sync import load_account
from planar_core.exchange.client_ids import planar_identity
from planar_core.exchange.errors import ExchangeOpError
from planar_core.risk import operations

from . import Overrides
from .strategy import build_strategy

if TYPE_CHECKING:
    from planar_core.engine.strategy import Strategy


@asynccontextmanager
async def loaded(strategy: str, config_path: str | None, overrides: Overrides) -> AsyncIterator[Strategy]:
    """A helper strategy with markets, balances, positions and prices (no watchers), stopped afterwards."""
    s = build_strategy(strategy, config_path, overrides=overrides)
    try:
        await load_account(s)
        yield s
    finally:
        await s.stop()


@task(retries=3, retry_delay_seconds=[1, 5, 15], cache_policy=NO_CACHE)
async def exchange_snapshot(strategy: str, config_path: str | None = None, overrides: Overrides = None) -> dict[str, object]:
    """The exchange's view: open client order ids per symbol (other Planar strategies' orders on the account left
    out: they are theirs), balance totals, position sizes. Read-only: retried."""
    async with loaded(strategy, config_path, overrides) as s:
        opened: dict[str, list[str]] = {}
        for ai in s.universe.values():
            listed = await s.venue.open_orders(ai.symbol, s.config.timeouts.order_placement)  # conditional ones too
            cids = (o.client_order_id or "" for o in listed)
            opened[ai.symbol] = sorted(c for c in cids if planar_identity(c) in (None, s.ids.identity))  # not another strategy's
        return {
            "open": opened,
            "balances": {k: v.total for k, v in s.holdings.balances.items()},
            "positions": {sym: ai.position.contracts for sym, ai in s.universe.items() if ai.is_margin},
        }


@task(retries=3, retry_delay_seconds=[5, 30, 60], cache_policy=NO_CACHE)
async def reset_day(strategy: str, config_path: str | None = None, overrides: Overrides = None) -> dict[str, object]:
    """``planar_core.risk.operations.daily_reset`` on the account as it is now (idempotent within a day)."""
    async with loaded(strategy, config_path, overrides) as s:
        return operations.daily_reset(s).as_dict()


@task(cache_policy=NO_CACHE)
async def rearm_strategy(
    strategy: str, reason: str, by: str, config_path: str | None = None, overrides: Overrides = None
) -> dict[str, object]:
    """``planar_core.risk.operations.rearm``; a refusal is final (never retried). An exchange that cannot be reached
    cannot confirm anything: that is a refusal too."""
    try:
        async with loaded(strategy, config_path, overrides) as s:
            return (await operations.rearm(s, reason, by)).as_dict()
    except ExchangeOpError as err:
        raise operations.RearmRefused(f"{strategy}: could not verify the account, the exchange cannot be reached ({err})") from None
