"""Price paths and market specifications for the sandbox exchange.

A price path is a piecewise-linear function of *data time* built from real
candles (open -> high/low -> low/high -> close inside each candle), so the
sandbox replays recorded market moves instead of inventing volatility.
When a data file is missing, a seeded geometric random walk is generated.

Which file drives which symbol (see ``../shared/data/README.md``):

========================  ===========================  ======================
symbol                    file                         price level
========================  ===========================  ======================
BTC/USDT, BTC/USDT:USDT   UNITTEST_BTC_1m.csv          returns from 60 000
ETH/USDT, ETH/USDT:USDT   ETH_BTC_5m.csv               returns from 3 000
LTC/USDT                  LTC_BTC_5m.csv               returns from 80
XRP/USDT                  XRP_ETH_1m.csv               returns from 0.5
XRP/USDT:USDT             XRP_USDT_USDT_5m_futures.csv native levels
ETH/BTC                   ETH_BTC_5m.csv               native levels
========================  ===========================  ======================

Gaps in the 1m files are filled forward (the previous close is held).
"""

from __future__ import annotations

import csv
import functools
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

DEFAULT_DATA_DIR = Path(os.environ.get("PLANAR_DATA_DIR", Path(__file__).resolve().parents[2].parent / "shared" / "data"))


