"""Fill reports applied by the engine (engine/updates.py) against the in-memory venue: a fill attaches to its order
by client id, by exchange id, or waits as an orphan until the order's id is known; duplicates, other strategies'
and foreign orders' fills are not kept. No socket, no sleep."""

from __future__ import annotations

import pytest

from planar_core.engine.notices import Filled
from planar_core.engine.updates import apply_order, apply_trade
from planar_core.exchange.client_ids import identity_of
from planar_core.model import Order, OrderStatus, OrderType, Side
from planar_core.model.venue import Fee, FillReport, OrderReport

from .fake_venue import started
from .stubs import sink_of

S = OrderStatus
SYM = "BTC/USDT"


def tracked(s, cid: str = "c1", oid: str | None = "9", status: OrderStatus = S.OPEN, amount: float = 1.0) -> Order:
    o = Order(cid, SYM, Side.BUY, OrderType.GTC, amount, 50_000.0, False, id=oid, status=status)
    s.universe[SYM].orders[cid] = o
    return o


def fill(
    tid: str | None = "t1", oid: str | None = "9", cid: str | None = "c1", amount: float = 0.5, price: float = 50_000.0, **kw
) -> FillReport:
    return FillReport(SYM, tid, oid, cid, Side.BUY, amount, price, 1_700_000_000_000, **kw)


async def test_a_fill_attaches_by_client_id() -> None:
    s, _, _ = await started()
    o = tracked(s, oid=None)
    trade = apply_trade(s, fill(oid="77"))
    assert trade is not None and o.trades == [trade] and trade.client_order_id == "c1"


async def test_a_fill_attaches_by_exchange_id() -> None:
    s, _, _ = await started()
    o = tracked(s)
    trade = apply_trade(s, fill(cid=None))
    assert trade is not None and o.trades == [trade] and trade.order_id == "9"


async def test_a_fill_grows_the_filled_amount_it_proves() -> None:
    s, _, _ = await started()
    o = tracked(s)
    apply_trade(s, fill(amount=0.3))
    assert o.filled == pytest.approx(0.3) and o.cost == pytest.approx(15_000.0)


async def test_a_fill_before_its_acknowledgement_waits_and_attaches_when_the_id_is_known() -> None:
    s, _, _ = await started()
    o = tracked(s, oid=None, status=S.INTENT)
    assert apply_trade(s, fill(cid=None)) is None
    assert not o.trades and s.ledger.waiting_for("9")
    apply_order(s, OrderReport(SYM, "9", "c1", S.OPEN, filled=0.5, average=50_000.0), emulate_now=True)
    assert [(t.trade_id, t.emulated) for t in o.trades] == [("t1", False)]
    assert not s.ledger.waiting_for("9")


async def test_an_orphan_fill_attaches_to_the_order_its_trigger_placed() -> None:
    from planar_core.engine.updates import mark_triggered

    s, _, _ = await started(("BTC/USDT:USDT",), margin=True)
    ai = s.universe["BTC/USDT:USDT"]
    o = Order("c1", ai.symbol, Side.SELL, OrderType.STOP_MARKET, 1.0, None, True, id="algo-1", status=S.OPEN, trigger_price=1.0)
    ai.orders["c1"] = o
    assert apply_trade(s, FillReport(ai.symbol, "t1", "555", None, Side.SELL, 1.0, 40_000.0, 1)) is None
    mark_triggered(s, ai, o, "websocket", "555")
    assert o.id == "555" and [t.trade_id for t in o.trades] == ["t1"]


async def test_the_same_fill_twice_is_one_fill() -> None:
    s, _, _ = await started()
    o = tracked(s)
    apply_trade(s, fill())
    assert apply_trade(s, fill()) is None
    assert len(o.trades) == 1 and len(sink_of(s).of("trade_executed")) == 1


async def test_another_strategys_fill_is_not_kept() -> None:
    s, _, _ = await started()
    other = f"{identity_of('other')}-abc-1"
    assert apply_trade(s, fill(oid="88", cid=other)) is None
    assert not s.ledger.waiting_for("88") and not sink_of(s).of("trade_executed")


async def test_a_foreign_orders_fill_is_not_kept() -> None:
    s, _, _ = await started()
    s.book.mark_foreign_id("88")
    assert apply_trade(s, fill(oid="88", cid="web_1")) is None
    assert not s.ledger.waiting_for("88")


async def test_a_fill_outside_the_universe_is_ignored() -> None:
    s, _, _ = await started()
    assert apply_trade(s, FillReport("SOL/USDT", "t1", "9", "c1", Side.BUY, 1.0, 1.0, 1)) is None


async def test_fee_realized_pnl_and_time_are_carried() -> None:
    s, _, _ = await started()
    tracked(s)
    trade = apply_trade(s, fill(fee=Fee(0.25, "USDT"), realized_pnl=-3.5))
    assert trade is not None
    assert (trade.fee, trade.fee_currency, trade.realized_pnl, trade.timestamp) == (0.25, "USDT", -3.5, 1_700_000_000_000)
    ev = sink_of(s).of("trade_executed")[0]
    assert (ev["fee"], ev["amount"], ev["price"]) == (0.25, 0.5, 50_000.0)


async def test_a_fill_without_time_or_side_takes_the_clock_and_the_orders_side() -> None:
    s, _, clock = await started()
    tracked(s)
    trade = apply_trade(s, FillReport(SYM, "t1", "9", "c1", None, 0.5, 50_000.0, None))
    assert trade is not None and trade.timestamp == clock.ms and trade.side is Side.BUY


async def test_a_real_fill_replaces_its_emulation() -> None:
    s, _, _ = await started()
    o = tracked(s)
    apply_order(s, OrderReport(SYM, "9", "c1", S.CLOSED, filled=1.0, average=50_000.0), emulate_now=True)
    emulated = o.trades[0].trade_id
    apply_trade(s, fill(amount=1.0))
    assert [(t.trade_id, t.emulated) for t in o.trades] == [("t1", False)]
    assert sink_of(s).of("trade_executed")[-1]["replaces"] == [emulated]


async def test_a_fill_is_announced_once_to_listeners() -> None:
    s, _, _ = await started()
    tracked(s)
    seen: list[str | None] = []
    s.hooks.listen(lambda ev: seen.append(ev.trade.trade_id) if isinstance(ev, Filled) else None)
    apply_trade(s, fill())
    apply_trade(s, fill())
    assert seen == ["t1"]


async def test_a_fill_on_an_untriggered_stop_proves_its_trigger() -> None:
    s, _, _ = await started()
    o = Order("c1", SYM, Side.SELL, OrderType.STOP_MARKET, 1.0, None, False, id="9", status=S.OPEN, trigger_price=40_000.0)
    s.universe[SYM].orders["c1"] = o
    apply_trade(s, fill())
    assert o.triggered and len(sink_of(s).of("order_triggered")) == 1


async def test_a_stream_fill_is_placed_where_the_stream_has_it() -> None:
    s, venue, _ = await started()
    tracked(s)
    (streamed,) = venue.push_fill(fill())
    trade = s.apply_trade(streamed)
    assert trade is not None and streamed.stamp is not None
    assert s.freshness.pending[f"{SYM}:t1"].mark.seq == streamed.stamp.seq  # waits for the stream's account update
