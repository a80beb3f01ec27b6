"""What the start-up sync asks the exchange for, and why: the account's open orders everywhere, the history and
trades of an asset only where something about it is unresolved.

Every asset's open orders come from one account-wide listing (Binance: one request of weight 80 on spot, 40 on
USDⓈ-M, against 6 or 1 per symbol). An asset's order history is listed (and its trades, from the first order whose
filled amount the trace's trades do not explain: ``sync.trades_needed``) when:

* the journal cannot vouch for the previous run (``IntentJournal.complete`` false: it did not stop cleanly and the
  machine restarted since, a power loss or a kernel crash, or that cannot be told): an order may exist on the
  exchange that the journal never recorded durably, on any asset, so every asset's history is listed. Before the
  start only where the rules below say, as after a crash: such an order is open (the account-wide listing shows
  it) or it filled (the holding differs from the trace's basis), or it ended without a fill and changed no money.
  The other assets are listed once the engine runs (``sync.verify_deferred``: reads, which yield to orders in the
  request budget), so a start after a power loss takes seconds, not a minute of history listings; what they find
  is adopted and recorded (``startup_verified``). A run that crashed in this boot of the machine (SIGKILL, OOM, an
  exception that killed the process) is vouched for: every intent and every trace event it wrote reached the
  kernel before anything was sent or acted on, and the kernel keeps them when the process dies; the rules below
  then find everything it left unresolved;
* it has open orders on the exchange (their fills since the last run are learned, their trades re-attached);
* the trace says some of this strategy's orders on it were still open when it ended (they may have filled or been
  cancelled while nothing watched);
* the intent journal holds an unresolved intent on it;
* its position (futures: the contracts of each side) or its base currency's balance (spot) differs from the cost
  basis the trace's last fill left: something filled that the trace does not know (an order resting for longer than
  the lookback, a fill the stream never delivered). A spot account holding more of a currency than the strategy
  bought (deposits, another strategy) lists that asset at every start: conservative, never wrong.

After a clean stop, or a crash in this boot, the trace holds every fill the engine learned and every order it
placed; an asset with none of the above has nothing the exchange could tell that the engine does not know, so it is
not asked. What this leaves
out, knowingly: the recent closed orders of quiet assets are not loaded into the local book (``ai.orders``) at
start; an order cancelled while the engine was down and placed before the lookback stays open in the trace until
its asset is listed again (no fill: balances and the basis are unaffected).

The plan is made once per start (the twin check, which runs first, and the sync share it).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..model import AssetInstance, PositionSide
from ..model.types import Json
from ..model.venue import MarketType, OrderReport
from ..trace.files import TraceFiles
from ..trace.unresolved import RestartIndex, placed_records, read_index
from .submit import lookup
from .updates import other_strategy

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.sync")
SYNC_CONCURRENCY = 8  # assets listed at once (each request still waits for the host's budget)
EPS = 1e-9


@dataclass
class StartupPlan:
    complete: bool  # the journal and the trace hold everything the previous run wrote (IntentJournal.complete)
    open_now: dict[str, list[OrderReport]]  # universe symbol -> the exchange's open orders on it
    index: RestartIndex  # what the trace says is unresolved
    since_ms: int  # the lookback's start
    listed: dict[str, str]  # symbol -> why its history and trades are listed
    history: dict[str, list[OrderReport]] = field(default_factory=dict)  # symbol -> its history, listed once (twin check)
    # after a power loss: the assets whose history is listed once the engine runs (``sync.verify_deferred``)
    deferred: list[str] = field(default_factory=list)
    journal: dict[str, Json] = field(default_factory=dict)  # the intents unresolved when the start read the journal


_PLANS: weakref.WeakKeyDictionary[Strategy, StartupPlan] = weakref.WeakKeyDictionary()


def complete(s: Strategy) -> bool:
    """Whether the journal vouches for the previous run: it stopped cleanly, or crashed in this boot of the
    machine (an older journal, or one on object storage, does not say: not complete)."""
    return bool(getattr(s.journal, "complete", False))


async def prepare(s: Strategy) -> StartupPlan:
    """The plan of this start (made at the first call, then shared): the account's open orders, the trace's index,
    the assets listed for reasons known before the balances are read."""
    plan = _PLANS.get(s)
    if plan is not None:
        return plan
    since = int((s.clock.time() - s.config.startup_sync.trades_lookback_s) * 1000)
    index = restart_index(s, since - 60_000)
    open_now = await account_open_orders(s)
    plan = StartupPlan(complete(s), open_now, index, since, {}, journal=dict(s.journal.unresolved()))
    if not plan.complete and getattr(s.journal, "new", False):
        log.info("the first run of this strategy on this store: every asset's history is listed, as after an unclean stop")
    elif not plan.complete:
        log.warning(
            "the previous run did not stop cleanly, and the machine restarted since (or that cannot be told): every "
            "asset's history is listed, those with nothing unresolved after the start"
        )
    elif not getattr(s.journal, "clean_stop", False):
        log.warning("the previous run did not stop cleanly, in this boot of the machine: its journal and trace hold all it wrote")
    for sym, orders in open_now.items():
        if orders:
            plan.listed.setdefault(sym, "open orders on the exchange")
    for sym in index.open_orders:
        if sym in s.universe:
            plan.listed.setdefault(sym, "orders open when the trace ends")
    for intent in plan.journal.values():
        sym = str(intent.get("symbol", ""))
        if sym in s.universe:
            plan.listed.setdefault(sym, "an unresolved order intent")
    _PLANS[s] = plan
    return plan


def forget(s: Strategy) -> None:
    """The start is over (done or failed): the next start makes a plan of its own."""
    _PLANS.pop(s, None)


def restart_index(s: Strategy, since_ms: int) -> RestartIndex:
    """The trace's restart index (``trace/unresolved.py``) for the universe; events this run records from now on
    are not part of it."""
    until = time.time_ns()
    symbols = list(s.universe)

    def mine(cid: str) -> bool:  # the account's trace holds every strategy's orders
        return other_strategy(s, cid) is None

    def sides(sym: str) -> tuple[str, ...]:
        ai = s.universe.get(sym)
        return ("long", "short") if ai is not None and ai.hedged else ("both",)

    source = _trace_source(s)
    return read_index(source, since_ms * 1_000_000, until, symbols, mine, sides) if source is not None else RestartIndex()


def placed_before(s: Strategy, cids: Collection[str], before_ns: int, after_ns: int) -> list[Json]:
    """The trace's placement records of ``cids`` in [``after_ns``, ``before_ns``) (``trace/unresolved.placed_records``)."""
    source = _trace_source(s)
    return placed_records(source, cids, before_ns, after_ns) if source is not None else []


