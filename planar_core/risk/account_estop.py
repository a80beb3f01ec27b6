"""The account emergency stop: every strategy trading one exchange account halted, every open order of the
account cancelled (whoever placed it) and verified, positions optionally closed, and a report of what each
strategy had open.

A strategy's e-stop (``risk.estop``) cancels that strategy's orders only. This is the one path that uses the
account-wide cancel (``Venue.cancel_every_order``: Binance's DELETE openOrders / allOpenOrders /
algoOpenOrders), on every symbol where the account lists open orders, spot and USD-M futures (the conditional
orders waiting in the Algo Service too), until a listing of the whole account comes back empty or the budget ends.

Which strategies trade the account is the caller's to say (``Member``: a name and where its persisted state is;
``runner.account`` finds them from strategy configs and the store root's lease files). The report groups the open
orders by the identity their client ids encode: a member's name, or ``foreign/manual`` for an id that is no known
strategy's. Nothing is reported clean without the exchange's word: a market whose orders could not be listed is
*unverified*, a position that could not be read is *unknown*; every strategy stays halted either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

from ..exchange.client_ids import ClientOrderIds, identity_of, intent_journal, planar_identity
from ..exchange.errors import AuthError, ExchangeOpError
from ..model.dust import below_minimum
from ..model.json import text
from ..model.sink import EventSink, MemorySink
from ..model.types import Json, OrderType, PositionSide, Side
from ..model.venue import MarketType, OrderReport, PlaceOrder, Venue
from ..state import UNFINISHED_STOP, StateStore
from ..storage import is_remote
from .estop import outcome_dict, pause
from .outcome import Entry, OutcomeTables, SymbolOutcome, Table, not_clean_parts

log = logging.getLogger("planar.risk.account_estop")
FOREIGN = "foreign/manual"
BOOKS = {"spot": "spot", "swap": "futures"}
POSITIONS_OF = {"spot": "balances", "futures": "positions"}  # how each book's holdings are read


@dataclass(frozen=True)
class Member:
    """A strategy trading the account: its name, where its persisted state is (``<store_root>/<name>``), and,
    when its config is known, its universe and market type (what a spot close may sell)."""

    name: str
    shared_root: str
    universe: tuple[str, ...] = ()
    margin: bool | None = None  # None: no config found (known from the store root only)

    @property
    def identity(self) -> str:
        return identity_of(self.name)


@dataclass(frozen=True)
class OpenOrder:
    """One open order of the account as the stop first saw it."""

    owner: str  # a member's name, or FOREIGN
    symbol: str
    book: str  # spot, futures, futures algo (a conditional order waiting for its trigger)
    client_order_id: str
    order_id: str
    side: str
    type: str
    amount: float
    price: float | None

    @property
    def key(self) -> str:
        """Unique across books (spot, futures and Algo Service ids are separate number spaces)."""
        return f"{self.book}:{self.symbol}:{self.order_id}"


@dataclass
class BookOutcome:
    """One section of the account (spot, futures): why its open orders, or its holdings (futures positions, spot
    balances), could not be confirmed (None: the last reading answered)."""

    orders_unverified: str | None = None
    holdings_unverified: str | None = None


@dataclass
class AccountEStopReport(OutcomeTables):
    """An account e-stop's outcome: per symbol (``symbols``) its orders and positions, per book what could not be
    read (risk/outcome.py); the tables and the summary are rendered from it."""

    account: str
    reason: str
    strategies: list[str] = field(default_factory=list)  # halted
    found: list[OpenOrder] = field(default_factory=list)  # every open order seen (first sighting)
    symbols: dict[str, SymbolOutcome] = field(default_factory=dict)
    books: dict[str, BookOutcome] = field(default_factory=dict)  # spot, futures
    unreachable: str | None = None  # the exchange could not be reached at all
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cancelled_runs: list[str] = field(default_factory=list)  # filled in by the orchestrator

    def of(self, symbol: str) -> SymbolOutcome:
        return self.symbols.setdefault(symbol, SymbolOutcome())

    def book(self, name: str) -> BookOutcome:
        return self.books.setdefault(name, BookOutcome())

    @property
    def cancelled(self) -> int:
        """Orders seen open and confirmed no longer open by a later listing."""
        return sum(o.orders.cancelled for o in self.symbols.values())

    def _unverified(self) -> list[tuple[str | None, Entry[str]]]:
        """(book, (key, why, clear)) of what could not be confirmed; the book is None for the whole account."""
        out: list[tuple[str | None, Entry[str]]] = []
        if self.unreachable is not None:
            out.append((None, ("everything", self.unreachable, partial(setattr, self, "unreachable", None))))
        for name, b in self.books.items():
            if b.orders_unverified is not None:
                out.append((name, (f"{name}: open orders", b.orders_unverified, partial(setattr, b, "orders_unverified", None))))
        for name, b in self.books.items():
            if b.holdings_unverified is not None:
                key = f"{name}: {POSITIONS_OF.get(name, 'positions')}"
                out.append((name, (key, b.holdings_unverified, partial(setattr, b, "holdings_unverified", None))))
        return out

    @property
    def unverified(self) -> Table[str]:
        """What could not be confirmed -> why: ``<book>: open orders``, ``futures: positions``, ``spot: balances``,
        ``everything``."""
        return Table(lambda: [entry for _, entry in self._unverified()])

    @property
    def clean(self) -> bool:
        """True only when the exchange itself confirmed: nothing open on the account, no position left (when closing
        was asked), nothing unverified."""
        return not self.remaining_open and not self.remaining_positions and not self.unverified

    def by_owner(self) -> dict[str, list[OpenOrder]]:
        """The orders seen open, grouped by owner: every member (even with none), then ``foreign/manual``."""
        out: dict[str, list[OpenOrder]] = {name: [] for name in self.strategies}
        for o in self.found:
            out.setdefault(o.owner, []).append(o)
        return out

    def summary(self) -> str:
        """One line: clean or not, what was open per owner, what is left."""
        owners = ", ".join(f"{k} {len(v)}" for k, v in self.by_owner().items())
        head = (
            f"account {self.account}: {len(self.strategies)} strategies halted; open orders found: {owners or 'none'}; "
            f"cancelled {self.cancelled}"
        )
        if self.closed:
            head += f"; closed {self.closed}"
        if self.clean:
            return f"CLEAN: {head}"
        parts = not_clean_parts(dict(self.remaining_open), dict(self.remaining_positions), dict(self.unverified))
        return f"NOT CLEAN after {self.seconds:.1f}s: {head}; " + "; ".join(parts)

    def table(self) -> str:
        """What each strategy had open, as a markdown table (one row per owner)."""
        rows = ["| strategy | open orders | symbols | client order ids |", "|---|---|---|---|"]
        for owner, orders in self.by_owner().items():
            symbols = ", ".join(sorted({f"{o.symbol} ({o.book})" for o in orders})) or "-"
            cids = ", ".join(o.client_order_id for o in orders[:6]) + (f" ... (+{len(orders) - 6})" if len(orders) > 6 else "")
            rows.append(f"| {owner} | {len(orders)} | {symbols} | {cids or '-'} |")
        return "\n".join(rows)

    def as_dict(self) -> Json:
        """The report as the trace and the flows keep it: the rendered tables, and the structure under ``symbols``
        and ``books``."""
        return {
            "account": self.account,
            "reason": self.reason,
            "strategies": list(self.strategies),
            "found": [asdict(o) for o in self.found],
            "cancelled": self.cancelled,
            "remaining_open": dict(self.remaining_open),
            "closed": self.closed,
            "remaining_positions": dict(self.remaining_positions),
            "unverified": dict(self.unverified),
            "errors": list(self.errors),
            "seconds": self.seconds,
            "cancelled_runs": list(self.cancelled_runs),
            "clean": self.clean,
            "by_owner": {k: len(v) for k, v in self.by_owner().items()},
            "symbols": {sym: outcome_dict(o) for sym, o in self.symbols.items()},
            "books": {name: asdict(b) for name, b in self.books.items()},
        }


def owner_of(client_order_id: str | None, members: list[Member]) -> str:
    """The member whose identity the id encodes exactly, else ``foreign/manual``."""
    identity = planar_identity(client_order_id)
    return next((m.name for m in members if identity is not None and m.identity == identity), FOREIGN)


def _row(report: OrderReport, market_type: str, members: list[Member]) -> OpenOrder:
    cid = report.client_order_id or ""
    return OpenOrder(
        owner_of(cid, members),
        report.symbol or "?",
        BOOKS.get(market_type, market_type) + (" algo" if report.conditional else ""),
        cid,
        report.id or "",
        report.side.value if report.side is not None else "",
        report.type.value if report.type is not None else "",
        report.amount or 0.0,
        report.price or report.trigger_price or None,
    )


ACCOUNT_HALT = "account emergency stop: "  # how a member's halt reason starts (and the account flow's cancel of its runs)


def account_halt(halt_reason: str | None) -> bool:
    """The strategy was halted by an account emergency stop."""
    return (halt_reason or "").startswith(ACCOUNT_HALT)


def halt_members(members: list[Member], reason: str, report: AccountEStopReport, sink: EventSink) -> None:
    """Every member halted first (persisted; a running engine reads it before each order): whatever the exchange
    does next, nothing new is traded."""
    for m in members:
        StateStore(m.shared_root).update(
            halted=True,
            halt_reason=f"{ACCOUNT_HALT}{reason}",
            halted_at=int(time.time() * 1000),
            halted_by_emergency_stop=True,
            estop_unverified={UNFINISHED_STOP: f"the account emergency stop ({reason}) did not reach its verdict"},
        )
        report.strategies.append(m.name)
        sink.record("halted", reason=f"account emergency stop ({m.name}): {reason}")


async def _list(
    venue: Venue, market_types: tuple[MarketType, ...], remaining: float, report: AccountEStopReport
) -> dict[MarketType, list[OrderReport]]:
    """The account's open orders per market type, without the market types that could not be listed (unverified).
    A market type the key may not use (an authentication refusal) has no order this key could have placed: skipped,
    said in the errors."""
    out: dict[MarketType, list[OrderReport]] = {}
    for mt in market_types:
        name = BOOKS.get(mt, mt)
        book = report.book(name)
        try:
            out[mt] = await venue.account_open_orders(mt, timeout=max(0.1, remaining), retries=0)
            book.orders_unverified = None
        except AuthError as err:
            book.orders_unverified = None
            if not any(e.startswith(f"{name}: not accessible") for e in report.errors):
                report.errors.append(f"{name}: not accessible with this API key ({err}): skipped"[:300])
        except ExchangeOpError as err:
            book.orders_unverified = f"could not list: {type(err).__name__}: {err}"[:300]
            report.errors.append(f"{name}: open orders: {err}"[:300])
    return out


async def cancel_account_orders(
    venue: Venue,
    members: list[Member],
    deadline: float,
    report: AccountEStopReport,
    market_types: tuple[MarketType, ...] = ("spot", "swap"),
) -> None:
    """List the account's open orders, cancel every symbol that has any with the account-wide cancel, list again,
    until a listing of every market type is empty or ``deadline`` (loop time) passes."""
    loop = asyncio.get_running_loop()
    seen: dict[str, OpenOrder] = {o.key: o for o in report.found}
    for mt in market_types:
        book = report.book(BOOKS.get(mt, mt))
        if book.orders_unverified is None:
            book.orders_unverified = "not listed yet"
    attempt = 0
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        listed = await _list(venue, market_types, remaining, report)
        rows = [(mt, r) for mt, reports in listed.items() for r in reports]
        open_ids = set()
        for mt, r in rows:
            row = _row(r, mt, members)
            open_ids.add(row.key)
            if row.key not in seen:
                seen[row.key] = row
                report.found.append(row)
        if not report.unverified:  # a complete listing: what was seen open and is no longer listed is gone
            for o in report.symbols.values():
                o.orders.cancelled = 0
            for key, row in seen.items():
                if key not in open_ids:
                    report.of(row.symbol).orders.cancelled += 1
        for o in report.symbols.values():
            o.orders.still_open = 0
        for _, r in rows:
            report.of(r.symbol or "?").orders.still_open += 1
        if not rows and not report.unverified:
            return
        symbols = sorted({r.symbol for _, r in rows} - {""})
        results = await asyncio.gather(
            *(venue.cancel_every_order(sym, timeout=max(0.1, deadline - loop.time()), retries=0) for sym in symbols), return_exceptions=True
        )
        report.errors.extend(f"{sym}: cancel all: {r}"[:300] for sym, r in zip(symbols, results) if isinstance(r, BaseException))
        await asyncio.sleep(min(pause(attempt), max(0.0, deadline - loop.time())))  # then list again
        attempt += 1


def _negligible(venue: Venue, symbol: str, qty: float, price: float | None) -> bool:
    """Nothing to close: zero, or below what the market lets anyone trade (dust)."""
    if qty <= 0:
        return True
    try:
        rounded = venue.amount_to_precision(symbol, qty)
    except Exception:  # rounds to zero at the market's precision
        return True
    return below_minimum(venue.markets.get(symbol, {}), rounded, price)


class Closer:
    """The closing orders of the account e-stop: market orders, journaled (``intents.jsonl``) before they are sent,
    with client ids of their own identity (``account-estop``; ``foreign/manual`` in a later report), under
    ``<store_root>/accounts/<account>``."""

    def __init__(self, venue: Venue, account_dir: str) -> None:
        from pathlib import Path

        self.venue = venue
        self.ids = ClientOrderIds(account_dir, "account-estop")
        self.journal = intent_journal(Path(account_dir if not is_remote(account_dir) else "."), account_dir)

    async def send(self, symbol: str, side: Side, amount: float, position_side: PositionSide, reduce_only: bool, timeout: float) -> bool:
        """One closing market order: hedge mode names the position side (reduce-only is not sent there), one-way
        mode sends reduce-only (spot: neither)."""
        cid = self.ids.next()
        qty = self.venue.amount_to_precision(symbol, amount)
        self.journal.intent(
            cid, symbol=symbol, side=side.value, type="market", amount=qty, reduce_only=reduce_only, position_side=position_side.value
        )
        order = PlaceOrder(
            symbol=symbol,
            type=OrderType.MARKET,
            side=side,
            amount=qty,
            client_order_id=cid,
            reduce_only=reduce_only,
            position_side=position_side,
        )
        try:
            ack = await self.venue.create_order(order, timeout=timeout)
        except ExchangeOpError as err:  # refused, or outcome unknown (no outcome journaled): the next reading says
            if not err.transient:
                self.journal.outcome(cid, "rejected", None, str(err)[:200])
            log.warning("account e-stop: closing order on %s not confirmed: %s", symbol, err)
            return False
        self.journal.outcome(cid, "accepted", ack.id)
        return True

    def close(self) -> None:
        self.journal.close()


async def close_positions(
    venue: Venue, closer: Closer, spot_symbols: list[str], deadline: float, report: AccountEStopReport, futures: bool = True
) -> None:
    """Flatten the account: every USD-M position with a reduce-only market order (hedge mode: on its side), and
    the free base balance of each of ``spot_symbols`` (the members' spot universes) sold; then read again until the
    exchange reports it flat or the budget ends."""
    loop = asyncio.get_running_loop()
    attempt = 0
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        pending = 0
        if futures:
            book = report.book("futures")
            try:
                positions = await venue.positions(None, timeout=max(0.1, remaining), retries=0)
                book.holdings_unverified = None
            except AuthError:
                positions = []
                book.holdings_unverified = None
            except ExchangeOpError as err:
                positions = []
                book.holdings_unverified = f"position sizes unknown: {type(err).__name__}: {err}"[:300]
                pending += 1
            sizes: set[tuple[str, PositionSide]] = set()
            for p in positions:
                side = p.side if p.hedged else PositionSide.BOTH
                held = report.of(p.symbol).position(side)
                if _negligible(venue, p.symbol, p.contracts, None):
                    held.still_open = 0.0
                    continue
                sizes.add((p.symbol, side))
                held.still_open = p.contracts * (-1 if p.side is PositionSide.SHORT else 1)
                close_side = Side.SELL if p.side is PositionSide.LONG else Side.BUY
                if await closer.send(p.symbol, close_side, p.contracts, side, not p.hedged, max(0.1, deadline - loop.time())):
                    held.closed += p.contracts
                pending += 1
            for sym, o in report.symbols.items():  # a futures position no longer listed is flat
                for side, held in o.positions.items():
                    if ":" in sym and (sym, side) not in sizes:
                        held.still_open = 0.0
        if spot_symbols:
            book = report.book("spot")
            try:
                balances = await venue.balances("spot", timeout=max(0.1, deadline - loop.time()), retries=0)
                book.holdings_unverified = None
            except ExchangeOpError as err:
                book.holdings_unverified = f"balances unknown: {type(err).__name__}: {err}"[:300]
                balances = None
                pending += 1
            for sym in spot_symbols if balances is not None else []:
                base = text(venue.markets.get(sym, {}).get("base")) or sym.split("/")[0]
                asset = balances.assets.get(base) if balances is not None else None
                free = asset.free if asset is not None else 0.0
                price = await _last_price(venue, sym, deadline)
                held = report.of(sym).position()
                if _negligible(venue, sym, free, price):
                    held.still_open = 0.0
                    continue
                held.still_open = free
                if await closer.send(sym, Side.SELL, free, PositionSide.BOTH, False, max(0.1, deadline - loop.time())):
                    held.closed += free
                pending += 1
        if not pending:
            return
        await asyncio.sleep(min(pause(attempt), max(0.0, deadline - loop.time())))
        attempt += 1


async def _last_price(venue: Venue, symbol: str, deadline: float) -> float | None:
    try:
        tk = await venue.ticker(symbol, timeout=max(0.1, deadline - asyncio.get_running_loop().time()))
    except ExchangeOpError:
        return None
    return tk.last if tk.last is not None and tk.last > 0 else None


async def account_emergency_stop(
    venue: Venue,
    account: str,
    members: list[Member],
    reason: str = "Manual trigger",
    close: bool = False,
    budget_s: float = 30.0,
    sink: EventSink | None = None,
    account_dir: str | None = None,
    alert: Callable[[str, str], object] | None = None,
) -> AccountEStopReport:
    """Halt every member, cancel every open order of the account (spot and futures, every symbol, the Algo
    Service too) until the exchange lists none, optionally close positions (``account_dir``: where the closing
    orders' ids and journal live), record, alert. ``client`` has its markets loaded. Idempotent."""
    sink = sink if sink is not None else MemorySink()
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget_s
    report = AccountEStopReport(account, reason)
    log.error("ACCOUNT EMERGENCY STOP TRIGGERED on %s: %s", account, reason)
    halt_members(members, reason, report, sink)
    with venue.urgent():  # no cap of the engine's own delays the stop (the exchange's limits still pace it)
        await cancel_account_orders(venue, members, deadline, report)
        if close:
            if account_dir is None:
                raise ValueError("account_dir: required to close positions (the closing orders' ids and journal live there)")
            closer = Closer(venue, account_dir)
            try:
                spot = sorted({sym for m in members if m.margin is False for sym in m.universe})
                await close_positions(venue, closer, spot, deadline, report)
            finally:
                closer.close()
            await cancel_account_orders(venue, members, max(deadline, loop.time() + 2.0), report)
    report.seconds = time.perf_counter() - started
    for m in members:  # what re-arm must see settled first
        StateStore(m.shared_root).update(estop_unverified=_outstanding(report, m))
    sink.record("emergency_stop", reason=f"account {account}: {reason}", payload=report.as_dict())
    sink.flush()
    message = f"ACCOUNT EMERGENCY STOP ({account}): {reason}. {report.summary()}"
    (log.error if report.clean else log.critical)(message)
    if alert is not None:
        alert(message, "critical")
    return report


def _outstanding(report: AccountEStopReport, m: Member) -> dict[str, str]:
    """The member's part of what the stop could not confirm, keyed by symbol as the strategy e-stop keys it (re-arm
    lists those symbols again): its symbols still listing open orders, and, when a whole book could not be read,
    each of its symbols of that book."""
    out = {f"{sym}: still open": f"{n} order(s)" for sym, n in report.remaining_open.items() if sym in m.universe}
    for book, (key, why, _) in report._unverified():
        for sym in m.universe:
            if book is None or (book == "futures") == bool(m.margin):  # None: the whole exchange, every member
                out[f"{sym}: {key}"] = why
    return out
