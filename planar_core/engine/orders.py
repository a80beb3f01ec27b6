"""The order call: local checks, client order ids, submission without duplicates, waiting for fills.

Rounding rule (documented in docs/engine.md): amounts are truncated to the
market's amount precision (never more than asked), limit prices are rounded
to the nearest tick; an order that ends below the market's minimum amount or
cost after rounding is rejected locally.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ccxt

from ..exchange.client import is_order
from ..exchange.errors import (DuplicateOrder, ExchangeOpError, MalformedResponse, NetworkUncertain, OrderNotFound, RateLimited,
                               TransientError)
from ..model import PENDING, AssetInstance, Order, OrderType, Side, Trade

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.orders")
MARKET_BUFFER = 1.01  # cash check for market buys: last price + 1 % for the spread and slippage


@dataclass
class OrderRequest:
    symbol: str
    type: OrderType
    side: Side
    amount: float
    price: float | None
    reduce_only: bool
    reference_price: float  # the price the order is expected to execute at (limit price or last)

    @property
    def notional(self) -> float:
        return self.amount * self.reference_price


def _ccxt_args(req: OrderRequest, cid: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    extra: dict[str, Any] = {"clientOrderId": cid, **params}
    if req.type is OrderType.MARKET:
        return "market", extra
    if req.type is OrderType.POST_ONLY:
        extra["postOnly"] = True
    else:
        extra["timeInForce"] = req.type.value.upper()
    if req.reduce_only:
        extra["reduceOnly"] = True
    return "limit", extra


async def _reference_price(s: "Strategy", ai: AssetInstance) -> float:
    if ai.last_price:
        return ai.last_price
    ticker = await s.client.call("fetch_ticker", lambda: s.client.ex.fetch_ticker(ai.symbol), s.config.timeouts.market_data,
                                 validate=lambda t: isinstance(t, dict) and isinstance(t.get("last"), (int, float)) and t["last"] > 0)
    ai.last_price = float(ticker["last"])
    return ai.last_price


async def prepare(s: "Strategy", ai: AssetInstance, order_type: OrderType, side: Side, amount: float, price: float | None,
                  reduce_only: bool) -> OrderRequest | str:
    """Local checks before any request; returns the request or the reason it is refused."""
    state = s.state
    if state.halted:
        return f"strategy halted: {state.halt_reason}"
    if not isinstance(amount, (int, float)) or not math.isfinite(amount) or amount <= 0:
        return f"invalid amount {amount!r}: must be a finite number > 0"
    if order_type.is_limit and (price is None or not isinstance(price, (int, float)) or not math.isfinite(price) or price <= 0):
        return f"invalid price {price!r}: a {order_type.value} order needs a finite price > 0"
    if order_type is OrderType.MARKET:
        price = None
    if reduce_only and not ai.is_margin:
        return "reduce_only is for margin (futures) assets only"
    if s.config.max_position_size is not None and amount > s.config.max_position_size:
        return f"amount {amount} exceeds max_position_size {s.config.max_position_size}"
    ex = s.client.ex
    market = ai.market
    try:
        amount = float(ex.amount_to_precision(ai.symbol, amount))
        if price is not None:
            price = float(ex.price_to_precision(ai.symbol, price))
    except ccxt.InvalidOrder as exc:  # rounds to zero
        return f"amount {amount} below the market minimum after rounding to precision ({exc})"
    limits = market.get("limits") or {}
    min_amount = (limits.get("amount") or {}).get("min") or 0.0
    if amount <= 0 or amount < min_amount:
        return f"amount {amount} below the market minimum {min_amount} after rounding to precision"
    ref = price if price is not None else await _reference_price(s, ai)
    min_cost = (limits.get("cost") or {}).get("min") or 0.0
    if not reduce_only and amount * ref < min_cost:
        return f"order value {amount * ref:.8g} below the market minimum cost {min_cost}"
    req = OrderRequest(ai.symbol, order_type, side, amount, price, reduce_only, ref)
    return _check_cash(s, ai, req) or req


def _check_cash(s: "Strategy", ai: AssetInstance, req: OrderRequest) -> str | None:
    if ai.is_margin:
        pos = ai.position.contracts
        if req.reduce_only:
            closing = pos < 0 if req.side is Side.BUY else pos > 0
            if not closing or req.amount > abs(pos) + 1e-12:
                return f"reduce_only {req.side.value} {req.amount} does not reduce the position {pos}"
            return None
        leverage = ai.position.leverage or s.config.default_leverage
        need = req.notional / leverage
        free = s.cash(ai.market.get("settle") or s.config.main_currency).free
        return None if free >= need else f"insufficient margin: need {need:.8g}, free {free:.8g}"
    if req.side is Side.BUY:
        fee = float(ai.market.get("taker") or 0.0)
        buffer = MARKET_BUFFER if req.type is OrderType.MARKET else 1.0
        need = req.notional * buffer * (1 + fee)
        free = s.cash(ai.quote).free
        return None if free >= need else f"insufficient {ai.quote}: need {need:.8g}, free {free:.8g}"
    free = s.cash(ai.base).free
    return None if free >= req.amount else f"insufficient {ai.base}: need {req.amount}, free {free}"


async def call(s: "Strategy", ai: AssetInstance, order_type: OrderType, side: Side, amount: float, price: float | None,
               waitfor: float | None, synced: bool, reduce_only: bool, params: dict[str, Any]) -> Trade | Any | None:
    waitfor = s.config.timeouts.order_placement if waitfor is None else max(0.0, waitfor)
    try:
        req = await prepare(s, ai, order_type, side, amount, price, reduce_only)
    except ExchangeOpError as err:  # e.g. no usable reference price from the exchange
        req = f"{type(err).__name__}: {err}"
    if isinstance(req, str):
        s.sink.record("order_failed", symbol=ai.symbol, side=side.value, amount=amount, price=price, reason=req)
        log.warning("order refused locally on %s: %s", ai.symbol, req)
        return None
    if s.risk_check is not None:
        reason = s.risk_check(s, ai, req)
        if reason:
            s.sink.record("risk_rejected", symbol=ai.symbol, side=side.value, amount=req.amount, price=req.price, reason=reason)
            log.warning("order rejected by risk on %s: %s", ai.symbol, reason)
            return None
    cid = s.ids.next()
    order = Order(cid, ai.symbol, side, order_type, req.amount, req.price, reduce_only, timestamp=int(time.time() * 1000))
    ai.orders[cid] = order
    s.journal.intent(cid, symbol=ai.symbol, side=side.value, type=order_type.value, amount=req.amount, price=req.price,
                     reduce_only=reduce_only)
    s.sink.record("order_placed", symbol=ai.symbol, client_order_id=cid, side=side.value, amount=req.amount, price=req.price,
                  order_type=order_type.value, expected_price=req.reference_price)
    s.ensure_order_tasks(ai)
    try:
        raw = await _submit(s, ai, order, req, params)
    except ExchangeOpError as err:
        order.status = "failed"
        s.journal.outcome(cid, "failed")
        s.sink.record("order_failed", symbol=ai.symbol, client_order_id=cid, reason=f"{type(err).__name__}: {err}", code=err.code)
        log.warning("order %s on %s failed: %s", cid, ai.symbol, err)
        return None
    s.journal.outcome(cid, "accepted", str(raw.get("id")))
    apply_order(s, raw)
    if s.broker is not None:
        s.broker.deliver(s)
    return await wait_for_fill(s, ai, order, waitfor, synced)


async def _submit(s: "Strategy", ai: AssetInstance, order: Order, req: OrderRequest, params: dict[str, Any]) -> dict[str, Any]:
    """Send once; after an ambiguous failure look the order up by client id before sending again (same id)."""
    if s.broker is not None:
        return s.broker.place(s, ai, order, req)
    ccxt_type, extra = _ccxt_args(req, order.client_order_id, params)
    retries = max(1, s.config.order_monitoring.retries)
    await s.client.orders.acquire()
    for attempt in range(retries + 1):
        try:
            return await s.client.call("create_order", lambda: s.client.ex.create_order(ai.symbol, ccxt_type, req.side.value, req.amount,
                                                                                         req.price, dict(extra)),
                                       s.config.timeouts.order_placement, idempotent=False, validate=is_order)
        except DuplicateOrder:
            found = await lookup(s, ai, order.client_order_id)
            if found is not None:
                return found
            raise
        except (NetworkUncertain, MalformedResponse, RateLimited, TransientError) as err:
            if not isinstance(err, RateLimited):
                found = await lookup(s, ai, order.client_order_id)
                if found is not None:
                    log.info("order %s found on the exchange after %s; not re-sent", order.client_order_id, type(err).__name__)
                    return found
            if attempt >= retries:
                raise
            await asyncio.sleep(min(5.0, 0.2 * 2 ** attempt))
    raise AssertionError("unreachable")  # pragma: no cover


async def lookup(s: "Strategy", ai: AssetInstance, cid: str) -> dict[str, Any] | None:
    """The order with this client id on the exchange, or None when the exchange does not have it."""
    try:
        return await s.client.call("fetch_order", lambda: s.client.ex.fetch_order(None, ai.symbol, {"origClientOrderId": cid}),
                                   s.config.timeouts.order_placement, retries=max(3, s.config.order_monitoring.retries), validate=is_order)
    except OrderNotFound:
        return None


async def wait_for_fill(s: "Strategy", ai: AssetInstance, order: Order, waitfor: float, synced: bool) -> Trade | Any:
    if not order.trades and waitfor > 0:
        deadline = asyncio.get_running_loop().time() + waitfor
        while not order.trades and order.is_open:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            order.event.clear()
            try:
                await asyncio.wait_for(order.event.wait(), remaining)
            except asyncio.TimeoutError:
                break
        if not order.trades and order.filled > sum(t.amount for t in order.trades):
            await asyncio.sleep(s.trade_grace_s + 0.05)  # let emulation run for fills reported without trades
    if not order.trades and synced and waitfor > 0 and s.broker is None:
        await force_sync(s, ai, order)
    return aggregate(order) if order.trades else PENDING


async def force_sync(s: "Strategy", ai: AssetInstance, order: Order) -> None:
    """The seed's ``synced=true``: fetch the order and its trades when the watchers saw nothing."""
    try:
        raw = await lookup(s, ai, order.client_order_id)
        if raw is not None:
            apply_order(s, raw, emulate_now=False)
            if order.filled > 0 and order.id is not None:
                trades = await s.client.call("fetch_my_trades", lambda: s.client.ex.fetch_my_trades(ai.symbol, params={"orderId": order.id}),
                                             s.config.timeouts.order_placement, validate=lambda x: isinstance(x, list))
                for t in trades:
                    apply_trade(s, t)
                _emulate(s, ai, order)  # whatever the trade history does not explain
    except ExchangeOpError as err:
        log.warning("synced fetch of %s failed: %s", order.client_order_id, err)


