"""The e-stop of a strategy whose account is its own (``risk.exclusive_account``): one cancel-all request per symbol,
verified by its success, instead of a cancel per order and a listing; compared with the exchange's snapshot."""

from __future__ import annotations

from typing import Any

from planar_core.model import PENDING, OrderType, Side

from ..conftest import make_client, wait_for
from ..engine.test_order_call import bid_ask, snapshot

SPOT2 = {"BTC/USDT": "BTCUSDT", "ETH/USDT": "ETHUSDT"}
AMOUNT = {"BTC/USDT": 0.001, "ETH/USDT": 0.01}


async def _rest(s: Any, sandbox: Any, per_symbol: int) -> None:
    for sym, market in SPOT2.items():
        bid, _ = bid_ask(sandbox, market)
        for i in range(per_symbol):
            assert await s.call(sym, OrderType.GTC, Side.BUY, amount=AMOUNT[sym], price=bid * (0.8 + i / 100), waitfor=0) is PENDING


async def _one_each_and_a_manual_order(s: Any, sandbox: Any, account: Any) -> None:
    """One resting order of the strategy per symbol, and one placed by hand that the strategy saw and left alone."""
    await _rest(s, sandbox, 1)
    raw = make_client(sandbox, account)
    try:
        await raw.load_markets()
        bid, _ = bid_ask(sandbox, "BTCUSDT")
        await raw.create_order("BTC/USDT", "limit", "buy", 0.001, round(bid * 0.7, 2))
    finally:
        await raw.close()
    await wait_for(lambda: len(snapshot(sandbox, account)["open_orders"]) == 3)
    await wait_for(lambda: bool(s.sink.of("order_foreign")), timeout=10)  # the engine saw it, and left it alone


def calls(s: Any, endpoint: str, since: int = 0) -> int:
    return sum(1 for e in s.sink.of("api_call")[since:] if e["endpoint"] == endpoint)


