"""Strategy logic used by the flow tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from planar_core.model import OrderType, Side


class RestingOrders:
    """Places ``n`` resting buys 20 % under the market on the first tick, then waits."""

    def __init__(self, n: int = 2, crash_marker: str | None = None) -> None:
        self.n = n
        self.crash_marker = Path(crash_marker) if crash_marker else None
        self.ticks = 0

    async def on_tick(self, s: Any) -> None:
        self.ticks += 1
        ai = s.universe["BTC/USDT"]
        if not ai.last_price:
            return
        placed_before = sum(1 for o in ai.open_orders() if o.id is not None)  # after a restart: adopted from the exchange
        if placed_before < self.n and self.ticks >= 1:
            for i in range(self.n - placed_before):
                await s.call(ai, OrderType.GTC, Side.BUY, amount=0.001, price=ai.last_price * (0.8 - i / 100), waitfor=0)
        if self.crash_marker is not None and not self.crash_marker.exists() and placed_before + 1 >= self.n:
            self.crash_marker.write_text("crashed once")
            raise RuntimeError("injected crash after placing orders")
