"""Conditional orders and Binance's price filters on the sandbox (issue 14), driven by unmodified ccxt.

Spot stops and take-profits are ordinary orders that wait (``isWorking`` false) for the last price; USDⓈ-M
conditional orders live in the Algo Service (``/fapi/v1/algoOrder``, which ccxt 4.5 speaks) and, on their trigger,
place an ordinary order. Prices are moved the way the admin API moves them (a factor on the market's path).
"""

from __future__ import annotations

from decimal import Decimal

import ccxt
import pytest

from planar_core.sandbox import SandboxServer
from planar_core.sandbox.accounts import Account

from .conftest import make_client, wait_for
from .engine.test_order_call import bid_ask


def move(sandbox: SandboxServer, kind: str, symbol: str, factor: float) -> None:
    sandbox.ex.markets[(kind, symbol)].shock = factor


@pytest.fixture
async def futures(sandbox: SandboxServer, account: Account):  # type: ignore[no-untyped-def]
    ex = make_client(sandbox, account, options={"defaultType": "swap"})
    await ex.load_markets()
    yield ex
    await ex.close()


async def test_spot_stop_loss_limit_waits_locks_and_triggers(client, sandbox: SandboxServer, account: Account) -> None:
    bid, _ = bid_ask(sandbox, "BTCUSDT")
    free_before = account.spot["BTC"][0]
    with pytest.raises(ccxt.OrderImmediatelyFillable):  # a sell stop above the market would trigger at once
        await client.create_order("BTC/USDT", "limit", "sell", 0.01, round(bid * 1.01, 2), params={"stopLossPrice": round(bid * 1.02, 2)})
    order = await client.create_order(
        "BTC/USDT", "limit", "sell", 0.01, round(bid * 0.97, 2), params={"stopLossPrice": round(bid * 0.98, 2)}
    )
    info = (await client.fetch_order(order["id"], "BTC/USDT"))["info"]
    assert info["type"] == "STOP_LOSS_LIMIT" and info["isWorking"] is False and info["status"] == "NEW"
    assert account.spot["BTC"][0] == free_before - Decimal("0.01")  # the base is locked while it waits
    move(sandbox, "spot", "BTCUSDT", 0.975)

    async def filled() -> bool:
        return (await client.fetch_order(order["id"], "BTC/USDT"))["status"] == "closed"

    await wait_for(filled, timeout=5)
    info = (await client.fetch_order(order["id"], "BTC/USDT"))["info"]
    assert info["isWorking"] is True and info["workingTime"] > 0 and Decimal(info["executedQty"]) == Decimal("0.01")


async def test_spot_take_profit_market_and_trailing_stop(client, sandbox: SandboxServer) -> None:
    bid, _ = bid_ask(sandbox, "ETHUSDT")
    take = await client.create_order("ETH/USDT", "market", "buy", 0.1, params={"takeProfitPrice": round(bid * 0.99, 2)})
    trail = await client.create_order("ETH/USDT", "market", "sell", 0.1, params={"trailingPercent": 1, "stopLossOrTakeProfit": "stopLoss"})
    assert (await client.fetch_order(trail["id"], "ETH/USDT"))["info"]["trailingDelta"] == 100
    order = sandbox.ex.accounts[client.apiKey].orders[int(trail["id"])]
    await wait_for(lambda: order.trail_ref > 0, timeout=5)
    start = order.trail_ref
    move(sandbox, "spot", "ETHUSDT", 1.02)  # the trailing stop's peak rises with the price; nothing triggers
    await wait_for(lambda: order.trail_ref > start * Decimal("1.01"), timeout=5)
    assert (await client.fetch_order(trail["id"], "ETH/USDT"))["status"] == "open"
    move(sandbox, "spot", "ETHUSDT", 0.985)  # -3.4 % from the peak: the trailing stop sells; -1.5 %: the take-profit buys

    async def both_done() -> bool:
        orders = [await client.fetch_order(i, "ETH/USDT") for i in (take["id"], trail["id"])]
        return all(o["status"] == "closed" for o in orders)

    await wait_for(both_done, timeout=5)


