"""``POST /v5/order/amend`` (ccxt's ``edit_order``): a new ``price`` and/or ``qty`` (and, for a conditional order
still waiting, a new ``triggerPrice``: a linear one's is all the sandbox moves) for an open order named by
``orderId`` or ``orderLinkId``.

Bybit: "You can only modify unfilled or partially filled orders"; ``qty``/``price`` "Do not pass it if not modify";
the answer is ``{"orderId", "orderLinkId"}``. Refusals: an unknown or no longer open order is 110001 (linear) /
170213 (spot); a request that changes nothing is 10001 "The order remains unchanged as the parameters entered match
the existing ones."; a quantity not above what has filled is 110064 (linear) / 10001 (spot). The core does the rest
(``..amend.amend_order``).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from ..amend import QtyNotAboveFilled, amend_order
from .errors import BybitError, order_not_found, params_error

if TYPE_CHECKING:
    from .rest import BybitServer, Call

UNCHANGED = "The order remains unchanged as the parameters entered match the existing ones."


def optional_decimal(c: Call, name: str, zero_ok: bool = False) -> Decimal | None:
    """A decimal parameter that may be absent (None); ``zero_ok``: "0" is a value (it clears a TP/SL)."""
    raw = c.params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise params_error(f"params error: {name} invalid") from None
    if not value.is_finite() or value < 0 or (value == 0 and not zero_ok):
        raise params_error(f"params error: {name} invalid")
    return value


def amend(server: BybitServer, c: Call) -> object:
    trigger = optional_decimal(c, "triggerPrice")
    waiting = server._waiting(c)  # a linear conditional order still waiting: its trigger (the sandbox moves nothing else)
    if waiting is not None:
        if optional_decimal(c, "price") is not None or optional_decimal(c, "qty") is not None:
            raise params_error("params error: the sandbox amends only the triggerPrice of a linear conditional order still waiting")
        market = server._market(c)
        assert market is not None
        if trigger is None or not server.conditional.move_trigger(c, market, waiting, trigger):
            raise BybitError(10001, UNCHANGED)
        return {"orderId": str(waiting.algo_id), "orderLinkId": server.link_id_of(waiting.client_algo_id)}
    order = server._find(c)
    if not order.is_open:
        raise order_not_found(c.category)
    c.params.setdefault("side", "Buy" if order.side == "BUY" else "Sell")  # spot's price-band code depends on it
    price, qty = optional_decimal(c, "price"), optional_decimal(c, "qty")
    if price is not None and (order.is_market or price == order.price):
        price = None  # a market order has no price to amend; the same price is no change
    if qty is not None and qty == order.qty:
        qty = None
    moved = False
    if trigger is not None and order.is_conditional and not order.working:  # a spot conditional order still waiting
        market = server._market(c)
        assert market is not None
        moved = server.conditional.move_trigger(c, market, order, trigger)
    if price is None and qty is None:
        if moved:
            return {"orderId": str(order.order_id), "orderLinkId": server.link_id(order)}
        raise BybitError(10001, UNCHANGED)
    try:
        amend_order(server.ex, c.acct, order, price, qty)
    except QtyNotAboveFilled:
        if c.category == "spot":
            raise params_error("params error: qty must be greater than the filled quantity") from None
        raise BybitError(110064, "The number of contracts modified cannot be less than or equal to the filled quantity") from None
    return {"orderId": str(order.order_id), "orderLinkId": server.link_id(order)}
