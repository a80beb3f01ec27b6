"""Strategy logic used by the flow tests."""

from __future__ import annotations

from pathlib import Path

from planar_core.logic import Logic, LogicParams
from planar_core.model import OrderType, Side
from planar_core.model.context import StrategyContext


class RestingOrders(Logic):
    """Places ``n`` resting buys 20 % under the market on the first tick, then waits."""

    class Params(LogicParams):
        n: int = 2
        crash_marker: str | None = None

    params: Params

    async def on_tick(self, s: StrategyContext) -> None:
        ai = s.universe["BTC/USDT"]
        if not ai.last_price:
            return
        n = self.params.n
        marker = Path(self.params.crash_marker) if self.params.crash_marker else None
        placed_before = sum(1 for o in ai.open_orders() if o.id is not None)  # after a restart: adopted from the exchange
        if placed_before < n:
            for i in range(n - placed_before):
                await s.call(ai, OrderType.GTC, Side.BUY, amount=0.001, price=ai.last_price * (0.8 - i / 100), waitfor=0)
        if marker is not None and not marker.exists() and placed_before + 1 >= n:
            marker.write_text("crashed once")
            raise RuntimeError("injected crash after placing orders")
