"""The order call: local checks, client order ids, submission, waiting for fills.

Rounding rule (documented in docs/engine.md): amounts are truncated to the market's amount precision (never
more than asked), limit prices are rounded to the nearest tick; an order that ends below the market's minimum
amount or cost after rounding is refused locally. Risk sizing (volatility scaling) is applied *before* the
rounding and the limit checks, so what is checked is what is sent.

Nothing raises out of ``call()``: a local problem (bad input, a refused check, even a bug in a check) is a
refusal (``None``, recorded as ``order_failed``); so is an intent the journal or the trace cannot take (the order
is failed before anything is sent, and the strategy halts: engine/store_guard.py). Anything that goes wrong after
the request may have left leaves the order ``unknown``: ``UNKNOWN`` is returned, never ``PENDING`` (which means
accepted), and the background resolver keeps asking the exchange (its verdict: engine/verdicts.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import ccxt

from ..exchange.errors import ExchangeOpError
from ..model import (
    PENDING,
    UNKNOWN,
    AssetInstance,
    Order,
    OrderAnswer,
    OrderRequest,
    OrderStatus,
    OrderType,
    Pending,
    PositionSide,
    Side,
    Trade,
)
from ..model.json import num, obj, opt_num, text
from ..model.types import Json
from ..storage import CorruptStateError
from .margin import ensure_margin_mode
from .notices import EngineEvent, OrderUpdated
from .store_guard import describe
from .submit import OutcomeUnknown, Rejected, lookup, submit
from .updates import apply_order, apply_trade, emulate, transition
from .verdicts import resent

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.orders")
MARKET_BUFFER = 1.01  # cash check for market buys: last price + 1 % for the spread and slippage

# Exchange parameters a caller may add. Everything else is refused: a parameter such as ``quantity``,
# ``price`` or ``newClientOrderId`` would replace what the local checks approved and what the journal holds.
ALLOWED_PARAMS = frozenset({"selfTradePreventionMode", "newOrderRespType", "workingType", "priceProtect"})


def check_params(params: Json) -> str | None:
    bad = sorted(k for k in params if k not in ALLOWED_PARAMS)
    if bad:
        return (
            f"exchange params {bad} refused: only {sorted(ALLOWED_PARAMS)} may be added; amount, price, side, type, "
            "time in force, reduce-only, trigger and trailing, position side and the client order id come from call()'s own checked "
            "arguments"
        )
    return None


def ccxt_args(s: "Strategy", ai: AssetInstance, req: OrderRequest, cid: str, params: Json) -> tuple[str, Json]:
    """ccxt's order type and parameters for a checked request (the venue names conditional and hedge parameters)."""
    venue = s.client.venue
    extra: Json = {**params, "clientOrderId": cid}
    if req.type.trigger is not None:
        extra.update(venue.conditional_params(req.type.trigger, ai.is_margin, req.trigger_price, req.trailing_percent))
    if ai.hedged:  # hedge mode: the position side says what the order opens or closes; reduce-only is not sent
        extra["positionSide"] = req.position_side.value.upper()
    elif req.reduce_only:
        extra["reduceOnly"] = True
    if not req.type.is_limit:
        return "market", extra
    if req.type is OrderType.POST_ONLY:
        extra["postOnly"] = True
    elif req.type in (OrderType.IOC, OrderType.FOK):
        extra["timeInForce"] = req.type.value.upper()
    else:
        extra["timeInForce"] = "GTC"
    return "limit", extra


def _bad_number(x: object, name: str) -> str | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
        return f"invalid {name} {x!r}: must be a finite number > 0"
    return None


async def _reference_price(s: "Strategy", ai: AssetInstance, fresh: bool = False) -> float:
    """The last price the engine knows, or the exchange's ticker when it knows none (``fresh``: ask anyway)."""
    if ai.last_price and not fresh:
        return ai.last_price
    ticker = await s.client.call(
        "fetch_ticker",
        lambda: s.client.ex.fetch_ticker(ai.symbol),
        s.config.timeouts.market_data,
        validate=lambda t: isinstance(t, dict) and isinstance(t.get("last"), (int, float)) and t["last"] > 0,
    )
    ai.last_price = float(ticker["last"])
    return ai.last_price


