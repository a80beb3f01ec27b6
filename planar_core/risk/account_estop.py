"""The account emergency stop: every strategy trading one exchange account halted, every open order of the
account cancelled (whoever placed it) and verified, positions optionally closed, and a report of what each
strategy had open.

A strategy's e-stop (``risk.estop``) cancels that strategy's orders only. This is the one path that uses the
account-wide cancel (``ExchangeClient.cancel_every_order``: Binance's DELETE openOrders / allOpenOrders /
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

from ..exchange.client import ExchangeClient
from ..exchange.client_ids import ClientOrderIds, identity_of, intent_journal, planar_identity
from ..exchange.errors import AuthError, ExchangeOpError
from ..model.json import num, obj, text
from ..model.sink import EventSink, MemorySink
from ..model.types import Json
from ..state import StateStore
from ..storage import is_remote
from .estop import not_clean_parts, pause

log = logging.getLogger("planar.risk.account_estop")
FOREIGN = "foreign/manual"
BOOKS = {"spot": "spot", "swap": "futures"}


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
class AccountEStopReport:
    account: str
    reason: str
    strategies: list[str] = field(default_factory=list)  # halted
    found: list[OpenOrder] = field(default_factory=list)  # every open order seen (first sighting)
    cancelled: int = 0  # orders seen open and confirmed no longer open by a later listing
    remaining_open: dict[str, int] = field(default_factory=dict)  # symbol -> orders the exchange still lists open
    closed: dict[str, float] = field(default_factory=dict)  # symbol -> amount sent to close
    remaining_positions: dict[str, float] = field(default_factory=dict)  # symbol -> size the exchange still reports
    unverified: dict[str, str] = field(default_factory=dict)  # what could not be confirmed -> why
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cancelled_runs: list[str] = field(default_factory=list)  # filled in by the orchestrator

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
        parts = not_clean_parts(self.remaining_open, self.remaining_positions, self.unverified)
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
        d = asdict(self)
        d["clean"] = self.clean
        d["by_owner"] = {k: len(v) for k, v in self.by_owner().items()}
        return d


def owner_of(client_order_id: str | None, members: list[Member]) -> str:
    """The member whose identity the id encodes exactly, else ``foreign/manual``."""
    identity = planar_identity(client_order_id)
    return next((m.name for m in members if identity is not None and m.identity == identity), FOREIGN)


def _row(raw: Json, market_type: str, members: list[Member], algo: bool) -> OpenOrder:
    cid = text(raw.get("clientOrderId")) or ""
    return OpenOrder(
        owner_of(cid, members),
        text(raw.get("symbol")) or "?",
        BOOKS.get(market_type, market_type) + (" algo" if algo else ""),
        cid,
        text(raw.get("id")) or "",
        text(raw.get("side")) or "",
        text(raw.get("type")) or "",
        num(raw.get("amount")),
        num(raw.get("price")) or num(raw.get("triggerPrice")) or None,
    )


def halt_members(members: list[Member], reason: str, report: AccountEStopReport, sink: EventSink) -> None:
    """Every member halted first (persisted; a running engine reads it before each order): whatever the exchange
    does next, nothing new is traded."""
    for m in members:
        StateStore(m.shared_root).update(
            halted=True, halt_reason=f"account emergency stop: {reason}", halted_at=int(time.time() * 1000), halted_by_emergency_stop=True
        )
        report.strategies.append(m.name)
        sink.record("halted", reason=f"account emergency stop ({m.name}): {reason}")


async def _list(
    client: ExchangeClient, market_types: tuple[str, ...], remaining: float, report: AccountEStopReport
) -> dict[str, list[Json]]:
    """The account's open orders per market type, without the market types that could not be listed (unverified).
    A market type the key may not use (an authentication refusal) has no order this key could have placed: skipped,
    said in the errors."""
    out: dict[str, list[Json]] = {}
    for mt in market_types:
        key = f"{BOOKS.get(mt, mt)}: open orders"
        try:
            out[mt] = await client.account_open_orders(mt, max(0.1, remaining), retries=0)
            report.unverified.pop(key, None)
        except AuthError as err:
            report.unverified.pop(key, None)
            if not any(e.startswith(f"{BOOKS.get(mt, mt)}: not accessible") for e in report.errors):
                report.errors.append(f"{BOOKS.get(mt, mt)}: not accessible with this API key ({err}): skipped"[:300])
        except ExchangeOpError as err:
            report.unverified[key] = f"could not list: {type(err).__name__}: {err}"[:300]
            report.errors.append(f"{key}: {err}"[:300])
    return out


async def cancel_account_orders(
    client: ExchangeClient,
    members: list[Member],
    deadline: float,
    report: AccountEStopReport,
    market_types: tuple[str, ...] = ("spot", "swap"),
) -> None:
    """List the account's open orders, cancel every symbol that has any with the account-wide cancel, list again,
    until a listing of every market type is empty or ``deadline`` (loop time) passes."""
    loop = asyncio.get_running_loop()
    seen: dict[str, OpenOrder] = {o.key: o for o in report.found}
    for mt in market_types:
        report.unverified.setdefault(f"{BOOKS.get(mt, mt)}: open orders", "not listed yet")
    attempt = 0
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        listed = await _list(client, market_types, remaining, report)
        rows = [(mt, raw) for mt, raws in listed.items() for raw in raws]
        open_ids = set()
        for mt, raw in rows:
            row = _row(raw, mt, members, client.venue.is_algo_record(raw))
            open_ids.add(row.key)
            if row.key not in seen:
                seen[row.key] = row
                report.found.append(row)
        if not report.unverified:  # a complete listing: what was seen open and is no longer listed is gone
            report.cancelled = len(set(seen) - open_ids)
        report.remaining_open = {}
        for _, raw in rows:
            sym = text(raw.get("symbol")) or "?"
            report.remaining_open[sym] = report.remaining_open.get(sym, 0) + 1
        if not rows and not report.unverified:
            return
        symbols = sorted({text(raw.get("symbol")) or "" for _, raw in rows} - {""})
        results = await asyncio.gather(
            *(client.cancel_every_order(sym, max(0.1, deadline - loop.time()), retries=0) for sym in symbols), return_exceptions=True
        )
        report.errors.extend(f"{sym}: cancel all: {r}"[:300] for sym, r in zip(symbols, results) if isinstance(r, BaseException))
        await asyncio.sleep(min(pause(attempt), max(0.0, deadline - loop.time())))  # then list again
        attempt += 1


def _negligible(client: ExchangeClient, symbol: str, qty: float, price: float | None) -> bool:
    """Nothing to close: zero, or below what the market lets anyone trade (dust)."""
    if qty <= 0:
        return True
    try:
        rounded = float(client.ex.amount_to_precision(symbol, qty))
    except Exception:  # rounds to zero at the market's precision
        return True
    limits = obj(client.markets.get(symbol, {}).get("limits"))
    if rounded < num(obj(limits.get("amount")).get("min")):
        return True
    contract = bool(client.markets.get(symbol, {}).get("contract"))
    return not contract and bool(price) and rounded * (price or 0.0) < num(obj(limits.get("cost")).get("min"))


class Closer:
    """The closing orders of the account e-stop: market orders, journaled (``intents.jsonl``) before they are sent,
    with client ids of their own identity (``account-estop``; ``foreign/manual`` in a later report), under
    ``<store_root>/accounts/<account>``."""

    def __init__(self, client: ExchangeClient, account_dir: str) -> None:
        from pathlib import Path

        self.client = client
        self.ids = ClientOrderIds(account_dir, "account-estop")
        self.journal = intent_journal(Path(account_dir if not is_remote(account_dir) else "."), account_dir)

    async def send(self, symbol: str, side: str, amount: float, params: Json, timeout: float) -> bool:
        cid = self.ids.next()
        qty = float(self.client.ex.amount_to_precision(symbol, amount))
        self.journal.intent(cid, symbol=symbol, side=side, type="market", amount=qty, **{k: v for k, v in params.items() if k != "type"})
        try:
            raw = await self.client.call(
                "create_order",
                lambda: self.client.ex.create_order(symbol, "market", side, qty, None, {**params, "clientOrderId": cid}),
                timeout,
                idempotent=False,
                retries=0,
            )
        except ExchangeOpError as err:  # refused, or outcome unknown (no outcome journaled): the next reading says
            if not err.transient:
                self.journal.outcome(cid, "rejected", None, str(err)[:200])
            log.warning("account e-stop: closing order on %s not confirmed: %s", symbol, err)
            return False
        self.journal.outcome(cid, "accepted", text(obj(raw).get("id")))
        return True

    def close(self) -> None:
        self.journal.close()


async def close_positions(
    client: ExchangeClient, closer: Closer, spot_symbols: list[str], deadline: float, report: AccountEStopReport, futures: bool = True
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
            try:
                positions = await client.call(
                    "fetch_positions",
                    lambda: client.ex.fetch_positions(),
                    max(0.1, remaining),
                    retries=0,
                    validate=lambda x: isinstance(x, list),
                )
                report.unverified.pop("futures: positions", None)
            except AuthError:
                positions = []
                report.unverified.pop("futures: positions", None)
            except ExchangeOpError as err:
                positions = []
                report.unverified["futures: positions"] = f"position sizes unknown: {type(err).__name__}: {err}"[:300]
                pending += 1
            sizes: dict[str, float] = {}
            for p in positions:
                sym, size = text(p.get("symbol")) or "", num(p.get("contracts"))
                key = sym + (f"#{p.get('side')}" if client.venue.closing_params(p).get("positionSide") else "")
                if _negligible(client, sym, size, None):
                    report.remaining_positions.pop(key, None)
                    continue
                sizes[key] = size
                report.remaining_positions[key] = size * (-1 if p.get("side") == "short" else 1)
                side = "sell" if p.get("side") == "long" else "buy"
                if await closer.send(sym, side, size, client.venue.closing_params(p), max(0.1, deadline - loop.time())):
                    report.closed[key] = report.closed.get(key, 0.0) + size
                pending += 1
            for key in [k for k in report.remaining_positions if ":" in k.split("#")[0] and k not in sizes]:
                report.remaining_positions.pop(key)
        if spot_symbols:
            try:
                bal = await client.call(
                    "fetch_balance", lambda: client.ex.fetch_balance({"type": "spot"}), max(0.1, deadline - loop.time()), retries=0
                )
                report.unverified.pop("spot: balances", None)
            except ExchangeOpError as err:
                report.unverified["spot: balances"] = f"balances unknown: {type(err).__name__}: {err}"[:300]
                bal = None
                pending += 1
            for sym in spot_symbols if bal is not None else []:
                base = text(client.markets.get(sym, {}).get("base")) or sym.split("/")[0]
                free = num(obj(bal.get(base)).get("free")) if isinstance(bal, dict) else 0.0
                price = await _last_price(client, sym, deadline)
                if _negligible(client, sym, free, price):
                    report.remaining_positions.pop(sym, None)
                    continue
                report.remaining_positions[sym] = free
                if await closer.send(sym, "sell", free, {}, max(0.1, deadline - loop.time())):
                    report.closed[sym] = report.closed.get(sym, 0.0) + free
                pending += 1
        if not pending:
            return
        await asyncio.sleep(min(pause(attempt), max(0.0, deadline - loop.time())))
        attempt += 1


async def _last_price(client: ExchangeClient, symbol: str, deadline: float) -> float | None:
    try:
        tk = await client.call(
            "fetch_ticker", lambda: client.ex.fetch_ticker(symbol), max(0.1, deadline - asyncio.get_running_loop().time()), retries=0
        )
    except ExchangeOpError:
        return None
    last = obj(tk).get("last")
    return float(last) if isinstance(last, (int, float)) and last > 0 else None


async def account_emergency_stop(
    client: ExchangeClient,
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
    await cancel_account_orders(client, members, deadline, report)
    if close:
        if account_dir is None:
            raise ValueError("account_dir: required to close positions (the closing orders' ids and journal live there)")
        closer = Closer(client, account_dir)
        try:
            spot = sorted({sym for m in members if m.margin is False for sym in m.universe})
            await close_positions(client, closer, spot, deadline, report)
        finally:
            closer.close()
        await cancel_account_orders(client, members, max(deadline, loop.time() + 2.0), report)
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
    lists those symbols again): its symbols still listing open orders, and, when a whole market could not be
    listed, each of its symbols of that market."""
    out = {f"{sym}: still open": f"{n} order(s)" for sym, n in report.remaining_open.items() if sym in m.universe}
    for key, why in report.unverified.items():
        book = key.split(":", 1)[0]
        for sym in m.universe:
            if (book == "futures") == bool(m.margin):
                out[f"{sym}: {key}"] = why
    return out
