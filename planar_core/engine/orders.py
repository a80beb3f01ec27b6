"""The order call: local checks, client order ids, submission, waiting for fills.

Rounding rule (documented in docs/engine.md): amounts are truncated to the market's amount precision (never
more than asked), limit prices are rounded to the nearest tick; an order that ends below the market's minimum
amount or cost after rounding is refused locally. Risk sizing (volatility scaling) is applied *before* the
rounding and the limit checks, so what is checked is what is sent.

Nothing raises out of ``call()``: a local problem (bad input, a refused check, even a bug in a check) is a
refusal (``None``, recorded as ``order_failed`` with its typed ``reason_code``, kept as ``Strategy.last_refusal``:
model/refusals.py); so is an intent the journal or the trace cannot take (the order
is failed before anything is sent, and the strategy halts: engine/store_guard.py). Anything that goes wrong after
the request may have left leaves the order ``unknown``: ``UNKNOWN`` is returned, never ``PENDING`` (which means
accepted), and the background resolver keeps asking the exchange (its verdict: engine/verdicts.py).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import TYPE_CHECKING

from ..alerts.repeats import Repeats, held_note
from ..exchange.errors import ExchangeOpError
from ..model import (
    PENDING,
    UNKNOWN,
    Adjustment,
    AssetInstance,
    InvalidOrderCall,
    Order,
    OrderAnswer,
    OrderCall,
    OrderRequest,
    OrderStatus,
    OrderType,
    Pending,
    PositionSide,
    Refusal,
    RefusalReason,
    Side,
    Trade,
)
from ..model.json import num, obj, opt_num, text
from ..model.requests import ALLOWED_PARAMS
from ..model.types import Json
from ..model.venue import ConditionalKind, PlaceOrder
from ..storage import CorruptStateError
from . import trailing
from .margin import ensure_margin_mode
from .notices import EngineEvent, OrderUpdated
from .store_guard import describe
from .submit import OutcomeUnknown, Rejected, lookup, submit
from .updates import apply_order, apply_trade, emulate, transition
from .verdicts import resent

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.orders")
REPEATS = Repeats()  # refusal log lines: one a minute per strategy (instance), kind, symbol and reason
MARKET_BUFFER = 1.01  # cash check for market buys: last price + 1 % for the spread and slippage
ADJUSTED_LOG = 0.01  # an amount sized or rounded by more than this (relative) is logged as well as traced
R = RefusalReason
__all__ = ["ALLOWED_PARAMS", "NotJournaled", "adjusted", "book", "call", "invalid", "prepare", "refused", "resend"]


def place_order(ai: AssetInstance, req: OrderRequest, cid: str, params: Json, trails: bool = False) -> PlaceOrder:
    """The venue's request for a checked order (the adapter names conditional, hedge and time-in-force options).
    ``trails``: a trailing stop the engine trails (engine/trailing.py), a stop-market order on the exchange."""
    return PlaceOrder(
        symbol=ai.symbol,
        type=OrderType.STOP_MARKET if trails and req.type is OrderType.TRAILING_STOP else req.type,
        side=req.side,
        amount=req.amount,
        client_order_id=cid,
        price=req.price,
        reduce_only=req.reduce_only,
        trigger_price=req.trigger_price,
        trailing_percent=None if trails else req.trailing_percent,
        position_side=req.position_side,
        extra=dict(params),
        reference=ai.last_price or None,
    )


async def _reference_price(s: "Strategy", ai: AssetInstance, fresh: bool = False) -> float | Refusal:
    """The last price the engine knows, or the exchange's ticker when it knows none (``fresh``: ask anyway)."""
    if ai.last_price and not fresh:
        return ai.last_price
    try:
        ticker = await s.venue.ticker(ai.symbol, timeout=s.config.timeouts.market_data)
    except ExchangeOpError as exc:
        return Refusal(R.PRICE_UNKNOWN, f"{type(exc).__name__}: {exc}", exc.code)
    last = ticker.last
    if last is None or not last > 0:
        return Refusal(R.PRICE_UNKNOWN, f"no reference price: the exchange's ticker of {ai.symbol} has no last price ({last!r})")
    ai.last_price = float(last)
    return ai.last_price


