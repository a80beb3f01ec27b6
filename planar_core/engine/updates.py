"""Applying what the exchange says about orders and trades to local state.

Every order update — the acknowledgement, a websocket event, a REST poll, a look-up — goes through
``apply_order``: statuses move only along ``model.status.TRANSITIONS`` (an illegal update is ignored and
recorded as ``illegal_transition``), filled amounts only grow, and an order leaving ``intent``/``unknown``
gets its journal outcome here, in one place. Trades attach to their order by client id or exchange id; a trade
that arrives before its order's id is known waits as an orphan and attaches when the id arrives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ..exchange.client_ids import planar_identity
from ..model import AssetInstance, Order, OrderStatus, OrderType, PositionSide, Side, Trade, legal
from ..model.json import integer, num, obj, opt_num, rows, text
from ..model.status import FROM_CCXT
from ..model.types import Json
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
        log.warning("ignored %s update of %s: %s -> %s is not a legal transition", source, order.client_order_id, old, new)
        return False
    order.status = new
    ai.orders.track(order)
    if old in (OrderStatus.INTENT, OrderStatus.UNKNOWN):
        try:  # a missing outcome is safe (a restart asks the exchange); a failed write halts (engine/store_guard.py)
            if new is OrderStatus.FAILED:
                s.journal.outcome(order.client_order_id, "failed", None, reason)
            elif new is OrderStatus.REJECTED:
                s.journal.outcome(order.client_order_id, "rejected", order.id, reason)
            elif new is not OrderStatus.UNKNOWN:
                s.journal.outcome(order.client_order_id, "accepted", order.id)
        except OSError as exc:
            s.store_failed("intent journal", exc)
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
        )
    order.event.set()
    s.notify(OrderUpdated(ai, order))
    return True


def apply_order(s: "Strategy", raw: Json, emulate_now: bool = False, source: str = "exchange") -> Order | None:
    """Merge an order update (REST or websocket) into local state; adopts orders it does not know. Its events
    (status, trades) are durable together before this returns (group commit)."""
    with s.group():
        return _apply_order(s, raw, emulate_now, source)


def _apply_order(s: "Strategy", raw: Json, emulate_now: bool, source: str) -> Order | None:
    ai = s.universe.get(text(raw.get("symbol")) or "")
    if ai is None:
        return None
    cid = text(raw.get("clientOrderId"))
    oid = text(raw.get("id"))
    venue = s.client.venue
    algo = venue.is_algo_record(raw)  # a USD-M conditional order's record: its id is the algo id, not an order id
    order = find(ai, cid, None if algo else oid)
    if order is None:
        if s.twins.inspect(ai, raw):  # another engine of this strategy placed it: never adopted (twins.py)
            return None
        if not _admit_foreign(s, ai, raw, cid, oid):
            return None
        meta = s._restored_orders.pop(cid or "", None) or {}  # what an earlier run of ours placed
        order = Order(
            cid or f"ext-{oid}",
            ai.symbol,
            Side(text(raw.get("side")) or "buy"),
            OrderType(text(meta.get("type"))) if meta.get("type") else _order_type(raw),
            num(raw.get("amount")),
            opt_num(raw.get("price")) or None,
            bool(raw.get("reduceOnly")),
            timestamp=integer(raw.get("timestamp")) or int(time.time() * 1000),
            trigger_price=opt_num(meta.get("trigger_price")) or opt_num(raw.get("triggerPrice")) or opt_num(raw.get("stopPrice")) or None,
            trailing_percent=opt_num(meta.get("trailing_percent")),
            position_side=PositionSide(text(meta.get("position_side")) or "both"),
            brackets=(opt_num(meta.get("stop_loss")), opt_num(meta.get("take_profit"))),
            parent=text(meta.get("parent")),
            triggered=bool(meta.get("triggered")),
        )
        ai.orders[order.client_order_id] = order
        s.sink.record(
            "order_adopted",
            symbol=ai.symbol,
            client_order_id=order.client_order_id,
            order_id=oid,
            side=order.side.value,
            amount=order.amount,
            price=order.price,
        )
        for trade in s._restored_trades.pop(order.client_order_id, []):  # already in the trace from an earlier run
            order.trades.append(trade)
            ai.trades.append(trade)
        forced = venue.forced_close(raw)
        if forced:
            record_forced_close(s, ai, order, forced)
    if order.type.is_conditional and _conditional_phase(s, ai, order, raw, algo, oid, source):
        return order  # a triggered algo record: what follows comes from the order it placed
    if oid and order.id is None:
        order.id = oid
    filled = num(raw.get("filled"))
    grew = filled > order.filled + 1e-12
    if grew:  # filled amounts only grow, whatever the status says (a late fill after a cancel is legal)
        order.filled, order.cost = filled, num(raw.get("cost")) or order.cost
    new = FROM_CCXT.get(text(raw.get("status")) or "")
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
    for t in rows(raw.get("trades")):
        apply_trade(s, {**t, "symbol": ai.symbol, "order": oid, "clientOrderId": order.client_order_id})
    if order.id is not None and order.id in s._orphan_trades:
        for t in s._orphan_trades.pop(order.id):
            apply_trade(s, t)
    if grew or changed:
        if order.filled > sum(t.amount for t in order.trades) + 1e-12:
            if emulate_now:
                emulate(s, ai, order)
            else:
                asyncio.get_running_loop().call_later(s.trade_grace_s, emulate, s, ai, order)
        order.event.set()
    return order


def _conditional_phase(s: "Strategy", ai: AssetInstance, order: Order, raw: Json, algo: bool, oid: str | None, source: str) -> bool:
    """A conditional order's trigger: recorded once as ``order_triggered``. True when ``raw`` is an algo record of a
    triggered order, whose own status ("closed" for TRIGGERED/FINISHED) says nothing about the fill."""
    venue = s.client.venue
    phase = venue.trigger_phase(raw)
    if algo:
        if order.id is None and oid:
            order.id = oid
        if phase != "triggered":
            return False
        mark_triggered(s, ai, order, source, venue.triggered_order_id(raw))
        return True
    if phase == "triggered" or num(raw.get("filled")) > 0 or ai.is_margin:  # on USD-M a book order is a triggered one
        mark_triggered(s, ai, order, source, oid if ai.is_margin else None)
    return False


def mark_triggered(s: "Strategy", ai: AssetInstance, order: Order, source: str, placed_id: str | None = None) -> None:
    """The trigger fired: recorded once. ``placed_id``: the id of the order it placed (USD-M), which from now on
    names it (fills and cancels go by that id)."""
    if placed_id and order.id != placed_id:
        order.id = placed_id
        for t in s._orphan_trades.pop(placed_id, []):
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
    order.event.set()
    s.notify(OrderUpdated(ai, order))


def other_strategy(s: "Strategy", cid: str | None) -> str | None:
    """The identity of the other Planar strategy whose id ``cid`` is (None: ours, or nobody's we can tell)."""
    if s.ids.owns(cid):
        return None
    return planar_identity(cid)


def _admit_foreign(s: "Strategy", ai: AssetInstance, raw: Json, cid: str | None, oid: str | None) -> bool:
    """An order this engine does not know: one of ours from an earlier run (its client id encodes this strategy's
    identity exactly), the exchange's forced close, another Planar strategy's order on the same account (always
    left alone: never adopted, never cancelled, whatever the policy), or one placed by someone else (by hand,
    another program), which ``startup_sync.foreign_orders`` adopts, ignores or cancels (recorded once)."""
    if s.ids.owns(cid) or s.client.venue.forced_close(raw):
        return True
    key = cid or f"ext-{oid}"
    if key in s.foreign_orders:
        return False
    other = other_strategy(s, cid)
    policy = s.config.startup_sync.foreign_orders
    if other is None and policy == "adopt":
        return True
    s.foreign_orders.add(key)
    if oid:
        s.foreign_order_ids.add(oid)
    if other is not None:  # a desk never wants strategy A cancelling (or adopting) strategy B's orders
        s.sink.record(
            "order_foreign", symbol=ai.symbol, client_order_id=cid, order_id=oid, decision="other_strategy", status=text(raw.get("status"))
        )
        log.debug("order %s on %s belongs to strategy %s, not %s: left alone", key, ai.symbol, other, s.name)
        return False
    s.sink.record("order_foreign", symbol=ai.symbol, client_order_id=cid, order_id=oid, decision=policy, status=text(raw.get("status")))
    log.warning("order %s on %s was not placed by %s: %s", key, ai.symbol, s.name, "cancelling it" if policy == "cancel" else "ignored")
    if policy == "cancel" and raw.get("status") == "open":
        s.supervisor.spawn(_cancel_foreign(s, ai, raw, key))
    return False


async def _cancel_foreign(s: "Strategy", ai: AssetInstance, raw: Json, key: str) -> None:
    from ..exchange.errors import ExchangeOpError

    venue = s.client.venue
    params = venue.trigger_params(ai.is_margin, venue.is_algo_record(raw))
    try:
        await s.client.call(
            "cancel_order", lambda: s.client.ex.cancel_order(text(raw.get("id")), ai.symbol, params), s.config.timeouts.order_cancellation
        )
        s.sink.record("order_foreign", symbol=ai.symbol, client_order_id=key, order_id=text(raw.get("id")), decision="cancelled")
    except ExchangeOpError as err:
        s.sink.record("error_occurred", symbol=ai.symbol, client_order_id=key, reason=f"cancel of a foreign order failed: {err}")


def _order_type(raw: Json) -> OrderType:
    kind = (text(raw.get("type")) or "").lower()
    if raw.get("triggerPrice") or raw.get("stopPrice") or "stop" in kind or "take_profit" in kind:
        limit = "market" not in kind and bool(opt_num(raw.get("price")))
        if "trailing" in kind:
            return OrderType.TRAILING_STOP
        if "take_profit" in kind:
            return OrderType.TAKE_PROFIT_LIMIT if limit else OrderType.TAKE_PROFIT_MARKET
        return OrderType.STOP_LIMIT if limit else OrderType.STOP_MARKET
    if kind == "market":
        return OrderType.MARKET
    if raw.get("postOnly"):
        return OrderType.POST_ONLY
    return {"IOC": OrderType.IOC, "FOK": OrderType.FOK}.get(text(raw.get("timeInForce")) or "", OrderType.GTC)


def emulate(s: "Strategy", ai: AssetInstance, order: Order) -> None:
    """Emulate a trade from an order-update diff (filled and cost deltas) when no trade event explained it."""
    seen_amount = sum(t.amount for t in order.trades)
    seen_cost = sum(t.amount * t.price for t in order.trades)
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
        int(time.time() * 1000),
        trade_id=f"emu-{order.client_order_id}-{n}-{time.time_ns() % 10**6}",
        emulated=True,
    )
    _record_trade(s, ai, order, trade)


