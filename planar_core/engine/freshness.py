"""Balances as fresh as fills: which account report each balance and position came from, which fills those
reports include, and a REST read of the account when a fill is not covered in time.

Two roads bring account state: the user stream (a message per change) and REST (a snapshot). Each report carries
a ``Stamp`` (model/stamp.py): its place in one sequence (a stream message when it arrived on the wire, a snapshot
when its request left) and the exchange's time. A report is applied to a balance or a position only if it is newer
than what the engine holds for it, so a snapshot whose request left before a stream update arrived never
overwrites that update, and a stream message the venue hands over late never overwrites a later snapshot.

A fill is *covered* when every balance and position it changes (spot: base and quote; futures: the margin
currency and the position) holds a report that includes it (``Stamp.includes``). The engine never guesses the
change a fill implies: it waits for the exchange's numbers.

* A fill the user stream reported waits ``balance_watcher.fill_wait`` for the stream's own account update (Binance
  sends it with the execution report); if none covers it by then, balances and positions are read by REST.
  An order's acknowledgement is treated the same way: its fills come over REST, and the stream reports them too.
* A fill learned by REST otherwise (an order watcher's poll: the stream missed it; a ``synced`` look-up, the
  resolver, start-up sync) is read by REST at once, unless the stream's update already covers it.
* A snapshot and a stream update of the same millisecond whose order the engine cannot prove (a cancel the
  exchange made in the millisecond it answered a read, its message arriving after the read) are kept by the
  tie rules of ``Stamp.newer_than``; when they disagree about a balance or a position, the account is read again,
  since the one kept may be the older (nothing else would correct a cancel's unlock: no fill waits for it).
* A spot order's lock (it starts resting) and release (it leaves the book unfilled) are tracked like fills
  (``order_moved``): the locked currency's balance must come from a report that includes the move, so a lock or
  release message lost with a cut connection is corrected by the stream cache or a read, not at a verify poll.
* Requests are coalesced: a burst of fills, or a fetch already on its way, costs one more read, not one per fill;
  a read is skipped when the stream covered every fill that asked for it meanwhile.
* A fill whose balance could not be read (REST failing too) is released as *unconfirmed*: logged at WARNING,
  recorded as ``error_occurred``, and ``Strategy.balance_confirmed(trade)`` says False.

The runner's logic host awaits ``settled`` before it calls ``on_fill``: the callback sees the balance and position
that include its fill, or runs after the bound with the balance as it stands (unconfirmed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from ..config import StrategyConfig
from ..model import AssetInstance, Order, OrderStatus, Side, Trade
from ..model.sink import EventSink
from ..model.stamp import Stamp
from ..model.venue import FillReport, Venue

log = logging.getLogger("planar.engine.freshness")
COALESCE_S = 0.02  # fills learned in one burst (one poll, one price move) share one read
KEEP = 2000  # stream stamps of trades and orders remembered for fills not yet known (an order's acknowledgement)


def position_key(symbol: str) -> str:
    return f"position:{symbol}"


def trade_key(symbol: str, trade_id: object) -> str:
    return f"{symbol}:{trade_id}"


ORDER_PREFIX = "order:"


def order_key(client_order_id: str, status: OrderStatus) -> str:
    """The key of an order's lock (``open``) or release (a final status) among the pending changes: never placed
    from the stream's trade cache (an order report places it, ``note_order``)."""
    return f"{ORDER_PREFIX}{client_order_id}:{status}"


ANSWERED = ("websocket", "acknowledgement", "cancel")  # sources whose news the user stream reports too
FUNDS_MOVED = (OrderStatus.OPEN, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED)


def moves_funds(old: OrderStatus, new: OrderStatus) -> bool:
    """Whether a spot order's move from ``old`` to ``new`` locks or releases funds by itself (fills are tracked as
    fills): it starts resting, or a resting order leaves the book unfilled. An order that ends at once (an IOC
    expired in its acknowledgement) never held anything."""
    return new is OrderStatus.OPEN or (old is OrderStatus.OPEN and new in FUNDS_MOVED)


