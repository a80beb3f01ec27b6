"""Stop-loss and take-profit attached to an entry (``call(..., stop_loss=, take_profit=)``): the exits are placed
when the entry has filled, for what it filled, and removed when the position they protect is closed.

* USD-M futures: two reduce-only conditional orders (``STOP_MARKET``, ``TAKE_PROFIT_MARKET``) on the same
  position side. Binance has no one-cancels-other there, so it is emulated: when one triggers or fills, the
  engine cancels the other.
* Spot: one OCO order list (a ``LIMIT_MAKER`` take-profit above, a ``STOP_LOSS`` below), because both exits sell
  the same coins and only a list lets them share one lock; the exchange expires one leg when the other acts.
  The legs are booked, traced and shown as what they are to the strategy: a ``TAKE_PROFIT_LIMIT`` (limit and
  trigger at the take-profit; on the exchange a post-only limit resting from the start) and a ``STOP_MARKET``,
  whatever type the exchange's reports map to (a LIMIT_MAKER reads as post-only there). A single exit is a
  single conditional order.

Each exit is an order of its own: journaled before it is sent, traced with ``parent`` naming its entry,
reconciled like any other. An entry whose exits cannot be placed raises a critical alert: the position is open
and unprotected.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..exchange.errors import ExchangeOpError, PermanentError
from ..model import AssetInstance, Order, OrderCall, OrderStatus, OrderType, PositionSide, Refusal, RefusalReason, Side
from ..model.json import num
from ..model.types import Json
from ..model.venue import PlaceExitList
from ..risk.ownership import own_share
from .notices import EngineEvent, OrderUpdated
from .orders import NotJournaled, book, call
from .submit import lookup
from .sync import sync_positions
from .updates import apply_order, transition

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.brackets")

STOPS = frozenset({OrderType.STOP_MARKET, OrderType.STOP_LIMIT})  # an exit that is the stop-loss
TAKES = frozenset({OrderType.TAKE_PROFIT_MARKET, OrderType.TAKE_PROFIT_LIMIT})  # the take-profit


def on_event(s: "Strategy", event: EngineEvent) -> None:
    """The engine's listener: an entry that finished filling gets its exits; an exit that acts retires its sibling."""
    if not isinstance(event, OrderUpdated):
        return
    ai, order = event.ai, event.order
    if order.parent is not None:
        _supersede(s, ai, order)
        if order.status is OrderStatus.FAILED and order.verdict == "absent" and s.running:
            s.supervisor.spawn(_absent(s, ai, order))
        pending = any(o.parent == order.parent and o.status in (OrderStatus.INTENT, OrderStatus.UNKNOWN) for o in ai.orders.values())
        if order.status.is_final and (order.filled > 0 or order.triggered) and not pending:
            settled(s, order.parent)  # an exit that acted: what it protected is not due any more (unless another
            # exit of it is still in doubt: placed again for a resized position, say). A cancelled one settles
            # nothing: cancelled by the exchange while the engine was away (Bybit's DCP), it is what a restart places
            # again (a trial); cancelled by the engine, the position was closed or the exit replaced
        _exit_update(s, ai, order)
        _exit_lost(s, ai, order)
    elif any(px is not None for px in order.brackets) and order.status.is_final and order.filled > 0:
        if s.book.mark_bracketed(order.client_order_id) and s.book.start_exits(order.client_order_id):
            due(s, ai, order)
            s.supervisor.spawn(place(s, ai, order))


def _supersede(s: "Strategy", ai: AssetInstance, order: Order) -> None:
    """An exit the exchange acknowledged (or filled) retires the older, larger exits of its entry and kind: placed
    again for a smaller position (a trim, a lost exit placed again), the old ones stay until the new one is on the
    exchange, never longer (a review: kept while the new one was in doubt, they hid that it was missing, and a
    reduce-only exit larger than the position is refused when it triggers)."""
    if order.id is None or not (order.is_open or order.filled > 0) or not ai.is_margin:
        return
    kinds = STOPS if order.type in STOPS else TAKES
    size = order.amount - order.filled if order.is_open else order.amount
    for o in exits_of(s, ai, order.parent):
        if o is not order and o.type in kinds and o.timestamp <= order.timestamp and o.amount - o.filled > size * (1 + 1e-9):
            log.info(
                "exit %s of %s: replaced by %s (%s for %s): cancelled", o.client_order_id, o.parent, order.client_order_id, size, o.amount
            )
            s.sink.record(
                "order_updated", symbol=ai.symbol, client_order_id=o.client_order_id, reason="replaced by a smaller exit: cancelled"
            )
            s.supervisor.spawn(s.cancel(ai, o))


