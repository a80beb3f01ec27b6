"""The order call: local checks, client order ids, submission, waiting for fills.

Rounding rule (documented in docs/engine.md): amounts are truncated to the market's amount precision (never
more than asked), limit prices are rounded to the nearest tick; an order that ends below the market's minimum
amount or cost after rounding is refused locally. Risk sizing (volatility scaling) is applied *before* the
rounding and the limit checks, so what is checked is what is sent.

Nothing raises out of ``call()``: a local problem (bad input, a refused check, even a bug in a check) is a
refusal (``None``, recorded as ``order_failed``); anything that goes wrong after the request may have left leaves
the order ``unknown`` (``PENDING`` is returned, the background resolver keeps asking the exchange).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING

import ccxt

from ..exchange.errors import ExchangeOpError
from ..model import PENDING, AssetInstance, Order, OrderRequest, OrderStatus, OrderType, Pending, Side, Trade
from ..model.json import num, obj, opt_num, text
from ..model.types import Json
from .submit import OutcomeUnknown, Rejected, lookup, submit
from .updates import apply_order, apply_trade, emulate, transition

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.orders")
MARKET_BUFFER = 1.01  # cash check for market buys: last price + 1 % for the spread and slippage

# Exchange parameters a caller may add. Everything else is refused: a parameter such as ``quantity``,
# ``price`` or ``newClientOrderId`` would replace what the local checks approved and what the journal holds.
ALLOWED_PARAMS = frozenset({"selfTradePreventionMode", "newOrderRespType"})


def check_params(params: Json) -> str | None:
    bad = sorted(k for k in params if k not in ALLOWED_PARAMS)
    if bad:
        return (
            f"exchange params {bad} refused: only {sorted(ALLOWED_PARAMS)} may be added; amount, price, side, type, "
            "time in force, reduce-only and the client order id come from call()'s own checked arguments"
        )
    return None


def ccxt_args(req: OrderRequest, cid: str, params: Json) -> tuple[str, Json]:
    extra: Json = {**params, "clientOrderId": cid}
    if req.type is OrderType.MARKET:
        if req.reduce_only:
            extra["reduceOnly"] = True
        return "market", extra
    if req.type is OrderType.POST_ONLY:
        extra["postOnly"] = True
    else:
        extra["timeInForce"] = req.type.value.upper()
    if req.reduce_only:
        extra["reduceOnly"] = True
    return "limit", extra


def _bad_number(x: object, name: str) -> str | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
        return f"invalid {name} {x!r}: must be a finite number > 0"
    return None


async def _reference_price(s: "Strategy", ai: AssetInstance) -> float:
    if ai.last_price:
        return ai.last_price
    ticker = await s.client.call(
        "fetch_ticker",
        lambda: s.client.ex.fetch_ticker(ai.symbol),
        s.config.timeouts.market_data,
        validate=lambda t: isinstance(t, dict) and isinstance(t.get("last"), (int, float)) and t["last"] > 0,
    )
    ai.last_price = float(ticker["last"])
    return ai.last_price


async def prepare(
    s: "Strategy",
    ai: AssetInstance,
    order_type: OrderType,
    side: Side,
    amount: float,
    price: float | None,
    reduce_only: bool,
    emergency: bool = False,
) -> OrderRequest | str:
    """Local checks before any request; returns the request or the reason it is refused. ``emergency``: the
    emergency stop's closing orders, which a halt does not stop and no sizing changes."""
    state = s.state
    if state.halted and not emergency:
        return f"strategy halted: {state.halt_reason}"
    if not s.client.supports(order_type.value):
        return f"order type {order_type.value} is not offered by {s.client.venue.name}"
    reason = _bad_number(amount, "amount")
    if reason:
        return reason
    if order_type.is_limit:
        reason = _bad_number(price, "price") if price is not None else f"invalid price None: a {order_type.value} order needs a price"
        if reason:
            return reason
    else:
        price = None
    if reduce_only and not ai.is_margin:
        return "reduce_only is for margin (futures) assets only"
    if s.config.max_position_size is not None and amount > s.config.max_position_size:
        return f"amount {amount} exceeds max_position_size {s.config.max_position_size}"
    limits = obj(ai.market.get("limits"))
    max_price = opt_num(obj(limits.get("price")).get("max"))
    if price is not None and max_price and price > max_price:
        return f"price {price} above the market maximum {max_price}"
    if not emergency:
        amount = s.risk.scale_amount(s, ai, side, float(amount), reduce_only)  # sizing before rounding and limit checks
    ex = s.client.ex
    try:
        amount = float(ex.amount_to_precision(ai.symbol, amount))
        if price is not None:
            price = float(ex.price_to_precision(ai.symbol, price))
    except ccxt.InvalidOrder as exc:  # rounds to zero
        return f"amount {amount} below the market minimum after rounding to precision ({exc})"
    min_amount = num(obj(limits.get("amount")).get("min"))
    if amount <= 0 or amount < min_amount:
        return f"amount {amount} below the market minimum {min_amount} after rounding to precision"
    if price is not None and price <= 0:
        return f"price rounds to {price} at the market's tick size"
    ref = price if price is not None else await _reference_price(s, ai)
    min_cost = num(obj(limits.get("cost")).get("min"))
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
        free = s.free_margin(text(ai.market.get("settle")) or s.config.main_currency)
        return None if free >= need else f"insufficient margin: need {need:.8g}, free {free:.8g}"
    if req.side is Side.BUY:
        fee = num(ai.market.get("taker"))
        buffer = MARKET_BUFFER if req.type is OrderType.MARKET else 1.0
        need = req.notional * buffer * (1 + fee)
        free = s.cash(ai.quote).free
        return None if free >= need else f"insufficient {ai.quote}: need {need:.8g}, free {free:.8g}"
    free = s.cash(ai.base).free
    return None if free >= req.amount else f"insufficient {ai.base}: need {req.amount}, free {free}"


