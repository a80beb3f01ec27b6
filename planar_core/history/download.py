"""Candles downloaded through ccxt's ``fetch_ohlcv``, page after page, into the market-data store.

The client is the config's own (its exchange, its sandbox endpoint, its credentials: ``dialect.build``), or a
keyless public one. Only closed candles are stored (the one still forming is left for the next download). Each page
is written as it arrives (a crash loses at most one page); a second download resumes after the newest stored candle
unless ``since`` asks for earlier. Transient errors (network, timeouts, the exchange unavailable, rate limits) are
retried with backoff; a permanent one (an unknown symbol, a refused request) stops at once with one line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import ccxt.async_support as ccxt_async
from ccxt.base.errors import DDoSProtection, ExchangeNotAvailable, NetworkError, RequestTimeout

from ..exchange.ccxt_types import CcxtExchange
from .check import SeriesCheck, check_candles, timeframe_ms
from .store import frame, read_series, series_path, write_candles

PAGE = 1000  # candles per request (Binance's maximum for klines)
TRANSIENT = (NetworkError, ExchangeNotAvailable, RequestTimeout, DDoSProtection)
RETRIES = 4


class DownloadError(RuntimeError):
    """A download the exchange refused (an unknown symbol, an unsupported timeframe): one line for the user."""


@dataclass(frozen=True)
class DownloadResult:
    symbol: str
    timeframe: str
    path: Path
    written: int  # candles written by this download
    check: SeriesCheck  # what the file holds now


async def _page(ex: CcxtExchange, symbol: str, timeframe: str, since: int) -> list[list[float]]:
    for attempt in range(RETRIES + 1):
        try:
            rows: list[list[float]] = await ex.fetch_ohlcv(symbol, timeframe, since=since, limit=PAGE)
            return rows
        except TRANSIENT:
            if attempt == RETRIES:
                raise
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        except ccxt_async.BaseError as exc:
            raise DownloadError(f"{symbol} {timeframe}: {type(exc).__name__}: {str(exc)[:200]}") from None
    raise AssertionError("unreachable")


async def download(
    ex: CcxtExchange,
    exchange: str,
    symbols: Sequence[str],
    timeframe: str,
    since_ms: int,
    until_ms: int | None,
    root: Path,
    progress: Callable[[str], None] = lambda line: None,
    now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
) -> list[DownloadResult]:
    """Download ``symbols``' candles of ``timeframe`` from ``since_ms`` to ``until_ms`` (default: now) into
    ``root``; returns what each file holds, with its gaps and duplicates."""
    step = timeframe_ms(timeframe)
    out = []
    for symbol in symbols:
        path = series_path(root, exchange, symbol, timeframe)
        held = read_series(path)
        cursor = since_ms
        if len(held) and since_ms >= int(held["timestamp"].iloc[0]):  # resume after what is stored
            cursor = max(since_ms, int(held["timestamp"].iloc[-1]) + step)
        written = 0
        while True:
            end = min(until_ms if until_ms is not None else now_ms(), now_ms())
            if cursor >= end:
                break
            rows = [r for r in await _page(ex, symbol, timeframe, cursor) if r[0] >= cursor and r[0] < end and r[0] + step <= now_ms()]
            if not rows:
                break
            write_candles(path, frame(rows))
            written += len(rows)
            cursor = int(rows[-1][0]) + step
            progress(f"{symbol} {timeframe}: {written} candles, up to {time.strftime('%Y-%m-%d %H:%M', time.gmtime(cursor / 1000))} UTC")
        out.append(DownloadResult(symbol, timeframe, path, written, check_candles(read_series(path), timeframe)))
    return out
