"""The engine's requests (model/venue.py: ``PlaceOrder``, ``PlaceExitList``, ``OrderRef``) in ccxt's terms: the order
type and parameters of ``create_order``, the parameters that name an order, the request of an exit list.

Pure functions of the request, the market and the venue's dialect, so each mapping is tested without a socket.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..model.types import Json, OrderType, PositionSide
from ..model.venue import OrderRef, PlaceExitList, PlaceOrder

if TYPE_CHECKING:
    from .dialect import Dialect

TIME_IN_FORCE = {OrderType.IOC: "IOC", OrderType.FOK: "FOK"}


def order_args(dialect: Dialect, order: PlaceOrder, contract: bool) -> tuple[str, Json]:
    """ccxt's order type ("market" / "limit") and parameters of ``order``: the client order id, the conditional
    parameters the dialect names, the position side (hedge mode: it says what the order opens or closes, and
    reduce-only is not sent) or reduce-only, and the time in force of a limit order. The strategy's own options
    (``extra``) go first: the request's checked fields win."""
    params: Json = {**order.extra, "clientOrderId": order.client_order_id}
    trigger = order.type.trigger
    if trigger is not None:
        params.update(
            dialect.conditional_params(trigger, contract, order.trigger_price, order.trailing_percent, order.side.value, order.reference)
        )
    if order.position_side is not PositionSide.BOTH:
        params.update(dialect.position_params(order.position_side.value))
    elif order.reduce_only:
        params["reduceOnly"] = True
    if not order.type.is_limit:
        return "market", params
    if order.type is OrderType.POST_ONLY:
        params["postOnly"] = True
    else:
        params["timeInForce"] = TIME_IN_FORCE.get(order.type, "GTC")
    return "limit", params


def ref_params(dialect: Dialect, ref: OrderRef, contract: bool) -> Json:
    """ccxt parameters naming ``ref`` in fetch_order / cancel_order: by exchange id when known (a futures
    conditional order still waiting: its algo id), else by client order id."""
    waiting = contract and ref.waiting_trigger
    if ref.order_id is not None:
        return dialect.trigger_params(contract, waiting)
    return dialect.by_client_id(ref.client_order_id, waiting)


def exit_list_request(dialect: Dialect, market_id: str, exits: PlaceExitList, amount: str, take_profit: str, stop: str) -> Json:
    """The venue's one-cancels-the-other request of ``exits`` (amount and prices already written to the market's
    precision). A sell list has the take-profit above and the stop below; a buy list the other way round."""
    tp_cid, stop_cid = exits.take_profit_client_id, exits.stop_client_id
    above, below = (tp_cid, stop_cid) if exits.side.value == "sell" else (stop_cid, tp_cid)
    return dialect.oco_request(market_id, exits.side.value, amount, take_profit, stop, above, below)
