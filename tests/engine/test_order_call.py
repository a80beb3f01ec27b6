"""The order call against the sandbox: Trade / PENDING / None, local checks, synced, lost acks."""

from __future__ import annotations

import asyncio
import math

import pytest

from planar_core.config import ConfigError
from planar_core.model import PENDING, OrderType, Side, Trade
from planar_core.sandbox import Faults

from ..conftest import bid_ask, snapshot, wait_for

pytestmark = pytest.mark.venues()  # venue-independent: every test here runs on Binance and Bybit (tests/conftest.py)


async def test_market_order_returns_a_trade(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory()
    trade = await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=2)
    assert isinstance(trade, Trade) and trade.amount == 0.01 and not trade.emulated
    fills = snapshot(sandbox, account)["fills"]
    assert len(fills) == 1 and float(fills[0]["price"]) == pytest.approx(trade.price)
    assert fills[0]["client_order_id"] == trade.client_order_id and trade.client_order_id.startswith("strat-")
    await wait_for(lambda: s.cash("BTC").total == pytest.approx(2 + 0.01 - 0.00001))  # balance watcher


async def test_resting_limit_is_pending_then_the_watcher_sees_the_fill(strategy_factory, sandbox) -> None:
    s = await strategy_factory()
    bid, _ = bid_ask(sandbox, "ETHUSDT")
    result = await s.call("ETH/USDT", OrderType.GTC, Side.BUY, amount=0.1, price=bid * 0.99, waitfor=0.3)
    assert result is PENDING
    ai = s.universe["ETH/USDT"]
    (order,) = ai.open_orders()
    sandbox.ex.markets[("spot", "ETHUSDT")].shock = 0.9
    sandbox.ex.match_resting()
    await wait_for(lambda: order.status == "closed" and len(ai.trades) == 1)
    assert ai.trades[0].price == order.price and not ai.trades[0].emulated


async def test_a_call_waiting_on_a_resting_order_wakes_on_its_fill(strategy_factory, sandbox) -> None:
    """``waitfor`` is a bound, not a sleep: the fill of a resting limit wakes the waiting call (the order's event is
    made on the first wait and set by each change; no change may be lost)."""
    s = await strategy_factory()
    bid, _ = bid_ask(sandbox, "ETHUSDT")
    call = asyncio.ensure_future(s.call("ETH/USDT", OrderType.GTC, Side.BUY, amount=0.1, price=bid * 0.99, waitfor=3600))
    ai = s.universe["ETH/USDT"]
    await wait_for(lambda: any(o.id for o in ai.open_orders()))
    sandbox.ex.markets[("spot", "ETHUSDT")].shock = 0.9
    sandbox.ex.match_resting()
    trade = await asyncio.wait_for(call, 60)  # the fill, not the hour
    assert isinstance(trade, Trade) and trade.amount == pytest.approx(0.1)


# how each venue ends an IOC order that found nothing to fill: Binance says EXPIRED, Bybit Cancelled (it has no
# expired status for spot and linear orders)
IOC_UNFILLED = {"binance": "expired", "bybit": "canceled"}


async def test_ioc_fok_and_post_only(strategy_factory, sandbox, venue) -> None:
    s = await strategy_factory()
    bid, ask = bid_ask(sandbox)
    assert await s.call("BTC/USDT", OrderType.IOC, Side.BUY, amount=0.01, price=bid * 0.9, waitfor=0.2) is PENDING
    ai = s.universe["BTC/USDT"]
    assert [o.status for o in ai.orders.values()] == [IOC_UNFILLED[venue]]
    fok = await s.call("BTC/USDT", OrderType.FOK, Side.BUY, amount=0.01, price=ask * 1.01, waitfor=1)
    assert isinstance(fok, Trade) and fok.price <= ask * 1.01
    assert await s.call("BTC/USDT", OrderType.POST_ONLY, Side.BUY, amount=0.01, price=ask * 1.01, waitfor=1) is None  # would take
    assert await s.call("BTC/USDT", OrderType.POST_ONLY, Side.BUY, amount=0.01, price=bid * 0.95, waitfor=0) is PENDING


async def test_waitfor_zero_returns_at_once(strategy_factory, sandbox) -> None:
    s = await strategy_factory()
    bid, _ = bid_ask(sandbox)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await s.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.9, waitfor=0) is PENDING
    assert loop.time() - t0 < 1.0  # no waiting on watchers (sanity bound, not a benchmark)


@pytest.mark.parametrize(
    ("amount", "price", "reason"),
    [
        (math.nan, None, "invalid amount"),
        (-1.0, None, "invalid amount"),
        (0.0, None, "invalid amount"),
        (0.01, math.inf, "invalid price"),
        (0.01, -5.0, "invalid price"),
        (0.000001, None, "below the market minimum"),
        (50.0, None, "insufficient USDT"),
    ],
)
async def test_local_checks_refuse_before_any_request(strategy_factory, sandbox, account, amount, price, reason) -> None:
    s = await strategy_factory()
    otype = OrderType.GTC if price is not None else OrderType.MARKET
    before = len(s.sink.of("api_call"))
    assert await s.call("BTC/USDT", otype, Side.BUY, amount=amount, price=price) is None
    failed = s.sink.of("order_failed")[-1]
    assert reason in failed["reason"]
    assert not [e for e in s.sink.of("api_call")[before:] if e["endpoint"] == "create_order"]
    assert snapshot(sandbox, account)["orders"] == []


