"""Binance behaviour that clients other than ours rely on (issue 14, first part): closing klines, ticker shapes,
and the endpoints real programs call at start-up. Driven by unmodified ccxt and a raw websocket."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import aiohttp
import ccxt
import pytest

from planar_core.sandbox import Faults

from .conftest import make_client
from .engine.test_order_call import bid_ask


async def test_klines_close_with_x_true(sandbox) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{sandbox.ws_url}/stream/ws/1") as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1s"], "id": 1})
        closed = None
        async with asyncio.timeout(10):
            while closed is None:
                msg = json.loads((await ws.receive()).data)
                k = msg.get("k") if isinstance(msg, dict) else None
                if k and k["x"]:
                    closed = k
    assert closed["T"] == closed["t"] + 999 and closed["i"] == "1s"


async def test_book_and_price_tickers_have_binance_shapes(client, sandbox, account) -> None:
    bid_asks = await client.fetch_bids_asks(["BTC/USDT", "ETH/USDT"])
    assert set(bid_asks) == {"BTC/USDT", "ETH/USDT"} and bid_asks["BTC/USDT"]["bid"] > 0  # spot: no "time", filed as spot
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sandbox.url}/api/v3/ticker/price", params={"symbol": "BTCUSDT"}) as r:
            assert "time" not in await r.json()
        async with http.get(f"{sandbox.url}/fapi/v1/ticker/bookTicker", params={"symbol": "BTCUSDT"}) as r:
            assert "time" in await r.json()
        async with http.get(f"{sandbox.url}/fapi/v1/ticker/24hr", params={"symbol": "BTCUSDT"}) as r:
            assert "bidPrice" not in await r.json()
    futures = make_client(sandbox, account, options={"defaultType": "swap"})
    try:
        await futures.load_markets()
        tickers = await futures.fetch_tickers(["BTC/USDT:USDT"])
        assert tickers["BTC/USDT:USDT"]["last"] > 0  # filed under the futures symbol
    finally:
        await futures.close()


async def test_start_up_endpoints_of_real_programs(client, sandbox, account) -> None:
    assert (await client.fetch_status())["status"] == "ok"
    fees = await client.fetch_trading_fees()
    assert fees["BTC/USDT"]["maker"] == pytest.approx(0.001)
    trades = await client.fetch_trades("BTC/USDT", limit=5)  # aggTrades
    assert len(trades) == 5 and all(t["price"] > 0 for t in trades)
    async with aiohttp.ClientSession() as http:
        for path in ("/api/v3/aggTrades", "/fapi/v1/aggTrades"):
            async with http.get(f"{sandbox.url}{path}", params={"symbol": "BTCUSDT", "limit": 3}) as r:
                rows = await r.json()
                assert r.status == 200 and len(rows) == 3 and {"a", "p", "q", "T", "m"} <= set(rows[0])


async def test_futures_start_up_endpoints(sandbox, account) -> None:
    ex = make_client(sandbox, account, options={"defaultType": "swap"})
    try:
        await ex.load_markets()
        assert (await ex.fetch_position_mode("BTC/USDT:USDT"))["hedged"] is False
        with pytest.raises(ccxt.ExchangeError, match="-4059"):
            await ex.set_position_mode(False)  # already one-way: Binance's "No need to change position side."
        await ex.set_position_mode(True)  # hedge mode (dual-side positions)
        assert (await ex.fetch_position_mode("BTC/USDT:USDT"))["hedged"] is True
        await ex.set_position_mode(False)
        rates = await ex.fetch_funding_rate_history("BTC/USDT:USDT", limit=3)
        assert len(rates) == 3 and all(r["fundingRate"] == pytest.approx(0.0001) for r in rates)
        assert rates[1]["timestamp"] - rates[0]["timestamp"] == 8 * 3_600_000
        mark = await ex.fetch_mark_ohlcv("BTC/USDT:USDT", "1m", limit=5)
        assert len(mark) == 5 and mark[-1][4] > 0
        bid, _ = bid_ask(sandbox, "BTCUSDT", "linear")
        resting = await ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, round(bid * 0.97, 1))  # PERCENT_PRICE: within 5 % of mark
        assert (await ex.fetch_open_order(resting["id"], "BTC/USDT:USDT"))["status"] == "open"
        await ex.cancel_order(resting["id"], "BTC/USDT:USDT")
        with pytest.raises(ccxt.OrderNotFound):
            await ex.fetch_open_order(resting["id"], "BTC/USDT:USDT")  # Binance: -2013 once it is no longer open
        await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
        await ex.create_order("BTC/USDT:USDT", "market", "sell", 0.01)
        income = await ex.fapiPrivateGetIncome({"symbol": "BTCUSDT"})
        kinds = {row["incomeType"] for row in income}
        assert kinds == {"COMMISSION", "REALIZED_PNL"}
        config = await ex.fapiPrivateGetSymbolConfig({"symbol": "BTCUSDT"})
        assert config[0]["symbol"] == "BTCUSDT" and config[0]["marginType"] in ("CROSSED", "ISOLATED")
        assert (await ex.fapiPrivateGetAccountConfig())["dualSidePosition"] is False
        assert (await ex.fapiPrivateGetMultiAssetsMargin())["multiAssetsMargin"] is False
    finally:
        await ex.close()


async def test_strict_client_ids_are_an_opt_in_fault(client, sandbox) -> None:
    await client.create_order("BTC/USDT", "market", "buy", 0.001, params={"clientOrderId": "same-1"})
    await client.create_order("BTC/USDT", "market", "buy", 0.001, params={"clientOrderId": "same-1"})  # Binance: allowed
    sandbox.ex.faults = Faults(strict_client_ids=True)
    with pytest.raises(ccxt.InvalidOrder):
        await client.create_order("BTC/USDT", "market", "buy", 0.001, params={"clientOrderId": "same-1"})


def _decimals(value: str) -> int:
    return len(value.partition(".")[2])


async def test_numbers_are_padded_to_fixed_decimals(client, sandbox) -> None:
    """Binance prints every spot price and quantity with 8 decimals and every futures price and quantity with the
    symbol's pricePrecision/quantityPrecision, so a bid and an ask always have the same number of digits."""
    await client.create_order("BTC/USDT", "market", "buy", 0.001)
    async with aiohttp.ClientSession() as http:

        async def get(path: str, **params: str) -> object:
            async with http.get(f"{sandbox.url}{path}", params=params) as r:
                assert r.status == 200
                return await r.json()

        spot_book = await get("/api/v3/ticker/bookTicker", symbol="BTCUSDT")
        futures_book = await get("/fapi/v1/ticker/bookTicker", symbol="BTCUSDT")
        spot_depth = await get("/api/v3/depth", symbol="ETHBTC", limit="5")
        futures_depth = await get("/fapi/v1/depth", symbol="XRPUSDT", limit="5")
        kline = (await get("/api/v3/klines", symbol="BTCUSDT", interval="1m", limit="1"))[0]  # type: ignore[index]
        futures_info = await get("/fapi/v1/exchangeInfo")
    assert {_decimals(spot_book[k]) for k in ("bidPrice", "bidQty", "askPrice", "askQty")} == {8}  # type: ignore[index]
    spec = {r["symbol"]: r for r in futures_info["symbols"]}["BTCUSDT"]  # type: ignore[index]
    assert {_decimals(futures_book[k]) for k in ("bidPrice", "askPrice")} == {spec["pricePrecision"]}  # type: ignore[index]
    assert {_decimals(futures_book[k]) for k in ("bidQty", "askQty")} == {spec["quantityPrecision"]}  # type: ignore[index]
    assert {_decimals(v) for level in spot_depth["bids"] + spot_depth["asks"] for v in level} == {8}  # type: ignore[index,operator]
    assert {_decimals(level[0]) for level in futures_depth["bids"] + futures_depth["asks"]} == {4}  # type: ignore[index,operator]
    assert {_decimals(v) for v in kline[1:5]} == {8}
    trade = (await client.fetch_my_trades("BTC/USDT"))[-1]["info"]
    assert {_decimals(trade[k]) for k in ("price", "qty", "quoteQty", "commission")} == {8}