def aggregate(order: Order) -> Trade:
    trades = order.trades
    amount = sum(t.amount for t in trades)
    price = sum(t.amount * t.price for t in trades) / amount if amount else 0.0
    first = trades[0]
    return Trade(order.symbol, order.side, amount, price, order.id, order.client_order_id, first.timestamp,
                 fee=sum(t.fee for t in trades), fee_currency=first.fee_currency,
                 trade_id=first.trade_id if len(trades) == 1 else ",".join(str(t.trade_id) for t in trades),
                 emulated=all(t.emulated for t in trades))


# --------------------------------------------------------------------- applying exchange updates
def _find(s: "Strategy", ai: AssetInstance, cid: str | None, oid: str | None) -> Order | None:
    if cid and cid in ai.orders:
        return ai.orders[cid]
    return ai.order_by_id(oid) if oid else None


def apply_order(s: "Strategy", raw: dict[str, Any], emulate_now: bool = False) -> Order | None:
    """Merge an order update (REST or websocket) into local state; adopts orders it does not know."""
    ai = s.universe.get(raw.get("symbol"))
    if ai is None:
        return None
    cid = raw.get("clientOrderId")
    oid = str(raw["id"]) if raw.get("id") is not None else None
    order = _find(s, ai, cid, oid)
    if order is None:
        order = Order(cid or f"ext-{oid}", ai.symbol, Side(raw.get("side") or "buy"), _order_type(raw), float(raw.get("amount") or 0.0),
                      raw.get("price"), bool(raw.get("reduceOnly")), timestamp=int(raw.get("timestamp") or time.time() * 1000))
        ai.orders[order.client_order_id] = order
        s.sink.record("order_adopted", symbol=ai.symbol, client_order_id=order.client_order_id, order_id=oid)
    if oid and order.id is None:
        order.id = oid
    status = {"open": "open", "closed": "closed", "canceled": "canceled", "expired": "expired", "rejected": "rejected"}.get(raw.get("status") or "", order.status)
    if status == "intent":
        status = "open"
    filled = float(raw.get("filled") or 0.0)
    cost = float(raw.get("cost") or 0.0)
    changed = status != order.status or filled > order.filled
    if filled >= order.filled:
        order.filled, order.cost = filled, cost or order.cost
    prev_status, order.status = order.status, status
    for t in raw.get("trades") or []:
        apply_trade(s, {**t, "symbol": ai.symbol, "order": oid, "clientOrderId": order.client_order_id})
    if oid in s._orphan_trades:
        for t in s._orphan_trades.pop(oid):
            apply_trade(s, t)
    if changed:
        kind = {"closed": "order_filled", "canceled": "order_cancelled", "expired": "order_cancelled", "rejected": "order_failed"}.get(status, "order_updated")
        if prev_status != status or kind == "order_updated":
            s.sink.record(kind, symbol=ai.symbol, client_order_id=order.client_order_id, order_id=oid, status=status, filled=order.filled,
                          average=order.average)
        if order.filled > sum(t.amount for t in order.trades) + 1e-12:
            if emulate_now:
                _emulate(s, ai, order)
            else:
                asyncio.get_running_loop().call_later(s.trade_grace_s, _emulate, s, ai, order)
        order.event.set()
    return order


