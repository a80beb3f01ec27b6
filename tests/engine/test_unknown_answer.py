"""``call()`` answers UNKNOWN (never PENDING) when the placement budget runs out before the exchange said; the
resolver's later verdict reaches the strategy's ``on_order_update``, a WARNING log line and the run's counts;
``order_monitoring.resend_absent`` re-sends a proven-absent order once under a new client id. Every check on the
exchange's side reads the sandbox's admin snapshot before anything repairs the engine's view."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from planar_core.logic import Logic
from planar_core.model import PENDING, UNKNOWN, Order, OrderStatus, OrderType, Side
from planar_core.runner import run
from planar_core.sandbox import Faults

from ..conftest import bid_ask, snapshot, wait_for

pytestmark = pytest.mark.venues()  # venue-independent: every test here runs on Binance and Bybit (tests/conftest.py)

# a 1 s placement budget; absence is proven only 2 s after the request (the budget never gets that far)
ENGINE: dict[str, Any] = {"timeouts": {"order_placement": 1.0}, "order_monitoring": {"absent_after": 2.0, "interval": 0.3}}


class Recorder(Logic):
    """A logic that only listens: every order update it is told, with the verdict and re-send it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.started = False
        self.updates: list[tuple[str, str, str | None, str | None]] = []

    async def on_start(self, s: Any) -> None:
        self.started = True

    async def on_order_update(self, s: Any, order: Order) -> None:
        self.updates.append((order.client_order_id, str(order.status), order.verdict, order.resent_as))

    def told(self, cid: str, verdict: str) -> bool:
        return any(u[0] == cid and u[2] == verdict for u in self.updates)


async def _running(s: Any) -> tuple[Recorder, asyncio.Event, asyncio.Task]:
    logic, stop = Recorder(), asyncio.Event()
    task = asyncio.create_task(run(s, logic, stop=stop, tick_interval=3600, status_every=3600))
    await wait_for(lambda: logic.started)
    return logic, stop, task


def _warnings(caplog: pytest.LogCaptureFixture, cid: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and cid in r.getMessage() and "outcome was unknown" in r.getMessage()
    ]


async def test_booked_but_unconfirmed_is_unknown_then_found(strategy_factory, sandbox, account, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="planar.engine")
    s = await strategy_factory(**ENGINE)
    logic, stop, runner = await _running(s)
    ai = s.universe["BTC/USDT"]
    bid, _ = bid_ask(sandbox)
    # booked, but the answer is lost, the stream says nothing and GET hides it: the budget runs out unconfirmed
    sandbox.ex.faults = Faults(lost_ack_rate=1.0, invisible_s=60, paused_user_stream=True)
    answer = await s.call(ai, OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.9, waitfor=0)
    assert answer is UNKNOWN and answer is not PENDING and answer != PENDING and not answer
    (order,) = ai.orders.values()
    assert order.status is OrderStatus.UNKNOWN and order.verdict is None
    booked = snapshot(sandbox, account)["orders"]  # the exchange's side, before anything repairs ours
    assert [o["client_order_id"] for o in booked] == [order.client_order_id]
    sandbox.ex.faults = Faults()
    await wait_for(lambda: logic.told(order.client_order_id, "found"), timeout=20)
    assert order.status is OrderStatus.OPEN and order.verdict == "found"
    assert (order.client_order_id, "open", "found", None) in logic.updates
    assert _warnings(caplog, order.client_order_id), "the verdict is logged at WARNING with the order's id"
    assert s.book.unknown_outcomes == {"unknown_answered": 1, "unknown_resolved_found": 1}
    found = [e for e in s.sink.of("order_reconciled") if e["client_order_id"] == order.client_order_id]
    assert [e["decision"] for e in found] == ["found"]
    stop.set()
    result = await runner
    assert result.final_status["unknown_answered"] == 1 and result.final_status["unknown_resolved_found"] == 1
    assert result.final_status["unknown_proven_absent"] == 0


