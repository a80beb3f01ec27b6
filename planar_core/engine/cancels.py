"""Cancelling a strategy's own orders. A cancel whose outcome is not known leaves the order as it was: the
watchers, the resolver or the next look-up say what became of it. A cancel of an order the exchange no longer has
open is answered once (one look-up to learn how it ended), never retried in a loop.

A strategy cancels by id only: the exchange's order id, or the client order id of an order whose acknowledgement
was lost, batched where the venue allows (``Venue.cancel_orders``). The orders it names are those it
tracks, i.e. its own (and, under ``foreign_orders = "adopt"``, the manual orders it adopted; never another
strategy's, see ``updates._admit_foreign``). The account-wide cancel (``Venue.cancel_every_order``) would take
every other strategy's orders on the symbol with it: only the account emergency stop uses it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..exchange.errors import ExchangeOpError
from ..model import AssetInstance, CancelAllAnswer, CancelAnswer, CancelOutcome, Order, OrderStatus
from ..model.cancels import as_cancelled, cancel_target
from ..model.venue import CancelResult
from .submit import lookup
from .updates import apply_order

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.cancels")
CANCEL_ROUNDS = 3  # cancel, list, cancel what the listing still shows open ... at most this many times


def apply_cancelled(s: "Strategy", ai: AssetInstance, result: CancelResult) -> None:
    """The orders the exchange confirmed cancelled, applied in one durable group."""
    with s.group():
        for cid, report in result.cancelled.items():
            s.apply_order(as_cancelled(ai.symbol, cid, report), source="cancel")  # the stream reports it too (freshness.py)


async def cancel(s: "Strategy", ai: AssetInstance, order: Order) -> CancelAnswer:
    """Cancel one order. An exchange error is answered, not raised: the answer says what the exchange said (``CancelAnswer``): cancelled, no
    longer open (one look-up learns how it ended), refused, or unknown (no answer: logged and recorded; the order
    keeps its status until the watchers or the next listing say)."""
    t = s.config.timeouts.order_cancellation
    cid = order.client_order_id
    try:
        result = await s.venue.cancel_orders(ai.symbol, [cancel_target(ai, order)], timeout=t)
    except ExchangeOpError as err:  # a venue answers per order; one that raises leaves the outcome unknown too
        result = CancelResult(unconfirmed={cid: f"{type(err).__name__}: {err}"[:300]})
    if cid in result.cancelled:
        apply_cancelled(s, ai, result)
        return CancelAnswer(CancelOutcome.CANCELLED, cid, order.status)
    if cid in result.not_open:  # not open on the exchange (closed meanwhile, never booked, or not visible yet): learn how, once
        try:
            found = await lookup(s, ai.symbol, cid, timeout=t, conditional=order.type.is_conditional)
        except ExchangeOpError as err:
            log.info("look-up after a refused cancel of %s failed: %s", cid, err)
            found = None
        if found is not None:
            apply_order(s, found, source="cancel")
        if order.status.is_final:
            return CancelAnswer(CancelOutcome.ALREADY_CLOSED, cid, order.status, f"no longer open on the exchange: {order.status.value}")
        detail = f"the exchange has no open order {cid}, and one look-up did not say how it ended (still {order.status.value} here)"
        return CancelAnswer(CancelOutcome.UNKNOWN, cid, order.status, detail)
    why = result.unconfirmed.get(cid, "no answer")
    refused = cid in result.refused
    log.warning("cancel of %s on %s %s: %s", cid, ai.symbol, "refused" if refused else "not confirmed", why)
    s.sink.record("error_occurred", symbol=ai.symbol, client_order_id=cid, reason=f"cancel {'refused' if refused else 'failed'}: {why}")
    return CancelAnswer(CancelOutcome.REFUSED if refused else CancelOutcome.UNKNOWN, cid, order.status, why)


async def cancel_all(s: "Strategy", ai: AssetInstance) -> CancelAllAnswer:
    """Cancel every open order of this strategy on this asset (its own, by id; other strategies' orders on the
    account are never touched), then verify with a listing, and cancel again what it still shows open (at most
    ``CANCEL_ROUNDS`` times). An exchange error is answered, not raised: by client id, what was cancelled, what had ended otherwise and
    what is still open (with why), and whether the exchange's listing verified it (``CancelAllAnswer``).

    An order whose outcome is unknown (no exchange id) that the exchange does not have under its client id stays
    unknown: the resolver decides it, not this call."""
    before = [o.client_order_id for o in ai.open_orders()]
    t = s.config.timeouts.order_cancellation
    confirmed: set[str] = set()
    why: dict[str, str] = {}
    verified = True
    for _ in range(CANCEL_ROUNDS):
        targets = [cancel_target(ai, o) for o in ai.open_orders()]
        if not targets:
            break
        try:
            result = await s.venue.cancel_orders(ai.symbol, targets, timeout=t)
        except ExchangeOpError as err:
            result = CancelResult(unconfirmed={r.client_order_id: f"{type(err).__name__}: {err}"[:300] for r in targets})
        apply_cancelled(s, ai, result)
        confirmed |= set(result.cancelled)
        for cid, reason in result.unconfirmed.items():
            why[cid] = f"cancel refused: {reason}" if cid in result.refused else f"cancel not confirmed: {reason}"
            s.sink.record("error_occurred", symbol=ai.symbol, client_order_id=cid, reason=f"cancel not confirmed: {reason}")
        try:  # the listing says what is still open, and how the orders that were no longer open ended
            await s.sync_asset_orders(ai, trades=False)
            verified = True
        except ExchangeOpError as err:
            log.warning("cancel_all on %s: the open orders could not be listed to verify: %s", ai.symbol, err)
            s.sink.record("error_occurred", symbol=ai.symbol, reason=f"cancel_all not verified: {err}")
            verified = False
            break
        if not any(o.status is OrderStatus.OPEN for o in ai.open_orders()):
            break
    still = {o.client_order_id: o for o in ai.open_orders()}
    return CancelAllAnswer(
        ai.symbol,
        cancelled=tuple(c for c in before if c in confirmed and c not in still),
        ended=tuple(c for c in before if c not in confirmed and c not in still),
        still_open={c: why.get(c, _open_why(o)) for c, o in still.items() if c in before},
        verified=verified,
    )


def _open_why(order: Order) -> str:
    if order.status is OrderStatus.UNKNOWN or order.id is None:
        return f"outcome of its placement unknown ({order.status.value}): the resolver decides it"
    return "still listed open by the exchange"
