"""Valuation and risk metrics from the watchers' state (balances, positions, prices, OHLCV).

One equity, whatever the source of the last update: **wallet balance + unrealized PnL, valued in the main
currency**. Spot: every currency's total balance, converted to the main currency. Margin: the settle currency's
wallet balance (``Balance.total`` holds the wallet on margin accounts, see ``Strategy.apply_balance``) plus each
position's unrealized PnL marked at the latest price (the exchange's reported figure when no price is known yet).

Conversion follows a price path: the universe's markets with a known price and the extra valuation markets the
engine polls (``AccountBook.conversion_prices``), walked breadth-first from the currency to the main currency, so a
strategy trading ETH/BTC with main currency USDT values its ETH through ETH/BTC and BTC/USDT. A non-zero holding
or position that cannot be valued is listed in ``unpriced``; equity is then *incomplete* and the caller decides
(breakers record and alert instead of comparing a partial figure; risk-increasing orders are refused).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..engine.strategy import Strategy
    from ..model import AssetInstance


def price_graph(s: "Strategy") -> dict[str, list[tuple[str, float]]]:
    """currency -> [(other currency, units of other per unit)] from every market with a known price."""
    graph: dict[str, list[tuple[str, float]]] = {}

    def edge(base: str, quote: str, price: float | None) -> None:
        if price and price > 0 and math.isfinite(price):
            graph.setdefault(base, []).append((quote, price))
            graph.setdefault(quote, []).append((base, 1.0 / price))

    for ai in sorted(s.universe.values(), key=lambda a: a.is_margin):  # spot prices first
        edge(ai.base, ai.quote, ai.last_price)
    markets = s.venue.markets
    for symbol, price in s.holdings.conversion_prices.items():
        m = markets.get(symbol)
        if m:
            edge(str(m["base"]), str(m["quote"]), price)
    return graph


def price_in_main(s: "Strategy", currency: str, graph: dict[str, list[tuple[str, float]]] | None = None) -> float | None:
    """Units of the main currency per unit of ``currency`` along the shortest price path, or None."""
    main = s.config.main_currency
    if currency == main:
        return 1.0
    graph = price_graph(s) if graph is None else graph
    seen = {currency}
    queue: deque[tuple[str, float]] = deque([(currency, 1.0)])
    while queue:
        cur, rate = queue.popleft()
        for nxt, p in graph.get(cur, []):
            if nxt in seen:
                continue
            if nxt == main:
                return rate * p
            seen.add(nxt)
            queue.append((nxt, rate * p))
    return None


def valuation_markets(s: "Strategy") -> list[str]:
    """Exchange markets (outside the universe) whose prices are needed to value every currency the strategy can
    hold in the main currency: the shortest chain of active spot markets from each unconnected currency."""
    main = s.config.main_currency
    currencies = {main}
    for ai in s.universe.values():
        currencies.update((ai.quote,) if ai.is_margin else (ai.base, ai.quote))
    links: dict[str, list[tuple[str, str]]] = {}
    for ai in s.universe.values():
        links.setdefault(ai.base, []).append((ai.quote, ""))
        links.setdefault(ai.quote, []).append((ai.base, ""))
    market_links: dict[str, list[tuple[str, str]]] = {}
    for symbol, m in s.venue.markets.items():
        if m.get("spot") and m.get("active", True) is not False:
            market_links.setdefault(str(m["base"]), []).append((str(m["quote"]), symbol))
            market_links.setdefault(str(m["quote"]), []).append((str(m["base"]), symbol))
    needed: set[str] = set()
    for cur in sorted(currencies - {main}):
        prev: dict[str, tuple[str, str] | None] = {cur: None}
        queue: deque[str] = deque([cur])
        while queue and main not in prev:
            node = queue.popleft()
            for nxt, symbol in links.get(node, []) + market_links.get(node, []):
                if nxt not in prev:
                    prev[nxt] = (node, symbol)
                    queue.append(nxt)
        node = main
        while main in prev and prev.get(node) is not None:
            parent, symbol = prev[node]  # type: ignore[misc]
            if symbol:
                needed.add(symbol)
            node = parent
    return sorted(needed)


def position_value(
    s: "Strategy", ai: "AssetInstance", extra: float = 0.0, graph: dict[str, list[tuple[str, float]]] | None = None
) -> float:
    """Signed value in the main currency of the asset's position (spot: base holdings) plus ``extra`` base units;
    NaN when it cannot be valued. ``graph``: the prices' graph when the caller values several assets at once."""
    if ai.is_margin:
        contracts = ai.position.contracts + extra
        if not contracts:
            return 0.0
        rate = price_in_main(s, ai.quote, graph)
        return contracts * ai.last_price * rate if ai.last_price and rate is not None else math.nan
    held = s.cash(ai.base).total + extra
    if not held:
        return 0.0
    rate = price_in_main(s, ai.base, graph)
    return held * rate if rate is not None else math.nan


