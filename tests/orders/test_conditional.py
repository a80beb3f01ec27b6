"""Conditional orders through ``call()`` end to end on the sandbox: placed, triggered by a price move (admin
API), filled, and seen by the engine exactly as the exchange records them (compared with its admin snapshot
before anything re-syncs)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from planar_core.model import PENDING, UNKNOWN, OrderStatus, OrderType, Side, Trade

from ..conftest import user_subscribed, wait_for


async def shock(sandbox: Any, symbol: str, factor: float, kind: str = "spot") -> float:
    """Move the sandbox's price to ``factor`` x its path (admin API); returns the new mid price."""
    async with aiohttp.ClientSession() as http:
        r = await http.post(f"{sandbox.url}/admin/price", json={"symbol": symbol, "factor": factor, "kind": kind})
        assert r.status == 200, await r.text()
        return float((await r.json())["price"])


def account_view(sandbox: Any, s: Any) -> Any:
    return sandbox.ex.snapshot()["accounts"][s.config.credentials.api_key.get_secret_value()]


def kinds(s: Any, cid: str) -> list[str]:
    return [e["kind"] for e in s.sink.events if e.get("client_order_id") == cid]


async def test_spot_stop_take_profit_and_trailing_trigger_and_fill(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    s = await strategy_factory(universe=["BTC/USDT"], event_tracing={"enabled": False})
    ai = s.universe["BTC/USDT"]
    await wait_for(lambda: user_subscribed(sandbox, account), timeout=10)
    last = await shock(sandbox, "BTCUSDT", 1.0)
    ai.last_price = last
    stop_buy = await s.call(ai, OrderType.STOP_LIMIT, Side.BUY, amount=0.01, price=last * 1.04, trigger_price=last * 1.01, waitfor=0)
    take_sell = await s.call(ai, OrderType.TAKE_PROFIT_MARKET, Side.SELL, amount=0.01, trigger_price=last * 1.015, waitfor=0)
    trail = await s.call(ai, OrderType.TRAILING_STOP, Side.SELL, amount=0.01, trailing_percent=1.0, waitfor=0)
    assert stop_buy is PENDING and take_sell is PENDING and trail is PENDING
    orders = {o.type: o for o in ai.orders.values()}
    view = account_view(sandbox, s)
    on_exchange = {o["client_order_id"]: o["type"] for o in view["open_orders"]}
    assert on_exchange == {
        orders[OrderType.STOP_LIMIT].client_order_id: "STOP_LOSS_LIMIT",
        orders[OrderType.TAKE_PROFIT_MARKET].client_order_id: "TAKE_PROFIT",
        orders[OrderType.TRAILING_STOP].client_order_id: "STOP_LOSS",
    }
    assert all(o.status is OrderStatus.OPEN and not o.triggered for o in orders.values())

    await shock(sandbox, "BTCUSDT", 1.03)  # up: the stop buy and the take-profit sell trigger, the trailing stop trails
    for t in (OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_MARKET):
        await wait_for(lambda t=t: orders[t].status is OrderStatus.CLOSED and orders[t].trades, timeout=10)
    assert not orders[OrderType.TRAILING_STOP].triggered
    await shock(sandbox, "BTCUSDT", 1.03 * 0.985)  # 1.5 % off the high: the trailing stop triggers
    await wait_for(lambda: orders[OrderType.TRAILING_STOP].status is OrderStatus.CLOSED and orders[OrderType.TRAILING_STOP].trades, 10)

    view = account_view(sandbox, s)  # the exchange's word, before any re-sync
    for o in orders.values():
        row = next(r for r in view["orders"] if r["client_order_id"] == o.client_order_id)
        assert row["status"] == "FILLED"
        assert o.filled == pytest.approx(float(row["filled"]))
        assert o.triggered
        k = kinds(s, o.client_order_id)
        assert k.count("order_triggered") == 1 and k.index("order_triggered") < k.index("trade_executed")
    fills = {f["order_id"]: f for f in view["fills"]}
    for o in orders.values():
        assert sum(t.amount for t in o.trades) == pytest.approx(float(fills[int(o.id)]["qty"]))


async def test_futures_conditional_orders_trigger_from_the_algo_service(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    s = await strategy_factory(name="perp", margin=True, universe=["BTC/USDT:USDT"], event_tracing={"enabled": False})
    ai = s.universe["BTC/USDT:USDT"]
    await wait_for(lambda: user_subscribed(sandbox, account, "linear"), timeout=10)
    last = await shock(sandbox, "BTCUSDT", 1.0, "linear")
    ai.last_price = last
    assert isinstance(await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.025, waitfor=5), Trade)
    await wait_for(lambda: ai.position.contracts == pytest.approx(0.025), timeout=10)
    stop = await s.call(ai, OrderType.STOP_MARKET, Side.SELL, amount=0.01, trigger_price=last * 0.99, reduce_only=True, waitfor=0)
    take = await s.call(
        ai, OrderType.TAKE_PROFIT_LIMIT, Side.SELL, amount=0.01, price=last * 1.005, trigger_price=last * 1.01, reduce_only=True, waitfor=0
    )
    resting = await s.call(  # triggers with the stop, but its limit is above the market then: it rests
        ai, OrderType.STOP_LIMIT, Side.SELL, amount=0.005, price=last * 1.004, trigger_price=last * 0.99, reduce_only=True, waitfor=0
    )
    assert stop is PENDING and take is PENDING and resting is PENDING
    by_type = {o.type: o for o in ai.orders.values() if o.type.is_conditional}
    algos = {a["client_algo_id"]: a for a in account_view(sandbox, s)["algo_orders"]}
    assert {algos[o.client_order_id]["type"] for o in by_type.values()} == {"STOP_MARKET", "TAKE_PROFIT", "STOP"}
    assert all(str(algos[o.client_order_id]["algo_id"]) == o.id for o in by_type.values())  # named by the algo id while waiting

    await shock(sandbox, "BTCUSDT", 1.02, "linear")  # the take-profit triggers, its limit sell fills
    tp = by_type[OrderType.TAKE_PROFIT_LIMIT]
    await wait_for(lambda: tp.status is OrderStatus.CLOSED and tp.trades, timeout=10)
    await shock(sandbox, "BTCUSDT", 0.98, "linear")  # the stop triggers
    sl = by_type[OrderType.STOP_MARKET]
    await wait_for(lambda: sl.status is OrderStatus.CLOSED and sl.trades, timeout=10)
    rest = by_type[OrderType.STOP_LIMIT]
    await wait_for(lambda: rest.triggered, timeout=10)
    await wait_for(lambda: ai.position.contracts == pytest.approx(0.005), timeout=10)

    view = account_view(sandbox, s)
    algos = {a["client_algo_id"]: a for a in view["algo_orders"]}
    placed = next(r for r in view["open_orders"] if r["client_order_id"] == rest.client_order_id)  # resting on the book
    assert rest.status is OrderStatus.OPEN and rest.id == str(placed["order_id"]) == str(algos[rest.client_order_id]["actual_order_id"])
    assert (await s.cancel(ai, rest)).cancelled and rest.status is OrderStatus.CANCELED  # by the id of the order it placed
    for o in (tp, sl):
        algo = algos[o.client_order_id]
        assert algo["status"] == "FINISHED" and o.id == str(algo["actual_order_id"])  # named by the order it placed
        assert o.triggered and kinds(s, o.client_order_id).count("order_triggered") == 1
        filled_events = [e for e in s.sink.events if e["kind"] == "order_filled" and e["client_order_id"] == o.client_order_id]
        assert [e["filled"] for e in filled_events] == [pytest.approx(0.01)]  # closed once, by its fill, not by its trigger
        placed = next(r for r in view["orders"] if r["order_id"] == algo["actual_order_id"])
        assert o.filled == pytest.approx(float(placed["filled"])) == pytest.approx(0.01)
    assert view["futures"]["positions"]["BTCUSDT"]["amount"] == "0.005"


async def test_waiting_futures_conditionals_are_cancelled_one_by_one_and_by_the_emergency_stop(
    strategy_factory: Any, sandbox: Any, account: Any
) -> None:
    s = await strategy_factory(name="perp", margin=True, universe=["BTC/USDT:USDT"], event_tracing={"enabled": False})
    ai = s.universe["BTC/USDT:USDT"]
    last = await shock(sandbox, "BTCUSDT", 1.0, "linear")
    ai.last_price = last
    for _ in range(3):
        assert await s.call(ai, OrderType.STOP_MARKET, Side.BUY, amount=0.01, trigger_price=last * 1.03, waitfor=0) is PENDING
    trail = await s.call(ai, OrderType.TRAILING_STOP, Side.BUY, amount=0.01, trailing_percent=2.0, waitfor=0)
    assert trail is PENDING
    first = next(iter(ai.orders.values()))
    assert (await s.cancel(ai, first)).cancelled
    assert first.status is OrderStatus.CANCELED
    report = await s.emergency_stop("test", close_positions=False)
    assert report.clean, report.as_dict()
    view = account_view(sandbox, s)
    assert [a for a in view["algo_orders"] if a["status"] == "NEW"] == []  # nothing left waiting on the exchange
    assert all(o.status is OrderStatus.CANCELED for o in ai.orders.values())


@pytest.mark.parametrize(
    ("order_type", "side", "kwargs", "reason"),
    [
        (OrderType.STOP_MARKET, Side.SELL, {"trigger_price": 1.02}, "would trigger at once"),
        (OrderType.TAKE_PROFIT_MARKET, Side.SELL, {"trigger_price": 0.98}, "would trigger at once"),
        (OrderType.STOP_MARKET, Side.SELL, {}, "needs a trigger price"),
        (OrderType.STOP_LIMIT, Side.BUY, {"trigger_price": 1.02}, "needs a price"),
        (OrderType.TRAILING_STOP, Side.SELL, {"trailing_percent": 25.0}, "trailing_percent"),
        (OrderType.GTC, Side.BUY, {"trigger_price": 0.9, "price": 0.9}, "for conditional order types"),
        (OrderType.GTC, Side.BUY, {"price": 0.99, "stop_loss": 1.01}, "must be below the entry price"),
    ],
)
async def test_conditional_orders_are_checked_locally(
    strategy_factory: Any, sandbox: Any, order_type: OrderType, side: Side, kwargs: dict[str, float], reason: str
) -> None:
    s = await strategy_factory(universe=["BTC/USDT"], event_tracing={"enabled": False}, balance_watcher={"enabled": False})
    ai = s.universe["BTC/USDT"]
    last = await shock(sandbox, "BTCUSDT", 1.0)
    ai.last_price = last
    scaled = {k: v * last if k != "trailing_percent" else v for k, v in kwargs.items()}
    assert await s.call(ai, order_type, side, amount=0.01, waitfor=0, **scaled) is None
    refused = [e for e in s.sink.events if e["kind"] == "order_failed"]
    assert refused and reason in refused[-1]["reason"], refused
    assert account_view(sandbox, s)["open_orders"] == []  # nothing was sent


async def test_an_unknown_futures_conditional_is_found_in_the_algo_service(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    from planar_core.sandbox import Faults

    s = await strategy_factory(
        name="perp",
        margin=True,
        universe=["BTC/USDT:USDT"],
        event_tracing={"enabled": False},
        timeouts={"order_placement": 0.5},
        order_monitoring={"absent_after": 3.0},
    )
    ai = s.universe["BTC/USDT:USDT"]
    last = await shock(sandbox, "BTCUSDT", 1.0, "linear")
    ai.last_price = last
    # the acknowledgement is lost, the order hidden from look-ups for a while, the stream held back
    sandbox.ex.faults = Faults(lost_ack_rate=1.0, invisible_s=1.5, paused_user_stream=True)
    assert await s.call(ai, OrderType.STOP_MARKET, Side.BUY, amount=0.01, trigger_price=last * 1.03, waitfor=0) is UNKNOWN
    (order,) = ai.orders.values()
    assert order.status is OrderStatus.UNKNOWN
    sandbox.ex.faults = Faults(invisible_s=1.5, paused_user_stream=True)
    await wait_for(lambda: order.status is not OrderStatus.UNKNOWN, timeout=15)
    (algo,) = account_view(sandbox, s)["algo_orders"]
    assert order.status is OrderStatus.OPEN and order.id == str(algo["algo_id"])  # found by its client id, never taken as absent


async def test_a_stale_price_view_does_not_refuse_a_valid_stop(strategy_factory: Any, sandbox: Any) -> None:
    s = await strategy_factory(universe=["BTC/USDT"], event_tracing={"enabled": False}, balance_watcher={"enabled": False})
    ai = s.universe["BTC/USDT"]
    last = await shock(sandbox, "BTCUSDT", 1.0)
    ai.last_price = last * 0.9  # the engine's view lags a move up
    assert await s.call(ai, OrderType.STOP_MARKET, Side.SELL, amount=0.01, trigger_price=last * 0.95, waitfor=0) is PENDING
    assert [o["type"] for o in account_view(sandbox, s)["open_orders"]] == ["STOP_LOSS"]  # asked the exchange, then sent


async def test_a_spot_trailing_sell_activated_above_the_market_is_a_take_profit(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    """An outside trial: a spot trailing sell whose activation price is above the market was sent as a STOP_LOSS
    (refused: it "would trigger immediately"), while the same request on USD-M trails. Binance's trailing-stop FAQ:
    a sell activated above the market is a TAKE_PROFIT with ``trailingDelta``; it trails from there."""
    s = await strategy_factory(universe=["BTC/USDT"], event_tracing={"enabled": False})
    ai = s.universe["BTC/USDT"]
    await wait_for(lambda: user_subscribed(sandbox, account), timeout=10)
    last = await shock(sandbox, "BTCUSDT", 1.0)
    ai.last_price = last
    trail = await s.call(ai, OrderType.TRAILING_STOP, Side.SELL, amount=0.01, trailing_percent=1.0, trigger_price=last * 1.01, waitfor=0)
    assert trail is PENDING, s.last_refusal
    (order,) = [o for o in ai.orders.values() if o.type is OrderType.TRAILING_STOP]
    (row,) = [o for o in account_view(sandbox, s)["open_orders"] if o["client_order_id"] == order.client_order_id]
    assert row["type"] == "TAKE_PROFIT"
    await shock(sandbox, "BTCUSDT", 0.995)  # a fall before activation: nothing
    await shock(sandbox, "BTCUSDT", 1.02)  # activated at 1.01 and up: tracking the highest
    assert not order.triggered and order.is_open
    await shock(sandbox, "BTCUSDT", 1.02 * 0.985)  # 1.5 % off the high: it triggers
    await wait_for(lambda: order.status is OrderStatus.CLOSED and order.trades, timeout=10)
