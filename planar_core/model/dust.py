"""Dust: a holding below what the market lets anyone trade.

Why one definition: a holding under the market's minimum amount, or (spot) under its minimum order value, can be
neither sold nor closed by an order (Binance converts such balances to BNB by hand, "dust"); the emergency stops
leave it alone, and the risk figures do not count it as a position. Counted, the few units an MA cross leaves
behind after each exit (a sell sized to the order value, not the holding) made a spurious correlation of every
pair of assets: "High correlation risk" alerts every monitor run, and ``correlation_limit`` refusing an order
because of a leftover worth a cent.
"""

from __future__ import annotations

from collections.abc import Mapping

from .json import num


def below_minimum(market: Mapping[str, object], qty: float, price: float | None) -> bool:
    """``qty`` (of the market's amount: base units for spot, contracts for derivatives) below the market's minimum
    amount, or (spot, at ``price``) below its minimum order value. Zero or less is below it; a market that states no
    minimum has none. (The risk monitor asks for every asset on every run: the limits are read in place, not copied
    as ``obj`` would.)"""
    if qty <= 0:
        return True
    limits = market.get("limits")
    if not isinstance(limits, dict):
        return False
    if qty < _limit(limits, "amount"):
        return True
    return not market.get("contract") and bool(price) and qty * (price or 0.0) < _limit(limits, "cost")


def _limit(limits: Mapping[str, object], key: str) -> float:
    """The ``min`` of one of ccxt's ``limits`` entries (0: none stated)."""
    entry = limits.get(key)
    return num(entry.get("min")) if isinstance(entry, dict) else 0.0
