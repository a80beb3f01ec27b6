"""Example logic for USDⓈ-M futures: a channel breakout with a stop-loss and a take-profit.

On each closed candle, a flat asset whose close breaks above the highest high (below the lowest low) of the
previous ``lookback`` candles goes long (short) for a notional of ``order_value``. While a position is open, the exits are watched on every tick against the last price:
at ``stop_loss`` or ``take_profit`` (fractions of the entry price) the position is closed with a reduce-only
market order. Until the engine places exchange-side stop orders (the orders-and-margin issue), the exits are
the strategy's own: they act only while the engine runs, which the docs say.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from ..logic import Logic, LogicParams
from ..model import AssetInstance, Candle, OrderType, Side

if TYPE_CHECKING:
    from ..engine.strategy import Strategy


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

    async def on_bar(self, s: Strategy, ai: AssetInstance, timeframe: str, bar: Candle) -> None:
        p = self.params
        if timeframe != p.timeframe or ai.position.contracts or ai.open_orders():
            return
        closed = ai.ohlcv[timeframe].closed
        if len(closed) < p.lookback + 1:
            return
        channel = closed[-(p.lookback + 1) : -1]
        amount = p.order_value / bar.close
        if bar.close > channel[:, 2].max():
            await s.call(ai, OrderType.MARKET, Side.BUY, amount=amount)
        elif bar.close < channel[:, 3].min():
            await s.call(ai, OrderType.MARKET, Side.SELL, amount=amount)

    async def on_tick(self, s: Strategy) -> None:
        for ai in s.universe.values():
            pos = ai.position
            if not pos.contracts or not ai.last_price or not pos.entry_price or ai.open_orders():
                continue
            move = (ai.last_price / pos.entry_price - 1.0) * (1 if pos.contracts > 0 else -1)
            why = "stop_loss" if move <= -self.params.stop_loss else "take_profit" if move >= self.params.take_profit else None
            if why is None:
                continue
            self.exits[ai.symbol] = why
            side = Side.SELL if pos.contracts > 0 else Side.BUY
            await s.call(ai, OrderType.MARKET, side, amount=abs(pos.contracts), reduce_only=True)
