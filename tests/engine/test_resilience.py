"""Connection health and reconnection, request pacing and batching, secret hygiene."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from planar_core.alerts import LoggingConfig, setup_live_logging
from planar_core.engine.health import reconnect
from planar_core.exchange.limiter import OrderPacer
from planar_core.model import OrderType, Side, Trade
from planar_core.sandbox import Faults

from ..conftest import wait_for


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


async def test_reconnect_resyncs_after_an_outage(strategy_factory, sandbox, account) -> None:
    from decimal import Decimal

    s = await strategy_factory(connection={"max_retries": 3, "retry_delay": 0.01})
    sandbox.ex.faults = Faults(error_rate=1.0)
    account.balance("BTC")[0] += Decimal("0.05")  # changes while the engine is cut off; no stream event tells it

    async def heal(_: float) -> None:
        sandbox.ex.faults = Faults()

    assert await reconnect(s, sleep=heal)
    assert s.sink.of("reconnect")[-1]["result"] == "ok"
    assert s.cash("BTC").total == pytest.approx(2.05)  # resynced balances


async def test_failed_reconnection_hands_over_to_the_emergency_hook(strategy_factory, sandbox) -> None:
    s = await strategy_factory(connection={"max_retries": 2, "retry_delay": 0.01})
    reasons = []

    async def on_lost(strat, reason: str) -> None:
        reasons.append(reason)

    s.hooks.on_connection_lost(on_lost)
    sandbox.ex.faults = Faults(error_rate=1.0)
    assert not await reconnect(s, sleep=no_sleep)
    assert reasons == ["Failed to reconnect to exchange after 2 attempts"]
    assert [e["result"] for e in s.sink.of("reconnect")] == ["failed", "failed"]
    s.hooks.on_connection_lost(None)
    assert not await reconnect(s, sleep=no_sleep)
    assert s.halted  # the default reaction


async def test_health_monitor_detects_the_outage(strategy_factory, sandbox) -> None:
    s = await strategy_factory(connection={"health_interval": 0.1, "max_retries": 1, "retry_delay": 0.01})
    sandbox.ex.faults = Faults(error_rate=1.0)
    await wait_for(lambda: s.halted, timeout=10)  # the risk manager's e-stop halts first ...
    assert s.state.halted_by_emergency_stop and "Failed to reconnect" in s.state.halt_reason
    sandbox.ex.faults = Faults()  # ... and its cancels get through once the exchange answers again
    await wait_for(lambda: s.watcher_health()["health"]["mode"] == "lost", timeout=20)


async def test_order_pacer_spaces_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a clock of its own that moves only when the pacer waits (on the machine's clock a busy CI runner refilled
    the bucket between two calls, and the test flaked)."""
    from types import SimpleNamespace

    from planar_core.exchange import limiter

    now = [1000.0]

    async def sleep(delay: float) -> None:
        now[0] += delay

    monkeypatch.setattr(limiter, "time", SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(limiter, "asyncio", SimpleNamespace(sleep=sleep, Lock=asyncio.Lock))
    pacer = OrderPacer(rate=50.0, burst=2)
    waited = [await pacer.acquire() for _ in range(12)]
    assert waited[:2] == [0.0, 0.0] and all(w > 0 for w in waited[2:])
    assert sum(waited) == pytest.approx((12 - 2) / 50.0)


async def test_pacer_keeps_orders_under_the_exchange_limit(strategy_factory, sandbox, account) -> None:
    from planar_core.sandbox import Limits

    sandbox.ex.limiter.limits = Limits(weight_per_minute=1_000_000, orders_per_10s=12, violations_before_ban=100)
    s = await strategy_factory(rate_limits={"orders_per_second": 1.0, "burst_allowance": 10, "weight_per_minute": 1_000_000})
    results = [await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.001, waitfor=1) for _ in range(12)]
    assert all(isinstance(r, Trade) for r in results)
    assert s.venue.guard.backoffs == 0  # queued locally, never refused


async def test_batch_respects_the_weight_budget(strategy_factory) -> None:
    s = await strategy_factory(rate_limits={"weight_per_minute": 5000, "orders_per_second": 100})
    ops = [(f"ticker{i}", lambda: s.venue.ex.fetch_ticker("BTC/USDT"), 120) for i in range(10)]
    results = await s.venue.batch(ops, timeout=5)
    assert s.venue.last_batch_count == 3  # a tenth of 5000 per batch: 4 + 4 + 2 ops of weight 120
    assert len(results) == 10 and all(isinstance(r, dict) and r["last"] > 0 for r in results)


async def test_secrets_never_leave_the_process(strategy_factory, sandbox, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    acct = sandbox.ex.add_account(
        {"USDT": 10_000, "BTC": 1}, api_key="KEYplanar0123456789leakcheck", api_secret="SECRETplanar9876543210leakcheck"
    )
    # a short placement budget: the order the exchange answers with errors is unknown after 3 s of look-ups, not 30
    s = await strategy_factory(acct=acct, order_monitoring={"retries": 1}, timeouts={"order_placement": 3.0})
    logger, log_path, _ = setup_live_logging(
        LoggingConfig(level="DEBUG", console=False), tmp_path, "strat", "binance", secrets=s.config.credentials.secret_values()
    )
    try:
        await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=1)
        await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=500)  # refused locally
        sandbox.ex.faults = Faults(error_rate=1.0)
        await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=1)  # fails at the exchange
        sandbox.ex.faults = Faults()
        errors = []
        try:
            bad = sandbox.ex.add_account({"USDT": 1})
            bad.api_secret = "x"
            s.venue.ex.secret = acct.api_secret + "-wrong"
            await s.venue.call("fetch_balance", lambda: s.venue.ex.fetch_balance(), 2, retries=0)
        except Exception as exc:
            errors.append(f"{exc!r} {exc}")
        outputs = [
            repr(s),
            str(s.config),
            log_path.read_text(),
            "\n".join(r.getMessage() for r in caplog.records),
            repr(s.sink.events),
            "\n".join(errors),
        ]
        for text in outputs:
            assert "KEYplanar0123456789leakcheck" not in text and "SECRETplanar9876543210leakcheck" not in text
        assert errors and len(s.sink.events) > 10
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
            h.close()


async def test_every_operation_honours_its_timeout(strategy_factory, sandbox) -> None:
    from planar_core.exchange.errors import NetworkUncertain

    s = await strategy_factory(timeouts={"market_data": 0.2})
    sandbox.ex.faults = Faults(latency_ms=600)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(NetworkUncertain, match="timed out"):
        await s.venue.call("fetch_time", lambda: s.venue.ex.fetch_time(), s.config.timeouts.market_data, retries=0)
    assert loop.time() - t0 < 0.55  # cut at the configured timeout, not at the server's pace


async def test_used_weight_header_is_tracked_and_respected(strategy_factory, sandbox) -> None:
    s = await strategy_factory(rate_limits={"weight_per_minute": 1000, "orders_per_second": 100})
    await s.venue.call("fetch_time", lambda: s.venue.ex.fetch_time(), 5)
    assert s.venue.guard.used > 0  # the server's count, read from X-MBX-USED-WEIGHT-1M
    s.venue.guard.observe_used(s.venue.venue.used_weight({"X-MBX-USED-WEIGHT-1M": "950"}))
    assert s.venue.guard.resume_at > time.monotonic()  # near the limit: hold until the window rolls
