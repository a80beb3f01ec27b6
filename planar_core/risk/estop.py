"""The emergency stop of one strategy: halt, cancel its orders, optionally flatten, alert, record. Idempotent.

Works on a running strategy and standalone (``runner.emergency_stop_standalone``), from nothing but the config and
credentials, so a fresh process can stop a strategy whose engine is dead or hung. Cancels run per asset in
parallel; every step is verified against the exchange and retried until ``risk.estop_budget_s`` runs out.

A strategy's e-stop cancels its own orders only (by id, never Binance's account-wide DELETE openOrders): the
account may carry other strategies' orders on the same symbols, and they stay open (counted in ``left_alone``).
Stopping a whole account is the account emergency stop (``risk.account_estop``). A strategy whose config says the
account is its own (``risk.exclusive_account``, off by default) cancels each symbol with one cancel-all instead.

Nothing is reported clean without the exchange's word: a symbol whose open orders could not be listed, or
whose cancels were not confirmed by a later listing, is *unverified*; a position whose size could not be read is
*unknown*, never flat. Local orders keep their status until the exchange reports how they ended. The report
says exactly what is unverified (it is in the alert, the trace, the flow artifact and the CLI's exit code), and
the strategy stays halted either way.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from ..exchange.errors import ExchangeOpError
from ..model.cancels import as_cancelled, cancel_target
from ..model.dust import below_minimum
from ..model.types import Json, PositionSide
from ..model.venue import OrderRef, OrderReport, PositionReport
from .outcome import Entry, OrdersOutcome, OutcomeTables, SymbolOutcome, Table, not_clean_parts, position_key
from .ownership import own_share

if TYPE_CHECKING:
    from ..engine.strategy import Strategy
    from ..model import AssetInstance, Order

log = logging.getLogger("planar.risk.estop")
__all__ = ["EStopReport", "conclude", "emergency_stop", "not_clean_parts", "pause", "settle_symbol"]


@dataclass
class EStopReport(OutcomeTables):
    """A strategy e-stop's outcome: per symbol (``symbols``), its orders and its position (risk/outcome.py); the
    tables and the summary are rendered from it."""

    reason: str
    symbols: dict[str, SymbolOutcome] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cancelled_later: int = 0  # orders cancelled by earlier attempts of the e-stop flow's per-symbol task runs

    @classmethod
    def unreachable(cls, reason: str, symbols: list[str], why: str, seconds: float = 0.0) -> EStopReport:
        """The exchange could not be reached at all: every symbol unverified, for ``why``."""
        return cls(reason, {sym: SymbolOutcome(unreachable=why) for sym in symbols}, seconds=seconds)

    def of(self, symbol: str) -> SymbolOutcome:
        return self.symbols.setdefault(symbol, SymbolOutcome())

    def merge(self, part: EStopReport) -> None:
        """Take one symbol's report (the e-stop flow's per-symbol task runs) into the whole."""
        self.symbols.update(part.symbols)
        self.errors += part.errors
        self.cancelled_later += part.cancelled_later

    @property
    def cancelled(self) -> int:
        """Orders seen open and confirmed no longer open."""
        return sum(o.orders.cancelled for o in self.symbols.values()) + self.cancelled_later

    @property
    def already_gone(self) -> int:
        """Orders the strategy's record had open that the exchange no longer listed when the stop first looked."""
        return sum(o.orders.already_gone for o in self.symbols.values())

    @property
    def left_alone(self) -> dict[str, int]:
        """Symbol -> open orders on the account that are not ours."""
        return {sym: o.orders.left_alone for sym, o in self.symbols.items() if o.orders.left_alone}

    @property
    def positions_left_alone(self) -> dict[str, float]:
        """Position -> the account's signed holding that is not ours (another strategy's, or older than our trace),
        left open by a stop that closes positions on a shared account (risk/ownership.py)."""
        return {
            position_key(sym, side): p.left_to_others
            for sym, o in self.symbols.items()
            for side, p in o.positions.items()
            if p.left_to_others
        }

    @property
    def unverified(self) -> Table[str]:
        """What could not be confirmed -> why: ``<symbol>: everything`` (the exchange unreachable), ``<symbol>: open
        orders`` (not listed), ``<symbol>: position`` (not read)."""

        def entries() -> list[Entry[str]]:
            out: list[Entry[str]] = []
            for sym, o in self.symbols.items():
                if o.unreachable is not None:
                    out.append((f"{sym}: everything", o.unreachable, partial(setattr, o, "unreachable", None)))
            for sym, o in self.symbols.items():
                if o.orders.unverified is not None:
                    out.append((f"{sym}: open orders", o.orders.unverified, partial(setattr, o.orders, "unverified", None)))
            for sym, o in self.symbols.items():
                if o.position_unverified is not None:
                    out.append((f"{sym}: position", o.position_unverified, partial(setattr, o, "position_unverified", None)))
            return out

        return Table(entries)

    @property
    def clean(self) -> bool:
        """True only when the exchange itself confirmed: no open order, no position left, nothing unverified."""
        return not self.remaining_open and not self.remaining_positions and not self.unverified

    def summary(self) -> str:
        others = f"; other strategies' / foreign orders left open {self.left_alone}" if self.left_alone else ""
        if self.positions_left_alone:
            others += f"; holdings not this strategy's left open {self.positions_left_alone}"
        if self.clean:
            return f"clean: {self.cancelled} orders cancelled" + (f", closed {self.closed}" if self.closed else "") + others
        parts = not_clean_parts(dict(self.remaining_open), dict(self.remaining_positions), dict(self.unverified))
        return f"NOT CLEAN after {self.seconds:.1f}s: " + "; ".join(parts) + f" (cancelled {self.cancelled})"

    def outstanding(self) -> dict[str, str]:
        """What the exchange has not confirmed settled, as persisted for re-arm to check: the unverified entries
        and the symbols still listing open orders."""
        return {**self.unverified, **{f"{sym}: still open": f"{n} order(s)" for sym, n in self.remaining_open.items()}}

    def as_dict(self) -> Json:
        """The report as the trace and the flows keep it: the rendered tables, and the structure under ``symbols``."""
        return {
            "reason": self.reason,
            "cancelled": self.cancelled,
            "already_gone": self.already_gone,
            "closed": self.closed,
            "remaining_open": dict(self.remaining_open),
            "remaining_positions": dict(self.remaining_positions),
            "unverified": dict(self.unverified),
            "left_alone": self.left_alone,
            "positions_left_alone": self.positions_left_alone,
            "errors": list(self.errors),
            "seconds": self.seconds,
            "clean": self.clean,
            "symbols": {sym: outcome_dict(o) for sym, o in self.symbols.items()},
        }


