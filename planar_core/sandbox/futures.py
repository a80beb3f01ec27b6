"""USDⓈ-M futures accounting of the sandbox: positions (one-way or hedge mode), cross and isolated margin,
maintenance margin, liquidation and funding.

A mixin of ``SandboxExchange`` (it uses the exchange's markets, clock, ids and events), kept apart because it is
one job: what a futures account owns and owes. Positions are keyed by (symbol, position side): ``BOTH`` in one-way
mode, ``LONG`` and ``SHORT`` in hedge mode (a LONG amount is >= 0, a SHORT amount <= 0).

Margin, as Binance computes it:
* the wallet (``futures_wallet``) holds every realized PnL, fee and funding payment; an isolated position holds
  ``isolated_wallet`` of it (its initial margin, moved in when it opens, released as it closes), the rest is the
  cross wallet;
* available = cross wallet + cross unrealized PnL - cross positions' initial margin - open orders' initial margin;
* maintenance margin = notional x the bracket's rate - the bracket's cumulative amount (``BRACKETS``);
* liquidation: an isolated position when its isolated wallet + unrealized PnL falls to its maintenance margin;
  every cross position when the cross wallet + cross unrealized PnL falls to their maintenance margin. The position
  is closed at the mark price by an order with client id ``autoclose-<time>`` and type ``LIQUIDATION`` (execution
  type ``CALCULATED`` on the user stream, as Binance sends it); what margin is left over (an isolated position's
  whole isolated wallet, a cross liquidation's clearance fee of ``liquidationFee`` x notional) goes to the insurance
  fund, recorded as ``INSURANCE_CLEAR`` income;
* funding: every 8 hours of price-path time each position pays (rate > 0: longs pay) notional at mark x rate,
  a ``FUNDING_FEE`` income row and an ``ACCOUNT_UPDATE`` with reason ``FUNDING_FEE``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from . import errors as E
from .accounts import ZERO, Account, Fill, Position, SandboxOrder

COMMISSION_STEP = Decimal("0.00000001")
LIQUIDATION_FEE = Decimal("0.0125")  # exchangeInfo liquidationFee
MARGIN_CALL_RATIO = Decimal("0.8")  # maintenance margin / margin balance at which MARGIN_CALL warns
FUNDING_RATE = Decimal("0.0001")  # every settlement, as /fapi/v1/fundingRate and premiumIndex report it
FUNDING_PERIOD_MS = 8 * 3_600_000
# (notional floor, notional cap, maintenance margin rate, cumulative amount, max leverage), modelled on Binance's BTCUSDT
# tiers, for every futures market here (GET /fapi/v1/leverageBracket serves the same table)
BRACKETS: list[tuple[int, int, Decimal, Decimal, int]] = [
    (0, 50_000, Decimal("0.004"), Decimal(0), 125),
    (50_000, 600_000, Decimal("0.005"), Decimal(50), 100),
    (600_000, 3_000_000, Decimal("0.0065"), Decimal(950), 75),
    (3_000_000, 12_000_000, Decimal("0.01"), Decimal(11450), 50),
    (12_000_000, 70_000_000, Decimal("0.02"), Decimal(131450), 25),
    (70_000_000, 100_000_000, Decimal("0.025"), Decimal(481450), 20),
    (100_000_000, 230_000_000, Decimal("0.05"), Decimal(2981450), 10),
    (230_000_000, 480_000_000, Decimal("0.1"), Decimal(14481450), 5),
    (480_000_000, 600_000_000, Decimal("0.125"), Decimal(26481450), 4),
    (600_000_000, 800_000_000, Decimal("0.25"), Decimal(101481450), 2),
    (800_000_000, 1_200_000_000, Decimal("0.5"), Decimal(301481450), 1),
]


def bracket_for(notional: Decimal) -> tuple[Decimal, Decimal]:
    """(maintenance margin rate, cumulative amount) of the tier holding ``notional``."""
    for _, cap, rate, cum, _ in BRACKETS:
        if notional < cap:
            return rate, cum
    return BRACKETS[-1][2], BRACKETS[-1][3]


@dataclass
class Income:
    """A ``/fapi/v1/income`` row that is not a fill's (fills give REALIZED_PNL and COMMISSION)."""

    symbol: str
    kind: str  # FUNDING_FEE | INSURANCE_CLEAR
    amount: Decimal
    time_ms: int
    tran_id: int