@dataclass(frozen=True)
class Conditional:
    """What an order carries beyond amount and price: its trigger, trailing distance and position side, and the
    stop-loss / take-profit to place when it fills (brackets)."""

    trigger_price: float | None = None
    trailing_percent: float | None = None
    position_side: PositionSide = PositionSide.BOTH
    stop_loss: float | None = None
    take_profit: float | None = None


async def prepare(
    s: "Strategy",
    ai: AssetInstance,
    order_type: OrderType,
    side: Side,
    amount: float,
    price: float | None,
    reduce_only: bool,
    emergency: bool = False,
    cond: Conditional | None = None,
    sized: bool = False,
) -> OrderRequest | str:
    """Local checks before any request; returns the request or the reason it is refused. ``emergency``: the
    emergency stop's closing orders, which a halt does not stop and no sizing changes. ``sized``: the amount was
    sized by risk already (a re-send), so it is not scaled again."""
    cond = cond or Conditional()
    state = s.state
    if state.halted and not emergency:
        return f"strategy halted: {state.halt_reason}"
    market_type = "swap" if ai.is_margin else "spot"
    if not s.client.supports(order_type.value, market_type):
        return f"order type {order_type.value} is not offered by {s.client.name} on {market_type} markets"
    if cond.position_side is not PositionSide.BOTH and not ai.hedged:
        return f"position_side {cond.position_side.value} needs the account in hedge mode (position_mode = 'hedge')"
    if ai.hedged and cond.position_side is PositionSide.BOTH:
        return "position_side: the account is in hedge mode; say which position the order is for (long or short)"
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
    reason = _check_trigger(s, ai, order_type, cond, market_type)
    if reason:
        return reason
    if s.config.max_position_size is not None and amount > s.config.max_position_size:
        return f"amount {amount} exceeds max_position_size {s.config.max_position_size}"
    limits = obj(ai.market.get("limits"))
    max_price = opt_num(obj(limits.get("price")).get("max"))
    if price is not None and max_price and price > max_price:
        return f"price {price} above the market maximum {max_price}"
    if not emergency and not sized:
        amount = s.risk.scale_amount(s, ai, side, float(amount), reduce_only)  # sizing before rounding and limit checks
    ex = s.client.ex
    trigger = cond.trigger_price
    try:
        amount = float(ex.amount_to_precision(ai.symbol, amount))
        if price is not None:
            price = float(ex.price_to_precision(ai.symbol, price))
        if trigger is not None:
            trigger = float(ex.price_to_precision(ai.symbol, trigger))
    except ccxt.InvalidOrder as exc:  # rounds to zero
        return f"amount {amount} below the market minimum after rounding to precision ({exc})"
    min_amount = num(obj(limits.get("amount")).get("min"))
    if amount <= 0 or amount < min_amount:
        return f"amount {amount} below the market minimum {min_amount} after rounding to precision"
    if price is not None and price <= 0:
        return f"price rounds to {price} at the market's tick size"
    last = await _reference_price(s, ai) if price is None or order_type.trigger in ("stop", "take") else ai.last_price
    if order_type.trigger in ("stop", "take") and trigger is not None and last:
        # the engine's price may lag the market: a refusal is decided on the exchange's price, asked now
        if _would_trigger_now(order_type, side, trigger, last):
            last = await _reference_price(s, ai, fresh=True)
            reason = _would_trigger_now(order_type, side, trigger, last)
            if reason:
                return reason
    ref = price if price is not None else trigger if trigger is not None and order_type.trigger != "trailing" else last or 0.0
    min_cost = num(obj(limits.get("cost")).get("min"))
    if not reduce_only and amount * ref < min_cost:
        return f"order value {amount * ref:.8g} below the market minimum cost {min_cost}"
    req = OrderRequest(ai.symbol, order_type, side, amount, price, reduce_only, ref, trigger, cond.trailing_percent, cond.position_side)
    return _check_cash(s, ai, req) or req


