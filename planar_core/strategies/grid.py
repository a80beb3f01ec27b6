"""Example logic: a post-only grid that keeps ``levels`` orders resting on each side and re-quotes on fills.

Around an anchor (the last price at start, then each fill's price) buys rest at ``spacing`` below, 2×spacing
below ... and sells above, all post-only (a maker order: an order that would take is refused by the exchange,
never filled as a taker). A filled buy is answered by a sell one spacing above its price, and the reverse,
so each round trip earns the spacing. Orders drifting more than ``levels + 2`` spacings from the anchor are
cancelled. The grid counts, keeps and cancels only its own orders (``ai.open_orders()`` on the context's asset view lists
only the orders whose client ids carry its identity): orders of other strategies on the account, or adopted by the
foreign-order policy, are none of its business. An order that is refused (it would have taken), expires or is cancelled by hand is replaced on the
next tick, not at once: re-placing a refused order at once would loop as long as the price sits there. Spot sells need the base currency: the
grid sells only what the account holds.
"""

from __future__ import annotations

from pydantic import Field

from ..logic import Logic, LogicParams
from ..model import OrderType, Side
from ..model.context import StrategyContext
from ..model.views import AssetView, OrderView, TradeView


class GridMaker(Logic):
    class Params(LogicParams):
        levels: int = Field(3, ge=1, le=20, description="resting orders per side")
        spacing: float = Field(0.002, gt=0, lt=0.2, description="distance between levels, a fraction of the price")
        order_value: float = Field(100.0, gt=0, description="quote value of each order")

    params: Params

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.anchor: dict[str, float] = {}
        self.quotes = 0  # orders placed (a test and the report read it)

    async def on_start(self, ctx: StrategyContext) -> None:
        for ai in ctx.universe.values():
            if ai.last_price:
                self.anchor[ai.symbol] = ai.last_price
                await self.requote(ctx, ai)

    async def on_fill(self, ctx: StrategyContext, order: OrderView, trade: TradeView) -> None:
        ai = ctx.asset(order.symbol)
        self.anchor[ai.symbol] = trade.price
        await self.requote(ctx, ai)

    async def on_tick(self, ctx: StrategyContext) -> None:
        for ai in ctx.universe.values():
            if ai.symbol not in self.anchor and ai.last_price:
                self.anchor[ai.symbol] = ai.last_price
            if ai.symbol in self.anchor and len(ai.open_orders()) < 2 * self.params.levels:
                await self.requote(ctx, ai)

    def wanted(self, anchor: float) -> list[tuple[Side, float]]:
        p = self.params
        return [
            (side, anchor * (1 + sign * i * p.spacing)) for i in range(1, p.levels + 1) for side, sign in ((Side.BUY, -1), (Side.SELL, 1))
        ]

    async def requote(self, ctx: StrategyContext, ai: AssetView) -> None:
        """Cancel what drifted too far from the anchor, then fill the empty levels."""
        p = self.params
        anchor = self.anchor[ai.symbol]
        tolerance = anchor * p.spacing / 2
        for o in ai.open_orders():
            if o.price is not None and abs(o.price - anchor) > (p.levels + 2) * p.spacing * anchor:
                await ctx.cancel(ai, o)
        resting = [o for o in ai.open_orders() if o.price is not None]
        for side, price in self.wanted(anchor):
            if any(o.side is side and abs(o.price - price) <= tolerance for o in resting if o.price is not None):
                continue
            amount = p.order_value / price
            if side is Side.SELL and not ai.is_margin:
                held = ctx.cash(ai.base).free
                if held < amount:
                    continue
            self.quotes += 1
            await ctx.call(ai, OrderType.POST_ONLY, side, amount=amount, price=price, waitfor=0)
