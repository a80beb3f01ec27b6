"""Cancelling a strategy's own orders. A cancel whose outcome is not known leaves the order as it was: the
watchers, the resolver or the next look-up say what became of it. A cancel of an order the exchange no longer has
open is answered once (one look-up to learn how it ended), never retried in a loop.

A strategy cancels by id only: the exchange's order id, or the client order id of an order whose acknowledgement
was lost, batched where the venue allows (``Venue.cancel_orders``). The orders it names are those it
tracks, i.e. its own (and, under ``foreign_orders = "adopt"``, the manual orders it adopted; never another
strategy's, see ``updates._admit_foreign``). The account-wide cancel (``Venue.cancel_every_order``) would take
every other strategy's orders on the symbol with it: only the account emergency stop uses it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..exchange.errors import ExchangeOpError
from ..model import AssetInstance, Order, OrderStatus
from ..model.cancels import as_cancelled
from ..model.venue import CancelResult, OrderRef
from .submit import lookup
from .updates import apply_order

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.cancels")
CANCEL_ROUNDS = 3  # cancel, list, cancel what the listing still shows open ... at most this many times


def target(ai: AssetInstance, order: Order) -> OrderRef:
    """How the exchange names ``order`` for a cancel: its id (futures conditional orders still waiting: the algo
    id), or its client id when the acknowledgement was lost."""
    waiting = ai.is_margin and order.type.is_conditional and not order.triggered
    return OrderRef(order.client_order_id, order.id, waiting)


def apply_cancelled(s: "Strategy", ai: AssetInstance, result: CancelResult) -> None:
    """The orders the exchange confirmed cancelled, applied in one durable group."""
    with s.group():
        for cid, report in result.cancelled.items():
            apply_order(s, as_cancelled(ai.symbol, cid, report), source="cancel")


async def cancel(s: "Strategy", ai: AssetInstance, order: Order) -> bool:
    """Cancel one order; True when the exchange confirmed it. False (logged and recorded) when the exchange
    refuses, no longer has it open, or cannot be reached."""
    t = s.config.timeouts.order_cancellation
    cid = order.client_order_id
    result = await s.venue.cancel_orders(ai.symbol, [target(ai, order)], timeout=t)
    if cid in result.cancelled:
        apply_cancelled(s, ai, result)
        return True
    if cid in result.not_open:  # not open on the exchange (closed meanwhile, never booked, or not visible yet): learn how, once
        try:
            found = await lookup(s, ai.symbol, cid, timeout=t, conditional=order.type.is_conditional)
        except ExchangeOpError as err:
            log.info("look-up after a refused cancel of %s failed: %s", cid, err)
            found = None
        if found is not None:
            apply_order(s, found, source="cancel")
        return False
    why = result.unconfirmed.get(cid, "no answer")
    log.warning("cancel of %s on %s failed: %s", cid, ai.symbol, why)
    s.sink.record("error_occurred", symbol=ai.symbol, client_order_id=cid, reason=f"cancel failed: {why}")
    return False


async def cancel_all(s: "Strategy", ai: AssetInstance) -> int:
    """Cancel every open order of this strategy on this asset (its own, by id; other strategies' orders on the
    account are never touched), then verify with a listing, and cancel again what it still shows open (at most
    ``CANCEL_ROUNDS`` times). Returns how many of the locally open orders are no longer open.

    An order whose outcome is unknown (no exchange id) that the exchange does not have under its client id stays
    unknown: the resolver decides it, not this call."""
    before = {o.client_order_id for o in ai.open_orders()}
    t = s.config.timeouts.order_cancellation
    for _ in range(CANCEL_ROUNDS):
        targets = [target(ai, o) for o in ai.open_orders()]
        if not targets:
            break
        result = await s.venue.cancel_orders(ai.symbol, targets, timeout=t)
        apply_cancelled(s, ai, result)
        for cid, why in result.unconfirmed.items():
            s.sink.record("error_occurred", symbol=ai.symbol, client_order_id=cid, reason=f"cancel not confirmed: {why}")
        try:  # the listing says what is still open, and how the orders that were no longer open ended
            await s.sync_asset_orders(ai, trades=False)
        except ExchangeOpError as err:
            log.warning("cancel_all on %s: the open orders could not be listed to verify: %s", ai.symbol, err)
            s.sink.record("error_occurred", symbol=ai.symbol, reason=f"cancel_all not verified: {err}")
            break
        if not any(o.status is OrderStatus.OPEN for o in ai.open_orders()):
            break
    return len(before - {o.client_order_id for o in ai.open_orders()})
