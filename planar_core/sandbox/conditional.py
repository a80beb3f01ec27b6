"""When a conditional order triggers: stops, take-profits and trailing stops, on spot and on the futures Algo Service.

Pure rules over a price (no state but the trailing reference an order carries), so that placement ("would trigger
immediately") and the matcher's tick use the same test:

* stop-loss (spot ``STOP_LOSS[_LIMIT]``, futures ``STOP[_MARKET]``): a buy triggers at or above its price, a sell at
  or below;
* take-profit (``TAKE_PROFIT[_LIMIT]``, futures ``TAKE_PROFIT[_MARKET]``): a buy at or below, a sell at or above;
* trailing (spot ``trailingDelta`` in basis points, futures ``TRAILING_STOP_MARKET`` with ``callbackRate`` in
  percent): once active, a sell tracks the highest price and triggers when the price falls the distance below it, a
  buy tracks the lowest and triggers when the price rises the distance above it. An activation price delays
  tracking until its condition is met, and the first price that meets it is the reference; without one, tracking
  starts at once. Spot: the ``stopPrice`` of a trailing order, met as the order type's own stop condition (Binance's
  trailing-stop FAQ table: a ``STOP_LOSS`` sell when the price is at or below it, a ``TAKE_PROFIT`` sell at or
  above; buys the other way round). Futures: ``activatePrice``, met by a sell's price reaching it from below (a
  buy's from above). Until 2026-12-07 a spot stop-loss with both a ``stopPrice`` and a ``trailingDelta`` triggered
  at the ``stopPrice`` as a plain stop (an outside trial: it sold at once where Binance starts to trail).
"""

from __future__ import annotations

from decimal import Decimal

from .accounts import ZERO, AlgoOrder, SandboxOrder


def stop_due(kind: str, side: str, trigger: Decimal, price: Decimal) -> bool:
    """``kind``: "stop" (stop-loss) or "take" (take-profit)."""
    if kind == "stop":
        return price >= trigger if side == "BUY" else price <= trigger
    return price <= trigger if side == "BUY" else price >= trigger


def trailing_due(side: str, ref: Decimal, activated: bool, rate: Decimal, price: Decimal) -> tuple[bool, Decimal]:
    """(triggered, new reference): the reference is 0 until the order is ``activated`` (by this price, or before)."""
    if not ref:
        if not activated:
            return False, ZERO
        ref = price
    ref = max(ref, price) if side == "SELL" else min(ref, price)
    if side == "SELL":
        return price <= ref * (1 - rate), ref
    return price >= ref * (1 + rate), ref


def spot_due(order: SandboxOrder, price: Decimal, update: bool = False) -> bool:
    """Whether a waiting spot conditional order triggers at ``price`` (``update``: advance its trailing reference)."""
    kind = "stop" if order.type.startswith("STOP_LOSS") else "take"
    if order.trailing_delta:
        activated = not order.stop_price or stop_due(kind, order.side, order.stop_price, price)
        due, ref = trailing_due(order.side, order.trail_ref, activated, Decimal(order.trailing_delta) / 10_000, price)
        if update:
            order.trail_ref = ref
        return due
    return stop_due(kind, order.side, order.stop_price, price)


def activation_met(order: SandboxOrder, price: Decimal) -> bool:
    """A spot trailing order whose ``stopPrice`` condition is already met where it is placed: refused as a plain
    stop would be ("would trigger immediately"); the order type that waits on the other side is the one to send
    (a sell whose activation is above the market is a ``TAKE_PROFIT``)."""
    kind = "stop" if order.type.startswith("STOP_LOSS") else "take"
    return bool(order.trailing_delta and order.stop_price) and stop_due(kind, order.side, order.stop_price, price)


def algo_due(algo: AlgoOrder, price: Decimal, update: bool = False) -> bool:
    """Whether a futures algo order triggers at ``price`` (its working type's price: mark or last)."""
    if algo.type == "TRAILING_STOP_MARKET":
        activated = not algo.trigger_price or (price >= algo.trigger_price if algo.side == "SELL" else price <= algo.trigger_price)
        due, ref = trailing_due(algo.side, algo.trail_ref, activated, algo.callback_rate / 100, price)
        if update:
            algo.trail_ref = ref
        return due
    return stop_due("stop" if algo.type.startswith("STOP") else "take", algo.side, algo.trigger_price, price)