def due(s: "Strategy", ai: AssetInstance, entry: Order, why: str | None = None) -> None:
    """The entry's exits are due: persisted before they are sent, so that a crash before the exchange confirms them
    leaves a restart that knows (``resume``). Without it a restart after a crash between the fill and the exits
    left the position unprotected, without a word (an outside crash trial: 8 of 8 with 100 ms of latency)."""
    record = {
        "symbol": ai.symbol,
        "side": entry.side.value,
        "position_side": entry.position_side.value,
        "filled": entry.filled,
        "stop_loss": entry.brackets[0],
        "take_profit": entry.brackets[1],
        **({"why": why} if why else {}),  # what a restart says when it places them
    }
    try:
        s.state_store.update(exits_due={**s.state.exits_due, entry.client_order_id: record})
    except Exception as exc:  # the exits are still placed; only a crash before they are would go unnoticed
        log.error("the exits due for %s could not be recorded: %s", entry.client_order_id, exc)


def due_on_stop(s: "Strategy", lapsing: Mapping[str, int]) -> None:
    """A clean stop that leaves a dead-man's switch to run out (Bybit's Disconnected Cancel All cannot be disarmed;
    a countdown whose disarm failed): the exchange cancels the open orders, exits included, unless an engine comes
    back in time. Every open exit's entry is recorded as due, so that a restart finds what the exchange cancelled and
    places it again for the strategy's own position (``resume``); exits still there count as placed. Before, the
    restart recorded them cancelled and nothing else: the position ran without its stop (an outside trial, 2 of 2)."""
    if not lapsing:
        return
    when = min(lapsing.values())
    for ai in s.universe.values():
        for entry in exit_entries(s, ai):
            due(s, ai, entry, f"had its exits when the engine stopped, and the dead-man's switch may have cancelled them (from {when} ms)")


def settled(s: "Strategy", entry: str) -> None:
    """The entry's exits are confirmed by the exchange (or there is nothing left to protect): no longer due."""
    due = s.state.exits_due
    if entry in due:
        try:
            s.state_store.update(exits_due={k: v for k, v in due.items() if k != entry})
        except Exception as exc:  # kept: the next restart finds the exits live and drops it then
            log.warning("the exits of %s could not be marked placed: %s", entry, exc)


def _confirmed(ai: AssetInstance, entry: str) -> bool:
    """Every exit of ``entry`` booked so far is known to the exchange (an id) or has filled: none is in doubt."""
    mine = [o for o in ai.orders.values() if o.parent == entry]
    return bool(mine) and all(o.id is not None or o.filled > 0 for o in mine if o.status is not OrderStatus.FAILED)


async def resume(s: "Strategy") -> None:
    """After a restart: the exits still due (``_due``) are compared with what the start-up sync found on the
    exchange; the missing ones are placed for what is left of the position (``place``), and an alert says so. And
    an exit whose sibling acted, or whose futures position is flat, while the engine was away is cancelled: left
    open, a stale stop closed the next position the strategy opened (an outside crash trial)."""
    for cid, rec in list(s.state.exits_due.items()):
        if not s.book.start_exits(cid):
            continue  # the start-up sync saw this entry fill, and its own ``place`` is sending them now
        await _missing(s, cid, rec, str(rec.get("why") or "filled before the restart without its exits on the exchange"))

    for ai in s.universe.values():
        if not ai.is_margin:
            continue  # spot exits are one list: the exchange retires a leg when the other acts
        for o in exits_of(s, ai):
            siblings = [x for x in ai.orders.values() if x.parent == o.parent and x is not o]
            acted = any(x.filled > 0 or x.triggered for x in siblings)
            pos = ai.position_of(o.position_side) if ai.hedged else ai.position
            if acted or not pos.contracts:
                why = "its sibling acted" if acted else "the position it protects is flat"
                log.warning("exit %s of %s: %s while the engine was away: cancelled", o.client_order_id, o.parent, why)
                s.sink.record("order_updated", symbol=ai.symbol, client_order_id=o.client_order_id, reason=f"{why}: exit cancelled")
                await s.cancel(ai, o)
        await fit(s, ai, "a position reduced while the engine was away")