def _order_type(raw: dict[str, Any]) -> OrderType:
    if raw.get("type") == "market":
        return OrderType.MARKET
    if raw.get("postOnly"):
        return OrderType.POST_ONLY
    return {"IOC": OrderType.IOC, "FOK": OrderType.FOK}.get(raw.get("timeInForce") or "", OrderType.GTC)


def _emulate(s: "Strategy", ai: AssetInstance, order: Order) -> None:
    """Emulate a trade from an order-update diff (filled and cost deltas) when no trade event explained it."""
    seen_amount = sum(t.amount for t in order.trades)
    seen_cost = sum(t.amount * t.price for t in order.trades)
    delta = order.filled - seen_amount
    if delta <= 1e-12:
        return
    price = (order.cost - seen_cost) / delta if order.cost > seen_cost else (order.average or order.price or 0.0)
    trade = Trade(ai.symbol, order.side, delta, price, order.id, order.client_order_id, int(time.time() * 1000), emulated=True)
    _record_trade(s, ai, order, trade)


def apply_trade(s: "Strategy", raw: dict[str, Any]) -> Trade | None:
    ai = s.universe.get(raw.get("symbol"))
    if ai is None:
        return None
    tid = str(raw.get("id")) if raw.get("id") is not None else None
    key = f"{ai.symbol}:{tid}"
    if tid is not None and key in s._seen_trade_ids:
        return None
    info = raw.get("info") or {}
    cid = raw.get("clientOrderId") or (info.get("c") if isinstance(info, dict) else None)
    oid = str(raw["order"]) if raw.get("order") is not None else None
    order = _find(s, ai, cid, oid)
    if order is None:
        if oid is not None:  # the trade came before the order's acknowledgement
            s._orphan_trades.setdefault(oid, []).append(raw)
        return None
    if tid is not None:
        s._seen_trade_ids.add(key)
    fee = raw.get("fee") or {}
    trade = Trade(ai.symbol, Side(raw.get("side") or order.side.value), float(raw.get("amount") or 0.0), float(raw.get("price") or 0.0),
                  oid or order.id, order.client_order_id, int(raw.get("timestamp") or time.time() * 1000),
                  fee=float(fee.get("cost") or 0.0), fee_currency=fee.get("currency"), trade_id=tid,
                  realized_pnl=float(info["realizedPnl"]) if isinstance(info, dict) and info.get("realizedPnl") else None)
    emulated = [t for t in order.trades if t.emulated]
    if emulated and sum(t.amount for t in order.trades) + trade.amount > order.filled + 1e-12:
        # a real trade arriving after its emulation replaces the emulated one
        order.trades.remove(emulated[0])
        if emulated[0] in ai.trades:
            ai.trades.remove(emulated[0])
    _record_trade(s, ai, order, trade)
    return trade