async def _never_reached(s: Any, sandbox: Any) -> tuple[Order, Any]:
    """An order whose every request is answered 503 before the sandbox handles it: it never reaches the book."""
    ai = s.universe["BTC/USDT"]
    bid, _ = bid_ask(sandbox)
    sandbox.ex.faults = Faults(error_rate=1.0)
    answer = await s.call(ai, OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.9, waitfor=0)
    assert answer is UNKNOWN
    (order,) = ai.orders.values()
    assert order.status is OrderStatus.UNKNOWN
    return order, answer


async def test_never_reached_is_unknown_then_proven_absent(strategy_factory, sandbox, account, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="planar.engine")
    s = await strategy_factory(**ENGINE)
    logic, stop, runner = await _running(s)
    order, _ = await _never_reached(s, sandbox)
    assert snapshot(sandbox, account)["orders"] == []
    sandbox.ex.faults = Faults()
    await wait_for(lambda: logic.told(order.client_order_id, "absent"), timeout=20)
    assert order.status is OrderStatus.FAILED and order.resent_as is None
    assert (order.client_order_id, "failed", "absent", None) in logic.updates
    assert any("proven absent" in m for m in _warnings(caplog, order.client_order_id))
    assert s.book.unknown_outcomes == {"unknown_answered": 1, "unknown_proven_absent": 1}
    assert snapshot(sandbox, account)["orders"] == []  # off by default: nothing re-sent
    stop.set()
    result = await runner
    assert result.final_status["unknown_proven_absent"] == 1 and result.final_status["unknown_resent"] == 0


async def test_resend_absent_sends_once_under_a_new_id(strategy_factory, sandbox, account) -> None:
    s = await strategy_factory(**{**ENGINE, "order_monitoring": {**ENGINE["order_monitoring"], "resend_absent": True}})
    logic, stop, runner = await _running(s)
    order, _ = await _never_reached(s, sandbox)
    sandbox.ex.faults = Faults()
    await wait_for(lambda: order.resent_as is not None and len(snapshot(sandbox, account)["orders"]) == 1, timeout=20)
    (booked,) = snapshot(sandbox, account)["orders"]
    new = s.universe["BTC/USDT"].orders[order.resent_as]
    assert booked["client_order_id"] == new.client_order_id != order.client_order_id
    assert new.resend_of == order.client_order_id and order.status is OrderStatus.FAILED
    await wait_for(
        lambda: new.status is OrderStatus.OPEN and (order.client_order_id, "failed", "absent", new.client_order_id) in logic.updates
    )
    placed = [e for e in s.sink.of("order_placed") if e.get("resends") == order.client_order_id]
    assert [e["client_order_id"] for e in placed] == [new.client_order_id]
    assert s.book.unknown_outcomes["unknown_resent"] == 1
    assert order.client_order_id not in s.book.answered_unknown  # its one re-send is spent: no second one can follow
    stop.set()
    result = await runner
    assert result.final_status["unknown_resent"] == 1


@pytest.mark.venues("bybit")  # the engine's own trailing stop exists where the venue has none of an order's own
async def test_an_engine_trailing_stop_proven_absent_is_sent_again(strategy_factory, sandbox, account) -> None:
    """Its trigger is the stop level the engine computed, not an activation price: the re-send starts it again
    from the price of now instead of being refused."""
    s = await strategy_factory(**{**ENGINE, "order_monitoring": {**ENGINE["order_monitoring"], "resend_absent": True}})
    _logic, stop, runner = await _running(s)
    ai = s.universe["BTC/USDT"]
    bid, _ = bid_ask(sandbox)
    ai.last_price = bid
    sandbox.ex.faults = Faults(error_rate=1.0)
    assert await s.call(ai, OrderType.TRAILING_STOP, Side.SELL, amount=0.01, trailing_percent=1.0, waitfor=0) is UNKNOWN
    (order,) = ai.orders.values()
    sandbox.ex.faults = Faults()
    await wait_for(lambda: order.resent_as is not None, timeout=20)
    new = ai.orders[order.resent_as]
    await wait_for(lambda: new.client_order_id in {o["client_order_id"] for o in snapshot(sandbox, account)["open_orders"]}, timeout=10)
    assert new.type is OrderType.TRAILING_STOP and new.trigger_price is not None and new.trigger_price < bid
    stop.set()
    await runner