def _refuse(s: "Strategy", ai: AssetInstance, kind: str, side: Side, amount: object, price: object, reason: str) -> None:
    s.sink.record(
        kind,
        symbol=ai.symbol,
        side=side.value,
        amount=amount if isinstance(amount, float) else None,
        price=price if isinstance(price, float) else None,
        reason=reason,
    )
    log.warning("order %s on %s: %s", "refused locally" if kind == "order_failed" else "rejected by risk", ai.symbol, reason)


async def call(
    s: "Strategy",
    ai: AssetInstance,
    order_type: OrderType,
    side: Side,
    amount: float,
    price: float | None,
    waitfor: float | None,
    synced: bool,
    reduce_only: bool,
    params: Json,
    emergency: bool = False,
) -> Trade | Pending | None:
    """The seed's ``call!``; see Strategy.call. Never raises (cancellation excepted)."""
    waitfor = s.config.timeouts.order_placement if waitfor is None else max(0.0, waitfor)
    try:
        req: OrderRequest | str = check_params(params) or await prepare(s, ai, order_type, side, amount, price, reduce_only, emergency)
    except Exception as exc:  # a bad reference price, a precision error, a bug in a check: a refusal, never an escape
        log.debug("local checks raised", exc_info=True)
        req = f"{type(exc).__name__}: {exc}"
    if isinstance(req, str):
        _refuse(s, ai, "order_failed", side, amount, price, req)
        return None
    if s.risk_check is not None and not emergency:
        try:
            reason = s.risk_check(s, ai, req)
        except Exception as exc:
            log.exception("risk check raised")
            reason = f"risk check failed: {type(exc).__name__}: {exc}"
        if reason:
            _refuse(s, ai, "risk_rejected", side, req.amount, req.price, reason)
            return None
    cid = s.ids.next()
    order = Order(cid, ai.symbol, side, order_type, req.amount, req.price, reduce_only, timestamp=int(time.time() * 1000))
    ai.orders[cid] = order
    s.journal.intent(
        cid, symbol=ai.symbol, side=side.value, type=order_type.value, amount=req.amount, price=req.price, reduce_only=reduce_only
    )
    s.sink.record(
        "order_placed",
        symbol=ai.symbol,
        client_order_id=cid,
        side=side.value,
        amount=req.amount,
        price=req.price,
        order_type=order_type.value,
        expected_price=req.reference_price,
    )
    s.ensure_order_tasks(ai)
    ccxt_type, extra = ccxt_args(req, cid, params)
    try:
        raw = await submit(s, ai, order, req, ccxt_type, extra)
    except Rejected as r:
        status = OrderStatus.REJECTED if r.err is not None else OrderStatus.FAILED
        transition(s, ai, order, status, "submit", f"{type(r.err).__name__}: {r}" if r.err is not None else str(r))
        log.warning("order %s on %s not placed: %s", cid, ai.symbol, r)
        return None
    except OutcomeUnknown as u:
        return _unknown(s, ai, order, str(u))
    except Exception as exc:  # our own bug after the request may have left: the outcome is unknown, not failed
        log.exception("order %s: unexpected error while placing", cid)
        return _unknown(s, ai, order, f"{type(exc).__name__}: {exc}")
    except BaseException:  # cancelled while the request was out: unknown, and the cancellation goes on
        _unknown(s, ai, order, "cancelled while placing")
        raise
    try:
        apply_order(s, raw, source="acknowledgement")
        return await wait_for_fill(s, ai, order, waitfor, synced)
    except Exception:  # the order is booked; a failure while waiting must not read as "not placed"
        log.exception("order %s: error while waiting for fills", cid)
        return aggregate(order) if order.trades else PENDING