def passes_halt(s: "Strategy", emergency: bool, is_exit: bool) -> bool:
    """Whether an order may go out now: anything while not halted; while halted, only the emergency stop's own
    orders and protective exits (they only reduce), and no exit at all after an emergency stop (its report stands:
    ``brackets.stopped``). Asked before the first send and before every re-send (``submit``): an exit re-sent after
    a 503 landed after the stop had said clean (a review)."""
    st = s.state
    return not st.halted or (emergency and not (is_exit and st.halted_by_emergency_stop))


def _halted(s: "Strategy") -> Refusal:
    state = s.state
    return Refusal(R.BREAKER if state.breaker_tripped else R.HALTED, f"strategy halted: {state.halt_reason}")


async def prepare(s: "Strategy", ai: AssetInstance, asked: OrderCall) -> OrderRequest | Refusal:
    """Local checks before any request that need the market, the account or the venue (``OrderCall`` checked the
    rest when it was built); returns the request or why it is refused. ``asked.emergency``: the emergency stop's
    closing orders, which a halt does not stop and no sizing changes. ``asked.sized``: the amount was sized by risk
    already (a re-send), so it is not scaled again."""
    if not passes_halt(s, asked.emergency, asked.parent is not None):
        return _halted(s)
    order_type, side, reduce_only = asked.type, asked.side, asked.reduce_only
    market_type = "swap" if ai.is_margin else "spot"
    if not s.venue.caps.supports(order_type, market_type):
        return Refusal(R.CAPABILITY, f"order type {order_type.value} is not offered by {s.venue.name} on {market_type} markets")
    if asked.position_side is not PositionSide.BOTH and not ai.hedged:
        return Refusal(
            R.INVALID_PARAMS, f"position_side {asked.position_side.value} needs the account in hedge mode (position_mode = 'hedge')"
        )
    if ai.hedged and asked.position_side is PositionSide.BOTH:
        return Refusal(R.INVALID_PARAMS, "position_side: the account is in hedge mode; say which position the order is for (long or short)")
    if reduce_only and not ai.is_margin:
        return Refusal(R.INVALID_PARAMS, "reduce_only is for margin (futures) assets only")
    trails = asked.conditional is ConditionalKind.TRAILING and trailing.emulated(s, ai)
    if asked.conditional is ConditionalKind.TRAILING:
        lo, hi = trailing.PERCENT_RANGE if trails else s.venue.caps.trailing_percent.get(market_type, (0.0, 0.0))
        who = "the engine's trailing stop" if trails else s.venue.name
        if not lo <= (asked.trailing_percent or 0.0) <= hi:
            detail = f"invalid trailing_percent {asked.trailing_percent!r}: {who} takes {lo}-{hi} % on {market_type} markets"
            return Refusal(R.CAPABILITY, detail)
        if trails and asked.trigger_price is not None:
            return Refusal(R.CAPABILITY, f"the engine's trailing stop on {s.venue.name} starts at once: no activation price")
    amount, price = float(asked.amount), asked.price
    if s.config.max_position_size is not None and amount > s.config.max_position_size:
        return Refusal(R.RISK_LIMIT, f"amount {amount} exceeds max_position_size {s.config.max_position_size}")
    limits = obj(ai.market.get("limits"))
    max_price = opt_num(obj(limits.get("price")).get("max"))
    if price is not None and max_price and price > max_price:
        return Refusal(R.MARKET_LIMIT, f"price {price} above the market maximum {max_price}")
    notes: list[str] = []
    if not asked.emergency and not asked.sized:
        sized = s.risk.scale_amount(s, ai, side, amount, reduce_only)  # sizing before rounding and limit checks
        if _changed(amount, sized):
            notes.append(f"amount {amount:.10g} sized by risk to {sized:.10g}")
        amount = sized
    trigger = asked.trigger_price
    if trails:  # the engine's trailing stop: a stop-market order, first placed trailing_percent from the last price
        start = await _reference_price(s, ai)
        if isinstance(start, Refusal):
            return start
        trigger = trailing.trigger_for(side, start, asked.trailing_percent or 0.0)
    precision = obj(ai.market.get("precision"))
    step, tick = precision.get("amount"), precision.get("price")
    try:  # the venue raises when an amount rounds to nothing at the market's precision
        rounded = s.venue.amount_to_precision(ai.symbol, amount)
    except Exception as exc:
        return Refusal(
            R.PRECISION,
            f"amount {amount:.10g} below the market minimum after rounding to precision: nothing left at the market's amount precision {step} ({exc})",
        )
    if _changed(amount, rounded):
        notes.append(f"amount {amount:.10g} rounded down to {rounded:.10g} (market amount precision {step})")
    amount = rounded
    try:
        if price is not None:
            price = s.venue.price_to_precision(ai.symbol, price)
            if _changed(asked.price, price):
                notes.append(f"price {asked.price:.10g} rounded to {price:.10g} (market price precision {tick})")
        if trigger is not None:
            trigger = s.venue.price_to_precision(ai.symbol, trigger)
            if _changed(asked.trigger_price, trigger):
                notes.append(f"trigger price {asked.trigger_price:.10g} rounded to {trigger:.10g} (market price precision {tick})")
    except Exception as exc:
        return Refusal(R.PRECISION, f"price rounds to nothing at the market's price precision {tick} ({exc})")
    rounding = f" ({'; '.join(notes)})" if notes else ""
    min_amount = num(obj(limits.get("amount")).get("min"))
    if amount <= 0 or amount < min_amount:
        return Refusal(
            R.PRECISION if amount <= 0 else R.MARKET_LIMIT,
            f"amount {amount:.10g} below the market minimum {min_amount} after rounding to precision{rounding}",
        )
    if price is not None and price <= 0:
        return Refusal(R.PRECISION, f"price rounds to {price} at the market's tick size")
    kind = asked.conditional
    stop_or_take = kind in (ConditionalKind.STOP, ConditionalKind.TAKE)
    last: float | Refusal | None = await _reference_price(s, ai) if price is None or stop_or_take else ai.last_price
    if isinstance(last, Refusal):
        return last
    if stop_or_take and trigger is not None and last:
        # the engine's price may lag the market: a refusal is decided on the exchange's price, asked now
        if _would_trigger_now(order_type, side, trigger, last):
            last = await _reference_price(s, ai, fresh=True)
            if isinstance(last, Refusal):
                return last
            reason = _would_trigger_now(order_type, side, trigger, last)
            if reason:
                return Refusal(R.WOULD_TRIGGER, reason)
    ref = price if price is not None else trigger if trigger is not None and kind is not ConditionalKind.TRAILING else last or 0.0
    min_cost = num(obj(limits.get("cost")).get("min"))
    if not reduce_only and amount * ref < min_cost:
        return Refusal(R.MARKET_LIMIT, f"order value {amount * ref:.8g} below the market minimum cost {min_cost}{rounding}")
    adjustment = Adjustment(float(asked.amount), amount, asked.price, price, asked.trigger_price, trigger, tuple(notes)) if notes else None
    req = OrderRequest(
        ai.symbol, order_type, side, amount, price, reduce_only, ref, trigger, asked.trailing_percent, asked.position_side, adjustment
    )
    return _check_cash(s, ai, req) or req


