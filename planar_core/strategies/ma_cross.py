"""Example logic: moving-average crossover per asset on the live OHLCV feed.

Buys ``order_value`` of quote when the fast mean crosses above the slow mean
and sells the holding when it crosses below. Orders go through the engine's
execution policy (``Strategy.execute``), which auto-tuning adjusts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..model import Side

if TYPE_CHECKING:
    from ..engine.strategy import Strategy



@dataclass
class MACross:
    fast: int = 5
    slow: int = 20
    order_value: float = 200.0
    timeframe: str = "1m"
    last_signal: dict[str, int] = field(default_factory=dict)

    async def on_tick(self, s: "Strategy") -> None:
        for ai in s.universe.values():
            candles = ai.ohlcv.get(self.timeframe) or []
            if len(candles) < self.slow + 1 or not ai.last_price:
                continue
            closes = np.array([c[4] for c in candles[-(self.slow + 1):]], dtype=float)
            signal = 1 if closes[-self.fast:].mean() > closes[-self.slow:].mean() else -1
            previous = self.last_signal.get(ai.symbol)
            self.last_signal[ai.symbol] = signal
            if previous is None or previous == signal:
                continue
            if signal > 0:
                await s.execute(ai, Side.BUY, self.order_value / ai.last_price)
            else:
                held = ai.position.contracts if ai.is_margin else s.cash(ai.base).free
                if held > 0:
                    await s.execute(ai, Side.SELL, min(held, self.order_value / ai.last_price))
