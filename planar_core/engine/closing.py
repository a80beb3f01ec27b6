"""Closing a position with one call: a reduce-only market order, or a limit at a price; in hedge mode one side or
both (``Strategy.close_position``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..exchange.errors import ExchangeOpError
from ..model import (
    AssetInstance,
    CloseAnswer,
    InvalidOrderCall,
    Order,
    OrderAnswer,
    OrderCall,
    OrderStatus,
    OrderType,
    PositionSide,
    Refusal,
    RefusalReason,
    Side,
)
from ..risk.ownership import own_share
from . import brackets
from .brackets import exit_entries
from .orders import call, invalid, refused
from .reducing import restore

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.closing")


def _unbooked(order: Order) -> bool:
    """The order's outcome is not known (an intent, or unknown), or it filled more than the trades applied to the
    strategy's record (its fills are on their way: the cost basis does not hold them yet)."""
    if order.status in (OrderStatus.INTENT, OrderStatus.UNKNOWN):
        return True
    return order.filled - order.booked > max(1e-12, order.amount * 1e-9)


async def _spot_coins(s: "Strategy", ai: AssetInstance) -> float:
    """Spot: the coins a close can sell. The strategy's own sell orders on the symbol hold them (its exits, a
    resting take-profit): cancelled first, the close replaces them; then the free balance, read fresh. Before,
    a spot close read the futures position (always 0 there) and answered "nothing to close" with the coins held
    (an outside trial, 3 of 3). On a shared account a strategy whose fills hold nothing has nothing to close."""
    if not s.config.risk.exclusive_account and s.ledger.basis(ai, PositionSide.BOTH).size <= 0:
        return 0.0
    for order in ai.open_orders():
        if order.side is Side.SELL and s.ids.owns(order.client_order_id):
            await s.cancel(ai, order)
    await s.refresh_balances()
    return s.cash(ai.base).free


async def close_position(
    s: "Strategy", ai: AssetInstance, side: PositionSide | None, price: float | None, waitfor: float | None
) -> CloseAnswer[OrderAnswer]:
    """Close the position (hedge mode: ``side``, else both sides): a reduce-only market order, or a reduce-only
    GTC limit at ``price``; spot: a sell of the coins (``_spot_coins``). On an account others trade too (not
    ``risk.exclusive_account``), the strategy's own part of it (risk/ownership.py), the rest left alone. One answer
    per side that had a position, the order call's; a side refused has its ``Refusal`` beside its None. No side
    with a position: nothing to close, nothing sent."""
    if not ai.is_margin and side is not None and side is not PositionSide.BOTH:
        refusal = Refusal(RefusalReason.CAPABILITY, f"{ai.symbol}: spot has no position sides")
        refused(s, ai, refusal, Side.SELL, 0.0, price)
        return CloseAnswer(ai.symbol, {side: None}, {side: refusal})
    sides = [side] if side is not None else [ps for ps, p in ai.open_positions()] if ai.hedged else [PositionSide.BOTH]
    out: dict[PositionSide, OrderAnswer] = {}
    why: dict[PositionSide, Refusal] = {}
    exits: list[Order] = []
    for ps in sides:
        pos = ai.position_of(ps) if ai.hedged else ai.position
        in_flight = [o for o in ai.orders.values() if o.position_side is ps and _unbooked(o)]
        if in_flight and not s.config.risk.exclusive_account:
            # an order whose outcome, or whose fills, are not in the strategy's record yet: its own part is not known
            # (a close's fill may have taken it), and a second close would take another strategy's part of the
            # account's position (found by a review: a close answered late, then closed again, 0.03 -> 0.02 -> 0.01)
            refusal = Refusal(
                RefusalReason.NOTHING_TO_REDUCE,
                f"{ai.symbol}: order {in_flight[0].client_order_id} has an outcome or fills not known yet: "
                "not closing until the exchange says how it ended",
            )
            refused(s, ai, refusal, Side.SELL if pos.contracts > 0 else Side.BUY, abs(pos.contracts), price)
            out[ps], why[ps] = None, refusal
            continue
        if not ai.is_margin:
            exits = exit_entries(s, ai)  # what the close cancels: placed again if the close is not sent
        try:
            held = pos.contracts if ai.is_margin else await _spot_coins(s, ai)
        except ExchangeOpError as err:  # its exits were cancelled: they go back on below (a review: they did not)
            refusal = Refusal(RefusalReason.BALANCE_UNKNOWN, f"{ai.symbol}: the balances could not be read ({err}): not closed")
            refused(s, ai, refusal, Side.SELL, 0.0, price)
            out[ps], why[ps] = None, refusal
            continue
        contracts, others = own_share(s, ai, ps, held)  # on a shared account, only this strategy's own
        if others:
            log.info("close_position %s: %s of the account's %s is not this strategy's; left alone", ai.symbol, others, held)
        if not contracts:
            continue
        order_side = Side.SELL if contracts > 0 else Side.BUY
        kind = OrderType.GTC if price is not None else OrderType.MARKET
        try:
            asked = OrderCall(
                type=kind,
                side=order_side,
                amount=abs(contracts),
                price=price,
                waitfor=waitfor,
                reduce_only=ai.is_margin and not ai.hedged,
                position_side=ps,
            )
        except InvalidOrderCall as exc:  # a bad limit price: refused like any order call
            refusal = invalid(exc)
            refused(s, ai, refusal, order_side, abs(contracts), price)
            out[ps], why[ps] = None, refusal
            continue
        before = s.last_refusal
        out[ps] = await call(s, ai, asked)
        if out[ps] is None and s.last_refusal is not None and s.last_refusal is not before:
            why[ps] = s.last_refusal
    if not ai.is_margin and out.get(PositionSide.BOTH) is None:  # the exits it cancelled, back: the coins are still held
        async with s.book.exits_lock(ai.symbol):
            for entry in exits:  # (a review: a refused close left them with no exit and no alert)
                brackets.due(s, ai, entry)
                await restore(s, ai, entry, "a close that was not sent")
    return CloseAnswer(ai.symbol, out, why)