def _changed(asked: float | None, sent: float | None) -> bool:
    return asked is not None and sent is not None and not math.isclose(asked, sent, rel_tol=1e-12, abs_tol=0.0)


def _check_brackets(ai: AssetInstance, req: OrderRequest, asked: OrderCall) -> Refusal | None:
    """A stop-loss / take-profit attached to an entry: on an order that opens a position (a spot buy, a futures
    entry; ``OrderCall`` refused them on conditional and reduce-only orders) and on the right side of the entry's
    price."""
    sl, tp = asked.stop_loss, asked.take_profit
    if sl is None and tp is None:
        return None
    if not ai.is_margin and req.side is Side.SELL:
        return Refusal(R.INVALID_PARAMS, "stop_loss / take_profit on spot attach to buys (a spot sell opens no position to protect)")
    if ai.hedged and (req.side is Side.BUY) != (req.position_side is PositionSide.LONG):
        return Refusal(R.INVALID_PARAMS, "stop_loss / take_profit attach to an order that opens its position side, not one that closes it")
    ref = req.reference_price
    long = req.side is Side.BUY
    if sl is not None and (sl >= ref if long else sl <= ref):
        return Refusal(R.INVALID_PARAMS, f"stop_loss {sl} must be {'below' if long else 'above'} the entry price {ref}")
    if tp is not None and (tp <= ref if long else tp >= ref):
        return Refusal(R.INVALID_PARAMS, f"take_profit {tp} must be {'above' if long else 'below'} the entry price {ref}")
    return None


