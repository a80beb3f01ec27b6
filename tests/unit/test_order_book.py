"""The engine's order book (engine/order_book.py): the one owner of order-side state. An order enters its asset's
map through ``add``, moves status through ``set_status`` (only after ``updates.transition`` found the move legal),
gets fills through ``add_fill``; unknown answers, foreign orders, placed brackets and the last refusal change only
through its methods, and readers get views that cannot change it. No socket, no sleep."""

from __future__ import annotations

import pytest

from planar_core.engine.order_book import OrderBook
from planar_core.engine.updates import transition
from planar_core.model import AssetInstance, Order, OrderStatus, OrderType, Side, Trade
from planar_core.model.refusals import Refusal
from planar_core.model.refusals import RefusalReason as R

from .fake_venue import started

S = OrderStatus
SYM = "BTC/USDT"


def asset() -> AssetInstance:
    return AssetInstance(SYM, {})


def order(cid: str = "c1", status: OrderStatus = S.INTENT) -> Order:
    return Order(cid, SYM, Side.BUY, OrderType.GTC, 1.0, 50_000.0, status=status)


def trade(cid: str | None = "c1", amount: float = 0.5, emulated: bool = False) -> Trade:
    return Trade(SYM, Side.BUY, amount, 50_000.0, "9", cid, 1_700_000_000_000, emulated=emulated)


def test_add_tracks_an_order_on_its_asset_and_indexes_it_while_open() -> None:
    book, ai, o = OrderBook(), asset(), order()
    book.add(ai, o)
    assert ai.orders["c1"] is o
    assert ai.open_orders() == [o]


def test_set_status_keeps_the_asset_s_open_orders_in_step() -> None:
    book, ai = OrderBook(), asset()
    closing, back = order("c1", S.OPEN), order("c2", S.FAILED)
    book.add(ai, closing)
    book.add(ai, back)
    assert ai.open_orders() == [closing]
    book.set_status(ai, closing, S.CLOSED)
    book.set_status(ai, back, S.OPEN)  # proven absent, then found on the exchange after all
    assert closing.status is S.CLOSED and back.status is S.OPEN
    assert ai.open_orders() == [back]


async def test_a_status_moves_through_the_book_and_only_along_the_table() -> None:
    s, _, _ = await started()
    ai = s.universe[SYM]
    o = order("c1", S.OPEN)
    s.book.add(ai, o)
    moves: list[tuple[str, OrderStatus]] = []
    set_status = s.book.set_status

    def spy(a: AssetInstance, x: Order, new: OrderStatus) -> None:
        moves.append((x.client_order_id, new))
        set_status(a, x, new)

    s.book.set_status = spy  # type: ignore[method-assign]
    assert transition(s, ai, o, S.CLOSED, "test")
    assert not transition(s, ai, o, S.OPEN, "test")  # closed -> open is not a legal move: the book is not asked
    assert moves == [("c1", S.CLOSED)]
    assert o.status is S.CLOSED and ai.open_orders() == []


def test_add_fill_keeps_the_trade_on_the_order_and_the_asset() -> None:
    book, ai, o = OrderBook(), asset(), order("c1", S.OPEN)
    book.add(ai, o)
    t = trade()
    book.add_fill(ai, o, t)
    assert o.trades == [t] and ai.trades == [t]
    orphan = trade(cid=None)
    book.add_fill(ai, None, orphan)  # a traced fill whose order the replay does not hold: the asset keeps it
    assert o.trades == [t] and ai.trades == [t, orphan]


def test_drop_fill_forgets_a_replaced_emulated_trade() -> None:
    book, ai, o = OrderBook(), asset(), order("c1", S.OPEN)
    emu, real = trade(emulated=True), trade()
    book.add_fill(ai, o, emu)
    book.drop_fill(ai, o, emu)
    book.add_fill(ai, o, real)
    assert o.trades == [real] and ai.trades == [real]


def test_forget_forgets_an_asset_s_orders_and_trades() -> None:
    book, ai, o = OrderBook(), asset(), order("c1", S.OPEN)
    book.add(ai, o)
    book.add_fill(ai, o, trade())
    book.forget([ai])
    assert dict(ai.orders) == {} and ai.trades == [] and ai.open_orders() == []


def test_an_unknown_answer_is_kept_once_and_counted() -> None:
    book = OrderBook()
    params: dict[str, object] = {"timeInForce": "GTC"}
    book.answer_unknown("c1", params)
    params["timeInForce"] = "IOC"  # the caller's dict is not the book's
    assert book.answered_unknown == {"c1": {"timeInForce": "GTC"}}
    assert book.take_unknown("c1") == {"timeInForce": "GTC"}
    assert book.take_unknown("c1") is None  # spent: a second verdict cannot re-send it again
    assert "c1" not in book.answered_unknown
    book.count("unknown_proven_absent")
    book.count("unknown_resent")
    assert book.unknown_outcomes == {"unknown_answered": 1, "unknown_proven_absent": 1, "unknown_resent": 1}
    assert book.unknown_outcomes["unknown_resolved_found"] == 0


def test_the_unknown_views_cannot_change_the_book() -> None:
    book = OrderBook()
    book.answer_unknown("c1", {})
    counts = book.unknown_outcomes
    counts["unknown_answered"] += 5
    assert book.unknown_outcomes == {"unknown_answered": 1}
    with pytest.raises(TypeError):
        book.answered_unknown["c2"] = {}  # type: ignore[index]


def test_foreign_orders_and_their_exchange_ids() -> None:
    book = OrderBook()
    book.mark_foreign("web_abc", "9")
    book.mark_foreign("ext-10")  # no exchange id: its fills cannot be told
    book.mark_foreign_id("11")  # another engine of this strategy placed it: its fills are not ours
    assert book.is_foreign("web_abc") and book.is_foreign("ext-10") and not book.is_foreign("c1")
    assert book.is_foreign_id("9") and book.is_foreign_id("11") and not book.is_foreign_id("10")
    assert book.foreign_orders == {"web_abc", "ext-10"} and book.foreign_order_ids == {"9", "11"}
    assert not hasattr(book.foreign_orders, "add") and not hasattr(book.foreign_order_ids, "add")


def test_an_entry_s_exits_are_placed_once() -> None:
    book = OrderBook()
    assert book.mark_bracketed("e1")
    assert not book.mark_bracketed("e1")
    book.restore_bracketed(iter(["e2", "e3"]))
    assert not book.mark_bracketed("e2")
    assert book.bracketed == {"e1", "e2", "e3"} and not hasattr(book.bracketed, "add")


async def test_the_last_refusal_is_the_book_s_and_the_strategy_reads_it() -> None:
    s, _, _ = await started()
    assert s.last_refusal is None
    first, second = Refusal(R.INSUFFICIENT_FUNDS, "need more"), Refusal(R.RISK_LIMIT, "too big")
    s.book.refused(first)
    s.book.refused(second)
    assert s.book.last_refusal is second and s.last_refusal is second
    with pytest.raises(AttributeError):
        s.last_refusal = first  # type: ignore[misc]