async def test_futures_conditional_orders_go_through_the_algo_service(futures, sandbox: SandboxServer) -> None:
    await futures.create_order("BTC/USDT:USDT", "market", "buy", 0.1)
    bid, _ = bid_ask(sandbox, "BTCUSDT", "linear")
    with pytest.raises(ccxt.ExchangeError, match="-4120"):  # /fapi/v1/order no longer takes conditional types
        await futures.fapiPrivatePostOrder(
            {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET", "quantity": "0.1", "stopPrice": str(round(bid * 0.9, 1))}
        )
    with pytest.raises(ccxt.ExchangeError, match="-2021"):  # "Order would immediately trigger."
        await futures.create_order("BTC/USDT:USDT", "market", "sell", 0.1, params={"stopLossPrice": round(bid * 1.01, 1)})
    stop = await futures.create_order(
        "BTC/USDT:USDT", "market", "sell", 0.1, params={"stopLossPrice": round(bid * 0.98, 1), "reduceOnly": True}
    )
    take = await futures.create_order(
        "BTC/USDT:USDT",
        "market",
        "sell",
        0.1,
        params={"takeProfitPrice": round(bid * 1.05, 1), "closePosition": True, "workingType": "MARK_PRICE"},
    )
    opened = await futures.fetch_open_orders("BTC/USDT:USDT", params={"trigger": True})
    assert {o["id"] for o in opened} == {stop["id"], take["id"]} and all(o["info"]["algoStatus"] == "NEW" for o in opened)
    move(sandbox, "linear", "BTCUSDT", 0.975)

    async def flat() -> bool:
        return not any(p["contracts"] for p in await futures.fetch_positions(["BTC/USDT:USDT"]))

    await wait_for(flat, timeout=5)
    done = await futures.fetch_order(stop["id"], "BTC/USDT:USDT", params={"trigger": True})
    assert done["info"]["algoStatus"] == "FINISHED" and done["info"]["actualOrderId"]
    actual = await futures.fetch_order(done["info"]["actualOrderId"], "BTC/USDT:USDT")
    assert actual["status"] == "closed" and actual["clientOrderId"] == stop["clientOrderId"]
    move(sandbox, "linear", "BTCUSDT", 1.06)  # the take-profit triggers with no position left to close: rejected, reason given
    await wait_for(lambda: sandbox.ex.accounts[futures.apiKey].algo_orders[int(take["id"])].status != "NEW", timeout=5)
    rejected = await futures.fetch_order(take["id"], "BTC/USDT:USDT", params={"trigger": True})
    assert rejected["info"]["algoStatus"] == "REJECTED"


async def test_futures_trailing_stop_and_cancel(futures, sandbox: SandboxServer) -> None:
    await futures.create_order("ETH/USDT:USDT", "market", "buy", 1.0)
    trail = await futures.create_order("ETH/USDT:USDT", "market", "sell", 1.0, params={"trailingPercent": 2, "reduceOnly": True})
    bid, _ = bid_ask(sandbox, "ETHUSDT", "linear")
    spare = await futures.create_order("ETH/USDT:USDT", "market", "buy", 1.0, params={"stopLossPrice": round(bid * 1.04, 2)})
    await futures.cancel_order(spare["id"], "ETH/USDT:USDT", params={"trigger": True})
    assert (await futures.fetch_order(spare["id"], "ETH/USDT:USDT", params={"trigger": True}))["status"] == "canceled"
    algo = sandbox.ex.accounts[futures.apiKey].algo_orders[int(trail["id"])]
    await wait_for(lambda: algo.trail_ref > 0, timeout=5)  # tracking from the placement price
    start = algo.trail_ref
    move(sandbox, "linear", "ETHUSDT", 1.03)
    await wait_for(lambda: algo.trail_ref > start * Decimal("1.02"), timeout=5)  # the peak follows the price up
    move(sandbox, "linear", "ETHUSDT", 1.0)  # -2.9 % from the peak
    await wait_for(lambda: algo.status == "FINISHED", timeout=5)


async def test_price_filters_as_binance(client, futures, sandbox: SandboxServer) -> None:
    fbid, _ = bid_ask(sandbox, "BTCUSDT", "linear")
    with pytest.raises(ccxt.ExchangeError, match="-4024"):  # PERCENT_PRICE: a buy at half the mark
        await futures.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, round(fbid * 0.5, 1))
    with pytest.raises(ccxt.ExchangeError, match="-4016"):
        await futures.create_order("BTC/USDT:USDT", "limit", "sell", 0.01, round(fbid * 1.1, 1))
    assert await futures.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, round(fbid * 0.96, 1))  # inside the band
    with pytest.raises(ccxt.BadRequest, match="-4005"):  # MARKET_LOT_SIZE below LOT_SIZE for market orders
        await futures.create_order("BTC/USDT:USDT", "market", "buy", 200)
    sbid, _ = bid_ask(sandbox, "BTCUSDT")
    with pytest.raises(ccxt.ExchangeError, match="PERCENT_PRICE_BY_SIDE"):
        await client.create_order("BTC/USDT", "limit", "buy", 0.01, round(sbid * 0.1, 2))
    info = {r["symbol"]: r for r in (await client.publicGetExchangeInfo())["symbols"]}["BTCUSDT"]
    names = {f["filterType"] for f in info["filters"]}
    assert {"PERCENT_PRICE_BY_SIDE", "MARKET_LOT_SIZE", "MAX_NUM_ALGO_ORDERS", "TRAILING_DELTA", "ICEBERG_PARTS"} <= names
    for i in range(5):  # MAX_NUM_ALGO_ORDERS: 5 waiting stops per symbol
        await client.create_order(
            "BTC/USDT", "limit", "sell", 0.001, round(sbid * 0.9, 2), params={"stopLossPrice": round(sbid * (0.95 - i / 100), 2)}
        )
    with pytest.raises(ccxt.ExchangeError, match="MAX_NUM_ALGO_ORDERS"):
        await client.create_order("BTC/USDT", "limit", "sell", 0.001, round(sbid * 0.9, 2), params={"stopLossPrice": round(sbid * 0.9, 2)})
    with pytest.raises(ccxt.ExchangeError, match="ICEBERG_PARTS"):  # 0.1 in parts of 0.001: more than 10 parts
        await client.create_order("BTC/USDT", "limit", "buy", 0.1, round(sbid * 0.9, 2), params={"icebergQty": 0.001})
    iceberg = await client.create_order("BTC/USDT", "limit", "buy", 0.1, round(sbid * 0.9, 2), params={"icebergQty": 0.02})
    assert (await client.fetch_order(iceberg["id"], "BTC/USDT"))["info"]["icebergQty"] == "0.02000000"


