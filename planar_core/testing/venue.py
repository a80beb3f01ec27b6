"""An in-memory ``Venue`` (model/venue.py) and a hand-moved clock: the engine runs on them with no socket and no sleep.

The engine's own unit tests use them as they are (tests/unit/fake_venue.py); a strategy's tests use them through
``planar_core.testing.LogicTest``, which adds an exchange's account behaviour on top (testing/exchange.py).

The venue keeps what a test needs to drive the engine and to check what the engine asked:

* orders, booked simply: ``create_order`` books an open order under a fresh exchange id; ``cancel_order`` /
  ``cancel_orders`` / ``cancel_every_order`` end it; ``fetch_order`` / ``open_orders`` / ``order_history`` read the
  book; ``fill`` (the test's) executes part of an order and returns the fill report;
* balances and positions the test sets (``set_balance``, ``set_position``), answered by ``balances`` /
  ``positions`` as complete snapshots;
* streams fed from asyncio queues the test controls (``push_order``, ``push_fill``, ``push_balance``,
  ``push_positions``, ``push_ohlcv``); what a push delivers also lands in the stream caches (``cached_*``), as
  a ccxt client's would. A pushed report without a stamp gets one from the venue's sequence (``next_seq``);
* failures injected per operation (``fail_next``), and every request recorded in ``calls``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace

from ..exchange.errors import ExchangeOpError, OrderNotFound
from ..model.sink import EventSink, MemorySink
from ..model.stamp import Stamp
from ..model.status import OrderStatus
from ..model.types import OrderType, PositionSide, Side
from ..model.venue import (
    AssetBalance,
    BalanceReport,
    CancelResult,
    Capabilities,
    Fee,
    FillReport,
    FundingPayment,
    Market,
    MarketType,
    OrderRef,
    OrderReport,
    PlaceExitList,
    PlaceOrder,
    PositionReport,
    Ticker,
)


class TestClock:
    """A clock that moves only when the test says (``advance``); wall and monotonic time move together."""

    __test__ = False  # not a pytest test class

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.mono = 1_000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds

    @property
    def ms(self) -> int:
        return int(self.now * 1000)


def market(symbol: str, contract: bool = False, price_step: float = 0.01, amount_step: float = 0.00001) -> Market:
    """A market in ccxt's unified shape (what a venue's ``markets`` holds)."""
    base, _, rest = symbol.partition("/")
    quote, _, settle = rest.partition(":")
    return {
        "id": base + quote,
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "settle": settle or None,
        "contract": contract,
        "linear": contract or None,
        "spot": not contract,
        "active": True,
        "precision": {"price": price_step, "amount": amount_step},
        "limits": {"amount": {"min": amount_step, "max": 9000.0}, "cost": {"min": 5.0}, "price": {"min": price_step}},
    }


@dataclass
class Call:
    """One request the engine made of the venue: the operation's name and its arguments."""

    op: str
    args: tuple[object, ...]


@dataclass
class _Streams:
    orders: asyncio.Queue[list[OrderReport]] = field(default_factory=asyncio.Queue)
    fills: asyncio.Queue[list[FillReport]] = field(default_factory=asyncio.Queue)
    balance: dict[str, asyncio.Queue[BalanceReport]] = field(default_factory=lambda: defaultdict(asyncio.Queue))
    positions: asyncio.Queue[list[PositionReport]] = field(default_factory=asyncio.Queue)
    ohlcv: dict[tuple[str, str], asyncio.Queue[list[list[float]]]] = field(default_factory=lambda: defaultdict(asyncio.Queue))