def outcome_dict(o: SymbolOutcome) -> Json:
    d = asdict(o)
    del d["orders"]["counted"]
    d["positions"] = {side.value: asdict(p) for side, p in o.positions.items()}
    return d


def pause(attempt: int) -> float:
    return min(2.0, 0.1 * 2.0**attempt)


def _target(report: OrderReport) -> OrderRef:
    """How the exchange names a listed order for its cancel: by id (a conditional order still waiting for its
    trigger is cancelled where it waits)."""
    return OrderRef(report.client_order_id or "", report.id, report.conditional)


def _ours(s: "Strategy", symbol: str, report: OrderReport) -> bool:
    """A listed order this strategy tracks once the listing was applied: its own (the id encodes its identity) or
    one it adopted by its foreign-order policy. Never another strategy's (``engine.updates`` never admits those)."""
    ai = s.universe.get(symbol)
    if ai is None:
        return False
    cid, oid = report.client_order_id, report.id
    if cid is not None and cid in ai.orders:
        return True
    return oid is not None and not report.conditional and ai.order_by_id(oid) is not None


def recorded_open(s: "Strategy") -> dict[str, set[str]]:
    """The strategy's orders its record leaves open beyond what a listing of its universe shows: from a fresh
    process, those its traces left open (any symbol); in the engine, those its start-up found resting on symbols
    outside its universe. A trace that cannot be read gives none (the listings still verify the universe)."""
    if s.running:
        return {sym: set(cids) for sym, cids in s.book.outside_universe().items()}
    try:
        return s.orders_open_outside_engine()
    except Exception as exc:
        log.warning("the orders the traces left open could not be read (%s): the exchange's listings alone verify", exc)
        return {}


