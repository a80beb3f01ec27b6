"""The Bybit dialect's order management beyond create/cancel, driven by unmodified ccxt.pro bybit: amend
(``edit_order``), conditional and TP/SL orders, position TP/SL and margin modes, Disconnected Cancel All, funding
rows. One sandbox and one account per module (module-scoped fixtures); accounts of their own where a test changes
account-wide settings.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from ccxt.base.errors import BadRequest, InvalidOrder, OrderNotFound

from planar_core.sandbox import SandboxExchange
from planar_core.sandbox.accounts import Account
from planar_core.sandbox.bybit import BybitServer
from planar_core.sandbox.bybit.limits import BybitLimits

from .conftest import make_bybit_client

pytestmark = pytest.mark.asyncio(loop_scope="module")
SPOT, SWAP = "BTC/USDT", "BTC/USDT:USDT"
BALANCES = {"USDT": Decimal(100_000), "BTC": Decimal(2), "ETH": Decimal(20)}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bybit() -> AsyncIterator[BybitServer]:
    ex = SandboxExchange(seed=11)
    async with BybitServer(ex) as server:
        server.bybit_limiter.limits = BybitLimits(scale=100)
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def trader(bybit: BybitServer) -> Account:
    return bybit.ex.add_account(dict(BALANCES))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(bybit: BybitServer, trader: Account) -> AsyncIterator[Any]:
    c = make_bybit_client(bybit, trader)
    await c.load_markets()
    try:
        yield c
    finally:
        await c.close()


async def last(c: Any, symbol: str) -> float:
    return float((await c.fetch_ticker(symbol))["last"])


def px(c: Any, symbol: str, value: float) -> float:
    return float(c.price_to_precision(symbol, value))


async def raw(server: BybitServer, method: str, path: str, params: dict[str, Any], acct: Account) -> dict[str, Any]:
    """One request signed as Bybit documents it; the answer's body."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    body = json.dumps(params) if method == "POST" else ""
    ts, window = str(int(time.time() * 1000)), "5000"
    payload = ts + acct.api_key + window + (body if method == "POST" else query)
    sign = hmac.new(acct.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-BAPI-API-KEY": acct.api_key,
        "X-BAPI-TIMESTAMP": ts,
        "X-BAPI-RECV-WINDOW": window,
        "X-BAPI-SIGN": sign,
    }
    url = server.url + path + (f"?{query}" if method == "GET" and query else "")
    async with aiohttp.ClientSession() as http, http.request(method, url, data=body or None, headers=headers) as r:
        return json.loads(await r.text())  # type: ignore[no-any-return]


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for ``check()`` to hold (polled every 20 ms), failing after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# ----------------------------------------------------------------- amend (edit_order)
async def test_amend_price_and_qty_by_id_and_link_id(client: Any, trader: Account) -> None:
    swap = await last(client, SWAP)
    o = await client.create_order(SWAP, "limit", "buy", 0.002, px(client, SWAP, swap * 0.985), {"clientOrderId": "amend-1"})
    edited = await client.edit_order(o["id"], SWAP, "limit", "buy", 0.003, px(client, SWAP, swap * 0.98))
    assert edited["id"] == o["id"]
    got = await client.fetch_open_order(o["id"], SWAP)
    assert (got["amount"], got["price"], got["clientOrderId"]) == (0.003, px(client, SWAP, swap * 0.98), "amend-1")
    await client.edit_order(None, SWAP, "limit", "buy", None, px(client, SWAP, swap * 0.975), {"clientOrderId": "amend-1"})
    assert (await client.fetch_open_order(o["id"], SWAP))["price"] == px(client, SWAP, swap * 0.975)
    spot = await last(client, SPOT)
    s = await client.create_order(SPOT, "limit", "buy", 0.01, px(client, SPOT, spot * 0.8))
    usdt_locked = trader.spot["USDT"][1]
    await client.edit_order(s["id"], SPOT, "limit", "buy", 0.02, None)
    assert (await client.fetch_open_order(s["id"], SPOT))["amount"] == 0.02
    assert trader.spot["USDT"][1] == pytest.approx(usdt_locked * 2)  # the spot lock follows the new quantity
    await client.cancel_order(s["id"], SPOT)
    await client.cancel_order(o["id"], SWAP)


async def test_amend_that_crosses_the_book_trades(client: Any) -> None:
    spot = await last(client, SPOT)
    o = await client.create_order(SPOT, "limit", "sell", 0.001, px(client, SPOT, spot * 1.2))
    await client.edit_order(o["id"], SPOT, "limit", "sell", None, px(client, SPOT, spot * 0.99))
    done = await client.fetch_order(o["id"], SPOT, {"acknowledged": True})
    assert (done["status"], done["filled"]) == ("closed", 0.001)


async def test_amend_refusals(client: Any) -> None:
    with pytest.raises(OrderNotFound, match="110001"):
        await client.edit_order("12345", SWAP, "limit", "buy", 0.002, 100.0)
    with pytest.raises(OrderNotFound, match="170213"):
        await client.edit_order("12345", SPOT, "limit", "buy", 0.002, 100.0)
    swap = await last(client, SWAP)
    price = px(client, SWAP, swap * 0.985)
    o = await client.create_order(SWAP, "limit", "buy", 0.002, price)
    with pytest.raises(BadRequest, match=r"10001.*remains unchanged"):  # Bybit: nothing to change
        await client.edit_order(o["id"], SWAP, "limit", "buy", 0.002, price)
    with pytest.raises(InvalidOrder, match="110003"):  # out of the price band
        await client.edit_order(o["id"], SWAP, "limit", "buy", None, px(client, SWAP, swap * 1.5))
    await client.cancel_order(o["id"], SWAP)
    with pytest.raises(OrderNotFound, match="110001"):  # no longer open
        await client.edit_order(o["id"], SWAP, "limit", "buy", None, px(client, SWAP, swap * 0.98))
