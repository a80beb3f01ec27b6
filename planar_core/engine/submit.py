"""Getting an order onto the exchange exactly once, and finding out what happened when nobody said.

The rules (docs/engine.md, "Unknown outcomes"):
- a request refused before handling (429/418) is retried with the same client order id after a pause;
- an exchange refusal (invalid order, insufficient funds ...) is final: the order was never booked;
- any other failure after the request may have left — timeout, 5xx, dropped connection, malformed answer,
  an exception of our own — leaves the outcome *unknown*. The order is then looked up by client order id with
  backoff. Found: that is the order. Re-sent (same client id) only when the look-ups have *proved* it absent:
  at least two "no such order" answers, the last one ``order_monitoring.absent_after`` seconds or more after the
  request left (Binance may hide a just-accepted order from GET for a few seconds, answering -2013). The
  duplicate-id refusal of the exchange is never relied on: Binance refuses only the ids of *open* orders.
- when the placement budget (``timeouts.order_placement``) runs out first, the order stays ``unknown`` (``call()``
  answers ``UNKNOWN``, never ``PENDING``) and the background resolver keeps asking the exchange until it answers;
  its verdict (found / proven absent -> failed) reaches the strategy, the log and the run's counts
  (engine/verdicts.py), and a proven-absent order is re-sent under a new id only with ``order_monitoring.resend_absent``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..exchange.errors import ClockSkew, DuplicateOrder, ExchangeOpError, OrderNotFound, PermanentError, RateLimited
from ..model import AssetInstance, Order, OrderStatus, Refusal, RefusalReason
from ..model.venue import OrderRef, OrderReport, PlaceOrder, TriggerPhase
from .updates import apply_order, transition

if TYPE_CHECKING:
    from .strategy import Strategy
    from .supervisor import TaskHealth

log = logging.getLogger("planar.engine.submit")
LOOKUP_BACKOFF = (0.05, 2.0)  # first and largest pause between look-ups of an unknown order


class Rejected(Exception):
    """The exchange refused the order (or every attempt was refused before handling, or look-ups proved it absent
    after every allowed attempt): it was never booked. ``refusal`` says which, typed."""

    def __init__(self, err: ExchangeOpError | str, reason: RefusalReason = RefusalReason.EXCHANGE_REFUSED) -> None:
        super().__init__(str(err))
        self.err = err if isinstance(err, ExchangeOpError) else None
        detail = f"{type(err).__name__}: {err}" if isinstance(err, ExchangeOpError) else str(err)
        self.refusal = Refusal(reason, detail, self.err.code if self.err is not None else None)


class OutcomeUnknown(Exception):
    """The order may be on the exchange; nobody has said yet."""


class Absent:
    """Look-ups proved the order was never booked."""


ABSENT = Absent()


def absence_proven(s: "Strategy", order: Order) -> bool:
    return order.not_found >= 2 and order.sent_at is not None and time.time() - order.sent_at >= s.config.order_monitoring.absent_after


async def lookup(
    s: "Strategy", symbol: str, cid: str, timeout: float | None = None, retries: int = 1, conditional: bool = False
) -> OrderReport | None:
    """The order with this client id on the exchange, or None when the exchange answers that it has none.
    Raises ExchangeOpError when the exchange could not be asked.

    ``conditional`` on a futures market: the order may wait for its trigger in a book of its own under its client
    id (Binance's Algo Service), and once triggered its book order carries the same client id; the book order is
    the answer once it exists. A venue with one book answers the conditional record itself (no trigger phase)."""
    t = s.config.timeouts.order_placement if timeout is None else timeout
    contract = bool(s.venue.markets.get(symbol, {}).get("contract"))

    async def ask(waiting: bool) -> OrderReport | None:
        try:
            return await s.venue.fetch_order(symbol, OrderRef(cid, None, waiting), timeout=t, retries=retries)
        except OrderNotFound:
            return None

    if not (conditional and contract):
        return await ask(False)
    waiting = await ask(True)
    if waiting is None or waiting.trigger_phase is not TriggerPhase.TRIGGERED:
        return waiting
    placed = await ask(False)
    return placed if placed is not None else waiting


async def probe(s: "Strategy", ai: AssetInstance, order: Order, timeout: float) -> OrderReport | Absent | None:
    """One look-up of an order whose outcome is unknown: its exchange record, ABSENT once proven, or None (not yet known)."""
    try:
        raw = await lookup(s, ai.symbol, order.client_order_id, timeout=timeout, retries=0, conditional=order.type.is_conditional)
    except ExchangeOpError as err:
        log.info("look-up of %s failed: %s", order.client_order_id, err)
        return None
    if raw is not None:
        order.not_found = 0
        return raw
    order.not_found += 1
    return ABSENT if absence_proven(s, order) else None


async def resolve(s: "Strategy", ai: AssetInstance, order: Order, deadline: float) -> OrderReport | Absent | None:
    """Look the order up with backoff until found, proven absent, or ``deadline`` (loop time) passes (None)."""
    loop = asyncio.get_running_loop()
    pause = LOOKUP_BACKOFF[0]
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        found = await probe(s, ai, order, timeout=remaining)
        if found is not None:
            return found
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(pause, remaining))
        pause = min(LOOKUP_BACKOFF[1], pause * 2)


async def submit(
    s: "Strategy", ai: AssetInstance, order: Order, place: PlaceOrder, may_send: Callable[[], bool] = lambda: True
) -> OrderReport:
    """Send the order (the venue waits for the account's order pace and sends it once per attempt); returns the
    exchange's acknowledgement. Raises Rejected (never booked) or OutcomeUnknown. ``may_send``: asked before every
    attempt (the halt: ``orders.passes_halt``); no: Rejected, nothing more goes out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + s.config.timeouts.order_placement
    resends = max(0, s.config.order_monitoring.retries)
    pause = 0.2
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise Rejected("placement budget spent; every attempt was refused before handling (rate limits)", RefusalReason.RATE_LIMITED)
        if not may_send():
            raise Rejected(f"not sent: the strategy was halted ({s.state.halt_reason})", RefusalReason.HALTED)
        order.sent_at, order.not_found = time.time(), 0
        try:
            return await s.venue.create_order(place, timeout=remaining)
        except (RateLimited, ClockSkew):  # refused before handling: nothing was booked; same id again after a pause
            await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
            pause = min(5.0, pause * 2)
            continue
        except DuplicateOrder:
            log.info("%s: the exchange already has an open order with this id; looking it up", order.client_order_id)
        except PermanentError as err:
            raise Rejected(err) from None
        except ExchangeOpError as err:  # 5xx, timeout, dropped connection, malformed answer: may have been booked
            log.warning(
                "order %s on %s: outcome unknown after %s; asking the exchange", order.client_order_id, ai.symbol, type(err).__name__
            )
        found = await resolve(s, ai, order, deadline)
        if isinstance(found, OrderReport):
            log.info("order %s found on the exchange; not re-sent", order.client_order_id)
            return found
        if found is None:
            raise OutcomeUnknown(f"not found yet within the {s.config.timeouts.order_placement}s placement budget")
        s.sink.record(
            "order_reconciled",
            symbol=ai.symbol,
            client_order_id=order.client_order_id,
            decision="absent",
            reason=f"{order.not_found} look-ups found no order, {time.time() - (order.sent_at or 0):.1f}s after sending",
        )
        if resends <= 0:
            raise Rejected("proven absent after every allowed attempt", RefusalReason.PROVEN_ABSENT)
        resends -= 1
        log.info("order %s proven absent; sending it again with the same client id", order.client_order_id)


async def resolver(s: "Strategy", health: "TaskHealth") -> None:
    """Background task: keep asking the exchange about every ``unknown`` order until it answers; ends when none is left."""
    pause: dict[str, float] = {}
    due: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    while s.running:
        unknown = [(ai, o) for ai in s.universe.values() for o in ai.orders.values() if o.status is OrderStatus.UNKNOWN]
        if not unknown:
            return
        for ai, order in unknown:
            cid = order.client_order_id
            if loop.time() < due.get(cid, 0.0) or order.status is not OrderStatus.UNKNOWN:
                continue
            found = await probe(s, ai, order, timeout=s.config.timeouts.order_placement)
            if isinstance(found, OrderReport):
                apply_order(s, found, source="resolver")
            elif isinstance(found, Absent):  # the verdict's order_reconciled event is recorded by verdicts.decided
                reason = f"{order.not_found} look-ups found no order, {time.time() - (order.sent_at or 0):.1f}s after sending"
                transition(s, ai, order, OrderStatus.FAILED, "resolver", reason)
            else:
                pause[cid] = min(LOOKUP_BACKOFF[1], pause.get(cid, LOOKUP_BACKOFF[0]) * 2)
                due[cid] = loop.time() + pause[cid]
        health.seen("ok")
        await asyncio.sleep(LOOKUP_BACKOFF[0])