async def test_one_cancel_all_per_symbol_verifies_it(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    s = await strategy_factory(universe=list(SPOT2), risk={"exclusive_account": True, "estop_budget_s": 5.0})
    await _rest(s, sandbox, 5)
    await wait_for(lambda: len(snapshot(sandbox, account)["open_orders"]) == 10)
    before = len(s.sink.of("api_call"))
    report = await s.emergency_stop("exclusive")
    assert report.clean and report.cancelled == 10, report
    assert snapshot(sandbox, account)["open_orders"] == []
    # one request per symbol; no cancel by id, no listing
    assert calls(s, "cancel_all_orders", before) == 2
    assert calls(s, "cancel_order", before) == calls(s, "fetch_open_orders", before) == 0
    await wait_for(lambda: all(str(o.status) == "canceled" for ai in s.universe.values() for o in ai.orders.values()))


async def test_an_order_of_someone_else_is_cancelled_and_said(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    """The account was not exclusive after all: the cancel-all takes a manual order too (one the strategy did not
    adopt), and the report says so."""
    s = await strategy_factory(
        universe=list(SPOT2), risk={"exclusive_account": True, "estop_budget_s": 5.0}, startup_sync={"foreign_orders": "ignore"}
    )
    await _one_each_and_a_manual_order(s, sandbox, account)
    report = await s.emergency_stop("exclusive, but shared")
    assert report.clean and report.cancelled == 2, report
    assert snapshot(sandbox, account)["open_orders"] == []
    assert any("not this strategy's" in e for e in report.errors), report.errors


async def test_a_shared_account_is_never_cancelled_wholesale(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    """The default: cancels by id only; a manual order the strategy did not adopt stays."""
    s = await strategy_factory(universe=list(SPOT2), risk={"estop_budget_s": 5.0}, startup_sync={"foreign_orders": "ignore"})
    await _one_each_and_a_manual_order(s, sandbox, account)
    before = len(s.sink.of("api_call"))
    report = await s.emergency_stop("shared")
    assert report.clean and report.cancelled == 2, report
    assert len(snapshot(sandbox, account)["open_orders"]) == 1 and calls(s, "cancel_all_orders", before) == 0


async def test_futures_books_both_cancelled_at_once(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    """USDⓈ-M: the order book and the Algo Service's (a stop still waiting) each get their cancel-all, at once;
    their answers name no order, so the strategy's open orders count as cancelled, and the snapshot agrees."""
    perp = "BTC/USDT:USDT"
    s = await strategy_factory(name="perp", margin=True, universe=[perp], risk={"exclusive_account": True, "estop_budget_s": 5.0})
    ai = s.universe[perp]
    bid, ask = bid_ask(sandbox, "BTCUSDT", "linear")
    ai.last_price = ask
    assert await s.call(ai, OrderType.GTC, Side.BUY, amount=0.01, price=round(bid * 0.97, 1), waitfor=0) is PENDING
    assert await s.call(ai, OrderType.STOP_MARKET, Side.BUY, amount=0.01, trigger_price=round(ask * 1.1, 1), waitfor=0) is PENDING
    await wait_for(lambda: all(o.id is not None for o in ai.open_orders()) and len(ai.open_orders()) == 2)
    before = len(s.sink.of("api_call"))
    report = await s.emergency_stop("exclusive futures")
    assert report.clean and report.cancelled == 2, report
    view = snapshot(sandbox, account)
    assert view["open_orders"] == [] and not [a for a in view["algo_orders"] if a["status"] == "NEW"]
    assert calls(s, "cancel_all_orders", before) == 2 and calls(s, "fetch_open_orders", before) == 0


async def test_closing_positions_counts_no_order_twice(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    """After closing the positions the stop cancels again (an order placed meanwhile). Orders its first cancel-all
    took, whose reports have not arrived (the user stream is paused here), are still open in the engine's record:
    they are not counted a second time."""
    perp = "BTC/USDT:USDT"
    s = await strategy_factory(name="perp", margin=True, universe=[perp], risk={"exclusive_account": True, "estop_budget_s": 5.0})
    ai = s.universe[perp]
    bid, ask = bid_ask(sandbox, "BTCUSDT", "linear")
    ai.last_price = ask
    assert await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.01, waitfor=5) is not PENDING
    for i in range(2):
        assert await s.call(ai, OrderType.GTC, Side.BUY, amount=0.01, price=round(bid * (0.97 + i / 200), 1), waitfor=0) is PENDING
    await wait_for(lambda: all(o.id is not None for o in ai.open_orders()) and len(ai.open_orders()) == 2)
    sandbox.ex.faults.paused_user_stream = True
    report = await s.emergency_stop("exclusive futures, closing", close_positions=True)
    assert report.cancelled == 2, report
    view = snapshot(sandbox, account)
    assert view["open_orders"] == [] and view["futures"]["positions"] == {}


async def test_an_exit_list_is_counted_from_its_list_shaped_answer(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    """Binance answers a cancel-all that took an OCO list with the list (its legs in ``orderReports``), not with two
    plain orders (rest-api.md, DELETE /api/v3/openOrders; the sandbox answered plain orders until 2026-12-07). The
    exclusive e-stop still counts both legs of the spot entry's exit list as cancelled, and nothing is left."""
    s = await strategy_factory(universe=["BTC/USDT"], risk={"exclusive_account": True, "estop_budget_s": 5.0})
    ai = s.universe["BTC/USDT"]
    price = ai.last_price
    await s.call(ai, OrderType.MARKET, Side.BUY, amount=0.002, stop_loss=price * 0.95, take_profit=price * 1.05, waitfor=2)
    await wait_for(lambda: len(snapshot(sandbox, account)["open_orders"]) == 2, timeout=10)  # the exits' list
    report = await s.emergency_stop("exclusive, with an exit list")
    assert report.clean and report.cancelled == 2, report
    assert snapshot(sandbox, account)["open_orders"] == []
