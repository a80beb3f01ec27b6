"""Watchers: websocket and polling paths, automatic fallback, trade emulation, idle stop, supervision, restart."""

from __future__ import annotations

import asyncio

import pytest

from planar_core.engine.supervisor import Supervisor
from planar_core.model import PENDING, OrderStatus, OrderType, Side, Trade
from planar_core.sandbox import Faults

from ..conftest import user_subscribed, wait_for
from .test_order_call import bid_ask, snapshot


def exchange_balance(sandbox, account, asset: str) -> float:
    b = snapshot(sandbox, account)["spot_balances"][asset]
    return float(b["free"]) + float(b["locked"])


@pytest.mark.parametrize("use_ws", [True, False])
async def test_balance_and_orders_follow_the_exchange(strategy_factory, sandbox, account, use_ws) -> None:
    fast = {"interval": 0.2, "use_websocket": use_ws}
    s = await strategy_factory(balance_watcher=fast, order_monitoring={"interval": 0.2, "use_websocket": use_ws})
    bid, _ = bid_ask(sandbox, "ETHUSDT")
    assert await s.call("ETH/USDT", OrderType.GTC, Side.BUY, amount=0.5, price=bid * 0.99, waitfor=0) is PENDING
    sandbox.ex.markets[("spot", "ETHUSDT")].shock = 0.9
    sandbox.ex.match_resting()
    ai = s.universe["ETH/USDT"]
    await wait_for(lambda: ai.trades and ai.orders and next(iter(ai.orders.values())).status == "closed")
    await wait_for(lambda: s.cash("ETH").total == pytest.approx(exchange_balance(sandbox, account, "ETH")))
    await wait_for(lambda: s.cash("USDT").total == pytest.approx(exchange_balance(sandbox, account, "USDT")))
    assert s.watcher_health()["balance"]["mode"] == ("websocket" if use_ws else "polling")


async def test_websocket_failure_falls_back_to_polling(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(balance_watcher={"interval": 0.2}, order_monitoring={"interval": 0.2})
    await wait_for(lambda: s.watcher_health()["balance"]["mode"] == "websocket")
    sandbox.ex.faults = Faults(ws_drop_every_s=0.3)
    await wait_for(lambda: s.watcher_health()["balance"]["failures"] > 0 and s.watcher_health()["balance"]["mode"] == "polling")
    for _ in range(3):
        await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=1)
    await wait_for(lambda: s.cash("BTC").total == pytest.approx(exchange_balance(sandbox, account, "BTC")))
    await wait_for(lambda: s.cash("USDT").total == pytest.approx(exchange_balance(sandbox, account, "USDT")))


async def test_trades_are_emulated_from_order_updates(strategy_factory, sandbox, account) -> None:
    sandbox.ex.faults = Faults(user_trade_events=False)
    s = await strategy_factory(order_monitoring={"interval": 0.2})
    bid, _ = bid_ask(sandbox, "ETHUSDT")
    assert await s.call("ETH/USDT", OrderType.GTC, Side.BUY, amount=0.3, price=bid * 0.99, waitfor=0) is PENDING
    (order,) = s.universe["ETH/USDT"].open_orders()
    await wait_for(lambda: user_subscribed(sandbox, account))  # the order task is subscribed
    sandbox.ex.markets[("spot", "ETHUSDT")].shock = 0.9
    sandbox.ex.match_resting()
    ai = s.universe["ETH/USDT"]
    await wait_for(lambda: len(ai.trades) == 1)
    trade = ai.trades[0]
    assert trade.emulated and trade.amount == 0.3 and trade.price == pytest.approx(order.price)
    assert s.sink.of("trade_executed")[-1]["emulated"] is True


async def test_partial_fills_are_tracked(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(order_monitoring={"interval": 0.2})
    sandbox.ex.faults = Faults(partial_fill_ratio=0.5)
    bid, _ = bid_ask(sandbox, "ETHUSDT")
    await s.call("ETH/USDT", OrderType.GTC, Side.BUY, amount=0.4, price=bid * 0.99, waitfor=0)
    (order,) = s.universe["ETH/USDT"].open_orders()
    await wait_for(lambda: user_subscribed(sandbox, account))
    sandbox.ex.markets[("spot", "ETHUSDT")].shock = 0.9
    sandbox.ex.match_resting()  # the first half fill
    sandbox.ex.matching_paused = True  # the second waits until the engine has seen the first
    await wait_for(lambda: order.filled == pytest.approx(0.2) and order.status == "open" and len(order.trades) == 1)  # partial
    first = list(order.trades)
    sandbox.ex.matching_paused = False
    sandbox.ex.match_resting()
    await wait_for(lambda: order.status == "closed" and len(order.trades) == 2)
    assert [t.amount for t in first] == [0.2] and [t.amount for t in order.trades] == [0.2, 0.2]
    fills = [e for e in s.sink.of("trade_executed") if e["client_order_id"] == order.client_order_id]
    assert [e["amount"] for e in fills] == [0.2, 0.2]  # each half recorded as it came (by a trade or an order update first)


async def test_order_tasks_stop_when_idle(strategy_factory) -> None:
    # an idle timeout longer than a call() that waits for its fill's balance (balance_watcher.fill_wait + a read)
    s = await strategy_factory(order_monitoring={"timeout": 1.5, "interval": 0.1})
    await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=1)
    assert s.supervisor.running("orders:BTC/USDT")
    await wait_for(lambda: not s.supervisor.running("orders:BTC/USDT"), timeout=10)
    await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=1)
    assert s.supervisor.running("orders:BTC/USDT")  # the next order starts them again


