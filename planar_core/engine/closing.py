"""Closing a position with one call: a reduce-only market order, or a limit at a price; in hedge mode one side or
both (``Strategy.close_position``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

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
from .orders import call, invalid, refused

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.closing")


def _unbooked(order: Order) -> bool:
    """The order's outcome is not known (an intent, or unknown), or it filled more than the trades applied to the
    strategy's record (its fills are on their way: the cost basis does not hold them yet)."""
    if order.status in (OrderStatus.INTENT, OrderStatus.UNKNOWN):
        return True
    return order.filled - order.booked > max(1e-12, order.amount * 1e-9)


async def close_position(
    s: "Strategy", ai: AssetInstance, side: PositionSide | None, price: float | None, waitfor: float | None
) -> CloseAnswer[OrderAnswer]:
    """Close the position (hedge mode: ``side``, else both sides): a reduce-only market order, or a reduce-only
    GTC limit at ``price``. On an account others trade too (not ``risk.exclusive_account``), the strategy's own
    part of it (risk/ownership.py), the rest left alone. One answer per side that had a position, the order call's; a side refused has its
    ``Refusal`` beside its None. No side with a position: nothing to close, nothing sent."""
    sides = [side] if side is not None else [ps for ps, p in ai.open_positions()] if ai.hedged else [PositionSide.BOTH]
    out: dict[PositionSide, OrderAnswer] = {}
    why: dict[PositionSide, Refusal] = {}
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
        contracts, others = own_share(s, ai, ps, pos.contracts)  # on a shared account, only this strategy's own
        if others:
            log.info("close_position %s: %s of the account's %s is not this strategy's; left alone", ai.symbol, others, pos.contracts)
        if not contracts:
            continue
        order_side = Side.SELL if contracts > 0 else Side.BUY
        kind = OrderType.GTC if price is not None else OrderType.MARKET
        try:
            asked = OrderCall(
                type=kind, side=order_side, amount=abs(contracts), price=price, waitfor=waitfor, reduce_only=not ai.hedged, position_side=ps
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
    return CloseAnswer(ai.symbol, out, why)
