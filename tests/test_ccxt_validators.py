"""ccxt's own unified-API validators against the sandbox (issue 14).

ccxt ships, inside its package, the functions its maintainers run against every live exchange:
``ccxt/test/exchange/async/test_<method>.py`` (REST) and ``ccxt/pro/test/Exchange/test_watch_<method>.py``
(websocket), each calling the method and checking every field of the answer with
``ccxt/test/exchange/base/test_<structure>.py``. They run here unmodified, for spot and USDⓈ-M, over real HTTP
and websockets on loopback. ``docs/sandbox.md`` lists the outcome per method.

Where a validator also fails against real Binance (the failure is in ccxt's test or in ccxt's parsing of a
Binance answer, not in the sandbox), its case says so (``fails``, ``why``), and the test asserts
that it still fails in exactly that way: when ccxt fixes it, the test tells us to move the method back.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from planar_core.sandbox import SandboxServer
from planar_core.sandbox.accounts import Account

from .conftest import make_client

SPOT, SWAP = "BTC/USDT", "BTC/USDT:USDT"
NO_BOOK_TIME = dict.fromkeys(
    ("timestamp", "datetime"),
    "Binance's spot /api/v3/depth carries no time (futures' carries E and T), so "
    "ccxt's book (and the snapshot a watched book starts from) has none",
)
NO_OPTIONS = {"optionsNotLoadedByDefault": "ccxt's binance loads spot, linear and inverse markets only (options.fetchMarkets)"}
CONCAT = "can only concatenate str"
CONCAT_WHY = (
    "the transpiled validator adds a float balance to a str in a debug message before it sends an order (Python "
    "only, any exchange); the order structure is validated through fetchOrders/fetchOpenOrders/fetchClosedOrders"
)


@dataclass(frozen=True)
class Case:
    """One validator: the ccxt method, its arguments (``S`` the market's symbol, ``SS`` two symbols, ``Q`` the
    quote/settle currency) and the properties skipped, each with the reason real Binance shows the same."""

    method: str
    args: tuple[str, ...] = ()
    skip: dict[str, str] = field(default_factory=dict)
    fails: str = ""  # the error this validator raises against real Binance too (a ccxt-side failure)
    why: str = ""  # why it fails there as here


REST = {
    "spot": [
        Case("loadMarkets", skip=NO_OPTIONS),
        Case("fetchCurrencies"),
        Case("fetchStatus"),
        Case("fetchTicker", ("S",)),
        Case(
            "fetchTickers",
            ("S",),
            {
                "checkActiveSymbols": "ccxt counts the active markets of every type, a spot-only "
                "fetchTickers answer (Binance's /api/v3/ticker/24hr) has fewer"
            },
        ),
        Case("fetchLastPrices", ("S",)),
        Case("fetchOHLCV", ("S",)),
        Case("fetchTrades", ("S",)),
        Case("fetchOrderBook", ("S",), NO_BOOK_TIME),
        Case("fetchL2OrderBook", ("S",), NO_BOOK_TIME),
        Case("fetchBalance"),
        Case("fetchTradingFees"),
        Case("fetchTradingFee", ("S",)),
        Case("fetchOrders", ("S",)),
        Case("fetchOpenOrders", ("S",)),
        Case("fetchClosedOrders", ("S",)),
        Case("fetchMyTrades", ("S",)),
        Case("createOrder", ("S",), fails=CONCAT, why=CONCAT_WHY),
        Case("features"),
        Case("afterConstruct"),
        Case(
            "fetchMarkets",
            fails="fetchMarkets must return a dict",
            why="the validator asserts a dict, ccxt's binance.fetch_markets returns a list",
        ),
        Case("fetchOrderBooks", fails="fetchOrderBooks() is not supported", why="ccxt's binance has no fetchOrderBooks"),
    ],
    "swap": [
        Case("loadMarkets", skip=NO_OPTIONS),
        Case("fetchStatus"),
        Case("fetchTicker", ("S",)),
        Case("fetchTickers", ("S",), {"checkActiveSymbols": "as for spot: /fapi/v1/ticker/24hr answers futures only"}),
        Case("fetchLastPrices", ("S",)),
        Case("fetchOHLCV", ("S",)),
        Case("fetchTrades", ("S",)),
        Case("fetchOrderBook", ("S",)),
        Case("fetchL2OrderBook", ("S",)),
        Case("fetchBalance"),
        Case("fetchOrders", ("S",)),
        Case("fetchOpenOrders", ("S",)),
        Case("fetchClosedOrders", ("S",)),
        Case("fetchMyTrades", ("S",)),
        Case(
            "createOrder",
            ("S",),
            fails="'BTC'",
            why="the validator reads balance['BTC'] of a futures account; Binance lists an asset never used with "
            "updateTime 0, and ccxt drops those rows (ccxt#27997), so the key is missing there as here",
        ),
        Case("fetchPositions", ("S",)),
        Case("fetchFundingRateHistory", ("S",)),
        Case("fetchLeverageTiers", ("S",)),
        Case("fetchMarketLeverageTiers", ("S",)),
        Case("fetchMarginMode", ("S",)),
        Case("fetchLedger", ("Q",)),
        Case(
            "fetchMarginModes",
            ("S",),
            fails="response is expected to be an array",
            why="the validator asserts a list, ccxt's binance.fetch_margin_modes returns a dict by symbol",
        ),
    ],
}

WS = {
    "spot": [
        Case("watchOHLCV", ("S",)),
        Case("watchOHLCVForSymbols", ("S",)),
        Case("watchTicker", ("S",)),
        Case("watchTickers", ("S",)),
        Case("watchBidsAsks", ("S",)),
        Case("watchOrderBook", ("S",), NO_BOOK_TIME),
        Case("watchOrderBookForSymbols", ("SS",), NO_BOOK_TIME),
        Case("watchTrades", ("S",)),
        Case("watchTradesForSymbols", ("SS",)),
        Case("watchBalance", ("Q",)),
        Case("watchOrders", ("S",)),
        Case("watchMyTrades", ("S",)),
    ],
    "swap": [
        Case("watchOHLCV", ("S",)),
        Case("watchOHLCVForSymbols", ("S",)),
        Case("watchTicker", ("S",)),
        Case("watchTickers", ("S",)),
        Case("watchBidsAsks", ("S",)),
        Case("watchOrderBook", ("S",)),
        Case("watchOrderBookForSymbols", ("SS",)),
        Case("watchTrades", ("S",)),
        Case("watchTradesForSymbols", ("SS",)),
        Case(
            "watchBalance",
            ("Q",),
            fails="free is undefined",
            why="Binance's futures ACCOUNT_UPDATE carries wallet balances only (wb, cw), so ccxt leaves free and used None",
        ),
        Case("watchOrders", ("S",)),
        Case("watchMyTrades", ("S",)),
        Case(
            "watchPositions",
            ("S",),
            dict.fromkeys(
                (
                    "notional",
                    "leverage",
                    "markPrice",
                    "initialMargin",
                    "maintenanceMargin",
                    "collateral",
                    "marginRatio",
                    "percentage",
                    "initialMarginPercentage",
                    "maintenanceMarginPercentage",
                ),
                "ccxt parses ACCOUNT_UPDATE, which has none of these on Binance either",
            ),
        ),
        Case("watchPosition", ("S",), fails="watchPosition() is not supported", why="ccxt.pro's binance has watchPositions only"),
    ],
}


def validator(method: str, ws: bool) -> Callable[..., Awaitable[Any]]:
    snake = "".join("_" + c.lower() if c.isupper() else c for c in "_" + method.replace("OHLCV", "Ohlcv"))
    module = importlib.import_module(("ccxt.pro.test.Exchange.test" if ws else "ccxt.test.exchange.async.test") + snake)
    return getattr(module, "test" + snake)  # type: ignore[no-any-return]


def arguments(case: Case, kind: str) -> list[Any]:
    symbol = SPOT if kind == "spot" else SWAP
    table = {"S": symbol, "SS": [symbol, symbol.replace("BTC", "ETH")], "Q": "USDT"}
    return [table[a] for a in case.args]


def client_for(sandbox: SandboxServer, account: Account, kind: str) -> Any:
    options = {"defaultType": kind}
    if kind == "swap":  # futures ACCOUNT_UPDATE carries wallet balances only; ccxt merges them into a REST snapshot
        options["watchBalance"] = {"fetchBalanceSnapshot": True, "awaitBalanceSnapshot": True}  # type: ignore[assignment]
    return make_client(sandbox, account, options=options)


@pytest.mark.parametrize(
    ("kind", "case"),
    [(k, c) for k, cases in REST.items() for c in cases],
    ids=[f"{k}-{c.method}" for k, cases in REST.items() for c in cases],
)
async def test_rest_validator(sandbox: SandboxServer, account: Account, kind: str, case: Case) -> None:
    ex = client_for(sandbox, account, kind)
    try:
        await ex.load_markets()
        call = validator(case.method, ws=False)(ex, dict.fromkeys(case.skip, True), *arguments(case, kind))
        if case.fails:  # fails against real Binance too; when ccxt fixes it, this tells us to drop the mark
            with pytest.raises(Exception, match=re.escape(case.fails)):
                await call
        else:
            await call
    finally:
        await ex.close()


async def test_ws_validators(sandbox: SandboxServer, account: Account, kind: str) -> None:
    """Every websocket validator at once (each watches for up to 15 s), with orders trading meanwhile so that the
    private streams have something to say."""
    ex = client_for(sandbox, account, kind)
    trader = client_for(sandbox, account, kind)
    symbol = SPOT if kind == "spot" else SWAP
    try:
        await asyncio.gather(ex.load_markets(), trader.load_markets())

        async def trade() -> None:
            # futures only add to a long: ccxt parses a flat position's ACCOUNT_UPDATE (pa "0", ps "BOTH") with side
            # "both", which its position validator refuses, against real Binance as here
            side = "buy"
            while True:
                await asyncio.sleep(0.5)
                await trader.create_order(symbol, "market", side, 0.001)
                if kind == "spot":
                    side = "sell" if side == "buy" else "buy"

        async def run(case: Case) -> str | None:
            try:  # each validator watches for at most 15 s; one that has not returned after 60 s is reported as hung
                await asyncio.wait_for(validator(case.method, ws=True)(ex, dict.fromkeys(case.skip, True), *arguments(case, kind)), 60)
            except TimeoutError:
                return f"{case.method}: no answer within 60 s"
            except Exception as exc:
                if case.fails and case.fails in str(exc):
                    return None
                return f"{case.method}: {type(exc).__name__}: {str(exc)[:400]}"
            return f"{case.method}: passed, but is marked as failing against Binance too ({case.why})" if case.fails else None

        trading = asyncio.create_task(trade())
        try:
            failures = [f for f in await asyncio.gather(*(run(c) for c in WS[kind])) if f]
        finally:
            trading.cancel()
            await asyncio.gather(trading, return_exceptions=True)
        assert not failures, "\n".join(failures)
    finally:
        await asyncio.gather(ex.close(), trader.close())


test_ws_validators = pytest.mark.parametrize("kind", ["spot", "swap"])(test_ws_validators)