def equity(s: "Strategy", graph: dict[str, list[tuple[str, float]]] | None = None) -> tuple[float, list[str]]:
    """Equity in the main currency and what could not be valued (empty: the figure is complete)."""
    graph = price_graph(s) if graph is None else graph
    total, unpriced = 0.0, []
    for cur, bal in s.holdings.balances.items():  # spot: every balance; margin: the wallet (Balance.total on margin accounts)
        if not bal.total:
            continue
        rate = price_in_main(s, cur, graph)
        if rate is None:
            unpriced.append(cur)
        else:
            total += bal.total * rate
    if s.config.margin:
        for ai in s.universe.values():
            if not ai.position.contracts:
                continue
            upnl, rate = unrealized(ai), price_in_main(s, ai.quote, graph)
            if upnl is None or rate is None:
                unpriced.append(ai.symbol)
            else:
                total += upnl * rate
    return total, unpriced


def unrealized(ai: "AssetInstance") -> float | None:
    """Unrealized PnL of the position in its quote currency: marked at the latest price, else the exchange's figure."""
    p = ai.position
    if not p.contracts:
        return 0.0
    if ai.last_price:
        return (ai.last_price - p.entry_price) * p.contracts
    return p.unrealized_pnl if p.unrealized_known else None


def available_margin(assets: Iterable["AssetInstance"], default_leverage: float, currency: str, wallet: float) -> float:
    """Margin available for new orders, derived from the wallet the websocket carries: wallet + unrealized PnL
    - initial margin of positions - initial margin of open orders (Binance's cross-margin rule); an asset without a
    known leverage counts at ``default_leverage``."""
    free = wallet
    for ai in assets:
        if not ai.is_margin or (ai.market.get("settle") or ai.quote) != currency:
            continue
        lev = ai.position.leverage or default_leverage
        if ai.position.contracts:
            upnl = unrealized(ai) or 0.0
            mark = ai.last_price or ai.position.entry_price
            free += upnl - abs(ai.position.contracts) * mark / lev
        for o in ai.open_orders():
            if not o.reduce_only and o.price:
                free -= max(0.0, o.amount - o.filled) * o.price / lev
    return free


def returns(ai: "AssetInstance", timeframe: str = "1m", window: int = 60) -> np.ndarray:
    candles = ai.ohlcv.get(timeframe) or next(iter(ai.ohlcv.values()), None)
    closes = candles.close[-(window + 1) :] if candles else np.zeros(0)
    if len(closes) < 3:
        return np.zeros(0)
    return np.diff(np.log(closes))


def realized_volatility(ai: "AssetInstance", window: int = 60) -> float:
    return volatility_of(returns(ai, window=window))


def volatility_of(r: np.ndarray) -> float:
    """The sample standard deviation of returns (nan below 3), by one dot product: the monitor computes it for
    every asset on every run."""
    if len(r) < 3:
        return math.nan
    x = r - r.mean()
    return math.sqrt(float(x @ x) / (len(r) - 1))


def correlation(a: "AssetInstance", b: "AssetInstance", window: int = 60) -> float:
    return correlation_of(returns(a, window=window), returns(b, window=window))