def _trace_source(s: Strategy) -> TraceFiles | list[Json] | None:
    """What the account's trace is read from: its files, or a memory sink's events (None: neither)."""
    files = getattr(s.sink, "files", None)
    if isinstance(files, TraceFiles):
        return files
    events = getattr(s.sink, "events", None)
    return events if isinstance(events, list) else None


async def account_open_orders(s: Strategy) -> dict[str, list[OrderReport]]:
    """Every universe asset's open orders (both books on futures) from the account-wide listing."""
    market_type: MarketType = "swap" if s.config.margin else "spot"
    reports = await s.venue.account_open_orders(market_type, s.config.timeouts.order_placement, retries=3)
    out: dict[str, list[OrderReport]] = {sym: [] for sym in s.universe}
    outside: dict[str, set[str]] = {}
    for r in reports:
        if r.symbol in out:
            out[r.symbol].append(r)
        elif r.client_order_id and s.ids.owns(r.client_order_id):  # its own, on a symbol dropped from the universe
            outside.setdefault(r.symbol, set()).add(r.client_order_id)
    s.book.note_outside_universe(outside)
    if outside:  # dropped without a word, they were left out of its e-stops too (an outside crash trial)
        listed = {sym: len(cids) for sym, cids in outside.items()}
        msg = (
            f"{s.name}: orders of this strategy rest on symbols outside its universe {listed}: not managed; its emergency stop cancels them"
        )
        log.critical(msg)
        s.alert(msg, "critical")
    return out


def add_changed_positions(s: Strategy, plan: StartupPlan) -> None:
    """After the balances and positions are read: the assets whose holding differs from the trace's basis. After a
    power loss the other assets are deferred: listed once the engine runs (``sync.verify_deferred``)."""
    for sym, ai in s.universe.items():
        if sym in plan.listed:
            continue
        why = _changed(s, ai)
        if why:
            plan.listed[sym] = why
        elif not plan.complete:
            plan.deferred.append(sym)


