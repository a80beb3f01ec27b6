"""The engine trading Bybit (issue 29, item 3): a strategy whose config says ``exchange = "bybit"`` on the Bybit v5
dialect of the sandbox, over real HTTP/websocket with unmodified ccxt; every check against the exchange's own
snapshot before anything resyncs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from planar_core.model import PENDING, OrderStatus, OrderType, PositionSide, RefusalReason, Side, Trade
from planar_core.sandbox import Faults
from planar_core.sandbox.accounts import Account
from planar_core.sandbox.bybit import BybitServer

from ..conftest import START_BALANCES, bid_ask, make_bybit_client, snapshot, wait_for
from ..orders.test_conditional import shock


@pytest.fixture
def trader(bybit_sandbox: BybitServer) -> Account:
    return bybit_sandbox.ex.add_account(dict(START_BALANCES))


@pytest.fixture
async def bybit_strategy(bybit_sandbox: BybitServer, trader: Account, tmp_path) -> AsyncIterator[Any]:
    from planar_core.engine import strategy as build

    made: list[Any] = []

    async def factory(name: str = "bb", start: bool = True, **overrides: Any) -> Any:
        env = {"EXCHANGE_API_KEY": trader.api_key, "EXCHANGE_API_SECRET": trader.api_secret}
        overrides.setdefault("universe", ["BTC/USDT", "ETH/USDT"])
        overrides.setdefault("store_root", str(tmp_path / "store"))
        overrides.setdefault("sandbox_endpoint", {"url": bybit_sandbox.url, "ws_url": bybit_sandbox.ws_url})
        overrides.setdefault("connection", {"health_interval": 3600})
        s = build(name, env=env, exchange="bybit", **overrides)
        made.append(s)
        if start:
            await s.start()
        return s

    yield factory
    for s in made:
        await s.stop()


def wallet_subscribed(server: BybitServer, acct: Account) -> bool:
    """The account's private connection has subscribed to the ``wallet`` topic (what a test waits on, not a sleep)."""
    return any(c.kind == "private" and acct.api_key in c.users and "wallet" in c.streams for c in server.hub.conns)


def a_power_loss(journal: Path) -> None:
    """The next run begins in another boot of the machine: the journal's last word is a start of that boot."""
    with journal.open("ab") as fh:
        fh.write(b'{"t":1,"kind":"start","boot":"a-boot-before-the-power-loss"}\n')


async def test_spot_market_and_resting_orders(bybit_strategy, bybit_sandbox, trader) -> None:
    s = await bybit_strategy(balance_watcher={"interval": 3600})
    await wait_for(lambda: wallet_subscribed(bybit_sandbox, trader), timeout=10)  # the stream can report the fill's balance
    reads = len([e for e in s.sink.of("api_call") if e["endpoint"] == "fetch_balance"])
    trade = await s.call("BTC/USDT", OrderType.MARKET, Side.BUY, amount=0.01, waitfor=2)
    assert isinstance(trade, Trade) and trade.amount == 0.01
    # the wallet topic's update after the fill is what the call waited for: no REST read of the balance
    assert len([e for e in s.sink.of("api_call") if e["endpoint"] == "fetch_balance"]) == reads
    assert s.cash("BTC").total == pytest.approx(sum(float(v) for v in snapshot(bybit_sandbox, trader)["spot_balances"]["BTC"].values()))
    fills = snapshot(bybit_sandbox, trader)["fills"]
    assert len(fills) == 1 and fills[0]["client_order_id"] == trade.client_order_id
    bid, _ = bid_ask(bybit_sandbox, "ETHUSDT")
    assert await s.call("ETH/USDT", OrderType.GTC, Side.BUY, amount=0.1, price=bid * 0.99, waitfor=0.3) is PENDING
    (order,) = s.universe["ETH/USDT"].open_orders()
    live = [o for o in snapshot(bybit_sandbox, trader)["open_orders"]]
    assert [o["client_order_id"] for o in live] == [order.client_order_id]


