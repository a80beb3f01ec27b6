"""Order reports applied by the engine (engine/updates.py) against the in-memory venue: status transitions, illegal
ones, filled amounts, conditional orders, the events each records. No socket, no sleep."""

from __future__ import annotations

import pytest

from planar_core.engine.notices import OrderUpdated
from planar_core.engine.updates import apply_order
from planar_core.model import Order, OrderStatus, OrderType, Side
from planar_core.model.venue import OrderReport, TriggerPhase

from .fake_venue import started
from .stubs import sink_of

S = OrderStatus
SYM = "BTC/USDT"


def tracked(s, cid: str = "c1", status: OrderStatus = S.INTENT, order_type: OrderType = OrderType.GTC, oid: str | None = None) -> Order:
    ai = s.universe[SYM]
    o = Order(cid, SYM, Side.BUY, order_type, 1.0, 50_000.0, False, id=oid, status=status)
    ai.orders[cid] = o
    return o


def apply(s, r: OrderReport, source: str = "exchange") -> Order | None:
    """Apply a report; a fill it implies without a fill report is emulated at once (no timer)."""
    return apply_order(s, r, emulate_now=True, source=source)


def rep(status: OrderStatus | None, filled: float = 0.0, cid: str | None = "c1", oid: str | None = "9", **kw) -> OrderReport:
    return OrderReport(SYM, oid, cid, status, filled=filled, **kw)


async def test_intent_to_open_records_an_update_and_takes_the_exchange_id() -> None:
    s, _, _ = await started()
    o = tracked(s)
    assert apply(s, rep(S.OPEN)) is o
    assert o.status is S.OPEN and o.id == "9"
    assert [e["status"] for e in sink_of(s).of("order_updated")] == ["open"]


async def test_open_to_closed_is_recorded_as_filled() -> None:
    s, _, _ = await started()
    o = tracked(s, status=S.OPEN, oid="9")
    apply(s, rep(S.CLOSED, 1.0, average=50_000.0))
    assert o.status is S.CLOSED and o.filled == 1.0
    (ev,) = sink_of(s).of("order_filled")
    assert ev["client_order_id"] == "c1" and ev["filled"] == 1.0


async def test_cancel_and_expiry_are_recorded_as_cancelled() -> None:
    s, _, _ = await started()
    a, b = tracked(s, "c1", S.OPEN, oid="1"), tracked(s, "c2", S.OPEN, oid="2")
    apply(s, rep(S.CANCELED, oid="1"))
    apply(s, rep(S.EXPIRED, cid="c2", oid="2"))
    assert (a.status, b.status) == (S.CANCELED, S.EXPIRED)
    assert [e["status"] for e in sink_of(s).of("order_cancelled")] == ["canceled", "expired"]


async def test_a_rejection_is_recorded_as_failed_with_the_reason() -> None:
    s, _, _ = await started()
    o = tracked(s)
    apply(s, rep(S.REJECTED, reason="would immediately match"))
    assert o.status is S.REJECTED
    assert sink_of(s).of("order_failed")[-1]["status"] == "rejected"


async def test_closed_to_open_is_illegal_ignored_and_recorded() -> None:
    s, _, _ = await started()
    o = tracked(s, status=S.CLOSED, oid="9")
    o.filled = 1.0
    apply(s, rep(S.OPEN, 0.5))
    assert o.status is S.CLOSED and o.filled == 1.0
    (ev,) = sink_of(s).of("illegal_transition")
    assert (ev["old"], ev["new"], ev["source"]) == ("closed", "open", "exchange")


async def test_canceled_to_open_is_illegal() -> None:
    s, _, _ = await started()
    o = tracked(s, status=S.CANCELED, oid="9")
    apply(s, rep(S.OPEN), source="poll")
    assert o.status is S.CANCELED
    assert sink_of(s).of("illegal_transition")[0]["source"] == "poll"


async def test_open_to_unknown_is_illegal() -> None:
    s, _, _ = await started()
    o = tracked(s, status=S.OPEN, oid="9")
    apply(s, rep(S.UNKNOWN))
    assert o.status is S.OPEN and sink_of(s).of("illegal_transition")


async def test_a_report_without_a_status_changes_nothing_but_the_fill() -> None:
    s, _, _ = await started()
    o = tracked(s, status=S.OPEN, oid="9")
    apply(s, rep(None, 0.3, average=50_000.0))
    assert o.status is S.OPEN and o.filled == pytest.approx(0.3)
    assert sink_of(s).of("order_updated")[-1]["filled"] == pytest.approx(0.3)


async def test_filled_never_shrinks() -> None:
    s, _, _ = await started()
    o = tracked(s, status=S.OPEN, oid="9")
    apply(s, rep(S.OPEN, 0.6, average=50_000.0))
    apply(s, rep(S.OPEN, 0.2, average=50_000.0))
    assert o.filled == pytest.approx(0.6)


async def test_a_late_fill_after_a_cancel_is_kept_and_emulated() -> None:
    s, _, _ = await started()
    o = tracked(s, status=S.OPEN, oid="9")
    apply(s, rep(S.CANCELED))
    apply(s, rep(S.CANCELED, 0.4, average=49_000.0))
    assert o.status is S.CANCELED and o.filled == pytest.approx(0.4)
    assert [(t.amount, t.price, t.emulated) for t in o.trades] == [(pytest.approx(0.4), pytest.approx(49_000.0), True)]


