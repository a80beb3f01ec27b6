"""Realised PnL on the engine's fills (engine/updates.py, engine/ledger.py): every Trade carries it, the trace's
``trade_executed`` carries it with the basis after the fill, a ``round_trip`` is recorded when a position is flat
again, a restart rebuilds the basis from the trace, and an emulated fill a real trade replaces is undone first."""

from __future__ import annotations

from typing import Any

import pytest

from planar_core.engine.sync import restore_basis
from planar_core.engine.updates import apply_order, apply_trade
from planar_core.model import Order, OrderStatus, OrderType, PositionSide, Side, Trade
from planar_core.model.venue import Fee, FillReport, OrderReport

from .fake_venue import started
from .stubs import sink_of

SYM = "BTC/USDT"
PERP = "BTC/USDT:USDT"


def order(s, cid: str, side: Side, amount: float, symbol: str = SYM, position_side: PositionSide = PositionSide.BOTH) -> Order:
    o = Order(cid, symbol, side, OrderType.MARKET, amount, None, id=f"o-{cid}", status=OrderStatus.OPEN, position_side=position_side)
    s.universe[symbol].orders[cid] = o
    return o


def fill(cid: str, side: Side, amount: float, price: float, tid: str, symbol: str = SYM, **kw) -> FillReport:
    return FillReport(symbol, tid, f"o-{cid}", cid, side, amount, price, 1_700_000_000_000 + int(tid.strip("t") or 0), **kw)


async def test_spot_fills_carry_realised_pnl_and_a_round_trip_is_recorded() -> None:
    s, _, _ = await started()
    order(s, "b1", Side.BUY, 1.0)
    order(s, "b2", Side.BUY, 1.0)
    order(s, "s1", Side.SELL, 2.0)
    buy = apply_trade(s, fill("b1", Side.BUY, 1.0, 100.0, "t1", fee=Fee(1.0, "USDT")))
    apply_trade(s, fill("b2", Side.BUY, 1.0, 120.0, "t2"))
    sell = apply_trade(s, fill("s1", Side.SELL, 2.0, 130.0, "t3", fee=Fee(2.0, "USDT")))
    assert buy is not None and sell is not None
    assert buy.realized_pnl == 0.0 and sell.realized_pnl == pytest.approx(40.0)
    events = sink_of(s).of("trade_executed")
    assert [e["realized_pnl"] for e in events] == [0.0, 0.0, pytest.approx(40.0)]
    assert events[1]["basis"]["lots"] == [[1.0, 100.0, 1_700_000_000_001.0], [1.0, 120.0, 1_700_000_000_002.0]]
    (trip,) = sink_of(s).of("round_trip")
    assert trip["symbol"] == SYM and trip["side"] == "long" and trip["trade_id"] == "t3"
    assert trip["realized_pnl"] == pytest.approx(40.0) and trip["fee"] == pytest.approx(3.0) and trip["amount"] == 2.0
    assert trip["entry_price"] == pytest.approx(110.0) and trip["exit_price"] == 130.0 and trip["duration_s"] == pytest.approx(0.002)


async def test_an_order_calls_answer_carries_its_fills_realised_pnl() -> None:
    """``call``'s answer (``aggregate``: the order's fills as one Trade) sums its fills' realised PnL; it said None
    for a closing fill whose ``on_fill`` carried the figure (an outside trial). Unknown for one fill: None, not 0."""
    from planar_core.engine.orders import aggregate

    s, _, _ = await started()
    order(s, "b1", Side.BUY, 2.0)
    sell = order(s, "s1", Side.SELL, 2.0)
    apply_trade(s, fill("b1", Side.BUY, 2.0, 100.0, "t1"))
    apply_trade(s, fill("s1", Side.SELL, 1.0, 110.0, "t2"))
    apply_trade(s, fill("s1", Side.SELL, 1.0, 130.0, "t3"))
    assert aggregate(sell).realized_pnl == pytest.approx(40.0)
    sell.trades[-1].realized_pnl = None
    assert aggregate(sell).realized_pnl is None