async def test_cancel_and_an_emergency_stop_on_spot(bybit_strategy, bybit_sandbox, trader) -> None:
    s = await bybit_strategy(risk={"estop_budget_s": 5.0})
    for sym, name in (("BTC/USDT", "BTCUSDT"), ("ETH/USDT", "ETHUSDT")):
        bid, _ = bid_ask(bybit_sandbox, name)
        for k in (1, 2):
            assert await s.call(sym, OrderType.GTC, Side.BUY, amount=0.01, price=bid * (1 - 0.01 * k), waitfor=0) is PENDING
    await wait_for(lambda: len(snapshot(bybit_sandbox, trader)["open_orders"]) == 4)
    ai = s.universe["BTC/USDT"]
    first = ai.open_orders()[0]
    assert (await s.cancel(ai, first)).cancelled
    assert first.client_order_id not in {o["client_order_id"] for o in snapshot(bybit_sandbox, trader)["open_orders"]}
    report = await s.emergency_stop("test")
    assert report.clean and report.cancelled == 3, report
    assert snapshot(bybit_sandbox, trader)["open_orders"] == []
    assert s.halted


async def test_linear_position_equity_and_a_closing_emergency_stop(bybit_strategy, bybit_sandbox, trader) -> None:
    s = await bybit_strategy(name="perp", margin=True, universe=["BTC/USDT:USDT"], default_leverage=5, risk={"estop_budget_s": 5.0})
    ai = s.universe["BTC/USDT:USDT"]
    assert isinstance(await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.5, waitfor=2), Trade)
    fut = snapshot(bybit_sandbox, trader)["futures"]
    pos = fut["positions"]["BTCUSDT"]
    await wait_for(lambda: ai.position.contracts == pytest.approx(float(pos["amount"])))
    await wait_for(lambda: s.cash("USDT").total == pytest.approx(float(fut["wallet"])))
    report = await s.emergency_stop("close everything", close_positions=True)
    assert report.clean, report
    assert snapshot(bybit_sandbox, trader)["futures"]["positions"] == {}


async def test_restarts_learn_what_happened_while_down(bybit_strategy, bybit_sandbox, trader) -> None:
    """A clean restart learns of a resting order cancelled while nothing watched; after a power loss, the
    start-up finds an order carrying the strategy's own ``orderLinkId`` that the journal never recorded."""
    first = await bybit_strategy()
    ai = first.universe["ETH/USDT"]
    bid, _ = bid_ask(bybit_sandbox, "ETHUSDT")
    assert await first.call(ai, OrderType.GTC, Side.BUY, amount=0.1, price=bid * 0.98, waitfor=0) is PENDING
    (order,) = ai.open_orders()
    await first.stop()
    raw = make_bybit_client(bybit_sandbox, trader)
    try:
        await raw.load_markets()
        await raw.cancel_order(order.id, "ETH/USDT")
        second = await bybit_strategy()
        learned = second.universe["ETH/USDT"].orders.get(order.client_order_id)
        assert learned is not None and learned.status == "canceled", learned
        cid = second.ids.next()  # the strategy's own next id, never journaled: a crash between request and journal
        await second.stop()
        price = round(bid_ask(bybit_sandbox)[0] * 0.9, 1)
        placed = await raw.create_order("BTC/USDT", "limit", "buy", 0.01, price, {"orderLinkId": cid})
        await raw.cancel_order(placed["id"], "BTC/USDT")
    finally:
        await raw.close()
    a_power_loss(Path(str(second.journal.path)))
    third = await bybit_strategy()
    found = third.universe["BTC/USDT"].orders.get(cid)
    assert found is not None and found.status == "canceled", found


