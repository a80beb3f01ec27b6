"""The config's other timeframes in a backtest, built from the candles it walks (its first timeframe).

Why: a strategy declares ``timeframes = ["1m", "5m"]`` and reads ``ai.ohlcv["5m"]`` in ``on_start`` and gets
``on_bar`` for each; live and paper load and close every declared timeframe. A backtest walks one series (the first
timeframe's: the price path inside each candle comes from it), so the others are its candles aggregated, as the
exchange aggregates its trades: open of the first, highest high, lowest low, close of the last, summed volume, on
buckets aligned to the epoch in UTC (Binance's klines for minutes, hours and days). A bucket closes with the base
candle that ends it, or, after a gap in the data, when a candle of a later bucket comes (it holds what traded).
A timeframe that is not a whole multiple of the first, or is longer than a day (weeks start on Monday, not on
the epoch's Thursday), is refused before the run: it cannot be built from the candles given.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .source import CandleError, Row

DAY_MS = 86_400_000


def higher_timeframes(timeframes: Sequence[str], base_ms: int, ms_of: dict[str, int]) -> dict[str, int]:
    """The timeframes after the first, each with its span in ms; CandleError naming one that cannot be built."""
    out: dict[str, int] = {}
    for tf in timeframes[1:]:
        span = ms_of[tf]
        if span <= base_ms or span % base_ms or span > DAY_MS or DAY_MS % span:
            raise CandleError(
                f"timeframes: a backtest builds {tf} from the {timeframes[0]} candles it walks; {tf} must be a whole "
                f"multiple of {timeframes[0]} that divides a day (list the shortest timeframe first)"
            )
        out[tf] = span
    return out


class Buckets:
    """One symbol's candles of one higher timeframe, built from its base candles as they close."""

    def __init__(self, span_ms: int, base_ms: int) -> None:
        self.span, self.base = span_ms, base_ms
        self.open: Row | None = None  # the bucket being built: [open time, open, high, low, close, volume]
        self.counts: list[int] = []  # base candles in each bucket ``add`` closed last (the same order)
        self._n = 0  # base candles in the open bucket

    def add(self, row: Row) -> list[Row]:
        """Take one base candle; returns the buckets it closed (none, one, or two after a gap: the one a gap left
        unfinished, then the one this candle ends)."""
        ts = int(row[0])
        start = ts - ts % self.span
        done: list[Row] = []
        self.counts = []
        b = self.open
        if b is not None and b[0] != start:
            done.append(b)
            self.counts.append(self._n)
            b = None
        if b is None:
            b = [float(start), row[1], row[2], row[3], row[4], row[5]]
            self._n = 1
        else:
            b[2], b[3], b[4], b[5] = max(b[2], row[2]), min(b[3], row[3]), row[4], b[5] + row[5]
            self._n += 1
        if ts + self.base >= start + self.span:
            done.append(b)
            self.counts.append(self._n)
            self.open = None
        else:
            self.open = b
        return done

    def history(self, rows: Iterable[Row]) -> list[Row]:
        """The buckets ``rows`` (in time order) close, the unfinished last one kept open for the rows to come. The
        first is left out when the rows begin inside it (fewer base candles than a bucket holds): the warm-up
        starts where the history does, not on a bucket's edge, and a part of a candle is not that candle (a review
        saw the first 5m candle of on_start built from 4 of its 1m candles)."""
        out: list[Row] = []
        whole = self.span // self.base
        first = True
        for row in rows:
            for built, n in zip(self.add(row), self.counts, strict=True):
                if not (first and n < whole):
                    out.append(built)
                first = False
        return out
