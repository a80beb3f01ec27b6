"""Shared fixtures: a real sandbox exchange on a free loopback port and unmodified ccxt clients."""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt.pro as ccxtpro
import pytest

from planar_core.exchange.endpoints import point_at_sandbox, point_bybit_at_sandbox
from planar_core.sandbox import Limits, SandboxExchange, SandboxServer
from planar_core.sandbox.accounts import Account
from planar_core.sandbox.bybit import BybitServer
from planar_core.sandbox.bybit.limits import BybitLimits

# the host's shared request budgets of this test session (and of its subprocesses), apart from any other run's; each
# pytest-xdist worker has its own (its sandboxes hand out the same seeded API keys as the other worker's)
if "PLANAR_BUDGET_DIR" not in os.environ or "PYTEST_XDIST_WORKER" in os.environ:
    os.environ["PLANAR_BUDGET_DIR"] = tempfile.mkdtemp(prefix="planar-budgets-tests-")
    atexit.register(shutil.rmtree, os.environ["PLANAR_BUDGET_DIR"], ignore_errors=True)
# a worker that ran flow tests keeps Prefect's API log handler; engine logs of later tests outside any flow run are
# expected there, not a misconfiguration (Prefect would warn on each)
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
START_BALANCES = {"USDT": Decimal(100_000), "BTC": Decimal(2), "ETH": Decimal(20), "LTC": Decimal(100), "XRP": Decimal(10_000)}


VENUES = ("binance", "bybit")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "venues(*names, skip={venue: reason}, xfail={venue: reason}): run the module's (or the test's) sandbox tests on "
        "each venue named (all of VENUES when none is), ids [binance] / [bybit]; the closest marker wins, so a test "
        "Binance-specific by nature says venues('binance'); skip names a venue that does not offer what the test needs "
        "(yet), xfail a known defect on that venue (strict: the test fails once the defect is fixed, to be unmarked)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test opted in with ``@pytest.mark.venues`` (or a module's ``pytestmark``) that uses the sandbox, directly or
    through ``account`` / ``client`` / ``strategy_factory``, is written once and runs on every venue named."""
    marker = metafunc.definition.get_closest_marker("venues")
    if marker is None or "venue" not in metafunc.fixturenames:
        return
    names = marker.args or VENUES
    skip: dict[str, str] = marker.kwargs.get("skip", {})
    xfail: dict[str, str] = marker.kwargs.get("xfail", {})
    unknown = (set(names) | set(skip) | set(xfail)) - set(VENUES)
    if unknown:
        raise pytest.UsageError(f"venues marker of {metafunc.definition.nodeid}: unknown venue(s) {sorted(unknown)}")

    def param(v: str) -> Any:
        if v in skip:
            return pytest.param(v, marks=pytest.mark.skip(reason=skip[v]))
        if v in xfail:
            return pytest.param(v, marks=pytest.mark.xfail(reason=xfail[v], strict=True))
        return v

    metafunc.parametrize("venue", [param(v) for v in names], indirect=True)


@pytest.fixture
def venue(request: pytest.FixtureRequest) -> str:
    """The venue the sandbox speaks in this test: Binance unless the test opted into ``venues`` (see above)."""
    return str(getattr(request, "param", "binance"))


@pytest.fixture
async def sandbox(venue: str) -> AsyncIterator[SandboxServer]:
    """A sandbox with limits high enough for tests that are not about limits, speaking the test's venue (one exchange
    core either way: ``server.ex`` is the same admin surface, snapshot and faults on both)."""
    ex = SandboxExchange(seed=11)
    if venue == "bybit":
        async with BybitServer(ex) as bybit:
            bybit.bybit_limiter.limits = BybitLimits(scale=100)
            yield bybit
        return
    ex.limiter.limits = Limits(weight_per_minute=1_000_000, orders_per_10s=100_000)
    async with SandboxServer(ex) as server:
        yield server


def venue_of(server: SandboxServer) -> str:
    """The venue a sandbox server speaks (the Bybit dialect is a subclass of the Binance one)."""
    return "bybit" if isinstance(server, BybitServer) else "binance"


# Venue-neutral helpers: both dialects serve one exchange core, whose markets are named alike on both venues
# (``BTCUSDT`` spot and linear: Binance's and Bybit's own ids) and whose admin snapshot and faults are the same.
def bid_ask(server: SandboxServer, symbol: str = "BTCUSDT", kind: str = "spot") -> tuple[float, float]:
    """The best bid and ask of a market (``kind`` "spot" or "linear") on the exchange now."""
    (bid, _), (ask, _) = server.ex.best_bid_ask(server.ex.markets[(kind, symbol)])
    return float(bid), float(ask)


def snapshot(server: SandboxServer, acct: Account) -> dict[str, Any]:
    """The exchange's own record of one account (its admin snapshot): what the engine's view is compared with."""
    return dict(server.ex.snapshot()["accounts"][acct.api_key])


@pytest.fixture
async def bybit_sandbox() -> AsyncIterator[BybitServer]:
    """The same exchange core speaking Bybit v5, with its per-UID limits raised for tests that are not about limits."""
    ex = SandboxExchange(seed=11)
    async with BybitServer(ex) as server:
        server.bybit_limiter.limits = BybitLimits(scale=100)
        yield server


def make_bybit_client(server: BybitServer, acct: Account | None, **config: Any) -> Any:
    """An unmodified ccxt.pro bybit client on ``server`` (only its ``urls['api']`` replaced)."""
    cfg: dict[str, Any] = {"enableRateLimit": False, "timeout": 10_000}
    if acct is not None:
        cfg.update(apiKey=acct.api_key, secret=acct.api_secret)
    cfg.update(config)
    return point_bybit_at_sandbox(ccxtpro.bybit(cfg), server.url, server.ws_url)


@pytest.fixture
def account(sandbox: SandboxServer) -> Account:
    return sandbox.ex.add_account(dict(START_BALANCES))


def make_client(server: SandboxServer, acct: Account | None, **config: Any) -> Any:
    """An unmodified ccxt.pro client of the server's venue on ``server`` (someone else trading the account)."""
    if isinstance(server, BybitServer):
        return make_bybit_client(server, acct, **config)
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
        if venue_of(sandbox) != "binance":
            overrides.setdefault("exchange", venue_of(sandbox))
        s = build(name, env=env, **overrides)
        made.append(s)
        if start:
            await s.start()
            if isinstance(sandbox, BybitServer) and s.config.order_monitoring.use_websocket:
                await wait_for(lambda: order_topic_subscribed(sandbox, acct), timeout=10)
                if s.config.order_monitoring.enabled and s.running:  # the engine's fill stream (watchers.fill_stream)
                    await wait_for(lambda: order_topic_subscribed(sandbox, acct, "execution"), timeout=10)
        return s

    yield factory
    for s in made:
        await s.stop()