@dataclass
class _Fill:
    key: str
    keys: tuple[str, ...]  # the balances and positions it changes
    mark: Stamp  # where the fill stands: its report's place on the stream (or when REST told it), the exchange's time
    known: int  # when the engine first knew it: a snapshot asked later includes it
    stream: bool  # the user stream reports it: its own account update should follow
    asked: bool = False  # it asked for a REST read
    done: asyncio.Event = field(default_factory=asyncio.Event)
    unconfirmed: bool = False
    timer: asyncio.TimerHandle | None = None
    added: int = 0  # its place among the pending (releases keep that order)


@dataclass(frozen=True)
class AccountReader:
    """How Freshness brings the account up to date, given by the coordinator (``Strategy``) that owns the reads:
    apply what the venue's stream cache already holds, read balances and positions by REST (False if a read
    failed), the fills the stream cache holds, and whether the engine runs (a stopped engine's trace is closed)."""

    from_stream: Callable[[], None]
    read: Callable[[], Awaitable[bool]]
    stream_fills: Callable[[], list[FillReport]]
    running: Callable[[], bool]


class Freshness:
    def __init__(self, config: StrategyConfig, venue: Venue, sink: EventSink) -> None:
        """Built by the composition root (engine/parts.py); the coordinator connects its ``AccountReader``."""
        self.name = config.name
        self.margin = config.margin
        self.main_currency = config.main_currency
        self.cfg = config.balance_watcher
        self.venue = venue
        self.sink = sink
        self.reader: AccountReader | None = None
        self.held: dict[str, Stamp] = {}  # balance currency or position key -> stamp of the report it holds
        self.pending: dict[str, _Fill] = {}  # trade key -> a fill whose balance is not known to include it yet
        # what ``check`` looks at: only the pending fills whose coverage may have changed since the last check (a
        # report that may include them was held, or they were placed on the stream), and only unplaced fills are
        # looked up in the stream cache. A check per stream message over every pending fill made a burst of N
        # cancels (an emergency stop's) cost N^2. Balance or position key -> the pending fills that change it: on
        # the stream (any later report may include them), or learned by REST and not placed on it yet (only a
        # snapshot asked later includes them: ``Stamp.includes``)
        self._waiting: tuple[dict[str, set[str]], dict[str, set[str]]] = ({}, {})  # (placed, unplaced)
        self._dirty: set[str] = set()
        self._unplaced: set[str] = set()  # pending fills (trades) learned by REST, not yet placed on the stream
        self._added = 0
        self.unconfirmed: OrderedDict[str, None] = OrderedDict()
        self.fetches = 0  # REST reads made for fills, stalls and requests (bench/balance_freshness.py reads it)
        self._wire: OrderedDict[str, Stamp] = OrderedDict()  # trade key -> stamp of its stream report
        self._orders: OrderedDict[str, Stamp] = OrderedDict()  # client order id -> stamp of its last stream report
        self._context: tuple[str | None, Stamp | None] = (None, None)
        self._want = False
        self._forced = False
        self._job: asyncio.Task[None] | None = None
        self._closed = False  # the strategy stopped: its venue is closed, nothing more is read

    def connect(self, reader: AccountReader) -> None:
        self.reader = reader

    def _running(self) -> bool:
        return self.reader is not None and self.reader.running()

    # ----------------------------------------------------------------- ordering of reports
    def newer(self, key: str, stamp: Stamp) -> bool:
        """Whether ``stamp`` is a later report than the one held for ``key`` (an equal one is the same report)."""
        held = self.held.get(key)
        return held is None or stamp.newer_than(held)

    def doubtful(self, key: str, stamp: Stamp) -> bool:
        """Whether ``stamp``'s order against the report held for ``key`` is a tie rule's guess (``Stamp.ordered_against``)."""
        held = self.held.get(key)
        return held is not None and not stamp.ordered_against(held)

    def confirm(self, key: str) -> None:
        """A snapshot and a stream update whose order the exchange's times cannot tell disagree about ``key``:
        whichever was kept may be the older, so ask the exchange again (a read asked now is later than both)."""
        log.info("%s: a snapshot and a stream update of the same millisecond disagree; reading the account", key)
        self.request_refetch(force=True)

    def hold(self, key: str, stamp: Stamp) -> None:
        self.held[key] = stamp
        for waiting in self._waiting if stamp.rest else self._waiting[:1]:
            if key in waiting:
                self._dirty |= waiting[key]

    def fresh_stamp(self, rest: bool = False) -> Stamp:
        """The stamp of a report that carries none (REST answers are stamped by their caller; paper mode's
        stream): it is placed where the engine stands now."""
        return Stamp(self.venue.next_seq(), rest=rest)

    # ----------------------------------------------------------------- where fills come from
    @contextlib.contextmanager
    def learning(self, source: str | None, stamp: Stamp | None) -> Iterator[None]:
        """While a report is applied: which road it came by (``websocket`` or a REST source) and its stamp, so a
        fill it reveals is placed right."""
        saved = self._context
        self._context = (source, stamp)
        try:
            yield
        finally:
            self._context = saved

    def note_trade(self, symbol: object, trade_id: object, stamp: Stamp | None) -> None:
        """A trade report from the stream: remember where it stands (the fill may be announced later, when its
        order's id is known), and place a fill already learned by REST (the acknowledgement) where the stream has
        it, so the stream's account update that followed it covers it."""
        if stamp is None or trade_id is None:
            return
        key = trade_key(str(symbol), trade_id)
        if self._place(key, stamp):
            self.check()
        else:
            self._remember(self._wire, key, stamp)

    def _place(self, key: str, stamp: Stamp) -> bool:
        """Give a pending fill its place on the stream (its trade report's): the account update after it covers it."""
        fill = self.pending.get(key)
        if fill is None:
            return False
        if fill.mark.rest or stamp.seq < fill.mark.seq:
            self._index(fill, add=False)
            fill.mark = Stamp(stamp.seq, stamp.ms)
            fill.stream = True
            self._index(fill, add=True)
            self._unplaced.discard(key)
            self._dirty.add(key)
        return True

    def _place_from_cache(self) -> None:
        """Fills an acknowledgement told first: their reports may already be in the venue's stream cache, arrived on
        the stream but not handed over by a watch yet."""
        if not self._unplaced or self.reader is None or not self._running():
            return
        unplaced = self._unplaced
        for fill in self.reader.stream_fills():
            key = trade_key(fill.symbol, fill.id)
            if fill.stamp is not None and key in unplaced:
                self._place(key, fill.stamp)

    def note_order(self, order: Order | None, stamp: Stamp | None) -> None:
        """An order report from the stream: remember where it stands (a fill emulated from it is placed there), and
        place a lock or release an acknowledgement told first, so the account update after the report covers it."""
        if order is None or stamp is None:
            return
        self._remember(self._orders, order.client_order_id, stamp)
        if self.pending and any([self._place(order_key(order.client_order_id, st), stamp) for st in FUNDS_MOVED]):
            self.check()

    @staticmethod
    def _remember(where: OrderedDict[str, Stamp], key: str, stamp: Stamp) -> None:
        where[key] = stamp
        where.move_to_end(key)
        while len(where) > KEEP:
            where.popitem(last=False)

    def keys_of(self, ai: AssetInstance) -> tuple[str, ...]:
        if self.margin:
            return (self.main_currency, position_key(ai.symbol))
        return (ai.base, ai.quote)

    def fill_known(self, ai: AssetInstance, order: Order, trade: Trade) -> None:
        """A new fill (called before its notice reaches anyone): covered already, or pending until the stream's
        account update or a REST read covers it."""
        key = trade_key(ai.symbol, trade.trade_id)
        mark = self._wire.pop(key, None)
        if mark is None and trade.emulated:
            mark = self._orders.get(order.client_order_id)  # the order update it was emulated from
        self._expect(key, self.keys_of(ai), mark)

    def order_moved(self, ai: AssetInstance, order: Order, old: OrderStatus, new: OrderStatus) -> None:
        """An order's status moved funds without a fill: a spot order now resting locks its quote (a buy) or its
        base (a sell); one that leaves the book unfilled (cancelled, expired, refused after it rested) releases
        them. Like a fill, the balance must then come from a report that includes the move: a lost stream message
        (a connection cut as the exchange sent it) is corrected by the stream cache or a REST read, not at the next
        verify poll. Futures wallets do not move with orders (their free margin is derived locally)."""
        if self.margin or not moves_funds(old, new):
            return
        self._expect(order_key(order.client_order_id, new), (ai.quote if order.side is Side.BUY else ai.base,), None)

    def _expect(self, key: str, keys: tuple[str, ...], mark: Stamp | None) -> None:
        """Track a change of ``keys`` (a fill, a lock, a release) until a held report includes it. ``mark``: its
        place on the stream when known (else the report being applied places it)."""
        source, context = self._context
        if mark is None and source == "websocket":
            mark = context
        # an order's acknowledgement (its first fills, its lock) and a cancel's answer (its release) come over REST,
        # and the stream reports them too: wait for it
        stream = mark is not None or source in ANSWERED
        # no place on the stream (yet): learned by REST, placed when the engine learned it (a stream without stamps,
        # paper mode's, is placed where it is applied). The fill's exchange time is its stream report's only: a
        # trade's own timestamp may be the engine's clock (an acknowledgement's fills carry none)
        mark = mark or Stamp(self.venue.next_seq(), rest=source != "websocket")
        fill = _Fill(key, keys, mark, mark.seq, stream)
        if self.covers(fill):
            return
        self._add(fill)
        self.check()  # its trade report and the account update after it may be in the venue's stream cache already
        if fill.done.is_set():
            return
        if stream:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            fill.timer = loop.call_later(self.cfg.fill_wait, self._overdue, key)
        else:
            fill.asked = True
            self.request_refetch()

    def covers(self, fill: _Fill) -> bool:
        for k in fill.keys:
            held = self.held.get(k)
            if held is None:
                return False
            if not (held.includes(fill.mark) or (held.rest and held.seq > fill.known)):
                return False
        return True

    def check(self) -> None:
        """Release every pending fill the balances and positions now held include (after each applied report). A
        pending fill that was not covered stays so until a report it waits for is held or it is placed on the
        stream, so only those are looked at, in the order they became pending."""
        if not self.pending:
            return
        self._place_from_cache()
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        fills = [f for f in map(self.pending.get, dirty) if f is not None]
        for fill in sorted(fills, key=lambda f: f.added) if len(fills) > 1 else fills:
            if self.covers(fill):
                self._release(fill)

    def _add(self, fill: _Fill) -> None:
        old = self.pending.get(fill.key)
        if old is not None:
            self._forget(old)
        self._added += 1
        fill.added = self._added
        self.pending[fill.key] = fill
        self._index(fill, add=True)
        if fill.mark.rest and not fill.key.startswith(ORDER_PREFIX):  # an order's lock or release is placed by its report
            self._unplaced.add(fill.key)

    def _forget(self, fill: _Fill) -> None:
        if self.pending.get(fill.key) is not fill:  # released already, or replaced by a later change of the same key
            return
        del self.pending[fill.key]
        self._index(fill, add=False)
        self._dirty.discard(fill.key)
        self._unplaced.discard(fill.key)

    def _index(self, fill: _Fill, add: bool) -> None:
        waiting = self._waiting[1 if fill.mark.rest else 0]
        for k in fill.keys:
            if add:
                waiting.setdefault(k, set()).add(fill.key)
            elif k in waiting:
                waiting[k].discard(fill.key)
                if not waiting[k]:
                    del waiting[k]

    def _release(self, fill: _Fill) -> None:
        self._forget(fill)
        if fill.timer is not None:
            fill.timer.cancel()
        fill.done.set()

    def _overdue(self, key: str) -> None:
        fill = self.pending.get(key)
        if fill is not None and not self.covers(fill):
            log.info("fill %s: no account update from the stream within %.2fs; reading balances", key, self.cfg.fill_wait)
            fill.asked = True
            self.request_refetch()

    def _unconfirm(self, fill: _Fill, why: str) -> None:
        if fill.done.is_set():
            return
        fill.unconfirmed = True
        self.unconfirmed[fill.key] = None
        while len(self.unconfirmed) > KEEP:
            self.unconfirmed.popitem(last=False)
        msg = f"{self.name}: balances after {fill.key} not confirmed ({why}); shown as last known"
        log.warning(msg)
        self.sink.record("error_occurred", reason=msg)
        self._release(fill)

    # ----------------------------------------------------------------- the strategy's side
    async def settled(self, ai: AssetInstance, trade: Trade, cap: float | None = None) -> bool:
        """Wait until the balances and positions held include ``trade`` (True), or until ``cap`` seconds (default:
        ``fill_wait`` plus one REST read's timeout) or a failed read release it unconfirmed (False)."""
        key = trade_key(ai.symbol, trade.trade_id)
        fill = self.pending.get(key)
        if fill is None:
            return key not in self.unconfirmed
        cfg = self.cfg
        try:
            await asyncio.wait_for(fill.done.wait(), cfg.fill_wait + cfg.timeout if cap is None else cap)
        except TimeoutError:
            self._unconfirm(fill, "no account update and no REST answer in time")
        return not fill.unconfirmed

    def confirmed(self, ai: AssetInstance, trade: Trade) -> bool:
        key = trade_key(ai.symbol, trade.trade_id)
        return key not in self.pending and key not in self.unconfirmed

    # ----------------------------------------------------------------- REST reads
    def request_refetch(self, force: bool = False) -> None:
        """Read balances (and positions) by REST soon; requests made meanwhile share one read. ``force``: even if
        no fill asks for it (a stalled stream, a reconnect)."""
        if self._closed:
            return
        self._want = True
        self._forced = self._forced or force
        if self._job is None or self._job.done():
            try:
                self._job = asyncio.get_running_loop().create_task(self._run(), name="planar:balance-refetch")
            except RuntimeError:  # no loop (a unit test building state by hand): nothing to read
                self._want = False

    def _needed(self) -> bool:
        return self._forced or any(f.asked and not self.covers(f) for f in self.pending.values())

    async def _run(self) -> None:
        await asyncio.sleep(COALESCE_S)
        while self._want:
            self._want = False
            if self.reader is not None and self._running() and not self._forced:  # what the stream already brought, before asking REST
                self.reader.from_stream()
                self.check()
            if not self._needed():  # the stream covered every fill that asked meanwhile
                continue
            self._forced = False
            asking = [f for f in self.pending.values() if f.asked]
            ok = await self._fetch()
            self.check()
            if not ok:
                for f in asking:
                    if f.key in self.pending:
                        self._unconfirm(f, "the REST read failed")

    async def _fetch(self) -> bool:
        if self.reader is None:
            return False
        self.fetches += 1
        return await self.reader.read()

    async def flush(self) -> None:
        """Wait for a requested read to finish (start-up sync ends with the balances its fills imply)."""
        job = self._job
        if job is not None and not job.done():
            await asyncio.shield(job)

    async def close(self) -> None:
        self._closed = True
        job, self._job = self._job, None
        if job is not None and not job.done():
            job.cancel()
            with contextlib.suppress(BaseException):
                await job
        for fill in list(self.pending.values()):
            if fill.timer is not None:
                fill.timer.cancel()
            fill.done.set()
        self.pending.clear()
        for waiting in self._waiting:
            waiting.clear()
        self._dirty.clear()
        self._unplaced.clear()
