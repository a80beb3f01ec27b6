"""What users of other bots have been burned by, each as a sandbox fault scenario (issue 12, section 3).

The order invisible to GET for seconds after it was accepted (-2013) is in tests/engine/test_money_path.py.
Every check compares the engine's own view with the exchange's before any resync.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from planar_core.model import PENDING, CancelOutcome, OrderStatus, OrderType, Side, Trade
from planar_core.sandbox import Faults

from ..conftest import bid_ask, make_client, snapshot, wait_for
from .harness import verify

pytestmark = pytest.mark.venues()  # venue-independent: every test here runs on Binance and Bybit (tests/conftest.py)


async def test_partly_filled_exit_then_emergency_exit_sells_only_what_is_left(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(name="perp", margin=True, universe=["BTC/USDT:USDT"], default_leverage=5)
    ai = s.universe["BTC/USDT:USDT"]
    assert isinstance(await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.01, waitfor=2), Trade)
    await wait_for(lambda: ai.position.contracts == pytest.approx(0.01))
    _, ask = bid_ask(sandbox, "BTCUSDT", "linear")
    sandbox.ex.faults = Faults(partial_fill_ratio=0.3)
    assert await s.call(ai, OrderType.GTC, Side.SELL, amount=0.01, price=ask * 1.01, reduce_only=True, waitfor=0) is PENDING
    (exit_order,) = ai.open_orders()
    sandbox.ex.markets[("linear", "BTCUSDT")].shock = 1.02  # the market reaches the limit: one partial fill
    sandbox.ex.match_resting()
    sandbox.ex.markets[("linear", "BTCUSDT")].shock = 1.0
    sandbox.ex.faults = Faults()
    await wait_for(lambda: exit_order.filled == pytest.approx(0.003) and ai.position.contracts == pytest.approx(0.007))
    report = await s.emergency_stop("exit timed out", close_positions=True)  # cancels the rest, then closes what is left
    assert report.clean and report.closed == {"BTC/USDT:USDT": pytest.approx(0.007)}
    snap = snapshot(sandbox, account)
    assert snap["futures"]["positions"] == {}  # flat, and never flipped short
    sold = sum(float(f["qty"]) for f in snap["fills"] if f["side"] == "SELL")
    assert sold == pytest.approx(0.01)
    await verify(s, sandbox, account)


async def test_cancelling_an_order_that_no_longer_exists_does_not_loop(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory()
    ai = s.universe["BTC/USDT"]
    trade = await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.01, waitfor=2)
    order = ai.orders[trade.client_order_id]
    calls_before = len(s.sink.of("api_call"))
    answer = await s.cancel(ai, order)  # filled: the exchange answers -2011
    assert answer.outcome is CancelOutcome.ALREADY_CLOSED and answer.status is OrderStatus.CLOSED
    calls = [
        e["endpoint"] for e in s.sink.of("api_call")[calls_before:] if e["endpoint"] in ("cancel_order", "fetch_order", "create_order")
    ]
    assert calls == ["cancel_order", "fetch_order"]  # one cancel, one look-up to learn how it ended, nothing more
    assert order.status == "closed"


@pytest.mark.parametrize("offset_ms", [-1500.0, 1500.0], ids=["local clock ahead", "local clock behind"])
async def test_clock_skew_is_measured_and_signed_with(strategy_factory, sandbox, account, offset_ms) -> None:
    sandbox.ex.faults = Faults(clock_offset_ms=offset_ms)  # the exchange's clock differs from ours from the start
    s = await strategy_factory()
    assert isinstance(await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=2), Trade)
    stamped = sandbox.ex.now_ms()
    sandbox.ex.faults = Faults(clock_offset_ms=-offset_ms)  # and drifts the other way while we run
    # the sandbox models our clock's drift by moving its own; an exchange's clock never runs backwards, so trade again
    # only once it has passed every time it already stamped (Bybit's REST snapshots and stream messages carry that
    # time, and the engine orders them by it)
    await wait_for(lambda: sandbox.ex.now_ms() > stamped, timeout=2 * abs(offset_ms) / 1000 + 2)
    assert isinstance(await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=2), Trade)
    booked = snapshot(sandbox, account)["orders"]
    assert len(booked) == 2 and len({o["client_order_id"] for o in booked}) == 2
    sandbox.ex.faults = Faults()
    await verify(s, sandbox, account)


# Binance-specific by nature: listen keys and their keepalives (Bybit's private stream authenticates each connection)
@pytest.mark.venues("binance")
async def test_futures_user_stream_survives_a_failed_keepalive_and_an_expired_listen_key(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(
        name="perp",
        margin=True,
        universe=["BTC/USDT:USDT"],
        default_leverage=5,
        order_monitoring={"interval": 0.3},
        balance_watcher={"interval": 0.3},
        position_watcher={"interval": 0.3},
    )
    ai = s.universe["BTC/USDT:USDT"]
    bid, _ = bid_ask(sandbox, "BTCUSDT", "linear")
    result = await s.call(ai, OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.97, waitfor=0)  # PERCENT_PRICE: within 5 % of mark
    assert result is PENDING, s.sink.events[-3:]
    await wait_for(lambda: s.watcher_health()["balance"]["mode"] == "websocket" and sandbox.hub.listen_keys)
    first_key = next(iter(sandbox.hub.listen_keys))
    # 1. a keepalive fails once (ccxt drops the stream and re-authenticates)
    sandbox.ex.faults = Faults(keepalive_failures=1)
    s.venue.ex.options["listenKeyRefreshRate"] = 300
    await s.venue.ex.keep_alive_listen_key({"type": "linear"})
    assert sandbox.ex.faults.keepalive_failures == 0
    # 2. then no keepalive at all: the key expires, its stream gets listenKeyExpired and is cut
    s.venue.ex.options["listenKeyRefreshRate"] = 3_600_000
    sandbox.ex.faults = Faults(listen_key_ttl_s=1.0)
    await wait_for(lambda: first_key not in sandbox.hub.listen_keys, timeout=10)
    # while the stream is down, the resting order fills and a new order is placed
    sandbox.ex.markets[("linear", "BTCUSDT")].shock = 0.85
    sandbox.ex.match_resting()
    sandbox.ex.markets[("linear", "BTCUSDT")].shock = 1.0
    assert isinstance(await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.01, waitfor=2), Trade)
    sandbox.ex.faults = Faults()  # keys live an hour again
    await verify(s, sandbox, account)  # no order update lost: the gap polls caught what the stream missed
    await wait_for(lambda: any(k != first_key for k in sandbox.hub.listen_keys), timeout=20)  # a new key, a new stream
    await wait_for(lambda: s.watcher_health()["balance"]["mode"] == "websocket", timeout=20)


async def test_a_position_older_than_the_sync_window_is_still_reconciled(strategy_factory, sandbox, account) -> None:
    other = make_client(sandbox, account)
    try:
        await other.load_markets()
        await other.create_order("ETH/USDT:USDT", "market", "sell", 0.3)  # opened long before this strategy starts
    finally:
        await other.close()
    await asyncio.sleep(0.05)  # let it age past the 10 ms window below
    s = await strategy_factory(
        name="perp", margin=True, universe=["ETH/USDT:USDT"], startup_sync={"closed_orders": 0, "trades_lookback_s": 0.01}
    )
    ai = s.universe["ETH/USDT:USDT"]
    assert ai.orders == {}  # no order history asked for: not adopted
    fut = snapshot(sandbox, account)["futures"]
    assert ai.position.contracts == pytest.approx(float(fut["positions"]["ETHUSDT"]["amount"])) == pytest.approx(-0.3)
    assert ai.position.entry_price == pytest.approx(float(fut["positions"]["ETHUSDT"]["entry_price"]))
    assert s.cash("USDT").total == pytest.approx(float(fut["wallet"]))
    assert Decimal(fut["positions"]["ETHUSDT"]["amount"]) == Decimal("-0.3")