async def test_futures_account_shapes_and_totals(sandbox) -> None:
    """positionRisk v2 carries leverage and margin type, v3 marginAsset and margins (and only symbols in use); the
    account's totals are the sums of its own positions; the liquidation price is where the margin balance meets the
    maintenance margin (between 0 and the entry of a long)."""
    account = sandbox.ex.add_account({"USDT": Decimal(5000)})
    ex = make_client(sandbox, account, options={"defaultType": "swap"})
    try:
        await ex.load_markets()
        await ex.set_leverage(50, "BTC/USDT:USDT")
        await ex.create_order("BTC/USDT:USDT", "market", "buy", 1.0)
        await ex.create_order("ETH/USDT:USDT", "market", "sell", 10.0)
        v2 = await ex.fapiPrivateV2GetPositionRisk({"symbol": "BTCUSDT"})
        v3 = await ex.fapiPrivateV3GetPositionRisk()
        assert "leverage" in v2[0] and "marginAsset" not in v2[0] and v2[0]["leverage"] == "50"
        assert {r["symbol"] for r in v3} == {"BTCUSDT", "ETHUSDT"} and all("leverage" not in r and r["marginAsset"] == "USDT" for r in v3)
        account_v2 = await ex.fapiPrivateV2GetAccount()
        account_v3 = await ex.fapiPrivateV3GetAccount()
        for acct in (account_v2, account_v3):
            maint = sum(Decimal(p["maintMargin"]) for p in acct["positions"])
            assert maint > 0 and abs(Decimal(acct["totalMaintMargin"]) - maint) <= Decimal("2e-8")  # each printed to 8 decimals
            assert acct["assets"][0]["maintMargin"] == acct["totalMaintMargin"]
        btc = next(r for r in v3 if r["symbol"] == "BTCUSDT")
        assert 0 < Decimal(btc["liquidationPrice"]) < Decimal(btc["entryPrice"])
        eth = next(r for r in v3 if r["symbol"] == "ETHUSDT")
        assert Decimal(eth["liquidationPrice"]) > Decimal(eth["entryPrice"])  # a short is liquidated above its entry
        info = await ex.fapiPublicGetExchangeInfo()
        assert all("settlePlan" in r for r in info["symbols"]) and all("autoAssetExchange" in a for a in info["assets"])
        spot_info = await ex.publicGetExchangeInfo()
        assert {r["defaultSelfTradePreventionMode"] for r in spot_info["symbols"]} == {"EXPIRE_MAKER"}
    finally:
        await ex.close()


