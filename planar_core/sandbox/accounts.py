"""Accounts, orders and fills of the sandbox exchange (plain data, no I/O)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, TypeVar, overload

if TYPE_CHECKING:
    from .futures import Income
    from .order_lists import OrderList

ZERO = Decimal(0)
_T = TypeVar("_T")
MARKET_TYPES = frozenset({"MARKET", "STOP_LOSS", "TAKE_PROFIT", "STOP_MARKET", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET", "LIQUIDATION"})
CONDITIONAL_TYPES = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})


@dataclass
class SandboxOrder:
    order_id: int
    client_id: str
    symbol: str
    kind: str  # spot | linear
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT | LIMIT_MAKER | STOP_LOSS[_LIMIT] | TAKE_PROFIT[_LIMIT] (spot conditional types)
    time_in_force: str  # GTC | IOC | FOK | GTX
    price: Decimal  # 0 for market orders
    qty: Decimal
    created_ms: int
    reduce_only: bool = False
    filled: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = "NEW"
    updated_ms: int = 0
    locked: Decimal = ZERO  # spot: funds still locked for the unfilled part
    locked_asset: str = ""
    stop_price: Decimal = ZERO  # spot conditional orders: the trigger price (0: trailing only)
    trailing_delta: int = 0  # spot conditional orders: trailing distance in basis points (0: none)
    trail_ref: Decimal = ZERO  # the extreme price a trailing order measures its retrace from (0: not active yet)
    trail_ms: int = 0  # when the trailing order became active (Binance's trailingTime)
    working: bool = True  # False while a conditional order waits for its trigger (Binance's isWorking)
    working_ms: int = -1
    iceberg_qty: Decimal = ZERO
    position_side: str = "BOTH"  # futures: BOTH (one-way) or LONG/SHORT (hedge mode)
    algo_id: int = 0  # futures: the algo order whose trigger placed this order
    order_list_id: int = 0  # spot: the OCO list this order is a leg of (0: none; -1 on the wire)
    quote_qty: Decimal = ZERO  # spot MARKET: the quoteOrderQty it was sent with (Binance's origQuoteOrderQty)
    strategy_id: int | None = None  # spot: strategyId / strategyType as sent (echoed only when sent)
    strategy_type: int | None = None
    cancel_id: str = ""  # spot: the client id of the request that cancelled it (the stream's ``c`` on CANCELED)
    expiry_reason: str = ""  # spot: why it expired (Binance's expiryReason / ``eR``), when it did

    @property
    def is_market(self) -> bool:
        """Executes as a market order (when working): MARKET and the market-style conditional types."""
        return self.type in MARKET_TYPES

    @property
    def is_conditional(self) -> bool:
        return self.type in CONDITIONAL_TYPES

    @property
    def remaining(self) -> Decimal:
        return self.qty - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.filled if self.filled else ZERO


@dataclass
class AlgoOrder:
    """A USDⓈ-M conditional order held by Binance's Algo Service until its trigger (``/fapi/v1/algoOrder``); on the
    trigger it places an ordinary order (``actual_order_id``) in the matching engine."""

    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    position_side: str
    type: str  # STOP | STOP_MARKET | TAKE_PROFIT | TAKE_PROFIT_MARKET | TRAILING_STOP_MARKET
    time_in_force: str
    qty: Decimal  # 0 with close_position
    price: Decimal  # limit price of STOP / TAKE_PROFIT, else 0
    trigger_price: Decimal  # 0 for a trailing stop without activation price
    working_type: str  # MARK_PRICE | CONTRACT_PRICE
    price_protect: bool
    close_position: bool
    reduce_only: bool
    callback_rate: Decimal  # trailing stops: percent
    created_ms: int
    status: str = "NEW"  # NEW, TRIGGERED, FINISHED, CANCELED, EXPIRED, REJECTED
    updated_ms: int = 0
    trigger_ms: int = 0
    actual_order_id: int = 0
    trail_ref: Decimal = ZERO  # trailing stops: the extreme price since activation (0: not activated)
    reason: str = ""  # why a triggered order could not be placed

    @property
    def is_open(self) -> bool:
        return self.status == "NEW"


class Orders(dict[int, SandboxOrder]):
    """Every order an account ever had (the exchange answers queries about closed ones too), with an index of those
    that may still be open: matching, which runs on every price move, and the open-order queries walk that index, so
    their cost follows the open orders, not the account's history (a year's backtest places tens of thousands)."""

    def __init__(self) -> None:
        super().__init__()
        self._maybe_open: dict[int, SandboxOrder] = {}

    def __setitem__(self, key: int, value: SandboxOrder) -> None:
        super().__setitem__(key, value)
        self._maybe_open[key] = value

    def __delitem__(self, key: int) -> None:
        super().__delitem__(key)
        self._maybe_open.pop(key, None)

    @overload
    def pop(self, key: int, /) -> SandboxOrder: ...
    @overload
    def pop(self, key: int, default: SandboxOrder, /) -> SandboxOrder: ...
    @overload
    def pop(self, key: int, default: _T, /) -> SandboxOrder | _T: ...
    def pop(self, key: int, /, *default: object) -> object:
        self._maybe_open.pop(key, None)
        return super().pop(key, *default)

    def forget_closed(self, keep: int) -> list[SandboxOrder]:
        """Forget the oldest closed orders so that ``keep`` closed ones remain (a simulated venue's bounded
        history); returns those forgotten. Open orders are never forgotten."""
        extra = len(self) - len(self.open()) - keep
        gone: list[SandboxOrder] = []
        for key, order in list(self.items()) if extra > 0 else []:
            if len(gone) >= extra:
                break
            if not order.is_open:
                gone.append(self.pop(key))
        return gone

    def open(self) -> list[SandboxOrder]:
        """The open orders, in the order they were placed (an order never opens again once closed: the index
        forgets it)."""
        out: list[SandboxOrder] = []
        closed: list[int] = []
        for key, order in self._maybe_open.items():
            if order.is_open:
                out.append(order)
            else:
                closed.append(key)
        for key in closed:
            del self._maybe_open[key]
        return out


@dataclass
class Fill:
    trade_id: int
    order_id: int
    client_id: str
    symbol: str
    kind: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time_ms: int
    is_maker: bool
    realized_pnl: Decimal = ZERO

    @property
    def quote_qty(self) -> Decimal:
        return self.price * self.qty


@dataclass
class Position:
    amount: Decimal = ZERO  # signed (one-way mode; in hedge mode LONG is >= 0 and SHORT <= 0)
    entry_price: Decimal = ZERO
    updated_ms: int = 0
    isolated_wallet: Decimal = ZERO  # isolated margin: the part of the wallet this position holds
    realized: Decimal = ZERO  # pre-fee PnL its fills realized, accumulated (ACCOUNT_UPDATE's ``cr``)


@dataclass
class Account:
    api_key: str
    api_secret: str = field(repr=False)
    spot: dict[str, list[Decimal]] = field(default_factory=dict)  # asset -> [free, locked]
    futures_wallet: Decimal = ZERO
    futures_deposit: Decimal = ZERO  # what the futures wallet was funded with (Bybit's unified account adds the change)
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)  # (symbol, BOTH|LONG|SHORT)
    income: list[Income] = field(default_factory=list)  # funding and insurance-clearance rows of /fapi/v1/income
    margin_called: set[tuple[str, str]] = field(default_factory=set)  # positions a MARGIN_CALL has warned about
    leverage: dict[str, int] = field(default_factory=dict)
    margin_type: dict[str, str] = field(default_factory=dict)
    orders: Orders = field(default_factory=Orders)
    algo_orders: dict[int, AlgoOrder] = field(default_factory=dict)
    order_lists: dict[int, OrderList] = field(default_factory=dict)
    by_client_id: dict[tuple[str, str], SandboxOrder] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    fees_paid: dict[str, Decimal] = field(default_factory=dict)
    can_withdraw: bool = False
    hedge_mode: bool = False  # futures dualSidePosition
    listen_keys: set[str] = field(default_factory=set)

    @classmethod
    def create(cls, balances: dict[str, Decimal], api_key: str | None = None, api_secret: str | None = None) -> Account:
        acct = cls(api_key=api_key or secrets.token_hex(32), api_secret=api_secret or secrets.token_hex(32))
        for asset, amount in balances.items():
            acct.spot[asset] = [Decimal(amount), ZERO]
        acct.futures_wallet = acct.futures_deposit = Decimal(balances.get("USDT", ZERO))
        return acct

    def balance(self, asset: str) -> list[Decimal]:
        return self.spot.setdefault(asset, [ZERO, ZERO])

    def open_orders(self, kind: str, symbol: str | None = None) -> list[SandboxOrder]:
        return [o for o in self.orders.open() if o.kind == kind and (symbol is None or o.symbol == symbol)]

    def add_fee(self, asset: str, amount: Decimal) -> None:
        self.fees_paid[asset] = self.fees_paid.get(asset, ZERO) + amount
