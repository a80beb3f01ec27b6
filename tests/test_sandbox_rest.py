"""Unmodified ccxt against the sandbox over loopback: markets, balances, every order type, futures."""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from planar_core.sandbox.server import SandboxServer


async def test_load_markets_exposes_exchange_filters(client) -> None:
    btc = client.market("BTC/USDT")
    assert btc["spot"] and btc["precision"]["price"] == 0.01 and btc["precision"]["amount"] == 0.00001
    assert btc["limits"]["cost"]["min"] == 5
    perp = client.market("BTC/USDT:USDT")
    assert perp["swap"] and perp["linear"] and perp["settle"] == "USDT"


async def test_fetch_balance_matches_account(client, account) -> None:
    bal = await client.fetch_balance()
    assert bal["total"]["USDT"] == 100_000 and bal["total"]["BTC"] == 2


async def test_market_order_fills_at_book_with_fee(client, sandbox: SandboxServer) -> None:
    ask = (await client.fetch_order_book("BTC/USDT"))["asks"][0][0]
    o = await client.create_order("BTC/USDT", "market", "buy", 0.01)
    assert o["status"] == "closed" and o["filled"] == 0.01
    assert o["average"] == pytest.approx(ask, rel=1e-3)
    assert o["fee"]["currency"] == "BTC" and o["fee"]["cost"] == pytest.approx(0.01 * 0.001)
    bal = await client.fetch_balance()
    assert bal["total"]["BTC"] == pytest.approx(2 + 0.01 - 0.00001)


async def test_limit_gtc_rests_then_fills_when_path_crosses(client, sandbox: SandboxServer) -> None:
    bid = (await client.fetch_order_book("ETH/USDT"))["bids"][0][0]
    price = round(bid * 0.99, 2)
    o = await client.create_order("ETH/USDT", "limit", "buy", 0.1, price)
    assert o["status"] == "open"
    assert [x["id"] for x in await client.fetch_open_orders("ETH/USDT")] == [o["id"]]
    assert (await client.fetch_balance())["used"]["USDT"] == pytest.approx(0.1 * price)
    sandbox.ex.markets[("spot", "ETHUSDT")].shock = 0.95  # the path drops through the limit
    sandbox.ex.match_resting()
    fetched = await client.fetch_order(o["id"], "ETH/USDT")
    assert fetched["status"] == "closed" and fetched["average"] == price
    trades = await client.fetch_my_trades("ETH/USDT")
    assert trades[-1]["order"] == o["id"] and trades[-1]["takerOrMaker"] == "maker"


async def test_cancel_releases_locked_funds(client) -> None:
    bid = (await client.fetch_order_book("BTC/USDT"))["bids"][0][0]
    o = await client.create_order("BTC/USDT", "limit", "buy", 0.01, round(bid * 0.9, 2))
    cancelled = await client.cancel_order(o["id"], "BTC/USDT")
    assert cancelled["status"] == "canceled"
    bal = await client.fetch_balance()
    assert bal["used"]["USDT"] == 0 and bal["total"]["USDT"] == 100_000
    assert await client.fetch_open_orders("BTC/USDT") == []


async def test_ioc_and_fok(client) -> None:
    book = await client.fetch_order_book("BTC/USDT")
    far = round(book["bids"][0][0] * 0.9, 2)
    ioc = await client.create_order("BTC/USDT", "limit", "buy", 0.01, far, params={"timeInForce": "IOC"})
    assert ioc["status"] == "expired" and ioc["filled"] == 0
    fok = await client.create_order("BTC/USDT", "limit", "buy", 0.01, far, params={"timeInForce": "FOK"})
    assert fok["status"] == "expired"
    marketable = round(book["asks"][0][0] * 1.01, 2)
    fok_fill = await client.create_order("BTC/USDT", "limit", "buy", 0.01, marketable, params={"timeInForce": "FOK"})
    assert fok_fill["status"] == "closed" and fok_fill["filled"] == 0.01
    assert fok_fill["average"] <= marketable