async def cancel_recorded(s: "Strategy", symbol: str, cids: set[str], deadline: float, report: EStopReport) -> None:
    """The orders the record leaves open on ``symbol`` that no listing or cancel of this stop has accounted for,
    each looked up by its client id: cancelled when open, counted gone when ended, and unverified when the exchange
    has no word of it (its listings and look-ups may lag its book: Binance's "engine behind"). The stop said CLEAN
    with all six of a strategy's orders resting, on one listing that did not show them yet (an outside crash trial)."""
    loop = asyncio.get_running_loop()
    out = report.of(symbol).orders
    ai = s.universe.get(symbol)
    left = sorted(c for c in cids if ai is None or c not in ai.orders)  # one a listing showed is the listings' to count
    unseen: list[str] = []
    refused: list[str] = []  # found open by a look-up, and the cancel did not confirm: still open
    for cid in left:
        try:
            found = await s.lookup_order(symbol, cid, timeout=max(0.1, deadline - loop.time()))
        except ExchangeOpError:
            unseen.append(cid)
            continue
        if found is None:
            unseen.append(cid)
        elif found.status is not None and found.status.is_final:
            out.already_gone += 1
        else:
            result = await s.venue.cancel_orders(symbol, [_target(found)], timeout=max(0.1, deadline - loop.time()), retries=0)
            if cid in result.cancelled:
                out.cancelled += 1
                if ai is not None:
                    s.apply_order(as_cancelled(symbol, cid, result.cancelled[cid]), source="estop")
            else:  # "not open" may be "not visible yet": only a look-up or a listing that shows it ended says gone
                unseen.append(cid)
                refused.append(cid)
    if unseen:
        out.unverified = (
            f"{len(unseen)} order(s) its record left open ({', '.join(unseen[:3])}) are neither listed nor found by the exchange"
            " (its book may lag): run the stop again"
        )[:300]
        # unverified, not open: the exchange knows none of them (an outside soak trial: the headline called four
        # orders never booked "STILL OPEN" with none open); only one a look-up found open is counted open
        out.still_open = len(refused)
    elif out.unverified == "not listed yet":
        out.unverified = None


async def _cancel_asset(s: "Strategy", symbol: str, deadline: float, report: EStopReport, recorded: set[str] | None = None) -> None:
    """Cancel this strategy's open orders on ``symbol`` (by id, batched where the venue allows) until a listing of
    the open orders shows none of them, or the budget ends; then the orders its record left open that no listing
    showed (``cancel_recorded``). Other strategies' orders on the account stay open."""
    await _cancel_listed(s, symbol, deadline, report)
    if recorded and report.of(symbol).orders.unverified is None:
        await cancel_recorded(s, symbol, recorded, deadline, report)


async def _cancel_listed(s: "Strategy", symbol: str, deadline: float, report: EStopReport) -> None:
    """``_cancel_asset``'s listings: cancel until a listing shows none of the strategy's orders."""
    loop = asyncio.get_running_loop()
    out = report.of(symbol).orders
    if out.unverified is None:
        out.unverified = "not listed yet"  # until the exchange lists them
    seen: set[str] = set()  # exchange ids of this strategy's orders a listing showed open
    confirmed: set[str] = set()  # ... and of those whose cancel by this stop the exchange confirmed
    ai = s.universe.get(symbol)
    local = [o for o in ai.open_orders() if o.id is not None] if ai is not None else []
    known = {str(o.id) for o in local}
    if ai is not None and s.config.risk.exclusive_account and not any(o.id is None for o in ai.open_orders()):
        if await _cancel_everything(s, ai, local, deadline, report):
            return
    if ai is not None and local:  # a running engine names its open orders: cancel them and list, at the same time
        in_flight = any(o.id is None for o in ai.open_orders())  # sent, not acknowledged: the listing must come after
        listing = asyncio.ensure_future(s.venue.open_orders(symbol, timeout=max(0.1, deadline - loop.time()), retries=0))
        seen = await _cancel_known(s, ai, local, deadline, report)  # no word on these: the listings tell when they are gone
        known = set()
        try:
            listed = await listing
        except ExchangeOpError as err:
            report.errors.append(f"{symbol}: fetch_open_orders: {err}"[:300])
        else:
            if not seen and not in_flight and _only_named(s, symbol, listed, local, out):
                return  # one round trip: every order named was confirmed, and the listing shows no other of ours
    first = True
    attempt = 0
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        try:
            listed = await s.venue.open_orders(symbol, timeout=remaining, retries=0)  # conditional orders too
        except ExchangeOpError as err:
            out.unverified = f"could not list open orders: {type(err).__name__}: {err}"[:300]
            report.errors.append(f"{symbol}: fetch_open_orders: {err}"[:300])
            await asyncio.sleep(min(pause(attempt), max(0.0, deadline - loop.time())))
            attempt += 1
            continue
        if first:  # cancelled by the running engine (on its own connections), or filled, before this stop looked
            out.already_gone += len(known - {str(r.id) for r in listed})
            first = False
        with s.group():
            for r in listed:
                s.apply_order(r, source="estop")
        mine = [r for r in listed if _ours(s, symbol, r)]
        out.left_alone = len(listed) - len(mine)
        ids = {str(r.id) for r in mine}
        # gone since it was listed: cancelled by this stop when its own cancel was confirmed, else by whoever else
        # (a running engine's stop racing this one, a fill): each order counted once across the two stops' reports
        out.cancelled += len((seen - ids) & confirmed)
        out.already_gone += len(seen - ids - confirmed)
        seen -= seen - ids
        out.unverified = None
        if not mine:
            out.still_open = 0
            return
        seen |= ids
        out.still_open = len(mine)
        result = await s.venue.cancel_orders(symbol, [_target(r) for r in mine], timeout=max(0.1, deadline - loop.time()), retries=0)
        confirmed |= {str(r.id) for r in mine if (r.client_order_id or "") in result.cancelled}
        with s.group():
            for cid, r in result.cancelled.items():
                s.apply_order(as_cancelled(symbol, cid, r), source="estop")
        if result.unconfirmed:  # closed meanwhile, or not reached: the next listing says
            report.errors.extend(f"{symbol}: cancel {cid}: {why}"[:300] for cid, why in list(result.unconfirmed.items())[:5])
            await asyncio.sleep(min(pause(attempt), max(0.0, deadline - loop.time())))
            attempt += 1