async def _missing(s: "Strategy", cid: str, rec: Json, why: str) -> None:
    """The exits entry ``cid`` is due (``rec``, its ``exits_due`` record) and the exchange does not hold: placed
    for what is left of the position, with an alert naming ``why``; none missing, it is no longer due."""
    ai = s.universe.get(str(rec.get("symbol")))
    if ai is None:
        s.alert(f"{s.name}: entry {cid} on {rec.get('symbol')} may have no exits, and the symbol is no longer in the universe", "critical")
        return
    due_size = num(rec.get("filled"))  # an exit larger than what is due (a trim's old one, kept) does not count
    live = [o for o in exits_of(s, ai, cid) if o.amount - o.filled <= due_size * (1 + 1e-9) + 1e-12]
    sl, tp = rec.get("stop_loss"), rec.get("take_profit")
    if live and not ai.is_margin and "spot" in s.venue.caps.native_oco:
        sl = tp = None  # one list: a leg on the book is the list
    if any(o.type in STOPS for o in live):
        sl = None
    if any(o.type in TAKES for o in live):
        tp = None
    if sl is None and tp is None:
        settled(s, cid)
        return
    s.book.mark_bracketed(cid)  # a late report of the entry's fill must not send them again
    filled = num(rec.get("filled"))
    entry = Order(
        cid,
        ai.symbol,
        Side(str(rec.get("side"))),
        OrderType.MARKET,
        filled,
        None,
        status=OrderStatus.CLOSED,
        filled=filled,
        position_side=PositionSide(str(rec.get("position_side") or "both")),
        brackets=(float(sl) if isinstance(sl, int | float) else None, float(tp) if isinstance(tp, int | float) else None),
    )
    halted = " (halted: exits only reduce the position, so they are placed all the same)" if s.halted else ""
    msg = f"{s.name}: entry {cid} on {ai.symbol} {why}: placing them{halted}"
    log.warning(msg)
    s.alert(msg, "warning")
    await place(s, ai, entry, protective=True)


RETRIES = 3  # an entry's exits proven never placed are placed again at most this many times in one run


async def _absent(s: "Strategy", ai: AssetInstance, order: Order) -> None:
    """An exit whose placement had no answer (a 503, a timeout) was proven never booked: placed again while its
    entry is still due. Before, nothing followed the verdict: the position stayed without its stop, and no alert
    said so (an outside soak trial: 13 of 15 runs with 5xx or timeouts). A strategy halted by an emergency stop
    gets none (the stop's report stands), and a critical alert says so; so does the last of ``RETRIES``."""
    cid = order.parent or ""
    rec = s.state.exits_due.get(cid)
    if rec is None or not s.book.start_check(f"exits:{cid}"):
        return
    try:
        tries = s.book.count_retry(cid)
        held = (ai.position_of(order.position_side) if ai.hedged else ai.position).contracts if ai.is_margin else s.cash(ai.base).total
        if s.state.halted_by_emergency_stop or tries > RETRIES:
            what = "the strategy was stopped" if tries <= RETRIES else f"placed {RETRIES} times already"
            msg = (
                f"{s.name}: exit {order.client_order_id} of entry {cid} on {ai.symbol} was never placed (proven absent) and is "
                f"not placed again ({what}) while {held} is held: that position has no exit"
            )
            log.critical(msg)
            s.alert(msg, "critical")
            return
        await _missing(s, cid, rec, f"lost exit {order.client_order_id} (its placement had no answer; proven never booked)")
    finally:
        s.book.end_check(f"exits:{cid}")


def exits_of(s: "Strategy", ai: AssetInstance, parent: str | None = None) -> list[Order]:
    """This strategy's open exit orders on ``ai`` (of one entry, or of all): bracket housekeeping cancels these
    and nothing else (by id, never the account's other orders on the symbol)."""
    return [o for o in ai.orders.open_exits() if (parent is None or o.parent == parent) and s.ids.owns(o.client_order_id)]


