"""Candles built from public trades, for a timeframe a market does not serve as candles (Bybit has no 1 s klines,
its smallest interval is 1 minute; Binance serves 1 s klines on spot only). The engine then sees the rows a kline
feed gives: ``[open time, open, high, low, close, volume]``, one per interval from the first trade on, an interval
without trades a flat candle at the previous close with volume 0 (as Binance's 1 s klines are), and a word on which
candles are final.

Evidence, not the clock, makes a candle final: a candle is final once a trade of a later interval is seen and the
trades in between are known to be all there were. A stream does not prove that by itself (a silent stall, a
reconnect: ccxt never sends the trades made meanwhile), so the first batch of a watch and any batch that follows
the previous trade by more than ``GAP_MS`` are joined to the exchange's recent-trade list first (``needs_history``):
the seconds in between are then built from what the exchange says happened. So a quiet market's last candle stays
open until its next trade (later than a clock would close it, never wrong), and a dead stream gives no bars, as a
dead kline stream does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..model.types import Json

BUILT = {"1s": 1000}  # timeframes the engine builds from trades where a market serves no candles of that length
GAP_MS = 2000  # stream trades further apart than this are joined by the exchange's recent-trade list
KEPT = 1000  # candles a series keeps (the engine asks for the last 100 at start)

Row = tuple[int, float, float, str]  # timestamp ms, price, amount, trade id ("" unknown)


def trade_rows(trades: Iterable[Json]) -> list[Row]:
    """(timestamp ms, price, amount, id) of ccxt's unified trades, oldest first; rows without them are skipped."""
    out = []
    for t in trades:
        ts, price, amount = t.get("timestamp"), t.get("price"), t.get("amount")
        if isinstance(ts, (int, float)) and isinstance(price, (int, float)) and isinstance(amount, (int, float)) and price > 0:
            out.append((int(ts), float(price), float(amount), str(t.get("id") or "")))
    out.sort(key=lambda r: r[0])
    return out


def history_candles(rows: list[Row], step_ms: int, limit: int) -> list[list[float]]:
    """The candles of a recent-trade list (REST): its first candle is left out, as trades of it may be older than
    the list reaches."""
    bars = TradeBars(step_ms)
    bars.add(rows)
    return [list(c) for c in bars.candles[1:][-limit:]]


@dataclass
class TradeBars:
    """One symbol's candles of one built timeframe, fed with trades in exchange order (``add``)."""

    step_ms: int
    candles: list[list[float]] = field(default_factory=list)
    closed_through: int | None = None  # the opening time of the last final candle
    last_trade_ms: int = 0
    ids_at_last: set[str] = field(default_factory=set)  # ids of the trades of ``last_trade_ms`` already folded in
    joined: bool = False  # the stream's trades are joined to the exchange's list (False: at first, after a failure)

    def needs_history(self, batch: list[Row]) -> bool:
        """Whether ``batch`` (a stream's) must be joined to the exchange's recent trades before it is folded in: the
        first of a watch, or one after a silence longer than ``GAP_MS`` (a stall or a quiet market: the list says)."""
        return bool(batch) and (not self.joined or batch[0][0] - self.last_trade_ms > GAP_MS)

    def add(self, rows: Iterable[Row]) -> None:
        """Fold trades in. One older than the newest folded in is skipped (the history and the stream overlap; an
        exchange sends its trades in order), and so is one of the same millisecond and id."""
        for ts, price, amount, tid in rows:
            if ts < self.last_trade_ms or (tid and ts == self.last_trade_ms and tid in self.ids_at_last):
                continue
            if ts > self.last_trade_ms:
                self.last_trade_ms, self.ids_at_last = ts, set()
            self.ids_at_last.add(tid)
            opened = ts - ts % self.step_ms
            self._extend(opened)
            if not self.candles or self.candles[-1][0] < opened:
                self.candles.append([opened, price, price, price, price, amount])
                continue
            c = self.candles[-1]
            if c[5] == 0:  # a flat candle so far: its first trade sets its prices
                c[1] = c[2] = c[3] = price
            c[2], c[3], c[4], c[5] = max(c[2], price), min(c[3], price), price, c[5] + amount
        if len(self.candles) > KEPT:
            del self.candles[: len(self.candles) - KEPT]
        if len(self.candles) > 1:
            self.closed_through = int(self.candles[-2][0])

    def _extend(self, opened: int) -> None:
        """Flat candles at the last close for every interval before ``opened`` that has none (at most ``KEPT``:
        a series keeps no more)."""
        if not self.candles:
            return
        close = self.candles[-1][4]
        start = max(int(self.candles[-1][0]) + self.step_ms, opened - KEPT * self.step_ms)
        self.candles += [[t, close, close, close, close, 0.0] for t in range(start, opened, self.step_ms)]
