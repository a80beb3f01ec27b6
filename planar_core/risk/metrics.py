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
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..model import PositionSide, Side
from ..model.dust import below_minimum

if TYPE_CHECKING:
    from ..engine.strategy import Strategy
    from ..model import AssetInstance, Order


_Legs = tuple[tuple["AssetInstance", str, str], ...]
_LEGS: "weakref.WeakKeyDictionary[Strategy, tuple[tuple[int, ...], _Legs]]" = weakref.WeakKeyDictionary()


def _legs(s: "Strategy") -> _Legs:
    """(asset, base, quote) of the universe's markets in the price graph's order (spot first, then contracts),
    worked out again only when the universe changes: every valuation walks them. The key is the assets' identities
    (an asset replaced under the same symbol is a change; the legs hold the assets, so an identity is not reused
    while it is a key)."""
    key = tuple(map(id, s.universe.values()))
    held = _LEGS.get(s)
    if held is not None and held[0] == key:
        return held[1]
    assets = list(s.universe.values())
    legs = tuple((ai, ai.base, ai.quote) for ai in [a for a in assets if not a.is_margin] + [a for a in assets if a.is_margin])
    _LEGS[s] = (key, legs)
    return legs


def _priced_markets(s: "Strategy") -> list[tuple[str, str, float]]:
    """(base, quote, price) of every market with a known price, in the order the price graph lists them: the
    universe's spot markets, then its contracts, then the valuation markets outside it."""
    out = [(base, quote, price) for ai, base, quote in _legs(s) if (price := ai.last_price) and price > 0 and math.isfinite(price)]
    conversion = s.holdings.conversion_prices
    if conversion:
        markets = s.venue.markets
        for symbol, price in conversion.items():
            m = markets.get(symbol)
            if m and price and price > 0 and math.isfinite(price):
                out.append((str(m["base"]), str(m["quote"]), price))
    return out


def price_graph(s: "Strategy") -> dict[str, list[tuple[str, float]]]:
    """currency -> [(other currency, units of other per unit)] from every market with a known price."""
    graph: dict[str, list[tuple[str, float]]] = {}
    for base, quote, price in _priced_markets(s):
        graph.setdefault(base, []).append((quote, price))
        graph.setdefault(quote, []).append((base, 1.0 / price))
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


class Rates:
    """``price_in_main`` for every currency at one moment's prices, each worked out once.

    Why: the breakers value the account on every price update and the risk monitor on every interval (in a
    backtest, every candle), and building the price graph each time was most of that cost. A currency traded
    directly against the main currency (BTC on BTC/USDT) takes the first such market in the graph's order: the
    edge ``price_in_main``'s breadth-first walk returns first, so the figure is the same. Any other currency
    takes that walk, on a graph built only when one needs it."""

    def __init__(self, s: "Strategy") -> None:
        self.s = s
        self.main = main = s.config.main_currency
        direct: dict[str, float] = {}
        for base, quote, price in _priced_markets(s):
            if quote == main:
                direct.setdefault(base, price)
            elif base == main:
                direct.setdefault(quote, 1.0 / price)
        self._direct = direct
        self._graph: dict[str, list[tuple[str, float]]] | None = None
        self._walked: dict[str, float | None] = {}

    def get(self, currency: str) -> float | None:
        """Units of the main currency per unit of ``currency``, or None (no price path)."""
        if currency == self.main:
            return 1.0
        rate = self._direct.get(currency)
        if rate is not None:
            return rate
        if currency not in self._walked:
            if self._graph is None:
                self._graph = price_graph(self.s)
            self._walked[currency] = price_in_main(self.s, currency, self._graph)
        return self._walked[currency]


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


def position_value(s: "Strategy", ai: "AssetInstance", extra: float = 0.0, rates: Rates | None = None) -> float:
    """Signed value in the main currency of the asset's position (spot: base holdings) plus ``extra`` base units;
    NaN when it cannot be valued. ``rates``: the moment's rates when the caller values several assets at once."""
    return value_of(s, ai, (ai.position.contracts if ai.is_margin else s.cash(ai.base).total) + extra, rates)


def value_of(s: "Strategy", ai: "AssetInstance", units: float, rates: Rates | None = None) -> float:
    """Signed value in the main currency of ``units`` of the asset (contracts, or base units on spot); NaN when it
    cannot be valued."""
    if not units:
        return 0.0
    if ai.is_margin:
        rate = (rates or Rates(s)).get(ai.quote)
        return units * ai.last_price * rate if ai.last_price and rate is not None else math.nan
    rate = (rates or Rates(s)).get(ai.base)
    return units * rate if rate is not None else math.nan