def _check_trigger(s: "Strategy", ai: AssetInstance, order_type: OrderType, cond: Conditional, market_type: str) -> str | None:
    kind = order_type.trigger
    if kind is None:
        if cond.trigger_price is not None or cond.trailing_percent is not None:
            return f"trigger_price / trailing_percent are for conditional order types, not {order_type.value}"
        return None
    if kind == "trailing":
        lo, hi = s.client.venue.caps.trailing_percent.get(market_type, (0.0, 0.0))
        tp = cond.trailing_percent
        if isinstance(tp, bool) or not isinstance(tp, (int, float)) or not math.isfinite(tp) or not lo <= tp <= hi:
            return f"invalid trailing_percent {tp!r}: {s.client.venue.name} takes {lo}-{hi} % on {market_type} markets"
        if cond.trigger_price is not None:
            return _bad_number(cond.trigger_price, "trigger_price (activation price)")
        return None
    if cond.trailing_percent is not None:
        return f"trailing_percent is for trailing_stop orders, not {order_type.value}"
    if cond.trigger_price is None:
        return f"invalid trigger_price None: a {order_type.value} order needs a trigger price"
    return _bad_number(cond.trigger_price, "trigger_price")


def _check_brackets(ai: AssetInstance, req: OrderRequest, cond: Conditional) -> str | None:
    """A stop-loss / take-profit attached to an entry: on the right side of the entry's price, on an order that
    opens a position (a spot buy, a futures entry), and not on a conditional or reduce-only order."""
    sl, tp = cond.stop_loss, cond.take_profit
    if sl is None and tp is None:
        return None
    if req.type.is_conditional or req.reduce_only:
        return "stop_loss / take_profit attach to an entry: not to a conditional or reduce-only order"
    if not ai.is_margin and req.side is Side.SELL:
        return "stop_loss / take_profit on spot attach to buys (a spot sell opens no position to protect)"
    if ai.hedged and (req.side is Side.BUY) != (req.position_side is PositionSide.LONG):
        return "stop_loss / take_profit attach to an order that opens its position side, not one that closes it"
    for name, px in (("stop_loss", sl), ("take_profit", tp)):
        reason = _bad_number(px, name) if px is not None else None
        if reason:
            return reason
    ref = req.reference_price
    long = req.side is Side.BUY
    if sl is not None and (sl >= ref if long else sl <= ref):
        return f"stop_loss {sl} must be {'below' if long else 'above'} the entry price {ref}"
    if tp is not None and (tp <= ref if long else tp >= ref):
        return f"take_profit {tp} must be {'above' if long else 'below'} the entry price {ref}"
    return None


def _would_trigger_now(order_type: OrderType, side: Side, trigger: float, last: float) -> str | None:
    """The exchange refuses a conditional order that would trigger at once (Binance -2021): say so before sending."""
    up = (order_type.trigger == "stop") == (side is Side.BUY)  # stop buys and take-profit sells wait for a rise
    if (up and trigger <= last) or (not up and trigger >= last):
        rel = "at or below" if up else "at or above"
        return (
            f"{order_type.value} {side.value} trigger {trigger} is {rel} the last price {last}: it would trigger at once "
            "(use a market or limit order)"
        )
    return None