def _record_trade(s: "Strategy", ai: AssetInstance, order: Order, trade: Trade) -> None:
    order.trades.append(trade)
    ai.trades.append(trade)
    expected = order.price or None
    s.sink.record("trade_executed", symbol=ai.symbol, client_order_id=order.client_order_id, order_id=trade.order_id,
                  trade_id=trade.trade_id, side=trade.side.value, amount=trade.amount, price=trade.price, fee=trade.fee,
                  expected_price=expected, emulated=trade.emulated)
    order.event.set()


# --------------------------------------------------------------------- cancels
async def cancel(s: "Strategy", ai: AssetInstance, order: Order) -> bool:
    """Cancel one order; False (logged and recorded) when the exchange refuses or cannot be reached."""
    if s.broker is not None:
        return s.broker.cancel(s, ai, order)
    try:
        return await _cancel(s, ai, order)
    except ExchangeOpError as err:
        log.warning("cancel of %s on %s failed: %s", order.client_order_id, ai.symbol, err)
        s.sink.record("error_occurred", symbol=ai.symbol, client_order_id=order.client_order_id, reason=f"cancel failed: {err}")
        return False


async def _cancel(s: "Strategy", ai: AssetInstance, order: Order) -> bool:
    try:
        if order.id is not None:
            raw = await s.client.call("cancel_order", lambda: s.client.ex.cancel_order(order.id, ai.symbol),
                                      s.config.timeouts.order_cancellation)
        else:
            raw = await s.client.call("cancel_order", lambda: s.client.ex.cancel_order(None, ai.symbol,
                                                                                        {"origClientOrderId": order.client_order_id}),
                                      s.config.timeouts.order_cancellation)
    except OrderNotFound:
        raw = await lookup(s, ai, order.client_order_id)  # already closed: learn how
        if raw is not None:
            apply_order(s, raw)
        return False
    apply_order(s, {**raw, "status": raw.get("status") or "canceled"})
    return True


async def cancel_all(s: "Strategy", ai: AssetInstance) -> int:
    if s.broker is not None:
        return sum(s.broker.cancel(s, ai, o) for o in ai.open_orders())
    before = len(ai.open_orders())
    try:
        await s.client.call("cancel_all_orders", lambda: s.client.ex.cancel_all_orders(ai.symbol), s.config.timeouts.order_cancellation)
    except OrderNotFound:  # nothing open (Binance answers -2011)
        pass
    except ExchangeOpError as err:
        log.warning("cancel_all on %s failed: %s", ai.symbol, err)
        s.sink.record("error_occurred", symbol=ai.symbol, reason=f"cancel_all failed: {err}")
        return 0
    await s.sync_asset_orders(ai, trades=False)
    return before - len(ai.open_orders())
