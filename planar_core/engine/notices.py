"""What the engine tells a strategy's logic: a candle closed, an order changed, a fill arrived.

``Strategy.notify`` hands these to its listeners as they happen (on the event loop, from the watcher or
response that caused them); the runner's logic host queues them and calls the logic's callbacks in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import AssetInstance, Candle, Order, Trade


@dataclass(frozen=True)
class BarClosed:
    ai: AssetInstance
    timeframe: str
    bar: Candle


@dataclass(frozen=True)
class OrderUpdated:
    """The order's status changed or its filled amount grew (``order`` is the live object: read it now). An order
    whose outcome was unknown carries its verdict (``order.verdict``: "found" / "absent"), and a proven-absent one
    re-sent under ``resend_absent`` is announced again once ``order.resent_as`` names the new order."""

    ai: AssetInstance
    order: Order


@dataclass(frozen=True)
class Filled:
    """A new fill of one of our orders (a trade reported by the exchange, or emulated from the order's filled
    amount when no trade was reported; a real trade that later replaces an emulated one is not announced again)."""

    ai: AssetInstance
    order: Order
    trade: Trade


EngineEvent = BarClosed | OrderUpdated | Filled
