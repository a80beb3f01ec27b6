"""The in-memory venue the engine's unit tests run on keeps the ``Venue`` protocol and books orders as the tests
expect (a fake that drifted from the protocol would make every engine test on it meaningless)."""

from __future__ import annotations

import pytest

from planar_core.exchange.errors import NetworkUncertain, OrderNotFound
from planar_core.model import OrderStatus, OrderType, Side
from planar_core.model.venue import OrderRef, PlaceOrder, Venue

from .fake_venue import FakeVenue

SYM = "BTC/USDT"


def place(cid: str = "c1", amount: float = 1.0) -> PlaceOrder:
    return PlaceOrder(symbol=SYM, type=OrderType.GTC, side=Side.BUY, amount=amount, client_order_id=cid, price=100.0)


def test_it_implements_the_venue_protocol() -> None:
    assert isinstance(FakeVenue(), Venue)


async def test_a_placed_order_is_open_and_found_by_either_name() -> None:
    v = FakeVenue()
    r = await v.create_order(place(), 1)
    assert r.status is OrderStatus.OPEN and r.id is not None
    assert (await v.fetch_order(SYM, OrderRef("c1"), 1)).id == r.id
    assert (await v.fetch_order(SYM, OrderRef("", r.id), 1)).client_order_id == "c1"
    assert [o.id for o in await v.open_orders(SYM, 1)] == [r.id]


async def test_fills_close_the_order_when_complete() -> None:
    v = FakeVenue()
    r = await v.create_order(place(amount=1.0), 1)
    assert r.id is not None
    v.fill(r.id, 0.4, 100.0)
    assert v.orders[r.id].status is OrderStatus.OPEN and v.orders[r.id].filled == pytest.approx(0.4)
    v.fill(r.id, 0.6, 110.0)
    assert v.orders[r.id].status is OrderStatus.CLOSED and v.orders[r.id].average == pytest.approx(106.0)
    assert [f.id for f in await v.my_trades(SYM, 1)] == ["t1", "t2"]


async def test_a_cancel_ends_an_open_order_and_refuses_a_closed_one() -> None:
    v = FakeVenue()
    a, b = await v.create_order(place("a"), 1), await v.create_order(place("b"), 1)
    assert b.id is not None
    v.fill(b.id, 1.0, 100.0)
    assert (await v.cancel_order(SYM, OrderRef("a"), 1)).status is OrderStatus.CANCELED
    with pytest.raises(OrderNotFound):
        await v.cancel_order(SYM, OrderRef("b", b.id), 1)
    result = await v.cancel_orders(SYM, [OrderRef("a", a.id), OrderRef("zz")], 1)
    assert result.not_open == {"a", "zz"}


async def test_an_injected_failure_is_raised_once_and_the_request_recorded() -> None:
    v = FakeVenue()
    v.fail_next["open_orders"].append(NetworkUncertain("timed out"))
    with pytest.raises(NetworkUncertain):
        await v.open_orders(SYM, 1)
    assert await v.open_orders(SYM, 1) == []
    assert v.ops("open_orders") == [(SYM,), (SYM,)]


async def test_pushed_stream_reports_are_stamped_in_order_and_cached() -> None:
    from planar_core.model.venue import OrderReport

    v = FakeVenue()
    (first,) = v.push_order(OrderReport(SYM, "1", "a", OrderStatus.OPEN))
    (second,) = v.push_order(OrderReport(SYM, "1", "a", OrderStatus.CANCELED))
    assert first.stamp is not None and second.stamp is not None and second.stamp.seq > first.stamp.seq
    assert [r.status for r in v.cached_order_updates(SYM)] == [OrderStatus.CANCELED]
    assert v.cached_order_updates(SYM) == []  # nothing changed since the last read
    assert (await v.watch_orders(SYM))[0].status is OrderStatus.OPEN
