"""Candles of one asset and timeframe, kept in a numpy buffer so indicators read them without copying.

A strategy reads ``ai.ohlcv["1m"].close`` (a numpy view), ``.array`` (rows of timestamp, open, high, low,
close, volume) or ``.df`` (a pandas DataFrame built once per update, not once per read). The buffer also
knows which candles are *closed*: the exchange said so (Binance's kline ``x`` flag, read by the exchange
layer), or a later candle exists. ``take_closed`` hands each closed candle out once, which is what drives a
strategy's ``on_bar``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple, overload

import numpy as np
import numpy.typing as npt
import pandas as pd

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
FloatArray = npt.NDArray[np.float64]


class Candle(NamedTuple):
    """One OHLCV bar; ``timestamp`` is its opening time in ms (as ccxt and Binance give it)."""

    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    @classmethod
    def of(cls, row: Sequence[float]) -> Candle:
        t = row.tolist() if isinstance(row, np.ndarray) else row  # one conversion of a buffer row, not six
        return cls(int(t[0]), float(t[1]), float(t[2]), float(t[3]), float(t[4]), float(t[5]))


class Candles:
    """The last ``capacity`` candles, oldest first; rows are updated in place while a candle forms."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._buf: FloatArray = np.zeros((2 * capacity, 6))
        self._start = 0
        self._end = 0
        self.version = 0  # bumped by every change: caches (the DataFrame, a strategy's indicators) key on it
        self._df: pd.DataFrame | None = None
        self._df_version = -1
        self.closed_through: int | None = None  # opening time of the newest candle known to be closed
        self._handed_out: int | None = None  # opening time of the newest closed candle given to take_closed
        self._view: FloatArray | None = None  # ``array`` until the next change
        # opening times of the newest two rows as Python numbers (None: no such row): a backtest merges one row per
        # candle and takes it closed, and these let both skip reading the buffer back (numpy scalars cost more)
        self._newest: float | None = None
        self._before_newest: float | None = None

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[float]], capacity: int = 1000) -> Candles:
        c = cls(capacity)
        c.merge(rows)
        return c

    # ------------------------------------------------------------------ writing
    def merge(self, rows: Iterable[Sequence[float]], closed_through: int | None = None) -> int:
        """Add or update rows (by opening time; older than the newest kept are ignored). ``closed_through``: the
        exchange says every candle up to this opening time is final; without it, a candle is closed once a later
        one exists. Returns how many rows changed."""
        changed = 0
        for row in rows:
            ts = float(row[0])
            newest = self._newest
            if newest == ts:
                self._buf[self._end - 1] = row[:6]
            elif newest is None or ts > newest:
                if self._end == len(self._buf):
                    keep = self.capacity - 1
                    self._buf[:keep] = self._buf[self._end - keep : self._end]
                    self._start, self._end = 0, keep
                self._buf[self._end] = row[:6]
                self._end += 1
                self._start = max(self._start, self._end - self.capacity)
                self._before_newest, self._newest = (newest if self._end - self._start >= 2 else None), ts
            else:
                continue
            changed += 1
        newest_closed = int(self._before_newest) if self._before_newest is not None else None
        if closed_through is not None and self._newest is not None and closed_through >= self._newest:
            newest_closed = int(self._newest)
        if newest_closed is not None and (self.closed_through is None or newest_closed > self.closed_through):
            self.closed_through = newest_closed
            changed += 1
        if changed:
            self.version += 1
            self._view = None
        return changed

    def take_closed(self) -> list[Candle]:
        """Closed candles not handed out before, oldest first. The first call only marks the history as seen: a
        strategy starting up gets the bars that close from now on, and reads the history from the buffer."""
        if self.closed_through is None:
            return []
        if self._handed_out is None:
            self._handed_out = self.closed_through
            return []
        if self.closed_through <= self._handed_out:
            return []
        if self._before_newest is not None and self._handed_out == self._before_newest and self.closed_through == self._newest:
            self._handed_out = self.closed_through  # the usual step: the newest row closed, the one before handed out
            return [Candle.of(self._buf[self._end - 1])]
        rows = self.array
        ts = rows[:, 0]
        hi = len(ts)  # the closed ones end at the newest or the one before it (the forming candle): found from the end
        while hi and ts[hi - 1] > self.closed_through:
            hi -= 1
        lo = hi
        while lo and ts[lo - 1] > self._handed_out:
            lo -= 1
        self._handed_out = self.closed_through
        return [Candle.of(r) for r in rows[lo:hi]]

    # ------------------------------------------------------------------ reading (views, no copies)
    @property
    def array(self) -> FloatArray:
        """Rows of (timestamp, open, high, low, close, volume), oldest first; a read-only view."""
        view = self._view
        if view is None:
            view = self._view = self._buf[self._start : self._end]
            view.flags.writeable = False
        return view

    def column(self, name: str) -> FloatArray:
        return self.array[:, COLUMNS.index(name)]

    @property
    def timestamp(self) -> FloatArray:
        return self.column("timestamp")

    @property
    def open(self) -> FloatArray:
        return self.column("open")

    @property
    def high(self) -> FloatArray:
        return self.column("high")

    @property
    def low(self) -> FloatArray:
        return self.column("low")

    @property
    def close(self) -> FloatArray:
        return self.column("close")

    @property
    def volume(self) -> FloatArray:
        return self.column("volume")

    @property
    def closed(self) -> FloatArray:
        """The closed rows only (the forming candle, if any, left out)."""
        rows = self.array
        if self.closed_through is None:
            return rows[:0]
        n = len(rows)
        if n and rows[n - 1, 0] <= self.closed_through:  # every row closed
            return rows
        if n > 1 and rows[n - 2, 0] <= self.closed_through:  # all but the forming one
            return rows[: n - 1]
        return rows[: int(np.searchsorted(rows[:, 0], self.closed_through, side="right"))]

    @property
    def df(self) -> pd.DataFrame:
        """A DataFrame indexed by UTC opening time, rebuilt only after a change (treat it as read-only)."""
        if self._df is None or self._df_version != self.version:
            a = self.array
            self._df = pd.DataFrame(a[:, 1:], columns=list(COLUMNS[1:]), index=pd.to_datetime(a[:, 0].astype("int64"), unit="ms", utc=True))
            self._df.index.name = "time"
            self._df_version = self.version
        return self._df

    @property
    def last(self) -> Candle | None:
        return Candle.of(self._buf[self._end - 1]) if self._end > self._start else None

    @property
    def last_close(self) -> float | None:
        """The newest candle's close (``last.close`` without building the candle: read on every update)."""
        return float(self._buf[self._end - 1, 4]) if self._end > self._start else None

    def __len__(self) -> int:
        return self._end - self._start

    def __bool__(self) -> bool:
        return self._end > self._start

    @overload
    def __getitem__(self, i: int) -> Candle: ...
    @overload
    def __getitem__(self, i: slice) -> FloatArray: ...
    def __getitem__(self, i: int | slice) -> Candle | FloatArray:
        if isinstance(i, slice):
            return self.array[i]
        return Candle.of(self.array[i])

    def __iter__(self) -> Iterator[Candle]:
        return (Candle.of(r) for r in self.array)

    def __repr__(self) -> str:
        return f"Candles({len(self)} rows, closed through {self.closed_through})"