def holding(s: "Strategy", ai: "AssetInstance", position_side: PositionSide = PositionSide.BOTH) -> float:
    """What is held now, signed: spot the base balance, one-way futures the position, hedge mode the position of
    ``position_side`` (a short's contracts are negative)."""
    if not ai.is_margin:
        return s.cash(ai.base).total
    return ai.position_of(position_side).contracts if ai.hedged else ai.position.contracts


def queued(s: "Strategy", ai: "AssetInstance", side: Side, position_side: PositionSide = PositionSide.BOTH) -> float:
    """What the strategy's orders on ``ai`` could still add in ``side``'s direction that the holding does not show,
    signed (buys > 0): every order open, being sent or of unknown outcome (a conditional one before its trigger
    too), less what has filled; and the fills the balances or positions held do not include yet (an order answered
    "filled" is no longer open, and the account update that includes its fill comes a moment later). Not a
    reduce-only order; in hedge mode only those of ``position_side``. A spot sell adds nothing (it cannot go below
    nothing held). An outside trial: with the pre-trade limits blind to these, five resting buys of 0.9 of a 0.1
    limit each, four market buys sent at once, and three stop buys that triggered later all passed."""
    if not ai.is_margin and side is Side.SELL:
        return 0.0

    def adds(o: "Order") -> bool:
        return o.side is side and not o.reduce_only and (not ai.hedged or o.position_side is position_side)

    total = sum(max(0.0, o.amount - o.filled) for o in ai.open_orders() if adds(o))
    prefix = f"{ai.symbol}:"
    unsettled = {key[len(prefix) :] for key in s.freshness.pending if key.startswith(prefix)}
    for trade in reversed(ai.trades) if unsettled else ():
        if str(trade.trade_id) in unsettled:
            unsettled.discard(str(trade.trade_id))
            order = ai.orders.get(trade.client_order_id or "")
            if order is not None and adds(order):
                total += trade.amount
            if not unsettled:
                break
    return total if side is Side.BUY else -total


def opening_sides(ai: "AssetInstance") -> tuple[tuple[Side, PositionSide], ...]:
    """The (side, position side) of the orders that can add to a position of ``ai``: spot buys; one-way buys and
    sells; in hedge mode buys of the long side and sells of the short side."""
    if not ai.is_margin:
        return ((Side.BUY, PositionSide.BOTH),)
    if ai.hedged:
        return ((Side.BUY, PositionSide.LONG), (Side.SELL, PositionSide.SHORT))
    return ((Side.BUY, PositionSide.BOTH), (Side.SELL, PositionSide.BOTH))


def worst_exposure(
    s: "Strategy", ai: "AssetInstance", rates: Rates | None = None, add: tuple[Side, PositionSide, float] | None = None
) -> float:
    """The asset's gross exposure (main currency, >= 0; NaN when unvalued) if every order of the strategy that may
    be live on it fills the way that makes it largest, ``add`` (side, position side, amount) one more: hedge mode
    sums the long and the short side; one-way takes the larger of "every buy fills" and "every sell fills"."""
    worst = 0.0
    for side, ps in opening_sides(ai):
        units = holding(s, ai, ps) + queued(s, ai, side, ps)
        if add is not None and add[:2] == (side, ps):
            units += add[2] if side is Side.BUY else -add[2]
        units = abs(units)
        worst = worst + units if ai.hedged else max(worst, units)
    if not ai.is_margin:
        worst = max(worst, abs(holding(s, ai)))
    return abs(value_of(s, ai, worst, rates))


def gross_value(s: "Strategy", ai: "AssetInstance", rates: Rates | None = None) -> float:
    """The asset's gross exposure now (main currency, >= 0; NaN when unvalued): hedge mode sums the long and the
    short side (the net view ``ai.position`` of a long 0.2 and a short 0.25 is 0.05 of exposure, not 0.45)."""
    if ai.is_margin and ai.hedged:
        return abs(value_of(s, ai, sum(abs(p.contracts) for _, p in ai.open_positions()), rates))
    return abs(position_value(s, ai, rates=rates))


