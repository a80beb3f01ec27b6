"""The fill model's price path inside a candle: the sandbox's own four points, stopping at every resting level."""

from __future__ import annotations

import numpy as np

from planar_core.sandbox.market_data import path_from_candles
from planar_core.sim.walk import knots, walk


def test_knots_are_the_sandbox_paths_points() -> None:
    """Up candle: open, low, high, close; down candle: open, high, low, close; at the sandbox's times."""
    rows = np.array([[0.0, 100, 110, 95, 105, 1], [60_000.0, 105, 108, 90, 92, 1]])
    path = path_from_candles(rows)
    ours = knots(0, 60_000, 100, 110, 95, 105) + knots(60_000, 60_000, 105, 108, 90, 92)
    assert [p for _, p in ours] == [100, 95, 110, 105, 105, 108, 90, 92]
    for t, p in ours:
        assert path.price_at(t) == p


def test_walk_stops_at_levels_in_the_order_met() -> None:
    points = knots(0, 60_000, 100, 110, 95, 105)  # 100 -> 95 -> 110 -> 105
    out = list(walk(points, [97.0, 108.0, 96.0, 120.0, 100.0]))
    prices = [p for _, p in out]
    assert prices == [100, 97.0, 96.0, 95, 96.0, 97.0, 100.0, 108.0, 110, 108.0, 105]
    times = [t for t, _ in out]
    assert times == sorted(times)


def test_walk_without_levels_is_the_four_points() -> None:
    points = knots(0, 60_000, 100, 110, 95, 95)
    assert list(walk(points, [])) == points