async def test_crashed_task_is_restarted_with_backoff_and_counted(caplog) -> None:
    sup = Supervisor(max_backoff=0.05)
    runs = []

    async def flaky(health) -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError(f"boom {len(runs)}")

    health = sup.start("flaky", flaky)
    await wait_for(lambda: not health.running)
    assert health.restarts == 2 and health.failures == 2 and "boom 2" in health.last_error
    assert sum("task flaky crashed" in r.message for r in caplog.records) == 2


async def test_ohlcv_feeds_per_timeframe(strategy_factory) -> None:
    s = await strategy_factory(timeframes=["1m", "5m"], start=False)
    updated: list[str] = []
    apply = s.apply_ohlcv
    s.apply_ohlcv = lambda ai, tf, candles: (ai.symbol == "BTC/USDT" and updated.append(tf), apply(ai, tf, candles))[1]  # type: ignore[method-assign]
    await s.start()
    ai = s.universe["BTC/USDT"]
    await wait_for(lambda: len(ai.ohlcv.get("1m", [])) >= 50 and len(ai.ohlcv.get("5m", [])) >= 50)
    assert {"1m", "5m"} <= set(updated)
    assert ai.last_price == ai.ohlcv[updated[-1]][-1][4]  # the feed that updated last set the price
    assert all(c[0] % 300_000 == 0 for c in ai.ohlcv["5m"])


async def test_restart_mid_session_rebuilds_state_from_the_exchange(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory()
    bid, _ = bid_ask(sandbox)
    await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.02, waitfor=1)
    await s.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.9, waitfor=0)
    await s.call("ETH/USDT", OrderType.MARKET, Side.SELL, amount=0.5, waitfor=1)
    await s.stop()
    fresh = await strategy_factory()
    snap = snapshot(sandbox, account)
    local_open = sorted(o.client_order_id for ai in fresh.universe.values() for o in ai.open_orders())
    assert local_open == sorted(o["client_order_id"] for o in snap["open_orders"])
    for asset in ("BTC", "ETH", "USDT"):
        b = snap["spot_balances"][asset]
        assert fresh.cash(asset).free == pytest.approx(float(b["free"])) and fresh.cash(asset).used == pytest.approx(float(b["locked"]))
    local_fills = sorted(t.trade_id for ai in fresh.universe.values() for t in ai.trades)
    assert local_fills == sorted(str(f["trade_id"]) for f in snap["fills"])
    # ids keep counting: the restarted engine never reuses a client order id
    t = await fresh.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=1)
    assert isinstance(t, Trade) and t.client_order_id not in {o["client_order_id"] for o in snap["orders"]}


async def test_intent_without_exchange_order_is_failed_only_with_proof(strategy_factory, sandbox, account) -> None:
    """An intent the exchange has no order for is 'failed' only once look-ups by client id have found nothing
    ``absent_after`` seconds after it; until then it is an 'unknown' order the resolver keeps asking about."""
    s = await strategy_factory(start=False, order_monitoring={"absent_after": 0.5})
    s.journal.intent("strat-crashed-1", symbol="BTC/USDT", side="buy", type="market", amount=0.01, price=None)
    await s.start()
    order = s.universe["BTC/USDT"].orders["strat-crashed-1"]
    assert order.status in ("unknown", "failed")
    await wait_for(lambda: order.status == "failed")
    assert "strat-crashed-1" not in s.journal.unresolved()
    decisions = [e for e in s.sink.of("order_reconciled") if e.get("client_order_id") == "strat-crashed-1"]
    assert decisions[-1]["decision"] == "absent" and "look-ups found no order" in decisions[-1]["reason"]