def equity(s: "Strategy", rates: Rates | None = None) -> tuple[float, list[str]]:
    """Equity in the main currency and what could not be valued (empty: the figure is complete)."""
    rates = Rates(s) if rates is None else rates
    total, unpriced = 0.0, []
    for cur, bal in s.holdings.balances.items():  # spot: every balance; margin: the wallet (Balance.total on margin accounts)
        if not bal.total:
            continue
        rate = rates.get(cur)
        if rate is None:
            unpriced.append(cur)
        else:
            total += bal.total * rate
    if s.config.margin:
        for ai in s.universe.values():
            if not ai.open_positions():  # hedge mode: a long and a short of the same size still have their PnL
                continue
            upnl, rate = unrealized(ai), rates.get(ai.quote)
            if upnl is None or rate is None:
                unpriced.append(ai.symbol)
            else:
                total += upnl * rate
    return total, unpriced


def unrealized(ai: "AssetInstance") -> float | None:
    """Unrealized PnL of the positions in their quote currency: each marked at the latest price, else the exchange's
    figure. Hedge mode sums the long and the short, each at its own entry (the net view ``ai.position`` has one
    entry: long 2 @ 100 and short 1 @ 110 at 105 read 5 instead of 15, a fully hedged pair 0 instead of 10)."""
    total = 0.0
    for _, p in ai.open_positions():
        if ai.last_price:
            total += (ai.last_price - p.entry_price) * p.contracts
        elif p.unrealized_known:
            total += p.unrealized_pnl
        else:
            return None
    return total


def available_margin(assets: Iterable["AssetInstance"], default_leverage: float, currency: str, wallet: float) -> float:
    """Margin available for new orders, derived from the wallet the websocket carries: wallet + unrealized PnL
    - initial margin of positions - initial margin of open orders (Binance's cross-margin rule); an asset without a
    known leverage counts at ``default_leverage``."""
    free = wallet
    for ai in assets:
        if not ai.is_margin or (ai.market.get("settle") or ai.quote) != currency:
            continue
        lev = ai.position.leverage or default_leverage
        for _, p in ai.open_positions():  # hedge mode: each side holds its own margin
            free -= abs(p.contracts) * (ai.last_price or p.entry_price) / lev
        free += unrealized(ai) or 0.0
        for o in ai.open_orders():
            if not o.reduce_only and o.price:
                free -= max(0.0, o.amount - o.filled) * o.price / lev
    return free


def returns(ai: "AssetInstance", timeframe: str = "1m", window: int = 60) -> np.ndarray:
    """Log returns of the last ``window`` closes (empty below 3)."""
    candles = ai.ohlcv.get(timeframe) or next(iter(ai.ohlcv.values()), None)
    closes = candles.array[-(window + 1) :, 4] if candles else np.zeros(0)
    if len(closes) < 3:
        return np.zeros(0)
    logs = np.log(closes)
    return logs[1:] - logs[:-1]  # np.diff's own figure, without its wrapper (the monitor asks on every run)


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


def return_stats(rets: list[np.ndarray]) -> tuple[list[list[float]], list[float]]:
    """The pairwise correlations (``correlation_of``) and the volatilities (``volatility_of``) of several assets'
    returns: from one matrix product when they have the same length (the usual case), pair by pair otherwise."""
    lengths = {len(r) for r in rets}
    m = lengths.pop() if len(lengths) == 1 else 0
    if m < 3:
        return [[correlation_of(a, b) for b in rets] for a in rets], [volatility_of(r) for r in rets]
    return _matrix_stats(np.array(rets))


def assets_return_stats(assets: list["AssetInstance"], timeframe: str = "1m", window: int = 60) -> tuple[list[list[float]], list[float]]:
    """``return_stats`` of the assets' ``returns``: when their closes have the same length (the usual case; the
    monitor runs this every interval, in a backtest every candle), one logarithm and one difference of the stacked
    closes instead of one each per asset; the same figures (element-wise the same operations, rows laid out as
    ``return_stats`` lays them)."""
    closes = []
    for ai in assets:
        candles = ai.ohlcv.get(timeframe) or next(iter(ai.ohlcv.values()), None)
        closes.append(candles.array[-(window + 1) :, 4] if candles else np.zeros(0))
    lengths = {len(c) for c in closes}
    n = lengths.pop() if len(lengths) == 1 else 0
    if n < 4:  # fewer than 3 returns each, or unequal lengths: asset by asset
        return return_stats([returns(ai, timeframe, window) for ai in assets])
    logs = np.log(np.array(closes))
    return _matrix_stats(logs[:, 1:] - logs[:, :-1])