async def test_a_restart_rebuilds_the_cost_basis_from_the_trace() -> None:
    s, _, _ = await started()
    order(s, "b1", Side.BUY, 2.0)
    order(s, "s1", Side.SELL, 0.5)
    apply_trade(s, fill("b1", Side.BUY, 2.0, 100.0, "t1"))
    apply_trade(s, fill("s1", Side.SELL, 0.5, 110.0, "t2"))
    before = s.ledger.bases()[SYM].snapshot()
    again, _, _ = await started()
    sink_of(again).events.extend(sink_of(s).events)  # the same trace, read by the next run's start-up sync
    assert restore_basis(again) == 1
    assert again.ledger.bases()[SYM].snapshot() == before
    order(again, "s2", Side.SELL, 1.5)
    sell = apply_trade(again, fill("s2", Side.SELL, 1.5, 90.0, "t3"))
    assert sell is not None and sell.realized_pnl == pytest.approx(-15.0)  # against the lots bought before the restart
    (trip,) = sink_of(again).of("round_trip")
    assert trip["realized_pnl"] == pytest.approx(5.0 - 15.0) and trip["entry_price"] == 100.0 and trip["fills"] == 3


async def bought_then_sold_emulated() -> tuple[Any, Order, Trade]:
    """1 bought at 100 (a real trade), then a sell the order's report says filled at 110, its fill emulated."""
    s, _, _ = await started()
    order(s, "b1", Side.BUY, 1.0)
    apply_trade(s, fill("b1", Side.BUY, 1.0, 100.0, "t1"))
    o = order(s, "s1", Side.SELL, 1.0)
    apply_order(s, OrderReport(SYM, "o-s1", "s1", OrderStatus.CLOSED, filled=1.0, average=110.0), emulate_now=True)
    (emu,) = o.trades
    return s, o, emu


async def test_a_real_trade_replacing_an_emulated_one_does_not_count_twice() -> None:
    s, _, emu = await bought_then_sold_emulated()
    assert emu.emulated and emu.realized_pnl == pytest.approx(10.0)
    real = apply_trade(s, fill("s1", Side.SELL, 1.0, 111.0, "t9"))
    assert real is not None and real.realized_pnl == pytest.approx(11.0)  # against the lot, not against nothing
    b = s.ledger.bases()[SYM]
    assert b.totals.realized == pytest.approx(11.0) and b.totals.trips == 1 and b.totals.fills == 2
    trips = sink_of(s).of("round_trip")
    assert [t["trade_id"] for t in trips] == [emu.trade_id, "t9"]  # the first is left out with the replaced fill


async def test_two_emulated_fills_waiting_on_one_position_are_each_replaced_once() -> None:
    """Two orders of one position filled before their trades came: the first real trade undid both emulated fills'
    undo records, so the second real trade was counted on top of its emulated fill (the position sold twice)."""
    s, _, _ = await started()
    order(s, "b1", Side.BUY, 2.0)
    apply_trade(s, fill("b1", Side.BUY, 2.0, 100.0, "t1"))
    o1 = order(s, "s1", Side.SELL, 1.0)
    o2 = order(s, "s2", Side.SELL, 1.0)
    apply_order(s, OrderReport(SYM, "o-s1", "s1", OrderStatus.CLOSED, filled=1.0, average=110.0), emulate_now=True)
    apply_order(s, OrderReport(SYM, "o-s2", "s2", OrderStatus.CLOSED, filled=1.0, average=120.0), emulate_now=True)
    assert o1.trades[0].emulated and o2.trades[0].emulated
    apply_trade(s, fill("s1", Side.SELL, 1.0, 111.0, "t8"))
    apply_trade(s, fill("s2", Side.SELL, 1.0, 121.0, "t9"))
    b = s.ledger.bases()[SYM]
    assert b.snapshot()["lots"] == [] and b.totals.realized == pytest.approx(11.0 + 21.0)


