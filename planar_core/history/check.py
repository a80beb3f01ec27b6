"""Gaps, duplicates and impossible rows in a candle series: reported, never filled or dropped here (a backtest over
a gap would trade on a price nobody quoted; the user decides what to do with it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def timeframe_ms(timeframe: str) -> int:
    return int(timeframe[:-1]) * UNIT_MS[timeframe[-1]]


@dataclass(frozen=True)
class SeriesCheck:
    rows: int
    first_ms: int | None
    last_ms: int | None
    duplicates: int
    out_of_order: int
    bad_rows: int  # high below low, a price not above 0, a missing value
    gaps: list[tuple[int, int, int]] = field(default_factory=list)  # (after, before, missing candles)

    @property
    def clean(self) -> bool:
        return not (self.duplicates or self.out_of_order or self.bad_rows or self.gaps)

    def line(self) -> str:
        missing = sum(g[2] for g in self.gaps)
        return (
            f"{self.rows} candles, {len(self.gaps)} gaps ({missing} missing), {self.duplicates} duplicated, "
            f"{self.out_of_order} out of order, {self.bad_rows} bad rows"
        )


def check_candles(df: pd.DataFrame, timeframe: str) -> SeriesCheck:
    step = timeframe_ms(timeframe)
    ts = df["timestamp"].to_numpy(dtype=np.int64)
    prices = df[["open", "high", "low", "close"]].to_numpy(dtype=np.float64)
    bad = int((np.isnan(prices).any(axis=1) | (prices <= 0).any(axis=1) | (df["high"].to_numpy() < df["low"].to_numpy())).sum())
    diffs = np.diff(ts)
    ordered = np.sort(np.unique(ts))
    steps = np.diff(ordered)
    gaps = [(int(ordered[i]), int(ordered[i + 1]), int(steps[i] // step) - 1) for i in np.flatnonzero(steps > step)]
    return SeriesCheck(
        rows=len(ts),
        first_ms=int(ts.min()) if len(ts) else None,
        last_ms=int(ts.max()) if len(ts) else None,
        duplicates=int(len(ts) - len(ordered)),
        out_of_order=int((diffs < 0).sum()),
        bad_rows=bad,
        gaps=gaps,
    )
