"""The short fault suite: each fault alone and all together, on spot and futures, then the invariants."""

from __future__ import annotations

import pytest

from planar_core.sandbox import Faults

from .harness import churn, seed_of, verify

pytestmark = pytest.mark.venues()  # venue-independent: every test here runs on Binance and Bybit (tests/conftest.py)

SCENARIOS = {
    "latency 0-500 ms": Faults(latency_jitter_ms=500),
    "10 % 5xx": Faults(error_rate=0.1),
    "429 storm": Faults(rate_limit_rate=0.3),
    "request timeouts": Faults(timeout_rate=0.05, hang_s=1.5),
    "lost acks": Faults(lost_ack_rate=0.15),
    "websocket disconnects": Faults(ws_drop_every_s=1.0),
    "partial fills": Faults(partial_fill_ratio=0.3),
    "all together": Faults(
        latency_jitter_ms=100,
        error_rate=0.05,
        rate_limit_rate=0.05,
        timeout_rate=0.02,
        hang_s=1.5,
        lost_ack_rate=0.05,
        ws_drop_every_s=2.0,
        partial_fill_ratio=0.3,
    ),
}
ENGINE = {
    "timeouts": {"order_placement": 1.0, "order_cancellation": 1.0, "balance_sync": 1.0, "position_sync": 1.0, "market_data": 1.0},
    "order_monitoring": {"interval": 0.3, "retries": 4},
    "balance_watcher": {"interval": 0.3},
    "position_watcher": {"interval": 0.3},
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_spot_scenario(name, strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(universe=["BTC/USDT", "ETH/USDT", "LTC/USDT"], **ENGINE)
    sandbox.ex.faults = SCENARIOS[name]
    log = await churn(s, 24, seed=seed_of(name))
    sandbox.ex.faults = Faults()
    result = await verify(s, sandbox, account)  # every exchange order known locally and vice versa, before any resync
    assert log.placed > 0
    booked = {o["client_order_id"] for o in sandbox.ex.snapshot()["accounts"][account.api_key]["orders"]}
    assert result["orders"] == len(booked)
    assert {cid for cid, ok in log.results.items() if ok} <= booked | _failed_locally(s)
    assert {cid for cid, a in log.answers.items() if a == "pending"} <= booked  # PENDING means accepted: never a ghost


@pytest.mark.parametrize("name", ["all together", "lost acks"])
async def test_futures_scenario(name, strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(
        name="perp", margin=True, universe=["BTC/USDT:USDT", "ETH/USDT:USDT", "XRP/USDT:USDT"], default_leverage=5, **ENGINE
    )
    sandbox.ex.faults = SCENARIOS[name]
    log = await churn(s, 24, seed=seed_of(name))
    sandbox.ex.faults = Faults()
    await verify(s, sandbox, account)
    assert log.placed > 0
    booked = {o["client_order_id"] for o in sandbox.ex.snapshot()["accounts"][account.api_key]["orders"]}
    assert {cid for cid, a in log.answers.items() if a == "pending"} <= booked  # PENDING means accepted: never a ghost


def _failed_locally(s) -> set[str]:
    """Orders call() answered UNKNOWN for whose absence was later proved."""
    return {cid for ai in s.universe.values() for cid, o in ai.orders.items() if o.status == "failed"}


async def test_emergency_stop_during_the_storm_leaves_nothing_open(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(universe=["BTC/USDT", "ETH/USDT", "LTC/USDT"], **ENGINE)
    await churn(s, 20, seed=3)
    sandbox.ex.faults = SCENARIOS["all together"]
    report = await s.emergency_stop("storm")
    sandbox.ex.faults = Faults()
    assert report.clean
    assert sandbox.ex.snapshot()["accounts"][account.api_key]["open_orders"] == []