async def _cancel_everything(s: "Strategy", ai: "AssetInstance", local: list["Order"], deadline: float, report: EStopReport) -> bool:
    """The account is the strategy's alone (``risk.exclusive_account``): one cancel-all request per book of the
    symbol. Its success is the exchange's word that nothing is left open there (the strategy is halted and has no
    order in flight), so the symbol is verified in one round trip. The orders the answer names are applied as
    cancelled; orders of others among them are counted and said (the account was not exclusive after all). Where
    the answer names no order (Binance USD-M's answer never does; an empty book answers nothing either), the
    strategy's open orders count as cancelled: the exchange said nothing is open any more, and the count cannot tell
    those it cancelled from those already gone (the orders' own reports set their status, as always). False when the
    request failed: the caller cancels by id and lists, as for a shared account."""
    loop = asyncio.get_running_loop()
    out = report.of(ai.symbol).orders
    try:
        answered = await s.venue.cancel_every_order(ai.symbol, timeout=max(0.1, deadline - loop.time()), retries=0)
    except ExchangeOpError as err:
        report.errors.append(f"{ai.symbol}: cancel-all: {err}"[:300])
        return False
    # matched by exchange id: a cancel's answer may carry the cancel request's own client id (Binance spot)
    ours = {str(o.id): o for o in local}
    named = {str(r.id): r for r in answered if r.id is not None}
    with s.group():
        for oid, r in named.items():
            if oid in ours:
                s.apply_order(as_cancelled(ai.symbol, ours[oid].client_order_id, r), source="estop")
    fresh = {
        oid for oid, o in ours.items() if o.client_order_id not in out.counted
    }  # a second pass (after closing positions) counts none twice
    out.counted.update(ours[oid].client_order_id for oid in fresh)
    out.cancelled += len(fresh & named.keys()) if named else len(fresh)
    out.already_gone += len(fresh - named.keys()) if named else 0
    foreign = [r for oid, r in named.items() if oid not in ours and ai.order_by_id(oid) is None]
    if foreign:
        report.errors.append(
            f"{ai.symbol}: the cancel-all also cancelled {len(foreign)} order(s) not this strategy's "
            "(risk.exclusive_account is set, but the account is shared)"
        )
    out.unverified = None
    out.still_open = 0
    return True