def _matrix_stats(x: np.ndarray) -> tuple[list[list[float]], list[float]]:
    """``return_stats`` of equal-length returns, one row per asset (``x`` is changed). The few figures of the product
    are finished in plain floats: numpy's per-call cost is most of the time at this size, and the arithmetic (one
    division, one square root, then bounded to [-1, 1]) is numpy's own, so the figures are the same."""
    k, m = x.shape
    x -= x.sum(axis=1, keepdims=True) / m  # the mean as numpy's ``mean`` makes it: the sum over the count
    cov: list[list[float]] = (x @ x.T).tolist()
    d = [cov[i][i] for i in range(k)]
    vols = [math.sqrt(v / (m - 1)) for v in d]
    corr = [[math.nan] * k for _ in range(k)]
    if m >= 5:
        for i in range(k):
            for j in range(i + 1, k):
                corr[i][j] = corr[j][i] = _corr(cov[i][j], d[i], d[j])
        for i in range(k):
            corr[i][i] = _corr(d[i], d[i], d[i])
    return corr, vols


def _corr(cov: float, var_a: float, var_b: float) -> float:
    """One correlation from the product's figures: nan when either side is flat, else bounded to [-1, 1] (a
    product of variances that underflows to 0 reads as numpy's division by zero: +-1 by the covariance's sign)."""
    if var_a == 0 or var_b == 0:
        return math.nan
    denom = math.sqrt(var_a * var_b)
    if denom == 0:
        return math.nan if cov == 0 else math.copysign(1.0, cov)
    return max(-1.0, min(1.0, cov / denom))


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
    positions_held: int = 0  # positions above dust (model/dust.py): what a backtest's ``exposure`` counts
    positions: dict[str, float] = field(default_factory=dict)  # symbol -> signed value, dust included
    unpriced: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return dict(vars(self))


def is_dust(s: "Strategy", ai: "AssetInstance") -> bool:
    """Whether the asset's holding (spot: the base currency's total; derivatives: the position's contracts) is one
    no order can trade: below the market's minimum amount or order value (model/dust.py)."""
    qty = abs(ai.position.contracts) if ai.is_margin else abs(s.cash(ai.base).total)
    return below_minimum(ai.market, qty, ai.last_price)


def compute(s: "Strategy", day_start_equity: float | None, peak_equity: float | None) -> RiskMetrics:
    """The figures now; ``peak_equity`` None or below the equity: the equity is the peak. (One pass over the assets:
    the monitor runs this every interval, in a backtest every candle.)"""
    rates = Rates(s)
    eq, unpriced = equity(s, rates)
    peak_equity = max(peak_equity or eq, eq)
    values: dict[str, float] = {}
    upnl, gross = 0.0, 0.0
    # correlation, volatility and liquidity are the positions' own: a holding no order can trade is none (dust.py)
    held: list[tuple[str, "AssetInstance"]] = []
    for sym, ai in s.universe.items():
        u = unrealized(ai)
        if u is not None:
            upnl += u
        v = position_value(s, ai, rates=rates)
        if math.isfinite(v) and abs(v) > 1e-12:
            values[sym] = v
            if not is_dust(s, ai):
                held.append((sym, ai))
        g = gross_value(s, ai, rates) if ai.hedged else abs(v)
        if math.isfinite(g):
            gross += g
    corr_terms, corr_w, liquidity, vol = 0.0, 0.0, 0.0, math.nan
    if held:
        total = sum(abs(values[sym]) for sym, _ in held)
        weights = [abs(values[sym]) / total for sym, _ in held]
        corr, vols_of = assets_return_stats([ai for _, ai in held])
        for i in range(len(held)):
            for j in range(i + 1, len(held)):
                c = corr[i][j]
                if not math.isnan(c):
                    sign = 1.0 if (values[held[i][0]] > 0) == (values[held[j][0]] > 0) else -1.0
                    w = weights[i] * weights[j]
                    corr_terms += w * c * sign
                    corr_w += w
        for sym, ai in held:
            candles = ai.ohlcv.get("1m") or next(iter(ai.ohlcv.values()), None)
            volume = float(candles.array[-60:, 5].sum()) if candles else 0.0
            qty = abs(values[sym]) / (ai.last_price or 1.0)
            liquidity = max(liquidity, qty / volume if volume > 0 else math.inf)
        vol = sum(w * v for w, v in zip(weights, vols_of) if not math.isnan(v))
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
        positions_held=len(held),
        positions=values,
        unpriced=unpriced,
    )
