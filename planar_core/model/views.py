"""Read-only views of the engine's state, as strategy code sees it through its context (model/context.py).

The engine keeps one mutable ``AssetInstance`` per symbol, and its orders, trades, positions and candle buffers
are the state the watchers, the risk checks and the trace depend on. Strategy code reads the same state through
these views, so a slip in a strategy (``order.status = ...``, ``ai.last_price = ...``, ``candles.take_closed()``)
raises instead of corrupting the engine's view of the account:

* ``AssetView``, ``OrderView`` and ``CandlesView`` are live: they read the engine's object on every access (an
  order's status moves as the watchers report it), and every assignment raises ``AttributeError``;
* ``TradeView``, ``PositionView``, ``BalanceView`` and ``PortfolioMetrics`` are frozen snapshots (a fill never
  changes; a position or balance is read again through the asset or the context);
* collections are tuples and ``MappingProxyType``; a market's dict is frozen all the way down.

An ``AssetView`` shows only the strategy's own orders and trades (``owns``: their client id encodes its identity):
orders the engine tracks for other reasons (adopted manual orders, the exchange's forced closes) are none of the
strategy's business. Nothing here knows an engine, a venue or a mode: paper and backtest hand out the same views.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import NoReturn, overload

import pandas as pd

from .answers import Adjustment
from .candles import Candle, Candles, FloatArray
from .json import num, obj
from .status import OrderStatus
from .types import AssetInstance, Balance, Order, OrderType, Pending, Position, PositionSide, Side, Trade, Unknown

Owns = Callable[[str | None], bool]
"""Whether a client order id is the strategy's own (it encodes the strategy's identity)."""


def frozen_json(value: object) -> object:
    """``value`` with every dict made a read-only mapping and every list a tuple, all the way down."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: frozen_json(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(frozen_json(v) for v in value)
    return value


class _ReadOnly:
    """Assignment and deletion raise: a view is for reading."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is read-only: {name} cannot be set")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is read-only: {name} cannot be deleted")


_TRADE_FIELDS = tuple(f.name for f in fields(Trade))


@dataclass(frozen=True, slots=True)
class TradeView:
    """A fill, as ``Trade`` (model/types.py) holds it; frozen. When the view is made with the fill's order (the
    context always does for the strategy's own orders): ``order_amount``, the amount the order was sent with, and
    ``adjustment``, what the engine changed from what the strategy asked (None: sent as asked), so an answer of
    ``call`` says both what was asked and what was sent (``requested_amount``)."""

    symbol: str
    side: Side
    amount: float
    price: float
    order_id: str | None
    client_order_id: str | None
    timestamp: int
    fee: float = 0.0
    fee_currency: str | None = None
    trade_id: str | None = None
    emulated: bool = False
    realized_pnl: float | None = None
    order_amount: float | None = None
    adjustment: Adjustment | None = None

    @classmethod
    def of(cls, t: Trade, order: Order | None = None) -> TradeView:
        """The view of ``t``; with ``order`` (the fill's order), its amount as sent and its adjustment."""
        known = {name: getattr(t, name) for name in _TRADE_FIELDS}
        if order is not None:
            known.update(order_amount=order.amount, adjustment=order.adjustment)
        return cls(**known)

    @property
    def requested_amount(self) -> float | None:
        """What the strategy asked the order for (None: the order is not known to the view)."""
        return self.adjustment.requested_amount if self.adjustment is not None else self.order_amount

    def to_trade(self) -> Trade:
        """A ``Trade`` with the same fields (for the engine's calls that take one; never the engine's own object)."""
        return Trade(**{name: getattr(self, name) for name in _TRADE_FIELDS})


@dataclass(frozen=True, slots=True)
class PositionView:
    """A position when it was read: contracts (signed: > 0 long, < 0 short), entry price, unrealized PnL."""

    contracts: float = 0.0
    entry_price: float = 0.0
    unrealized_pnl: float = 0.0
    leverage: float | None = None
    timestamp: int = 0
    unrealized_known: bool = False

    @classmethod
    def of(cls, p: Position) -> PositionView:
        return cls(p.contracts, p.entry_price, p.unrealized_pnl, p.leverage, p.timestamp, p.unrealized_known)

    @property
    def side(self) -> str | None:
        return None if not self.contracts else ("long" if self.contracts > 0 else "short")


@dataclass(frozen=True, slots=True)
class BalanceView:
    """One currency's balance when it was read (margin accounts: ``total`` is the wallet, ``free`` the free margin)."""

    free: float = 0.0
    used: float = 0.0
    total: float = 0.0

    @classmethod
    def of(cls, b: Balance) -> BalanceView:
        return cls(b.free, b.used, b.total)


@dataclass(frozen=True, slots=True)
class PortfolioMetrics:
    """The risk manager's figures (risk/metrics.py), valued in the main currency; frozen."""

    equity: float
    unrealized_pnl: float
    daily_pnl: float
    drawdown: float
    total_exposure: float  # gross position value / equity
    leverage: float
    correlation_risk: float
    liquidity_risk: float
    volatility: float
    positions: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))  # symbol -> signed value
    unpriced: tuple[str, ...] = ()  # holdings that could not be valued: equity is then incomplete

    @property
    def complete(self) -> bool:
        return not self.unpriced and math.isfinite(self.equity)


