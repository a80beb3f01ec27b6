"""Cancelling orders. A cancel whose outcome is not known leaves the order as it was: the watchers, the
resolver or the next look-up say what became of it. A cancel of an order the exchange no longer has open is
answered once (one look-up to learn how it ended), never retried in a loop."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..exchange.errors import ExchangeOpError, OrderNotFound
from ..model import AssetInstance, Order
from .submit import lookup
from .updates import apply_order

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.cancels")


async def cancel(s: "Strategy", ai: AssetInstance, order: Order) -> bool:
    """Cancel one order; True when the exchange confirmed it. False (logged and recorded) when the exchange
    refuses, no longer has it open, or cannot be reached."""
    ex = s.client.ex
    t = s.config.timeouts.order_cancellation
    waiting = ai.is_margin and order.type.is_conditional and not order.triggered  # futures: still in the Algo Service
    try:
        if order.id is not None:
            params = s.client.venue.trigger_params(ai.is_margin, waiting)
            raw = await s.client.call("cancel_order", lambda: ex.cancel_order(order.id, ai.symbol, params), t)
        else:  # an order whose acknowledgement was lost: cancel it by client id
            raw = await s.client.call(
                "cancel_order", lambda: ex.cancel_order(None, ai.symbol, s.client.by_client_id(order.client_order_id, waiting)), t
            )
    except OrderNotFound:  # not open on the exchange (closed meanwhile, never booked, or not visible yet): learn how, once
        try:
            found = await lookup(s, ai.symbol, order.client_order_id, timeout=t, conditional=order.type.is_conditional)
        except ExchangeOpError as err:
            log.info("look-up after a refused cancel of %s failed: %s", order.client_order_id, err)
            found = None
        if found is not None:
            apply_order(s, found, source="cancel")
        return False
    except ExchangeOpError as err:
        log.warning("cancel of %s on %s failed: %s", order.client_order_id, ai.symbol, err)
        s.sink.record("error_occurred", symbol=ai.symbol, client_order_id=order.client_order_id, reason=f"cancel failed: {err}")
        return False
    if not isinstance(raw, dict):
        return False
    apply_order(s, {**raw, "symbol": raw.get("symbol") or ai.symbol, "status": raw.get("status") or "canceled"}, source="cancel")
    return True


async def cancel_all(s: "Strategy", ai: AssetInstance) -> int:
    """Cancel every open order of this asset; returns how many of the locally open orders are no longer open."""
    before = {o.client_order_id for o in ai.open_orders()}
    try:  # futures: the book orders and the conditional orders waiting for their trigger
        await s.client.cancel_all(ai.symbol, s.config.timeouts.order_cancellation)
    except ExchangeOpError as err:
        log.warning("cancel_all on %s failed: %s", ai.symbol, err)
        s.sink.record("error_occurred", symbol=ai.symbol, reason=f"cancel_all failed: {err}")
        return 0
    await s.sync_asset_orders(ai, trades=False)
    return len(before - {o.client_order_id for o in ai.open_orders()})