async def test_linear_conditional_orders_wait_trigger_and_fill(bybit_strategy, bybit_sandbox, trader) -> None:
    """Stop and take-profit orders on a USDT perpetual: waiting on the exchange under the order's own id, then
    triggered by the price and filled."""
    s = await bybit_strategy(name="perp", margin=True, universe=["BTC/USDT:USDT"], default_leverage=5)
    ai = s.universe["BTC/USDT:USDT"]
    last = await shock(bybit_sandbox, "BTCUSDT", 1.0, "linear")
    assert isinstance(await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.025, waitfor=5), Trade)
    await wait_for(lambda: ai.position.contracts == pytest.approx(0.025), timeout=10)
    stop = await s.call(ai, OrderType.STOP_MARKET, Side.SELL, amount=0.01, trigger_price=last * 0.99, reduce_only=True, waitfor=0)
    take = await s.call(
        ai, OrderType.TAKE_PROFIT_LIMIT, Side.SELL, amount=0.01, price=last * 1.005, trigger_price=last * 1.01, reduce_only=True, waitfor=0
    )
    assert stop is PENDING and take is PENDING
    by_type = {o.type: o for o in ai.orders.values() if o.type.is_conditional}
    waiting = {a["client_algo_id"]: a for a in snapshot(bybit_sandbox, trader)["algo_orders"] if a["status"] == "NEW"}
    assert set(waiting) == {o.client_order_id for o in by_type.values()}
    await wait_for(lambda: all(o.id is not None for o in by_type.values()))
    assert not any(o.triggered for o in by_type.values())  # reports of a waiting order say Untriggered
    await shock(bybit_sandbox, "BTCUSDT", 1.02, "linear")  # the take-profit triggers, its limit sell fills
    tp = by_type[OrderType.TAKE_PROFIT_LIMIT]
    await wait_for(lambda: tp.status is OrderStatus.CLOSED and tp.trades, timeout=10)
    await shock(bybit_sandbox, "BTCUSDT", 0.98, "linear")  # the stop triggers
    sl = by_type[OrderType.STOP_MARKET]
    await wait_for(lambda: sl.status is OrderStatus.CLOSED and sl.trades, timeout=10)
    await wait_for(lambda: ai.position.contracts == pytest.approx(0.005), timeout=10)
    assert tp.triggered and sl.triggered  # the engine read the trigger from the exchange's status (Untriggered -> Filled)
    assert float(snapshot(bybit_sandbox, trader)["futures"]["positions"]["BTCUSDT"]["amount"]) == pytest.approx(0.005)


async def test_listings_follow_bybits_cursor(bybit_strategy, bybit_sandbox, trader) -> None:
    """Bybit answers open orders 20 at a time with a cursor to the next page: the venue lists every one (the
    e-stop's check and the start-up adopt what these listings show), and its history and fills likewise."""
    s = await bybit_strategy(universe=["BTC/USDT"])
    bid, _ = bid_ask(bybit_sandbox)
    for k in range(27):
        assert await s.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.001, price=bid * (0.9 - 0.001 * k), waitfor=0) is PENDING
    await wait_for(lambda: len(snapshot(bybit_sandbox, trader)["open_orders"]) == 27)
    listed = await s.venue.open_orders("BTC/USDT", timeout=10)
    assert len(listed) == 27 and len({o.client_order_id for o in listed}) == 27
    history = await s.venue.order_history("BTC/USDT", timeout=10)
    assert {o.client_order_id for o in listed} <= {o.client_order_id for o in history}


async def test_hedge_mode_keeps_long_and_short_apart(bybit_strategy, bybit_sandbox, trader) -> None:
    """Hedge mode on a USDT perpetual: the account is switched at start-up, a long and a short are held at once
    (Bybit's ``positionIdx`` 1 and 2), closing one side leaves the other, and a closing e-stop closes both."""
    s = await bybit_strategy(name="perp", margin=True, universe=["BTC/USDT:USDT"], position_mode="hedge", risk={"estop_budget_s": 5.0})
    ai = s.universe["BTC/USDT:USDT"]
    assert trader.hedge_mode and ai.hedged
    assert await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.01, waitfor=0) is None  # which side? refused by name
    assert isinstance(await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.01, position_side="long", waitfor=5), Trade)
    assert isinstance(await s.call(ai, OrderType.MARKET, Side.SELL, amount=0.02, position_side="short", waitfor=5), Trade)
    positions = lambda: snapshot(bybit_sandbox, trader)["futures"]["positions"]  # noqa: E731
    assert float(positions()["BTCUSDT:LONG"]["amount"]) == pytest.approx(0.01)
    assert float(positions()["BTCUSDT:SHORT"]["amount"]) == pytest.approx(-0.02)
    await wait_for(lambda: ai.position_of(PositionSide.LONG).contracts == pytest.approx(0.01), timeout=10)
    await wait_for(lambda: ai.position_of(PositionSide.SHORT).contracts == pytest.approx(-0.02), timeout=10)
    closed = await s.close_position(ai, "long")
    assert closed.sides == (PositionSide.LONG,) and isinstance(closed[PositionSide.LONG], Trade)
    assert "BTCUSDT:LONG" not in positions() and float(positions()["BTCUSDT:SHORT"]["amount"]) == pytest.approx(-0.02)
    await wait_for(lambda: not ai.position_of(PositionSide.LONG).contracts, timeout=10)
    assert ai.position_of(PositionSide.SHORT).contracts == pytest.approx(-0.02)
    report = await s.emergency_stop("close everything", close_positions=True)
    assert report.clean, report
    assert positions() == {}


