"""What the engine needs from an exchange, in the engine's own terms: the ``Venue`` protocol and the reports it
answers with.

The engine, risk and runner layers talk to an exchange only through this protocol. A venue adapter (one module
under ``exchange/``: Binance through ccxt today, the simulated venue for paper and backtest) turns its wire format
into these reports and its failures into the typed errors of ``exchange.errors``; nothing above the adapter reads a
raw payload (ccxt's ``info``) or calls ccxt. Adding a venue is one adapter module plus one line in the registry the
composition root reads.

Reports are plain frozen values: an order report is what the exchange said about one order at one moment (a
status, amounts, the fills it carried), a fill report one execution, a balance report the balances of one account
section, a position report one position. Each carries the ``Stamp`` that orders it among everything else learned
(``model.stamp``): reports come by two roads (the user stream and REST) and must never be applied out of order.

Markets stay in ccxt's unified market structure (``Market``): it is already a normal form (symbol, base, quote,
settle, precision, limits, contract flags) shared by every ccxt venue, and the simulated venue produces the same
shape. Raw exchange fields (``info``) must not be read from it above the adapter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol, runtime_checkable

from .sink import EventSink
from .stamp import Stamp
from .status import OrderStatus
from .types import ConditionalKind, Json, OrderType, PositionSide, Side, conditional_kind

Market = Json
"""A market in ccxt's unified structure (``symbol``, ``base``, ``quote``, ``settle``, ``precision``, ``limits``,
``contract``/``linear``/``spot`` flags, ``contractSize``). Read its unified keys only, never ``info``."""

MarketType = Literal["spot", "swap"]
"""The account section an operation addresses: spot, or USDⓈ-M perpetual futures (ccxt's ``swap``)."""


class TriggerPhase(StrEnum):
    """Where a conditional order stands: still waiting for its trigger, or triggered (its order is on the book
    or done)."""

    WAITING = "waiting"
    TRIGGERED = "triggered"


ForcedClose = Literal["liquidation", "adl"]


class SwitchKind(StrEnum):
    """How a venue's exchange-side dead-man's switch is kept armed (``Capabilities.switch``), which decides what a
    heartbeat and a clean stop do with it (engine/heartbeat.py)."""

    # a timer per scope that every arming request restarts and a request can stop (Binance USDⓈ-M countdownCancelAll)
    COUNTDOWN = "countdown"
    # armed while a connection of the engine, subscribed to it, lives; the window starts when the last such connection
    # goes, and no request stops it (Bybit's Disconnected Cancel All): a clean stop cannot disarm it
    CONNECTION = "connection"


# ------------------------------------------------------------------------------------------------------ reports
@dataclass(frozen=True, slots=True)
class Fee:
    cost: float
    currency: str | None


@dataclass(frozen=True, slots=True)
class FillReport:
    """One execution of one order, as the exchange reported it."""

    symbol: str
    id: str | None  # the exchange's trade id
    order_id: str | None
    client_order_id: str | None
    side: Side | None
    amount: float
    price: float
    timestamp: int | None  # ms, the exchange's time of the execution
    fee: Fee | None = None
    taker: bool | None = None
    realized_pnl: float | None = None  # futures: the PnL this fill realized, when the venue says
    stamp: Stamp | None = None  # set by the adapter for a user-stream report; None for a REST answer

    @property
    def cost(self) -> float:
        return self.amount * self.price


@dataclass(frozen=True, slots=True)
class OrderReport:
    """What the exchange said about one order at one moment (an acknowledgement, a stream update, a look-up, a
    listing row, a cancel's answer). A field the answer did not carry is None: a cancel's short answer may say
    only the id and the status."""

    symbol: str
    id: str | None  # the exchange's order id; for a futures conditional order still waiting: its algo id
    client_order_id: str | None
    status: OrderStatus | None  # the exchange's status mapped to ours (None: the answer does not say)
    side: Side | None = None
    type: OrderType | None = None  # None: a type the engine does not place (e.g. an exchange's forced close)
    amount: float | None = None
    filled: float | None = None
    price: float | None = None
    average: float | None = None
    trigger_price: float | None = None
    trailing_percent: float | None = None
    reduce_only: bool | None = None
    post_only: bool | None = None
    time_in_force: str | None = None
    position_side: PositionSide | None = None
    timestamp: int | None = None  # ms, when the exchange created the order
    updated: int | None = None  # ms, the exchange's time of this state
    conditional: bool = False  # a conditional order's record (its id names the conditional order, not a book order)
    trigger_phase: TriggerPhase | None = None
    triggered_order_id: str | None = None  # the book order a triggered conditional order placed
    forced_close: ForcedClose | None = None  # the exchange's own close of a position (liquidation, ADL)
    reason: str | None = None  # the exchange's word on why it ended (expiry, self-trade prevention, reject reason)
    fills: tuple[FillReport, ...] = ()  # executions the answer carried (a market order's acknowledgement)
    stamp: Stamp | None = None
    cost: float | None = None  # the filled amount's value in the quote currency (filled x average, as the exchange sums it)

    @property
    def remaining(self) -> float | None:
        if self.amount is None or self.filled is None:
            return None
        return max(0.0, self.amount - self.filled)


@dataclass(frozen=True, slots=True)
class AssetBalance:
    """One currency of one account section. ``total`` is what the account holds (spot) or the wallet balance
    (futures: realized only; unrealized PnL is valued from the positions, never taken from here)."""

    free: float
    used: float
    total: float
    available: float | None = None  # futures: the margin the exchange says new orders may use, when it says


@dataclass(frozen=True, slots=True)
class BalanceReport:
    """The balances of one account section (spot or futures) at one moment."""

    market_type: MarketType
    assets: Mapping[str, AssetBalance]
    complete: bool  # a full snapshot (a currency it does not list is zero), else an update of the listed ones
    time_ms: int | None = None  # the exchange's time of this account state, when it says
    funding: bool = False  # the update was sent because a funding payment was booked
    stamp: Stamp | None = None


@dataclass(frozen=True, slots=True)
class PositionReport:
    """One futures position. ``contracts`` is never negative; ``side`` says which way (LONG/SHORT in hedge mode,
    the direction of the net position in one-way mode, where ``hedged`` is False)."""

    symbol: str
    side: PositionSide
    contracts: float
    entry_price: float | None = None
    mark_price: float | None = None
    unrealized_pnl: float | None = None
    leverage: float | None = None
    margin_mode: Literal["cross", "isolated"] | None = None
    initial_margin: float | None = None
    isolated_wallet: float | None = None
    liquidation_price: float | None = None
    hedged: bool = False
    time_ms: int | None = None  # the exchange's time of its last change
    stamp: Stamp | None = None


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    last: float | None
    bid: float | None = None
    ask: float | None = None
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class FundingPayment:
    symbol: str | None
    amount: float  # in the settle currency; negative: paid
    currency: str | None
    timestamp: int
    id: str | None = None


# ------------------------------------------------------------------------------------------------------ requests
@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceOrder:
    """An order as the venue is asked to place it: every amount and price already rounded to the market, the
    client order id already journaled. Keyword-only so a call site names every option it sets."""

    symbol: str
    type: OrderType
    side: Side
    amount: float
    client_order_id: str
    price: float | None = None
    reduce_only: bool = False
    trigger_price: float | None = None
    trailing_percent: float | None = None
    position_side: PositionSide = PositionSide.BOTH
    extra: Mapping[str, object] = field(default_factory=dict)  # venue options the strategy passed (``params``)
    reference: float | None = None  # the last price where it was checked: the side of it a trigger is on

    @property
    def conditional(self) -> ConditionalKind | None:
        return conditional_kind(self.type)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaceExitList:
    """A one-cancels-the-other exit list (spot): a take-profit limit and a stop on the same amount."""

    symbol: str
    side: Side
    amount: float
    take_profit: float
    stop: float
    take_profit_client_id: str
    stop_client_id: str


@dataclass(frozen=True, slots=True)
class OrderRef:
    """One order as the exchange knows it: by exchange id when known, else by client order id."""

    client_order_id: str
    order_id: str | None = None  # None: its acknowledgement was lost; it is named by its client id
    waiting_trigger: bool = False  # a futures conditional order still waiting for its trigger


@dataclass
class CancelResult:
    """What the exchange said about each order of a ``cancel_orders`` (by client order id)."""

    cancelled: dict[str, OrderReport] = field(default_factory=dict)  # confirmed: the exchange's record of it
    not_open: set[str] = field(default_factory=set)  # no open order by that name (closed, never booked, not visible yet)
    unconfirmed: dict[str, str] = field(default_factory=dict)  # no word either way (why): the next listing tells
    requests: int = 0
    refused: set[str] = field(default_factory=set)  # of the unconfirmed: the exchange refused the cancel (it answered)


# ------------------------------------------------------------------------------------------------------ capabilities
@dataclass(frozen=True)
class Capabilities:
    """What the venue offers beyond the minimum (the engine branches on these, never on a venue's name)."""

    kline_closed_flag: bool  # the candle stream says when a candle is final (else: once a later candle exists)
    api_permissions: bool  # the key's permissions can be read (withdrawal check at start)
    order_types: frozenset[str] = field(default_factory=frozenset)  # OrderType values the venue takes
    trailing_percent: dict[str, tuple[float, float]] = field(default_factory=dict)  # market type -> (min, max) %
    native_oco: frozenset[str] = frozenset()  # market types with a one-cancels-other order list
    hedge_mode: bool = False  # futures positions may be held long and short at once
    margin_modes: frozenset[str] = frozenset()
    batch_cancel: dict[str, int] = field(default_factory=dict)  # market type -> most orders one cancel request takes
    countdown_cancel: frozenset[str] = frozenset()  # market types with an exchange-side dead-man's switch
    switch: SwitchKind = SwitchKind.COUNTDOWN  # how that switch is kept armed, and whether a request can stop it
    # market types whose conditional orders wait in a book of their own (Binance USD-M's Algo Service): a report from
    # the order book is then a triggered order's; elsewhere (Bybit) the book's report says the phase itself
    trigger_books: frozenset[str] = frozenset()
    # market types where a conditional order still waiting can have its trigger moved in place (``amend_trigger``):
    # where the venue has no trailing stop of its own, the engine trails a stop-market order by moving it
    amend_trigger: frozenset[str] = frozenset()
    timeframes: frozenset[str] = frozenset()  # candle intervals the venue serves (ccxt notation: 1m, 4h, 1d...)
    spot_only_timeframes: frozenset[str] = frozenset()  # of those, the ones its futures markets do not serve (Binance: 1s)
    credentials: tuple[str, ...] = ("api_key", "api_secret")  # what its API asks for (a passphrase too: OKX, KuCoin...)

    def supports(self, order_type: OrderType | str, market_type: str = "spot") -> bool:
        value = order_type.value if isinstance(order_type, OrderType) else order_type
        if value == "trailing_stop" and self.trails_by_amending(market_type):
            return True
        if value not in self.order_types:
            return False
        return value != "trailing_stop" or market_type in self.trailing_percent

    def served(self, market_type: str) -> frozenset[str]:
        """The candle intervals the venue serves on ``market_type`` markets."""
        return self.timeframes - self.spot_only_timeframes if market_type != "spot" else self.timeframes

    def trails_by_amending(self, market_type: str) -> bool:
        """No trailing stop of the venue's own on ``market_type``, but a stop-market order whose trigger can be
        moved: the engine's trailing stop (engine/trailing.py)."""
        return market_type not in self.trailing_percent and market_type in self.amend_trigger and "stop_market" in self.order_types


# ------------------------------------------------------------------------------------------------------ the protocol
@runtime_checkable
class Venue(Protocol):
    """One exchange account as the engine uses it. Every request method takes the engine's ``timeout`` (seconds
    for the whole operation, retries included) and retries transient failures itself (``retries`` times, with
    backoff); a permanent failure raises at once. Failures raise ``exchange.errors.ExchangeOpError`` subclasses;
    ``NetworkUncertain`` means the request may have reached the exchange (its outcome is unknown, never failed).
    """

    name: str  # the venue's registry name ("binance", "paper")
    caps: Capabilities
    sink: EventSink  # where it records its API calls (``api_call``): the engine's trace

    # -------------------------------------------------------------- markets and time
    @property
    def markets(self) -> Mapping[str, Market]: ...
    async def load_markets(self, timeout: float) -> Mapping[str, Market]: ...
    def amount_to_precision(self, symbol: str, amount: float) -> float: ...
    def price_to_precision(self, symbol: str, price: float) -> float: ...
    async def server_time(self, timeout: float) -> int: ...
    async def tickers(self, symbols: Sequence[str], timeout: float) -> dict[str, Ticker]: ...
    async def ticker(self, symbol: str, timeout: float) -> Ticker: ...
    async def ohlcv(self, symbol: str, timeframe: str, limit: int, timeout: float) -> list[list[float]]: ...
    def closed_through(self, symbol: str, timeframe: str) -> int | None:
        """The open time of the newest candle the stream said is final (None: the venue does not say)."""
        ...

    # -------------------------------------------------------------- orders
    async def create_order(self, order: PlaceOrder, timeout: float) -> OrderReport: ...
    async def create_exit_list(self, exit_list: PlaceExitList, timeout: float) -> list[OrderReport]: ...
    async def cancel_order(self, symbol: str, ref: OrderRef, timeout: float, retries: int = 3) -> OrderReport: ...
    async def amend_trigger(self, symbol: str, ref: OrderRef, side: Side, trigger_price: float, timeout: float) -> None:
        """Move the trigger of a conditional order still waiting (``Capabilities.amend_trigger``); raises nothing
        when it is already there. Idempotent: the new trigger is absolute."""
        ...

    async def cancel_orders(self, symbol: str, refs: Sequence[OrderRef], timeout: float, retries: int = 3) -> CancelResult:
        """Cancel exactly these orders (never anyone else's), in as few requests as the venue allows."""
        ...

    async def cancel_every_order(self, symbol: str, timeout: float, retries: int = 3) -> list[OrderReport]:
        """Every open order of the account on ``symbol``, whoever placed it: the account e-stop's, and an exclusive
        account's strategy e-stop (``risk.exclusive_account``). Answers the reports of the orders the exchange said
        it cancelled, where its answer names them (Binance USD-M's does not: empty)."""
        ...

    async def fetch_order(self, symbol: str, ref: OrderRef, timeout: float, retries: int = 3) -> OrderReport:
        """The exchange's record of one order; raises ``OrderNotFound`` when the exchange has none by that name."""
        ...

    async def open_orders(self, symbol: str, timeout: float, retries: int = 3) -> list[OrderReport]:
        """Every open order on ``symbol`` (book orders and conditional orders still waiting)."""
        ...

    async def account_open_orders(self, market_type: MarketType, timeout: float, retries: int = 1) -> list[OrderReport]: ...
    async def order_history(self, symbol: str, timeout: float, since: int | None = None, limit: int | None = None) -> list[OrderReport]: ...
    async def my_trades(
        self,
        symbol: str,
        timeout: float,
        since: int | None = None,
        until: int | None = None,
        limit: int | None = None,
        order_id: str | None = None,
    ) -> list[FillReport]: ...

    # -------------------------------------------------------------- account
    async def balances(self, market_type: MarketType, timeout: float, retries: int = 3) -> BalanceReport: ...
    async def positions(self, symbols: Sequence[str] | None, timeout: float, retries: int = 3) -> list[PositionReport]: ...
    async def set_leverage(self, symbol: str, leverage: float, timeout: float) -> None: ...
    async def set_margin_mode(self, symbol: str, mode: str, timeout: float) -> None:
        """Raises nothing when the mode is already set."""
        ...

    async def position_mode(self, timeout: float) -> bool:
        """Whether the account holds futures positions in hedge mode."""
        ...

    async def set_position_mode(self, hedged: bool, timeout: float) -> None:
        """Raises nothing when the mode is already set."""
        ...

    async def funding_history(self, since: int | None, timeout: float) -> list[FundingPayment]: ...
    async def can_withdraw(self, timeout: float) -> bool | None: ...
    # -------------------------------------------------------------- the exchange-side dead-man's switch (caps.switch)
    def switch_scope(self, symbol: str) -> str | None:
        """The name of the exchange-side dead-man's switch that covers ``symbol``'s orders: one switch may cover one
        symbol (a countdown per symbol) or many (every order of a product of the account); None: none covers it."""
        ...

    async def arm_switch(self, scope: str, window_ms: int, timeout: float, retries: int = 3) -> int:
        """Arm (again) the switch ``scope``: unless it is armed again, the exchange cancels its open orders
        ``window_ms`` after this call (a countdown) or after the engine's connection goes (a connection switch).
        Returns the window the exchange applies (ms), which may be the venue's nearest to ``window_ms``."""
        ...

    async def disarm_switch(self, scope: str, timeout: float, retries: int = 3) -> None:
        """Stop the switch ``scope`` (a countdown: nothing is cancelled). A venue whose switch no request stops
        (``SwitchKind.CONNECTION``) raises ``InvalidOrder``."""
        ...

    # -------------------------------------------------------------- streams (each call waits for the next update)
    async def watch_orders(self, symbol: str | None = None) -> list[OrderReport]: ...
    async def watch_fills(self, symbol: str | None = None) -> list[FillReport]: ...
    async def watch_balance(self, market_type: MarketType) -> BalanceReport: ...
    async def watch_positions(self, symbols: Sequence[str] | None = None) -> list[PositionReport]: ...
    async def watch_ohlcv(self, symbol: str, timeframe: str) -> list[list[float]]: ...

    # what the streams delivered last (the adapter's cache), for catching up after a gap
    def cached_order_updates(self, symbol: str) -> list[OrderReport]:
        """The orders of ``symbol`` whose cached state changed since the last call, oldest change first. The engine
        asks after every stream event and an account may hold a thousand open orders: the cost must follow what
        changed, not what the cache holds."""
        ...

    def cached_fills(self, symbol: str, last: int) -> list[FillReport]:
        """The newest fills of ``symbol`` among the ``last`` the cache holds."""
        ...

    def cached_balance(self, market_type: MarketType) -> BalanceReport | None: ...
    def cached_positions(self) -> list[PositionReport]: ...

    # -------------------------------------------------------------- connection
    def next_seq(self) -> int:
        """The next number of the one sequence every account report is placed in (``model.stamp``): the engine takes
        one when a REST snapshot's request leaves and when it learns something the venue did not stamp."""
        ...

    def urgent(self) -> AbstractContextManager[None]:
        """The block is an emergency stop, and so are the tasks it starts. Its requests are never delayed by the
        engine's own caps (the exchange's limits still pace them). The user stream's reports wait until the block
        ends: in arrival order, each keeping the place in the sequence it took on arrival, then handled one per turn
        of the event loop (never held longer than a bound the venue sets). The stop acts on its requests' answers,
        and a hundred cancels are reported again by a hundred stream messages: handled in between, their parsing
        delayed it. A venue with neither runs the block as it is."""
        ...

    async def reset_streams(self) -> None:
        """Close every websocket on purpose (a reconnect): pending watches fail, the next watch call subscribes
        again."""
        ...

    async def check_user_stream(self) -> None: ...
    async def measure_clock(self) -> None: ...
    async def close(self) -> None: ...
