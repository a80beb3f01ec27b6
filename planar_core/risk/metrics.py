"""Valuation and risk metrics from the watchers' state (balances, positions, prices, OHLCV).

Valuation rule: everything is valued in the main currency. A currency is
priced through a universe market ``<CUR>/<main>`` (its last price); a currency
with no such market is valued at 0 and listed in ``unpriced``. Futures
positions are valued at contracts x last price; their unrealized PnL is in
the settle currency's balance already (wallet + unrealized = margin balance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..engine.strategy import Strategy
    from ..model import AssetInstance


def price_in_main(s: "Strategy", currency: str) -> float | None:
    main = s.config.main_currency
    if currency == main:
        return 1.0
    priced = [ai for ai in s.universe.values() if ai.base == currency and ai.quote == main and ai.last_price]
    priced.sort(key=lambda ai: ai.is_margin)  # a spot market's price first
    return priced[0].last_price if priced else None


def position_value(s: "Strategy", ai: "AssetInstance", extra: float = 0.0) -> float:
    """Signed value in the main currency of the asset's position (spot: base holdings) plus ``extra`` base units."""
    price = ai.last_price or 0.0
    if ai.is_margin:
        return (ai.position.contracts + extra) * price
    return (s.cash(ai.base).total + extra) * price


def equity(s: "Strategy") -> tuple[float, list[str]]:
    """Cash plus positions valued at the latest prices, in the main currency."""
    main = s.config.main_currency
    if s.config.margin:  # wallet balance + unrealized PnL marked at the latest price
        return s.cash(main).total + sum(unrealized(ai) for ai in s.universe.values()), []
    total, unpriced = 0.0, []
    for cur, bal in s.balances.items():
        if not bal.total:
            continue
        p = price_in_main(s, cur)
        if p is None:
            unpriced.append(cur)
            continue
        total += bal.total * p
    return total, unpriced


def unrealized(ai: "AssetInstance") -> float:
    p = ai.position
    if not p.contracts or not ai.last_price:
        return p.unrealized_pnl
    return (ai.last_price - p.entry_price) * p.contracts


def returns(ai: "AssetInstance", timeframe: str = "1m", window: int = 60) -> np.ndarray:
    candles = ai.ohlcv.get(timeframe) or next(iter(ai.ohlcv.values()), [])
    closes = np.array([c[4] for c in candles[-(window + 1):]], dtype=float)
    if len(closes) < 3:
        return np.zeros(0)
    return np.diff(np.log(closes))


def realized_volatility(ai: "AssetInstance", window: int = 60) -> float:
    r = returns(ai, window=window)
    return float(r.std(ddof=1)) if len(r) >= 3 else math.nan


def correlation(a: "AssetInstance", b: "AssetInstance", window: int = 60) -> float:
    ra, rb = returns(a, window=window), returns(b, window=window)
    n = min(len(ra), len(rb))
    if n < 5 or ra[-n:].std() == 0 or rb[-n:].std() == 0:
        return math.nan
    return float(np.corrcoef(ra[-n:], rb[-n:])[0, 1])


@dataclass
class RiskMetrics:
    equity: float
    unrealized_pnl: float
    daily_pnl: float
    drawdown: float
    total_exposure: float  # gross position value / equity
    leverage: float  # futures notional / equity (spot: same as exposure)
    correlation_risk: float  # position-weighted average pairwise correlation of returns
    liquidity_risk: float  # max over assets of position size / traded volume over the last hour
    volatility: float  # position-weighted realized volatility (per candle)
    positions: dict[str, float] = field(default_factory=dict)  # symbol -> signed value
    unpriced: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(vars(self))


def compute(s: "Strategy", day_start_equity: float | None, peak_equity: float | None) -> RiskMetrics:
    eq, unpriced = equity(s)
    values = {sym: position_value(s, ai) for sym, ai in s.universe.items()}
    values = {k: v for k, v in values.items() if abs(v) > 1e-12}
    gross = sum(abs(v) for v in values.values())
    upnl = sum(unrealized(ai) for ai in s.universe.values())
    weights = {k: abs(v) / gross for k, v in values.items()} if gross else {}
    corr_terms, corr_w = 0.0, 0.0
    syms = list(values)
    for i, x in enumerate(syms):
        for y in syms[i + 1:]:
            c = correlation(s.universe[x], s.universe[y])
            if not math.isnan(c):
                sign = 1.0 if (values[x] > 0) == (values[y] > 0) else -1.0
                w = weights[x] * weights[y]
                corr_terms += w * c * sign
                corr_w += w
    liquidity = 0.0
    for sym in values:
        ai = s.universe[sym]
        candles = (ai.ohlcv.get("1m") or next(iter(ai.ohlcv.values()), []))[-60:]
        volume = sum(c[5] for c in candles)
        qty = abs(values[sym]) / (ai.last_price or 1.0)
        liquidity = max(liquidity, qty / volume if volume > 0 else math.inf)
    vols = [(weights[k], realized_volatility(s.universe[k])) for k in values]
    vol = sum(w * v for w, v in vols if not math.isnan(v)) if vols else math.nan
    return RiskMetrics(
        equity=eq, unrealized_pnl=upnl,
        daily_pnl=eq - day_start_equity if day_start_equity is not None else 0.0,
        drawdown=max(0.0, (peak_equity - eq) / peak_equity) if peak_equity else 0.0,
        total_exposure=gross / eq if eq > 0 else math.inf if gross else 0.0,
        leverage=gross / eq if eq > 0 else math.inf if gross else 0.0,
        correlation_risk=corr_terms / corr_w if corr_w else 0.0,
        liquidity_risk=liquidity, volatility=vol, positions=values, unpriced=unpriced)