async def test_spot_stops_and_attached_exits(bybit_strategy, bybit_sandbox, trader) -> None:
    """Spot conditional orders (Bybit's ``StopOrder``: nothing held until the trigger), and a spot entry's attached
    stop-loss and take-profit: Bybit has no order list, so both exits wait on the exchange for the whole amount and
    the engine cancels the other when one acts; the exchange's snapshot agrees at each step."""
    s = await bybit_strategy(universe=["BTC/USDT"])
    ai = s.universe["BTC/USDT"]
    await wait_for(lambda: wallet_subscribed(bybit_sandbox, trader), timeout=10)
    last = await shock(bybit_sandbox, "BTCUSDT", 1.0)
    ai.last_price = last
    buy_stop = await s.call(ai, OrderType.STOP_LIMIT, Side.BUY, amount=0.01, price=last * 1.03, trigger_price=last * 1.01, waitfor=0)
    assert buy_stop is PENDING
    entry = await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.02, stop_loss=last * 0.97, take_profit=last * 1.02, waitfor=5)
    assert isinstance(entry, Trade)
    exits = lambda: [o for o in ai.orders.values() if o.parent == entry.client_order_id]  # noqa: E731
    await wait_for(lambda: len(exits()) == 2 and all(o.id is not None for o in exits()), timeout=10)
    acct = snapshot(bybit_sandbox, trader)
    waiting = {o["client_order_id"]: o for o in acct["open_orders"]}
    assert set(waiting) == {o.client_order_id for o in exits()} | {ai.orders[buy_stop_cid(ai, OrderType.STOP_LIMIT)].client_order_id}
    (amount,) = {o.amount for o in exits()}  # both exits guard the same coins, what the entry bought
    assert 0.019 < amount <= 0.02
    assert float(acct["spot_balances"]["BTC"]["locked"]) == 0 and float(acct["spot_balances"]["USDT"]["locked"]) == 0
    await shock(bybit_sandbox, "BTCUSDT", 1.015)  # the buy stop triggers and fills at its limit
    stop = ai.orders[buy_stop_cid(ai, OrderType.STOP_LIMIT)]
    await wait_for(lambda: stop.status is OrderStatus.CLOSED and stop.triggered, timeout=10)
    await shock(bybit_sandbox, "BTCUSDT", 1.025)  # the take-profit triggers and sells; the engine cancels the stop-loss
    take = next(o for o in exits() if o.type is OrderType.TAKE_PROFIT_MARKET)
    loss = next(o for o in exits() if o.type is OrderType.STOP_MARKET)
    await wait_for(lambda: take.status is OrderStatus.CLOSED and loss.status is OrderStatus.CANCELED, timeout=10)
    assert snapshot(bybit_sandbox, trader)["open_orders"] == []
    await wait_for(lambda: s.cash("BTC").total == pytest.approx(float(snapshot(bybit_sandbox, trader)["spot_balances"]["BTC"]["free"])))


def buy_stop_cid(ai: Any, kind: OrderType) -> str:
    return next(o.client_order_id for o in ai.orders.values() if o.type is kind and o.parent is None)


async def test_linear_attached_exits_cancel_each_other(bybit_strategy, bybit_sandbox, trader) -> None:
    """A USDT perpetual entry's stop-loss and take-profit: two reduce-only conditional orders under the strategy's
    ids; the stop-loss closes the position and the engine cancels the take-profit."""
    s = await bybit_strategy(name="perp", margin=True, universe=["BTC/USDT:USDT"], default_leverage=5)
    ai = s.universe["BTC/USDT:USDT"]
    last = await shock(bybit_sandbox, "BTCUSDT", 1.0, "linear")
    ai.last_price = last
    entry = await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.02, stop_loss=last * 0.98, take_profit=last * 1.02, waitfor=5)
    assert isinstance(entry, Trade)
    exits = lambda: [o for o in ai.orders.values() if o.parent == entry.client_order_id]  # noqa: E731
    await wait_for(lambda: len(exits()) == 2 and all(o.id is not None for o in exits()), timeout=10)
    waiting = {a["client_algo_id"]: a for a in snapshot(bybit_sandbox, trader)["algo_orders"] if a["status"] == "NEW"}
    assert set(waiting) == {o.client_order_id for o in exits()}
    assert all(a["reduce_only"] for a in waiting.values()), waiting
    await shock(bybit_sandbox, "BTCUSDT", 0.97, "linear")  # the stop-loss triggers and closes the position
    loss = next(o for o in exits() if o.type is OrderType.STOP_MARKET)
    take = next(o for o in exits() if o.type is OrderType.TAKE_PROFIT_MARKET)
    await wait_for(lambda: loss.status is OrderStatus.CLOSED and take.status is OrderStatus.CANCELED, timeout=10)
    acct = snapshot(bybit_sandbox, trader)
    assert acct["futures"]["positions"] == {} and not [a for a in acct["algo_orders"] if a["status"] == "NEW"]
    await wait_for(lambda: ai.position.contracts == 0, timeout=10)


