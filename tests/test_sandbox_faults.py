"""Each injected fault is observable from the ccxt side, and the admin API drives them."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import ccxt
import pytest

from planar_core.sandbox import Faults
from planar_core.sandbox.server import SandboxServer

from .conftest import make_client, wait_for


async def set_faults(server: SandboxServer, **faults) -> dict:
    async with aiohttp.ClientSession() as http, http.post(f"{server.url}/admin/faults", json=faults) as r:
        assert r.status == 200
        return await r.json()


async def test_admin_faults_validate_and_clear(sandbox: SandboxServer) -> None:
    assert (await set_faults(sandbox, latency_ms=5, error_rate=0.5))["error_rate"] == 0.5
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{sandbox.url}/admin/faults", json={"error_rate": 2}) as r:
            assert r.status == 400 and "error_rate" in (await r.json())["error"]
        async with http.post(f"{sandbox.url}/admin/faults", json={"bogus": 1}) as r:
            assert r.status == 400
    assert await set_faults(sandbox) == Faults().model_dump()


async def test_latency_is_added(client, sandbox: SandboxServer) -> None:
    t0 = time.perf_counter()
    await client.fetch_time()
    base = time.perf_counter() - t0
    await set_faults(sandbox, latency_ms=150)
    t0 = time.perf_counter()
    await client.fetch_time()
    assert time.perf_counter() - t0 >= 0.15 > base


async def test_5xx_and_429_and_418(client, sandbox: SandboxServer) -> None:
    await set_faults(sandbox, error_rate=1.0)
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await client.fetch_balance()
    await set_faults(sandbox, rate_limit_rate=1.0)
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        await client.fetch_balance()
    await set_faults(sandbox, ban=True)
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        await client.fetch_balance()
    await set_faults(sandbox)
    assert (await client.fetch_balance())["total"]["USDT"] == 100_000


async def test_timeout(sandbox: SandboxServer, account) -> None:
    c = make_client(sandbox, account, timeout=300)
    try:
        await set_faults(sandbox, timeout_rate=1.0, hang_s=2)
        with pytest.raises(ccxt.RequestTimeout):
            await c.fetch_time()
    finally:
        await c.close()


async def test_lost_ack_books_the_order_but_drops_the_answer(client, sandbox: SandboxServer, account) -> None:
    await set_faults(sandbox, lost_ack_rate=1.0)
    with pytest.raises(ccxt.NetworkError):
        await client.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "lost-1"})
    await set_faults(sandbox)
    found = await client.fetch_order(None, "BTC/USDT", params={"origClientOrderId": "lost-1"})
    assert found["status"] == "closed" and found["filled"] == 0.01
    assert [o["client_order_id"] for o in sandbox.ex.snapshot()["accounts"][account.api_key]["orders"]] == ["lost-1"]


async def test_partial_fills(client, sandbox: SandboxServer) -> None:
    await set_faults(sandbox, partial_fill_ratio=0.25)
    bid = (await client.fetch_order_book("ETH/USDT"))["bids"][0][0]
    o = await client.create_order("ETH/USDT", "limit", "buy", 1.0, round(bid * 0.99, 2))
    sandbox.ex.matching_paused = True  # the background matcher stays out: only match_once below fills

    def match_once() -> None:
        sandbox.ex.matching_paused = False
        sandbox.ex.match_resting()
        sandbox.ex.matching_paused = True

    sandbox.ex.markets[("spot", "ETHUSDT")].shock = 0.9
    match_once()
    part = await client.fetch_order(o["id"], "ETH/USDT")
    assert part["status"] == "open" and part["filled"] == 0.25 and part["remaining"] == 0.75
    fills = await client.fetch_my_trades("ETH/USDT")
    assert [t["amount"] for t in fills if t["order"] == o["id"]] == [0.25] * int(part["filled"] / 0.25)
    for _ in range(3):
        match_once()
    assert (await client.fetch_order(o["id"], "ETH/USDT"))["status"] == "closed"


async def test_websocket_disconnects(client, sandbox: SandboxServer) -> None:
    await asyncio.wait_for(client.watch_ohlcv("BTC/USDT", "1m"), 5)
    await set_faults(sandbox, ws_drop_every_s=0.3)
    with pytest.raises(ccxt.NetworkError):
        for _ in range(50):
            await asyncio.wait_for(client.watch_ohlcv("BTC/USDT", "1m"), 5)
    await set_faults(sandbox)

    async def reconnected() -> bool:  # ccxt reconnects once the drops stop (a watch may still meet the last cut)
        try:
            return bool(await asyncio.wait_for(client.watch_ohlcv("BTC/USDT", "1m"), 5))
        except ccxt.NetworkError:
            return False

    await wait_for(reconnected, timeout=15)


async def test_malformed_json(client, sandbox: SandboxServer) -> None:
    """ccxt swallows a truncated JSON body (parse_json gives None) and returns an empty
    structure instead of raising: the engine has to validate what it gets."""
    await set_faults(sandbox, malformed_rate=1.0)
    try:
        bal = await client.fetch_balance()
    except ccxt.ExchangeError:
        return
    assert "USDT" not in bal["total"]


async def test_private_api_switch(client, sandbox: SandboxServer) -> None:
    await set_faults(sandbox, private_api=False)
    with pytest.raises(ccxt.AuthenticationError):
        await client.fetch_balance()
    assert (await client.fetch_ticker("BTC/USDT"))["last"] > 0  # public data still flows
