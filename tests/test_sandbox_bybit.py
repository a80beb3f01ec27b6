"""The sandbox speaking Bybit v5: unmodified ``ccxt.bybit`` / ``ccxt.pro.bybit`` over real HTTP on loopback, only
its ``urls['api']`` replaced (``point_bybit_at_sandbox``), checked with ccxt's own unified-API validators
(``ccxt/test/exchange/async/test_*.py`` and the structure checks of ``ccxt/test/exchange/base/``), raw answers
compared in shape with Bybit's documented responses, and Bybit's retCodes mapped to ccxt's classes.

One sandbox and one seeded account serve the whole module (the fixtures are module-scoped) to keep it fast.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from ccxt.base.errors import AuthenticationError, BadRequest, InsufficientFunds, InvalidNonce, InvalidOrder, NoChange, OrderNotFound

from planar_core.sandbox import SandboxExchange
from planar_core.sandbox.accounts import Account
from planar_core.sandbox.bybit import BybitServer
from planar_core.sandbox.bybit.limits import BybitLimits

from .conftest import make_bybit_client
from .test_ccxt_validators import validator

pytestmark = pytest.mark.asyncio(loop_scope="module")
SPOT, SWAP = "BTC/USDT", "BTC/USDT:USDT"
TESTING = BybitLimits(scale=100)
BALANCES = {"USDT": Decimal(100_000), "BTC": Decimal(2), "ETH": Decimal(20)}
PRICE: dict[str, float] = {}  # limit prices, set from the tickers by the ``client`` fixture


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bybit() -> AsyncIterator[BybitServer]:
    ex = SandboxExchange(seed=11)
    async with BybitServer(ex) as server:
        server.bybit_limiter.limits = TESTING  # tests that are not about limits trade faster than a person may
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def trader(bybit: BybitServer) -> Account:
    return bybit.ex.add_account(dict(BALANCES))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(bybit: BybitServer, trader: Account) -> AsyncIterator[Any]:
    """A client whose account has traded: a resting spot buy, filled spot and linear market orders, a position."""
    c = make_bybit_client(bybit, trader)
    await c.load_markets()
    # the sandbox's price path moves with the clock: every limit price is a fixed fraction of the price now
    spot, swap = (await c.fetch_ticker(SPOT))["last"], (await c.fetch_ticker(SWAP))["last"]
    for name, symbol, last, share in [
        ("spot_low", SPOT, spot, 0.67),  # rests, far under the market, inside the price band
        ("spot_high", SPOT, spot, 1.5),  # a sell that rests
        ("spot_big_buy", SPOT, spot, 0.83),  # 5 BTC at this price is more than the account's USDT
        ("swap_rest", SWAP, swap, 0.983),
        ("swap_rest2", SWAP, swap, 0.967),
    ]:
        PRICE[name] = float(c.price_to_precision(symbol, last * share))
    await c.create_order(SPOT, "limit", "buy", 0.01, PRICE["spot_low"], {"clientOrderId": "rest-1"})
    await c.create_order(SPOT, "market", "buy", 0.01)
    await c.create_order(SPOT, "market", "sell", 0.005)
    await c.create_order(SWAP, "market", "buy", 0.01)
    await c.create_order(SWAP, "limit", "buy", 0.01, PRICE["swap_rest"], {"clientOrderId": "rest-2"})
    await c.create_order(SWAP, "limit", "buy", 0.002, PRICE["swap_rest2"], {"clientOrderId": "gone-2"})
    await c.cancel_order(None, SWAP, {"orderLinkId": "gone-2"})
    try:
        yield c
    finally:
        await c.close()


async def raw(
    server: BybitServer, method: str, path: str, params: dict[str, Any], acct: Account | None = None, **over: str
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One request signed as Bybit documents it (``over`` replaces headers), answered as (status, body, headers)."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    body = json.dumps(params) if method == "POST" else ""
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if acct is not None:
        ts, window = str(int(time.time() * 1000)), "5000"
        payload = ts + acct.api_key + window + (body if method == "POST" else query)
        sign = hmac.new(acct.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        headers.update({"X-BAPI-API-KEY": acct.api_key, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": window, "X-BAPI-SIGN": sign})
    headers.update(over)
    url = server.url + path + (f"?{query}" if method == "GET" and query else "")
    async with aiohttp.ClientSession() as http, http.request(method, url, data=body or None, headers=headers) as r:
        return r.status, json.loads(await r.text()), dict(r.headers)


# ----------------------------------------------------------------- ccxt's validators
REST_CASES = [
    ("loadMarkets", "", {"optionsNotLoadedByDefault": True}),
    ("fetchCurrencies", "", {}),
    ("fetchTicker", SPOT, {}),
    ("fetchTicker", SWAP, {}),
    ("fetchTickers", SPOT, {"checkActiveSymbols": True}),  # Bybit's tickers answer one category; ccxt counts all
    ("fetchTickers", SWAP, {"checkActiveSymbols": True}),
    ("fetchOrderBook", SPOT, {}),
    ("fetchOrderBook", SWAP, {}),
    ("fetchOHLCV", SPOT, {}),
    ("fetchOHLCV", SWAP, {}),
    ("fetchTrades", SPOT, {}),
    ("fetchTrades", SWAP, {}),
    ("fetchBalance", "", {}),
    ("fetchTradingFee", SPOT, {}),
    ("fetchTradingFee", SWAP, {}),
    ("fetchOpenOrders", SPOT, {}),
    ("fetchOpenOrders", SWAP, {}),
    ("fetchClosedOrders", SPOT, {}),
    ("fetchClosedOrders", SWAP, {}),
    ("fetchMyTrades", SPOT, {}),
    ("fetchMyTrades", SWAP, {}),
    ("fetchPositions", SWAP, {"marginMode": True}),  # ccxt's bybit leaves it None ("tradeMode was deprecated"), against Bybit too
    ("fetchFundingRateHistory", SWAP, {}),
]


@pytest.mark.parametrize(("method", "symbol", "skip"), REST_CASES, ids=[f"{m}-{s or 'all'}" for m, s, _ in REST_CASES])
async def test_ccxt_rest_validators(client: Any, method: str, symbol: str, skip: dict[str, bool]) -> None:
    args = [symbol] if symbol else []
    await validator(method, ws=False)(client, skip, *args)


# the engine's account-wide listings and its swap-side balance: ccxt's validators on a client of each default type
DEFAULT_TYPE_CASES = [
    ("spot", "fetchOpenOrders", None),  # client.open_orders of the whole account (fetch_open_orders(None), type spot)
    ("swap", "fetchOpenOrders", None),  # ... linear: ccxt asks settleCoin=USDT
    ("swap", "fetchBalance", None),  # the engine's balances("swap"): fetch_balance({"type": "swap"})
]


@pytest.mark.parametrize(("kind", "method", "symbol"), DEFAULT_TYPE_CASES, ids=[f"{k}-{m}" for k, m, _ in DEFAULT_TYPE_CASES])
async def test_ccxt_validators_by_default_type(
    bybit: BybitServer, trader: Account, client: Any, kind: str, method: str, symbol: None
) -> None:
    c = make_bybit_client(bybit, trader, options={"defaultType": kind})
    try:
        await c.load_markets()
        await validator(method, ws=False)(c, {}, *([symbol] if method == "fetchOpenOrders" else []))
    finally:
        await c.close()


# every order the engine places (order_args: market, limit GTC/IOC/FOK, post-only, conditional linear): ccxt's order
# validator (ccxt/test/exchange/base/test_order.py) on the answers of create_order, fetch_order and the cancels. ccxt
# ships no validator file for createOrder that runs in Python (test_create_order adds a float to a str, any exchange),
# cancelOrder(s), cancelAllOrders or fetchCanceledAndClosedOrders: its order validator is what those would apply.
def order_cases() -> list[tuple[str, str, str, float, str, dict[str, Any]]]:
    """(symbol, type, side, amount, price key or "", params) for each kind of order, spot and linear."""
    swap_up = {"triggerDirection": "ascending"}
    return [
        (SPOT, "market", "buy", 0.001, "", {}),
        (SPOT, "limit", "buy", 0.001, "spot_low", {}),
        (SPOT, "limit", "sell", 0.001, "spot_high", {"timeInForce": "IOC"}),
        (SPOT, "limit", "sell", 0.001, "spot_high", {"timeInForce": "FOK"}),
        (SPOT, "limit", "buy", 0.001, "spot_low", {"postOnly": True}),
        (SWAP, "market", "buy", 0.001, "", {}),
        (SWAP, "limit", "buy", 0.001, "swap_rest", {}),
        (SWAP, "limit", "buy", 0.001, "swap_rest", {"timeInForce": "IOC"}),
        (SWAP, "limit", "buy", 0.001, "swap_rest", {"timeInForce": "FOK"}),
        (SWAP, "limit", "buy", 0.001, "swap_rest", {"postOnly": True}),
        (SWAP, "market", "buy", 0.001, "", {"triggerPrice": "up", **swap_up}),  # a stop buy, waiting
        (SWAP, "limit", "sell", 0.001, "swap_rest", {"triggerPrice": "down", "triggerDirection": "descending", "reduceOnly": True}),
    ]


async def test_ccxt_order_validator_on_every_order_kind(client: Any) -> None:
    from ccxt.test.exchange.base.test_order import test_order

    tickers = {s: (await client.fetch_ticker(s))["last"] for s in (SPOT, SWAP)}
    triggers = {"up": tickers[SWAP] * 1.02, "down": tickers[SWAP] * 0.99}
    placed: dict[str, list[str]] = {SPOT: [], SWAP: []}
    for symbol, kind, side, amount, price_key, params in order_cases():
        if "triggerPrice" in params:
            params = {**params, "triggerPrice": float(client.price_to_precision(symbol, triggers[params["triggerPrice"]]))}
        price = PRICE[price_key] if price_key else None
        created = await client.create_order(symbol, kind, side, amount, price, params)
        test_order(client, {}, "createOrder", created, symbol, client.milliseconds())
        fetched = await client.fetch_order(created["id"], symbol, {"acknowledged": True})
        test_order(client, {}, "fetchOrder", fetched, symbol, client.milliseconds())
        placed[symbol].append(created["id"])
    open_ids = {s: [o["id"] for o in await client.fetch_open_orders(s) if o["id"] in placed[s]] for s in (SPOT, SWAP)}
    assert len(open_ids[SPOT]) == 2 and len(open_ids[SWAP]) == 4, open_ids  # GTC and post-only rest, IOC/FOK/market do not
    one = await client.cancel_order(open_ids[SWAP][0], SWAP)
    test_order(client, {}, "cancelOrder", one, SWAP, client.milliseconds())
    for row in await client.cancel_orders(open_ids[SWAP][1:3], SWAP):
        test_order(client, {}, "cancelOrders", row, SWAP, client.milliseconds())
    for symbol in (SPOT, SWAP):
        rows = await client.cancel_all_orders(symbol)
        assert rows, symbol
        for row in rows:
            test_order(client, {}, "cancelAllOrders", row, symbol, client.milliseconds())
        done = [o for o in await client.fetch_canceled_and_closed_orders(symbol) if o["id"] in placed[symbol]]
        assert {o["id"] for o in done} == set(placed[symbol])
        for o in done:
            test_order(client, {}, "fetchCanceledAndClosedOrders", o, symbol, client.milliseconds())
            assert o["status"] in ("closed", "canceled"), o
    await client.create_order(SWAP, "market", "sell", 0.001, None, {"reduceOnly": True})  # the position as it was
    await client.create_order(SPOT, "limit", "buy", 0.01, PRICE["spot_low"], {"clientOrderId": "rest-1b"})  # keep one open
    await client.create_order(SWAP, "limit", "buy", 0.01, PRICE["swap_rest"], {"clientOrderId": "rest-2b"})


async def test_fetch_time_is_the_sandbox_clock(client: Any, bybit: BybitServer) -> None:
    assert abs(await client.fetch_time() - bybit.ex.now_ms()) < 2000


# ----------------------------------------------------------------- orders through ccxt
async def test_order_lifecycle_spot_and_linear(client: Any, trader: Account) -> None:
    order = await client.create_order(SPOT, "limit", "sell", 0.01, PRICE["spot_high"], {"clientOrderId": "life-1"})
    fetched = await client.fetch_order(order["id"], SPOT, {"acknowledged": True})
    assert (fetched["status"], fetched["clientOrderId"], fetched["price"], fetched["amount"]) == (
        "open",
        "life-1",
        PRICE["spot_high"],
        0.01,
    )
    assert order["id"] in [o["id"] for o in await client.fetch_open_orders(SPOT)]
    free_btc = (await client.fetch_balance())["BTC"]
    assert free_btc["used"] == pytest.approx(0.01)  # the sell locks its base
    cancelled = await client.cancel_order(order["id"], SPOT)
    assert cancelled["id"] == order["id"]
    closed = {o["id"]: o for o in await client.fetch_canceled_and_closed_orders(SPOT)}
    assert closed[order["id"]]["status"] == "canceled"
    ask = (await client.fetch_ticker(SWAP))["ask"]
    ioc = await client.create_order(SWAP, "limit", "buy", 0.01, round(ask * 1.01, 1), {"timeInForce": "IOC"})
    filled = await client.fetch_order(ioc["id"], SWAP, {"acknowledged": True})
    assert (filled["status"], filled["filled"], filled["timeInForce"]) == ("closed", 0.01, "IOC")
    reduce = await client.create_order(SWAP, "market", "sell", 0.01, None, {"reduceOnly": True})
    assert (await client.fetch_order(reduce["id"], SWAP, {"acknowledged": True}))["reduceOnly"] is True


async def test_post_only_and_cancel_all(client: Any) -> None:
    po = await client.create_order(SWAP, "limit", "buy", 0.001, PRICE["swap_rest"], {"postOnly": True})
    assert (await client.fetch_order(po["id"], SWAP, {"acknowledged": True}))["timeInForce"] == "PO"
    cancelled = await client.cancel_all_orders(SWAP)
    assert po["id"] in [o["id"] for o in cancelled]
    assert not await client.fetch_open_orders(SWAP)
    await client.create_order(
        SWAP, "limit", "buy", 0.01, PRICE["swap_rest"], {"clientOrderId": "rest-3"}
    )  # keep one open for the validators


async def test_positions_leverage_and_the_unified_balance(client: Any, bybit: BybitServer, trader: Account) -> None:
    await client.set_leverage(7, SWAP)
    (pos,) = await client.fetch_positions([SWAP])
    assert pos["leverage"] == 7 and pos["side"] == "long" and pos["contracts"] == pytest.approx(0.01)
    with pytest.raises(BadRequest, match="110043"):  # Bybit: "leverage not modified"
        await client.set_leverage(7, SWAP)
    bal = await client.fetch_balance()
    margins = bybit.ex.futures_margins(trader)
    usdt = trader.spot["USDT"]
    wallet = usdt[0] + usdt[1] + trader.futures_wallet - trader.futures_deposit
    assert bal["USDT"]["total"] == pytest.approx(float(wallet))
    assert bal["USDT"]["used"] == pytest.approx(float(usdt[1] + margins["position_im"] + margins["order_im"]))


# ----------------------------------------------------------------- errors: Bybit's retCode, ccxt's class
async def test_insufficient_balance(client: Any) -> None:
    with pytest.raises(InsufficientFunds, match="170131"):
        await client.create_order(SPOT, "limit", "buy", 5, PRICE["spot_big_buy"])
    with pytest.raises(InsufficientFunds, match="110007"):
        await client.create_order(SWAP, "limit", "buy", 100, PRICE["swap_rest"])


async def test_unknown_order(client: Any) -> None:
    with pytest.raises(OrderNotFound, match="110001"):
        await client.cancel_order("123", SWAP)
    with pytest.raises(OrderNotFound, match="170213"):
        await client.cancel_order("123", SPOT)


async def test_order_link_id_rules(client: Any) -> None:
    with pytest.raises(InvalidOrder, match="110072"):  # Bybit: unique among every order, closed ones too
        await client.create_order(SWAP, "limit", "buy", 0.001, PRICE["swap_rest"], {"clientOrderId": "gone-2"})
    with pytest.raises(BadRequest, match="10001"):
        await client.create_order(SWAP, "limit", "buy", 0.001, PRICE["swap_rest"], {"clientOrderId": "bad.id"})
    with pytest.raises(BadRequest, match="10001"):
        await client.create_order(SWAP, "limit", "buy", 0.001, PRICE["swap_rest"], {"clientOrderId": "x" * 37})


async def test_auth_errors(bybit: BybitServer, trader: Account) -> None:
    bad_sign = make_bybit_client(bybit, trader, secret="0" * 64)
    bad_key = make_bybit_client(bybit, None, apiKey="nobody", secret="x")
    stale = make_bybit_client(bybit, trader, options={"timeDifference": 60_000})
    try:
        with pytest.raises(AuthenticationError, match="10004"):
            await bad_sign.private_get_v5_account_wallet_balance({"accountType": "UNIFIED"})
        with pytest.raises(AuthenticationError, match="10003"):
            await bad_key.private_get_v5_account_wallet_balance({"accountType": "UNIFIED"})
        with pytest.raises(InvalidNonce, match="10002"):
            await stale.private_get_v5_account_wallet_balance({"accountType": "UNIFIED"})
    finally:
        for c in (bad_sign, bad_key, stale):
            await c.close()


# ----------------------------------------------------------------- raw answers against Bybit's documented shapes
# Field names and JSON types of Bybit's documented answers, as its API pages show them (recorded in ccxt's bybit.py
# comments): str for strings, int / bool for the few non-string fields.
DOCUMENTED: dict[str, dict[str, type]] = {
    "envelope": {"retCode": int, "retMsg": str, "result": dict, "retExtInfo": dict, "time": int},
    "time": {"timeSecond": str, "timeNano": str},
    "spot instrument": {
        "symbol": str,
        "baseCoin": str,
        "quoteCoin": str,
        "innovation": str,
        "status": str,
        "marginTrading": str,
        "lotSizeFilter": dict,
        "priceFilter": dict,
    },
    "linear instrument": {
        "symbol": str,
        "contractType": str,
        "status": str,
        "baseCoin": str,
        "quoteCoin": str,
        "launchTime": str,
        "deliveryTime": str,
        "deliveryFeeRate": str,
        "priceScale": str,
        "leverageFilter": dict,
        "priceFilter": dict,
        "lotSizeFilter": dict,
        "unifiedMarginTrade": bool,
        "fundingInterval": int,
        "settleCoin": str,
    },
    "spot ticker": {
        "symbol": str,
        "bid1Price": str,
        "bid1Size": str,
        "ask1Price": str,
        "ask1Size": str,
        "lastPrice": str,
        "prevPrice24h": str,
        "price24hPcnt": str,
        "highPrice24h": str,
        "lowPrice24h": str,
        "turnover24h": str,
        "volume24h": str,
        "usdIndexPrice": str,
    },
    "linear ticker": {
        "symbol": str,
        "lastPrice": str,
        "indexPrice": str,
        "markPrice": str,
        "prevPrice24h": str,
        "price24hPcnt": str,
        "highPrice24h": str,
        "lowPrice24h": str,
        "prevPrice1h": str,
        "openInterest": str,
        "openInterestValue": str,
        "turnover24h": str,
        "volume24h": str,
        "fundingRate": str,
        "nextFundingTime": str,
        "predictedDeliveryPrice": str,
        "basisRate": str,
        "deliveryFeeRate": str,
        "deliveryTime": str,
        "ask1Size": str,
        "bid1Price": str,
        "ask1Price": str,
        "bid1Size": str,
    },
    "orderbook": {"s": str, "b": list, "a": list, "ts": int, "u": int, "seq": int, "cts": int},
    "recent trade": {"execId": str, "symbol": str, "price": str, "size": str, "side": str, "time": str, "isBlockTrade": bool},
    "order": {
        "orderId": str,
        "orderLinkId": str,
        "blockTradeId": str,
        "symbol": str,
        "price": str,
        "qty": str,
        "side": str,
        "isLeverage": str,
        "positionIdx": int,
        "orderStatus": str,
        "cancelType": str,
        "rejectReason": str,
        "avgPrice": str,
        "leavesQty": str,
        "leavesValue": str,
        "cumExecQty": str,
        "cumExecValue": str,
        "cumExecFee": str,
        "timeInForce": str,
        "orderType": str,
        "stopOrderType": str,
        "orderIv": str,
        "triggerPrice": str,
        "takeProfit": str,
        "stopLoss": str,
        "tpTriggerBy": str,
        "slTriggerBy": str,
        "triggerDirection": int,
        "triggerBy": str,
        "lastPriceOnCreated": str,
        "reduceOnly": bool,
        "closeOnTrigger": bool,
        "smpType": str,
        "smpGroup": int,
        "smpOrderId": str,
        "tpLimitPrice": str,
        "slLimitPrice": str,
        "placeType": str,
        "createdTime": str,
        "updatedTime": str,
    },
    "execution": {
        "symbol": str,
        "orderId": str,
        "orderLinkId": str,
        "side": str,
        "orderPrice": str,
        "orderQty": str,
        "leavesQty": str,
        "orderType": str,
        "stopOrderType": str,
        "execFee": str,
        "execId": str,
        "execPrice": str,
        "execQty": str,
        "execType": str,
        "execValue": str,
        "execTime": str,
        "isMaker": bool,
        "feeRate": str,
        "tradeIv": str,
        "markIv": str,
        "markPrice": str,
        "indexPrice": str,
        "underlyingPrice": str,
        "blockTradeId": str,
        "closedSize": str,
        "seq": int,
    },
    "position": {
        "positionIdx": int,
        "riskId": int,
        "riskLimitValue": str,
        "symbol": str,
        "side": str,
        "size": str,
        "avgPrice": str,
        "positionValue": str,
        "tradeMode": int,
        "autoAddMargin": int,
        "positionStatus": str,
        "leverage": str,
        "markPrice": str,
        "liqPrice": str,
        "bustPrice": str,
        "positionIM": str,
        "positionMM": str,
        "positionBalance": str,
        "takeProfit": str,
        "stopLoss": str,
        "trailingStop": str,
        "unrealisedPnl": str,
        "cumRealisedPnl": str,
        "createdTime": str,
        "updatedTime": str,
        "seq": int,
        "isReduceOnly": bool,
    },
    "unified account": {
        "accountType": str,
        "accountIMRate": str,
        "accountMMRate": str,
        "totalEquity": str,
        "totalWalletBalance": str,
        "totalMarginBalance": str,
        "totalAvailableBalance": str,
        "totalPerpUPL": str,
        "totalInitialMargin": str,
        "totalMaintenanceMargin": str,
        "coin": list,
    },
    "coin": {
        "coin": str,
        "equity": str,
        "usdValue": str,
        "walletBalance": str,
        "locked": str,
        "borrowAmount": str,
        "accruedInterest": str,
        "totalOrderIM": str,
        "totalPositionIM": str,
        "totalPositionMM": str,
        "unrealisedPnl": str,
        "cumRealisedPnl": str,
        "bonus": str,
        "marginCollateral": bool,
        "collateralSwitch": bool,
    },
    "create": {"orderId": str, "orderLinkId": str},
}


def assert_shape(name: str, row: object) -> None:
    assert isinstance(row, dict), f"{name}: {row!r}"
    for key, kind in DOCUMENTED[name].items():
        assert key in row, f"{name}: no {key!r} in {sorted(row)}"
        assert isinstance(row[key], kind), f"{name}.{key}: {type(row[key]).__name__}, Bybit sends {kind.__name__}"


async def test_raw_shapes(bybit: BybitServer, trader: Account, client: Any) -> None:
    async def result(method: str, path: str, params: dict[str, Any], signed: bool = False) -> Any:
        status, body, headers = await raw(bybit, method, path, params, trader if signed else None)
        assert status == 200 and body["retCode"] == 0, body
        assert_shape("envelope", body)
        if signed:  # Bybit's per-UID limit headers on every private answer
            assert {"X-Bapi-Limit", "X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp"} <= set(headers)
        return body["result"]

    assert_shape("time", await result("GET", "/v5/market/time", {}))
    assert_shape("spot instrument", (await result("GET", "/v5/market/instruments-info", {"category": "spot"}))["list"][0])
    assert_shape("linear instrument", (await result("GET", "/v5/market/instruments-info", {"category": "linear"}))["list"][0])
    assert_shape("spot ticker", (await result("GET", "/v5/market/tickers", {"category": "spot", "symbol": "BTCUSDT"}))["list"][0])
    assert_shape("linear ticker", (await result("GET", "/v5/market/tickers", {"category": "linear", "symbol": "BTCUSDT"}))["list"][0])
    assert_shape("orderbook", await result("GET", "/v5/market/orderbook", {"category": "linear", "symbol": "BTCUSDT"}))
    assert_shape("recent trade", (await result("GET", "/v5/market/recent-trade", {"category": "spot", "symbol": "BTCUSDT"}))["list"][0])
    kline = (await result("GET", "/v5/market/kline", {"category": "spot", "symbol": "BTCUSDT", "interval": "1", "limit": 3}))["list"]
    assert len(kline) == 3 and all(len(r) == 7 and all(isinstance(x, str) for x in r) for r in kline)
    assert int(kline[0][0]) > int(kline[1][0])  # newest first, as Bybit lists them
    old = (await result("GET", "/v5/market/kline", {"category": "spot", "symbol": "BTCUSDT", "interval": "1", "end": 1_000}))["list"]
    assert old == []  # before the market's listing: no candle (it ran the price path back decades: HTTP 500)
    created = await result(
        "POST",
        "/v5/order/create",
        {
            "category": "linear",
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Limit",
            "qty": "0.001",
            "price": str(PRICE["swap_rest"]),
            "orderLinkId": "raw-1",
        },
        True,
    )
    assert_shape("create", created)
    for category in ("spot", "linear"):
        assert_shape("order", (await result("GET", "/v5/order/realtime", {"category": category, "symbol": "BTCUSDT"}, True))["list"][0])
        assert_shape("order", (await result("GET", "/v5/order/history", {"category": category, "symbol": "BTCUSDT"}, True))["list"][0])
        assert_shape("execution", (await result("GET", "/v5/execution/list", {"category": category, "symbol": "BTCUSDT"}, True))["list"][0])
    assert_shape("position", (await result("GET", "/v5/position/list", {"category": "linear", "symbol": "BTCUSDT"}, True))["list"][0])
    account = (await result("GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED"}, True))["list"][0]
    assert_shape("unified account", account)
    for coin in account["coin"]:
        assert_shape("coin", coin)
    assert (await result("POST", "/v5/order/cancel", {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "raw-1"}, True))[
        "orderLinkId"
    ] == "raw-1"


async def test_refusals_on_the_wire(bybit: BybitServer, trader: Account) -> None:
    status, body, _ = await raw(bybit, "GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED"}, trader, **{"X-BAPI-SIGN": "00"})
    assert (status, body["retCode"], body["result"]) == (200, 10004, {})  # Bybit: HTTP 200, the error in retCode
    status, body, _ = await raw(bybit, "GET", "/v5/market/tickers", {"category": "inverse"})
    assert body["retCode"] == 10001
    status, body, _ = await raw(bybit, "GET", "/v5/nowhere", {})
    assert (status, body["retCode"]) == (404, 10017)


async def test_rate_limits(bybit: BybitServer, trader: Account) -> None:
    """Per UID and endpoint, per rolling second: ``X-Bapi-Limit-Status`` counts down, then retCode 10006."""
    limiter = bybit.bybit_limiter
    limiter.limits = BybitLimits(scale=0.1)  # wallet-balance: 5 a second
    limiter.uid_hits.clear()
    try:
        seen = []
        for _ in range(6):
            _, body, headers = await raw(bybit, "GET", "/v5/account/wallet-balance", {"accountType": "UNIFIED"}, trader)
            seen.append((body["retCode"], headers.get("X-Bapi-Limit"), headers.get("X-Bapi-Limit-Status")))
        assert seen[:5] == [(0, "5", str(4 - i)) for i in range(5)]
        assert seen[5][:2] == (10006, "5")
    finally:
        limiter.limits = TESTING
        limiter.uid_hits.clear()


# ----------------------------------------------------------------- websockets
WS_CASES = [
    ("watchTicker", SPOT, {}),
    ("watchTicker", SWAP, {}),
    ("watchOrderBook", SPOT, {}),
    ("watchOrderBook", SWAP, {}),
    ("watchOHLCV", SPOT, {}),
    ("watchOHLCV", SWAP, {}),
    ("watchTrades", SPOT, {}),
    ("watchTrades", SWAP, {}),
    ("watchOrders", SPOT, {}),
    ("watchOrders", SWAP, {}),
    ("watchMyTrades", SPOT, {}),
    ("watchMyTrades", SWAP, {}),
    ("watchBalance", "USDT", {}),
    ("watchPositions", SWAP, {"marginMode": True}),  # as fetchPositions: ccxt's bybit leaves it None
]
# on a client whose default type is swap: the engine's watch_balance("swap") (watch_balance({"type": "swap"}))
WS_SWAP_CASES = [("watchBalance", "USDT", {})]


async def test_ccxt_ws_validators(bybit: BybitServer, trader: Account, client: Any) -> None:
    """ccxt.pro's own watch validators, all at once (each watches for 15 s), with orders trading meanwhile so that the
    private topics have something to say."""
    watcher = make_bybit_client(bybit, trader)
    swap_watcher = make_bybit_client(bybit, trader, options={"defaultType": "swap"})
    await asyncio.gather(watcher.load_markets(), swap_watcher.load_markets())

    async def trade() -> None:
        while True:
            await asyncio.sleep(0.5)
            await client.create_order(SWAP, "market", "buy", 0.001)
            await client.create_order(SPOT, "market", "buy", 0.001)

    async def run(method: str, symbol: str, skip: dict[str, bool], on: Any = watcher) -> str | None:
        args = [symbol] if symbol else []
        try:
            await asyncio.wait_for(validator(method, ws=True)(on, skip, *args), 40)
        except Exception as exc:
            return f"{method} {symbol}{' (swap)' if on is swap_watcher else ''}: {type(exc).__name__}: {str(exc)[:400]}"
        return None

    trading = asyncio.create_task(trade())
    try:
        runs = [run(*case) for case in WS_CASES] + [run(*case, on=swap_watcher) for case in WS_SWAP_CASES]
        failures = [f for f in await asyncio.gather(*runs) if f]
    finally:
        trading.cancel()
        await asyncio.gather(trading, return_exceptions=True)
        await asyncio.gather(watcher.close(), swap_watcher.close())
    assert not failures, "\n".join(failures)


async def ws_messages(ws: aiohttp.ClientWebSocketResponse, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        out.append(json.loads((await ws.receive(timeout=timeout)).data))
    return out


async def test_raw_public_ws(bybit: BybitServer) -> None:
    """Bybit's layout as any client sees it: subscribe acknowledgements, ping/pong, a book snapshot then deltas,
    a kline closed with ``confirm: true`` when its minute rolls over."""
    async with aiohttp.ClientSession() as http, http.ws_connect(bybit.ws_url + "/v5/public/linear") as ws:
        await ws.send_json({"op": "ping", "req_id": "p1"})
        (pong,) = await ws_messages(ws, 1)
        assert (pong["op"], pong["ret_msg"], pong["success"], pong["req_id"]) == ("ping", "pong", True, "p1")
        await ws.send_json({"op": "subscribe", "req_id": "s1", "args": ["nope.BTCUSDT"]})
        (refused,) = await ws_messages(ws, 1)
        assert refused["success"] is False
        await ws.send_json({"op": "subscribe", "req_id": "s2", "args": ["orderbook.50.BTCUSDT", "kline.1.BTCUSDT"]})
        (ack,) = await ws_messages(ws, 1)
        assert (ack["op"], ack["success"], ack["req_id"]) == ("subscribe", True, "s2")
        books: list[dict[str, Any]] = []
        klines: list[dict[str, Any]] = []
        while len(books) < 2 or not klines:
            for msg in await ws_messages(ws, 1):
                (books if msg["topic"].startswith("orderbook") else klines).append(msg)
        assert [b["type"] for b in books[:2]] == ["snapshot", "delta"]
        assert set(books[0]["data"]) >= {"s", "b", "a", "u", "seq"} and len(books[0]["data"]["b"]) == min(50, bybit.ex.book.levels)
        assert klines[0]["data"][0]["confirm"] is False
        start = klines[-1]["data"][0]["start"]
        bybit.ex.faults.clock_offset_ms = 60_000  # the exchange's minute rolls over
        try:
            closed = None
            for _ in range(10):
                msg = (await ws_messages(ws, 1))[0]
                if msg["topic"] == "kline.1.BTCUSDT" and msg["data"][0]["confirm"]:
                    closed = msg
                    break
        finally:
            bybit.ex.faults.clock_offset_ms = 0
        assert closed is not None and closed["data"][0]["start"] == start


async def test_raw_private_ws(bybit: BybitServer, trader: Account) -> None:
    """Auth by HMAC of ``GET/realtime<expires>``, the private pong, no topics before auth, and an order event."""
    async with aiohttp.ClientSession() as http, http.ws_connect(bybit.ws_url + "/v5/private") as ws:
        await ws.send_json({"op": "subscribe", "args": ["order"]})
        assert (await ws_messages(ws, 1))[0]["success"] is False  # not authorized yet
        expires = str(int(time.time() * 1000) + 10_000)
        await ws.send_json({"op": "auth", "args": [trader.api_key, expires, "00" * 32]})
        assert (await ws_messages(ws, 1))[0]["success"] is False
        sign = hmac.new(trader.api_secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
        await ws.send_json({"op": "auth", "args": [trader.api_key, expires, sign]})
        auth = (await ws_messages(ws, 1))[0]
        assert (auth["op"], auth["success"]) == ("auth", True)
        await ws.send_json({"op": "ping", "req_id": "7"})
        pong = (await ws_messages(ws, 1))[0]
        assert pong["op"] == "pong" and pong["req_id"] == "7" and pong["args"][0].isdigit()
        await ws.send_json({"op": "subscribe", "args": ["order", "wallet"]})
        assert (await ws_messages(ws, 1))[0]["success"] is True
        await raw(
            bybit,
            "POST",
            "/v5/order/create",
            {
                "category": "spot",
                "symbol": "BTCUSDT",
                "side": "Buy",
                "orderType": "Limit",
                "qty": "0.001",
                "price": f"{bybit.ex.mid(bybit.ex.market('spot', 'BTCUSDT')) * 0.67:.2f}",  # rests, inside the band
                "orderLinkId": "ws-1",
            },
            trader,
        )
        topics = {}
        while {"order", "wallet"} - set(topics):
            msg = (await ws_messages(ws, 1))[0]
            topics[msg["topic"]] = msg
        (order,) = topics["order"]["data"]
        assert (order["category"], order["orderLinkId"], order["orderStatus"]) == ("spot", "ws-1", "New")
        assert topics["wallet"]["data"][0]["accountType"] == "UNIFIED"
        await raw(bybit, "POST", "/v5/order/cancel", {"category": "spot", "symbol": "BTCUSDT", "orderLinkId": "ws-1"}, trader)


@pytest.mark.asyncio(loop_scope="function")
async def test_the_function_scoped_fixture(bybit_sandbox: BybitServer) -> None:
    """``conftest.bybit_sandbox``: a fresh Bybit-dialect sandbox per test, for tests that need one of their own."""
    acct = bybit_sandbox.ex.add_account({"USDT": Decimal(1000)})
    c = make_bybit_client(bybit_sandbox, acct)
    try:
        assert (await c.fetch_balance())["USDT"]["total"] == 1000
    finally:
        await c.close()


async def test_cancel_orders_batch(client: Any, bybit: BybitServer, trader: Account) -> None:
    """``/v5/order/cancel-batch`` (ccxt's cancelOrders): by ids and client ids; an unknown id gets its own retCode in
    retExtInfo while the others are cancelled."""
    a = await client.create_order(SWAP, "limit", "buy", 0.001, PRICE["swap_rest"], {"clientOrderId": "batch-a"})
    b = await client.create_order(SWAP, "limit", "buy", 0.001, PRICE["swap_rest"])
    cancelled = await client.cancel_orders([b["id"], "999"], SWAP, {"clientOrderIds": ["batch-a"]})
    assert [o["id"] for o in cancelled if o["id"]] == [a["id"], b["id"]]
    assert not {a["id"], b["id"]} & {o["id"] for o in await client.fetch_open_orders(SWAP)}
    c = await client.create_order(SWAP, "limit", "buy", 0.001, PRICE["swap_rest"], {"clientOrderId": "batch-c"})
    body = {"category": "linear", "request": [{"symbol": "BTCUSDT", "orderId": "999"}, {"symbol": "BTCUSDT", "orderLinkId": "batch-c"}]}
    _, answer, _ = await raw(bybit, "POST", "/v5/order/cancel-batch", body, trader)
    assert answer["retExtInfo"]["list"] == [{"code": 110001, "msg": "order not exists or too late to cancel"}, {"code": 0, "msg": "OK"}]
    assert answer["result"]["list"][1] == {"category": "linear", "symbol": "BTCUSDT", "orderId": c["id"], "orderLinkId": "batch-c"}


async def test_position_mode(bybit: BybitServer) -> None:
    """``/v5/position/switch-mode`` (ccxt's setPositionMode): hedge mode takes positionIdx 1/2; the same mode again is
    110025, a switch with a position open 110024."""
    acct = bybit.ex.add_account({"USDT": Decimal(10_000)})
    c = make_bybit_client(bybit, acct)
    try:
        await c.load_markets()
        await c.set_position_mode(True, SWAP)
        with pytest.raises(NoChange, match="110025"):
            await c.set_position_mode(True, SWAP)
        await c.create_order(SWAP, "market", "buy", 0.002, None, {"hedged": True})
        await c.create_order(SWAP, "market", "sell", 0.001, None, {"hedged": True})
        positions = {p["side"]: p for p in await c.fetch_positions([SWAP])}
        assert (positions["long"]["contracts"], positions["short"]["contracts"]) == (0.002, 0.001)
        assert (positions["long"]["info"]["positionIdx"], positions["short"]["info"]["positionIdx"]) == (1, 2)
        with pytest.raises(BadRequest, match="110024"):
            await c.set_position_mode(False, SWAP)
    finally:
        await c.close()


async def test_funding_history(client: Any, bybit: BybitServer, trader: Account) -> None:
    """ccxt's fetchFundingHistory reads ``/v5/execution/list?execType=Funding``: each settlement of the core, the
    amount paid as ``execFee`` (ccxt's ``amount``)."""
    async with aiohttp.ClientSession() as http, http.post(bybit.url + "/admin/funding", json={"symbol": "BTCUSDT", "rate": "0.001"}) as r:
        assert r.status == 200
    paid = trader.income[-1].amount
    (funding,) = [f for f in await client.fetch_funding_history(SWAP) if f["id"] == str(trader.income[-1].tran_id)]
    assert funding["symbol"] == SWAP and funding["code"] == "USDT"
    assert funding["amount"] == pytest.approx(float(-paid)) and paid < 0  # a long pays at a positive rate