def _check_cash(s: "Strategy", ai: AssetInstance, req: OrderRequest) -> str | None:
    if ai.is_margin:
        position = ai.position_of(req.position_side) if ai.hedged else ai.position
        pos = position.contracts
        # hedge mode: selling the long side or buying the short side closes it, whatever reduce_only says
        closes_side = ai.hedged and (req.side is Side.SELL) == (req.position_side is PositionSide.LONG)
        if req.reduce_only or closes_side:
            closing = pos < 0 if req.side is Side.BUY else pos > 0
            if not closing or req.amount > abs(pos) + 1e-12:
                what = f"the {req.position_side.value} position" if ai.hedged else "the position"
                return f"{'reduce_only ' if req.reduce_only else ''}{req.side.value} {req.amount} does not reduce {what} {pos}"
            return None
        leverage = position.leverage or s.config.default_leverage
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
    cond: Conditional | None = None,
    parent: str | None = None,
    resend_of: Order | None = None,
) -> OrderAnswer:
    """The seed's ``call!``; see Strategy.call. Never raises (cancellation excepted). ``resend_of``: an order whose
    outcome was unknown and which look-ups proved never booked, sent again under a new client id
    (``order_monitoring.resend_absent``; checked again locally, not sized again)."""
    cond = cond or Conditional()
    waitfor = s.config.timeouts.waitfor if waitfor is None else max(0.0, waitfor)
    try:
        req: OrderRequest | str = check_params(params) or await prepare(
            s, ai, order_type, side, amount, price, reduce_only, emergency, cond, sized=resend_of is not None
        )
        if isinstance(req, OrderRequest):
            req = _check_brackets(ai, req, cond) or req
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
    if ai.is_margin and not emergency:
        reason = await ensure_margin_mode(s, ai)
        if reason:
            _refuse(s, ai, "order_failed", side, req.amount, req.price, reason)
            return None
    try:
        cid = s.ids.next()
    except CorruptStateError as exc:  # the sequence cannot be read: no id is issued on a guess, and nothing more goes out
        s.persisted_unreadable(exc)
        _refuse(s, ai, "order_failed", side, req.amount, req.price, f"not sent: {exc}")
        return None
    except Exception as exc:  # a new block of ids could not be reserved: the store refuses writes (or cannot be read)
        what = describe(exc, "client order id sequence")
        _refuse(s, ai, "order_failed", side, req.amount, req.price, f"not sent: no client order id ({what})")
        if isinstance(exc, OSError):
            s.store_failed("client order id sequence", exc)
        return None
    order = Order(
        cid,
        ai.symbol,
        side,
        order_type,
        req.amount,
        req.price,
        reduce_only,
        timestamp=int(time.time() * 1000),
        trigger_price=req.trigger_price,
        trailing_percent=req.trailing_percent,
        position_side=req.position_side,
        brackets=(cond.stop_loss, cond.take_profit),
        parent=parent,
        resend_of=resend_of.client_order_id if resend_of is not None else None,
    )
    try:
        book(s, ai, order, req.reference_price)
    except NotJournaled:  # failed, halted and alerted; nothing was sent
        return None
    if resend_of is not None:
        resent(s, ai, resend_of, order)
    s.ensure_order_tasks(ai)
    ccxt_type, extra = ccxt_args(s, ai, req, cid, params)
    try:
        raw = await submit(s, ai, order, req, ccxt_type, extra)
    except Rejected as r:
        status = OrderStatus.REJECTED if r.err is not None else OrderStatus.FAILED
        transition(s, ai, order, status, "submit", f"{type(r.err).__name__}: {r}" if r.err is not None else str(r))
        log.warning("order %s on %s not placed: %s", cid, ai.symbol, r)
        return None
    except OutcomeUnknown as u:
        return _unknown(s, ai, order, str(u), params)
    except Exception as exc:  # our own bug after the request may have left: the outcome is unknown, not failed
        log.exception("order %s: unexpected error while placing", cid)
        return _unknown(s, ai, order, f"{type(exc).__name__}: {exc}", params)
    except BaseException:  # cancelled while the request was out: unknown, and the cancellation goes on
        _unknown(s, ai, order, "cancelled while placing", None)
        raise
    try:
        s.apply_order(raw, source="acknowledgement")  # via the strategy: its fills are placed as the stream will report them
        return await wait_for_fill(s, ai, order, waitfor, synced)
    except Exception:  # the order is booked; a failure while waiting must not read as "not placed"
        log.exception("order %s: error while waiting for fills", cid)
        return aggregate(order) if order.trades else PENDING


class NotJournaled(Exception):
    """The order's intent could not be made durable: it was failed before anything was sent."""