async def test_spot_oco_one_leg_fills_the_other_expires(client, sandbox: SandboxServer, account: Account) -> None:
    """A SELL OCO locks its quantity once; the limit leg fills on a rise and the stop leg expires with it."""
    bid, ask = bid_ask(sandbox, "BTCUSDT")
    free = account.spot["BTC"][0]
    placed = await client.privatePostOrderListOco(
        {
            "symbol": "BTCUSDT",
            "side": "SELL",
            "quantity": "0.01",
            "listClientOrderId": "oco-1",
            "aboveType": "LIMIT_MAKER",
            "abovePrice": f"{ask * 1.02:.2f}",
            "belowType": "STOP_LOSS_LIMIT",
            "belowStopPrice": f"{bid * 0.98:.2f}",
            "belowPrice": f"{bid * 0.97:.2f}",
            "belowTimeInForce": "GTC",
        }
    )
    assert placed["listOrderStatus"] == "EXECUTING" and len(placed["orders"]) == 2
    assert account.spot["BTC"][0] == free - Decimal("0.01") and account.spot["BTC"][1] == Decimal("0.01")  # one lock for both legs
    move(sandbox, "spot", "BTCUSDT", 1.03)

    async def done() -> bool:
        return (await client.privateGetOrderList({"orderListId": placed["orderListId"]}))["listOrderStatus"] == "ALL_DONE"

    await wait_for(done, timeout=5)
    statuses = {
        o["type"]: o["status"] for o in await client.privateGetAllOrders({"symbol": "BTCUSDT"}) if o["orderListId"] == placed["orderListId"]
    }
    assert statuses == {"LIMIT_MAKER": "FILLED", "STOP_LOSS_LIMIT": "EXPIRED"}
    assert account.spot["BTC"][1] == 0 and account.spot["BTC"][0] == free - Decimal("0.01")


async def test_spot_oco_stop_leg_triggers_and_cancel_takes_the_list(client, sandbox: SandboxServer, account: Account) -> None:
    """A BUY OCO through the older /api/v3/order/oco: the stop leg above triggers and the limit leg below expires;
    cancelling one leg of another list cancels both."""
    bid, ask = bid_ask(sandbox, "ETHUSDT")
    placed = await client.privatePostOrderOco(
        {
            "symbol": "ETHUSDT",
            "side": "BUY",
            "quantity": "0.1",
            "price": f"{bid * 0.98:.2f}",
            "stopPrice": f"{ask * 1.02:.2f}",
            "stopLimitPrice": f"{ask * 1.04:.2f}",
            "stopLimitTimeInForce": "GTC",
        }
    )
    move(sandbox, "spot", "ETHUSDT", 1.025)

    async def stop_filled() -> bool:
        rows = {
            o["type"]: o["status"]
            for o in await client.privateGetAllOrders({"symbol": "ETHUSDT"})
            if o["orderListId"] == placed["orderListId"]
        }
        return rows == {"STOP_LOSS_LIMIT": "FILLED", "LIMIT_MAKER": "EXPIRED"}

    await wait_for(stop_filled, timeout=5)
    assert account.spot["USDT"][1] == 0  # no lock left behind
    bid, ask = bid_ask(sandbox, "ETHUSDT")
    second = await client.privatePostOrderOco(
        {"symbol": "ETHUSDT", "side": "BUY", "quantity": "0.1", "price": f"{bid * 0.98:.2f}", "stopPrice": f"{ask * 1.02:.2f}"}
    )
    await client.cancel_order(str(second["orders"][0]["orderId"]), "ETH/USDT")
    listed = await client.privateGetOrderList({"orderListId": second["orderListId"]})
    assert listed["listOrderStatus"] == "ALL_DONE" and await client.fetch_open_orders("ETH/USDT") == []
