"""Shared fixtures: a real sandbox exchange on a free loopback port and unmodified ccxt clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt.pro as ccxtpro
import pytest

from planar_core.exchange.endpoints import point_at_sandbox
from planar_core.sandbox import Limits, SandboxExchange, SandboxServer
from planar_core.sandbox.accounts import Account

START_BALANCES = {"USDT": Decimal(100_000), "BTC": Decimal(2), "ETH": Decimal(20), "LTC": Decimal(100), "XRP": Decimal(10_000)}


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    """A sandbox with limits high enough for tests that are not about limits."""
    ex = SandboxExchange(seed=11)
    ex.limiter.limits = Limits(weight_per_minute=1_000_000, orders_per_10s=100_000)
    async with SandboxServer(ex) as server:
        yield server


@pytest.fixture
def account(sandbox: SandboxServer) -> Account:
    return sandbox.ex.add_account(dict(START_BALANCES))


def make_client(server: SandboxServer, acct: Account | None, **config: Any) -> Any:
    cfg: dict[str, Any] = {"enableRateLimit": False, "timeout": 10_000}
    if acct is not None:
        cfg.update(apiKey=acct.api_key, secret=acct.api_secret)
    cfg.update(config)
    return point_at_sandbox(ccxtpro.binance(cfg), server.url, server.ws_url)


@pytest.fixture
async def client(sandbox: SandboxServer, account: Account) -> AsyncIterator[Any]:
    c = make_client(sandbox, account)
    await c.load_markets()
    try:
        yield c
    finally:
        await c.close()


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, interval: float = 0.02) -> None:
    """Wait until ``predicate`` is true, failing the test after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@pytest.fixture
async def strategy_factory(sandbox: SandboxServer, account: Account, tmp_path):
    """Build (and at teardown stop) engine strategies against the sandbox; ``start=False`` to build only."""
    from planar_core.engine import strategy as build

    made: list[Any] = []

    async def factory(name: str = "strat", start: bool = True, acct: Account | None = None, **overrides: Any) -> Any:
        acct = acct or account
        env = {"EXCHANGE_API_KEY": acct.api_key, "EXCHANGE_API_SECRET": acct.api_secret}
        overrides.setdefault("universe", ["BTC/USDT", "ETH/USDT"])
        overrides.setdefault("store_root", str(tmp_path / "store"))
        overrides.setdefault("sandbox_endpoint", {"url": sandbox.url, "ws_url": sandbox.ws_url})
        overrides.setdefault("rate_limits", {"weight_per_minute": 1_000_000, "orders_per_second": 1000, "burst_allowance": 1000})
        overrides.setdefault("connection", {"health_interval": 3600})
        s = build(name, env=env, **overrides)
        made.append(s)
        if start:
            await s.start()
        return s

    yield factory
    for s in made:
        await s.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything outside tests/unit/ is the integration tier (the sandbox, real sockets, Prefect, subprocesses):
    ``pytest -m "not integration"`` runs the unit tier alone, in about a second."""
    unit = Path(__file__).resolve().parent / "unit"
    for item in items:
        if unit not in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def user_subscribed(server: SandboxServer, acct: Account, kind: str = "spot") -> bool:
    """The sandbox has a user-data subscription of ``acct`` on a ``kind`` connection (what a test waits on
    before acting, instead of sleeping)."""
    return any(c.kind == kind and acct.api_key in c.users for c in server.hub.conns)