def _would_trigger_now(order_type: OrderType, side: Side, trigger: float, last: float) -> str | None:
    """The exchange refuses a conditional order that would trigger at once (Binance -2021): say so before sending."""
    up = (order_type.trigger is ConditionalKind.STOP) == (side is Side.BUY)  # stop buys and take-profit sells wait for a rise
    if (up and trigger <= last) or (not up and trigger >= last):
        rel = "at or below" if up else "at or above"
        return (
            f"{order_type.value} {side.value} trigger {trigger} is {rel} the last price {last}: it would trigger at once "
            "(use a market or limit order)"
        )
    return None


def _check_cash(s: "Strategy", ai: AssetInstance, req: OrderRequest) -> Refusal | None:
    if ai.is_margin:
        position = ai.position_of(req.position_side) if ai.hedged else ai.position
        pos = position.contracts
        # hedge mode: selling the long side or buying the short side closes it, whatever reduce_only says
        closes_side = ai.hedged and (req.side is Side.SELL) == (req.position_side is PositionSide.LONG)
        if req.reduce_only or closes_side:
            closing = pos < 0 if req.side is Side.BUY else pos > 0
            if not closing or req.amount > abs(pos) + 1e-12:
                what = f"the {req.position_side.value} position" if ai.hedged else "the position"
                detail = f"{'reduce_only ' if req.reduce_only else ''}{req.side.value} {req.amount} does not reduce {what} {pos}"
                return Refusal(R.NOTHING_TO_REDUCE, detail)
            return None
        leverage = position.leverage or s.config.default_leverage
        need = req.notional / leverage
        free = s.holdings.free_margin(text(ai.market.get("settle")) or s.config.main_currency)
        return None if free >= need else Refusal(R.INSUFFICIENT_FUNDS, f"insufficient margin: need {need:.8g}, free {free:.8g}")
    if req.side is Side.BUY:
        fee = num(ai.market.get("taker"))
        buffer = MARKET_BUFFER if req.type is OrderType.MARKET else 1.0
        need = req.notional * buffer * (1 + fee)
        free = s.cash(ai.quote).free
        return None if free >= need else Refusal(R.INSUFFICIENT_FUNDS, f"insufficient {ai.quote}: need {need:.8g}, free {free:.8g}")
    free = s.cash(ai.base).free
    return None if free >= req.amount else Refusal(R.INSUFFICIENT_FUNDS, f"insufficient {ai.base}: need {req.amount}, free {free}")