ViewAnswer = TradeView | Pending | Unknown | None
"""What the context's ``call`` answers: ``OrderAnswer`` (model/types.py) with the fill as a ``TradeView``."""


class OrderView(_ReadOnly):
    """One of the strategy's orders, read live from the engine's ``Order`` (its status moves as reports arrive)."""

    __slots__ = ("_o",)
    _o: Order

    def __init__(self, order: Order) -> None:
        object.__setattr__(self, "_o", order)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OrderView) and other._o is self._o

    def __hash__(self) -> int:
        return id(self._o)

    def __repr__(self) -> str:
        o = self._o
        return f"OrderView({o.client_order_id} {o.symbol} {o.side.value} {o.type.value} {o.amount}@{o.price} {o.status.value})"

    @property
    def client_order_id(self) -> str:
        return self._o.client_order_id

    @property
    def symbol(self) -> str:
        return self._o.symbol

    @property
    def side(self) -> Side:
        return self._o.side

    @property
    def type(self) -> OrderType:
        return self._o.type

    @property
    def amount(self) -> float:
        """The amount the order was sent with (after risk sizing and rounding to the market's step)."""
        return self._o.amount

    @property
    def price(self) -> float | None:
        """The limit price as sent (rounded to the market's tick)."""
        return self._o.price

    @property
    def requested_amount(self) -> float:
        """The amount the strategy asked for (``amount`` when the engine sent it as asked)."""
        adj = self._o.adjustment
        return adj.requested_amount if adj is not None else self._o.amount

    @property
    def requested_price(self) -> float | None:
        """The limit price the strategy asked for (``price`` when sent as asked)."""
        adj = self._o.adjustment
        return adj.requested_price if adj is not None else self._o.price

    @property
    def adjustment(self) -> Adjustment | None:
        """What the engine changed before sending the order (risk sizing, rounding), in numbers and words; None: as
        asked."""
        return self._o.adjustment

    @property
    def reduce_only(self) -> bool:
        return self._o.reduce_only

    @property
    def id(self) -> str | None:
        return self._o.id

    @property
    def status(self) -> OrderStatus:
        return self._o.status

    @property
    def filled(self) -> float:
        return self._o.filled

    @property
    def cost(self) -> float:
        return self._o.cost

    @property
    def timestamp(self) -> int:
        return self._o.timestamp

    @property
    def trades(self) -> tuple[TradeView, ...]:
        return tuple(TradeView.of(t, self._o) for t in self._o.trades)

    @property
    def trigger_price(self) -> float | None:
        return self._o.trigger_price

    @property
    def trailing_percent(self) -> float | None:
        return self._o.trailing_percent

    @property
    def position_side(self) -> PositionSide:
        return self._o.position_side

    @property
    def triggered(self) -> bool:
        return self._o.triggered

    @property
    def brackets(self) -> tuple[float | None, float | None]:
        return self._o.brackets

    @property
    def parent(self) -> str | None:
        return self._o.parent

    @property
    def verdict(self) -> str | None:
        return self._o.verdict

    @property
    def resent_as(self) -> str | None:
        return self._o.resent_as

    @property
    def resend_of(self) -> str | None:
        return self._o.resend_of

    @property
    def is_open(self) -> bool:
        return self._o.is_open

    @property
    def average(self) -> float | None:
        return self._o.average


