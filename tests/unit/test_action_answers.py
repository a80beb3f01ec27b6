"""What the strategy's actions answer, typed (model/answers.py), on the in-memory venue through the strategy's
context: ``cancel`` (cancelled / already closed / not found / refused / unknown), ``cancel_all`` (which, and
whether verified), ``close_position`` (per side, nothing to close, a side's refusal), ``update_leverage`` (applied /
refused with its reason / unknown); an amount the engine changes (rounding to the market's step, risk sizing) is
reported in the answer, the order's view and the ``order_placed`` event, and the spot OCO take-profit leg is a
take-profit limit. No socket, no sleep."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from planar_core.engine.brackets import place
from planar_core.exchange.errors import InvalidOrder, NetworkUncertain
from planar_core.logic import LogicParams
from planar_core.model import (
    PENDING,
    Balance,
    CancelOutcome,
    LeverageOutcome,
    Order,
    OrderStatus,
    OrderType,
    PositionSide,
    RefusalReason,
    Side,
    Trade,
)
from planar_core.model.venue import CancelResult, PositionReport
from planar_core.model.views import OrderView, TradeView
from planar_core.runner.context import LiveContext

from .fake_venue import FakeVenue, started
from .stubs import sink_of

SPOT, PERP = "BTC/USDT", "BTC/USDT:USDT"


async def spot() -> tuple[Any, FakeVenue, LiveContext]:
    s, venue, _ = await started((SPOT,))
    s.holdings.set_balances({"USDT": Balance(10_000.0, 0.0, 10_000.0)})
    s.universe[SPOT].last_price = venue.prices[SPOT] = 50_000.0
    return s, venue, LiveContext(s, LogicParams())


async def perp(amount_step: float | None = None, price: float = 50_000.0) -> tuple[Any, FakeVenue, LiveContext]:
    s, venue, _ = await started((PERP,), margin=True)
    if amount_step is not None:  # Binance USD-M BTCUSDT: a step of 0.001 BTC
        market = s.universe[PERP].market
        market["precision"]["amount"] = amount_step  # type: ignore[index]
        market["limits"]["amount"]["min"] = amount_step  # type: ignore[index]
    s.holdings.set_balances({"USDT": Balance(10_000.0, 0.0, 10_000.0)})
    s.universe[PERP].last_price = venue.prices[PERP] = price
    return s, venue, LiveContext(s, LogicParams())


async def resting(s: Any, ctx: LiveContext, symbol: str = SPOT, price: float = 40_000.0) -> OrderView:
    assert await ctx.call(symbol, OrderType.GTC, Side.BUY, amount=0.01, price=price, waitfor=0) is PENDING
    return ctx.open_orders(symbol)[-1]


# ------------------------------------------------------------------ cancel
async def test_a_confirmed_cancel_reads_cancelled() -> None:
    s, _, ctx = await spot()
    order = await resting(s, ctx)
    answer = await ctx.cancel(SPOT, order)
    assert answer.outcome is CancelOutcome.CANCELLED and answer.cancelled and answer.closed
    assert answer.status is OrderStatus.CANCELED and answer.client_order_id == order.client_order_id and answer.detail == ""


async def test_a_cancel_of_a_filled_order_reads_already_closed_with_how_it_ended() -> None:
    s, venue, ctx = await spot()
    order = await resting(s, ctx)
    assert order.id is not None
    venue.fill(order.id, 0.01, 40_000.0)  # filled on the exchange; the engine has not heard yet
    answer = await ctx.cancel(SPOT, order)
    assert answer.outcome is CancelOutcome.ALREADY_CLOSED and not answer.cancelled
    assert answer.status is OrderStatus.CLOSED and answer.closed and "closed" in answer.detail


async def test_a_cancel_the_exchange_refuses_and_one_it_never_answers_are_told_apart() -> None:
    """The old answer was False for both: a refusal (the order is still open) and a lost answer (it may be gone)."""
    s, venue, ctx = await spot()
    order = await resting(s, ctx)
    cid = order.client_order_id

    async def refuses(symbol: str, refs: Any, timeout: float, retries: int = 3) -> CancelResult:
        return CancelResult(unconfirmed={cid: "InvalidOrder: not now"}, refused={cid})

    venue.cancel_orders = refuses  # type: ignore[method-assign]
    answer = await ctx.cancel(SPOT, order)
    assert answer.outcome is CancelOutcome.REFUSED and answer.status is OrderStatus.OPEN and "not now" in answer.detail

    async def silent(symbol: str, refs: Any, timeout: float, retries: int = 3) -> CancelResult:
        return CancelResult(unconfirmed={cid: "NetworkUncertain: timed out"})

    venue.cancel_orders = silent  # type: ignore[method-assign]
    answer = await ctx.cancel(SPOT, order)
    assert answer.outcome is CancelOutcome.UNKNOWN and not answer.cancelled and not answer.closed
    del venue.cancel_orders  # the fake's own again: a venue that raises is an unknown outcome too, never an exception
    venue.fail_next["cancel_orders"].append(NetworkUncertain("timed out"))
    answer = await ctx.cancel(SPOT, order)
    assert answer.outcome is CancelOutcome.UNKNOWN and "timed out" in answer.detail and order.status is OrderStatus.OPEN


async def test_a_cancel_answer_has_no_truth_value() -> None:
    s, _, ctx = await spot()
    answer = await ctx.cancel(SPOT, await resting(s, ctx))
    with pytest.raises(TypeError, match=r"read \.cancelled"):
        bool(answer)


async def test_an_order_not_the_strategys_is_not_found_and_nothing_is_sent() -> None:
    _, venue, ctx = await spot()
    made_up = OrderView(Order("someone-else-1", SPOT, Side.BUY, OrderType.GTC, 1.0, 1.0, id="9", status="open"))
    answer = await ctx.cancel(SPOT, made_up)
    assert answer.outcome is CancelOutcome.NOT_FOUND and answer.status is None and venue.ops("cancel_orders") == []


# ------------------------------------------------------------------ cancel_all
async def test_cancel_all_says_which_were_cancelled_which_had_ended_and_that_the_listing_verified_it() -> None:
    s, venue, ctx = await spot()
    a, b = await resting(s, ctx, price=40_000.0), await resting(s, ctx, price=39_000.0)
    assert b.id is not None
    venue.fill(b.id, 0.01, 39_000.0)  # b filled meanwhile
    answer = await ctx.cancel_all(SPOT)
    assert answer.cancelled == (a.client_order_id,) and answer.ended == (b.client_order_id,)
    assert answer.count == 2 and answer.complete and answer.verified and dict(answer.still_open) == {}
    with pytest.raises(TypeError):
        bool(answer)


async def test_cancel_all_unverified_says_so_and_what_is_still_open() -> None:
    s, venue, ctx = await spot()
    a = await resting(s, ctx)
    cid = a.client_order_id

    async def silent(symbol: str, refs: Any, timeout: float, retries: int = 3) -> CancelResult:
        return CancelResult(unconfirmed={cid: "NetworkUncertain: timed out"})

    venue.cancel_orders = silent  # type: ignore[method-assign]
    venue.fail_next["open_orders"].append(NetworkUncertain("down"))
    answer = await ctx.cancel_all(SPOT)
    assert not answer.verified and not answer.complete and answer.count == 0
    assert list(answer.still_open) == [cid] and "timed out" in answer.still_open[cid]


# ------------------------------------------------------------------ close_position
async def test_close_position_answers_per_side_and_says_nothing_to_close() -> None:
    s, venue, ctx = await perp()
    s.config.risk.exclusive_account = True  # the account's whole position is the strategy's (risk/ownership.py)
    flat = await ctx.close_position(PERP)
    assert flat.nothing_to_close and flat.answers == {} and venue.ops("create_order") == []
    s.apply_positions([PositionReport(PERP, PositionSide.BOTH, 0.01, entry_price=50_000.0)], complete=True)
    closing = await ctx.close_position(PERP, waitfor=0)
    assert not closing.nothing_to_close and closing.sides == (PositionSide.BOTH,) and closing[PositionSide.BOTH] is PENDING
    (sent,) = venue.ops("create_order")
    assert sent[0].reduce_only and sent[0].side is Side.SELL and sent[0].amount == pytest.approx(0.01)


async def test_a_refused_close_carries_its_reason() -> None:
    s, _, ctx = await perp()
    s.config.risk.exclusive_account = True
    s.apply_positions([PositionReport(PERP, PositionSide.BOTH, 0.01, entry_price=50_000.0)], complete=True)
    closing = await ctx.close_position(PERP, price=-1.0)
    assert closing[PositionSide.BOTH] is None and closing.refusals[PositionSide.BOTH].reason is RefusalReason.INVALID_PARAMS


# ------------------------------------------------------------------ update_leverage
async def test_update_leverage_answers_applied_refused_or_unknown() -> None:
    s, venue, ctx = await perp()
    applied = await ctx.update_leverage(PERP, 5)
    assert applied.outcome is LeverageOutcome.APPLIED and applied.applied and applied.refusal is None and venue.leverage == {PERP: 5}
    venue.fail_next["set_leverage"].append(InvalidOrder("leverage not valid", code=-4028))
    refused = await ctx.update_leverage(PERP, 200)
    assert refused.outcome is LeverageOutcome.REFUSED and refused.refusal is not None
    assert refused.refusal.reason is RefusalReason.EXCHANGE_REFUSED and refused.refusal.code == -4028
    assert sink_of(s).of("order_failed")[-1]["reason_code"] == "exchange_refused"
    venue.fail_next["set_leverage"].append(NetworkUncertain("timed out"))
    unknown = await ctx.update_leverage(PERP, 7)  # the exchange may have set it: not a refusal
    assert unknown.outcome is LeverageOutcome.UNKNOWN and unknown.refusal is None and "did not answer" in unknown.detail
    s.apply_positions([PositionReport(PERP, PositionSide.BOTH, 0.01, entry_price=50_000.0)], complete=True)
    not_flat = await ctx.update_leverage(PERP, 3)
    assert not_flat.refusal is not None and not_flat.refusal.reason is RefusalReason.NOT_FLAT
    with pytest.raises(TypeError):
        bool(not_flat)  # the old answer was None for yes and a sentence for no: no truth value now


# ------------------------------------------------------------------ rounding reported
async def test_an_amount_rounded_to_the_step_is_reported_in_the_answer_the_order_and_the_trace() -> None:
    """The reported case: an order value of 600 USDT at 54 800 on a market whose step is 0.001 BTC is sent as
    0.010 BTC (548 USDT). The answer, the order's view and ``order_placed`` say what was asked and what was sent."""
    s, venue, ctx = await perp(amount_step=0.001, price=54_800.0)
    asked = 600.0 / 54_800.0  # 0.0109489...
    assert await ctx.call(PERP, OrderType.MARKET, Side.BUY, amount=asked, waitfor=0) is PENDING
    (order,) = ctx.open_orders(PERP)
    assert order.amount == pytest.approx(0.01) and order.requested_amount == pytest.approx(asked)
    adj = order.adjustment
    assert adj is not None and adj.amount_changed and not adj.price_changed
    assert "rounded down to 0.01 (market amount precision 0.001)" in str(adj)
    (placed,) = sink_of(s).of("order_placed")
    assert placed["amount"] == pytest.approx(0.01) and placed["requested_amount"] == pytest.approx(asked)
    assert "rounded down" in str(placed["adjusted"])
    assert order.id is not None
    fill = venue.fill(order.id, 0.01, 54_800.0)
    s.apply_trade(fill)
    trade = ctx.trades(PERP)[-1]  # a fill's view says it too
    assert trade.order_amount == pytest.approx(0.01) and trade.requested_amount == pytest.approx(asked) and trade.adjustment == adj