def refused(
    s: "Strategy", ai: AssetInstance, refusal: Refusal, side: object, amount: object, price: object, kind: str = "order_failed"
) -> None:
    """Record a refusal (``order_failed``, or ``risk_rejected`` for the risk hook) with its typed reason, and keep it
    as the strategy's ``last_refusal``. ``call()`` answers None for it."""
    s.book.refused(refusal)
    s.sink.record(
        kind,
        symbol=ai.symbol,
        side=str(getattr(side, "value", side)),
        amount=amount if isinstance(amount, float) else None,
        price=price if isinstance(price, float) else None,
        reason=refusal.detail,
        reason_code=refusal.reason.value,
        **({"code": refusal.code} if refusal.code is not None else {}),
    )
    held = REPEATS.admit((id(s), kind, ai.symbol, refusal.reason))
    if held is not None:  # the same refusal again and again is one line a minute, with its count
        what = "refused locally" if kind == "order_failed" else "rejected by risk"
        log.warning("order %s on %s: %s%s", what, ai.symbol, refusal.detail, held_note(held, REPEATS.window_s))


def invalid(exc: ValueError) -> Refusal:
    """The refusal of an order call that is wrong by itself (``InvalidOrderCall``, or a value no enum takes)."""
    return exc.refusal if isinstance(exc, InvalidOrderCall) else Refusal(R.INVALID_PARAMS, str(exc))


def _risk_refusal(s: "Strategy", ai: AssetInstance, req: OrderRequest) -> Refusal | None:
    """The strategy's risk hook (the risk manager's ``check``, or the strategy's own): a sentence is a risk limit."""
    if s.risk_check is None:
        return None
    try:
        verdict = s.risk_check(s, ai, req)
    except Exception as exc:
        log.exception("risk check raised")
        return Refusal(R.CHECK_FAILED, f"risk check failed: {type(exc).__name__}: {exc}")
    if verdict is None or isinstance(verdict, Refusal):
        return verdict
    return Refusal(R.RISK_LIMIT, str(verdict)) if verdict else None


def _order_of(ai: AssetInstance, cid: str, req: OrderRequest, asked: OrderCall) -> Order:
    return Order(
        cid,
        ai.symbol,
        req.side,
        req.type,
        req.amount,
        req.price,
        req.reduce_only,
        timestamp=int(time.time() * 1000),
        trigger_price=req.trigger_price,
        trailing_percent=req.trailing_percent,
        position_side=req.position_side,
        brackets=(asked.stop_loss, asked.take_profit),
        parent=asked.parent,
        resend_of=asked.resend_of.client_order_id if asked.resend_of is not None else None,
        adjustment=req.adjustment,
    )


def _only_reduces(ai: AssetInstance, asked: OrderCall) -> bool:
    """An order that can only make the position smaller (reduce-only, an exit, a hedge side's close): the exchange
    takes it in the position's margin mode, whatever the configured one. Binance refuses a mode switch while a
    position is open (-4048): asked first, it refused every stop, close and risk reduction of a position opened in
    the other mode (an outside trial, 2 of 2)."""
    if asked.reduce_only or asked.parent is not None:
        return True
    return (
        ai.hedged
        and (asked.side is Side.SELL) == (asked.position_side is PositionSide.LONG)
        and asked.position_side is not PositionSide.BOTH
    )


