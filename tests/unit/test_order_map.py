"""An asset's order map keeps its open orders, and the open exits among them, indexed: the watchers ask whether
anything is open on every step and bracket housekeeping reads the exits on every balance update, so neither may
cost a pass over every open order (1 000 resting orders doubled the CPU per order, bench/open_orders_bench.py)."""

from __future__ import annotations

from planar_core.model.status import OrderStatus
from planar_core.model.types import Order, OrderMap, OrderType, Side


def order(cid: str, parent: str | None = None, status: OrderStatus = OrderStatus.OPEN) -> Order:
    return Order(cid, "BTC/USDT", Side.BUY, OrderType.GTC, 1.0, 100.0, status=status, parent=parent)


def test_open_exits_and_any_open_follow_the_statuses() -> None:
    m = OrderMap()
    for i in range(200):
        m[f"rest-{i}"] = order(f"rest-{i}")
    m["entry"] = order("entry", status=OrderStatus.CLOSED)
    m["sl"], m["tp"] = order("sl", parent="entry"), order("tp", parent="entry")
    assert [o.client_order_id for o in m.open_exits()] == ["sl", "tp"]
    m["tp"].status = OrderStatus.CANCELED  # a status changes without telling the map
    assert [o.client_order_id for o in m.open_exits()] == ["sl"]
    assert m.any_open() and len(m.open()) == 201
    for o in m.values():
        o.status = OrderStatus.CANCELED if o.is_open else o.status
    assert not m.any_open() and m.open() == [] and m.open_exits() == []
    m["sl"].status = OrderStatus.OPEN  # the exchange says it lives after all: tracked again
    m.track(m["sl"])
    assert m.any_open() and [o.client_order_id for o in m.open_exits()] == ["sl"]
    del m["sl"]
    assert m.open_exits() == [] and not m.any_open()
