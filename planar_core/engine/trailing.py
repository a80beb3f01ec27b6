"""The engine's trailing stop, where the venue has none of its own for an order (Bybit: its trailing stop belongs to
a position, not to an order with the strategy's id) but can move a waiting stop's trigger (``Capabilities
.amend_trigger``).

A ``TRAILING_STOP`` order is then a stop-market order on the exchange, placed at ``trailing_percent`` from the last
price, whose trigger the engine moves after the price: a sell stop up as the price makes new highs, a buy stop down
as it makes new lows; never back. So the protection stays on the exchange when the engine is gone (the stop keeps
its last trigger), and a restart picks up the exchange's trigger (``follow_exchange``: only ever tightened).

The trigger is moved when it would improve by at least ``STEP`` (a fraction of the price, and at least a tick): a
request per tick of a fast market would spend the venue's order rate on nothing. One move per order is in flight at
a time. A move without an answer may have landed: the next one is tighter still (``Trailer.asked``), never looser.
A refused move backs off; either way the trigger the exchange holds is a valid stop, logged and traced.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..exchange.errors import ExchangeOpError, PermanentError
from ..model import AssetInstance, Order, OrderType, Side
from ..model.cancels import cancel_target

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.trailing")
STEP = 0.001  # move the trigger when it improves by 0.1 % of the price or more
BACKOFF_S, MAX_BACKOFF_S = 1.0, 60.0  # after a refused move: wait, doubling up to a minute
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
    (``follow_exchange``).

    Never back, even when a move's outcome is unknown: each stop's wanted trigger follows the best price seen since
    it was placed (``best``: only ever improves), and a move is sent only when it is tighter than the tightest
    trigger ever asked for it (``asked``: counted when sent, whatever the answer), so a move that timed out and
    landed after all is never followed by a looser one. A move the exchange refused outright backs off
    (``BACKOFF_S``, doubling) instead of costing an order-rate request at every price."""

    def __init__(self) -> None:
        self.moving: set[str] = set()  # client ids with a move in flight
        self.best: dict[str, float] = {}  # client id -> the best price since placement (sell: highest; buy: lowest)
        self.asked: dict[str, float] = {}  # client id -> the tightest trigger ever sent
        self.resume_at: dict[str, tuple[float, float]] = {}  # client id -> (monotonic time, backoff) after a refusal

    def on_price(self, s: "Strategy", ai: AssetInstance) -> None:
        price = ai.last_price
        if not price or not emulated(s, ai):
            return
        for order in ai.open_orders():
            if order.type is not OrderType.TRAILING_STOP or order.triggered or order.id is None or order.trigger_price is None:
                continue
            cid = order.client_order_id
            pct = order.trailing_percent
            if cid in self.moving or pct is None or time.monotonic() < self.resume_at.get(cid, (0.0, 0.0))[0]:
                continue
            # the best price since placement: at least what the trigger held implies, and this one if better
            implied = order.trigger_price / (1 - pct / 100) if order.side is Side.SELL else order.trigger_price / (1 + pct / 100)
            best = self.best.get(cid, implied)
            best = max(best, implied, price) if order.side is Side.SELL else min(best, implied, price)
            self.best[cid] = best
            try:
                wanted = s.venue.price_to_precision(ai.symbol, trigger_for(order.side, best, pct))
            except Exception:  # rounds to nothing: no move
                continue
            floor = tighter(order.side, order.trigger_price, self.asked.get(cid, order.trigger_price))
            gain = wanted - floor if order.side is Side.SELL else floor - wanted
            if gain <= 0 or gain < STEP * price:
                continue
            self.moving.add(cid)
            self.asked[cid] = wanted
            s.supervisor.spawn(self._move(s, ai, order, wanted))

    async def _move(self, s: "Strategy", ai: AssetInstance, order: Order, trigger: float) -> None:
        cid = order.client_order_id
        before = order.trigger_price
        try:
            await s.venue.amend_trigger(ai.symbol, cancel_target(ai, order), order.side, trigger, s.config.timeouts.order_placement)
        except PermanentError as err:  # refused: the exchange keeps the trigger it had (a valid stop); back off
            _, backoff = self.resume_at.get(cid, (0.0, BACKOFF_S / 2))
            self.resume_at[cid] = (time.monotonic() + 2 * backoff, min(2 * backoff, MAX_BACKOFF_S))
            log.warning("trailing stop %s on %s: trigger not moved to %s (%s)", cid, ai.symbol, trigger, err)
            s.sink.record("error_occurred", symbol=ai.symbol, client_order_id=cid, reason=f"trailing stop not moved: {err}")
            return
        except ExchangeOpError as err:  # no answer: it may have moved; ``asked`` keeps it, so nothing looser follows
            log.warning("trailing stop %s on %s: move to %s unconfirmed (%s)", cid, ai.symbol, trigger, err)
            s.sink.record("error_occurred", symbol=ai.symbol, client_order_id=cid, reason=f"trailing stop move unconfirmed: {err}")
            return
        finally:
            self.moving.discard(cid)
        self.resume_at.pop(cid, None)
        order.trigger_price = trigger if order.trigger_price is None else tighter(order.side, order.trigger_price, trigger)
        s.sink.record("order_amended", symbol=ai.symbol, client_order_id=cid, trigger_price=order.trigger_price, previous=before)


def follow_exchange(s: "Strategy", ai: AssetInstance, order: Order, reported: float) -> None:
    """A report of an engine-side trailing stop names its trigger on the exchange, and the local trigger follows it:
    when it is tighter, a move this run did not see (made before a restart, or answered after a timeout); when it is
    looser and no move is in flight, a move that did not land after all, or the trigger moved from outside the
    engine. Then the engine's view says so (it believed a tighter stop than the exchange holds), and the trailer
    forgets the moves it asked for beyond it, so the next price sends the stop back where the trail puts it (never
    looser than the exchange's: the wanted trigger follows the best price, which only improves). With a move in
    flight, a looser report may predate it: the local trigger keeps the tighter one until the move's answer."""
    if order.type is not OrderType.TRAILING_STOP or order.triggered or not emulated(s, ai):
        return
    held = order.trigger_price
    if held is None or tighter(order.side, held, reported) == reported:
        order.trigger_price = reported
        return
    cid = order.client_order_id
    if cid in s.trailer.moving:
        return
    log.warning("trailing stop %s on %s: the exchange holds trigger %s, looser than %s; moving it back", cid, ai.symbol, reported, held)
    s.sink.record(
        "error_occurred",
        symbol=ai.symbol,
        client_order_id=cid,
        reason=f"trailing stop trigger {reported} on the exchange, looser than {held}",
    )
    order.trigger_price = reported
    s.trailer.asked[cid] = reported
    s.trailer.resume_at.pop(cid, None)