def _exit_update(s: "Strategy", ai: AssetInstance, order: Order) -> None:
    if not (order.triggered or order.filled > 0 or order.status is OrderStatus.CLOSED):
        return
    if not ai.is_margin and "spot" in s.venue.caps.native_oco:
        return  # an OCO list: the exchange retires the other leg itself
    for sibling in exits_of(s, ai, order.parent):
        if sibling is not order:
            log.info("exit %s of %s acted: cancelling %s", order.client_order_id, order.parent, sibling.client_order_id)
            s.supervisor.spawn(s.cancel(ai, sibling))


def _exit_lost(s: "Strategy", ai: AssetInstance, order: Order) -> None:
    """An exit the exchange had accepted ended refused or expired by the exchange (not cancelled), neither it nor its
    sibling having acted, while what it protected is still held: say so, critically. An outside Bybit trial: after
    the strategy reduced its position by hand, the stop-loss (still at the entry's size) was refused when it
    triggered, and the position stayed open past its stop without a word."""
    if order.status not in (OrderStatus.REJECTED, OrderStatus.EXPIRED) or order.id is None or order.filled > 0:
        return
    if order.status is OrderStatus.EXPIRED and not ai.is_margin and "spot" in s.venue.caps.native_oco:
        return  # an OCO list's leg expires when the other acts, whose report may come second (a review)
    siblings = [o for o in ai.orders.values() if o.parent == order.parent and o is not order]
    if any(o.filled > 0 or o.triggered for o in siblings):
        return  # the other exit acted: this one was retired with it (a spot OCO list's other leg)
    held = (ai.position_of(order.position_side) if ai.hedged else ai.position).contracts if ai.is_margin else s.cash(ai.base).total
    if not held:
        return
    why = order.refusal.detail if order.refusal is not None else "no reason given"
    msg = (
        f"{s.name}: exit {order.client_order_id} ({order.type.value} {order.amount} at {order.trigger_price}) of entry "
        f"{order.parent} on {ai.symbol} was {order.status.value} by the exchange ({why}) while {held} is still held: "
        "that position is not protected by it any more"
    )
    log.critical(msg)
    s.sink.record("error_occurred", symbol=ai.symbol, client_order_id=order.client_order_id, reason=msg)
    s.alert(msg, "critical")


def on_position_closed(s: "Strategy", ai: AssetInstance, side: PositionSide, flipped_from: float | None = None) -> None:
    """The position an entry's exits protect is flat (closed by hand, by another exit, by the exchange): cancel them.
    ``flipped_from``: it went through zero instead (one-way: a sell larger than the long), and the exits that closed
    the position before it (sells, for a long) are cancelled; the new position's own exits stay. Left, an outside
    trial saw them live through the short and then close the next long the strategy opened (3 of 3)."""
    closing = None if flipped_from is None else Side.SELL if flipped_from > 0 else Side.BUY
    for o in exits_of(s, ai):
        if (not ai.hedged or o.position_side is side) and closing in (None, o.side):
            s.sink.record("order_updated", symbol=ai.symbol, client_order_id=o.client_order_id, reason="position closed: exit cancelled")
            s.supervisor.spawn(s.cancel(ai, o))
    entry_side = None if closing is None else Side.BUY if closing is Side.SELL else Side.SELL
    for cid, rec in list(s.state.exits_due.items()):  # nothing left to protect: a restart must not place them on
        if rec.get("symbol") != ai.symbol or (ai.hedged and rec.get("position_side") != side.value):  # the next
            continue  # position (a review: a cancel no longer settles, and a stale record put an old entry's
        if entry_side is None or rec.get("side") == entry_side.value:  # stop on a new position at a restart)
            settled(s, cid)


def _short(s: "Strategy", ai: AssetInstance, o: Order) -> bool:
    return o.is_open and s.cash(ai.base).total + 1e-12 < o.amount - o.filled


def on_spot_balance(s: "Strategy", ai: AssetInstance) -> None:
    """Spot: coins sold by other means leave the exits nothing to sell; cancel them, once the exchange has said
    how much of each exit filled (``_coins_gone``)."""
    for o in exits_of(s, ai):
        if _short(s, ai, o) and s.book.start_check(o.client_order_id):
            s.supervisor.spawn(_coins_gone(s, ai, o))


