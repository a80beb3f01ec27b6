"""Binance clients configured as for mainnet (issue: a client that replaces ccxt's ``urls['api']``, with no sandbox
flag, as people do to go through a proxy). ccxt then takes its mainnet path, which calls more at ``load_markets`` than
its testnet path: margin pairs and, with a key, currencies from ``/sapi``, and the COIN-M markets. Unmodified
``ccxt.pro.binance`` is driven that way through ``load_markets``, a balance, an order and a cancel (spot and USDⓈ-M),
and websocket watches; ccxt's own validators check the markets and currencies it loaded."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import ccxt.async_support as ccxt_async
import ccxt.pro as ccxtpro
import pytest

from planar_core.exchange.endpoints import point_as_mainnet
from planar_core.sandbox import SandboxServer
from planar_core.sandbox.accounts import Account

from .conftest import user_subscribed, wait_for
from .engine.test_order_call import bid_ask

# what ccxt 4.5's binance sends at load_markets with a key and its default options (fetchMarkets types spot, linear,
# inverse; fetchMargins and fetchCurrencies on) once it is not in sandbox mode
LOAD_MARKETS = {
    ("GET", "/api/v3/exchangeInfo"),
    ("GET", "/fapi/v1/exchangeInfo"),
    ("GET", "/dapi/v1/exchangeInfo"),
    ("GET", "/sapi/v1/margin/allPairs"),  # by fetchMarkets and again by fetchCurrencies
    ("GET", "/sapi/v1/margin/isolated/allPairs"),
    ("GET", "/sapi/v1/capital/config/getall"),
}


def validator(name: str) -> Any:
    """One of ccxt's unified-API validators (``ccxt/test/exchange/async/test_<name>.py``; ``async`` is a keyword)."""
    return getattr(importlib.import_module(f"ccxt.test.exchange.async.test_{name}"), f"test_{name}")


def as_mainnet(sandbox: SandboxServer, account: Account, make: Any = ccxtpro.binance, **options: Any) -> Any:
    """An unmodified ccxt (ccxt.pro by default) binance, set up as a mainnet user with a proxy sets it up (no
    set_sandbox_mode)."""
    config: dict[str, Any] = {"apiKey": account.api_key, "secret": account.api_secret, "enableRateLimit": False, "timeout": 10_000}
    if options:
        config["options"] = options
    return point_as_mainnet(make(config), sandbox.url, sandbox.ws_url)


