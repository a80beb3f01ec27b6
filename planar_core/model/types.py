"""Plain data the engine keeps per asset. Amounts are floats as ccxt returns them."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import TYPE_CHECKING

from .candles import Candles
from .status import OrderStatus

if TYPE_CHECKING:
    from .answers import Adjustment
    from .refusals import Refusal

Json = dict[str, object]
"""A JSON-shaped mapping read field by field: an event's fields, a raw ccxt structure (order, trade, balance,
position, market), a persisted record. ``object`` values, not ``Any``: a reader converts what it uses."""


class OrderType(str, Enum):
    """The order types a strategy may place: market, limit (good-till-cancelled, immediate-or-cancel,
    fill-or-kill, post-only) and the conditional ones.

    Conditional orders wait on the exchange for their ``trigger_price``: a stop buys at or above it and sells at
    or below it (a stop-loss of a short, of a long), a take-profit the other way round; ``*_LIMIT`` places a GTC
    limit at ``price`` when triggered, the others a market order. ``TRAILING_STOP`` is a market order that trails
    the best price since placement (or since ``trigger_price``, its activation price) by ``trailing_percent``."""

    MARKET = "market"
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    POST_ONLY = "post_only"
    STOP_MARKET = "stop_market"
    STOP_LIMIT = "stop_limit"
    TAKE_PROFIT_MARKET = "take_profit_market"
    TAKE_PROFIT_LIMIT = "take_profit_limit"
    TRAILING_STOP = "trailing_stop"

    @property
    def is_limit(self) -> bool:
        """Carries a limit price."""
        return self in _LIMITS

    @property
    def is_conditional(self) -> bool:
        return self in _CONDITIONAL

    @property
    def trigger(self) -> ConditionalKind | None:
        """What a conditional type waits for, None for the others."""
        return conditional_kind(self)


class ConditionalKind(StrEnum):
    """What a conditional order waits for before it becomes a market or limit order."""

    STOP = "stop"  # a stop-loss: triggers when the price moves against the position
    TAKE = "take"  # a take-profit: triggers when the price reaches the target
    TRAILING = "trailing"  # a trailing stop: follows the best price by a percentage


def conditional_kind(order_type: OrderType) -> ConditionalKind | None:
    """The conditional kind of an order type (None: not conditional)."""
    if order_type in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT):
        return ConditionalKind.STOP
    if order_type in (OrderType.TAKE_PROFIT_MARKET, OrderType.TAKE_PROFIT_LIMIT):
        return ConditionalKind.TAKE
    if order_type is OrderType.TRAILING_STOP:
        return ConditionalKind.TRAILING
    return None


_LIMITS = frozenset({OrderType.GTC, OrderType.IOC, OrderType.FOK, OrderType.POST_ONLY, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_LIMIT})
_CONDITIONAL = frozenset(
    {OrderType.STOP_MARKET, OrderType.STOP_LIMIT, OrderType.TAKE_PROFIT_MARKET, OrderType.TAKE_PROFIT_LIMIT, OrderType.TRAILING_STOP}
)


class PositionSide(str, Enum):
    """One-way mode has one position per asset (BOTH); hedge mode a LONG and a SHORT one."""

    BOTH = "both"
    LONG = "long"
    SHORT = "short"


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"


class Pending:
    """The answer "accepted": the exchange accepted the order (its acknowledgement or a look-up says it is booked)
    but no fill was seen (yet). A singleton, falsy (no fill in hand): test it with ``is PENDING``."""

    _instance: "Pending | None" = None

    def __new__(cls) -> "Pending":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "PENDING"

    def __bool__(self) -> bool:
        return False


PENDING = Pending()


class Unknown:
    """``call()``'s answer when the outcome is not known: the request may or may not have booked the order (a
    timeout, a 5xx, a lost acknowledgement, the placement budget spent before the exchange said). The order is in
    status ``unknown``; the background resolver keeps asking the exchange by client order id, and its verdict (found:
    the order's real status; proven absent: ``failed``) reaches the strategy through ``on_order_update``
    (``order.verdict``), the log and the run's counts.

    A singleton of its own, never equal to ``PENDING`` (which means *accepted*): test it with ``is UNKNOWN``. Falsy,
    like ``PENDING`` (no fill in hand), so ``if answer:`` still means "filled"; ``answer is None`` still means
    "refused, nothing was booked"."""

    _instance: "Unknown | None" = None

    def __new__(cls) -> "Unknown":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        return False


UNKNOWN = Unknown()


@dataclass
class Trade:
    """A fill of one of our orders (or the fills of it seen so far, aggregated)."""

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
    emulated: bool = False  # derived from order-update diffs, no trade event seen
    realized_pnl: float | None = None


OrderAnswer = Trade | Pending | Unknown | None
"""What ``call()`` answers: a ``Trade`` (fills seen), ``PENDING`` (accepted, no fill seen yet), ``UNKNOWN`` (the
outcome is not known yet; the verdict comes later through ``on_order_update``) or ``None`` (refused: nothing was
booked)."""


@dataclass
class Order:
    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    amount: float
    price: float | None
    reduce_only: bool = False
    id: str | None = None
    status: OrderStatus = OrderStatus.INTENT  # moves only along model.status.TRANSITIONS
    filled: float = 0.0
    cost: float = 0.0
    timestamp: int = 0
    trades: list[Trade] = field(default_factory=list)
    _event: asyncio.Event | None = field(default=None, init=False, repr=False, compare=False)
    sent_at: float | None = None  # wall time (s) of the last create request, for the absence proof
    not_found: int = 0  # consecutive look-ups by client id that answered "no such order" since sent_at
    trigger_price: float | None = None  # conditional orders: the trigger (trailing: the activation price)
    trailing_percent: float | None = None
    position_side: "PositionSide" = PositionSide.BOTH
    triggered: bool = False  # a conditional order whose trigger fired (its order is working on the book)
    brackets: tuple[float | None, float | None] = (None, None)  # stop-loss, take-profit placed when this entry fills
    parent: str | None = None  # the entry a bracket order protects
    # an order whose outcome was unknown, once decided: "found" (on the exchange) or "absent" (proven never booked)
    verdict: str | None = None
    resent_as: str | None = None  # order_monitoring.resend_absent: the client id it was re-sent under
    resend_of: str | None = None  # the client id of the proven-absent order this one re-sends
    refusal: "Refusal | None" = None  # booked, then refused (by the exchange, or not journaled): why, typed
    adjustment: "Adjustment | None" = None  # what the engine changed before sending it (sizing, rounding); None: as asked
    filled_at: int | None = None  # the engine's clock (ms) when it last learned the filled amount grew
    booked_before: float = 0.0  # filled before this run and booked by an earlier one (its trades not attached here)

    def __post_init__(self) -> None:
        self.status = OrderStatus(self.status)

    @property
    def event(self) -> asyncio.Event:
        """Set by each change of the order (``changed``), for ``call(waitfor=...)`` to wait on. Made on the first
        wait: most orders are never waited on, and an event (with its waiters' deque) was most of an order's memory
        in a long backtest. A waiter clears it before waiting, so no change before that is lost."""
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    def changed(self) -> None:
        """Wake whoever waits on this order (nobody, when no event was made)."""
        if self._event is not None:
            self._event.set()
        self.position_side = PositionSide(self.position_side)

    @property
    def is_open(self) -> bool:
        """Possibly live on the exchange: intent, unknown or open."""
        return self.status.is_open

    @property
    def average(self) -> float | None:
        return self.cost / self.filled if self.filled else None

    @property
    def booked(self) -> float:
        """The filled amount the strategy's record holds: this run's trades, and what an earlier run booked."""
        return sum(t.amount for t in self.trades) + self.booked_before


@dataclass
class Balance:
    free: float = 0.0
    used: float = 0.0
    total: float = 0.0


@dataclass
class Position:
    """Contracts of the open position (signed: > 0 long, < 0 short)."""

    contracts: float = 0.0
    entry_price: float = 0.0
    unrealized_pnl: float = 0.0  # as the exchange last reported it
    leverage: float | None = None
    timestamp: int = 0
    unrealized_known: bool = False  # the exchange's report carried an unrealized PnL

    @property
    def side(self) -> str | None:
        return None if not self.contracts else ("long" if self.contracts > 0 else "short")


class OrderMap(dict[str, Order]):
    """An asset's orders by client order id, with the possibly-live ones indexed: ``open_orders()`` runs on every
    order call, watcher step and risk check, and an asset keeps every order it ever placed."""

    def __init__(self) -> None:
        super().__init__()
        self._open: dict[str, Order] = {}
        self._exits: dict[str, Order] = {}  # the open ones that are an entry's exits (bracket housekeeping reads them)

    def __setitem__(self, cid: str, order: Order) -> None:
        super().__setitem__(cid, order)
        self.track(order)

    def __delitem__(self, cid: str) -> None:
        super().__delitem__(cid)
        self._open.pop(cid, None)
        self._exits.pop(cid, None)

    def clear(self) -> None:
        super().clear()
        self._open.clear()
        self._exits.clear()

    def track(self, order: Order) -> None:
        """Index ``order`` again if it is open (a status can come back from 'failed' when the exchange says so)."""
        if order.is_open and self.get(order.client_order_id) is order:
            self._open[order.client_order_id] = order
            if order.parent is not None:
                self._exits[order.client_order_id] = order

    def forget_closed(self, keep: int) -> int:
        """Forget the oldest orders that are no longer open so that ``keep`` of them remain; returns how many went.
        An order forgotten is one the engine no longer holds, as one from an earlier run: a late report of it is
        met as such (startup_sync's adoption, the ledger's restored fills)."""
        extra = len(self) - len(self.open()) - keep
        gone = [cid for cid, o in self.items() if not o.is_open][: max(0, extra)]
        for cid in gone:
            del self[cid]
        return len(gone)

    def open(self) -> list[Order]:
        return _still_open(self._open)

    def recent(self, n: int) -> list[Order]:
        """The ``n`` orders placed (or adopted) last, newest first."""
        return list(itertools.islice(reversed(self.values()), n))

    def open_exits(self) -> list[Order]:
        """The open orders that are exits of an entry (``parent`` set): read on every balance update."""
        return _still_open(self._exits)

    def any_open(self) -> bool:
        """Whether an order is open, without listing them (a watcher asks on every step)."""
        done = []
        found = False
        for cid, o in self._open.items():
            if o.is_open:
                found = True
                break
            done.append(cid)
        for cid in done:
            del self._open[cid]
        return found


def _still_open(index: dict[str, Order]) -> list[Order]:
    """The index's orders that are still open; the others leave it (a status changes without telling the map)."""
    done = [cid for cid, o in index.items() if not o.is_open]
    for cid in done:
        del index[cid]
    return list(index.values())


@dataclass
class AssetInstance:
    """Everything the strategy tracks for one symbol of its universe."""

    symbol: str
    market: Json
    max_position: float | None = None
    risk_per_trade: float | None = None
    orders: OrderMap = field(default_factory=OrderMap)  # by client order id
    trades: list[Trade] = field(default_factory=list)
    positions: dict[PositionSide, Position] = field(default_factory=dict)  # BOTH (one-way) or LONG and SHORT (hedge)
    hedged: bool = False  # the account is in hedge mode (futures)
    margin_mode: str | None = None  # "isolated" | "cross", once set on the exchange
    ohlcv: dict[str, Candles] = field(default_factory=dict)  # timeframe -> candles (numpy-backed, see model/candles.py)
    last_price: float | None = None

    @property
    def base(self) -> str:
        return str(self.market["base"])

    @property
    def quote(self) -> str:
        return str(self.market["quote"])

    @property
    def is_margin(self) -> bool:
        return bool(self.market.get("contract"))

    @property
    def position(self) -> Position:
        """One-way mode: the position. Hedge mode: the net of the long and short positions (a view: the sides are
        ``position_of(PositionSide.LONG)`` and ``position_of(PositionSide.SHORT)``)."""
        if not self.hedged:
            return self.positions.setdefault(PositionSide.BOTH, Position())
        long, short = self.position_of(PositionSide.LONG), self.position_of(PositionSide.SHORT)
        net = long.contracts + short.contracts
        main = long if abs(long.contracts) >= abs(short.contracts) else short
        return Position(
            net,
            main.entry_price if net else 0.0,
            long.unrealized_pnl + short.unrealized_pnl,
            main.leverage or long.leverage or short.leverage,
            max(long.timestamp, short.timestamp),
            unrealized_known=long.unrealized_known or short.unrealized_known,
        )

    @position.setter
    def position(self, p: Position) -> None:
        self.positions[PositionSide.BOTH] = p

    def position_of(self, side: "PositionSide") -> Position:
        """The position of one side (BOTH in one-way mode; LONG, SHORT in hedge mode)."""
        return self.positions.setdefault(PositionSide(side), Position())

    def open_positions(self) -> list[tuple["PositionSide", Position]]:
        return [(side, p) for side, p in self.positions.items() if p.contracts]

    def open_orders(self) -> list[Order]:
        return self.orders.open()

    def candles(self, timeframe: str) -> Candles:
        """The candles of ``timeframe`` (an empty buffer until the feed delivers)."""
        got = self.ohlcv.get(timeframe)
        if got is None:  # not setdefault: a new buffer is 12 000 floats, built only when missing
            got = self.ohlcv[timeframe] = Candles()
        return got

    def order_by_id(self, order_id: str) -> Order | None:
        for o in self.orders.values():
            if o.id == order_id:
                return o
        return None


@dataclass
class OrderRequest:
    """An order after the local checks: what will be sent (amount and price already rounded to the market)."""

    symbol: str
    type: OrderType
    side: Side
    amount: float
    price: float | None
    reduce_only: bool
    reference_price: float  # the price the order is expected to execute at (limit price, trigger or last)
    trigger_price: float | None = None
    trailing_percent: float | None = None
    position_side: PositionSide = PositionSide.BOTH
    adjustment: "Adjustment | None" = None  # what the checks changed from what was asked (None: sent as asked)

    @property
    def notional(self) -> float:
        return self.amount * self.reference_price