def _changed(s: Strategy, ai: AssetInstance) -> str | None:
    """Why the asset's holding is not what the trace's last fill left (None: it is)."""
    if ai.is_margin:
        sides = [PositionSide.LONG, PositionSide.SHORT] if ai.hedged else [PositionSide.BOTH]
        for side in sides:
            b = s.ledger.basis(ai, side)
            held = ai.position_of(side).contracts
            if abs(held - b.size) > max(b.step * 0.5, EPS):
                return f"{side.value} position {held} differs from the trace's basis ({b.size})"
        return None
    b = s.ledger.basis(ai)
    bal = s.holdings.balances.get(ai.base)
    total = bal.total if bal is not None else 0.0
    if abs(total - b.size) > max(b.step * 0.5, EPS):
        return f"{ai.base} balance {total} differs from the trace's basis ({b.size})"
    return None


async def own_basis_from_traces(s: Strategy, roots: Collection[str]) -> dict[str, str]:
    """For a process that is not the strategy's engine (the e-stop from a fresh process): each position's cost
    basis as the strategy's traces last recorded it, read without writing (the account trace, which a live or hung
    engine may hold, and the strategy's side trace, where its engine records while another strategy holds the
    account trace). Returns the symbols whose part cannot be told from them, with why: the two traces disagree, or
    orders of the strategy were open at the end of its trace (they may have filled since, out of its record). Why:
    closing "its own part" on a shared account from a basis its fills since have made stale sold what it no longer
    owned; from the side trace alone it found nothing and closed nothing, saying clean (both found by a review).
    ``roots``: the account trace's and the side trace's."""
    now_ns = time.time_ns()
    since_ns = now_ns - int(s.config.startup_sync.trades_lookback_s * 1e9)
    symbols = list(s.universe)
    found: dict[tuple[str, str], Json] = {}
    doubts: dict[str, str] = {}
    open_at_end: dict[str, set[str]] = {}

    def mine(cid: str) -> bool:
        return other_strategy(s, cid) is None

    def sides(sym: str) -> tuple[str, ...]:
        ai = s.universe.get(sym)
        return ("long", "short") if ai is not None and ai.hedged else ("both",)

    for root in roots:
        try:
            files = TraceFiles(root, create=False)
        except (OSError, ValueError):  # no such trace (TraceNotFoundError is a FileNotFoundError)
            continue
        index = read_index(files, since_ns, now_ns, symbols, mine, sides)
        for key, basis in index.bases.items():
            if key in found and found[key] != basis:
                doubts[key[0]] = "its account trace and its side trace record different positions"
            found[key] = basis
        for sym, cids in index.open_orders.items():
            open_at_end.setdefault(sym, set()).update(cids)
    for sym, cids in open_at_end.items():  # the exchange's word: did any of them fill (before the trace's end, or since)?
        for cid in sorted(cids):
            try:
                found_now = await lookup(s, sym, cid, retries=0)
            except Exception as err:
                doubts.setdefault(
                    sym, f"its order {cid} was open at the end of its trace and could not be looked up ({type(err).__name__})"
                )
                break
            if found_now is not None and (found_now.filled or 0) > 0:
                doubts.setdefault(
                    sym, f"its order {cid}, open at the end of its trace, has filled {found_now.filled}: its part is not in the trace"
                )
                break
    for (sym, _), basis in found.items():
        ai = s.universe.get(sym)
        if ai is not None:
            s.ledger.restore_basis(ai, basis)
    return doubts


class _EverySymbol(frozenset[str]):
    """``read_index``'s symbols: any (the orders of a symbol the universe no longer has are the strategy's too)."""

    def __contains__(self, item: object) -> bool:
        return True


def orders_open_in_traces(s: Strategy, roots: Collection[str]) -> dict[str, set[str]]:
    """For a process that is not the strategy's engine (the e-stop from a fresh process): the strategy's client
    order ids whose last event in its traces (within the start-up lookback) left them open, by symbol, on any
    symbol. Why: the stop verified each symbol by one listing of the exchange's open orders; when the exchange's
    listing lagged (Binance's "engine behind"), it saw none, said CLEAN, and left every order resting; and the
    orders of a symbol dropped from the universe were not looked at (an outside crash trial)."""
    now_ns = time.time_ns()
    since_ns = now_ns - int(s.config.startup_sync.trades_lookback_s * 1e9)
    out: dict[str, set[str]] = {}
    for root in roots:
        try:
            files = TraceFiles(root, create=False)
        except (OSError, ValueError):
            continue
        index = read_index(files, since_ns, now_ns, _EverySymbol(), lambda cid: other_strategy(s, cid) is None and s.ids.owns(cid))
        for sym, cids in index.open_orders.items():
            out.setdefault(sym, set()).update(cids)
    return out