def record_requests(ex: Any) -> list[tuple[str, str]]:
    """The (method, path) of every REST request the client sends, in order (ccxt's own ``fetch``, observed)."""
    sent: list[tuple[str, str]] = []
    fetch = ex.fetch

    async def observed(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        sent.append((method, urlsplit(url).path))
        return await fetch(url, method, headers, body)

    ex.fetch = observed
    return sent


@pytest.mark.parametrize("make", [ccxtpro.binance, ccxt_async.binance], ids=["ccxt.pro", "ccxt.async_support"])
async def test_mainnet_configured_ccxt_loads_markets_trades_and_cancels(sandbox: SandboxServer, account: Account, make: Any) -> None:
    ex = as_mainnet(sandbox, account, make)
    sent = record_requests(ex)
    try:
        assert not ex.options["sandboxMode"] and ex.urls.get("apiBackup") is None  # ccxt's mainnet path
        markets = await ex.load_markets()
        assert set(sent) == LOAD_MARKETS, sorted(set(sent) ^ LOAD_MARKETS)
        assert markets["BTC/USDT"]["spot"] and markets["BTC/USDT:USDT"]["linear"]
        assert not [m for m in markets.values() if m["inverse"] or m["option"]]  # no COIN-M, no options listed
        assert ex.options["crossMarginPairsData"] == [] and ex.options["isolatedMarginPairsData"] == []  # no margin
        assert not markets["BTC/USDT"]["margin"]
        assert {"BTC", "USDT"} <= set(ex.currencies)  # from /sapi/v1/capital/config/getall: ccxt calls it with a key
        await validator("load_markets")(ex, {"optionsNotLoadedByDefault": True})  # ccxt's own, as for the testnet path
        await validator("fetch_currencies")(ex, {})

        for symbol, kind, amount in (("BTC/USDT", "spot", 0.001), ("BTC/USDT:USDT", "linear", 0.01)):
            balance = await ex.fetch_balance({"type": "spot" if kind == "spot" else "swap"})
            assert balance["USDT"]["free"] > 0
            bid, _ = bid_ask(sandbox, "BTCUSDT", kind)
            price = round(bid * 0.97, 1)  # resting (futures' PERCENT_PRICE: within 5 % of the mark)
            order = await ex.create_order(symbol, "limit", "buy", amount, price)
            assert order["status"] == "open" and order["price"] == price
            canceled = await ex.cancel_order(order["id"], symbol)
            assert canceled["status"] == "canceled"
            assert not await ex.fetch_open_orders(symbol)
    finally:
        await ex.close()


async def test_mainnet_configured_ccxt_pro_watches(sandbox: SandboxServer, account: Account) -> None:
    """The websocket URLs map too: spot and USDⓈ-M market streams, and the spot user stream (a balance update
    after an order)."""
    ex = as_mainnet(sandbox, account)
    try:
        await ex.load_markets()
        async with asyncio.timeout(10):
            spot, swap = await asyncio.gather(ex.watch_ticker("BTC/USDT"), ex.watch_ticker("BTC/USDT:USDT"))
            assert spot["symbol"] == "BTC/USDT" and spot["last"] > 0
            assert swap["symbol"] == "BTC/USDT:USDT" and swap["last"] > 0
            balance = asyncio.create_task(ex.watch_balance())
            await wait_for(lambda: user_subscribed(sandbox, account))
            await ex.create_order("BTC/USDT", "market", "buy", 0.001)
            update = await balance
            while update["BTC"]["free"] <= 2:  # the order's lock of USDT may come first, then the fill
                update = await ex.watch_balance()
        assert update["BTC"]["free"] == pytest.approx(2 + 0.001 - 0.000001)  # START_BALANCES' 2 BTC, plus the fill less its fee
    finally:
        await ex.close()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"fetchMarkets": {"loadAllOptions": True}}, LOAD_MARKETS | {("GET", "/eapi/v1/exchangeInfo")}),  # options too: none listed
        (  # ccxt's switches for the market types the sandbox does not list: only what it does list is asked for
            {"fetchMarkets": {"types": ["spot", "linear"]}, "fetchMargins": False},
            {("GET", "/api/v3/exchangeInfo"), ("GET", "/fapi/v1/exchangeInfo"), ("GET", "/sapi/v1/capital/config/getall")},
        ),
    ],
    ids=["with-options", "spot-and-usdm-only"],
)
async def test_ccxt_market_type_options(sandbox: SandboxServer, account: Account, options: dict[str, Any], expected: set) -> None:
    ex = as_mainnet(sandbox, account, **options)
    sent = record_requests(ex)
    try:
        markets = await ex.load_markets()
        assert set(sent) == expected
        assert {"BTC/USDT", "BTC/USDT:USDT"} <= set(markets) and not [m for m in markets.values() if m["option"]]
    finally:
        await ex.close()


async def test_coin_m_and_options_exchange_info_in_binance_shape_on_budgets_of_their_own(sandbox: SandboxServer) -> None:
    """Top-level fields as Binance's SDK models them (binance-connector-python's COIN-M and options
    ``ExchangeInformationResponse``), empty lists, and each API's weight counted apart (``X-MBX-USED-WEIGHT-1M``)."""
    shapes = {
        "/dapi/v1/exchangeInfo": ({"exchangeFilters", "rateLimits", "serverTime", "symbols", "timezone"}, "symbols"),
        "/eapi/v1/exchangeInfo": (
            {"timezone", "serverTime", "optionContracts", "optionAssets", "optionSymbols", "rateLimits"},
            "optionSymbols",
        ),
    }
    async with aiohttp.ClientSession() as http:
        for path, (fields, listing) in shapes.items():
            for used in (1, 2):  # weight 1 each, on that API's own count
                async with http.get(sandbox.url + path) as r:
                    body = await r.json()
                    assert r.status == 200 and r.headers["X-MBX-USED-WEIGHT-1M"] == str(used)
            assert set(body) == fields and body[listing] == [] and body["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
        async with http.get(sandbox.url + "/api/v3/exchangeInfo") as r:
            assert r.headers["X-MBX-USED-WEIGHT-1M"] == "20"  # spot's count: untouched by the two above