async def test_klines_before_the_listing_start_at_the_listing(client, sandbox) -> None:
    """``startTime=0`` (ccxt ``fetch_ohlcv(since=0)``, a common way to ask for a symbol's whole history) answered
    HTTP 500: the looped price path, run back decades, gave prices of 1e-200 no tick could quantize (an outside
    trial). Binance serves no candle before a symbol's listing: the answer starts there; an ``endTime`` before the
    listing gets no candle."""
    async with aiohttp.ClientSession() as http:
        for path in ("/api/v3/klines", "/fapi/v1/klines"):
            for start in (0, 1_000_000_000_000):
                async with http.get(
                    f"{sandbox.url}{path}", params={"symbol": "BTCUSDT", "interval": "1m", "startTime": start, "limit": 3}
                ) as r:
                    assert r.status == 200, await r.text()
                    rows = await r.json()
                assert len(rows) == 3 and all(float(row[c]) > 0 for row in rows for c in (1, 2, 3, 4))
                assert [row[0] for row in rows] == [rows[0][0] + i * 60_000 for i in range(3)]
            async with http.get(f"{sandbox.url}{path}", params={"symbol": "BTCUSDT", "interval": "1m", "endTime": 1_000}) as r:
                assert r.status == 200 and await r.json() == []
        async with http.get(f"{sandbox.url}/fapi/v1/fundingRate", params={"symbol": "BTCUSDT", "startTime": 0, "limit": 3}) as r:
            rates = await r.json()  # from the listing too (it answered from 1970, with a mark price of 0.0)
        assert len(rates) == 3 and all(float(x["markPrice"]) > 0 for x in rates) and rates[0]["fundingTime"] > 1_000_000_000_000
    first = await client.fetch_ohlcv("BTC/USDT", "1h", since=0, limit=2)
    assert len(first) == 2 and first[0][1] > 0
