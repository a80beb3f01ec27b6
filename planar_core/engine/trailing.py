"""The engine's trailing stop, where the venue has none of its own for an order (Bybit: its trailing stop belongs to
a position, not to an order with the strategy's id) but can move a waiting stop's trigger (``Capabilities
.amend_trigger``).

A ``TRAILING_STOP`` order is then a stop-market order on the exchange, placed at ``trailing_percent`` from the last
price, whose trigger the engine moves after the price: a sell stop up as the price makes new highs, a buy stop down
as it makes new lows; never back. So the protection stays on the exchange when the engine is gone (the stop keeps
its last trigger), and a restart picks up the exchange's trigger (``follow_exchange``: only ever tightened).

The trigger is moved when it would improve by at least ``STEP`` (a fraction of the price, and at least a tick): a
request per tick of a fast market would spend the venue's order rate on nothing. One move per order is in flight at
a time; a move that fails is logged and traced and tried again at the next price (the trigger the exchange holds is
a valid stop either way, so nothing is unknown about the order itself).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..exchange.errors import ExchangeOpError
from ..model import AssetInstance, Order, OrderType, Side
from ..model.cancels import cancel_target

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.trailing")
STEP = 0.001  # move the trigger when it improves by 0.1 % of the price or more
PERCENT_RANGE = (0.1, 20.0)  # trailing_percent the engine's trailing stop takes (Binance's native range is 0.1-10 %, spot 0.1-20 %)


def market_type(ai: AssetInstance) -> str:
    return "swap" if ai.is_margin else "spot"


def emulated(s: "Strategy", ai: AssetInstance) -> bool:
    """Whether ``ai``'s trailing stops are the engine's (a stop-market order it moves)."""
    return s.venue.caps.trails_by_amending(market_type(ai))


def trigger_for(side: Side, price: float, percent: float) -> float:
    """The stop ``percent`` away from ``price``: below it for a sell, above it for a buy."""
    return price * (1 - percent / 100) if side is Side.SELL else price * (1 + percent / 100)


def tighter(side: Side, a: float, b: float) -> float:
    """Of two triggers, the one nearer the price (a sell stop's higher, a buy stop's lower)."""
    return max(a, b) if side is Side.SELL else min(a, b)


class Trailer:
    """The strategy's engine-side trailing stops: a price hook (``on_price``) and the reports' hook
    (``follow_exchange``)."""

    def __init__(self) -> None:
        self.moving: set[str] = set()  # client ids with a move in flight

    def on_price(self, s: "Strategy", ai: AssetInstance) -> None:
        price = ai.last_price
        if not price or not emulated(s, ai):
            return
        for order in ai.open_orders():
            if order.type is not OrderType.TRAILING_STOP or order.triggered or order.id is None or order.trigger_price is None:
                continue
            if order.client_order_id in self.moving or order.trailing_percent is None:
                continue
            wanted = trigger_for(order.side, price, order.trailing_percent)
            try:
                wanted = s.venue.price_to_precision(ai.symbol, wanted)
            except Exception:  # rounds to nothing: no move
                continue
            gain = wanted - order.trigger_price if order.side is Side.SELL else order.trigger_price - wanted
            if gain <= 0 or gain < STEP * price:
                continue
            self.moving.add(order.client_order_id)
            s.supervisor.spawn(self._move(s, ai, order, wanted))

    async def _move(self, s: "Strategy", ai: AssetInstance, order: Order, trigger: float) -> None:
        before = order.trigger_price
        try:
            await s.venue.amend_trigger(ai.symbol, cancel_target(ai, order), order.side, trigger, s.config.timeouts.order_placement)
        except ExchangeOpError as err:  # the exchange keeps the trigger it had: still a valid stop; the next price tries again
            log.warning("trailing stop %s on %s: trigger not moved to %s (%s)", order.client_order_id, ai.symbol, trigger, err)
            s.sink.record(
                "error_occurred", symbol=ai.symbol, client_order_id=order.client_order_id, reason=f"trailing stop not moved: {err}"
            )
            return
        finally:
            self.moving.discard(order.client_order_id)
        if before is not None:
            order.trigger_price = tighter(order.side, before, trigger)
        s.sink.record(
            "order_amended", symbol=ai.symbol, client_order_id=order.client_order_id, trigger_price=order.trigger_price, previous=before
        )


def follow_exchange(s: "Strategy", ai: AssetInstance, order: Order, reported: float) -> None:
    """A report of an engine-side trailing stop names its trigger on the exchange: the local trigger follows it when
    it is tighter (a move this run did not see: made before a restart, or answered after a timeout)."""
    if order.type is OrderType.TRAILING_STOP and not order.triggered and emulated(s, ai):
        order.trigger_price = reported if order.trigger_price is None else tighter(order.side, order.trigger_price, reported)
