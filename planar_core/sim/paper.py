"""``PaperVenue``: paper trading on the simulated venue, fed by the exchange's live public market data.

The account, orders and fills are the simulated exchange's (``SimVenue``: the sandbox's rules, so paper accepts
and refuses what live accepts and refuses, attached exits and conditional orders included); the markets (with
their real precision and limits), candles, tickers and the clock are the exchange's, read by a keyless client that
cannot sign a private request, so nothing can reach a real account by mistake. Every price the engine reads (its
candle watchers, tickers) moves the simulated exchange's price and runs its matching; a candle's new high or low
since it was last read is walked as the fill model walks a backtest's candle (``sim/walk.py``), so a dip between
two reads fills the limit order it crossed, as on the exchange.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from ..config import Credentials, StrategyConfig
from ..exchange.ccxt_types import CcxtExchange
from ..exchange.ccxt_venue import CcxtVenue
from ..exchange.registry import open_venue
from ..model.sink import EventSink
from ..model.types import Json
from ..model.venue import Ticker
from ..sandbox.market_data import MarketSpec
from .venue import SimVenue
from .walk import knots, walk


def _dec(x: object, default: str) -> Decimal:
    return Decimal(str(x)) if x not in (None, 0, 0.0) else Decimal(default)


def spec_from_ccxt(market: Json) -> MarketSpec:
    """The simulated exchange's market of a ccxt market: the exchange's own precision and limits."""
    limits = market.get("limits") or {}
    precision = market["precision"]
    assert isinstance(limits, dict) and isinstance(precision, dict)
    amount = limits.get("amount") or {}
    cost = limits.get("cost") or {}
    market_order = limits.get("market") or {}  # Binance's MARKET_LOT_SIZE
    price = limits.get("price") or {}
    assert isinstance(amount, dict) and isinstance(cost, dict) and isinstance(market_order, dict) and isinstance(price, dict)
    return MarketSpec(
        str(market["id"]),
        str(market["base"]),
        str(market["quote"]),
        "linear" if market.get("contract") else "spot",
        _dec(precision["price"], "0.00000001"),
        _dec(precision["amount"], "0.00000001"),
        _dec(amount.get("min"), str(precision["amount"] or "0.00000001")),
        _dec(amount.get("max"), "1000000000"),
        _dec(cost.get("min"), "0"),
        None,
        "",
        market_max_qty=_limit(market_order.get("max")),
        min_price=_limit(price.get("min")),
        max_price=_limit(price.get("max")),
    )


def _limit(x: object) -> Decimal | None:
    """A limit the listing states (ccxt: a number; 0 or missing: none)."""
    return Decimal(str(x)) if isinstance(x, int | float) and x > 0 else None


def public_venue(cfg: StrategyConfig, sink: EventSink | None = None, exchange: CcxtExchange = None) -> CcxtVenue:
    """The exchange's venue without credentials: public market data only."""
    keyless = Credentials(api_key_env="PLANAR_PAPER_NO_KEY", api_secret_env="PLANAR_PAPER_NO_SECRET", passphrase_env="PLANAR_PAPER_NO_PASS")
    return open_venue(cfg.model_copy(update={"mode": "live", "credentials": keyless}), sink, exchange)


class PaperVenue(SimVenue):
    """The simulated venue behind the exchange's public market data (module docstring). ``exchange``: a ccxt client
    for the public data (tests point one at the sandbox)."""

    def __init__(self, cfg: StrategyConfig, sink: EventSink | None = None, exchange: CcxtExchange = None) -> None:
        super().__init__(cfg, sink)
        self.name = "paper"
        self.public = public_venue(cfg, sink, exchange)
        self.universe = [a.symbol for a in cfg.universe]
        self._range: dict[tuple[str, str], tuple[float, float, float]] = {}  # (symbol, tf) -> open time, high, low read

    async def load_markets(self, timeout: float) -> Mapping[str, Json]:
        """The exchange's markets; the simulated exchange then lists the universe's with the same precision and
        limits, and its account is opened."""
        real = await self.public.load_markets(timeout)
        self._open_exchange([spec_from_ccxt(real[s]) for s in self.universe if isinstance(real.get(s), dict)])
        self.ex.markets = None  # the simulated exchange lists them anew
        self.ex.markets_by_id = None
        return await super().load_markets(timeout)

    def _saw(self, symbol: str, price: float | None) -> None:
        if price and price > 0 and symbol in self.markets:
            self.set_price(symbol, price)

    async def server_time(self, timeout: float) -> int:
        return await self.public.server_time(timeout)

    async def tickers(self, symbols: Sequence[str], timeout: float) -> dict[str, Ticker]:
        out = await self.public.tickers(symbols, timeout)
        for symbol, t in out.items():
            self._saw(symbol, t.last)
        return out

    async def ticker(self, symbol: str, timeout: float) -> Ticker:
        t = await self.public.ticker(symbol, timeout)
        self._saw(symbol, t.last)
        return t

    async def ohlcv(self, symbol: str, timeframe: str, limit: int, timeout: float) -> list[list[float]]:
        candles = await self.public.ohlcv(symbol, timeframe, limit, timeout)
        if candles:
            self._saw_candle(symbol, timeframe, candles[-1])
        return candles

    async def watch_ohlcv(self, symbol: str, timeframe: str) -> list[list[float]]:
        candles = await self.public.watch_ohlcv(symbol, timeframe)
        if candles:
            self._saw_candle(symbol, timeframe, candles[-1])
        return candles

    def _saw_candle(self, symbol: str, timeframe: str, candle: list[float]) -> None:
        """The price passed through the candle's extremes not read before (all of a new candle; of one read before,
        a higher high or a lower low), in the fill model's order, stopping at each resting level; then its close.
        Only the close was taken before: a 1.5 % dip between two polls of the candle never reached a resting buy it
        crossed, which filled on the exchange (an outside trial, 2 of 2). The first candle of the run is its close
        only: what it saw before was not this run's."""
        if symbol not in self.markets or len(candle) < 5 or not all(x and x > 0 for x in candle[1:5]):
            return
        opened, o, h, lo, c = (float(x) for x in candle[:5])
        key = (symbol, timeframe)
        seen = self._range.get(key)
        again = seen is not None and seen[0] == opened
        if again and seen is not None:
            self._range[key] = (opened, max(h, seen[1]), min(lo, seen[2]))
            h, lo = (h if h > seen[1] else c), (lo if lo < seen[2] else c)  # only the extremes reached since
            o = self.prices.get(self._market(symbol).key, c)
        else:
            self._range[key] = (opened, h, lo)
        if seen is not None and self.at_stake():
            for _, price in walk(knots(0, 3, o, h, lo, c), self.resting_levels(symbol)):
                self._saw(symbol, price)
        self._saw(symbol, c)

    def closed_through(self, symbol: str, timeframe: str) -> int | None:
        return self.public.closed_through(symbol, timeframe)

    async def reset_streams(self) -> None:
        await self.public.reset_streams()

    async def close(self) -> None:
        await self.public.close()