def book(s: "Strategy", ai: AssetInstance, order: Order, expected_price: float | None) -> None:
    """An order about to be sent: tracked on its asset, its intent durable in the journal (so a restart can ask the
    exchange about it), and traced durably as ``order_placed`` with what it asked for.

    Nothing is sent that could not first be journaled: when either write fails (disk full, a read-only volume, an
    I/O error) the order moves ``intent -> failed`` at once (reason "not sent: ..."; the journal gets its outcome if
    it took the intent, the trace its ``order_failed`` after the ``order_placed`` it may still hold), the strategy
    halts with a critical alert naming the path and the error, and ``NotJournaled`` is raised."""
    ai.orders[order.client_order_id] = order
    asked: Json = {
        "symbol": ai.symbol,
        "side": order.side.value,
        "amount": order.amount,
        "price": order.price,
        "trigger_price": order.trigger_price,
        "trailing_percent": order.trailing_percent,
        "stop_loss": order.brackets[0],
        "take_profit": order.brackets[1],
        "parent": order.parent,
    }
    if order.resend_of is not None:
        asked["resends"] = order.resend_of
    where = "intent journal"
    try:
        s.journal.intent(
            order.client_order_id, type=order.type.value, reduce_only=order.reduce_only, position_side=order.position_side.value, **asked
        )
        where = s.sink.where
        s.sink.durable(
            "order_placed",
            client_order_id=order.client_order_id,
            order_type=order.type.value,
            expected_price=expected_price,
            position_side=order.position_side.value if ai.hedged else None,
            **asked,
        )
    except Exception as exc:
        reason = f"not sent: its intent could not be made durable ({describe(exc, where)})"
        log.error("order %s on %s %s", order.client_order_id, ai.symbol, reason)
        transition(s, ai, order, OrderStatus.FAILED, "book", reason)
        s.store_failed(where, exc)
        raise NotJournaled(reason) from exc


def _unknown(s: "Strategy", ai: AssetInstance, order: Order, reason: str, params: Json | None) -> OrderAnswer:
    """The request may have left and nobody has said what happened. An order still ``intent`` becomes ``unknown``
    and the answer is ``UNKNOWN`` (never ``PENDING``); the resolver keeps asking. One a stream event already moved on
    during the wait is known after all, and the answer says what is known. ``params``: the call's exchange params,
    kept for a re-send (None: the caller is gone, nothing to re-send for)."""
    if order.status in (OrderStatus.INTENT, OrderStatus.UNKNOWN):
        transition(s, ai, order, OrderStatus.UNKNOWN, "submit", reason)
        s.start_resolver()
        if order.trades:  # a fill already proves it was booked (its status is still being asked)
            return aggregate(order)
        log.warning(
            "order %s on %s: outcome unknown (%s); answered UNKNOWN, the resolver keeps asking the exchange",
            order.client_order_id,
            ai.symbol,
            reason,
        )
        if params is not None:
            s.answered_unknown[order.client_order_id] = dict(params)
            s.unknown_outcomes["unknown_answered"] += 1
        return UNKNOWN
    if order.trades:
        return aggregate(order)
    return None if order.status in (OrderStatus.REJECTED, OrderStatus.FAILED) else PENDING


def on_verdict(s: "Strategy", event: EngineEvent) -> None:
    """The strategy's listener for verdicts (engine/verdicts.py): an order ``call()`` answered ``UNKNOWN`` for is
    decided; proven absent, and ``order_monitoring.resend_absent`` on, it is re-sent once (``resend``)."""
    if not isinstance(event, OrderUpdated) or event.order.verdict is None:
        return
    order = event.order
    params = s.answered_unknown.pop(order.client_order_id, None)
    if (
        params is not None
        and order.verdict == "absent"
        and order.status is OrderStatus.FAILED
        and order.resend_of is None
        and s.config.order_monitoring.resend_absent
        and s.running
    ):
        s.supervisor.spawn(resend(s, event.ai, order, params))


async def resend(s: "Strategy", ai: AssetInstance, old: Order, params: Json) -> OrderAnswer:
    """``order_monitoring.resend_absent``: send once more an order that was answered ``UNKNOWN`` and proven never
    booked: the same request under a NEW client id (the old one is never reused), checked again locally (a halt,
    cash, the risk hook: the market may have moved) but not sized again."""
    cond = Conditional(old.trigger_price, old.trailing_percent, old.position_side, old.brackets[0], old.brackets[1])
    return await call(
        s, ai, old.type, old.side, old.amount, old.price, 0.0, False, old.reduce_only, params, cond=cond, parent=old.parent, resend_of=old
    )


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
    for trade in list(order.trades) if waitfor > 0 else []:  # the answer comes with the balance that includes it
        await s.fill_settled(ai, trade)
    return aggregate(order) if order.trades else PENDING


async def force_sync(s: "Strategy", ai: AssetInstance, order: Order) -> None:
    """The seed's ``synced=true``: fetch the order and its trades when the watchers saw nothing."""
    try:
        raw = await lookup(s, ai.symbol, order.client_order_id, conditional=order.type.is_conditional)
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
