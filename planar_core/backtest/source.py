"""The candles a backtest reads, streamed: each symbol's candles come in chunks (a DataFrame each, in time order),
and the symbols are merged by time as the run goes, so memory stays flat in the length of the history.

A chunk has the columns ``timestamp`` (the candle's open, epoch ms), ``open``, ``high``, ``low``, ``close``,
``volume``. A candle that is not after the one before it (out of order, or duplicated) stops the run with the
symbol and the times: the data is reported, never silently repaired.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Mapping
from operator import itemgetter

import numpy as np
import pandas as pd

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
BLOCK_ROWS = 4096  # candles turned into Python rows at a time (memory flat in the length of a frame)
Row = list[float]
Candles = pd.DataFrame | Iterable[pd.DataFrame]  # one frame, or chunks of one symbol's candles in time order


class CandleError(ValueError):
    """Candles a backtest cannot use (missing columns, out of order, duplicated)."""


def _rows(symbol: str, chunks: Candles) -> Iterator[Row]:
    last: float | None = None
    for df in [chunks] if isinstance(chunks, pd.DataFrame) else chunks:
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise CandleError(f"candles of {symbol}: missing columns {missing}")
        for row in _as_rows(df):
            if last is not None and row[0] <= last:
                raise CandleError(
                    f"candles of {symbol}: the candle at {int(row[0])} is not after the one at {int(last)} (out of order or duplicated)"
                )
            last = row[0]
            yield row


def _as_rows(df: pd.DataFrame) -> Iterator[Row]:
    """A frame's candles as Python rows, ``BLOCK_ROWS`` at a time: a year of 1m candles handed over as one frame
    would otherwise become half a million row lists at once (about 130 MB a symbol) before the first candle runs."""
    table = df[list(COLUMNS)]
    for start in range(0, len(table), BLOCK_ROWS):
        yield from table.iloc[start : start + BLOCK_ROWS].to_numpy(dtype=np.float64).tolist()


class SymbolCandles:
    """One symbol's candles as a stream whose next candle can be looked at without taking it."""

    def __init__(self, symbol: str, chunks: Candles) -> None:
        self.symbol = symbol
        self._it = _rows(symbol, chunks)
        self.head: Row | None = next(self._it, None)

    def __iter__(self) -> Iterator[Row]:
        if self.head is not None:
            yield self.head
        yield from self._it


def _keyed(i: int, symbol: str, stream: SymbolCandles) -> Iterator[tuple[int, int, str, Row]]:
    for row in stream:
        yield int(row[0]), i, symbol, row


def merged(streams: Mapping[str, SymbolCandles]) -> Iterator[tuple[int, list[tuple[str, Row]]]]:
    """Every candle time in order, with the candles of each symbol that has one then."""
    keyed = [_keyed(i, sym, stream) for i, (sym, stream) in enumerate(streams.items())]
    for ts, group in itertools.groupby(heapq.merge(*keyed), key=itemgetter(0)):
        yield ts, [(sym, row) for _, _, sym, row in group]