async def _coins_gone(s: "Strategy", ai: AssetInstance, o: Order) -> None:
    """An exit larger than the coins held: the exit is looked up first, because the balance that already counts
    its own partial fill may come before the report of that fill. Cancelled on that balance alone, a take-profit
    leg that had just filled in part went with the rest of the coins unprotected (the exchange had expired the
    stop leg of the list: an outside trial, 6 of 7). Still larger once the exchange answered: cancelled, and what
    is held without it is said, critically. Not answered: left as it is (the next balance asks again)."""
    cid = o.client_order_id
    try:
        try:
            found = await lookup(s, ai.symbol, cid, timeout=s.config.timeouts.order_cancellation, conditional=o.type.is_conditional)
        except ExchangeOpError as err:
            log.info("exit %s: look-up before a coins-gone cancel failed: %s", cid, err)
            return
        if found is not None:
            apply_order(s, found, source="lookup")
        if not _short(s, ai, o):
            return
        held = s.cash(ai.base).total
        reason = f"coins gone: {held} {ai.base} held, the exit still sells {o.amount - o.filled}"
        log.warning("exit %s of %s: %s: cancelled", cid, o.parent, reason)
        s.sink.record("order_updated", symbol=ai.symbol, client_order_id=cid, reason=f"{reason}: exit cancelled")
        await s.cancel(ai, o)
        if held > 0:
            msg = f"{s.name}: exit {cid} of {o.parent} on {ai.symbol} was cancelled ({reason}): {held} {ai.base} is held without it"
            log.critical(msg)
            s.alert(msg, "critical")
    finally:
        s.book.end_check(cid)


def newest(s: "Strategy", ai: AssetInstance) -> dict[str, dict[frozenset[OrderType], Order]]:
    """Entry -> kind (``STOPS``, ``TAKES``) -> its newest open exit: the one that stays when an exit is placed again
    for a smaller position (the older, larger ones go once it is acknowledged, ``_supersede``). A review: a second
    trim sized from the first's old exit, still open, and sold another strategy's position."""
    found: dict[str, dict[frozenset[OrderType], Order]] = {}
    for o in exits_of(s, ai):
        kind = STOPS if o.type in STOPS else TAKES
        mine = found.setdefault(o.parent or "", {})
        if kind not in mine or o.timestamp >= mine[kind].timestamp:
            mine[kind] = o
    return found


def exit_entries(s: "Strategy", ai: AssetInstance) -> list[Order]:
    """The exits on ``ai`` as the entries they protect, each for what its newest exits still cover (an older, larger
    one being replaced does not count: ``newest``), with their stop-loss and take-profit levels: what
    ``place`` needs to place them again."""
    entries = []
    for parent, kinds in newest(s, ai).items():
        legs = list(kinds.values())
        stop, take = (kinds[k].trigger_price if k in kinds else None for k in (STOPS, TAKES))
        covered = max(o.amount - o.filled for o in legs)
        side = Side.BUY if legs[0].side is Side.SELL else Side.SELL
        entries.append(
            Order(
                parent,
                ai.symbol,
                side,
                OrderType.MARKET,
                covered,
                None,
                status=OrderStatus.CLOSED,
                filled=covered,
                position_side=legs[0].position_side,
                brackets=(stop, take),
            )
        )
    return entries


async def fit(s: "Strategy", ai: AssetInstance, why: str) -> None:
    """Futures: the exits of each kind on each side sell no more than the strategy's own position there. Larger,
    they are placed again at the same levels, each entry's in proportion, and the old ones go once the new ones are
    acknowledged (``_supersede``). Why: a reduce-only exit larger than the position is refused when it triggers
    (Binance -2022), and a position reduced by other means (a trim whose answer came late, a close by hand, a halt
    or a crash between a trim and its exits) kept exits at the old size (a review, 3 of 3 each). An entry one of
    whose exits acted is left to its housekeeping (the other is cancelled); nothing is placed after an emergency stop."""
    if not ai.is_margin or stopped(s) or not exits_of(s, ai):
        return
    async with s.book.exits_lock(ai.symbol):
        await fit_held(s, ai, why)