async def test_amount_is_truncated_to_precision(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory()
    trade = await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.0123456789, waitfor=2)
    assert trade.amount == 0.01234
    assert snapshot(sandbox, account)["orders"][0]["qty"] == "0.01234"


async def test_halted_strategy_and_risk_hook_refuse(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory()
    s.risk_check = lambda strat, ai, req: "too big" if req.amount > 0.02 else None
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.05) is None
    assert s.sink.of("risk_rejected")[-1]["reason"] == "too big"
    assert isinstance(await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=2), Trade)
    s.halt("test halt")
    assert await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01) is None
    assert "halted" in s.sink.of("order_failed")[-1]["reason"]
    assert len(snapshot(sandbox, account)["orders"]) == 1
    s.rearm()
    assert isinstance(await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=2), Trade)


async def test_synced_fetches_when_the_stream_is_silent(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory()
    bid, _ = bid_ask(sandbox, "ETHUSDT")
    sandbox.ex.faults = Faults(paused_user_stream=True)

    async def move_later() -> None:  # once the order rests on the exchange, the price falls through it
        await wait_for(lambda: any(o.is_open for o in account.orders.values()))
        sandbox.ex.markets[("spot", "ETHUSDT")].shock = 0.9
        sandbox.ex.match_resting()

    mover = asyncio.create_task(move_later())
    silent = await s.call("ETH/USDT", OrderType.GTC, Side.BUY, amount=0.1, price=bid * 0.99, waitfor=0.6, synced=False)
    await mover
    assert silent is PENDING  # the fill happened, but nothing told the engine
    sandbox.ex.markets[("spot", "ETHUSDT")].shock = 1.0
    bid, _ = bid_ask(sandbox, "ETHUSDT")
    mover = asyncio.create_task(move_later())
    synced = await s.call("ETH/USDT", OrderType.GTC, Side.BUY, amount=0.1, price=bid * 0.99, waitfor=0.6, synced=True)
    await mover
    assert isinstance(synced, Trade) and not synced.emulated


async def test_lost_ack_leaves_exactly_one_order(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory()
    sandbox.ex.faults = Faults(lost_ack_rate=1.0)
    trade = await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=2)
    sandbox.ex.faults = Faults()
    assert isinstance(trade, Trade)
    orders = snapshot(sandbox, account)["orders"]
    assert len(orders) == 1 and orders[0]["client_order_id"] == trade.client_order_id
    assert any(e["endpoint"] == "fetch_order" for e in s.sink.of("api_call"))


async def test_rate_limit_storm_backs_off_and_recovers(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory()
    sandbox.ex.faults = Faults(rate_limit_rate=0.3, error_rate=0.1)
    results: list[object] = []
    # five orders, and more (at most 30) until the storm has refused one: the faults are drawn from the sandbox's seeded
    # generator, and how many draws a venue's start-up and five orders take decides whether five met a 429 at all
    while len(results) < 5 or (s.venue.guard.backoffs == 0 and len(results) < 30):
        results.append(await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.001, waitfor=1))
    sandbox.ex.faults = Faults()
    assert s.venue.guard.backoffs > 0
    snap = snapshot(sandbox, account)
    cids = [o["client_order_id"] for o in snap["orders"]]
    assert len(cids) == len(set(cids))  # never two exchange orders for one client id
    assert sum(isinstance(r, Trade) for r in results) == len(cids)
    assert isinstance(await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.001, waitfor=1), Trade)


async def test_cancel_and_cancel_all(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory()
    bid, _ = bid_ask(sandbox)
    for i in range(3):
        await s.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.01, price=bid * (0.9 - i / 100), waitfor=0)
    ai = s.universe["BTC/USDT"]
    first = ai.open_orders()[0]
    assert (await s.cancel(ai, first)).cancelled and first.status == "canceled"
    assert (await s.cancel_all(ai)).count == 2
    assert ai.open_orders() == [] and snapshot(sandbox, account)["open_orders"] == []
    assert [o.id for o in await s.fetch_open_orders(ai)] == []


async def test_unknown_symbol_fails_at_start_naming_the_field(strategy_factory) -> None:
    with pytest.raises(ConfigError, match=r"universe\.1\.symbol"):
        await strategy_factory(universe=["BTC/USDT", "DOGE/USDT"])
    with pytest.raises(ConfigError, match=r"universe\.0\.symbol.*margin"):
        await strategy_factory(name="m", universe=["BTC/USDT:USDT"])


async def test_withdraw_capable_key_is_refused(strategy_factory, sandbox) -> None:
    acct = sandbox.ex.add_account({"USDT": 1000})
    acct.can_withdraw = True
    with pytest.raises(ConfigError, match="can withdraw"):
        await strategy_factory(acct=acct)