def exchange_stop(server: BybitServer, acct: Account, cid: str) -> float | None:
    """The trigger the exchange holds for the conditional order ``cid`` still waiting (spot order or linear algo)."""
    view = snapshot(server, acct)
    for o in view["open_orders"]:
        if o["client_order_id"] == cid and not o.get("working", True):
            return float(o["stop_price"])
    for a in view["algo_orders"]:
        if a["client_algo_id"] == cid and a["status"] == "NEW":
            return float(a["trigger_price"])
    return None


@pytest.mark.parametrize("kind", ["spot", "linear"])
async def test_the_engines_trailing_stop_follows_the_price(bybit_strategy, bybit_sandbox, trader, kind) -> None:
    """Bybit has no trailing stop of an order's own: the engine's is a stop-market order whose trigger it moves up
    after the price (never down), and which the exchange triggers on the fall; the exchange's trigger and the
    engine's agree at each step."""
    perp = kind == "linear"
    symbol = "BTC/USDT:USDT" if perp else "BTC/USDT"
    s = await bybit_strategy(name=kind, margin=perp, universe=[symbol], default_leverage=5)
    ai = s.universe[symbol]
    last = await shock(bybit_sandbox, "BTCUSDT", 1.0, kind)
    ai.last_price = last
    if perp:
        assert isinstance(await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.01, waitfor=5), Trade)
    extra = {"reduce_only": True} if perp else {}
    assert await s.call(ai, OrderType.TRAILING_STOP, Side.SELL, amount=0.01, trailing_percent=1.0, waitfor=0, **extra) is PENDING
    (order,) = [o for o in ai.orders.values() if o.type is OrderType.TRAILING_STOP]
    await wait_for(lambda: order.id is not None and exchange_stop(bybit_sandbox, trader, order.client_order_id) is not None)
    first = exchange_stop(bybit_sandbox, trader, order.client_order_id)
    assert first == pytest.approx(order.trigger_price) and first < last
    await shock(bybit_sandbox, "BTCUSDT", 1.03, kind)  # a new high: the stop follows it up
    await wait_for(lambda: (exchange_stop(bybit_sandbox, trader, order.client_order_id) or 0) > first * 1.02, timeout=10)
    moved = exchange_stop(bybit_sandbox, trader, order.client_order_id)
    await wait_for(lambda: order.trigger_price == pytest.approx(moved))
    assert s.sink.of("order_amended")
    await shock(bybit_sandbox, "BTCUSDT", 1.005, kind)  # the fall: the exchange triggers the stop, it sells
    await wait_for(lambda: order.status is OrderStatus.CLOSED and order.triggered and order.filled == pytest.approx(0.01), timeout=10)
    fills = [f for f in snapshot(bybit_sandbox, trader)["fills"] if f["client_order_id"] == order.client_order_id]
    assert sum(float(f["qty"]) for f in fills) == pytest.approx(0.01)
    assert max(float(f["price"]) for f in fills) < moved * 1.001  # it sold after the fall through the moved trigger, not the first


async def a_resting_trailing_stop(bybit_strategy: Any, server: BybitServer, acct: Account) -> tuple[Any, Any]:
    """A strategy on BTC/USDT spot and its engine trailing stop (1 %), resting on the exchange."""
    s = await bybit_strategy(universe=["BTC/USDT"])
    ai = s.universe["BTC/USDT"]
    ai.last_price = await shock(server, "BTCUSDT", 1.0)
    assert await s.call(ai, OrderType.TRAILING_STOP, Side.SELL, amount=0.01, trailing_percent=1.0, waitfor=0) is PENDING
    (order,) = [o for o in ai.orders.values() if o.type is OrderType.TRAILING_STOP]
    await wait_for(lambda: order.id is not None and exchange_stop(server, acct, order.client_order_id) is not None)
    return s, order


