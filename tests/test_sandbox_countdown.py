"""The sandbox's USDⓈ-M dead-man's switch, ``POST /fapi/v1/countdownCancelAll`` (issue 25), reached by unmodified
ccxt through its implicit API (``fapiPrivatePostCountdownCancelAll``); the exchange's state read from the admin
snapshot."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import ccxt
import pytest

from planar_core.sandbox import SandboxServer

from .conftest import make_client, wait_for


async def _swap(sandbox: SandboxServer) -> tuple[object, object]:
    acct = sandbox.ex.add_account({"USDT": Decimal(100_000)})
    ex = make_client(sandbox, acct, options={"defaultType": "swap"})
    await ex.load_markets()
    return acct, ex


def _open(sandbox: SandboxServer, key: str) -> dict[str, str]:
    """Client id -> symbol of the account's open orders, as the exchange holds them."""
    return {o["client_order_id"]: o["symbol"] for o in sandbox.ex.snapshot()["accounts"][key]["open_orders"]}


async def _rest(ex: object, symbol: str, cid: str) -> None:
    bid = (await ex.fetch_order_book(symbol))["bids"][0][0]  # type: ignore[attr-defined]
    await ex.create_order(symbol, "limit", "buy", 0.1 if symbol.startswith("BTC") else 1, round(bid * 0.97, 1), {"clientOrderId": cid})  # type: ignore[attr-defined]


async def test_countdown_cancels_the_symbols_open_orders_when_it_runs_out(sandbox: SandboxServer) -> None:
    acct, ex = await _swap(sandbox)
    try:
        await _rest(ex, "BTC/USDT:USDT", "btc-1")
        await _rest(ex, "BTC/USDT:USDT", "btc-2")
        await _rest(ex, "ETH/USDT:USDT", "eth-1")
        answer = await ex.fapiPrivatePostCountdownCancelAll({"symbol": "BTCUSDT", "countdownTime": 1500})  # type: ignore[attr-defined]
        assert answer == {"symbol": "BTCUSDT", "countdownTime": "1500"}  # Binance's shape: the time as a string
        assert sandbox.ex.snapshot()["accounts"][acct.api_key]["countdowns"].keys() == {"BTCUSDT"}
        await wait_for(lambda: _open(sandbox, acct.api_key) == {"eth-1": "ETHUSDT"}, timeout=15)
        orders = {o["clientOrderId"]: o["status"] for o in await ex.fetch_orders("BTC/USDT:USDT")}  # type: ignore[attr-defined]
        assert orders == {"btc-1": "canceled", "btc-2": "canceled"}
        assert sandbox.ex.snapshot()["accounts"][acct.api_key]["countdowns"] == {}  # a lapse fires once
    finally:
        await ex.close()  # type: ignore[attr-defined]


async def test_heartbeats_keep_the_orders_and_zero_disarms(sandbox: SandboxServer) -> None:
    acct, ex = await _swap(sandbox)
    try:
        await _rest(ex, "BTC/USDT:USDT", "kept")
        loop = asyncio.get_running_loop()
        end = loop.time() + 8.0  # several countdowns of 2 s, re-armed every 0.25 s
        beats = 0
        while loop.time() < end:
            await ex.fapiPrivatePostCountdownCancelAll({"symbol": "BTCUSDT", "countdownTime": 2000})  # type: ignore[attr-defined]
            beats += 1
            assert "kept" in _open(sandbox, acct.api_key)
            await asyncio.sleep(0.25)
        assert beats > 8
        await ex.fapiPrivatePostCountdownCancelAll({"symbol": "BTCUSDT", "countdownTime": 0})  # type: ignore[attr-defined]
        assert sandbox.ex.snapshot()["accounts"][acct.api_key]["countdowns"] == {}
        deadline = sandbox.ex.now_ms() + 2500  # past the disarmed countdown, on the exchange's clock
        await wait_for(lambda: sandbox.ex.now_ms() > deadline, timeout=10)
        assert _open(sandbox, acct.api_key) == {"kept": "BTCUSDT"}
    finally:
        await ex.close()  # type: ignore[attr-defined]


async def test_countdown_leaves_waiting_algo_orders_and_other_accounts(sandbox: SandboxServer) -> None:
    """What a lapse cancels is what allOpenOrders cancels: the book's open orders of this account and symbol; a
    conditional order waiting in the Algo Service stays (docs/sandbox.md: Binance's documentation does not say)."""
    acct, ex = await _swap(sandbox)
    other, ex2 = await _swap(sandbox)
    try:
        await ex.create_order("BTC/USDT:USDT", "market", "buy", 0.1)  # type: ignore[attr-defined]
        bid = (await ex.fetch_order_book("BTC/USDT:USDT"))["bids"][0][0]  # type: ignore[attr-defined]
        await ex.create_order(  # type: ignore[attr-defined]
            "BTC/USDT:USDT",
            "market",
            "sell",
            0.1,
            params={"stopLossPrice": round(bid * 0.9, 1), "reduceOnly": True, "clientOrderId": "stop"},
        )
        await _rest(ex, "BTC/USDT:USDT", "mine")
        await _rest(ex2, "BTC/USDT:USDT", "theirs")
        await ex.fapiPrivatePostCountdownCancelAll({"symbol": "BTCUSDT", "countdownTime": 500})  # type: ignore[attr-defined]
        await wait_for(lambda: "mine" not in _open(sandbox, acct.api_key), timeout=15)
        algos = {a["client_algo_id"]: a["status"] for a in sandbox.ex.snapshot()["accounts"][acct.api_key]["algo_orders"]}
        assert algos == {"stop": "NEW"}
        assert _open(sandbox, other.api_key) == {"theirs": "BTCUSDT"}
    finally:
        await ex.close()  # type: ignore[attr-defined]
        await ex2.close()  # type: ignore[attr-defined]


async def test_countdown_refuses_what_binance_refuses(sandbox: SandboxServer) -> None:
    _acct, ex = await _swap(sandbox)
    try:
        with pytest.raises(ccxt.BadSymbol):
            await ex.fapiPrivatePostCountdownCancelAll({"symbol": "NOPEUSDT", "countdownTime": 1000})  # type: ignore[attr-defined]
        with pytest.raises(ccxt.BadRequest, match="-1102"):
            await ex.fapiPrivatePostCountdownCancelAll({"symbol": "BTCUSDT"})  # type: ignore[attr-defined]
        with pytest.raises(ccxt.BadRequest, match="-1130"):
            await ex.fapiPrivatePostCountdownCancelAll({"symbol": "BTCUSDT", "countdownTime": -5})  # type: ignore[attr-defined]
    finally:
        await ex.close()  # type: ignore[attr-defined]