async def test_a_filled_answer_carries_requested_and_sent() -> None:
    from planar_core.runner.context import answer_view

    s, _, ctx = await perp(amount_step=0.001, price=54_800.0)
    await ctx.call(PERP, OrderType.MARKET, Side.BUY, amount=0.0109, waitfor=0)
    engine_order = s.universe[PERP].orders[ctx.open_orders(PERP)[0].client_order_id]
    filled = Trade(PERP, Side.BUY, 0.01, 54_800.0, engine_order.id, engine_order.client_order_id, 1)
    view = answer_view(filled, s.universe[PERP])
    assert isinstance(view, TradeView) and view.amount == 0.01 and view.requested_amount == pytest.approx(0.0109)


async def test_an_order_sent_as_asked_has_no_adjustment() -> None:
    s, _, ctx = await perp(amount_step=0.001)
    await ctx.call(PERP, OrderType.GTC, Side.BUY, amount=0.01, price=40_000.0, waitfor=0)
    (order,) = ctx.open_orders(PERP)
    assert order.adjustment is None and order.requested_amount == order.amount == 0.01 and order.requested_price == 40_000.0
    (placed,) = sink_of(s).of("order_placed")
    assert "requested_amount" not in placed and "adjusted" not in placed


async def test_a_refusal_after_rounding_says_what_was_asked_and_the_step() -> None:
    s, venue, ctx = await perp(amount_step=0.001)
    assert await ctx.call(PERP, OrderType.MARKET, Side.BUY, amount=0.0004, waitfor=0) is None
    refusal = s.last_refusal
    assert refusal is not None and refusal.reason is RefusalReason.PRECISION
    assert "amount 0.0004 rounded down to 0 (market amount precision 0.001)" in refusal.detail, refusal.detail
    assert venue.ops("create_order") == []


