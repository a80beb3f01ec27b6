"""Candles built from public trades, for a timeframe the venue does not serve as candles (Bybit has no 1 s klines;
its smallest interval is 1 minute). The engine then sees the same rows as from a kline feed: ``[open time, open,
high, low, close, volume]``, one per interval from the first trade on, an interval without trades a flat candle at
the previous close with volume 0 (as Binance's 1 s klines are), and a word on which candles are final.

A candle is final once a trade of a later interval is seen (the trade stream is in exchange order), or once its
interval ended ``GRACE_MS`` ago by the venue's clock with nothing later: a quiet market still closes its bars. A
trade that arrives after that grace for a closed interval (a stream delayed by more than the grace) is not folded
into the closed bar: it is counted in the next one, and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..model.types import Json

log = logging.getLogger("planar.exchange.trade_bars")
BUILT = {"1s": 1000}  # timeframes the engine builds from trades where the venue serves no candles of that length
GRACE_MS = 500  # an interval with nothing later is final this long after its end (stream latency)
KEPT = 1000  # candles a series keeps (the engine asks for the last 100 at start)


Row = tuple[int, float, float, str]  # timestamp ms, price, amount, trade id


def trade_rows(trades: Iterable[Json]) -> list[Row]:
    """(timestamp ms, price, amount, id) of ccxt's unified trades, oldest first; rows without them are skipped."""
    out = []
    for t in trades:
        ts, price, amount = t.get("timestamp"), t.get("price"), t.get("amount")
        if isinstance(ts, (int, float)) and isinstance(price, (int, float)) and isinstance(amount, (int, float)) and price > 0:
            out.append((int(ts), float(price), float(amount), str(t.get("id") or "")))
    out.sort(key=lambda r: r[0])
    return out


@dataclass
class TradeBars:
    """One symbol's candles of one built timeframe, fed with trades (``add``) and with the venue's time (``close``)."""

    step_ms: int
    candles: list[list[float]] = field(default_factory=list)
    closed_through: int | None = None  # the opening time of the last final candle
    last_trade_ms: int = 0
    ids_at_last: set[str] = field(default_factory=set)  # the ids of the trades of ``last_trade_ms`` already folded in

    def add(self, rows: Iterable[Row]) -> None:
        """Fold trades in; ones already folded in (older, or of the same millisecond and id: the history and the
        stream overlap) are skipped."""
        for ts, price, amount, tid in rows:
            if ts < self.last_trade_ms or (ts == self.last_trade_ms and tid in self.ids_at_last):
                continue
            if ts > self.last_trade_ms:
                self.last_trade_ms, self.ids_at_last = ts, set()
            self.ids_at_last.add(tid)
            opened = ts - ts % self.step_ms
            if self.closed_through is not None and opened <= self.closed_through:
                log.info("a trade at %d came after its %d ms interval was closed: counted in the next", ts, self.step_ms)
                opened = self.closed_through + self.step_ms
            self._extend(opened)
            if not self.candles:
                self.candles.append([opened, price, price, price, price, amount])
                continue
            c = self.candles[-1]
            if c[5] == 0:  # a flat candle so far: the first trade sets its prices
                c[1] = c[2] = c[3] = price
            c[2], c[3], c[4], c[5] = max(c[2], price), min(c[3], price), price, c[5] + amount
            if len(self.candles) > KEPT:
                del self.candles[: len(self.candles) - KEPT]
        if self.candles:
            self._final(int(self.candles[-1][0]) - self.step_ms)

    def close(self, now_ms: int) -> None:
        """The venue's clock says ``now_ms``: intervals that ended ``GRACE_MS`` ago are final, flat if tradeless."""
        if not self.candles:
            return
        ended = now_ms - GRACE_MS - self.step_ms  # the opening time of the last interval over by the grace
        last = ended - ended % self.step_ms
        if last >= self.candles[-1][0]:
            self._extend(last)
        self._final(last)

    def _extend(self, opened: int) -> None:
        """Flat candles at the last close for every interval up to ``opened`` (included) that has none."""
        if not self.candles:
            return
        close = self.candles[-1][4]
        while self.candles[-1][0] < opened:
            self.candles.append([self.candles[-1][0] + self.step_ms, close, close, close, close, 0.0])

    def _final(self, opened: int) -> None:
        if self.candles and opened >= self.candles[0][0]:
            self.closed_through = max(self.closed_through or opened, opened)