async def test_limit_maker_rejects_when_it_would_take(client) -> None:
    ask = (await client.fetch_order_book("BTC/USDT"))["asks"][0][0]
    with pytest.raises(ccxt.OrderImmediatelyFillable):
        await client.create_order("BTC/USDT", "limit", "buy", 0.01, round(ask * 1.01, 2), params={"postOnly": True})
    ok = await client.create_order("BTC/USDT", "limit", "buy", 0.01, round(ask * 0.98, 2), params={"postOnly": True})
    assert ok["status"] == "open"


async def test_client_order_id_honoured_and_unique(client) -> None:
    bid = (await client.fetch_order_book("BTC/USDT"))["bids"][0][0]
    o = await client.create_order("BTC/USDT", "limit", "buy", 0.01, round(bid * 0.9, 2), params={"clientOrderId": "strat-1"})
    assert o["clientOrderId"] == "strat-1"
    found = await client.fetch_order(None, "BTC/USDT", params={"origClientOrderId": "strat-1"})
    assert found["id"] == o["id"]
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        await client.create_order("BTC/USDT", "limit", "buy", 0.01, round(bid * 0.9, 2), params={"clientOrderId": "strat-1"})


async def test_fetch_orders_and_cancel_all(client) -> None:
    bid = (await client.fetch_order_book("XRP/USDT"))["bids"][0][0]
    for i in range(3):
        await client.create_order("XRP/USDT", "limit", "buy", 100, round(bid * (0.9 - i * 0.01), 4))
    assert len(await client.fetch_open_orders("XRP/USDT")) == 3
    await client.cancel_all_orders("XRP/USDT")
    assert await client.fetch_open_orders("XRP/USDT") == []
    assert [o["status"] for o in await client.fetch_orders("XRP/USDT")] == ["canceled"] * 3


async def test_futures_round_trip_with_leverage_and_reduce_only(client, sandbox: SandboxServer, account) -> None:
    await client.set_leverage(5, "BTC/USDT:USDT")
    opened = await client.create_order("BTC/USDT:USDT", "market", "buy", 0.05)
    assert opened["status"] == "closed"
    pos = [p for p in await client.fetch_positions(["BTC/USDT:USDT"]) if p["contracts"]]
    assert len(pos) == 1 and pos[0]["side"] == "long" and pos[0]["contracts"] == 0.05
    assert pos[0]["leverage"] is None  # ccxt reads positionRisk v3, which has no leverage on Binance either
    v2 = [p for p in await client.fetch_positions(["BTC/USDT:USDT"], params={"useV2": True}) if p["contracts"]]
    assert v2[0]["leverage"] == 5
    with pytest.raises(ccxt.ExchangeError, match="-2022"):
        await client.create_order("BTC/USDT:USDT", "market", "sell", 0.1, params={"reduceOnly": True})
    sandbox.ex.markets[("linear", "BTCUSDT")].shock = 1.02
    closed = await client.create_order("BTC/USDT:USDT", "market", "sell", 0.05, params={"reduceOnly": True})
    assert closed["status"] == "closed" and closed["reduceOnly"] is True
    assert [p for p in await client.fetch_positions(["BTC/USDT:USDT"]) if p["contracts"]] == []
    trades = await client.fetch_my_trades("BTC/USDT:USDT")
    realized = sum(float(t["info"]["realizedPnl"]) for t in trades)
    fees = sum(t["fee"]["cost"] for t in trades)
    assert realized > 0
    wallet = (await client.fetch_balance({"type": "swap"}))["USDT"]["total"]
    assert wallet == pytest.approx(100_000 + realized - fees, abs=1e-6)
    assert Decimal(sandbox.ex.snapshot()["accounts"][account.api_key]["futures"]["wallet"]) == pytest.approx(Decimal(str(wallet)))


async def test_futures_margin_is_checked(client) -> None:
    await client.set_leverage(1, "BTC/USDT:USDT")
    with pytest.raises(ccxt.ExchangeError, match="-2019"):
        await client.create_order("BTC/USDT:USDT", "market", "buy", 5)  # ~350k notional on 100k at 1x