def apply_trade(s: "Strategy", raw: Json) -> Trade | None:
    ai = s.universe.get(text(raw.get("symbol")) or "")
    if ai is None:
        return None
    tid = text(raw.get("id"))
    key = f"{ai.symbol}:{tid}"
    if tid is not None and key in s._seen_trade_ids:
        return None
    info = obj(raw.get("info"))
    cid = text(raw.get("clientOrderId")) or text(info.get("c"))
    oid = text(raw.get("order"))
    order = find(ai, cid, oid)
    if order is None:
        if oid is not None and oid in s.foreign_order_ids:
            return None
        if other_strategy(s, cid):  # another strategy's fill: not kept
            return None
        if oid is not None:  # the trade came before the order's acknowledgement: it attaches when the id is known
            s._orphan_trades.setdefault(oid, []).append(raw)
        return None
    if tid is not None:
        s._seen_trade_ids.add(key)
    if order.type.is_conditional and not order.triggered:  # a fill proves the trigger (its report may come later)
        mark_triggered(s, ai, order, "trade", oid if ai.is_margin else None)
    fee = obj(raw.get("fee"))
    trade = Trade(
        ai.symbol,
        Side(text(raw.get("side")) or order.side.value),
        num(raw.get("amount")),
        num(raw.get("price")),
        oid or order.id,
        order.client_order_id,
        integer(raw.get("timestamp")) or int(time.time() * 1000),
        fee=num(fee.get("cost")),
        fee_currency=text(fee.get("currency")),
        trade_id=tid,
        realized_pnl=opt_num(info.get("realizedPnl")) if info.get("realizedPnl") else None,
    )
    replaced: list[str] = []
    for emu in [t for t in order.trades if t.emulated]:
        if sum(t.amount for t in order.trades) + trade.amount <= order.filled + 1e-12:
            break
        # a real trade arriving after its emulation replaces the emulated one (the trace says which)
        order.trades.remove(emu)
        if emu in ai.trades:
            ai.trades.remove(emu)
        replaced.append(str(emu.trade_id))
    if sum(t.amount for t in order.trades) + trade.amount > order.filled + 1e-12:
        order.filled = sum(t.amount for t in order.trades) + trade.amount  # the trade is proof of the fill
        order.cost = sum(t.amount * t.price for t in order.trades) + trade.amount * trade.price
    _record_trade(s, ai, order, trade, replaced)
    return trade


def _record_trade(s: "Strategy", ai: AssetInstance, order: Order, trade: Trade, replaces: list[str] | None = None) -> None:
    order.trades.append(trade)
    ai.trades.append(trade)
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
        expected_price=order.price or None,
        emulated=trade.emulated,
        replaces=replaces or None,
    )
    order.event.set()
    if not replaces:  # a real trade replacing an emulated one was announced as that one
        s.notify(Filled(ai, order, trade))
