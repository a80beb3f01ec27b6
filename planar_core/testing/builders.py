"""Candles for a strategy's tests: one bar (``candle``), a run of bars from closes (``candles``), and the length of a
timeframe in milliseconds (``timeframe_ms``).

A test usually thinks in closes ("100, 101, then a drop to 97"), the engine in OHLCV rows whose timestamp is the
candle's opening time in ms (``planar_core.model.Candle``, as ccxt and Binance give them). These builders fill in
the rest the way a quiet market would: a candle opens where the previous one closed, its high and low are the
larger and the smaller of its open and close, and its volume is 1 unless said otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from ..model import Candle

UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000, "M": 30 * 86_400_000}
DEFAULT_END_MS = 1_700_000_000_000  # where a fresh TestClock starts (testing/venue.py): candles built alone end there


def timeframe_ms(timeframe: str) -> int:
    """``"1m"`` -> 60 000. ccxt's notation: s, m, h, d, w and M (a month counted as 30 days: a test needs a
    regular step, not the calendar)."""
    count, unit = timeframe[:-1], timeframe[-1:]
    if not count.isdigit() or unit not in UNIT_MS or int(count) <= 0:
        raise ValueError(f"timeframe {timeframe!r}: expected a count and a unit of {''.join(UNIT_MS)}, e.g. '1m' or '4h'")
    return int(count) * UNIT_MS[unit]


def candle(
    close: float,
    *,
    open: float | None = None,  # the column's name, as Candle spells it
    high: float | None = None,
    low: float | None = None,
    volume: float = 1.0,
    timestamp: int = 0,
) -> Candle:
    """One OHLCV bar. ``open`` defaults to ``close`` (a flat bar); ``high`` / ``low`` to the larger / smaller of open
    and close, widened to take a given ``low`` or ``high`` (a bar is never inconsistent). ``timestamp``: the opening
    time in ms."""
    o = close if open is None else open
    h = max(o, close) if high is None else high
    lo = min(o, close) if low is None else low
    if not (lo <= min(o, close) and h >= max(o, close)):
        raise ValueError(f"candle: high {h} and low {lo} must hold open {o} and close {close}")
    if min(o, h, lo, close) <= 0:
        raise ValueError(f"candle: prices must be positive (open {o}, high {h}, low {lo}, close {close})")
    return Candle(int(timestamp), float(o), float(h), float(lo), float(close), float(volume))


def candles(closes: Iterable[float], *, timeframe: str = "1m", start: int | None = None, volume: float = 1.0) -> list[Candle]:
    """One candle per close, ``timeframe`` apart, each opening at the previous close (the first opens at its own
    close). ``start``: the first candle's opening time in ms; by default the last one closes when a fresh
    ``TestClock`` starts, so a harness's clock and the candles agree without arithmetic in the test."""
    values = [float(c) for c in closes]
    step = timeframe_ms(timeframe)
    first = (DEFAULT_END_MS // step) * step - len(values) * step if start is None else start
    out: list[Candle] = []
    previous: float | None = None
    for i, close in enumerate(values):
        out.append(candle(close, open=previous, volume=volume, timestamp=first + i * step))
        previous = close
    return out


def candle_frame(closes: Sequence[float], *, start: int = 1_700_000_000_000, timeframe: str = "1m", volume: float = 1.0) -> pd.DataFrame:
    """Candles as a backtest reads them (``timestamp,open,high,low,close,volume``, one per timeframe from
    ``start``): each opens at the previous close (the first at its own), high and low its open and close."""
    c = np.asarray(closes, dtype=np.float64)
    o = np.concatenate([c[:1], c[:-1]])
    ts = start + np.arange(len(c), dtype=np.int64) * timeframe_ms(timeframe)
    return pd.DataFrame({"timestamp": ts, "open": o, "high": np.maximum(o, c), "low": np.minimum(o, c), "close": c, "volume": volume})