def order_topic_subscribed(server: BybitServer, acct: Account, topic: str = "order") -> bool:
    """The account's private Bybit connection has subscribed to the ``order`` topic (or ``topic``). Bybit
    acknowledges an order with its ids only (Binance's answer carries the status and fills): what became of it comes
    by this topic, or by the next poll when the order was placed before the subscription was up. Tests that read an
    order's outcome right after ``call`` wait for it, as the Bybit venue tests do, rather than on a poll's timing."""
    return any(c.kind == "private" and acct.api_key in c.users and topic in c.streams for c in server.hub.conns)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything outside tests/unit/ is the integration tier (the sandbox, real sockets, Prefect, subprocesses):
    ``pytest -m "not integration"`` runs the unit tier alone, in about a second."""
    unit = Path(__file__).resolve().parent / "unit"
    for item in items:
        if unit not in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def user_subscribed(server: SandboxServer, acct: Account, kind: str = "spot") -> bool:
    """The sandbox has a user-data subscription of ``acct`` on a ``kind`` connection (what a test waits on
    before acting, instead of sleeping). Bybit has one private connection for every category: ``kind`` is moot."""
    if isinstance(server, BybitServer):
        return any(c.kind == "private" and acct.api_key in c.users for c in server.hub.conns)
    return any(c.kind == kind and acct.api_key in c.users for c in server.hub.conns)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server (moto in server mode) on a free loopback port, for the whole session; fsspec in
    this process and in subprocesses (through ``FSSPEC_S3_*`` and ``AWS_*``) is pointed at it."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import fsspec

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:  # wait until it accepts connections
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto server did not start on {url}") from None
            time.sleep(0.05)
    env = {"AWS_ACCESS_KEY_ID": "planar-test", "AWS_SECRET_ACCESS_KEY": "planar-test-secret", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in [*env, "FSSPEC_S3_ENDPOINT_URL"]}
    os.environ.update(env, FSSPEC_S3_ENDPOINT_URL=url)
    saved_conf = fsspec.config.conf.get("s3")
    fsspec.config.conf["s3"] = {"endpoint_url": url}
    fs = fsspec.filesystem("s3")
    fs.mkdir("planar-test")
    try:
        yield url
    finally:
        fsspec.config.conf.pop("s3", None)
        if saved_conf is not None:
            fsspec.config.conf["s3"] = saved_conf
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_root(s3_endpoint: str) -> str:
    """A fresh prefix in the test bucket: s3://planar-test/<random>."""
    import uuid

    return f"s3://planar-test/{uuid.uuid4().hex[:12]}"
