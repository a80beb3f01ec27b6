"""``ExchangeVenue``: the in-memory ``FakeVenue`` with an exchange's account behind it, for a strategy's tests.

``FakeVenue`` books orders and answers what a test set; it never moves a balance, because the engine's own tests
set every report by hand. A strategy's test wants the account to behave as an exchange's does, without writing
a single report, so this venue adds what the exchange does after an order:

* **A market order fills at once, in full, at the last price** (the last candle's close the test gave, or the
  ``prices`` it started with). A user who sends a market order expects it to fill; the exchange's answer to the
  request says "accepted" and the fill follows on the user stream, as it does live (``ctx.call(..., MARKET)``
  answers the fill when its ``waitfor`` is above 0, ``PENDING`` with ``waitfor=0``).
* **Nothing else fills on its own**: limit, post-only, IOC/FOK and conditional orders rest until the test fills
  them (``execute``, ``LogicTest.fill``). There is no order book to match against; a test says what the market did.
* **Funds move as the exchange moves them.** Spot: a resting limit order locks what it may spend (quote for a buy
  at its price, base for a sell) in ``used``; a fill pays from the lock (a buy filled below its limit gets the
  rest back), a cancel releases what is left; fees are taken in the quote currency. Futures: one-way or hedge
  positions with an average entry price, realized PnL and fees booked in the wallet, the positions' initial margin
  (notional / leverage) in ``used``. Conditional orders lock nothing (a simplification: the exchange locks a spot
  stop's coins).
* **A spot entry's exits are one OCO list, as on Binance** (``native_oco``): a take-profit limit and a stop on the
  same amount, holding one lock of what they sell between them; when either fills (even in part) the other
  expires, and cancelling either cancels both, each change streamed to the engine. (Futures exits are two orders
  the engine retires itself, as live.)
* **The exchange refuses what it would refuse**: a spot order the free balance cannot pay for, a futures order the
  free margin cannot carry (``InsufficientFunds``), a post-only order that would take at the last price
  (``InvalidOrder``, Binance's -2010). The engine answers ``None`` for them, as live.
* **Every change reaches the engine as the user stream would bring it**, one message at a time after the request
  that caused it has been answered: the order's execution report (its new state and the trade, in one message,
  as Binance sends it), then the account update that includes it (balances; positions on futures). So
  ``on_order_update`` and ``on_fill`` run as live, and ``on_fill`` sees the balance that includes its fill.

The messages are handed to the engine with ``loop.call_soon`` (``pending`` counts those not delivered yet), never
from inside the request being answered: an acknowledgement is always applied before the stream's report of the
same order, as it usually is live.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from ..exchange.errors import InsufficientFunds, InvalidOrder
from ..model.status import OrderStatus
from ..model.types import OrderType, PositionSide, Side
from ..model.venue import (
    AssetBalance,
    BalanceReport,
    Fee,
    FillReport,
    MarketType,
    OrderRef,
    OrderReport,
    PlaceExitList,
    PlaceOrder,
    PositionReport,
    TriggerPhase,
)
from .venue import FakeVenue, TestClock

if TYPE_CHECKING:
    from ..engine.strategy import Strategy

EPS = 1e-12


class ExchangeVenue(FakeVenue):
    """A ``FakeVenue`` whose account behaves like an exchange's (see the module); ``connect`` names the engine its
    stream messages go to."""

    def __init__(
        self, symbols: Sequence[str], clock: TestClock, *, hedged: bool = False, default_leverage: float = 1.0, fee_rate: float = 0.0
    ) -> None:
        super().__init__(symbols, clock=clock, hedged=hedged)
        self.default_leverage = default_leverage
        self.fee_rate = fee_rate  # fraction of each fill's value taken as its fee (0: none)
        self.engine: Strategy | None = None
        self.pending = 0  # stream messages scheduled and not delivered yet
        self.failures: list[BaseException] = []  # what delivering a message raised (the harness re-raises it)
        self._locked: dict[str, float] = {}  # exchange order id -> funds its rest still locks (quote: buy, base: sell)
        self._net: dict[tuple[str, PositionSide], tuple[float, float]] = {}  # futures: (symbol, side) -> (signed contracts, entry)
        self._other_leg: dict[str, str] = {}  # exchange id of an OCO leg -> the other leg's
        self.caps = replace(self.caps, native_oco=frozenset({"spot"}))

    def connect(self, engine: Strategy) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ the account
    def market_type(self, symbol: str) -> MarketType:
        return "swap" if self._markets[symbol].get("contract") else "spot"

    def _pair(self, symbol: str) -> tuple[str, str, str]:
        """Base, quote and the currency that pays (spot: the quote; futures: the settle currency)."""
        m = self._markets[symbol]
        base, quote = str(m["base"]), str(m["quote"])
        return base, quote, str(m.get("settle") or quote)

    def fund(self, market_type: MarketType, balances: Mapping[str, float]) -> None:
        """The account's starting balances: all free (futures: the wallet)."""
        for currency, amount in balances.items():
            self.set_balance(market_type, currency, float(amount), available=float(amount) if market_type == "swap" else None)

    def _row(self, market_type: MarketType, currency: str) -> AssetBalance:
        return self.balance_rows[market_type].get(currency) or AssetBalance(0.0, 0.0, 0.0)

    def _move(self, currency: str, free: float = 0.0, used: float = 0.0) -> None:
        """Spot: change a currency's free and used amounts (its total follows)."""
        row = self._row("spot", currency)
        f, u = row.free + free, row.used + used
        f, u = (0.0 if abs(f) < EPS else f), (0.0 if abs(u) < EPS else u)
        self.balance_rows["spot"][currency] = AssetBalance(f, u, f + u)

    def _wallet(self, currency: str, change: float = 0.0) -> None:
        """Futures: book ``change`` in the wallet and recompute the margin the positions hold."""
        row = self._row("swap", currency)
        total = row.total + change
        held = [(sym, c, entry) for (sym, _), (c, entry) in self._net.items() if self._pair(sym)[2] == currency]
        used = sum((abs(c) * entry / self.leverage.get(sym, self.default_leverage) for sym, c, entry in held), 0.0)
        self.balance_rows["swap"][currency] = AssetBalance(total - used, used, total, available=total - used)

    async def balances(self, market_type: MarketType, timeout: float, retries: int = 3) -> BalanceReport:
        """The REST snapshot, without the exchange's time: stream messages stamped in the same millisecond of the
        test clock are newer than it (the engine lets a same-millisecond snapshot win over a stream message, since
        a live stream may lag behind REST; here nothing lags, and the clock moves only when the test says)."""
        return replace(await super().balances(market_type, timeout, retries), time_ms=None)

    # ------------------------------------------------------------------ orders
    def _locks(self, order: PlaceOrder) -> bool:
        """Spot limit orders lock their funds while they rest (conditional ones, a simplification, lock nothing)."""
        return order.type.is_limit and not order.type.is_conditional and self.market_type(order.symbol) == "spot"

    def _refusal(self, order: PlaceOrder) -> Exception | None:
        """What the exchange would refuse this order for, or None."""
        last = self.prices.get(order.symbol)
        if order.type is OrderType.POST_ONLY and last is not None and order.price is not None:
            takes = order.price >= last if order.side is Side.BUY else order.price <= last
            if takes:
                return InvalidOrder("Order would immediately match and take.", code=-2010)
        price = order.price if order.type.is_limit and order.price is not None else last
        base, quote, settle = self._pair(order.symbol)
        if self.market_type(order.symbol) == "spot":
            if order.type.is_conditional:
                return None
            if order.side is Side.BUY:
                need, have, cur = order.amount * (price or 0.0) * (1 + self.fee_rate), self._row("spot", quote).free, quote
            else:
                need, have, cur = order.amount, self._row("spot", base).free, base
        else:
            closes_side = self.hedged and (order.side is Side.SELL) == (order.position_side is PositionSide.LONG)
            if order.reduce_only or closes_side or order.type.is_conditional:
                return None
            lev = self.leverage.get(order.symbol, self.default_leverage)
            need, have, cur = order.amount * (price or 0.0) / lev, self._row("swap", settle).free, settle
        if need > have + EPS:
            return InsufficientFunds(
                f"Account has insufficient balance for requested action: {cur} needs {need:.8g}, free {have:.8g}", code=-2010
            )
        return None

    async def create_order(self, order: PlaceOrder, timeout: float) -> OrderReport:
        report = await super().create_order(order, timeout)  # the request recorded, an injected failure raised, booked
        oid = report.id
        assert oid is not None
        refusal = self._refusal(order)
        if refusal is not None:
            del self.orders[oid]
            raise refusal
        if order.type.is_conditional and self.market_type(order.symbol) == "swap":
            # USD-M: a conditional order waits in a book of its own under its client id (Binance's Algo Service)
            report = self.orders[oid] = replace(report, conditional=True, trigger_phase=TriggerPhase.WAITING)
        if order.type is OrderType.MARKET:
            last = self.prices.get(order.symbol)
            if last is not None:
                self._later(lambda: self._execute(oid, order.amount, last, None))
        elif self._locks(order):
            base, quote, _ = self._pair(order.symbol)
            lock = order.amount * (order.price or 0.0) if order.side is Side.BUY else order.amount
            cur = quote if order.side is Side.BUY else base
            self._locked[oid] = lock
            self._move(cur, free=-lock, used=lock)
            self._later(lambda: self._stream_account("spot", [cur]))
        return report

    async def create_exit_list(self, exit_list: PlaceExitList, timeout: float) -> list[OrderReport]:
        """A spot OCO list (see the module): refused whole when the account cannot lock what it sells; the lock is
        held under the take-profit leg and moves to whichever leg fills."""
        legs = await super().create_exit_list(exit_list, timeout)
        take, stop = legs
        assert take.id is not None and stop.id is not None
        x = exit_list
        base, quote, _ = self._pair(x.symbol)
        cur, lock = (base, x.amount) if x.side is Side.SELL else (quote, x.amount * x.take_profit)
        if lock > self._row("spot", cur).free + EPS:
            del self.orders[take.id], self.orders[stop.id]
            raise InsufficientFunds(f"Account has insufficient balance for requested action: {cur} needs {lock:.8g}", code=-2010)
        self._locked[take.id] = lock
        self._move(cur, free=-lock, used=lock)
        self._other_leg[take.id], self._other_leg[stop.id] = stop.id, take.id
        self._later(lambda: self._stream_account("spot", [cur]))
        return legs

    def _end_other_leg(self, order_id: str, status: OrderStatus) -> list[str]:
        """The other leg of ``order_id``'s OCO list ends (``status``), streamed; the currencies its lock released."""
        other = self._other_leg.pop(order_id, None)
        if other is None:
            return []
        self._other_leg.pop(other, None)
        o = self.orders[other]
        if o.status is not OrderStatus.OPEN:
            return []
        done = self.orders[other] = replace(o, status=status, updated=self.clock.ms)
        self._later(lambda: self._stream_report(done))
        return self._release(done)

    def _release(self, order: OrderReport) -> list[str]:
        """A cancelled order's lock goes back to free; the currencies that changed."""
        lock = self._locked.pop(order.id or "", 0.0)
        if lock <= 0:
            return []
        base, quote, _ = self._pair(order.symbol)
        cur = quote if order.side is Side.BUY else base
        self._move(cur, free=lock, used=-lock)
        return [cur]

    async def cancel_order(self, symbol: str, ref: OrderRef, timeout: float, retries: int = 3) -> OrderReport:
        report = await super().cancel_order(symbol, ref, timeout, retries)
        released = sorted({*self._release(report), *self._end_other_leg(report.id or "", OrderStatus.CANCELED)})
        if released:
            self._later(lambda: self._stream_account("spot", released))
        return report

    async def cancel_every_order(self, symbol: str, timeout: float, retries: int = 3) -> list[OrderReport]:
        open_before = [o for o in self.orders.values() if o.symbol == symbol and o.status is OrderStatus.OPEN]
        done = await super().cancel_every_order(symbol, timeout, retries)
        released = sorted({c for o in open_before for c in self._release(o)})
        if released:
            self._later(lambda: self._stream_account("spot", released))
        return done

    def execute(self, order_id: str, amount: float | None = None, price: float | None = None, fee: float | None = None) -> FillReport:
        """Fill ``amount`` (default: all that is left) of a resting order at ``price`` (default: its limit price, its
        trigger price, else the last price); ``fee`` in the paying currency (default: ``fee_rate`` of the value).
        The fill and the account update that includes it are streamed to the engine. Raises ``ValueError`` for
        what no exchange would do: fill an order that is not open, more than is left, or more than the account
        holds."""
        o = self.orders.get(order_id)
        if o is None:
            raise ValueError(f"no order {order_id!r} on the exchange")
        if o.status is not OrderStatus.OPEN:
            raise ValueError(f"order {o.client_order_id} is {o.status}: the exchange fills only open orders")
        left = (o.amount or 0.0) - (o.filled or 0.0)
        amount = left if amount is None else float(amount)
        if not 0 < amount <= left + EPS:
            raise ValueError(f"order {o.client_order_id}: cannot fill {amount}, {left} is left")
        at = price if price is not None else o.price or o.trigger_price or self.prices.get(o.symbol)
        if at is None or not at > 0:
            raise ValueError(f"order {o.client_order_id}: no price to fill at (no limit, no trigger, no last price): pass price=")
        if o.conditional and o.trigger_phase is TriggerPhase.WAITING:
            order_id = self._trigger(o)
        other = self._other_leg.get(order_id)
        if other is not None:  # an OCO leg acts: the list's lock is now its own, and the other leg expires
            self._locked[order_id] = self._locked.pop(other, 0.0) + self._locked.get(order_id, 0.0)
            self._end_other_leg(order_id, OrderStatus.EXPIRED)
        return self._execute(order_id, amount, float(at), fee)

    def _trigger(self, record: OrderReport) -> str:
        """A waiting USD-M conditional order triggers: its record closes naming the order it placed on the book
        (same client id, a new id), which is the one that fills. Returns that order's id."""
        placed = self.book(
            OrderReport(
                record.symbol,
                None,
                record.client_order_id,
                OrderStatus.OPEN,
                record.side,
                record.type,
                record.amount,
                0.0,
                record.price,
                trigger_price=record.trigger_price,
                reduce_only=record.reduce_only,
                position_side=record.position_side,
            )
        )
        assert record.id is not None and placed.id is not None
        done = replace(
            record, status=OrderStatus.CLOSED, trigger_phase=TriggerPhase.TRIGGERED, triggered_order_id=placed.id, updated=self.clock.ms
        )
        self.orders[record.id] = done
        self._later(lambda: self._stream_report(done))
        return placed.id

    def _execute(self, order_id: str, amount: float, price: float, fee: float | None) -> FillReport:
        o = self.orders[order_id]
        cost = amount * price
        paid = cost * self.fee_rate if fee is None else fee
        _, quote, settle = self._pair(o.symbol)
        realized: float | None = None
        if self.market_type(o.symbol) == "spot":
            currencies = self._spot_fill(o, amount, price, paid)
        else:
            realized = self._futures_fill(o, amount, price)
            self._wallet(settle, realized - paid)
            currencies = [settle]
        fill = self.fill(order_id, amount, price, realized_pnl=realized)
        if paid:
            fill = replace(fill, fee=Fee(paid, quote if self.market_type(o.symbol) == "spot" else settle))
            self.fills[-1] = fill
        if self.orders[order_id].status is OrderStatus.CLOSED:
            self._locked.pop(order_id, None)
        self._later(lambda: self._stream_execution(order_id, fill))
        self._later(lambda: self._stream_account(self.market_type(o.symbol), currencies, [o.symbol] if realized is not None else []))
        return fill

    def _spot_fill(self, o: OrderReport, amount: float, price: float, fee: float) -> list[str]:
        base, quote, _ = self._pair(o.symbol)
        lock = self._locked.get(o.id or "", 0.0)
        if o.side is Side.BUY:
            release = min(lock, amount * (o.price or price))
            if self._row("spot", quote).free + release - amount * price - fee < -EPS:
                raise ValueError(f"the account cannot pay for this fill: {quote} free {self._row('spot', quote).free}")
            self._move(quote, free=release - amount * price - fee, used=-release)
            self._move(base, free=amount)
        else:
            release = min(lock, amount)
            if self._row("spot", base).free - (amount - release) < -EPS:
                raise ValueError(f"the account cannot deliver this fill: {base} free {self._row('spot', base).free}, {amount} sold")
            self._move(base, free=-(amount - release), used=-release)
            self._move(quote, free=amount * price - fee)
        if o.id is not None and o.id in self._locked:
            self._locked[o.id] = lock - release
        return [base, quote]

    def _futures_fill(self, o: OrderReport, amount: float, price: float) -> float:
        """Move the position the order trades; returns the PnL the fill realized."""
        side = (o.position_side or PositionSide.BOTH) if self.hedged else PositionSide.BOTH
        key = (o.symbol, side)
        held, entry = self._net.get(key, (0.0, 0.0))
        change = amount if o.side is Side.BUY else -amount
        new = held + change
        realized = 0.0
        if held == 0 or (held > 0) == (change > 0):  # opening or adding: the average entry moves
            entry = (abs(held) * entry + amount * price) / abs(new)
        else:  # reducing, closing or flipping
            closing = min(amount, abs(held))
            realized = closing * (price - entry) * (1 if held > 0 else -1)
            if abs(new) < EPS:
                new, entry = 0.0, 0.0
            elif (new > 0) != (held > 0):
                entry = price  # flipped: what is left opened at this price
        if new == 0:
            self._net.pop(key, None)
        else:
            self._net[key] = (new, entry)
        self._set_rows(o.symbol)
        return realized

    def _set_rows(self, symbol: str) -> None:
        """The position rows ``positions()`` answers for ``symbol``, from the positions held."""
        for k in [k for k in self.position_rows if k[0] == symbol]:
            del self.position_rows[k]
        for report in self._position_reports(symbol):
            if report.contracts:
                self.set_position(report)

    def _position_reports(self, symbol: str) -> list[PositionReport]:
        """Every side of ``symbol`` as the stream reports it, flat ones included (contracts 0: the position closed)."""
        lev = self.leverage.get(symbol, self.default_leverage)
        sides = (PositionSide.LONG, PositionSide.SHORT) if self.hedged else (PositionSide.BOTH,)
        out = []
        for side in sides:
            c, entry = self._net.get((symbol, side), (0.0, 0.0))
            shown = side if self.hedged else (PositionSide.LONG if c > 0 else PositionSide.SHORT if c < 0 else PositionSide.BOTH)
            out.append(PositionReport(symbol, shown, abs(c), entry or None, leverage=lev, hedged=self.hedged, time_ms=self.clock.ms))
        return out

    # ------------------------------------------------------------------ the user stream
    def _later(self, message: Callable[[], object]) -> None:
        """Deliver a stream message after the request being answered: in order, one per loop step."""
        self.pending += 1
        asyncio.get_running_loop().call_soon(self._deliver, message)

    def _deliver(self, message: Callable[[], object]) -> None:
        self.pending -= 1
        if self.engine is None or self.failures:  # not connected, or an earlier message failed: the test ends there
            return
        try:
            message()
        except Exception as exc:  # the harness raises it in the test: a bug must not pass as a quiet test
            self.failures.append(exc)

    def _stream_report(self, report: OrderReport) -> None:
        """An order update without a trade (a conditional order's trigger)."""
        assert self.engine is not None
        self.engine.apply_order(replace(report, stamp=self.stamp(self.clock.ms)), source="websocket")

    def _stream_execution(self, order_id: str, fill: FillReport) -> None:
        """The execution report: the order's new state and the trade, in one message."""
        assert self.engine is not None
        stamp = self.stamp(self.clock.ms)
        report = replace(self.orders[order_id], fills=(replace(fill, stamp=stamp),), stamp=stamp)
        self.engine.apply_order(report, source="websocket")

    def _stream_account(self, market_type: MarketType, currencies: Sequence[str], symbols: Sequence[str] = ()) -> None:
        """The account update after a change: the balances it touched (and the futures positions), newer than any
        report the engine holds, so it includes the fills before it."""
        assert self.engine is not None
        ms = self.clock.ms
        assets = {c: self._row(market_type, c) for c in currencies}
        self.engine.apply_balance(BalanceReport(market_type, assets, complete=False, time_ms=ms, stamp=self.stamp(ms, list(assets))))
        for symbol in symbols:
            stamp = self.stamp(ms)
            self.engine.apply_positions([replace(p, stamp=stamp) for p in self._position_reports(symbol)])