class CandlesView(_ReadOnly):
    """The candles of one asset and timeframe (model/candles.py), reading only: ``merge`` and ``take_closed`` (which
    hands each closed bar out once, to ``on_bar``) are the engine's. The arrays are read-only numpy views; treat
    ``df`` as read-only too (it is the buffer's cached DataFrame)."""

    __slots__ = ("_c",)
    _c: Candles

    def __init__(self, candles: Candles) -> None:
        object.__setattr__(self, "_c", candles)

    def __repr__(self) -> str:
        return f"CandlesView({len(self._c)} rows, closed through {self._c.closed_through})"

    @property
    def array(self) -> FloatArray:
        return self._c.array

    def column(self, name: str) -> FloatArray:
        return self._c.column(name)

    @property
    def timestamp(self) -> FloatArray:
        return self._c.timestamp

    @property
    def open(self) -> FloatArray:
        return self._c.open

    @property
    def high(self) -> FloatArray:
        return self._c.high

    @property
    def low(self) -> FloatArray:
        return self._c.low

    @property
    def close(self) -> FloatArray:
        return self._c.close

    @property
    def volume(self) -> FloatArray:
        return self._c.volume

    @property
    def closed(self) -> FloatArray:
        return self._c.closed

    @property
    def closed_through(self) -> int | None:
        return self._c.closed_through

    @property
    def version(self) -> int:
        return self._c.version

    @property
    def capacity(self) -> int:
        return self._c.capacity

    @property
    def df(self) -> pd.DataFrame:
        return self._c.df

    @property
    def last(self) -> Candle | None:
        return self._c.last

    def __len__(self) -> int:
        return len(self._c)

    def __bool__(self) -> bool:
        return bool(self._c)

    @overload
    def __getitem__(self, i: int) -> Candle: ...
    @overload
    def __getitem__(self, i: slice) -> FloatArray: ...
    def __getitem__(self, i: int | slice) -> Candle | FloatArray:
        return self._c[i]

    def __iter__(self) -> Iterator[Candle]:
        return iter(self._c)


_NO_CANDLES = Candles(1)


class _Timeframes(Mapping[str, CandlesView]):
    """``AssetView.ohlcv``: timeframe -> candles. A configured timeframe is there from the start (empty until the
    feed delivers: ``on_start`` read it with a bare ``KeyError``); another is a ``KeyError`` naming the configured
    ones (a bare ``KeyError: '5m'`` said nothing)."""

    __slots__ = ("_ai", "_configured")

    def __init__(self, ai: AssetInstance, configured: tuple[str, ...]) -> None:
        self._ai, self._configured = ai, configured

    def __getitem__(self, timeframe: str) -> CandlesView:
        got = self._ai.ohlcv.get(timeframe)
        if got is not None:
            return CandlesView(got)
        if timeframe in self._configured or not self._configured:
            return CandlesView(_NO_CANDLES)
        raise KeyError(f"timeframe {timeframe!r} is not one of the config's timeframes {list(self._configured)}")

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._configured, *self._ai.ohlcv]))

    def __len__(self) -> int:
        return len(dict.fromkeys([*self._configured, *self._ai.ohlcv]))