@dataclass
class PricePath:
    """Piecewise-linear price over data time (ms), with cumulative volume."""

    times: np.ndarray  # data-time ms, strictly increasing
    prices: np.ndarray
    cum_volume: np.ndarray  # cumulative base volume at each knot
    source: str = "generated"

    @property
    def span_ms(self) -> float:
        return float(self.times[-1] - self.times[0])

    def _wrap(self, t: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Map data time onto the path, looping with a continuity factor per lap."""
        rel = np.asarray(t, dtype=np.float64) - self.times[0]
        laps = np.floor(rel / self.span_ms)
        return self.times[0] + rel - laps * self.span_ms, laps

    def price_at(self, t: float | np.ndarray) -> np.ndarray | float:
        wrapped, laps = self._wrap(t)
        lap_factor = self.prices[-1] / self.prices[0]
        out = np.interp(wrapped, self.times, self.prices) * np.power(lap_factor, laps)
        return float(out) if np.ndim(out) == 0 else out

    def volume_between(self, t0: float, t1: float) -> float:
        wrapped0, laps0 = self._wrap(t0)
        wrapped1, laps1 = self._wrap(t1)
        total = float(self.cum_volume[-1])
        c0 = float(np.interp(wrapped0, self.times, self.cum_volume)) + float(laps0) * total
        c1 = float(np.interp(wrapped1, self.times, self.cum_volume)) + float(laps1) * total
        return max(c1 - c0, 0.0)

    def ohlcv(self, t0: float, t1: float) -> tuple[float, float, float, float, float]:
        """Open, high, low, close and volume of the path over data time [t0, t1)."""
        wrapped0, laps0 = self._wrap(t0)
        inner: list[float] = [t0]
        # knots strictly inside the window define its extremes
        if t1 - t0 < self.span_ms:
            start = self.times[0] + float(laps0) * self.span_ms
            lo = np.searchsorted(self.times, float(wrapped0), side="right")
            hi = np.searchsorted(self.times, float(wrapped0) + (t1 - t0), side="left")
            if hi <= len(self.times):
                inner.extend((self.times[lo:hi] + (start - self.times[0])).tolist())
            else:  # pragma: no cover - crossing a lap boundary; sample instead
                inner.extend(np.linspace(t0, t1, 64).tolist())
        else:
            inner.extend(np.linspace(t0, t1, 256).tolist())
        inner.append(t1 - 1)
        prices = np.asarray(self.price_at(np.asarray(inner)))
        return (float(prices[0]), float(prices.max()), float(prices.min()), float(prices[-1]), self.volume_between(t0, t1))


def _read_candles(path: Path) -> np.ndarray:
    with path.open() as fh:
        rows = [r for r in csv.reader(fh)][1:]
    arr = np.array([[float(x) for x in r[:6]] for r in rows if len(r) >= 6])
    return arr[np.argsort(arr[:, 0], kind="stable")]


def path_from_candles(candles: np.ndarray, scale_to: float | None = None, source: str = "") -> PricePath:
    """Build a path whose knots are each candle's open, extremes and close.

    Gaps between candles hold the previous close (fill forward).
    """
    ts, o, h, lo, c, v = (candles[:, i] for i in range(6))
    period = float(np.median(np.diff(ts))) if len(ts) > 1 else 60_000.0
    up = c >= o  # an up candle visits the low first, a down candle the high first
    first = np.where(up, lo, h)
    second = np.where(up, h, lo)
    knots_t = np.stack([ts, ts + period / 3, ts + 2 * period / 3, ts + period - 1], axis=1).ravel()
    knots_p = np.stack([o, first, second, c], axis=1).ravel()
    knots_v = np.stack([np.zeros_like(v), v / 3, v / 3, v / 3], axis=1).ravel()
    order = np.argsort(knots_t, kind="stable")
    knots_t, knots_p, knots_v = knots_t[order], knots_p[order], knots_v[order]
    keep = np.concatenate([[True], np.diff(knots_t) > 0])
    knots_t, knots_p, knots_v = knots_t[keep], knots_p[keep], knots_v[keep]
    if scale_to is not None:
        knots_p = knots_p / knots_p[0] * scale_to
    return PricePath(knots_t, knots_p, np.cumsum(knots_v), source=source)


def generated_path(start_price: float, seed: int, minutes: int = 10_000, vol_per_min: float = 0.0008) -> PricePath:
    """A seeded geometric random walk, used only when no data file is available."""
    rng = np.random.default_rng(seed)
    rets = rng.normal(0.0, vol_per_min, size=minutes)
    closes = start_price * np.exp(np.cumsum(rets))
    opens = np.concatenate([[start_price], closes[:-1]])
    wick = np.abs(rng.normal(0.0, vol_per_min / 2, size=minutes))
    highs = np.maximum(opens, closes) * (1 + wick)
    lows = np.minimum(opens, closes) * (1 - wick)
    ts = 1_700_000_000_000 + np.arange(minutes) * 60_000.0
    vol = rng.uniform(5, 50, size=minutes)
    return path_from_candles(np.stack([ts, opens, highs, lows, closes, vol], axis=1), source=f"generated(seed={seed})")


@functools.lru_cache(maxsize=32)
def _file_path(path: str, scale_to: float | None) -> PricePath:
    """Paths are immutable, so each file is parsed once per process."""
    return path_from_candles(_read_candles(Path(path)), scale_to=scale_to, source=Path(path).name)


@dataclass(frozen=True)
class MarketSpec:
    """Exchange filters of one market, in Binance's terms."""

    symbol: str  # exchange id, e.g. BTCUSDT
    base: str
    quote: str
    kind: str  # "spot" or "linear"
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    start_price: float | None  # None: native price levels of the file
    data_file: str
    contract_type: str = "PERPETUAL"  # futures: PERPETUAL or CURRENT_QUARTER (a delivery contract)
    delivery_ms: int = 4_133_404_800_000  # futures: Binance's "delivery" of a perpetual is 2100-12-25
    # a real exchange's own limits (paper trading copies them): MARKET_LOT_SIZE's maxQty, PRICE_FILTER's min/max
    market_max_qty: Decimal | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None

    @property
    def price_precision(self) -> int:
        return max(0, -self.tick_size.as_tuple().exponent)  # type: ignore[operator]

    @property
    def qty_precision(self) -> int:
        return max(0, -self.step_size.as_tuple().exponent)  # type: ignore[operator]

    @property
    def wire_price_places(self) -> int:
        """Decimals of every price on the wire: spot pads to 8 (``"69592.50000000"``), futures to the symbol's
        ``pricePrecision`` (``"69592.5"`` for a 0.1 tick)."""
        return 8 if self.kind == "spot" else self.price_precision

    @property
    def wire_qty_places(self) -> int:
        return 8 if self.kind == "spot" else self.qty_precision


D = Decimal
DEFAULT_MARKETS: list[MarketSpec] = [
    MarketSpec("BTCUSDT", "BTC", "USDT", "spot", D("0.01"), D("0.00001"), D("0.00001"), D("9000"), D("5"), 60_000.0, "UNITTEST_BTC_1m.csv"),
    MarketSpec("ETHUSDT", "ETH", "USDT", "spot", D("0.01"), D("0.0001"), D("0.0001"), D("9000"), D("5"), 3_000.0, "ETH_BTC_5m.csv"),
    MarketSpec("LTCUSDT", "LTC", "USDT", "spot", D("0.01"), D("0.001"), D("0.001"), D("90000"), D("5"), 80.0, "LTC_BTC_5m.csv"),
    MarketSpec("XRPUSDT", "XRP", "USDT", "spot", D("0.0001"), D("0.1"), D("0.1"), D("9000000"), D("5"), 0.5, "XRP_ETH_1m.csv"),
    MarketSpec("ETHBTC", "ETH", "BTC", "spot", D("0.00001"), D("0.0001"), D("0.0001"), D("100000"), D("0.0001"), None, "ETH_BTC_5m.csv"),
    MarketSpec("BTCUSDT", "BTC", "USDT", "linear", D("0.1"), D("0.001"), D("0.001"), D("1000"), D("5"), 60_000.0, "UNITTEST_BTC_1m.csv"),
    MarketSpec("ETHUSDT", "ETH", "USDT", "linear", D("0.01"), D("0.001"), D("0.001"), D("10000"), D("5"), 3_000.0, "ETH_BTC_5m.csv"),
    MarketSpec(
        "XRPUSDT", "XRP", "USDT", "linear", D("0.0001"), D("0.1"), D("0.1"), D("10000000"), D("5"), None, "XRP_USDT_USDT_5m_futures.csv"
    ),
]


def quarter_delivery_ms(now_ms: int) -> int:
    """Binance's quarterly contracts deliver at 08:00 UTC on the last Friday of March, June, September and December:
    the first such time after ``now_ms``."""
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    for year in (now.year, now.year + 1):
        for month in (3, 6, 9, 12):
            last = datetime(year + (month == 12), month % 12 + 1, 1, 8, tzinfo=UTC) - timedelta(days=1)
            delivery = last - timedelta(days=(last.weekday() - 4) % 7)
            if delivery > now:
                return int(delivery.timestamp() * 1000)
    raise AssertionError("unreachable")  # pragma: no cover


def quarterly_market(now_ms: int) -> MarketSpec:
    """The BTC current-quarter delivery contract (``BTCUSDT_YYMMDD``) on the perpetual's path: Binance lists
    delivery futures beside perpetuals, and clients (ccxt's market validators) expect both."""
    delivery = quarter_delivery_ms(now_ms)
    day = datetime.fromtimestamp(delivery / 1000, tz=UTC).strftime("%y%m%d")
    return MarketSpec(
        f"BTCUSDT_{day}",
        "BTC",
        "USDT",
        "linear",
        D("0.1"),
        D("0.001"),
        D("0.001"),
        D("500"),
        D("5"),
        60_000.0,
        "UNITTEST_BTC_1m.csv",
        contract_type="CURRENT_QUARTER",
        delivery_ms=delivery,
    )


def default_markets() -> list[MarketSpec]:
    """The sandbox's markets: the fixed list and the delivery contract of the current quarter."""
    return [*DEFAULT_MARKETS, quarterly_market(int(time.time() * 1000))]


@dataclass
class PathLibrary:
    """Loads one path per market, from files or generated."""

    data_dir: Path | None = DEFAULT_DATA_DIR
    seed: int = 7
    extra_files: dict[str, Path] = field(default_factory=dict)  # symbol id -> csv overriding the default

    def path_for(self, spec: MarketSpec) -> PricePath:
        candidates = []
        if spec.symbol in self.extra_files:
            candidates.append(self.extra_files[spec.symbol])
        if self.data_dir is not None:
            candidates.append(Path(self.data_dir) / spec.data_file)
        for cand in candidates:
            if cand.is_file():
                return _file_path(str(cand.resolve()), spec.start_price)
        start = spec.start_price or 1.0
        return generated_path(start, seed=self.seed + sum(map(ord, spec.symbol + spec.kind)))


def synthetic_markets(n: int) -> list[MarketSpec]:
    """``n`` extra spot markets (SYN0/USDT ...) on generated paths, for scale tests and benchmarks."""
    return [
        MarketSpec(
            f"SYN{i}USDT",
            f"SYN{i}",
            "USDT",
            "spot",
            D("0.0001"),
            D("0.01"),
            D("0.01"),
            D("10000000"),
            D("5"),
            10.0 + i,
            f"synthetic-{i}.csv",
        )
        for i in range(n)
    ]
