"""The order status machine and trade emulation, driven by hand-made venue reports on a stub strategy."""

from __future__ import annotations

import itertools

import pytest

from planar_core.engine.updates import apply_order, apply_trade
from planar_core.model import Order, OrderStatus, OrderType, PositionSide, Side, legal
from planar_core.model.status import TRANSITIONS
from planar_core.model.venue import FillReport, OrderReport, PositionReport

from .stubs import sink_of, stub_strategy

S = OrderStatus


def report(status: OrderStatus, filled: float, cost: float | None = None, fills: tuple[FillReport, ...] = ()) -> OrderReport:
    """The exchange's report of order "9" (client id c1) on BTC/USDT."""
    average = cost / filled if cost and filled else None
    return OrderReport("BTC/USDT", "9", "c1", status, filled=filled, average=average, fills=fills)


def fill(tid: str, amount: float, cid: str | None = "c1") -> FillReport:
    return FillReport("BTC/USDT", tid, "9", cid, None, amount, 50_000.0, None)


def position(contracts: float, side: PositionSide, entry: float) -> PositionReport:
    return PositionReport("BTC/USDT:USDT", side, contracts, entry_price=entry)


def test_the_transition_table() -> None:
    assert all(legal(a, a) for a in S)
    assert legal(S.INTENT, S.UNKNOWN) and legal(S.UNKNOWN, S.OPEN) and legal(S.OPEN, S.CLOSED)
    assert not legal(S.CLOSED, S.OPEN) and not legal(S.CANCELED, S.OPEN) and not legal(S.OPEN, S.UNKNOWN)
    assert not legal(S.OPEN, S.FAILED)  # booked orders are never "failed"
    finals = [s for s in S if not TRANSITIONS[s]]
    assert set(finals) == {S.CLOSED, S.CANCELED, S.EXPIRED, S.REJECTED}
    for a, b in itertools.product(S, S):  # nothing leaves a final state
        if a in finals and a != b:
            assert not legal(a, b)


def _order(s, cid: str = "c1", amount: float = 1.0, price: float | None = 50_000.0) -> Order:
    ai = s.universe["BTC/USDT"]
    o = Order(cid, ai.symbol, Side.BUY, OrderType.GTC, amount, price, False, status=S.INTENT)
    ai.orders[cid] = o
    return o


async def test_an_illegal_update_is_ignored_and_recorded() -> None:
    s = stub_strategy()
    o = _order(s)
    apply_order(s, report(S.CLOSED, 1.0, 50_000.0, fills=(fill("t1", 1.0, None),)), emulate_now=True)
    assert o.status is S.CLOSED
    apply_order(s, report(S.OPEN, 0.5), emulate_now=True)
    assert o.status is S.CLOSED and o.filled == 1.0  # a stale "open" neither reopens it nor shrinks the fill
    (ev,) = sink_of(s).of("illegal_transition")
    assert (ev["old"], ev["new"]) == ("closed", "open")


async def test_a_late_fill_after_a_cancel_is_kept() -> None:
    s = stub_strategy()
    o = _order(s)
    apply_order(s, report(S.CANCELED, 0.0), emulate_now=True)
    apply_order(s, report(S.CANCELED, 0.4, 20_000.0), emulate_now=True)
    assert o.status is S.CANCELED and o.filled == pytest.approx(0.4)
    assert [t.amount for t in o.trades] == [pytest.approx(0.4)]  # emulated from the filled delta


async def test_trades_are_emulated_from_filled_and_cost_deltas() -> None:
    s = stub_strategy()
    o = _order(s)
    apply_order(s, report(S.OPEN, 0.25, 12_400.0), emulate_now=True)
    apply_order(s, report(S.CLOSED, 1.0, 49_900.0), emulate_now=True)
    assert [(t.amount, t.price, t.emulated) for t in o.trades] == [(0.25, 49_600.0, True), (0.75, 50_000.0, True)]


async def test_a_real_trade_replaces_its_emulation_and_is_not_counted_twice() -> None:
    s = stub_strategy()
    o = _order(s)
    apply_order(s, report(S.CLOSED, 1.0, 50_000.0), emulate_now=True)
    assert len(o.trades) == 1 and o.trades[0].emulated
    emulated_id = o.trades[0].trade_id
    apply_trade(s, fill("t7", 1.0))
    assert [(t.trade_id, t.emulated) for t in o.trades] == [("t7", False)]
    assert sink_of(s).of("trade_executed")[-1]["replaces"] == [emulated_id]
    apply_trade(s, fill("t7", 1.0))
    assert len(o.trades) == 1  # the same trade id twice is one fill


async def test_a_trade_before_its_acknowledgement_waits_and_attaches() -> None:
    s = stub_strategy()
    o = _order(s)
    assert apply_trade(s, fill("t1", 0.5, None)) is None
    apply_order(s, report(S.OPEN, 0.5, 25_000.0), emulate_now=True)
    assert [(t.trade_id, t.emulated) for t in o.trades] == [("t1", False)]


async def test_an_order_type_the_venue_lacks_is_refused_by_name() -> None:
    from dataclasses import replace

    s = stub_strategy()
    s.venue.caps = replace(s.venue.caps, order_types=frozenset({"market", "gtc"}))  # a venue without FOK
    assert await s.call("BTC/USDT", OrderType.FOK, Side.BUY, amount=0.01, price=50_000.0) is None
    (refused,) = sink_of(s).of("order_failed")
    assert "order type fok is not offered by binance" in str(refused["reason"])


async def test_hedge_mode_needs_a_position_side_and_one_way_refuses_one() -> None:
    s = stub_strategy(symbols=("BTC/USDT:USDT",), margin=True)
    assert await s.call("BTC/USDT:USDT", OrderType.MARKET, Side.BUY, amount=0.01, position_side="long") is None
    assert "needs the account in hedge mode" in str(sink_of(s).of("order_failed")[-1]["reason"])


def test_one_way_mode_keeps_one_side_and_hedge_mode_both() -> None:
    s = stub_strategy(symbols=("BTC/USDT:USDT",), margin=True)
    ai = s.universe["BTC/USDT:USDT"]
    s.apply_positions([position(0.01, PositionSide.LONG, 100.0)])
    s.apply_positions([position(0.02, PositionSide.SHORT, 101.0)])
    assert ai.position.contracts == pytest.approx(-0.02) and len(ai.open_positions()) == 1  # the long one is closed
    ai.hedged = True
    ai.positions.clear()
    s.apply_positions([position(0.01, PositionSide.LONG, 100.0)])
    s.apply_positions([position(0.02, PositionSide.SHORT, 101.0)])
    assert len(ai.open_positions()) == 2 and ai.position.contracts == pytest.approx(-0.01)
    s.apply_positions([], complete=True)  # a full snapshot without them: both flat
    assert ai.open_positions() == []