async def test_the_engines_trailing_stop_after_a_restart(bybit_strategy, bybit_sandbox, trader) -> None:
    """A restart takes the trigger the exchange holds (moved before the stop), not the one the journal recorded at
    placement, so the next move starts from there and never loosens the stop."""
    first, order = await a_resting_trailing_stop(bybit_strategy, bybit_sandbox, trader)
    placed = order.trigger_price
    await shock(bybit_sandbox, "BTCUSDT", 1.03)
    await wait_for(lambda: (exchange_stop(bybit_sandbox, trader, order.client_order_id) or 0) > placed * 1.02, timeout=10)
    moved = exchange_stop(bybit_sandbox, trader, order.client_order_id)
    await first.stop()
    second = await bybit_strategy(universe=["BTC/USDT"])
    again = second.universe["BTC/USDT"].orders[order.client_order_id]
    assert again.type is OrderType.TRAILING_STOP and again.trigger_price == pytest.approx(moved)


async def test_positions_of_a_universe_of_several_perpetuals(bybit_strategy, bybit_sandbox, trader) -> None:
    """Bybit's position listing takes one symbol (ccxt refuses a list of several): the venue reads the account's
    listing and keeps the universe's, so the engine's REST view of two perpetuals matches the exchange's."""
    from planar_core.engine.sync import sync_positions

    perps = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    s = await bybit_strategy(name="perps", margin=True, universe=perps, default_leverage=5)
    for sym, amount in zip(perps, (0.01, 0.1), strict=True):
        assert isinstance(await s.call(sym, OrderType.MARKET, Side.BUY, amount=amount, waitfor=5), Trade)
    listed = await s.venue.positions(perps, timeout=10)
    held = snapshot(bybit_sandbox, trader)["futures"]["positions"]
    assert {p.symbol: p.contracts for p in listed} == {
        "BTC/USDT:USDT": pytest.approx(float(held["BTCUSDT"]["amount"])),
        "ETH/USDT:USDT": pytest.approx(float(held["ETHUSDT"]["amount"])),
    }
    await sync_positions(s)
    assert [s.universe[x].position.contracts for x in perps] == [pytest.approx(0.01), pytest.approx(0.1)]


async def test_the_engines_trailing_stop_never_moves_back_after_an_unanswered_move(bybit_strategy, bybit_sandbox, trader) -> None:
    """A move whose answer is lost (the amend landed, the reply was garbled, the user stream is held) leaves the
    engine unsure where the stop is: the next move must not be looser than that one, even when the price eases
    back. Every move the exchange confirmed after it is at least as tight."""
    s = await bybit_strategy(universe=["BTC/USDT"])
    ai = s.universe["BTC/USDT"]
    last = await shock(bybit_sandbox, "BTCUSDT", 1.0)
    ai.last_price = last
    assert await s.call(ai, OrderType.TRAILING_STOP, Side.SELL, amount=0.01, trailing_percent=1.0, waitfor=0) is PENDING
    (order,) = [o for o in ai.orders.values() if o.type is OrderType.TRAILING_STOP]
    await wait_for(lambda: order.id is not None and exchange_stop(bybit_sandbox, trader, order.client_order_id) is not None)
    first = exchange_stop(bybit_sandbox, trader, order.client_order_id)
    bybit_sandbox.ex.faults = Faults(malformed_rate=1.0, paused_user_stream=True)
    await shock(bybit_sandbox, "BTCUSDT", 1.03)  # the move lands on the exchange; its answer does not
    await wait_for(lambda: (exchange_stop(bybit_sandbox, trader, order.client_order_id) or 0) > first * 1.02, timeout=10)
    landed = exchange_stop(bybit_sandbox, trader, order.client_order_id)
    await wait_for(lambda: any(e.get("client_order_id") == order.client_order_id for e in s.sink.of("error_occurred")), timeout=10)
    bybit_sandbox.ex.faults = Faults(paused_user_stream=True)  # answers again; the stream still says nothing
    # above the stop that landed, below the high: trailing from this price would be looser than what landed
    eased = await shock(bybit_sandbox, "BTCUSDT", 1.026)
    await wait_for(lambda: ai.last_price == pytest.approx(eased, rel=2e-3), timeout=10)
    high = await shock(bybit_sandbox, "BTCUSDT", 1.05)  # a new high: a tighter move, confirmed
    await wait_for(lambda: (exchange_stop(bybit_sandbox, trader, order.client_order_id) or 0) > landed * 1.01, timeout=10)
    bybit_sandbox.ex.faults = Faults()
    moves = [e["trigger_price"] for e in s.sink.of("order_amended")]
    assert moves and min(moves) >= landed, (moves, landed)  # no confirmed move below the one that landed unanswered
    assert exchange_stop(bybit_sandbox, trader, order.client_order_id) <= high


