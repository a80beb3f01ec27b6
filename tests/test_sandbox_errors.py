"""Each bad request maps to the ccxt exception class Binance's answer maps to."""

from __future__ import annotations

import ccxt
import pytest

from planar_core.sandbox import Limits
from planar_core.sandbox.server import SandboxServer

from .conftest import make_client


async def raw_order(client, **params):
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": "50000"}
    base.update(params)
    return await client.privatePostOrder({k: v for k, v in base.items() if v is not None})


@pytest.mark.parametrize(
    ("params", "exc", "text"),
    [
        ({"symbol": "NOPEUSDT"}, ccxt.BadSymbol, "Invalid symbol"),
        ({"quantity": "0.000015"}, ccxt.InvalidOrder, "LOT_SIZE"),
        ({"price": "50000.001"}, ccxt.InvalidOrder, "PRICE_FILTER"),
        ({"quantity": "0.00001"}, ccxt.BadRequest, "NOTIONAL"),
        ({"quantity": "5"}, ccxt.InsufficientFunds, "insufficient balance"),
        ({"quantity": "-1"}, ccxt.BadRequest, "Illegal characters"),
        ({"quantity": "abc"}, ccxt.BadRequest, "Illegal characters"),
        ({"quantity": None}, ccxt.BadRequest, "Mandatory parameter 'quantity'"),
        ({"side": "UP"}, ccxt.BadRequest, "Invalid side"),
        ({"type": "ICEBERG"}, ccxt.BadRequest, "Invalid orderType"),
    ],
)
async def test_order_rejections_map_to_ccxt_classes(client, params, exc, text) -> None:
    with pytest.raises(exc, match=text):
        await raw_order(client, **params)


async def test_rejected_orders_leave_no_trace_on_the_account(client, sandbox: SandboxServer, account) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        await raw_order(client, quantity="5")
    snap = sandbox.ex.snapshot()["accounts"][account.api_key]
    assert snap["orders"] == [] and snap["spot_balances"]["USDT"] == {"free": "100000", "locked": "0"}


async def test_unknown_orders(client) -> None:
    with pytest.raises(ccxt.OrderNotFound):
        await client.fetch_order("999", "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        await client.cancel_order("999", "BTC/USDT")


async def test_bad_signature_and_bad_key(sandbox: SandboxServer, account) -> None:
    bad_secret = make_client(sandbox, None, apiKey=account.api_key, secret="0" * 64)
    bad_key = make_client(sandbox, None, apiKey="nope", secret=account.api_secret)
    try:
        with pytest.raises(ccxt.AuthenticationError):
            await bad_secret.fetch_balance()
        with pytest.raises(ccxt.AuthenticationError):
            await bad_key.fetch_balance()
    finally:
        await bad_secret.close()
        await bad_key.close()


async def test_unsigned_private_request_is_refused(sandbox: SandboxServer, account) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sandbox.url}/api/v3/account", headers={"X-MBX-APIKEY": account.api_key}) as r:
            assert r.status == 400 and (await r.json())["code"] == -1102
        async with http.get(f"{sandbox.url}/api/v3/account") as r:
            assert r.status == 401 and (await r.json())["code"] == -2014


async def test_stale_timestamp_is_refused(client) -> None:
    with pytest.raises(ccxt.InvalidNonce):
        await client.privateGetAccount({"timestamp": client.milliseconds() - 120_000})


async def test_weight_limit_gives_429_then_418(sandbox: SandboxServer, account) -> None:
    # a day-long weight interval: intervals are clock-aligned, and a minute's end would reset the count mid-test
    sandbox.ex.limiter.limits = Limits(weight_per_minute=40, weight_interval_s=86_400, violations_before_ban=3, ban_seconds=60)
    c = make_client(sandbox, account)
    try:
        statuses = []
        for _ in range(25):
            try:
                await c.fetch_ticker("BTC/USDT")  # weight 2 each, exchangeInfo 20 first
                statuses.append(200)
            except ccxt.DDoSProtection as exc:  # ccxt's class for HTTP 429/418 (parent of RateLimitExceeded)
                statuses.append(418 if " 418 " in str(exc) else 429)
        assert 429 in statuses and statuses[-1] == 418
        assert statuses.index(429) < statuses.index(418)
    finally:
        await c.close()


async def test_order_rate_limit_and_headers(sandbox: SandboxServer, client) -> None:
    sandbox.ex.limiter.limits = Limits(weight_per_minute=1_000_000, orders_per_10s=3, violations_before_ban=100)
    bid = (await client.fetch_order_book("BTC/USDT"))["bids"][0][0]
    counts = []
    with pytest.raises(ccxt.DDoSProtection, match="-1015"):
        for _ in range(10):  # until refused (a 10 s interval that ends on the way restarts the count)
            await client.create_order("BTC/USDT", "limit", "buy", 0.001, round(bid * 0.9, 2))
            counts.append(client.last_response_headers["X-MBX-ORDER-COUNT-10S"])
            assert int(client.last_response_headers["X-MBX-USED-WEIGHT-1M"]) > 0
    assert counts[-1] == "3"