async def test_a_rounded_limit_price_is_reported() -> None:
    s, _, ctx = await spot()
    await ctx.call(SPOT, OrderType.GTC, Side.BUY, amount=0.01, price=40_000.004, waitfor=0)
    (order,) = ctx.open_orders(SPOT)
    assert order.price == 40_000.0 and order.requested_price == 40_000.004 and order.adjustment is not None
    assert sink_of(s).of("order_placed")[-1]["requested_price"] == 40_000.004


# ------------------------------------------------------------------ order types as they are
async def test_the_spot_oco_take_profit_leg_is_a_take_profit_limit_not_post_only() -> None:
    s, venue, _ = await spot()
    venue.caps = replace(venue.caps, native_oco=frozenset({"spot"}))
    venue.set_balance("spot", "BTC", 0.01)
    ai = s.universe[SPOT]
    entry = Order("entry-1", SPOT, Side.BUY, OrderType.MARKET, 0.01, None, id="1", status=OrderStatus.CLOSED, brackets=(45_000.0, 55_000.0))
    entry.filled = 0.01
    ai.orders[entry.client_order_id] = entry
    await place(s, ai, entry)
    legs = {o.type: o for o in ai.orders.values() if o.parent == "entry-1"}
    assert set(legs) == {OrderType.TAKE_PROFIT_LIMIT, OrderType.STOP_MARKET}
    tp = legs[OrderType.TAKE_PROFIT_LIMIT]
    assert (tp.price, tp.trigger_price) == (55_000.0, 55_000.0) and tp.status is OrderStatus.OPEN
    assert {e["order_type"] for e in sink_of(s).of("order_placed")} == {"take_profit_limit", "stop_market"}
    (oco,) = venue.ops("create_exit_list")
    assert oco[0].take_profit == 55_000.0 and oco[0].take_profit_client_id == tp.client_order_id
