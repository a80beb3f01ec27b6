"""Applying what the exchange says about orders and trades to local state.

Every order report (``model.venue.OrderReport``) — the acknowledgement, a stream update, a REST poll, a look-up —
goes through ``apply_order``: statuses move only along ``model.status.TRANSITIONS`` (an illegal update is ignored and
recorded as ``illegal_transition``), filled amounts only grow, and an order leaving ``intent``/``unknown``
gets its journal outcome here, in one place. Fills (``FillReport``) attach to their order by client id or exchange id; a trade
that arrives before its order's id is known waits as an orphan and attaches when the id arrives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from ..exchange.client_ids import planar_identity
from ..model import AssetInstance, Order, OrderStatus, OrderType, PositionSide, Side, Trade, legal
from ..model.clock import now_ms
from ..model.json import opt_num, text
from ..model.venue import FillReport, OrderRef, OrderReport, TriggerPhase
from . import trailing
from .margin import record_forced_close
from .notices import Filled, OrderUpdated
from .verdicts import decided

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.updates")
EVENT_OF = {
    OrderStatus.CLOSED: "order_filled",
    OrderStatus.CANCELED: "order_cancelled",
    OrderStatus.EXPIRED: "order_cancelled",
    OrderStatus.REJECTED: "order_failed",
    OrderStatus.FAILED: "order_failed",
}


def find(ai: AssetInstance, cid: str | None, oid: str | None) -> Order | None:
    if cid and cid in ai.orders:
        return ai.orders[cid]
    return ai.order_by_id(oid) if oid else None


def transition(s: "Strategy", ai: AssetInstance, order: Order, new: OrderStatus, source: str, reason: str | None = None) -> bool:
    """Move ``order`` to ``new`` if the table allows it; record the event and the journal outcome. False if refused."""
    old = order.status
    if old == new:
        return True
    if not legal(old, new):
        s.sink.record(
            "illegal_transition",
            symbol=ai.symbol,
            client_order_id=order.client_order_id,
            order_id=order.id,
            old=str(old),
            new=str(new),
            source=source,
        )
        # a stale "open" after a final status is the ordinary race of an order that ended at once (an IOC or FOK
        # whose acknowledgement said expired or filled before the stream's NEW report arrived): recorded, not warned
        level = logging.INFO if new is OrderStatus.OPEN and old.is_final else logging.WARNING
        log.log(level, "ignored %s update of %s: %s -> %s is not a legal transition", source, order.client_order_id, old, new)
        return False
    s.book.set_status(ai, order, new)
    s.freshness.order_moved(ai, order, old, new)  # a lock or a release: the balance must include it (freshness.py)
    if old in (OrderStatus.INTENT, OrderStatus.UNKNOWN):
        try:  # a missing outcome is safe (a restart asks the exchange); a failed write halts (engine/store_guard.py)
            if new is OrderStatus.FAILED:
                s.journal.outcome(order.client_order_id, "failed", None, reason)
            elif new is OrderStatus.REJECTED:
                s.journal.outcome(order.client_order_id, "rejected", order.id, reason)
            elif new is not OrderStatus.UNKNOWN:
                s.journal.outcome(order.client_order_id, "accepted", order.id)
        except OSError as exc:
            s.gate.store_failed("intent journal", exc)
    if old is OrderStatus.UNKNOWN:  # the verdict on an unknown outcome: logged, counted, told (engine/verdicts.py)
        decided(s, ai, order, new, source, reason)
    if old is OrderStatus.FAILED:  # we had proof of absence, and the exchange has it after all: say so loudly
        msg = f"order {order.client_order_id} on {ai.symbol} was taken as never placed, but the exchange reports it {new}"
        s.sink.record("error_occurred", symbol=ai.symbol, client_order_id=order.client_order_id, reason=msg)
        s.alert(msg, "critical")
    if new is OrderStatus.UNKNOWN:
        s.sink.record("order_unknown", symbol=ai.symbol, client_order_id=order.client_order_id, reason=reason, source=source)
    else:
        s.sink.record(
            EVENT_OF.get(new, "order_updated"),
            symbol=ai.symbol,
            client_order_id=order.client_order_id,
            order_id=order.id,
            status=str(new),
            filled=order.filled,
            average=order.average,
            reason=reason,
            source=source,
            **(
                {"reason_code": order.refusal.reason.value}
                if order.refusal is not None and new in (OrderStatus.REJECTED, OrderStatus.FAILED)
                else {}
            ),
        )
    order.changed()
    s.notify(OrderUpdated(ai, order))
    return True


def apply_order(s: "Strategy", report: OrderReport, emulate_now: bool = False, source: str = "exchange") -> Order | None:
    """Merge an order report (REST or stream) into local state; adopts orders it does not know. Its events
    (status, fills) are durable together before this returns (group commit)."""
    with s.group():
        return _apply_order(s, report, emulate_now, source)


def _apply_order(s: "Strategy", r: OrderReport, emulate_now: bool, source: str) -> Order | None:
    ai = s.universe.get(r.symbol)
    if ai is None:
        return None
    cid = r.client_order_id
    oid = r.id
    algo = r.conditional  # a conditional order's record: its id names the conditional order, not a book order
    order = find(ai, cid, None if algo else oid)
    if order is None:
        if s.twins.inspect(s, ai, r):  # another engine of this strategy placed it: never adopted (twins.py)
            return None
        if not _admit_foreign(s, ai, r):
            return None
        meta = s.ledger.restored_order(cid or "")  # what an earlier run of ours placed
        order = Order(
            cid or f"ext-{oid}",
            ai.symbol,
            r.side or Side.BUY,
            OrderType(text(meta.get("type"))) if meta.get("type") else _order_type(r),
            r.amount or 0.0,
            r.price or None,
            bool(r.reduce_only),
            timestamp=r.timestamp or now_ms(s.clock),
            trigger_price=opt_num(meta.get("trigger_price")) or r.trigger_price or None,
            trailing_percent=opt_num(meta.get("trailing_percent")),
            # the side the exchange names (hedge mode: a liquidation's LONG or SHORT) when our record has none: booked
            # on no side, a hedge-mode liquidation's loss missed the realised PnL and left the side's basis (a trial)
            position_side=PositionSide(text(meta.get("position_side")) or (r.position_side or PositionSide.BOTH).value),
            brackets=(opt_num(meta.get("stop_loss")), opt_num(meta.get("take_profit"))),
            parent=text(meta.get("parent")),
            triggered=bool(meta.get("triggered")),
        )
        s.book.add(ai, order)
        s.sink.record(
            "order_adopted",
            symbol=ai.symbol,
            client_order_id=order.client_order_id,
            order_id=oid,
            side=order.side.value,
            amount=order.amount,
            price=order.price,
        )
        restored = s.ledger.restored_trades(order.client_order_id)
        for trade in restored:  # already in the trace from an earlier run
            s.book.add_fill(ai, order, trade)
        if not restored and s.ledger.booked_before(order.client_order_id):
            order.booked_before = r.filled or 0.0  # an earlier run's order, listed again later: its fills are booked
        if r.forced_close:
            record_forced_close(s, ai, order, r.forced_close)
    if order.type.is_conditional and _conditional_phase(s, ai, order, r, source):
        return order  # a triggered conditional record: what follows comes from the order it placed
    if oid and order.id is None:
        order.id = oid
    if r.trigger_price and order.type is OrderType.TRAILING_STOP:
        trailing.follow_exchange(s, ai, order, r.trigger_price)
    filled = r.filled or 0.0
    grew = filled > order.filled + 1e-12
    if grew:  # filled amounts only grow, whatever the status says (a late fill after a cancel is legal)
        order.filled, order.cost = filled, r.cost or (filled * r.average if r.average else order.cost)
        order.filled_at = now_ms(s.clock)
    new = r.status
    if new is None and oid and source == "acknowledgement" and order.status in (OrderStatus.INTENT, OrderStatus.UNKNOWN):
        new = OrderStatus.OPEN  # an answer naming the order booked it: accepted (Bybit's create answer says no more)
    changed = new is not None and new != order.status and transition(s, ai, order, new, source)
    if grew and not changed:
        s.sink.record(
            "order_updated",
            symbol=ai.symbol,
            client_order_id=order.client_order_id,
            order_id=oid,
            status=str(order.status),
            filled=order.filled,
            average=order.average,
            source=source,
        )
        s.notify(OrderUpdated(ai, order))
    for f in r.fills:
        apply_trade(s, replace(f, symbol=ai.symbol, order_id=oid, client_order_id=order.client_order_id))
    if order.id is not None and s.ledger.waiting_for(order.id):
        for t in s.ledger.claim(order.id):
            apply_trade(s, t)
    if grew or changed:
        if order.filled > order.booked + 1e-12:
            if emulate_now:
                emulate(s, ai, order)
            else:
                asyncio.get_running_loop().call_later(s.trade_grace_s, emulate, s, ai, order)
        order.changed()
    return order


def _conditional_phase(s: "Strategy", ai: AssetInstance, order: Order, r: OrderReport, source: str) -> bool:
    """A conditional order's trigger: recorded once as ``order_triggered``. True when ``r`` is the conditional
    record of a triggered order, whose own status (closed once triggered) says nothing about the fill."""
    oid = r.id
    if r.conditional:
        if order.id is None and oid:
            order.id = oid
        if r.trigger_phase is not TriggerPhase.TRIGGERED:
            return False
        mark_triggered(s, ai, order, source, r.triggered_order_id)
        return True
    apart = ai.is_margin and "swap" in s.venue.caps.trigger_books  # waiting orders live elsewhere: this one triggered
    if r.trigger_phase is TriggerPhase.TRIGGERED or (r.filled or 0.0) > 0 or apart:
        mark_triggered(s, ai, order, source, oid if ai.is_margin else None)
    return False


def mark_triggered(s: "Strategy", ai: AssetInstance, order: Order, source: str, placed_id: str | None = None) -> None:
    """The trigger fired: recorded once. ``placed_id``: the id of the order it placed (USD-M), which from now on
    names it (fills and cancels go by that id)."""
    if placed_id and order.id != placed_id:
        order.id = placed_id
        for t in s.ledger.claim(placed_id):
            apply_trade(s, t)
    if order.triggered:
        return
    order.triggered = True
    s.sink.record(
        "order_triggered",
        symbol=ai.symbol,
        client_order_id=order.client_order_id,
        order_id=order.id,
        side=order.side.value,
        amount=order.amount,
        price=order.trigger_price,
        order_type=order.type.value,
        source=source,
    )
    order.changed()
    s.notify(OrderUpdated(ai, order))


def other_strategy(s: "Strategy", cid: str | None) -> str | None:
    """The identity of the other Planar strategy whose id ``cid`` is (None: ours, or nobody's we can tell)."""
    if s.ids.owns(cid):
        return None
    return planar_identity(cid)


def _admit_foreign(s: "Strategy", ai: AssetInstance, r: OrderReport) -> bool:
    """An order this engine does not know: one of ours from an earlier run (its client id encodes this strategy's
    identity exactly), the exchange's forced close, another Planar strategy's order on the same account (always
    left alone: never adopted, never cancelled, whatever the policy), or one placed by someone else (by hand,
    another program), which ``startup_sync.foreign_orders`` adopts, ignores or cancels (recorded once)."""
    cid, oid = r.client_order_id, r.id
    if s.ids.owns(cid) or r.forced_close:
        return True
    key = cid or f"ext-{oid}"
    if s.book.is_foreign(key):
        return False
    other = other_strategy(s, cid)
    policy = s.config.startup_sync.foreign_orders
    if other is None and policy == "adopt":
        return True
    s.book.mark_foreign(key, oid or None)
    if other is not None:  # a desk never wants strategy A cancelling (or adopting) strategy B's orders
        s.sink.record(
            "order_foreign", symbol=ai.symbol, client_order_id=cid, order_id=oid, decision="other_strategy", status=_status_text(r)
        )
        log.debug("order %s on %s belongs to strategy %s, not %s: left alone", key, ai.symbol, other, s.name)
        return False
    s.sink.record("order_foreign", symbol=ai.symbol, client_order_id=cid, order_id=oid, decision=policy, status=_status_text(r))
    log.warning("order %s on %s was not placed by %s: %s", key, ai.symbol, s.name, "cancelling it" if policy == "cancel" else "ignored")
    if policy == "cancel" and r.status is OrderStatus.OPEN:
        s.supervisor.spawn(_cancel_foreign(s, ai, r, key))
    return False


def _status_text(r: OrderReport) -> str | None:
    return None if r.status is None else r.status.value


async def _cancel_foreign(s: "Strategy", ai: AssetInstance, r: OrderReport, key: str) -> None:
    from ..exchange.errors import ExchangeOpError

    ref = OrderRef(r.client_order_id or key, r.id, waiting_trigger=r.conditional)
    try:
        await s.venue.cancel_order(ai.symbol, ref, s.config.timeouts.order_cancellation)
        s.sink.record("order_foreign", symbol=ai.symbol, client_order_id=key, order_id=r.id, decision="cancelled")
    except ExchangeOpError as err:
        s.sink.record("error_occurred", symbol=ai.symbol, client_order_id=key, reason=f"cancel of a foreign order failed: {err}")


def _order_type(r: OrderReport) -> OrderType:
    """The type of an order the engine did not place: the venue's word; an exchange-made order of a type the engine
    never places (a forced close) is a market order (a stop if it has a trigger)."""
    if r.type is not None:
        return r.type
    return OrderType.STOP_MARKET if r.trigger_price else OrderType.MARKET


def emulate(s: "Strategy", ai: AssetInstance, order: Order) -> None:
    """Emulate a trade from an order-update diff (filled and cost deltas) when no trade event explained it. Not
    after the strategy stopped (its trace is closed: a standalone e-stop's closing fill raised ``TraceClosedError``
    from this timer, an outside trial); the next start books that fill from the exchange's trades."""
    if s.closed:
        return
    seen_amount = order.booked
    seen_cost = sum(t.amount * t.price for t in order.trades) + order.booked_before * (order.average or 0.0)
    delta = order.filled - seen_amount
    if delta <= 1e-12:
        return
    price = (order.cost - seen_cost) / delta if order.cost > seen_cost else (order.average or order.price or 0.0)
    n = sum(1 for t in order.trades if t.emulated) + 1
    trade = Trade(
        ai.symbol,
        order.side,
        delta,
        price,
        order.id,
        order.client_order_id,
        now_ms(s.clock),
        trade_id=f"emu-{order.client_order_id}-{n}-{time.time_ns() % 10**6}",
        emulated=True,
    )
    _record_trade(s, ai, order, trade)


def apply_trade(s: "Strategy", f: FillReport) -> Trade | None:
    """Attach a fill to its order (by client id, else exchange id); a fill of an order not known yet waits as an
    orphan under its order id; another strategy's fill, or a foreign order's, is not kept."""
    ai = s.universe.get(f.symbol)
    if ai is None:
        return None
    tid = f.id
    if tid is not None and s.ledger.seen(ai.symbol, tid):
        return None
    cid = f.client_order_id
    oid = f.order_id
    order = find(ai, cid, oid)
    if order is None:
        if oid is not None and s.book.is_foreign_id(oid):
            return None
        if other_strategy(s, cid):  # another strategy's fill: not kept
            return None
        if oid is not None:  # the trade came before the order's acknowledgement: it attaches when the id is known
            s.ledger.park(oid, f)
        return None
    if tid is not None:
        s.ledger.mark_seen(ai.symbol, tid)
    if order.booked_before and order.booked_before >= order.filled - 1e-12:
        return None  # an earlier run's order, listed again: every fill it has was booked then (the trace holds it)
    if order.type.is_conditional and not order.triggered:  # a fill proves the trigger (its report may come later)
        mark_triggered(s, ai, order, "trade", oid if ai.is_margin else None)
    trade = Trade(
        ai.symbol,
        f.side or order.side,
        f.amount,
        f.price,
        oid or order.id,
        order.client_order_id,
        f.timestamp or now_ms(s.clock),
        fee=f.fee.cost if f.fee is not None else 0.0,
        fee_currency=f.fee.currency if f.fee is not None else None,
        trade_id=tid,
        realized_pnl=f.realized_pnl,
    )
    replaced: list[str] = []
    for emu in [t for t in order.trades if t.emulated]:
        if sum(t.amount for t in order.trades) + trade.amount <= order.filled + 1e-12:
            break
        # a real trade arriving after its emulation replaces the emulated one (the trace says which)
        s.book.drop_fill(ai, order, emu)
        replaced.append(str(emu.trade_id))
    if sum(t.amount for t in order.trades) + trade.amount > order.filled + 1e-12:
        order.filled = sum(t.amount for t in order.trades) + trade.amount  # the trade is proof of the fill
        order.filled_at = now_ms(s.clock)
        order.cost = sum(t.amount * t.price for t in order.trades) + trade.amount * trade.price
    _record_trade(s, ai, order, trade, replaced)
    return trade


def _record_trade(s: "Strategy", ai: AssetInstance, order: Order, trade: Trade, replaces: list[str] | None = None) -> None:
    """Book a fill: its realised PnL against its position's basis (engine/ledger.py; the venue's own figure wins
    when it reported one), on its order and asset, and in the trace with the basis after it; a round trip it ended
    is recorded with it, in the same commit."""
    reported = trade.realized_pnl
    realized = s.ledger.realize(ai, order, trade, replaces)
    trade.realized_pnl = realized.pnl
    s.book.add_fill(ai, order, trade)
    with s.group():
        s.sink.record(
            "trade_executed",
            symbol=ai.symbol,
            client_order_id=order.client_order_id,
            order_id=trade.order_id,
            trade_id=trade.trade_id,
            side=trade.side.value,
            amount=trade.amount,
            price=trade.price,
            fee=trade.fee,
            fee_currency=trade.fee_currency,
            expected_price=order.price or None,
            emulated=trade.emulated,
            replaces=replaces or None,
            realized_pnl=realized.pnl,
            computed_pnl=realized.computed if reported is not None else None,  # the engine's, beside the venue's
            unmatched=realized.unmatched or None,
            basis=realized.basis,
        )
        if realized.closed is not None:
            s.sink.record(
                "round_trip",
                symbol=ai.symbol,
                client_order_id=order.client_order_id,
                order_id=trade.order_id,
                trade_id=trade.trade_id,  # the fill that closed it
                **realized.closed.fields(),
            )
    order.changed()
    if not replaces:  # a real trade replacing an emulated one was announced as that one
        s.notify(Filled(ai, order, trade))
