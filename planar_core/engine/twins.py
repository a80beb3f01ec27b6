"""One engine per strategy and account, across store roots and machines.

The lease (``lease.py``) keeps a second engine off a store root it shares with the first. Two engines of one
strategy with *different* store roots (another ``PLANAR_HOME``, another machine) share nothing but the exchange,
so that is where this module looks: every client order id encodes the strategy's identity and its store's epoch
(``exchange/client_ids.py``). An order that carries this strategy's identity but that this engine did not place
means another engine of the strategy trades the account:

* an id of **another epoch** (issued by another store root) that is open, or was created or updated within
  ``twin_check.recent_s``;
* an id of **this store's epoch** that neither the intent journal nor the trace knows (a copy of this store root
  trading elsewhere), open or recent, and placed within the trace's window.

At start (``check_at_start``, before the start-up sync adopts anything) such orders refuse the start with a
``TwinEngineError`` naming them. While trading, an order that appears or changes and is judged the same way is not
adopted: the strategy halts with a critical alert (``inspect``, called by ``updates.apply_order`` and by the
``twins`` task, which watches the account's order stream and polls the universe's open orders).

``--takeover`` (``Strategy.start(takeover=True)``) says the other engine is gone: its orders are adopted by the
start-up sync as this strategy's own, and its epoch is recorded in ``<store_root>/<name>/takeovers.json`` with the
time, so later starts accept the orders it placed before then (and still catch new ones). docs/engine.md lists
what this can and cannot detect.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import StrategyConfig
from ..exchange.client_ids import IntentJournal, ObjectJournal, parse
from ..model import AssetInstance, OrderStatus
from ..model.json import integer
from ..model.venue import OrderReport
from ..storage import CorruptStateError, Store, json_object
from .lease import TwinEngineError
from .supervisor import TaskHealth

if TYPE_CHECKING:
    from ..trace.unresolved import RestartIndex
    from .startup_plan import StartupPlan
    from .strategy import Strategy

log = logging.getLogger("planar.engine.twins")
TAKEOVERS = "takeovers.json"
NAMED = 5  # orders named in a refusal; the rest are counted
# The account-wide order stream is read in batches: each read returns every update since the last one (the venue's
# cache keeps them), so nothing is missed, and a burst of order messages (four per order placed) wakes the check once
# per batch instead of once per message. The cost of one wake per message was about a tenth of the engine's CPU per
# order (bench/engine_hot_path.py); a twin is caught at most this much later.
STREAM_BATCH_S = 0.25


@dataclass(frozen=True)
class Finding:
    """An order of this strategy that this engine did not place."""

    symbol: str
    client_order_id: str
    order_id: str | None
    status: str
    created_ms: int
    touched_ms: int
    why: str

    def describe(self) -> str:
        when = _iso(self.created_ms)
        if self.touched_ms > self.created_ms:
            when += f", updated {_iso(self.touched_ms)}"
        return f"{self.client_order_id} on {self.symbol} ({self.status}, created {when}; {self.why})"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if ms else "?"


@dataclass
class Guard:
    """What the running check compares with, fixed by the start-up check."""

    started_ms: int  # local time the start-up check began
    known: set[str]  # client ids the journal and the trace knew at start
    trace_complete: bool  # the trace can vouch for this store's orders (a persistent trace is open)
    takeovers: dict[str, int]  # epoch taken over -> when (ms): orders of that epoch placed before then are ours
    flagged: set[str] = field(default_factory=set)  # ids found while trading (halted once, never adopted)


class Twins:
    """The twin check of one strategy: ``check_at_start`` in ``Strategy.start``, ``inspect`` while trading. Built
    by the composition root; each check is handed the strategy it looks at (it keeps none)."""

    def __init__(self, config: StrategyConfig) -> None:
        # live mode with the check enabled (paper orders live in this process: no other engine can see them)
        self.active = config.twin_check.enabled and config.mode == "live"
        self.guard: Guard | None = None  # set by the start-up check; None: nothing to compare with (helper processes)

    # ------------------------------------------------------------------ at start
    async def check_at_start(self, s: "Strategy", takeover: bool = False) -> list[Finding]:
        """Look at the universe's open orders and recent history before trading; refuse (``TwinEngineError``) when
        another engine of this strategy trades the account, unless ``takeover``: then record its epochs and let the
        start-up sync adopt its orders. Returns what was found (taken over)."""
        if not self.active:
            return []
        from . import startup_plan

        try:
            found = await self._findings(s, await startup_plan.prepare(s))
        except BaseException:
            startup_plan.forget(s)
            raise
        if not found:
            return []
        started = self.guard.started_ms if self.guard is not None else int(time.time() * 1000)
        findings = sorted(found.values(), key=lambda f: (f.symbol, f.created_ms))
        named = "; ".join(f.describe() for f in findings[:NAMED]) + (f"; and {len(findings) - NAMED} more" if len(findings) > NAMED else "")
        if takeover:
            epochs = self._take_over(s, findings, started)
            msg = f"{s.name}: --takeover: adopting {len(findings)} order(s) of another engine of this strategy (epochs {sorted(epochs)}): {named}"
            s.sink.record("twin_engine", decision="takeover", reason=msg, payload={"orders": [f.client_order_id for f in findings]})
            log.warning(msg)
            s.alert(msg, "warning")
            return findings
        msg = (
            f"another engine of strategy {s.name} trades account {s.account}: {len(findings)} order(s) carry its identity "
            f"but were not placed by this engine: {named}. Stop the other engine; if it is gone (a store root wiped, "
            "moved or copied), start this one with --takeover to adopt its orders"
        )
        s.sink.record("twin_engine", decision="refused", reason=msg, payload={"orders": [f.client_order_id for f in findings]})
        startup_plan.forget(s)  # no sync follows: a later start makes its own plan
        raise TwinEngineError(msg)

    async def _findings(self, s: "Strategy", plan: "StartupPlan") -> dict[str, Finding]:
        """The orders of this strategy another engine placed, among the account's open orders (one account-wide
        listing: every asset) and the recent history of the assets the start-up sync lists (every asset after an
        unclean stop; see startup_plan.py), listed several at once. A twin whose only recent orders closed on an
        asset not listed is found by the running check at its next order (``inspect``)."""
        from .startup_plan import SYNC_CONCURRENCY
        from .sync import history_limit as sync_history_limit

        started = int(time.time() * 1000)
        since = started - int(s.config.startup_sync.trades_lookback_s * 1000)
        known, complete = self._known_ids(s, since, plan.index)
        takeovers = load_takeovers(s.config.shared_root)
        self.guard = Guard(started, known, complete, takeovers)
        recent_from = started - int(s.config.twin_check.recent_s * 1000)
        t = s.config.timeouts.order_placement
        history_limit = max(1, min(1000, s.config.startup_sync.closed_orders or 100))
        found: dict[str, Finding] = {}
        gate = asyncio.Semaphore(SYNC_CONCURRENCY)

        def judge(ai: AssetInstance, reports: list[OrderReport]) -> None:
            for report in reports:
                f = self._judge(s, ai, report, recent_from, since)
                if f is not None:
                    found.setdefault(f.client_order_id, f)

        recent = s.config.startup_sync.closed_orders

        async def history(ai: AssetInstance) -> None:
            opened = plan.open_now.get(ai.symbol, [])
            limit = sync_history_limit(recent, len(opened)) if recent > 0 else history_limit
            async with gate:
                reports = await s.venue.order_history(ai.symbol, t, limit=limit)
            if recent > 0:  # the start-up sync's own listing: it applies these instead of asking again
                plan.history[ai.symbol] = reports
            judge(ai, reports)

        for ai in s.universe.values():
            judge(ai, plan.open_now.get(ai.symbol, []))
        await asyncio.gather(*(history(ai) for sym, ai in s.universe.items() if sym in plan.listed))
        return found

    def _take_over(self, s: "Strategy", findings: list[Finding], at_ms: int) -> set[str]:
        """Record the epochs of the other engine's orders (``takeovers.json``), so later starts accept what it placed
        before now; the start-up sync adopts the orders themselves."""
        epochs: set[str] = set()
        for f in findings:
            parsed = parse(f.client_order_id)
            if parsed is not None and not s.ids.issued_here(f.client_order_id):
                epochs.add(parsed.epoch)
        if epochs:
            by = {"pid": os.getpid(), "host": socket.gethostname(), "run_id": s.run_id}

            def add(doc: dict[str, object]) -> None:
                taken = doc.setdefault("epochs", {})
                assert isinstance(taken, dict)
                for epoch in epochs:
                    taken[epoch] = {"at_ms": at_ms, "by": by}

            Store(s.config.shared_root).update_json(TAKEOVERS, add)
        assert self.guard is not None
        self.guard.takeovers.update({e: at_ms for e in epochs})
        self.guard.known.update(f.client_order_id for f in findings)
        return epochs

    # ------------------------------------------------------------------ the rule
    def _judge(
        self, s: "Strategy", ai: AssetInstance, r: OrderReport, recent_from: int, since: int, running: bool = False
    ) -> Finding | None:
        """Whether ``r`` is an order of this strategy that another engine placed (None: ours, or not this
        strategy's, or history too old to say anything)."""
        guard = self.guard
        cid = r.client_order_id
        if guard is None or not cid or not s.ids.owns(cid) or cid in guard.known:
            return None
        created = r.timestamp or 0
        touched = max(created, r.updated or 0)
        status = r.status.value if r.status is not None else "?"
        is_open = r.status is OrderStatus.OPEN
        if not (is_open or touched >= recent_from):
            return None  # closed long ago: history, whoever placed it
        if s.ids.issued_here(cid):
            if not guard.trace_complete or created < since or (running and journal_knows(s.journal, cid)):
                return None  # beyond what the trace vouches for; or another process of this store (an e-stop)
            if not getattr(s.journal, "complete", False) and s.ids.of_the_last_block(cid):
                # the run before stopped uncleanly in another boot of the machine (a power loss, a kernel crash) while
                # issuing from that block: an intent written but not yet synced is lost with it, its order is not
                # (docs/trace.md). A process crash in this boot loses no intent: the id is a stranger's
                log.warning("%s: an order of the last run that its journal lost (it did not stop cleanly); adopted", cid)
                return None
            why = "issued under this store's epoch, but neither its intent journal nor its trace knows it: a copy of this store root?"
        else:
            parsed = parse(cid)
            epoch = parsed.epoch if parsed is not None else "?"
            taken = guard.takeovers.get(epoch)
            if taken is not None and created < taken:
                return None  # placed by the engine this store took over, before it did
            why = f"issued by another store root (epoch {epoch})" + (" taken over earlier, and placed since" if taken is not None else "")
        return Finding(ai.symbol, cid, r.id, status, created, touched, why)

    # ------------------------------------------------------------------ while trading
    def inspect(self, s: "Strategy", ai: AssetInstance, r: OrderReport) -> bool:
        """An order update of an order this engine does not hold: True when another engine of this strategy placed
        it. Then it is not adopted and the strategy halts with a critical alert (once per order)."""
        guard = self.guard
        if guard is None or not self.active:
            return False
        cid = r.client_order_id or ""
        if cid in guard.flagged:
            return True
        recent_from = guard.started_ms - int(s.config.twin_check.recent_s * 1000)
        since = guard.started_ms - int(s.config.startup_sync.trades_lookback_s * 1000)
        f = self._judge(s, ai, r, recent_from, since, running=True)
        if f is None:
            return False
        guard.flagged.add(cid)
        if f.order_id:
            s.book.mark_foreign_id(f.order_id)  # its fills are not ours either
        msg = (
            f"another engine of strategy {s.name} trades account {s.account}: order {f.describe()} appeared while this "
            "engine trades; not adopted, strategy halted. Stop one of the engines, then re-arm this one"
        )
        s.sink.record(
            "twin_engine", symbol=ai.symbol, client_order_id=cid, order_id=f.order_id, status=f.status, decision="halted", reason=msg
        )
        log.error(msg)
        first = len(guard.flagged) == 1
        if not s.halted:
            s.halt(f"another engine of this strategy trades the account (order {cid})")
        if first:  # one critical alert per run; every further order is recorded and logged
            s.alert(msg, "critical")
        return True

    async def watch(self, s: "Strategy", health: TaskHealth) -> None:
        """The supervised ``twins`` task: the account's order stream (every symbol at once) and a poll of the
        universe's open orders every ``twin_check.interval``, each order update of an order this engine does not
        hold inspected. It applies nothing (the order watchers do)."""
        from .watchers import ws_or_poll

        cfg = s.config.twin_check

        def check(reports: list[OrderReport]) -> None:
            for r in reports:
                ai = s.universe.get(r.symbol)
                if ai is not None and ai.orders.get(r.client_order_id or "") is None:
                    self.inspect(s, ai, r)

        async def ws_step() -> None:
            check(await s.venue.watch_orders())
            await asyncio.sleep(STREAM_BATCH_S)

        async def poll_step() -> None:
            for ai in list(s.universe.values()):
                check(await s.venue.open_orders(ai.symbol, s.config.timeouts.order_placement, retries=1))

        await ws_or_poll(
            health,
            use_ws=s.config.order_monitoring.use_websocket,
            ws_step=ws_step,
            poll_step=poll_step,
            interval=cfg.interval,
            fallback_s=min(10.0, max(5.0, 3 * cfg.interval)),
            stop_when=lambda: not s.running or not self.active,
            on_ws_failure=s.venue.check_user_stream,
            generation=lambda: s.ws_generation,
            verify_every=cfg.interval,
        )

    # ------------------------------------------------------------------ what this store knows
    def _known_ids(self, s: "Strategy", since_ms: int, index: "RestartIndex | None" = None) -> tuple[set[str], bool]:
        """Client ids this store knows it placed or adopted: the journal's open intents and the ``order_placed`` /
        ``order_adopted`` events of its traces (the account's and this strategy's side trace) since ``since_ms``.
        The bool: whether a persistent trace was read (a memory sink knows only this process). ``index``: the
        start-up's restart index of the account's trace (its codes already read), used for that trace."""
        known = {cid for cid in s.journal.unresolved() if s.ids.owns(cid)}
        roots = _trace_roots(s)
        complete = False
        start = datetime.fromtimestamp((since_ms - 60_000) / 1000, UTC)
        for root in roots:
            try:
                from ..trace.files import TraceFiles, TraceNotFoundError
                from ..trace.reading import extract_events_by_date

                files = TraceFiles(root, create=False)
            except TraceNotFoundError:
                continue
            own = root == str(getattr(s.sink, "root", ""))
            complete = complete or own
            if own and index is not None:
                lo = (since_ms - 60_000) * 1_000_000
                known |= index.client_ids(("order_placed", "order_adopted"), lo)  # others' ids too: only ours are looked up
                continue
            for kind in ("order_placed", "order_adopted"):
                df = extract_events_by_date(files, start, kind=kind, payload=False)
                known.update(str(c) for c in df["client_order_id"].dropna().astype(str) if s.ids.owns(c))
        return known, complete


def _trace_roots(s: "Strategy") -> list[str]:
    """The traces that hold this strategy's orders: the account's, and its side trace (when another engine of the
    account held the account's trace at the time)."""
    if getattr(s.sink, "files", None) is None:
        return []
    cfg = s.config
    store = cfg.store_root.rstrip("/")
    account = cfg.event_tracing.root or f"{store}/traces/{s.account}"  # as strategy.trace_root (no import: a cycle)
    side = f"{store}/{cfg.name}/side-trace"  # as strategy.side_trace_root
    own = str(getattr(s.sink, "root", ""))
    return [own] + [r for r in (account, side) if r != own]


def journal_knows(journal: IntentJournal | ObjectJournal, cid: str) -> bool:
    """Whether the intent journal holds an intent for ``cid`` (resolved or not): another process of this store
    (an e-stop, a position close) placed it."""
    if isinstance(journal, ObjectJournal):
        return journal.store.read(f"journal/{cid}.intent.json") is not None
    try:
        return f'"cid":{json.dumps(cid)}' in Path(journal.path).read_text()
    except OSError:
        return False


def load_takeovers(shared_root: str) -> dict[str, int]:
    """Epochs this store took over (``--takeover``) -> when (ms)."""
    store = Store(shared_root)
    raw = store.read(TAKEOVERS)
    if raw is None:
        return {}
    remedy = "fix it or remove it (it lists the epochs taken over; without it their orders count as another engine's again)"
    epochs = json_object(raw, store.url(TAKEOVERS), remedy).get("epochs") or {}
    if not isinstance(epochs, dict) or not all(isinstance(v, dict) for v in epochs.values()):
        raise CorruptStateError(store.url(TAKEOVERS), f"unexpected content: epochs is not a map of records ({len(raw)} bytes)", remedy)
    return {str(e): integer(v.get("at_ms")) for e, v in epochs.items()}