async def test_old_intent_for_a_symbol_outside_the_universe_is_asked_too(strategy_factory, sandbox, account, client) -> None:
    s = await strategy_factory(start=False)
    s.journal._append(
        {"t": 1, "kind": "intent", "cid": "strat-gone-1", "symbol": "LTC/USDT", "side": "buy", "type": "market", "amount": 0.1}
    )
    s.journal._append(
        {"t": 1, "kind": "intent", "cid": "strat-gone-2", "symbol": "LTC/USDT", "side": "buy", "type": "market", "amount": 0.1}
    )
    await client.create_order("LTC/USDT", "market", "buy", 0.1, params={"clientOrderId": "strat-gone-2"})
    await s.start()  # universe: BTC/USDT, ETH/USDT
    assert s.journal.unresolved() == {}
    by_cid = {e["client_order_id"]: e for e in s.sink.of("order_reconciled")}
    assert by_cid["strat-gone-1"]["decision"] == "failed" and "not found" in by_cid["strat-gone-1"]["reason"]
    assert by_cid["strat-gone-2"]["decision"] == "accepted" and "outside the universe" in by_cid["strat-gone-2"]["reason"]


async def test_intent_sent_before_a_crash_is_adopted(strategy_factory, sandbox, account, client) -> None:
    s = await strategy_factory(start=False)
    s.journal.intent("strat-sent-1", symbol="BTC/USDT", side="buy", type="market", amount=0.01, price=None)
    await client.create_order("BTC/USDT", "market", "buy", 0.01, params={"clientOrderId": "strat-sent-1"})  # the crashed process sent it
    await s.start()
    order = s.universe["BTC/USDT"].orders["strat-sent-1"]
    assert order.status == "closed" and order.filled == 0.01
    assert "strat-sent-1" not in s.journal.unresolved()


async def test_futures_positions_and_reduce_only(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(name="perp", margin=True, universe=["BTC/USDT:USDT"], default_leverage=3, position_watcher={"interval": 0.2})
    ai = s.universe["BTC/USDT:USDT"]
    trade = await s.call(ai, OrderType.MARKET, Side.SELL, amount=0.05, waitfor=2)
    assert isinstance(trade, Trade)
    await wait_for(lambda: ai.position.contracts == pytest.approx(-0.05))
    assert await s.call(ai, OrderType.MARKET, Side.SELL, amount=0.01, reduce_only=True) is None  # would increase
    assert await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.1, reduce_only=True) is None  # more than the position
    closing = await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.05, reduce_only=True, waitfor=2)
    assert isinstance(closing, Trade)
    await wait_for(lambda: ai.position.contracts == 0)
    assert snapshot(sandbox, account)["futures"]["positions"] == {}
    assert snapshot(sandbox, account)["futures"]["positions"] == {} and s.cash("USDT").total < 100_000


async def test_a_cached_order_updated_in_place_reads_as_updated(strategy_factory, sandbox, account) -> None:
    """ccxt keeps one dict per order in its stream cache and updates it in place; the venue parses each state of that
    row once for all its readers (ccxt_venue.CcxtVenue._order): the update of a cancel (no fill: its trades do not
    change) must not answer the report parsed while the order was open."""
    s = await strategy_factory()
    await wait_for(lambda: user_subscribed(sandbox, account))
    bid, _ = bid_ask(sandbox, "ETHUSDT")
    first = asyncio.ensure_future(s.venue.watch_orders("ETH/USDT"))
    assert await s.call("ETH/USDT", OrderType.GTC, Side.BUY, amount=0.3, price=bid * 0.99, waitfor=0) is PENDING
    (order,) = s.universe["ETH/USDT"].open_orders()
    opened = [r for r in await asyncio.wait_for(first, 5) if r.client_order_id == order.client_order_id]
    assert opened and opened[-1].status is OrderStatus.OPEN
    later = asyncio.ensure_future(s.venue.watch_orders("ETH/USDT"))
    await s.cancel("ETH/USDT", order)
    cancelled = [r for r in await asyncio.wait_for(later, 5) if r.client_order_id == order.client_order_id]
    assert cancelled and cancelled[-1].status is OrderStatus.CANCELED


async def test_an_emulation_due_after_the_stop_writes_nothing(strategy_factory, sandbox, account) -> None:
    """An outside trial (2 of 2): a standalone e-stop's closing fill came without its trade, and the emulation's
    timer fired after the stop had closed the trace: ``TraceClosedError`` on the console, the fill half-recorded.
    After the stop, an emulation writes nothing (the next start books the fill from the exchange's trades)."""
    from planar_core.engine.updates import emulate

    s = await strategy_factory()
    sandbox.ex.faults = Faults(user_trade_events=False)  # order updates, no trades
    try:
        bid, _ = bid_ask(sandbox, "ETHUSDT")
        await s.call("ETH/USDT", OrderType.GTC, Side.BUY, amount=0.4, price=bid * 0.99, waitfor=0)
        (order,) = s.universe["ETH/USDT"].open_orders()
        await wait_for(lambda: user_subscribed(sandbox, account))
        sandbox.ex.markets[("spot", "ETHUSDT")].shock = 0.9
        sandbox.ex.match_resting()
        await wait_for(lambda: order.filled > 0)
    finally:
        sandbox.ex.faults = Faults()
    order.trades.clear()  # as if its timer had not fired yet
    await s.stop()
    emulate(s, s.universe["ETH/USDT"], order)  # the timer, after the stop
    assert not order.trades
