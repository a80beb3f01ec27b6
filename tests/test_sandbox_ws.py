"""Each ccxt.pro watch method receives the events the sandbox streams."""

from __future__ import annotations

import asyncio

import pytest

from planar_core.sandbox.server import SandboxServer

from .conftest import user_subscribed, wait_for


async def test_watch_ohlcv_spot_and_futures(client) -> None:
    spot = await asyncio.wait_for(client.watch_ohlcv("BTC/USDT", "1m"), 5)
    perp = await asyncio.wait_for(client.watch_ohlcv("BTC/USDT:USDT", "5m"), 5)
    assert spot[-1][0] % 60_000 == 0 and spot[-1][2] >= spot[-1][3] > 0
    assert perp[-1][0] % 300_000 == 0


async def test_watch_trades_and_bids_asks(client) -> None:
    trades = await asyncio.wait_for(client.watch_trades("ETH/USDT"), 5)
    assert trades[-1]["symbol"] == "ETH/USDT" and trades[-1]["price"] > 0
    ticker = await asyncio.wait_for(client.watch_bids_asks(["ETH/USDT"]), 5)
    assert ticker["ETH/USDT"]["ask"] > ticker["ETH/USDT"]["bid"]


async def test_price_shock_is_streamed_at_once(client, sandbox: SandboxServer) -> None:
    before = (await asyncio.wait_for(client.watch_ohlcv("BTC/USDT", "1m"), 5))[-1][4]
    async with __import__("aiohttp").ClientSession() as http:
        await http.post(f"{sandbox.url}/admin/price", json={"symbol": "BTCUSDT", "factor": 0.8})
    after = (await asyncio.wait_for(client.watch_ohlcv("BTC/USDT", "1m"), 5))[-1][4]
    assert after == pytest.approx(before * 0.8, rel=0.01)


async def test_spot_user_stream_orders_trades_balance(client, sandbox, account) -> None:
    orders = asyncio.create_task(client.watch_orders("BTC/USDT"))
    trades = asyncio.create_task(client.watch_my_trades("BTC/USDT"))
    balance = asyncio.create_task(client.watch_balance())
    await wait_for(lambda: user_subscribed(sandbox, account))  # subscribed before the order
    placed = await client.create_order("BTC/USDT", "market", "buy", 0.01)
    got = await asyncio.wait_for(orders, 5)
    assert got[-1]["id"] == placed["id"]
    mine = await asyncio.wait_for(trades, 5)
    assert mine[-1]["order"] == placed["id"] and mine[-1]["amount"] == 0.01
    bal = await asyncio.wait_for(balance, 5)
    assert bal["BTC"]["total"] == pytest.approx(2 + 0.01 - 0.00001)


async def test_futures_user_stream_orders_positions_balance(client, sandbox, account) -> None:
    await client.fetch_positions(["BTC/USDT:USDT"])
    orders = asyncio.create_task(client.watch_orders("BTC/USDT:USDT"))
    await wait_for(lambda: user_subscribed(sandbox, account, "linear"))
    positions = asyncio.create_task(client.watch_positions(["BTC/USDT:USDT"]))
    balance = asyncio.create_task(client.watch_balance({"type": "swap"}))
    await wait_for(lambda: bool(client.positions) and all(v is not None for v in client.positions.values()))  # snapshot loaded
    placed = await client.create_order("BTC/USDT:USDT", "market", "sell", 0.02)
    got = await asyncio.wait_for(orders, 5)
    assert got[-1]["id"] == placed["id"]

    async def short_seen() -> bool:
        pos = await asyncio.wait_for(client.watch_positions(["BTC/USDT:USDT"]), 5)
        return any(p["contracts"] == 0.02 and p["side"] == "short" for p in pos)

    first = await asyncio.wait_for(positions, 5)
    if not any(p["contracts"] == 0.02 for p in first):
        await wait_for(short_seen, timeout=5)
    bal = await asyncio.wait_for(balance, 5)
    assert bal["USDT"]["total"] < 100_000  # the taker fee was paid


async def test_trade_events_can_be_switched_off(client, sandbox: SandboxServer, account) -> None:
    sandbox.ex.faults = sandbox.ex.faults.model_copy(update={"user_trade_events": False})
    orders = asyncio.create_task(client.watch_orders("BTC/USDT"))
    await wait_for(lambda: user_subscribed(sandbox, account))
    placed = await client.create_order("BTC/USDT", "market", "buy", 0.01)
    got = await asyncio.wait_for(orders, 5)
    assert got[-1]["id"] == placed["id"]
    assert client.myTrades is None  # no trade message ever reached ccxt
    assert await client.fetch_my_trades("BTC/USDT") == []