async def test_the_engines_trailing_stop_loosened_outside_the_engine_is_moved_back(bybit_strategy, bybit_sandbox, trader) -> None:
    """The exchange's trigger looser than the engine's (moved from outside the engine, or a move that did not land
    after all): the engine's view follows the exchange's report, says so, and the next price moves the stop back
    to where the trail puts it. The engine kept its tighter trigger and never moved the stop again, so it believed
    in a protection the exchange did not hold."""
    s, order = await a_resting_trailing_stop(bybit_strategy, bybit_sandbox, trader)
    ai = s.universe["BTC/USDT"]
    placed = order.trigger_price
    await shock(bybit_sandbox, "BTCUSDT", 1.03)
    await wait_for(lambda: (exchange_stop(bybit_sandbox, trader, order.client_order_id) or 0) > placed * 1.02, timeout=10)
    moved = exchange_stop(bybit_sandbox, trader, order.client_order_id)
    await wait_for(lambda: order.trigger_price == pytest.approx(moved))
    outside = make_bybit_client(bybit_sandbox, trader)
    try:
        await outside.load_markets()
        await outside.edit_order(order.id, "BTC/USDT", "market", "sell", 0.01, None, {"triggerPrice": placed})
    finally:
        await outside.close()
    assert exchange_stop(bybit_sandbox, trader, order.client_order_id) == pytest.approx(placed)
    # the engine's view, before anything repairs the stop: the exchange's looser trigger, and a record of it
    await wait_for(lambda: order.trigger_price == pytest.approx(placed), timeout=10)
    assert any("looser" in str(e.get("reason")) for e in s.sink.of("error_occurred"))
    ai.last_price = await shock(bybit_sandbox, "BTCUSDT", 1.031)  # the next price: the trail puts it back
    await wait_for(lambda: (exchange_stop(bybit_sandbox, trader, order.client_order_id) or 0) >= moved, timeout=10)
    await wait_for(lambda: order.trigger_price == pytest.approx(exchange_stop(bybit_sandbox, trader, order.client_order_id)))


class _Later:
    """The real clock, ``days`` ahead: a restart that long after the last run, for the start-up's lookback."""

    def __init__(self, days: float) -> None:
        self.shift = days * 86400.0

    def time(self) -> float:
        import time

        return time.time() + self.shift

    def monotonic(self) -> float:
        import time

        return time.monotonic()


async def test_the_engines_trailing_stop_placed_before_the_lookback(bybit_strategy, bybit_sandbox, trader) -> None:
    """An order still open that was placed before the start-up's lookback (three days of trades) keeps what was
    asked for: the trace is read further back for its placement. Without it, a trailing stop resting for a week
    came back as a plain stop-market order and stopped trailing."""
    first, order = await a_resting_trailing_stop(bybit_strategy, bybit_sandbox, trader)
    await first.stop()
    # the twin check reads the real clock: with the engine's moved, the order would look placed after its window
    second = await bybit_strategy(universe=["BTC/USDT"], start=False, twin_check={"enabled": False})
    second.clock = _Later(days=4)  # the start-up's lookback begins a day after the order was placed
    await second.start()
    again = second.universe["BTC/USDT"].orders[order.client_order_id]
    assert again.type is OrderType.TRAILING_STOP and again.trailing_percent == pytest.approx(1.0)
    assert again.trigger_price == pytest.approx(exchange_stop(bybit_sandbox, trader, order.client_order_id))


async def test_an_accepted_order_is_open_without_a_stream_report(bybit_strategy, bybit_sandbox, trader) -> None:
    """Bybit's answer to a create request names the order and says no more (no status): the order is accepted, so
    it is open and its intent resolved, without waiting for the stream (here paused) to say so. It stayed an
    intent, and a restart took it for an unresolved one."""
    s = await bybit_strategy(universe=["BTC/USDT"])
    ai = s.universe["BTC/USDT"]
    last = ai.last_price = await shock(bybit_sandbox, "BTCUSDT", 1.0)
    bybit_sandbox.ex.faults.paused_user_stream = True
    assert await s.call(ai, OrderType.STOP_MARKET, Side.SELL, amount=0.01, trigger_price=last * 0.9, waitfor=0) is PENDING
    (order,) = ai.orders.values()
    assert order.id is not None and order.status is OrderStatus.OPEN
    assert order.client_order_id not in s.journal.unresolved()
    assert exchange_stop(bybit_sandbox, trader, order.client_order_id) == pytest.approx(order.trigger_price)


