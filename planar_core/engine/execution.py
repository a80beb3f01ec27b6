"""The execution policy: how a strategy's "buy / sell this much now" becomes orders. Auto-tuning
(``trace.analysis.optimize_from_events``) adjusts exactly these parameters, and this is the only place that reads
them, so every tuned value changes what the engine sends:

- ``prefer_limit_orders``: a limit order instead of a market order;
- ``limit_order_offset`` (percent): the limit price is the last price moved this far *through* the market (buy
  above, sell below), the most slippage the order accepts;
- ``order_timeout`` (seconds): how long the limit order rests before what is left of it is cancelled;
- ``use_market_orders_threshold`` (fraction of equity): orders worth less than this go as market orders even
  when limits are preferred (small, urgent trades are not worth waiting for).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..model import AssetInstance, Order, OrderAnswer, OrderType, Side
from ..model.json import num
from ..trace.analysis import DEFAULTS

if TYPE_CHECKING:
    from .strategy import Strategy


@dataclass(frozen=True)
class ExecutionPolicy:
    prefer_limit_orders: bool = False
    limit_order_offset: float = 0.0
    order_timeout: float = 60.0
    use_market_orders_threshold: float = 0.0

    @classmethod
    def of(cls, s: "Strategy") -> "ExecutionPolicy":
        tuned = s.state_store.load().tuned_params
        return cls(
            prefer_limit_orders=bool(tuned.get("prefer_limit_orders", DEFAULTS["prefer_limit_orders"])),
            limit_order_offset=num(tuned.get("limit_order_offset"), num(DEFAULTS["limit_order_offset"])),
            order_timeout=num(tuned.get("order_timeout"), num(DEFAULTS["order_timeout"])),
            use_market_orders_threshold=num(tuned.get("use_market_orders_threshold"), num(DEFAULTS["use_market_orders_threshold"])),
        )


async def execute(s: "Strategy", ai: AssetInstance, side: Side, amount: float) -> OrderAnswer:
    """Trade ``amount`` now, as the policy says; returns what ``call()`` returned for the (first) order."""
    p = ExecutionPolicy.of(s)
    price = ai.last_price
    if not p.prefer_limit_orders or not price:
        return await s.call(ai, OrderType.MARKET, side, amount=amount, waitfor=2.0)
    if p.use_market_orders_threshold > 0:
        from ..risk.metrics import equity

        eq, unpriced = equity(s)
        if not unpriced and eq > 0 and amount * price < p.use_market_orders_threshold * eq:
            return await s.call(ai, OrderType.MARKET, side, amount=amount, waitfor=2.0)
    offset = p.limit_order_offset / 100
    limit = price * (1 + offset if side is Side.BUY else 1 - offset)
    before = set(ai.orders)
    result = await s.call(ai, OrderType.GTC, side, amount=amount, price=limit, waitfor=min(2.0, p.order_timeout))
    placed = [ai.orders[c] for c in set(ai.orders) - before]
    if result is not None and placed and placed[0].is_open and math.isfinite(p.order_timeout):
        order = placed[0]
        s.timers.after(p.order_timeout - 2.0, lambda: _expire(s, ai, order))  # the engine's clock (a backtest's: simulated)
    return result


def _expire(s: "Strategy", ai: AssetInstance, order: Order) -> None:
    """``order_timeout`` passed: cancel what is left (the watchers record how the order ended)."""
    if order.is_open and s.running:
        s.supervisor.spawn(s.cancel(ai, order))