async def test_futures_the_venues_figure_wins_and_hedge_sides_are_apart() -> None:
    s, _, _ = await started((PERP,), margin=True, hedged=True)
    order(s, "l1", Side.BUY, 1.0, PERP, PositionSide.LONG)
    order(s, "h1", Side.SELL, 1.0, PERP, PositionSide.SHORT)
    order(s, "l2", Side.SELL, 1.0, PERP, PositionSide.LONG)
    order(s, "h2", Side.BUY, 1.0, PERP, PositionSide.SHORT)
    apply_trade(s, fill("l1", Side.BUY, 1.0, 100.0, "t1", PERP))
    apply_trade(s, fill("h1", Side.SELL, 1.0, 100.0, "t2", PERP))
    long_close = apply_trade(s, fill("l2", Side.SELL, 1.0, 90.0, "t3", PERP, realized_pnl=-9.75))
    short_close = apply_trade(s, fill("h2", Side.BUY, 1.0, 90.0, "t4", PERP))
    assert long_close is not None and short_close is not None
    assert (long_close.realized_pnl, short_close.realized_pnl) == (-9.75, pytest.approx(10.0))  # the venue's, when it says
    events = sink_of(s).of("trade_executed")
    assert events[2]["computed_pnl"] == pytest.approx(-10.0) and events[3]["computed_pnl"] is None
    assert sorted(s.ledger.bases()) == [f"{PERP}#long", f"{PERP}#short"]
    assert [(t["side"], t["position_side"]) for t in sink_of(s).of("round_trip")] == [("long", "long"), ("short", "short")]


async def test_an_emulated_fill_still_waiting_at_a_restart_is_replaced_not_added_to() -> None:
    """An outside crash trial (USD-M, 3 of 3): a fill emulated from the order's report, the engine killed before the
    real trade came; the restart rebuilt the basis with the emulated fill but not its undo, so the real trade counted
    on top ("no longer undoable"): realised PnL doubled, the strategy's own position twice the exchange's. The
    basis snapshot in the trace now carries the undo of the fills still waiting."""
    from planar_core.engine.ledger import FillLedger

    s, o, emu = await bought_then_sold_emulated()
    last = sink_of(s).of("trade_executed")[-1]
    assert last["emulated"] and last["basis"]["pending"]["emulated"] == [emu.trade_id]
    restarted = FillLedger()  # the next run's ledger, from the trace's last basis
    ai = s.universe[SYM]
    restarted.restore_basis(ai, last["basis"])
    real = Trade(SYM, Side.SELL, 1.0, 111.0, "o-s1", "s1", 1_700_000_000_009, trade_id="t9")
    done = restarted.realize(ai, o, real, [str(emu.trade_id)])
    b = restarted.bases()[SYM]
    assert done.pnl == pytest.approx(11.0) and b.totals.realized == pytest.approx(11.0) and b.snapshot()["lots"] == []
    assert "pending" not in done.basis  # nothing waits any more


@pytest.mark.parametrize("arrival", [["s2", "s1"], ["s2", "s1", "s3"], ["s3", "s1", "s2"], ["s1", "s3", "s2"]])
async def test_emulated_fills_replaced_in_any_order_count_once(arrival: list[str]) -> None:
    """The review of the first fix: real trades arriving in another order than their emulated fills lost the older
    fills' undo records (31 instead of 32 with two, 42 instead of 63 with three)."""
    s, _, _ = await started()
    order(s, "b1", Side.BUY, 3.0)
    apply_trade(s, fill("b1", Side.BUY, 3.0, 100.0, "t1"))
    prices = {"s1": 110.0, "s2": 120.0, "s3": 130.0}
    sells = [cid for cid in ("s1", "s2", "s3") if cid in arrival]
    for cid in sells:
        order(s, cid, Side.SELL, 1.0)
        apply_order(s, OrderReport(SYM, f"o-{cid}", cid, OrderStatus.CLOSED, filled=1.0, average=prices[cid]), emulate_now=True)
    for n, cid in enumerate(arrival):
        apply_trade(s, fill(cid, Side.SELL, 1.0, prices[cid] + 1, f"t{5 + n}"))
    b = s.ledger.bases()[SYM]
    assert b.totals.realized == pytest.approx(sum(prices[c] + 1 - 100.0 for c in sells))
    assert sum(lot[0] for lot in b.snapshot()["lots"]) == pytest.approx(3.0 - len(sells))