def _only_named(s: "Strategy", symbol: str, listed: list[OrderReport], named: list["Order"], out: OrdersOutcome) -> bool:
    """A listing taken while the named orders were being cancelled, each of them confirmed cancelled or gone: the
    symbol is verified when it shows no other order of this strategy. Sound because the strategy is halted (it
    sends nothing new) and nothing of it is in flight: an order it does not name was open before the cancels and
    stays open until cancelled, so the listing shows it whenever it was taken. Orders it lists that were named
    may show either side of their cancel; their cancel's answer is the exchange's word."""
    cids, ids = {o.client_order_id for o in named}, {str(o.id) for o in named}
    ours = [r for r in listed if _ours(s, symbol, r)]
    if any(r.client_order_id not in cids and str(r.id) not in ids for r in ours):
        return False
    out.left_alone = len(listed) - len(ours)
    out.unverified = None
    out.still_open = 0
    return True


async def _cancel_known(s: "Strategy", ai: "AssetInstance", local: list["Order"], deadline: float, report: EStopReport) -> set[str]:
    """The orders the engine's record has open on ``ai``, cancelled by id before any listing (one round trip fewer:
    the listing that follows verifies, and catches what the record does not know). Those the exchange confirmed
    cancelled are counted cancelled, those it named not open already gone; answers the exchange ids of the rest,
    the listing's to tell."""
    loop = asyncio.get_running_loop()
    out = report.of(ai.symbol).orders
    try:
        result = await s.venue.cancel_orders(
            ai.symbol, [cancel_target(ai, o) for o in local], timeout=max(0.1, deadline - loop.time()), retries=0
        )
    except ExchangeOpError as err:
        report.errors.append(f"{ai.symbol}: cancel: {err}"[:300])
        return {str(o.id) for o in local}
    with s.group():
        for cid, r in result.cancelled.items():
            s.apply_order(as_cancelled(ai.symbol, cid, r), source="estop")
    out.cancelled += sum(1 for o in local if o.client_order_id in result.cancelled)
    out.already_gone += sum(1 for o in local if o.client_order_id in result.not_open)
    for cid, why in list(result.unconfirmed.items())[:5]:
        report.errors.append(f"{ai.symbol}: cancel {cid}: {why}"[:300])
    return {str(o.id) for o in local if o.client_order_id not in result.cancelled and o.client_order_id not in result.not_open}


async def _settle_local(s: "Strategy", symbol: str) -> None:
    """The exchange lists no open order on ``symbol`` any more: learn how each local one ended (one history
    request). An order it does not report keeps its status; orders without an exchange id are the resolver's."""
    ai = s.universe.get(symbol)
    left = [o for o in ai.open_orders() if o.id is not None] if ai is not None else []
    if ai is None or not left:
        return
    since = min(o.timestamp for o in left) - 60_000
    try:
        history = await s.venue.order_history(symbol, timeout=s.config.timeouts.order_cancellation, since=since)
    except ExchangeOpError as err:
        log.warning("after the e-stop, could not learn how the orders on %s ended: %s", symbol, err)
        return
    cids = {o.client_order_id for o in left}
    with s.group():  # one durable write for the whole batch
        for r in history:
            if r.client_order_id in cids or (r.id is not None and ai.order_by_id(r.id) in left):
                s.apply_order(r, source="estop")


def _lease_free(s: "Strategy") -> bool:
    """Nobody holds the strategy's engine lease (its engine is not running); a lease that cannot be probed (an object
    store's) reads as held."""
    probe = getattr(s.lease, "is_free", None)
    return bool(probe()) if callable(probe) else False


async def _outside_basis(s: "Strategy", deadline: float) -> dict[str, str]:
    """Before a stop from outside the engine closes on a shared account: the strategy's own part from its traces,
    once its engine has let go (a live engine closes its own part in its own e-stop, records it, and stops; a
    hung one never lets go). Returns the symbols whose part cannot be told, with why (they are not closed)."""
    if s.running or s.config.risk.exclusive_account:
        return {}
    loop = asyncio.get_running_loop()
    while not _lease_free(s) and loop.time() < deadline - 1.0:
        await asyncio.sleep(0.2)
    if not _lease_free(s):
        return {sym: "its engine still holds its lease (running or hung): its part is not known outside it" for sym in s.universe}
    try:
        return await s.own_basis_outside_engine()
    except Exception as err:  # a trace that cannot be read: nothing is closed that cannot be told
        why = f"its trace could not be read ({type(err).__name__}: {err})"[:300]
        return {sym: why for sym in s.universe}