async def fit_held(s: "Strategy", ai: AssetInstance, why: str) -> None:
    """``fit``, for a caller that holds the symbol's ``exits_lock``. The exits are looked up first: a position report
    can come before the report of the exit that reduced it, and that entry's exits, which acted, counted as larger
    than what was held: every entry's exits were halved, the other entry's half left without a stop (a review)."""
    if not ai.is_margin or stopped(s):
        return
    for o in exits_of(s, ai):
        if o.id is None:
            continue  # its outcome is being resolved: it counts as it is
        try:
            found = await lookup(s, ai.symbol, o.client_order_id, timeout=s.config.timeouts.order_cancellation, conditional=True)
        except ExchangeOpError as err:
            log.info("exits of %s: look-up before fitting them failed (%s): not fitted now", ai.symbol, err)
            return  # the next reduction, or the restart, fits them
        if found is not None:
            apply_order(s, found, source="lookup")
    acted = {o.parent for o in ai.orders.values() if o.parent is not None and (o.filled > 0 or o.triggered)}
    entries = {cid: kinds for cid, kinds in newest(s, ai).items() if cid not in acted}
    sides: dict[PositionSide, dict[str, dict[frozenset[OrderType], Order]]] = {}
    for cid, kinds in entries.items():
        ps = next(iter(kinds.values())).position_side if ai.hedged else PositionSide.BOTH
        sides.setdefault(ps, {})[cid] = kinds
    for ps, group in sides.items():
        own = own_size(s, ai, ps)
        if not s.config.risk.exclusive_account:  # the strategy's own fills, not the account's net: another strategy's
            own = round(abs(s.ledger.basis(ai, ps).size), 12)  # trade moved the net down and back, and the exits,
            # shrunk, stayed small (a review); a reduce-only exit larger than the net is the case of an account shared
        if own <= 0:
            continue  # flat: its exits are cancelled with the position (on_position_closed)
        for kind in (STOPS, TAKES):
            legs = [kinds[kind] for kinds in group.values() if kind in kinds]
            total = sum(o.amount - o.filled for o in legs)
            if total <= own * (1 + 1e-9) + 1e-12:
                continue
            for o in legs:
                size = (o.amount - o.filled) * own / total
                with contextlib.suppress(Exception):
                    size = float(s.venue.amount_to_precision(ai.symbol, round(size, 12))) or size
                msg = (
                    f"{s.name}: exit {o.client_order_id} of {o.parent} on {ai.symbol} ({o.type.value} {o.amount - o.filled}) sells more "
                    f"than the strategy's {own} ({why}): placed again for {size}"
                )
                log.warning(msg)
                s.sink.record("order_updated", symbol=ai.symbol, client_order_id=o.client_order_id, reason=msg)
                entry = Order(
                    o.parent or "",
                    ai.symbol,
                    Side.BUY if o.side is Side.SELL else Side.SELL,
                    OrderType.MARKET,
                    size,
                    None,
                    status=OrderStatus.CLOSED,
                    filled=size,
                    position_side=o.position_side,
                    brackets=(o.trigger_price, None) if kind is STOPS else (None, o.trigger_price),
                )
                if not await place_held(s, ai, entry, protective=True):
                    s.alert(f"{msg}; not placed: the old one stays, and is refused if it triggers", "critical")


def stopped(s: "Strategy") -> bool:
    """Halted by an emergency stop: no exit is placed, protective or not. The stop cancelled everything and its
    report stands (its ``close_positions`` decides what is held); an exit placed after it (a lost exit placed again,
    a trim's exits restored) stayed on the halted strategy's flat position and closed the next one (a review)."""
    return s.state.halted and s.state.halted_by_emergency_stop


def own_size(s: "Strategy", ai: AssetInstance, side: PositionSide) -> float:
    """The strategy's own part of what its exits on ``side`` protect (futures: the position, or that side of it in
    hedge mode; spot: the coins), absolute: no exit of it sells more (risk/ownership.py)."""
    if ai.is_margin:
        ps = side if ai.hedged else PositionSide.BOTH
        held = (ai.position_of(ps) if ai.hedged else ai.position).contracts
    else:
        ps, held = PositionSide.BOTH, s.cash(ai.base).total
    return round(abs(own_share(s, ai, ps, held)[0]), 12)  # 0.02 - 0.006 is 0.01399...: an exit of 0.013 after rounding