class AssetView(_ReadOnly):
    """One symbol of the universe as the strategy sees it: market, price, position, candles, and its own orders and
    trades, read live from the engine's ``AssetInstance``."""

    __slots__ = ("_ai", "_owns", "_timeframes")
    _ai: AssetInstance
    _owns: Owns
    _timeframes: tuple[str, ...]

    def __init__(self, ai: AssetInstance, owns: Owns, timeframes: tuple[str, ...] = ()) -> None:
        """``timeframes``: the config's (``ohlcv`` and ``candles`` refuse another, naming them)."""
        object.__setattr__(self, "_ai", ai)
        object.__setattr__(self, "_owns", owns)
        object.__setattr__(self, "_timeframes", timeframes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AssetView) and other._ai is self._ai

    def __hash__(self) -> int:
        return id(self._ai)

    def __repr__(self) -> str:
        return f"AssetView({self._ai.symbol})"

    @property
    def symbol(self) -> str:
        return self._ai.symbol

    @property
    def market(self) -> Mapping[str, object]:
        """The exchange's market description (precision, limits ...), frozen."""
        frozen = frozen_json(self._ai.market)
        assert isinstance(frozen, Mapping)
        return frozen

    @property
    def amount_step(self) -> float:
        """The market's amount step (amounts are rounded down to it; 0: the market does not say). Typed, unlike
        ``market["precision"]["amount"]``."""
        return num(obj(self._ai.market.get("precision")).get("amount"))

    @property
    def price_step(self) -> float:
        """The market's price tick (prices are rounded to the nearest; 0: the market does not say)."""
        return num(obj(self._ai.market.get("precision")).get("price"))

    @property
    def min_amount(self) -> float:
        """The least amount an order may have (0: no minimum said)."""
        return num(obj(obj(self._ai.market.get("limits")).get("amount")).get("min"))

    @property
    def min_notional(self) -> float:
        """The least value (amount x price, in the quote) an order may have (0: no minimum said)."""
        return num(obj(obj(self._ai.market.get("limits")).get("cost")).get("min"))

    @property
    def base(self) -> str:
        return self._ai.base

    @property
    def quote(self) -> str:
        return self._ai.quote

    @property
    def is_margin(self) -> bool:
        return self._ai.is_margin

    @property
    def max_position(self) -> float | None:
        return self._ai.max_position

    @property
    def risk_per_trade(self) -> float | None:
        return self._ai.risk_per_trade

    @property
    def hedged(self) -> bool:
        return self._ai.hedged

    @property
    def margin_mode(self) -> str | None:
        return self._ai.margin_mode

    @property
    def last_price(self) -> float | None:
        return self._ai.last_price

    @property
    def position(self) -> PositionView:
        """One-way mode: the position; hedge mode: the net of both sides (``position_of`` reads one side)."""
        return PositionView.of(self._ai.position)

    def position_of(self, side: PositionSide | str) -> PositionView:
        return PositionView.of(self._ai.position_of(PositionSide(side)))

    def open_positions(self) -> tuple[tuple[PositionSide, PositionView], ...]:
        return tuple((side, PositionView.of(p)) for side, p in self._ai.positions.items() if p.contracts)

    @property
    def orders(self) -> Mapping[str, OrderView]:
        """The strategy's own orders on this asset (open or not) by client order id."""
        return MappingProxyType({cid: OrderView(o) for cid, o in self._ai.orders.items() if self._owns(cid)})

    def open_orders(self) -> list[OrderView]:
        """The strategy's own orders that may be live on the exchange (intent, unknown or open)."""
        return [OrderView(o) for o in self._ai.open_orders() if self._owns(o.client_order_id)]

    def order_by_id(self, order_id: str) -> OrderView | None:
        o = self._ai.order_by_id(order_id)
        return OrderView(o) if o is not None and self._owns(o.client_order_id) else None

    @property
    def trades(self) -> tuple[TradeView, ...]:
        """The fills of the strategy's own orders on this asset, oldest first."""
        orders = self._ai.orders
        return tuple(
            TradeView.of(t, orders.get(t.client_order_id) if t.client_order_id else None)
            for t in self._ai.trades
            if self._owns(t.client_order_id)
        )

    @property
    def ohlcv(self) -> Mapping[str, CandlesView]:
        """Timeframe -> candles: the config's timeframes (empty until the feed delivers); another is a ``KeyError``
        naming them."""
        return _Timeframes(self._ai, self._timeframes)

    def candles(self, timeframe: str) -> CandlesView:
        """The candles of ``timeframe`` (empty until the feed delivers; not one of the config's: ``KeyError``)."""
        return self.ohlcv[timeframe]