async def test_one_second_candles_across_a_stalled_trade_stream(bybit_strategy, bybit_sandbox, trader) -> None:
    """Bybit serves no 1 s klines: the engine builds them from public trades (exchange/trade_bars.py). A feed that
    stalls (the connection open, nothing said) must not turn the seconds it missed into flat candles marked final:
    each closed candle's volume and close are the exchange's own prints of that second."""
    from planar_core.sandbox import public

    s = await bybit_strategy(universe=["BTC/USDT"], timeframes=["1s"])
    ai = s.universe["BTC/USDT"]
    ex = bybit_sandbox.ex
    m = ex.markets[("spot", "BTCUSDT")]
    await wait_for(lambda: len(ai.candles("1s").closed) >= 2, timeout=10)
    stalled_from = ex.now_ms()
    ex.faults.paused_market_stream = True
    await wait_for(lambda: ex.now_ms() >= stalled_from + 3_500, timeout=10)  # the sandbox's clock: seconds missed
    ex.faults.paused_market_stream = False
    stalled = range(stalled_from // 1000 + 1, stalled_from // 1000 + 4)
    await wait_for(lambda: (ai.candles("1s").closed_through or 0) > stalled[-1] * 1000, timeout=10)
    closed = {int(row[0]): row for row in ai.candles("1s").closed}  # [open time, o, h, l, c, v]
    for second in stalled:
        (p,) = public.prints(ex, m, second * 1000 - 1, second * 1000)
        row = closed[second * 1000]
        assert (row[5], row[4]) == (pytest.approx(float(p["qty"])), pytest.approx(float(p["price"]))), second


async def test_a_server_timeout_leaves_the_order_unknown(bybit_strategy, bybit_sandbox, trader) -> None:
    """Bybit's retCode 10000 "Server Timeout" says nothing of the request's outcome. An outside trial saw ccxt's
    plain ExchangeError for it booked as a refusal (``rejected`` at once, never looked up: on Bybit the order may
    be live)."""
    s = await bybit_strategy()
    bid, _ = bid_ask(bybit_sandbox, "BTCUSDT")
    bybit_sandbox.ex.faults = Faults(timeout_rate=1.0, hang_s=0.2)
    answer = await s.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.9, waitfor=0)
    bybit_sandbox.ex.faults = Faults()
    assert answer is not None, s.last_refusal  # not a refusal: the outcome is not known
    (order,) = s.universe["BTC/USDT"].orders.values()
    await wait_for(lambda: order.status is OrderStatus.FAILED, timeout=30)  # looked up by orderLinkId: proven absent
    assert order.verdict == "absent"


async def test_a_margin_mode_bybit_will_not_switch_is_not_taken_as_set(bybit_strategy, bybit_sandbox, trader) -> None:
    """An outside margin trial (2 of 2): Bybit refuses to switch the account's margin mode while a position is open
    (3400045 "Set margin mode failed", reason 3400214), and the engine read that code as "already so": it showed
    isolated and traded in cross, where the loss the operator capped was not capped. The order that would add is
    refused, with the exchange's reason, and the mode is not recorded."""
    first = await bybit_strategy(name="crossed", margin=True, universe=["BTC/USDT:USDT"])
    assert isinstance(await first.call(first.universe["BTC/USDT:USDT"], OrderType.MARKET, Side.BUY, amount=0.1, waitfor=5), Trade)
    iso = await bybit_strategy(name="iso", margin=True, universe=[{"symbol": "BTC/USDT:USDT", "margin_mode": "isolated"}])
    ai = iso.universe["BTC/USDT:USDT"]
    assert await iso.call(ai, OrderType.MARKET, Side.BUY, amount=0.1, waitfor=5) is None
    refusal = iso.last_refusal
    assert refusal is not None and refusal.reason is RefusalReason.MARGIN_SETUP and "3400045" in refusal.detail
    assert ai.margin_mode != "isolated"
    assert snapshot(bybit_sandbox, trader)["futures"]["positions"]["BTCUSDT"]["amount"] in ("0.1", "0.10", "0.100")
