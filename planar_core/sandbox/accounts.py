"""Accounts, orders and fills of the sandbox exchange (plain data, no I/O)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from decimal import Decimal

ZERO = Decimal(0)


@dataclass
class SandboxOrder:
    order_id: int
    client_id: str
    symbol: str
    kind: str  # spot | linear
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT | LIMIT_MAKER
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
    amount: Decimal = ZERO  # signed, one-way mode
    entry_price: Decimal = ZERO
    updated_ms: int = 0


@dataclass
class Account:
    api_key: str
    api_secret: str = field(repr=False)
    spot: dict[str, list[Decimal]] = field(default_factory=dict)  # asset -> [free, locked]
    futures_wallet: Decimal = ZERO
    positions: dict[str, Position] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    margin_type: dict[str, str] = field(default_factory=dict)
    orders: dict[int, SandboxOrder] = field(default_factory=dict)
    by_client_id: dict[tuple[str, str], SandboxOrder] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    fees_paid: dict[str, Decimal] = field(default_factory=dict)
    can_withdraw: bool = False
    listen_keys: set[str] = field(default_factory=set)

    @classmethod
    def create(cls, balances: dict[str, Decimal], api_key: str | None = None, api_secret: str | None = None) -> Account:
        acct = cls(api_key=api_key or secrets.token_hex(32), api_secret=api_secret or secrets.token_hex(32))
        for asset, amount in balances.items():
            acct.spot[asset] = [Decimal(amount), ZERO]
        acct.futures_wallet = Decimal(balances.get("USDT", ZERO))
        return acct

    def balance(self, asset: str) -> list[Decimal]:
        return self.spot.setdefault(asset, [ZERO, ZERO])

    def open_orders(self, kind: str, symbol: str | None = None) -> list[SandboxOrder]:
        return [o for o in self.orders.values() if o.kind == kind and o.is_open and (symbol is None or o.symbol == symbol)]

    def add_fee(self, asset: str, amount: Decimal) -> None:
        self.fees_paid[asset] = self.fees_paid.get(asset, ZERO) + amount