def _unknown(s: "Strategy", ai: AssetInstance, order: Order, reason: str) -> Pending:
    if order.status in (OrderStatus.INTENT, OrderStatus.UNKNOWN):
        transition(s, ai, order, OrderStatus.UNKNOWN, "submit", reason)
        log.warning(
            "order %s on %s: outcome unknown (%s); the resolver keeps asking the exchange", order.client_order_id, ai.symbol, reason
        )
        s.start_resolver()
    return PENDING


async def wait_for_fill(s: "Strategy", ai: AssetInstance, order: Order, waitfor: float, synced: bool) -> Trade | Pending:
    if not order.trades and waitfor > 0:
        deadline = asyncio.get_running_loop().time() + waitfor
        while not order.trades and order.is_open:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            order.event.clear()
            try:
                await asyncio.wait_for(order.event.wait(), remaining)
            except TimeoutError:
                break
        if not order.trades and order.filled > sum(t.amount for t in order.trades):
            await asyncio.sleep(s.trade_grace_s + 0.05)  # let emulation run for fills reported without trades
    if not order.trades and synced and waitfor > 0:
        await force_sync(s, ai, order)
    return aggregate(order) if order.trades else PENDING


async def force_sync(s: "Strategy", ai: AssetInstance, order: Order) -> None:
    """The seed's ``synced=true``: fetch the order and its trades when the watchers saw nothing."""
    try:
        raw = await lookup(s, ai.symbol, order.client_order_id)
        if raw is not None:
            apply_order(s, raw, emulate_now=False, source="synced")
            if order.filled > 0 and order.id is not None:
                trades = await s.client.call(
                    "fetch_my_trades",
                    lambda: s.client.ex.fetch_my_trades(ai.symbol, params={"orderId": order.id}),
                    s.config.timeouts.order_placement,
                    validate=lambda x: isinstance(x, list),
                )
                for t in trades:
                    apply_trade(s, t)
                emulate(s, ai, order)  # whatever the trade history does not explain
    except ExchangeOpError as err:
        log.warning("synced fetch of %s failed: %s", order.client_order_id, err)


def aggregate(order: Order) -> Trade:
    trades = order.trades
    amount = sum(t.amount for t in trades)
    price = sum(t.amount * t.price for t in trades) / amount if amount else 0.0
    first = trades[0]
    return Trade(
        order.symbol,
        order.side,
        amount,
        price,
        order.id,
        order.client_order_id,
        first.timestamp,
        fee=sum(t.fee for t in trades),
        fee_currency=first.fee_currency,
        trade_id=first.trade_id if len(trades) == 1 else ",".join(str(t.trade_id) for t in trades),
        emulated=all(t.emulated for t in trades),
    )