def _own_counts(ai: AssetInstance, entry: Order) -> bool:
    """Whether the strategy's own position already counts what ``entry`` filled: an entry of the book whose trades
    are booked, or exits placed again for a position the record holds (a trim's, a restart's). An entry whose fill
    is not booked yet would read as nothing of the strategy's own, and its exits would not be placed."""
    return ai.orders.get(entry.client_order_id) is not entry or entry.booked + 1e-12 >= entry.filled


async def place(s: "Strategy", ai: AssetInstance, entry: Order, protective: bool = False) -> bool:
    """The entry's exits, for what it filled; True when they were placed. ``protective``: placed even while the
    strategy is halted (a restart's, for a position left without them: a halt stops new risk, these only reduce it;
    re-arming never placed them). One sizing of a symbol's exits at a time (``exits_lock``)."""
    async with s.book.exits_lock(ai.symbol):
        return await place_held(s, ai, entry, protective)


async def place_held(s: "Strategy", ai: AssetInstance, entry: Order, protective: bool = False) -> bool:
    """``place``, for a caller that holds the symbol's ``exits_lock`` (a trim, a resize)."""
    sl, tp = entry.brackets
    before = {o.client_order_id for o in ai.orders.values() if o.parent == entry.client_order_id}  # not this call's
    if stopped(s):
        msg = f"{s.name}: the exits of {entry.client_order_id} on {ai.symbol} are not placed: the strategy was halted by an emergency stop"
        log.critical(msg)
        s.alert(msg, "critical")
        return False
    exit_side = Side.SELL if entry.side is Side.BUY else Side.BUY
    amount = entry.filled
    if ai.is_margin:  # reduce-only exits need the position the entry opened: ask the exchange if it is not seen yet
        pos = ai.position_of(entry.position_side) if ai.hedged else ai.position
        if abs(pos.contracts) + 1e-12 < amount:
            try:
                await sync_positions(s)
            except ExchangeOpError as err:  # not asked: the entry's fill is the size (reduce-only keeps it within)
                log.warning("positions before placing the exits of %s: %s", entry.client_order_id, err)
            else:
                pos = ai.position_of(entry.position_side) if ai.hedged else ai.position
                amount = min(amount, abs(pos.contracts))
    else:  # a buy's fee may be taken in the coin bought: exits sell what is there
        try:
            await s.refresh_balances()
        except ExchangeOpError as err:
            log.warning("balances before placing exits: %s", err)
        amount = min(amount, s.cash(ai.base).free)
    if _own_counts(ai, entry):  # never more than the strategy's own (an account others trade: theirs is not its to sell)
        amount = min(amount, own_size(s, ai, entry.position_side))
    if amount <= 0:  # a restart found the entry, but its position is gone: nothing to protect
        s.sink.record(
            "error_occurred", symbol=ai.symbol, client_order_id=entry.client_order_id, reason="exits not placed: no position left"
        )
        settled(s, entry.client_order_id)
        return False
    try:
        if not ai.is_margin and sl is not None and tp is not None and "spot" in s.venue.caps.native_oco:
            ok = await _place_oco(s, ai, entry, exit_side, amount, sl, tp)
        else:
            ok = await _place_each(s, ai, entry, exit_side, amount, sl, tp, protective)
    except Exception as exc:  # never silent: the position is open without its exits
        log.exception("placing the exits of %s", entry.client_order_id)
        ok = False
        s.sink.record("error_occurred", symbol=ai.symbol, client_order_id=entry.client_order_id, reason=f"exits: {exc}")
    if not ok:  # which of the two is on the exchange: an operator told "not placed" of a live stop may add a second
        live = {
            o.type
            for o in ai.orders.values()
            if o.parent == entry.client_order_id and o.client_order_id not in before and (o.is_open or o.filled)
        }
        named = [(f"{what} {px}", kinds) for what, px, kinds in (("stop-loss", sl, STOPS), ("take-profit", tp, TAKES)) if px is not None]
        missing = [what for what, kinds in named if not live & kinds]
        placed = [what for what, kinds in named if live & kinds]
        msg = (
            f"{s.name}: entry {entry.client_order_id} on {ai.symbol} filled {entry.filled} but its exits ({', '.join(missing) or 'all'}) "
            f"were not placed" + (f"; placed: {', '.join(placed)}" if placed else "")
        )
        s.alert(msg, "critical")
    elif _confirmed(ai, entry.client_order_id):  # an exit whose outcome is unknown keeps it due until a restart checks
        settled(s, entry.client_order_id)
    return ok


