"""Which orders the engine takes as its own (engine/updates.py ``_admit_foreign``): its own from an earlier run, an
exchange's forced close, never another strategy's, and one placed by hand as the foreign-order policy says.
Against the in-memory venue; no socket, no sleep."""

from __future__ import annotations

import asyncio

from planar_core.engine.updates import apply_order
from planar_core.exchange.client_ids import identity_of
from planar_core.model import OrderStatus, OrderType, Side, Trade
from planar_core.model.venue import OrderReport

from .fake_venue import started
from .stubs import sink_of

S = OrderStatus
SYM = "BTC/USDT"
OTHER = f"{identity_of('other')}-abc-1"


def report(cid: str | None, status: OrderStatus = S.OPEN, oid: str = "9", **kw) -> OrderReport:
    fields = {"side": Side.SELL, "type": OrderType.GTC, "amount": 0.5, "filled": 0.0, "price": 51_000.0, "timestamp": 123, **kw}
    return OrderReport(SYM, oid, cid, status, **fields)  # type: ignore[arg-type]


async def wait_for(cond, timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0)


async def test_an_own_order_from_an_earlier_run_is_adopted() -> None:
    s, _, _ = await started(startup_sync={"foreign_orders": "ignore"})
    cid = s.ids.next()
    o = apply_order(s, report(cid))
    assert o is not None and s.universe[SYM].orders[cid] is o
    assert (o.side, o.type, o.amount, o.price, o.id, o.timestamp) == (Side.SELL, OrderType.GTC, 0.5, 51_000.0, "9", 123)
    (ev,) = sink_of(s).of("order_adopted")
    assert ev["client_order_id"] == cid and ev["order_id"] == "9"


async def test_an_adopted_order_without_a_time_takes_the_clock() -> None:
    s, _, clock = await started()
    o = apply_order(s, report(s.ids.next(), timestamp=None))
    assert o is not None and o.timestamp == clock.ms


async def test_what_an_earlier_run_placed_gives_the_adopted_order_its_type_and_trades() -> None:
    s, _, _ = await started()
    cid = s.ids.next()
    s.ledger.restore_orders({cid: {"type": "stop_limit", "trigger_price": 49_000.0, "parent": "entry-1"}})
    earlier = Trade(SYM, Side.SELL, 0.1, 51_000.0, "9", cid, 1, trade_id="t0")
    s.ledger.restore_trade(cid, earlier)
    o = apply_order(s, report(cid, type=None))
    assert o is not None and o.type is OrderType.STOP_LIMIT and o.trigger_price == 49_000.0 and o.parent == "entry-1"
    assert o.trades == [earlier] and earlier in s.universe[SYM].trades


async def test_another_strategys_order_is_never_adopted_whatever_the_policy() -> None:
    s, _venue, _ = await started(startup_sync={"foreign_orders": "adopt"})
    assert apply_order(s, report(OTHER)) is None
    assert apply_order(s, report(OTHER)) is None
    (ev,) = sink_of(s).of("order_foreign")  # recorded once
    assert ev["decision"] == "other_strategy" and ev["status"] == "open"
    assert s.book.is_foreign_id("9")


async def test_another_strategys_order_is_never_cancelled() -> None:
    s, venue, _ = await started(running=True, startup_sync={"foreign_orders": "cancel"})
    assert apply_order(s, report(OTHER)) is None
    await asyncio.sleep(0)
    assert venue.ops("cancel_order") == []


async def test_a_manual_order_is_adopted_under_the_adopt_policy() -> None:
    s, _, _ = await started(startup_sync={"foreign_orders": "adopt"})
    o = apply_order(s, report("web_abc"))
    assert o is not None and o.client_order_id == "web_abc"


async def test_a_manual_order_without_a_client_id_is_adopted_under_its_exchange_id() -> None:
    s, _, _ = await started(startup_sync={"foreign_orders": "adopt"})
    o = apply_order(s, report(None, oid="31"))
    assert o is not None and o.client_order_id == "ext-31"


async def test_a_manual_order_is_ignored_under_the_ignore_policy_and_recorded_once() -> None:
    s, _, _ = await started(startup_sync={"foreign_orders": "ignore"})
    assert apply_order(s, report("web_abc")) is None
    assert apply_order(s, report("web_abc")) is None
    (ev,) = sink_of(s).of("order_foreign")
    assert ev["decision"] == "ignore" and s.book.is_foreign("web_abc")


async def test_an_open_manual_order_is_cancelled_under_the_cancel_policy() -> None:
    s, venue, _ = await started(running=True, startup_sync={"foreign_orders": "cancel"})
    venue.book(report("web_abc", oid="9"))
    assert apply_order(s, report("web_abc")) is None
    await wait_for(lambda: any(e["decision"] == "cancelled" for e in sink_of(s).of("order_foreign")))
    ((symbol, ref),) = venue.ops("cancel_order")
    assert symbol == SYM and ref.order_id == "9" and ref.client_order_id == "web_abc"  # type: ignore[attr-defined]
    assert venue.orders["9"].status is S.CANCELED


async def test_a_closed_manual_order_is_not_cancelled() -> None:
    s, venue, _ = await started(running=True, startup_sync={"foreign_orders": "cancel"})
    assert apply_order(s, report("web_abc", S.CLOSED)) is None
    await asyncio.sleep(0)
    assert venue.ops("cancel_order") == []


async def test_a_failed_cancel_of_a_foreign_order_is_recorded() -> None:
    from planar_core.exchange.errors import NetworkUncertain

    s, venue, _ = await started(running=True, startup_sync={"foreign_orders": "cancel"})
    venue.fail_next["cancel_order"].append(NetworkUncertain("timed out"))
    apply_order(s, report("web_abc"))
    await wait_for(lambda: sink_of(s).of("error_occurred"))
    assert "cancel of a foreign order failed" in str(sink_of(s).of("error_occurred")[0]["reason"])


async def test_a_forced_close_is_adopted_whatever_the_policy_and_recorded() -> None:
    s, _, _ = await started(("BTC/USDT:USDT",), margin=True, startup_sync={"foreign_orders": "ignore"})
    r = OrderReport("BTC/USDT:USDT", "77", "autoclose-1", S.CLOSED, Side.SELL, None, 0.2, 0.2, 30_000.0, forced_close="liquidation")
    o = apply_order(s, r, emulate_now=True)
    assert o is not None and o.type is OrderType.MARKET
    (ev,) = sink_of(s).of("forced_close")
    assert (ev["reason"], ev["side"], ev["amount"]) == ("liquidation", "sell", 0.2)
    apply_order(s, r, emulate_now=True)
    assert len(sink_of(s).of("forced_close")) == 1  # once per order