class FakeVenue:
    """The ``Venue`` protocol in memory (see the module)."""

    def __init__(self, symbols: Sequence[str] = ("BTC/USDT", "ETH/USDT"), clock: TestClock | None = None, hedged: bool = False) -> None:
        self.name = "fake"
        self.sink: EventSink = MemorySink()  # the engine hands in its own
        self.caps = Capabilities(
            kline_closed_flag=True,
            api_permissions=True,
            order_types=frozenset(t.value for t in OrderType),
            trailing_percent={"swap": (0.1, 10.0)},
            hedge_mode=True,
            margin_modes=frozenset({"cross", "isolated"}),
        )
        self.clock = clock or TestClock()
        self._markets: dict[str, Market] = {s: market(s, contract=":" in s) for s in symbols}
        self._seq = itertools.count(1)
        self._ids = itertools.count(1001)
        self._trade_ids = itertools.count(1)
        self.orders: dict[str, OrderReport] = {}  # exchange id -> its current report
        self.fills: list[FillReport] = []
        self.balance_rows: dict[str, dict[str, AssetBalance]] = {"spot": {}, "swap": {}}
        self.position_rows: dict[tuple[str, PositionSide], PositionReport] = {}
        self.prices: dict[str, float] = {}
        self.candles: dict[tuple[str, str], list[list[float]]] = {}
        self.funding: list[FundingPayment] = []
        self.funding_rows: int | None = None  # the most rows one funding read answers (oldest first), as exchanges cap them
        self.hedged = hedged
        self.leverage: dict[str, float] = {}
        self.margin_mode: dict[str, str] = {}
        self.withdraw = False
        self.calls: list[Call] = []
        self.fail_next: dict[str, list[ExchangeOpError]] = defaultdict(list)
        self.streams = _Streams()
        self._cache_orders: dict[str, dict[str, OrderReport]] = defaultdict(dict)
        self._cache_changed: dict[str, dict[str, OrderReport]] = {}  # by symbol: changed since the last read
        self._cache_fills: dict[str, list[FillReport]] = defaultdict(list)
        self._cache_balance: dict[str, BalanceReport] = {}
        self._cache_positions: dict[tuple[str, PositionSide], PositionReport] = {}
        self.closed = False
        self.stream_resets = 0

    # ------------------------------------------------------------------ test controls
    def _op(self, op: str, *args: object) -> None:
        self.calls.append(Call(op, args))
        if self.fail_next[op]:
            raise self.fail_next[op].pop(0)

    def ops(self, op: str) -> list[tuple[object, ...]]:
        """The arguments of every ``op`` request the engine made."""
        return [c.args for c in self.calls if c.op == op]

    def stamp(self, ms: int | None = None, assets: Sequence[str] | None = None) -> Stamp:
        """A stream message's stamp: its place on the wire now."""
        return Stamp(self.next_seq(), ms, frozenset(assets) if assets is not None else None)

    def book(self, report: OrderReport) -> OrderReport:
        """Put an order on the book as it is (an order someone else placed, a forced close)."""
        oid = report.id or str(next(self._ids))
        report = replace(report, id=oid, timestamp=report.timestamp or self.clock.ms)
        self.orders[oid] = report
        return report

    def fill(self, order_id: str, amount: float, price: float, fee: float = 0.0, realized_pnl: float | None = None) -> FillReport:
        """Execute ``amount`` of a booked order at ``price``; the order's report is updated (closed when done)."""
        o = self.orders[order_id]
        filled = (o.filled or 0.0) + amount
        cost = (o.filled or 0.0) * (o.average or 0.0) + amount * price
        status = OrderStatus.CLOSED if filled >= (o.amount or 0.0) - 1e-12 else o.status
        f = FillReport(
            o.symbol,
            f"t{next(self._trade_ids)}",
            order_id,
            o.client_order_id,
            o.side,
            amount,
            price,
            self.clock.ms,
            realized_pnl=realized_pnl,
        )
        if fee:
            f = replace(f, fee=Fee(fee, "USDT"))
        self.orders[order_id] = replace(o, filled=filled, average=cost / filled, status=status, updated=self.clock.ms)
        self.fills.append(f)
        return f

    def set_balance(self, market_type: MarketType, currency: str, free: float, used: float = 0.0, available: float | None = None) -> None:
        self.balance_rows[market_type][currency] = AssetBalance(free, used, free + used, available)

    def set_position(self, report: PositionReport) -> None:
        self.position_rows[(report.symbol, report.side)] = report

    def push_order(self, *reports: OrderReport) -> list[OrderReport]:
        out = self.cache_order(*reports)
        self.streams.orders.put_nowait(out)
        return out

    def cache_order(self, *reports: OrderReport) -> list[OrderReport]:
        """Into the stream cache only, as a client applies a message no watch was waiting for."""
        out = [r if r.stamp is not None else replace(r, stamp=self.stamp(r.updated)) for r in reports]
        for r in out:
            key = r.id or r.client_order_id or ""
            self._cache_orders[r.symbol][key] = r
            changed = self._cache_changed.setdefault(r.symbol, {})
            changed.pop(key, None)  # moved to the end: the newest change last, as a stream cache holds it
            changed[key] = r
        return out

    def push_fill(self, *fills: FillReport) -> list[FillReport]:
        out = [f if f.stamp is not None else replace(f, stamp=self.stamp(f.timestamp)) for f in fills]
        for f in out:
            self._cache_fills[f.symbol].append(f)
        self.streams.fills.put_nowait(out)
        return out

    def push_balance(self, report: BalanceReport) -> BalanceReport:
        if report.stamp is None:
            report = replace(report, stamp=self.stamp(report.time_ms, list(report.assets)))
        self._cache_balance[report.market_type] = report
        self.streams.balance[report.market_type].put_nowait(report)
        return report

    def push_positions(self, *reports: PositionReport) -> list[PositionReport]:
        out = [p if p.stamp is not None else replace(p, stamp=self.stamp(p.time_ms)) for p in reports]
        for p in out:
            self._cache_positions[(p.symbol, p.side)] = p
        self.streams.positions.put_nowait(out)
        return out

    def push_ohlcv(self, symbol: str, timeframe: str, candles: list[list[float]]) -> None:
        self.streams.ohlcv[(symbol, timeframe)].put_nowait(candles)

    # ------------------------------------------------------------------ markets and time
    @property
    def markets(self) -> Mapping[str, Market]:
        return self._markets

    async def load_markets(self, timeout: float) -> Mapping[str, Market]:
        self._op("load_markets")
        return self._markets

    def amount_to_precision(self, symbol: str, amount: float) -> float:
        step = float(self._markets[symbol]["precision"]["amount"])  # type: ignore[index]
        return round(int(amount / step + 1e-9) * step, 12)

    def price_to_precision(self, symbol: str, price: float) -> float:
        step = float(self._markets[symbol]["precision"]["price"])  # type: ignore[index]
        return round(round(price / step) * step, 12)

    async def server_time(self, timeout: float) -> int:
        self._op("server_time")
        return self.clock.ms

    async def tickers(self, symbols: Sequence[str], timeout: float) -> dict[str, Ticker]:
        self._op("tickers", tuple(symbols))
        return {s: Ticker(s, self.prices[s]) for s in symbols if s in self.prices}

    async def ticker(self, symbol: str, timeout: float) -> Ticker:
        self._op("ticker", symbol)
        return Ticker(symbol, self.prices.get(symbol))

    async def ohlcv(self, symbol: str, timeframe: str, limit: int, timeout: float) -> list[list[float]]:
        self._op("ohlcv", symbol, timeframe)
        return self.candles.get((symbol, timeframe), [])[-limit:]

    def closed_through(self, symbol: str, timeframe: str) -> int | None:
        return None

    # ------------------------------------------------------------------ orders
    async def create_order(self, order: PlaceOrder, timeout: float) -> OrderReport:
        self._op("create_order", order)
        return self.book(
            OrderReport(
                order.symbol,
                None,
                order.client_order_id,
                OrderStatus.OPEN,
                side=order.side,
                type=order.type,
                amount=order.amount,
                filled=0.0,
                price=order.price,
                trigger_price=order.trigger_price,
                reduce_only=order.reduce_only,
                position_side=order.position_side,
            )
        )

    async def create_exit_list(self, exit_list: PlaceExitList, timeout: float) -> list[OrderReport]:
        self._op("create_exit_list", exit_list)
        x = exit_list
        take = OrderReport(x.symbol, None, x.take_profit_client_id, OrderStatus.OPEN, x.side, OrderType.GTC, x.amount, 0.0, x.take_profit)
        stop = OrderReport(
            x.symbol, None, x.stop_client_id, OrderStatus.OPEN, x.side, OrderType.STOP_MARKET, x.amount, 0.0, trigger_price=x.stop
        )
        return [self.book(take), self.book(stop)]

    def _find(self, symbol: str, ref: OrderRef) -> OrderReport:
        if ref.order_id is not None and ref.order_id in self.orders:
            return self.orders[ref.order_id]
        for o in self.orders.values():
            if o.symbol == symbol and o.client_order_id == ref.client_order_id and ref.client_order_id:
                return o
        raise OrderNotFound(f"no order {ref}")

    async def cancel_order(self, symbol: str, ref: OrderRef, timeout: float, retries: int = 3) -> OrderReport:
        self._op("cancel_order", symbol, ref)
        o = self._find(symbol, ref)
        if o.status is not OrderStatus.OPEN:
            raise OrderNotFound(f"order {o.id} is {o.status}")
        assert o.id is not None
        self.orders[o.id] = replace(o, status=OrderStatus.CANCELED, updated=self.clock.ms)
        return self.orders[o.id]

    async def amend_trigger(self, symbol: str, ref: OrderRef, side: Side, trigger_price: float, timeout: float) -> None:
        self._op("amend_trigger", symbol, ref, trigger_price)
        o = self._find(symbol, ref)
        if o.status is not OrderStatus.OPEN:
            raise OrderNotFound(f"order {o.id} is {o.status}")
        assert o.id is not None
        self.orders[o.id] = replace(o, trigger_price=trigger_price, updated=self.clock.ms)

    async def cancel_orders(self, symbol: str, refs: Sequence[OrderRef], timeout: float, retries: int = 3) -> CancelResult:
        self._op("cancel_orders", symbol, tuple(refs))
        result = CancelResult(requests=1)
        for ref in refs:
            try:
                result.cancelled[ref.client_order_id] = await self.cancel_order(symbol, ref, timeout)
            except OrderNotFound:
                result.not_open.add(ref.client_order_id)
        return result

    async def cancel_every_order(self, symbol: str, timeout: float, retries: int = 3) -> list[OrderReport]:
        self._op("cancel_every_order", symbol)
        done = []
        for oid, o in list(self.orders.items()):
            if o.symbol == symbol and o.status is OrderStatus.OPEN:
                self.orders[oid] = replace(o, status=OrderStatus.CANCELED)
                done.append(self.orders[oid])
        return done

    async def fetch_order(self, symbol: str, ref: OrderRef, timeout: float, retries: int = 3) -> OrderReport:
        self._op("fetch_order", symbol, ref)
        return self._find(symbol, ref)

    async def open_orders(self, symbol: str, timeout: float, retries: int = 3) -> list[OrderReport]:
        self._op("open_orders", symbol)
        return [o for o in self.orders.values() if o.symbol == symbol and o.status is OrderStatus.OPEN]

    async def account_open_orders(self, market_type: MarketType, timeout: float, retries: int = 1) -> list[OrderReport]:
        self._op("account_open_orders", market_type)
        contract = market_type == "swap"
        return [o for o in self.orders.values() if o.status is OrderStatus.OPEN and (":" in o.symbol) == contract]

    async def order_history(self, symbol: str, timeout: float, since: int | None = None, limit: int | None = None) -> list[OrderReport]:
        self._op("order_history", symbol, since, limit)
        rows = [o for o in self.orders.values() if o.symbol == symbol and (since is None or (o.timestamp or 0) >= since)]
        return rows[-limit:] if limit else rows

    async def my_trades(
        self,
        symbol: str,
        timeout: float,
        since: int | None = None,
        until: int | None = None,
        limit: int | None = None,
        order_id: str | None = None,
    ) -> list[FillReport]:
        self._op("my_trades", symbol, since, until, limit)
        rows = [
            f
            for f in self.fills
            if f.symbol == symbol
            and (since is None or (f.timestamp or 0) >= since)
            and (until is None or (f.timestamp or 0) <= until)
            and (order_id is None or f.order_id == order_id)
        ]
        return rows[:limit] if limit else rows

    # ------------------------------------------------------------------ account
    async def balances(self, market_type: MarketType, timeout: float, retries: int = 3) -> BalanceReport:
        self._op("balances", market_type)
        return BalanceReport(market_type, dict(self.balance_rows[market_type]), complete=True, time_ms=self.clock.ms)

    async def positions(self, symbols: Sequence[str] | None, timeout: float, retries: int = 3) -> list[PositionReport]:
        self._op("positions", tuple(symbols or ()))
        return [p for p in self.position_rows.values() if symbols is None or p.symbol in symbols]

    async def set_leverage(self, symbol: str, leverage: float, timeout: float) -> None:
        self._op("set_leverage", symbol, leverage)
        self.leverage[symbol] = leverage

    async def set_margin_mode(self, symbol: str, mode: str, timeout: float) -> None:
        self._op("set_margin_mode", symbol, mode)
        self.margin_mode[symbol] = mode

    async def position_mode(self, timeout: float) -> bool:
        self._op("position_mode")
        return self.hedged

    async def set_position_mode(self, hedged: bool, timeout: float) -> None:
        self._op("set_position_mode", hedged)
        self.hedged = hedged

    async def funding_history(self, since: int | None, timeout: float) -> list[FundingPayment]:
        self._op("funding_history", since)
        rows = sorted((p for p in self.funding if since is None or p.timestamp >= since), key=lambda p: p.timestamp)
        return rows[: self.funding_rows]

    async def can_withdraw(self, timeout: float) -> bool | None:
        self._op("can_withdraw")
        return self.withdraw

    def switch_scope(self, symbol: str) -> str | None:
        return None

    async def arm_switch(self, scope: str, window_ms: int, timeout: float, retries: int = 3) -> int:
        self._op("arm_switch", scope, window_ms)
        return window_ms

    async def disarm_switch(self, scope: str, timeout: float, retries: int = 3) -> None:
        self._op("disarm_switch", scope)

    # ------------------------------------------------------------------ streams
    async def watch_orders(self, symbol: str | None = None) -> list[OrderReport]:
        while True:
            batch = [r for r in await self.streams.orders.get() if symbol is None or r.symbol == symbol]
            if batch:
                return batch

    async def watch_fills(self, symbol: str | None = None) -> list[FillReport]:
        while True:
            batch = [f for f in await self.streams.fills.get() if symbol is None or f.symbol == symbol]
            if batch:
                return batch

    async def watch_balance(self, market_type: MarketType) -> BalanceReport:
        return await self.streams.balance[market_type].get()

    async def watch_positions(self, symbols: Sequence[str] | None = None) -> list[PositionReport]:
        return await self.streams.positions.get()

    async def watch_ohlcv(self, symbol: str, timeframe: str) -> list[list[float]]:
        return await self.streams.ohlcv[(symbol, timeframe)].get()

    def cached_order_updates(self, symbol: str) -> list[OrderReport]:
        changed = self._cache_changed.pop(symbol, {})
        return list(changed.values())

    def cached_fills(self, symbol: str, last: int) -> list[FillReport]:
        return list(self._cache_fills[symbol])[-last:]

    def cached_balance(self, market_type: MarketType) -> BalanceReport | None:
        return self._cache_balance.get(market_type)

    def cached_positions(self) -> list[PositionReport]:
        return list(self._cache_positions.values())

    # ------------------------------------------------------------------ connection
    def next_seq(self) -> int:
        return next(self._seq)

    def urgent(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()  # no cap of its own, and its stream is handed over by the test, never held

    async def reset_streams(self) -> None:
        self.stream_resets += 1

    async def check_user_stream(self) -> None:
        return None

    async def measure_clock(self) -> None:
        return None

    async def close(self) -> None:
        self.closed = True