async def _close_asset(s: "Strategy", symbol: str, deadline: float, report: EStopReport, doubts: dict[str, str] | None = None) -> None:
    """Flatten this strategy's holding of one asset: futures with a reduce-only market order, spot by selling coins;
    then read the account again until its part is closed. On an account others trade too (not
    ``risk.exclusive_account``) its part is its own position (risk/ownership.py), fixed at the first read: the rest
    of the account's holding is left alone and reported, and each order sent counts by what it filled, its outcome
    awaited before anything more is sent, so no outcome unknown is closed twice."""
    loop = asyncio.get_running_loop()
    ai = s.universe[symbol]
    out = report.of(symbol)
    if doubts and symbol in doubts:  # a stop from outside the engine that cannot tell this strategy's part: not closed
        out.position_unverified = f"this strategy's part of the holding is not known here: {doubts[symbol]}; not closed"[:300]
        return
    if out.position_unverified is None:
        out.position_unverified = "not read: the budget ran out before the position could be read"
    shared = not s.config.risk.exclusive_account
    ours: dict[PositionSide, float] = {}  # shared: the part to close, signed, fixed at the first read
    sent: dict[str, PositionSide] = {}  # shared: our closing orders' client ids
    against: dict[PositionSide, str] = {}  # shared: its own exposure the account does not hold the same way (said)
    attempt = 0
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        working = [o for cid, o in ai.orders.items() if cid in sent and o.status.is_open]
        if working:  # a closing order's outcome not known yet: its fill would be closed twice. Ask the exchange (a stop
            try:  # without the engine has no watcher to tell it; Bybit's answer leaves a market order open)
                await s.sync_asset_orders(ai)
            except ExchangeOpError as err:
                log.warning("after the e-stop's close, could not learn how its order on %s ended: %s", symbol, err)
            working = [o for cid, o in ai.orders.items() if cid in sent and o.status.is_open]
        if working:
            out.position_unverified = f"closing order {working[0].client_order_id} {working[0].status.value}: its fill is not known yet"
            await asyncio.sleep(min(pause(attempt), max(0.0, deadline - loop.time())))
            attempt += 1
            continue
        try:
            if ai.is_margin:
                positions = await s.venue.positions([symbol], timeout=remaining, retries=0)
                s.apply_positions(positions, complete=True)
                held = _position_sizes(ai, [p for p in positions if p.symbol == symbol])
            else:
                await s.refresh_balances()
                held = {PositionSide.BOTH: s.cash(ai.base).free}
        except ExchangeOpError as err:
            out.position_unverified = f"position size unknown: {type(err).__name__}: {err}"[:300]
            await asyncio.sleep(min(pause(attempt), max(0.0, deadline - loop.time())))
            attempt += 1
            continue
        out.position_unverified = "; ".join(against.values()) or None  # what stays its own and cannot be closed here
        for side in list(out.positions):  # a side no longer reported is flat
            held.setdefault(side, 0.0)
        flat = True
        for side, amount in held.items():
            position = out.position(side)
            if shared:
                if side not in ours:
                    ours[side], position.left_to_others = own_share(s, ai, side, amount)
                    own = s.ledger.basis(ai, side).size
                    if not ours[side] and not _negligible(s, ai, abs(own)):  # its own exposure, not closable here
                        against[side] = (
                            f"{position_key(symbol, side)}: its own {own:g} is not in the account's {amount:g} the same way "
                            "(the account is flat or net the other way): a reduce-only close cannot take it; not closed"
                        )
                        out.position_unverified = "; ".join(against.values())
                done = sum(o.filled for cid, o in ai.orders.items() if sent.get(cid) is side)
                left = max(0.0, abs(ours[side]) - done) if ours[side] * amount > 0 else 0.0
                amount = math.copysign(min(left, abs(amount)), amount)
            if _negligible(s, ai, abs(amount)):
                position.still_open = 0.0
                continue
            flat = False
            position.still_open = amount
            before = set(ai.orders)
            result = await s.emergency_order(ai, "sell" if amount > 0 else "buy", abs(amount), side)
            sent.update((cid, side) for cid in set(ai.orders) - before)
            if result is not None:
                position.closed += abs(amount)
            else:
                report.errors.append(f"{position_key(symbol, side)}: closing order not placed (see the trace)")
        if flat:
            return
        await asyncio.sleep(min(pause(attempt), max(0.0, deadline - loop.time())))
        attempt += 1


