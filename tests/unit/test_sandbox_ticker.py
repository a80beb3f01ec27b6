"""The sandbox's 24 h ticker (sandbox/public.py) on a fast clock."""

from __future__ import annotations

from decimal import Decimal

from planar_core.sandbox.exchange import SandboxExchange
from planar_core.sandbox.public import ticker_24h


def test_the_24h_ticker_of_a_market_listed_less_than_a_day_ago_starts_at_its_listing() -> None:
    """An outside trial (3 of 3): at ``--speed 3600`` the 24 h window reached years of path before the listing, met
    its extrapolation (an open of 1e-75, 3.7e23) and the answer failed with HTTP 500. Binance's window of a symbol
    listed today starts at its listing."""
    ex = SandboxExchange(speed=3600)
    for m in ex.markets.values():
        t = ticker_24h(ex, m)
        assert t["openTime"] >= ex.listed_ms(m), m.spec.symbol
        assert Decimal(t["lowPrice"]) <= Decimal(t["openPrice"]) <= Decimal(t["highPrice"]) and Decimal(t["openPrice"]) > 0