def correlation_of(ra: np.ndarray, rb: np.ndarray) -> float:
    """Pearson's correlation of the last common returns (nan below 5 or when either is constant): numpy's
    ``corrcoef`` figure, from three dot products."""
    n = min(len(ra), len(rb))
    if n < 5:
        return math.nan
    x, y = ra[-n:] - ra[-n:].mean(), rb[-n:] - rb[-n:].mean()
    sxx, syy = float(x @ x), float(y @ y)
    if sxx == 0 or syy == 0:
        return math.nan
    return max(-1.0, min(1.0, float(x @ y) / math.sqrt(sxx * syy)))


def return_stats(rets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The pairwise correlations (``correlation_of``) and the volatilities (``volatility_of``) of several assets'
    returns: in one matrix product when they have the same length (the usual case; the monitor runs this every
    interval), pair by pair otherwise."""
    k = len(rets)
    lengths = {len(r) for r in rets}
    m = lengths.pop() if len(lengths) == 1 else 0
    if m >= 3:
        x = np.vstack(rets)
        x = x - x.mean(axis=1, keepdims=True)
        cov = x @ x.T
        d = np.diag(cov).copy()
        vols = np.sqrt(d / (m - 1))
        corr = np.full((k, k), math.nan)
        if m >= 5:
            with np.errstate(divide="ignore", invalid="ignore"):
                corr = np.clip(cov / np.sqrt(np.outer(d, d)), -1.0, 1.0)
            flat = d == 0
            corr[flat, :] = math.nan
            corr[:, flat] = math.nan
        return corr, vols
    corr = np.array([[correlation_of(a, b) for b in rets] for a in rets]).reshape(k, k)
    return corr, np.array([volatility_of(r) for r in rets])


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
    """The figures now; ``peak_equity`` None or below the equity: the equity is the peak."""
    graph = price_graph(s)
    eq, unpriced = equity(s, graph)
    peak_equity = max(peak_equity or eq, eq)
    values = {sym: position_value(s, ai, graph=graph) for sym, ai in s.universe.items()}
    values = {k: v for k, v in values.items() if math.isfinite(v) and abs(v) > 1e-12}
    gross = sum(abs(v) for v in values.values())
    upnl = sum(u for u in (unrealized(ai) for ai in s.universe.values()) if u is not None)
    weights = {k: abs(v) / gross for k, v in values.items()} if gross else {}
    corr_terms, corr_w = 0.0, 0.0
    syms = list(values)
    corr, vols_of = return_stats([returns(s.universe[sym]) for sym in syms])
    for i, x in enumerate(syms):
        for j in range(i + 1, len(syms)):
            y, c = syms[j], float(corr[i, j])
            if not math.isnan(c):
                sign = 1.0 if (values[x] > 0) == (values[y] > 0) else -1.0
                w = weights[x] * weights[y]
                corr_terms += w * c * sign
                corr_w += w
    liquidity = 0.0
    for sym in values:
        ai = s.universe[sym]
        candles = ai.ohlcv.get("1m") or next(iter(ai.ohlcv.values()), None)
        volume = float(candles.volume[-60:].sum()) if candles else 0.0
        qty = abs(values[sym]) / (ai.last_price or 1.0)
        liquidity = max(liquidity, qty / volume if volume > 0 else math.inf)
    vols = [(weights[k], float(vols_of[i])) for i, k in enumerate(syms)]
    vol = sum(w * v for w, v in vols if not math.isnan(v)) if vols else math.nan
    return RiskMetrics(
        equity=eq,
        unrealized_pnl=upnl,
        daily_pnl=eq - day_start_equity if day_start_equity is not None else 0.0,
        drawdown=max(0.0, (peak_equity - eq) / peak_equity) if peak_equity else 0.0,
        total_exposure=gross / eq if eq > 0 else math.inf if gross else 0.0,
        leverage=gross / eq if eq > 0 else math.inf if gross else 0.0,
        correlation_risk=corr_terms / corr_w if corr_w else 0.0,
        liquidity_risk=liquidity,
        volatility=vol,
        positions=values,
        unpriced=unpriced,
    )