def _position_sizes(ai: "AssetInstance", positions: list[PositionReport]) -> dict[PositionSide, float]:
    """The signed size of each position to close: one-way mode the net position (BOTH); hedge mode each side on
    its own (a long and a short are two closes, each naming its side: a net order would be refused)."""
    if not ai.hedged:
        return {PositionSide.BOTH: sum(p.contracts * (-1 if p.side is PositionSide.SHORT else 1) for p in positions)}
    sizes: dict[PositionSide, float] = {}
    for p in positions:
        if p.side is not PositionSide.BOTH:
            sizes[p.side] = sizes.get(p.side, 0.0) + p.contracts * (-1 if p.side is PositionSide.SHORT else 1)
    return sizes


def _negligible(s: "Strategy", ai: "AssetInstance", qty: float) -> bool:
    """Nothing to close: zero, or below what the market lets anyone trade (dust)."""
    if qty <= 0:
        return True
    try:
        rounded = s.venue.amount_to_precision(ai.symbol, qty)
    except Exception:  # rounds to zero at the market's precision
        return True
    return below_minimum(ai.market, rounded, ai.last_price)


async def emergency_stop(
    s: "Strategy", reason: str = "Manual trigger", close_positions: bool | None = None, budget_s: float | None = None
) -> EStopReport:
    """Halt (persisted), cancel this strategy's open orders on every universe asset, optionally close positions,
    alert, record."""
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + (s.config.risk.estop_budget_s if budget_s is None else budget_s)
    close = s.config.risk.emergency_close_positions if close_positions is None else close_positions
    log.warning("EMERGENCY STOP TRIGGERED: %s", reason)
    s.halt(reason, by_emergency_stop=True)
    report = EStopReport(reason)
    symbols = list(s.universe)
    recorded = recorded_open(s)
    with s.venue.urgent():  # no cap of the engine's own delays it; the stream's reports of its cancels wait for their answers
        await asyncio.gather(
            *(_cancel_asset(s, sym, deadline, report, recorded.get(sym, set())) for sym in symbols),
            *(cancel_recorded(s, sym, cids, deadline, report) for sym, cids in recorded.items() if sym not in s.universe),
        )
        if close:
            doubts = await _outside_basis(s, deadline)
            await asyncio.gather(*(_close_asset(s, sym, deadline, report, doubts) for sym in symbols))
            await asyncio.gather(*(_cancel_asset(s, sym, max(deadline, loop.time() + 2.0), report) for sym in symbols))
        await asyncio.gather(*(_settle_local(s, sym) for sym in symbols if report.of(sym).orders.unverified is None))
    report.seconds = time.perf_counter() - started
    return conclude(s, report, reason)


def conclude(s: "Strategy", report: EStopReport, reason: str) -> EStopReport:
    """The end of every e-stop, whole or assembled per symbol (the e-stop flow): what is unverified persisted for
    re-arm, the report in the trace, the alert, the strategy's e-stop hooks."""
    s.gate.verdict_reached()
    s.state_store.update(estop_unverified=report.outstanding())
    s.sink.record("emergency_stop", reason=reason, payload=report.as_dict())
    s.sink.flush()
    message = f"EMERGENCY STOP ({s.name}): {reason}. {report.summary()}"
    (log.info if report.clean else log.critical)(message)  # clean reads as done (the alert goes out either way)
    s.alert(message, "critical")
    for hook in s.hooks.estop_hooks():
        try:
            hook(s, report)
        except Exception:
            log.exception("emergency stop hook failed")
    return report


async def settle_symbol(
    s: "Strategy", symbol: str, budget_s: float, close: bool = False, reason: str = "emergency stop", recorded: set[str] | None = None
) -> EStopReport:
    """One symbol's part of the e-stop, on a loaded strategy: cancel (and close) until the exchange confirms or
    ``budget_s`` runs out. What an orchestrator retries per symbol after the whole e-stop left it unverified.
    ``recorded``: the strategy's orders its record leaves open there (``recorded_open``)."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    deadline = loop.time() + budget_s
    report = EStopReport(reason)
    with s.venue.urgent():
        await _cancel_asset(s, symbol, deadline, report, recorded)
        if close:
            await _close_asset(s, symbol, deadline, report, await _outside_basis(s, deadline))
            await _cancel_asset(s, symbol, max(deadline, loop.time() + 2.0), report)
        if report.of(symbol).orders.unverified is None:
            await _settle_local(s, symbol)
    report.seconds = time.perf_counter() - started
    s.sink.record("emergency_stop", reason=f"{reason} ({symbol})", symbol=symbol, payload=report.as_dict())
    return report