async def test_an_emulated_fill_is_stamped_by_the_engine_clock() -> None:
    s, _, clock = await started()
    o = tracked(s, status=S.OPEN, oid="9")
    clock.advance(42)
    apply(s, rep(S.CLOSED, 1.0, average=50_000.0))
    assert o.trades[0].timestamp == clock.ms


async def test_the_order_is_found_by_exchange_id_when_the_report_has_no_client_id() -> None:
    s, _, _ = await started()
    o = tracked(s, status=S.OPEN, oid="9")
    assert apply(s, rep(S.CANCELED, cid=None)) is o
    assert o.status is S.CANCELED


async def test_a_report_on_a_symbol_outside_the_universe_is_ignored() -> None:
    s, _, _ = await started()
    assert apply(s, OrderReport("SOL/USDT", "9", "c1", S.OPEN)) is None
    assert not sink_of(s).of("order_adopted")


async def test_an_unknown_order_found_open_gets_the_verdict_found() -> None:
    s, _, _ = await started()
    o = tracked(s, status=S.UNKNOWN)
    apply(s, rep(S.OPEN), source="resolver")
    assert o.status is S.OPEN and o.verdict == "found"
    assert s.book.unknown_outcomes["unknown_resolved_found"] == 1


async def test_an_order_taken_as_failed_then_reported_alerts() -> None:
    s, _, _ = await started()
    o = tracked(s, status=S.FAILED)
    apply(s, rep(S.OPEN))
    assert o.status is S.OPEN
    assert "taken as never placed" in str(sink_of(s).of("error_occurred")[-1]["reason"])


async def test_every_change_is_announced_to_listeners() -> None:
    s, _, _ = await started()
    seen: list[OrderStatus] = []
    s.hooks.listen(lambda ev: seen.append(ev.order.status) if isinstance(ev, OrderUpdated) else None)
    tracked(s)
    apply(s, rep(S.OPEN))
    apply(s, rep(S.OPEN))  # the same status again: nothing new
    apply(s, rep(S.CLOSED, 1.0, average=50_000.0))
    assert seen == [S.OPEN, S.CLOSED]


async def test_the_orders_event_is_set_on_a_change() -> None:
    s, _, _ = await started()
    o = tracked(s)
    assert not o.event.is_set()
    apply(s, rep(S.OPEN))
    assert o.event.is_set()


async def test_a_waiting_conditional_record_names_the_order_and_does_not_trigger_it() -> None:
    s, _, _ = await started(("BTC/USDT:USDT",), margin=True)
    ai = s.universe["BTC/USDT:USDT"]
    o = Order("c1", ai.symbol, Side.SELL, OrderType.STOP_MARKET, 1.0, None, True, trigger_price=40_000.0)
    ai.orders["c1"] = o
    apply(s, OrderReport(ai.symbol, "algo-1", "c1", S.OPEN, conditional=True, trigger_phase=TriggerPhase.WAITING))
    assert o.id == "algo-1" and o.status is S.OPEN and not o.triggered


async def test_a_triggered_conditional_record_hands_over_to_the_order_it_placed() -> None:
    s, _, _ = await started(("BTC/USDT:USDT",), margin=True)
    ai = s.universe["BTC/USDT:USDT"]
    o = Order("c1", ai.symbol, Side.SELL, OrderType.STOP_MARKET, 1.0, None, True, id="algo-1", status=S.OPEN, trigger_price=40_000.0)
    ai.orders["c1"] = o
    closed_algo = OrderReport(
        ai.symbol, "algo-1", "c1", S.CLOSED, conditional=True, trigger_phase=TriggerPhase.TRIGGERED, triggered_order_id="555"
    )
    apply(s, closed_algo)
    apply(s, closed_algo)  # recorded once
    assert o.triggered and o.id == "555" and o.status is S.OPEN  # the algo record's own status says nothing of the fill
    assert len(sink_of(s).of("order_triggered")) == 1


async def test_a_spot_stop_with_a_fill_is_triggered() -> None:
    s, _, _ = await started()
    ai = s.universe[SYM]
    o = Order("c1", SYM, Side.SELL, OrderType.STOP_LIMIT, 1.0, 39_000.0, False, id="9", status=S.OPEN, trigger_price=40_000.0)
    ai.orders["c1"] = o
    apply(s, rep(S.OPEN, 0.5, average=39_000.0))
    assert o.triggered and sink_of(s).of("order_triggered")[0]["client_order_id"] == "c1"


async def test_fills_carried_by_an_order_report_attach_to_it() -> None:
    from planar_core.model.venue import FillReport

    s, _, _ = await started()
    o = tracked(s)
    fill = FillReport(SYM, "t1", None, None, Side.BUY, 1.0, 50_010.0, 1)
    apply(s, rep(S.CLOSED, 1.0, average=50_010.0, fills=(fill,)))
    assert [(t.trade_id, t.order_id, t.client_order_id, t.emulated) for t in o.trades] == [("t1", "9", "c1", False)]