async def call(s: "Strategy", ai: AssetInstance, asked: OrderCall) -> OrderAnswer:
    """The order call behind ``Strategy.call``, which builds ``asked`` (an ``OrderCall``, checked when it was
    built). Never raises (cancellation excepted). A refusal answers None; ``Strategy.last_refusal`` holds it, typed.
    ``asked.resend_of``: an order whose outcome was unknown and which look-ups proved never booked, sent again under a
    new client id (``order_monitoring.resend_absent``; checked again locally, not sized again)."""
    waitfor = s.config.timeouts.waitfor if asked.waitfor is None else max(0.0, asked.waitfor)
    try:
        req: OrderRequest | Refusal = await prepare(s, ai, asked)
        if isinstance(req, OrderRequest):
            req = _check_brackets(ai, req, asked) or req
    except Exception as exc:  # a bug in a check: a refusal, never an escape
        log.debug("local checks raised", exc_info=True)
        req = Refusal(R.CHECK_FAILED, f"{type(exc).__name__}: {exc}")
    if isinstance(req, Refusal):
        refused(s, ai, req, asked.side, asked.amount, asked.price)
        return None
    if ai.is_margin and not asked.emergency and not _only_reduces(ai, asked):
        reason = await ensure_margin_mode(s, ai)
        if reason:
            refused(s, ai, Refusal(R.MARGIN_SETUP, reason), req.side, req.amount, req.price)
            return None
    # from the risk check to ``book`` nothing awaits: an order sent at the same time is checked after this one is
    # booked, and counts in its worst case (risk/manager.py)
    if not asked.emergency:
        risk = _risk_refusal(s, ai, req)
        if risk is not None:
            refused(s, ai, risk, req.side, req.amount, req.price, kind="risk_rejected")
            return None
    try:
        cid = s.ids.next()
    except CorruptStateError as exc:  # the sequence cannot be read: no id is issued on a guess, and nothing more goes out
        s.gate.persisted_unreadable(exc)
        refused(s, ai, Refusal(R.STORE_UNREADABLE, f"not sent: {exc}"), req.side, req.amount, req.price)
        return None
    except Exception as exc:  # a new block of ids could not be reserved: the store refuses writes (or cannot be read)
        unwritable = isinstance(exc, OSError)
        detail = f"not sent: no client order id ({describe(exc, 'client order id sequence')})"
        refused(s, ai, Refusal(R.STORE_UNWRITABLE if unwritable else R.STORE_UNREADABLE, detail), req.side, req.amount, req.price)
        if unwritable:
            s.gate.store_failed("client order id sequence", exc)
        return None
    order = _order_of(ai, cid, req, asked)
    try:
        book(s, ai, order, req.reference_price)
    except NotJournaled:  # failed, halted and alerted; nothing was sent
        return None
    _say_adjusted(s, ai, order)
    if asked.resend_of is not None:
        resent(s, ai, asked.resend_of, order)
    s.ensure_order_tasks(ai)
    params: Json = dict(asked.params)
    try:
        place = place_order(ai, req, cid, params, trailing.emulated(s, ai))
        ack = await submit(s, ai, order, place, lambda: passes_halt(s, asked.emergency, asked.parent is not None))
    except Rejected as r:
        status = OrderStatus.REJECTED if r.err is not None else OrderStatus.FAILED
        order.refusal = s.book.refused(r.refusal)
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
        s.apply_order(ack, source="acknowledgement")  # via the strategy: its fills are placed as the stream will report them
        return await wait_for_fill(s, ai, order, waitfor, asked.synced)
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
    s.book.add(ai, order)
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
            **adjusted(order),
        )
    except Exception as exc:
        reason = f"not sent: its intent could not be made durable ({describe(exc, where)})"
        log.error("order %s on %s %s", order.client_order_id, ai.symbol, reason)
        order.refusal = s.book.refused(Refusal(R.STORE_UNWRITABLE, reason))
        transition(s, ai, order, OrderStatus.FAILED, "book", reason)
        s.gate.store_failed(where, exc)
        raise NotJournaled(reason) from exc


def adjusted(order: Order) -> Json:
    """The ``order_placed`` fields of what the engine changed from what was asked (none when sent as asked):
    ``requested_amount`` (and ``requested_price`` / ``requested_trigger_price`` when a price was rounded) beside the
    ``amount`` and prices sent, and ``adjusted``, the changes in words."""
    adj = order.adjustment
    if adj is None:
        return {}
    out: Json = {"requested_amount": adj.requested_amount, "adjusted": str(adj)}
    if adj.requested_price is not None and adj.requested_price != adj.price:
        out["requested_price"] = adj.requested_price
    if adj.requested_trigger_price is not None and adj.requested_trigger_price != adj.trigger_price:
        out["requested_trigger_price"] = adj.requested_trigger_price
    return out