async def _place_each(
    s: "Strategy", ai: AssetInstance, entry: Order, side: Side, amount: float, sl: float | None, tp: float | None, protective: bool = False
) -> bool:

    ok = True
    before = {o.client_order_id for o in ai.orders.values() if o.parent == entry.client_order_id}  # not this call's
    for kind, px in ((OrderType.STOP_MARKET, sl), (OrderType.TAKE_PROFIT_MARKET, tp)):
        if px is None:
            continue
        exit_call = OrderCall(
            type=kind,
            side=side,
            amount=amount,
            waitfor=0.0,
            synced=False,
            reduce_only=ai.is_margin and not ai.hedged,
            trigger_price=px,
            position_side=entry.position_side,
            parent=entry.client_order_id,
            emergency=protective,  # a halt does not stop it, and risk sizing does not change its amount
        )
        res = await call(s, ai, exit_call)
        placed = [o for o in ai.orders.values() if o.parent == entry.client_order_id and o.type is kind and o.client_order_id not in before]
        ok = ok and (res is not None or any(o.is_open or o.filled for o in placed))
    return ok


async def _place_oco(s: "Strategy", ai: AssetInstance, entry: Order, side: Side, amount: float, sl: float, tp: float) -> bool:
    """One spot OCO list: a LIMIT_MAKER at the take-profit and a STOP_LOSS at the stop, journaled as two orders
    (``TAKE_PROFIT_LIMIT`` and ``STOP_MARKET``)."""
    venue = s.venue
    amount, tp, sl = (
        venue.amount_to_precision(ai.symbol, amount),
        venue.price_to_precision(ai.symbol, tp),
        venue.price_to_precision(ai.symbol, sl),
    )
    now = int(time.time() * 1000)
    legs = [
        Order(  # on the book at once, post-only (Binance: LIMIT_MAKER); what it is to the strategy: its take-profit limit
            s.ids.next(),
            ai.symbol,
            side,
            OrderType.TAKE_PROFIT_LIMIT,
            amount,
            tp,
            timestamp=now,
            trigger_price=tp,
            parent=entry.client_order_id,
        ),
        Order(
            s.ids.next(),
            ai.symbol,
            side,
            OrderType.STOP_MARKET,
            amount,
            None,
            timestamp=now,
            trigger_price=sl,
            parent=entry.client_order_id,
        ),
    ]
    take, stop = legs
    if side is Side.BUY:  # a buy list: the stop above, the limit below
        legs.reverse()
    if stopped(s):  # checked where nothing awaits before the request: an e-stop that ran meanwhile is respected
        return False
    try:
        for o in legs:
            book(s, ai, o, o.price or o.trigger_price)
    except NotJournaled as exc:  # nothing is sent: a leg already booked is failed too (halted and alerted by book)
        for o in legs:
            if o.client_order_id in ai.orders:
                transition(s, ai, o, OrderStatus.FAILED, "book", str(exc))
        return False
    s.ensure_order_tasks(ai)
    request = PlaceExitList(
        symbol=ai.symbol,
        side=side,
        amount=amount,
        take_profit=tp,
        stop=sl,
        take_profit_client_id=take.client_order_id,
        stop_client_id=stop.client_order_id,
    )
    for o in legs:
        o.sent_at = time.time()
    try:
        reports = await venue.create_exit_list(request, timeout=s.config.timeouts.order_placement)
    except PermanentError as err:
        for o in legs:
            o.refusal = Refusal(RefusalReason.EXCHANGE_REFUSED, f"{type(err).__name__}: {err}", err.code)
            transition(s, ai, o, OrderStatus.REJECTED, "submit", o.refusal.detail)
        log.warning("exits of %s refused: %s", entry.client_order_id, err)
        return False
    except ExchangeOpError as err:  # may have been booked: each leg is asked for by its client id
        for o in legs:
            transition(s, ai, o, OrderStatus.UNKNOWN, "submit", f"{type(err).__name__}: {err}")
        s.start_resolver()
        return True
    with s.group():
        for report in reports:
            apply_order(s, report, source="acknowledgement")
    return True