class FuturesAccounting:
    """Positions, margin, liquidation and funding (mixed into ``SandboxExchange``)."""

    default_leverage: int
    futures_taker_fee: Decimal
    emit: Callable[..., None]
    now_ms: Callable[[], int]
    _trade_ids: itertools.count[int]
    _order_ids: itertools.count[int]

    # ------------------------------------------------------------- prices and positions
    def mark(self, symbol: str) -> Decimal:  # pragma: no cover - defined by SandboxExchange
        raise NotImplementedError

    def leverage_of(self, acct: Account, symbol: str) -> int:
        return acct.leverage.get(symbol, self.default_leverage)

    def isolated(self, acct: Account, symbol: str) -> bool:
        return acct.margin_type.get(symbol) == "isolated"

    @staticmethod
    def position(acct: Account, symbol: str, side: str = "BOTH") -> Position:
        """The position in (symbol, side), flat if there is none (not inserted)."""
        return acct.positions.get((symbol, side), Position())

    @staticmethod
    def open_positions(acct: Account) -> Iterator[tuple[str, str, Position]]:
        for (symbol, side), pos in acct.positions.items():
            if pos.amount:
                yield symbol, side, pos

    def unrealized(self, symbol: str, pos: Position) -> Decimal:
        return (self.mark(symbol) - pos.entry_price) * pos.amount if pos.amount else ZERO

    def maint_margin(self, symbol: str, pos: Position) -> Decimal:
        """Binance's maintenance margin: notional x the bracket's rate - the bracket's cumulative amount."""
        notional = abs(pos.amount) * self.mark(symbol)
        rate, cum = bracket_for(notional)
        return max(notional * rate - cum, ZERO)

    def cross_wallet(self, acct: Account) -> Decimal:
        return acct.futures_wallet - sum((p.isolated_wallet for p in acct.positions.values()), ZERO)

    def futures_margins(self, acct: Account) -> dict[str, Decimal]:
        """Wallet, unrealized PnL, position and open-order initial margin, maintenance margin, available balance."""
        upnl = cross_upnl = pos_im = maint = ZERO
        for symbol, _, pos in self.open_positions(acct):
            u = self.unrealized(symbol, pos)
            upnl += u
            maint += self.maint_margin(symbol, pos)
            if not self.isolated(acct, symbol):
                cross_upnl += u
                pos_im += abs(pos.amount) * self.mark(symbol) / self.leverage_of(acct, symbol)
        ord_im = sum(
            (o.remaining * o.price / self.leverage_of(acct, o.symbol) for o in acct.open_orders("linear") if not o.reduce_only), ZERO
        )
        available = self.cross_wallet(acct) + cross_upnl - pos_im - ord_im
        return {
            "wallet": acct.futures_wallet,
            "upnl": upnl,
            "position_im": pos_im,
            "order_im": ord_im,
            "maint": maint,
            "available": available,
        }

    def liquidation_price(self, acct: Account, symbol: str, pos: Position) -> Decimal:
        """Binance's liquidation price: where the margin that backs the position (its isolated wallet, or the cross
        wallet with the other cross positions at their marks) falls to the maintenance margin. 0 when flat or never."""
        if not pos.amount:
            return ZERO
        if self.isolated(acct, symbol):
            wallet, maint_others, upnl_others = pos.isolated_wallet, ZERO, ZERO
        else:
            others = [(s, p) for s, _, p in self.open_positions(acct) if p is not pos and not self.isolated(acct, s)]
            wallet = self.cross_wallet(acct)
            maint_others = sum((self.maint_margin(s, p) for s, p in others), ZERO)
            upnl_others = sum((self.unrealized(s, p) for s, p in others), ZERO)
        size = abs(pos.amount)
        side = Decimal(1) if pos.amount > 0 else Decimal(-1)
        rate, cum = bracket_for(size * self.mark(symbol))
        price = (wallet - maint_others + upnl_others + cum - side * size * pos.entry_price) / (size * rate - side * size)
        return max(price, ZERO)

    # ------------------------------------------------------------- orders
    def set_position_mode(self, acct: Account, hedge: bool) -> None:
        """``POST /fapi/v1/positionSide/dual``: refused while a position or an order is open (as Binance)."""
        if acct.hedge_mode == hedge:
            raise E.ApiError(400, -4059, "No need to change position side.")
        if any(True for _ in self.open_positions(acct)):
            raise E.ApiError(400, -4068, "Position side cannot be changed if there exists position.")
        if acct.open_orders("linear") or any(a.is_open for a in acct.algo_orders.values()):
            raise E.ApiError(400, -4067, "Position side cannot be changed if there exists open orders.")
        acct.hedge_mode = hedge

    def set_margin_type(self, acct: Account, symbol: str, isolated: bool) -> None:
        """``POST /fapi/v1/marginType``: refused while the symbol has a position or open orders (as Binance)."""
        if self.isolated(acct, symbol) == isolated:
            raise E.ApiError(400, -4046, "No need to change margin type.")
        if any(p.amount for (s, _), p in acct.positions.items() if s == symbol):
            raise E.ApiError(400, -4048, "Margin type cannot be changed if there exists position.")
        if acct.open_orders("linear", symbol):
            raise E.ApiError(400, -4047, "Margin type cannot be changed if there exists open orders.")
        acct.margin_type[symbol] = "isolated" if isolated else "cross"

    @staticmethod
    def closes(order: SandboxOrder, pos: Position) -> bool:
        """Whether ``order`` reduces ``pos`` (it trades against the position's direction)."""
        return bool(pos.amount) and (pos.amount > 0) == (order.side == "SELL")

    def check_futures(self, acct: Account, order: SandboxOrder, reference: Decimal) -> None:
        """Reduce-only must reduce (and in hedge mode a closing order must not exceed its position); the opening part
        needs its initial margin plus the taker fee from the available balance."""
        pos = self.position(acct, order.symbol, order.position_side)
        hedge_close = order.position_side != "BOTH" and (order.side == "SELL") == (order.position_side == "LONG")
        if order.reduce_only or hedge_close:
            if not self.closes(order, pos) or order.qty > abs(pos.amount):
                raise E.reduce_only_rejected()
            return
        closing = min(abs(pos.amount), order.qty) if self.closes(order, pos) else ZERO
        need = (order.qty - closing) * reference / self.leverage_of(acct, order.symbol) + order.qty * reference * self.futures_taker_fee
        if need > self.futures_margins(acct)["available"]:
            raise E.margin_insufficient()

    def settle_futures(
        self, acct: Account, order: SandboxOrder, price: Decimal, qty: Decimal, fee_rate: Decimal
    ) -> tuple[Decimal, Decimal]:
        """Apply a fill to the position and the wallet; returns (fee, realized PnL)."""
        pos = acct.positions.setdefault((order.symbol, order.position_side), Position())
        signed = qty if order.side == "BUY" else -qty
        isolated = self.isolated(acct, order.symbol)
        realized = ZERO
        opened = qty
        if self.closes(order, pos):
            closed = min(abs(pos.amount), qty)
            direction = Decimal(1) if pos.amount > 0 else Decimal(-1)
            realized = (price - pos.entry_price) * closed * direction
            if isolated:
                pos.isolated_wallet -= pos.isolated_wallet * closed / abs(pos.amount)
            pos.amount -= closed * direction
            opened = qty - closed
            if pos.amount == 0:
                pos.entry_price = ZERO
                pos.isolated_wallet = ZERO
            if opened > 0:
                pos.amount, pos.entry_price = opened * (1 if signed > 0 else -1), price
        else:
            new_amount = pos.amount + signed
            pos.entry_price = (pos.entry_price * abs(pos.amount) + price * qty) / abs(new_amount)
            pos.amount = new_amount
        if isolated and opened > 0:
            pos.isolated_wallet += opened * price / self.leverage_of(acct, order.symbol)
        pos.updated_ms = self.now_ms()
        pos.realized += realized
        fee = (price * qty * fee_rate).quantize(COMMISSION_STEP)
        acct.futures_wallet += realized - fee
        return fee, realized

    # ------------------------------------------------------------- liquidation
    def margin_groups(self, acct: Account) -> list[tuple[list[tuple[str, str]], Decimal, Decimal]]:
        """(positions, maintenance margin, margin backing them) per margin group: each isolated position alone (its
        isolated wallet + unrealized PnL), the cross positions together (cross wallet + their unrealized PnL)."""
        groups: list[tuple[list[tuple[str, str]], Decimal, Decimal]] = []
        cross: list[tuple[str, str]] = []
        cross_equity, cross_maint = self.cross_wallet(acct), ZERO
        for symbol, side, pos in self.open_positions(acct):
            maint, upnl = self.maint_margin(symbol, pos), self.unrealized(symbol, pos)
            if self.isolated(acct, symbol):
                groups.append(([(symbol, side)], maint, pos.isolated_wallet + upnl))
            else:
                cross.append((symbol, side))
                cross_equity += upnl
                cross_maint += maint
        if cross:
            groups.append((cross, cross_maint, cross_equity))
        return groups

    def margin_calls(self, acct: Account, groups: list[tuple[list[tuple[str, str]], Decimal, Decimal]]) -> list[tuple[str, str]]:
        """The positions whose maintenance margin newly reached ``MARGIN_CALL_RATIO`` of their backing (once per
        episode: called again only after they recovered)."""
        at_risk = {key for keys, maint, backing in groups if maint >= backing * MARGIN_CALL_RATIO for key in keys}
        new = sorted(at_risk - acct.margin_called)
        acct.margin_called = at_risk
        return new

    @staticmethod
    def liquidation_due(groups: list[tuple[list[tuple[str, str]], Decimal, Decimal]]) -> list[tuple[str, str]]:
        """The positions whose backing margin has fallen to their maintenance margin."""
        return [key for keys, maint, backing in groups if maint >= backing for key in keys]

    def liquidate(self, acct: Account, symbol: str, side: str) -> SandboxOrder:
        """Close a position at the mark price with an ``autoclose-`` LIQUIDATION order; the margin left over goes to
        the insurance fund."""
        for order in acct.open_orders("linear", symbol):
            self.cancel_for_liquidation(acct, order)
        pos = acct.positions[(symbol, side)]
        mark = self.mark(symbol)
        now = self.now_ms()
        closing_side = "SELL" if pos.amount > 0 else "BUY"
        qty = abs(pos.amount)
        order = SandboxOrder(
            next(self._order_ids),
            f"autoclose-{now}{next(self._order_ids) % 1000:03d}",
            symbol,
            "linear",
            closing_side,
            "LIQUIDATION",
            "IOC",
            mark,
            qty,
            now,
            reduce_only=True,
            updated_ms=now,
            working_ms=now,
            position_side=side,
        )
        acct.orders[order.order_id] = order
        acct.by_client_id[("linear", order.client_id)] = order
        isolated_before = pos.isolated_wallet
        fee, realized = self.settle_futures(acct, order, mark, qty, ZERO)
        if self.isolated(acct, symbol):
            clearance = max(isolated_before + realized, ZERO)  # the whole isolated wallet is lost
        else:
            clearance = min(qty * mark * LIQUIDATION_FEE, max(acct.futures_wallet, ZERO))
        acct.futures_wallet -= clearance
        if clearance:
            acct.income.append(Income(symbol, "INSURANCE_CLEAR", -clearance, now, next(self._trade_ids)))
        order.filled, order.cum_quote, order.status = qty, mark * qty, "FILLED"
        fill = Fill(
            next(self._trade_ids),
            order.order_id,
            order.client_id,
            symbol,
            "linear",
            closing_side,
            mark,
            qty,
            fee,
            "USDT",
            now,
            False,
            realized,
        )
        acct.fills.append(fill)
        self.emit(acct, "linear", "order", {"order": order, "exec": "CALCULATED", "fill": fill})
        self.emit(acct, "linear", "account", {"symbol": symbol})
        return order

    def cancel_for_liquidation(self, acct: Account, order: SandboxOrder) -> None:  # pragma: no cover - SandboxExchange
        raise NotImplementedError

    # ------------------------------------------------------------- funding
    def settle_funding(self, acct: Account, symbol: str, now: int, rate: Decimal | None = None) -> None:
        """One funding settlement of every position in ``symbol``: longs pay shorts notional at mark x rate
        (``rate``: this settlement's, else the market's standing rate)."""
        mark: Decimal | None = None  # read only for a position: a simulated venue may hold markets it never priced
        for (sym, _), pos in acct.positions.items():
            if sym != symbol or not pos.amount:
                continue
            mark = self.mark(symbol) if mark is None else mark
            payment = (-pos.amount * mark * (FUNDING_RATE if rate is None else rate)).quantize(COMMISSION_STEP)
            acct.futures_wallet += payment
            acct.income.append(Income(symbol, "FUNDING_FEE", payment, now, next(self._trade_ids)))
            self.emit(acct, "linear", "account", {"symbol": symbol, "reason": "FUNDING_FEE"})