def _say_adjusted(s: "Strategy", ai: AssetInstance, order: Order) -> None:
    """An amount the engine changed by more than ``ADJUSTED_LOG`` (relative) is logged, once a minute per symbol
    with the count held back: the trace has every one (``order_placed``'s ``requested_amount`` and ``adjusted``)."""
    adj = order.adjustment
    if adj is None or not adj.requested_amount or abs(adj.amount - adj.requested_amount) / adj.requested_amount <= ADJUSTED_LOG:
        return
    held = REPEATS.admit((id(s), "adjusted", ai.symbol, None))
    if held is not None:
        log.warning(
            "order %s on %s sent with another amount than asked: %s%s",
            order.client_order_id,
            ai.symbol,
            adj,
            held_note(held, REPEATS.window_s),
        )


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
            s.book.answer_unknown(order.client_order_id, params)
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
    params = s.book.take_unknown(order.client_order_id)
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
    cash, the risk hook: the market may have moved) but not sized again. The engine's own trailing stop starts again
    from the price of now (its trigger is the stop level it computed, not an activation price)."""
    engine_trails = old.type is OrderType.TRAILING_STOP and trailing.emulated(s, ai)
    try:
        again = OrderCall(
            type=old.type,
            side=old.side,
            amount=old.amount,
            price=old.price,
            waitfor=0.0,
            synced=False,
            reduce_only=old.reduce_only,
            trigger_price=None if engine_trails else old.trigger_price,
            trailing_percent=old.trailing_percent,
            position_side=old.position_side,
            stop_loss=old.brackets[0],
            take_profit=old.brackets[1],
            params=params,
            parent=old.parent,
            resend_of=old,
        )
    except InvalidOrderCall as exc:
        refused(s, ai, exc.refusal, old.side, old.amount, old.price)
        return None
    return await call(s, ai, again)


async def wait_for_fill(s: "Strategy", ai: AssetInstance, order: Order, waitfor: float, synced: bool) -> Trade | Pending:
    """The order's fill within ``waitfor`` seconds, else ``PENDING``. A driven strategy (a backtest) does not wait:
    its clock stands still while the logic waits, and everything the request caused arrived with the answer (a wait
    would only cost wall time: ``waitfor=5`` on a resting limit was 5 s an order)."""
    wait = 0.0 if s.driven else waitfor
    if not order.trades and wait > 0:
        deadline = asyncio.get_running_loop().time() + wait
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
    if not order.trades and synced and wait > 0:
        await force_sync(s, ai, order)
    for trade in list(order.trades) if waitfor > 0 else []:  # the answer comes with the balance that includes it
        await s.fill_settled(ai, trade)
    return aggregate(order) if order.trades else PENDING


async def force_sync(s: "Strategy", ai: AssetInstance, order: Order) -> None:
    """``synced=True``: fetch the order and its trades when the watchers saw nothing within ``waitfor``."""
    try:
        found = await lookup(s, ai.symbol, order.client_order_id, conditional=order.type.is_conditional)
        if found is not None:
            apply_order(s, found, emulate_now=False, source="synced")
            if order.filled > 0 and order.id is not None:
                fills = await s.venue.my_trades(ai.symbol, timeout=s.config.timeouts.order_placement, order_id=order.id)
                for fill in fills:
                    apply_trade(s, fill)
                emulate(s, ai, order)  # whatever the trade history does not explain
    except ExchangeOpError as err:
        log.warning("synced fetch of %s failed: %s", order.client_order_id, err)


def aggregate(order: Order) -> Trade:
    """The order's fills seen so far as one ``Trade`` (``call``'s answer): amounts and fees summed, the price
    weighted, the realised PnL summed when every fill's is known (None otherwise: not 0, which would say it was)."""
    trades = order.trades
    pnls = [t.realized_pnl for t in trades]
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
        realized_pnl=None if any(p is None for p in pnls) else sum(p for p in pnls if p is not None),
    )
