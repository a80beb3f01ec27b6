"""Example logic for USDⓈ-M futures: a channel breakout with a stop-loss and a take-profit.

On each closed candle, a flat asset whose close breaks above the highest high (below the lowest low) of the
previous ``lookback`` candles goes long (short) for a notional of ``order_value``. The entry carries its exits:
a stop-loss and a take-profit at ``stop_loss`` / ``take_profit`` (fractions of the price) that the engine places
on the exchange when the entry fills, as reduce-only conditional orders, one cancelling the other. They act
on the exchange whether the engine runs or not.

The exits are measured from the latest price, not from the bar's close: a bar is announced when the next one
starts, and the market may have moved since it closed. Exits taken from a stale close can sit on the wrong side
of the market and be refused as "would trigger at once", leaving the entry without its protection.
"""

from __future__ import annotations

from pydantic import Field

from ..logic import Logic, LogicParams
from ..model import Candle, OrderType, Side
from ..model.context import StrategyContext
from ..model.views import AssetView, OrderView, TradeView


class Breakout(Logic):
    class Params(LogicParams):
        lookback: int = Field(20, ge=2, description="candles of the channel")
        timeframe: str = Field("1m", description="the candles the breakout reads")
        order_value: float = Field(500.0, gt=0, description="notional of each entry, in the settle currency")
        stop_loss: float = Field(0.01, gt=0, lt=1, description="exit when the price moves this fraction against the entry")
        take_profit: float = Field(0.02, gt=0, description="exit when the price moves this fraction in favour")

    params: Params

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.exits: dict[str, str] = {}  # symbol -> why the last exit was taken (stop_loss / take_profit)

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        p = self.params
        if timeframe != p.timeframe or ai.position.contracts or ai.open_orders():
            return
        closed = ai.ohlcv[timeframe].closed
        if len(closed) < p.lookback + 1:
            return
        channel = closed[-(p.lookback + 1) : -1]
        price = ai.last_price or bar.close
        amount = p.order_value / price
        up, down = price * (1 + p.take_profit), price * (1 - p.stop_loss)
        if bar.close > channel[:, 2].max():
            await ctx.call(ai, OrderType.MARKET, Side.BUY, amount=amount, stop_loss=down, take_profit=up)
        elif bar.close < channel[:, 3].min():
            up, down = price * (1 + p.stop_loss), price * (1 - p.take_profit)
            await ctx.call(ai, OrderType.MARKET, Side.SELL, amount=amount, stop_loss=up, take_profit=down)

    async def on_fill(self, ctx: StrategyContext, order: OrderView, trade: TradeView) -> None:
        if order.parent is not None:  # one of the exits acted
            self.exits[order.symbol] = "stop_loss" if order.type is OrderType.STOP_MARKET else "take_profit"
