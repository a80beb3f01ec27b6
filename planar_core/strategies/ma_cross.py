"""Example logic: moving-average crossover per asset, evaluated on closed candles.

Buys ``order_value`` of quote when the fast mean of closes crosses above the slow mean and sells (up to the
same value of) the holding when it crosses below. It runs in ``on_bar``, called as the exchange closes each
candle, so the still-forming candle never produces a signal. Orders go through the engine's execution
policy (``ctx.execute``, engine/execution.py), which auto-tuning adjusts.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from ..logic import Logic, LogicParams
from ..model import Candle, Side
from ..model.context import StrategyContext
from ..model.views import AssetView


class MACross(Logic):
    class Params(LogicParams):
        fast: int = Field(5, ge=1, description="candles in the fast mean")
        slow: int = Field(20, ge=2, description="candles in the slow mean")
        order_value: float = Field(200.0, gt=0, description="quote value of each buy")
        timeframe: str = Field("1m", description="the candles the crossover reads")

        @model_validator(mode="after")
        def _fast_below_slow(self) -> MACross.Params:
            if self.fast >= self.slow:
                raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
            return self

    params: Params

    def __init__(self, params: LogicParams | None = None) -> None:
        super().__init__(params)
        self.last_signal: dict[str, int] = {}

    async def on_start(self, ctx: StrategyContext) -> None:
        if self.params.timeframe not in ctx.timeframes:  # it would never trade, and a search would call that the best
            raise ValueError(f"timeframe {self.params.timeframe!r} is not one of the config's timeframes {list(ctx.timeframes)}")

    async def on_bar(self, ctx: StrategyContext, ai: AssetView, timeframe: str, bar: Candle) -> None:
        p = self.params
        if timeframe != p.timeframe:
            return
        closes = ai.ohlcv[timeframe].closed[-p.slow :, 4]
        if len(closes) < p.slow:
            return
        # sum / count is numpy's mean (the same float), without its per-call dispatch: this runs on every candle
        signal = 1 if closes[-p.fast :].sum() / p.fast > closes.sum() / p.slow else -1
        previous = self.last_signal.get(ai.symbol)
        self.last_signal[ai.symbol] = signal
        if previous is None or previous == signal:
            return
        if signal > 0:
            await ctx.execute(ai, Side.BUY, p.order_value / bar.close)
        else:
            held = ai.position.contracts if ai.is_margin else ctx.cash(ai.base).free
            if held > 0:
                await ctx.execute(ai, Side.SELL, min(held, p.order_value / bar.close))
