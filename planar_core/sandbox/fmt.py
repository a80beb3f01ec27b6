"""Numbers as Binance prints them: fixed decimals per market (spot 8, futures the symbol's precision)."""

from __future__ import annotations

from decimal import Decimal

from .market_data import MarketSpec

Z8 = "0.00000000"


def s(d: Decimal) -> str:
    """An amount of money (balances, fees, PnL, margins) and every spot number as Binance prints them: 8 decimals,
    always, so that two prices of one market have the same number of digits."""
    return f"{d:.8f}"


def px(spec: MarketSpec, d: Decimal) -> str:
    """A price of ``spec``'s market (an order's, a book level's, a candle's), padded to its fixed decimals
    (``MarketSpec.wire_price_places``). Computed prices (averages, entry, mark) are not on the tick: they print with
    8 decimals (``s``)."""
    return f"{d:.{spec.wire_price_places}f}"


def qx(spec: MarketSpec, d: Decimal) -> str:
    """A quantity of ``spec``'s market, padded to its fixed decimals."""
    return f"{d:.{spec.wire_qty_places}f}"
