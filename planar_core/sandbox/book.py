"""A synthetic order book around the path price: spread, depth levels, rounding."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_FLOOR) * step


def ceil_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_CEILING) * step


@dataclass
class BookModel:
    """How deep and wide the synthetic book is.

    ``spread_bps`` is the full bid/ask spread; ``level_notional`` the quote value
    resting on each of ``levels`` levels, each ``level_gap_bps`` apart. A market
    order walks the levels, so its slippage grows with its size.
    """

    spread_bps: float = 2.0
    level_notional: float = 50_000.0
    level_gap_bps: float = 1.0
    levels: int = 20

    def levels_for(self, mid: float, tick: Decimal, step: Decimal, side: str) -> list[tuple[Decimal, Decimal]]:
        """Price levels a taker of ``side`` ('BUY' takes asks) would consume, best first."""
        return list(self.iter_levels(mid, tick, step, side))

    def iter_levels(self, mid: float, tick: Decimal, step: Decimal, side: str) -> Iterator[tuple[Decimal, Decimal]]:
        """``levels_for``'s levels one at a time: a taker usually needs the first one or two, and each level is a
        few Decimal operations (the simulated venue of a backtest takes the book on every market order)."""
        d_mid = Decimal(repr(mid))
        half = d_mid * Decimal(self.spread_bps) / Decimal(20_000)
        gap = max(tick, floor_to(d_mid * Decimal(self.level_gap_bps) / Decimal(10_000), tick))
        if side == "BUY":
            best = ceil_to(d_mid + half, tick)
            if best <= floor_to(d_mid - half, tick):
                best += tick
        else:
            best = floor_to(d_mid - half, tick)
            if best <= 0:
                best = tick
        for i in range(self.levels):
            p = best + gap * i if side == "BUY" else max(tick, best - gap * i)
            qty = floor_to(Decimal(repr(self.level_notional * (1 + 0.5 * i) / mid)), step)
            yield p, max(qty, step)

    def best(self, mid: float, tick: Decimal, step: Decimal) -> tuple[tuple[Decimal, Decimal], tuple[Decimal, Decimal]]:
        """(best bid, qty), (best ask, qty)."""
        return next(self.iter_levels(mid, tick, step, "SELL")), next(self.iter_levels(mid, tick, step, "BUY"))
