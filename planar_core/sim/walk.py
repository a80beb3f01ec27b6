"""The fill model: how the price moves inside one candle.

The sandbox exchange replays a candle as a piecewise-linear path through four points, at its open, a third and
two thirds of its span, and its end: open -> low -> high -> close for an up candle (close >= open), open -> high ->
low -> close for a down one (``sandbox/market_data.path_from_candles``). A backtest walks the same path, so a
strategy meets the same prices in a backtest as live against the sandbox replaying the same candles.

Between two points the path passes every price in between; the walk stops at each price where something rests
(a limit order's price, a conditional order's trigger), in the order the path meets them, so a limit order fills at
its own price and a stop triggers where the path crosses it, not at the candle's extreme. The time of such a stop
is interpolated along the segment.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence


def knots(open_ms: int, span_ms: int, o: float, h: float, lo: float, c: float) -> list[tuple[int, float]]:
    """The candle's four points (time, price), as the sandbox's path has them."""
    first, second = (lo, h) if c >= o else (h, lo)
    return [(open_ms, o), (open_ms + span_ms // 3, first), (open_ms + 2 * span_ms // 3, second), (open_ms + span_ms - 1, c)]


def walk(points: Sequence[tuple[int, float]], levels: Sequence[float]) -> Iterator[tuple[int, float]]:
    """The path through ``points``, with a stop at each of ``levels`` a segment crosses (in the order met; a level
    equal to a point is that point). The first point is included."""
    if not points:
        return
    yield points[0]
    for (t0, p0), (t1, p1) in itertools.pairwise(points):
        if levels and p1 != p0:
            lo, hi = (p0, p1) if p1 > p0 else (p1, p0)
            inside = sorted({x for x in levels if lo < x < hi}, reverse=p1 < p0)
            for x in inside:
                yield t0 + int((t1 - t0) * (x - p0) / (p1 - p0)), x
        yield t1, p1


def price_at(points: Sequence[tuple[int, float]], at: int) -> float:
    """The path's price at time ``at`` (linear between its points; the first or last point outside them)."""
    before = points[0]
    for t, p in points:
        if t >= at:
            t0, p0 = before
            return p if t == at or t == t0 else p0 + (p - p0) * (at - t0) / (t - t0)
        before = (t, p)
    return before[1]
