"""The verdict on an order whose outcome was unknown, and who is told.

``call()`` answers ``UNKNOWN`` when the request may or may not have booked the order (engine/orders.py). Later
the exchange decides: the order is found (by the resolver's look-up, the user stream or a poll) and takes its real
status, or look-ups prove it was never booked and it becomes ``failed``. Whichever source decides, every
transition out of ``unknown`` comes through ``decided`` (called by ``updates.transition``), before the strategy's
``on_order_update`` sees the order:

* ``order.verdict`` is "found" or "absent";
* one WARNING log line names the client id and the verdict;
* an ``order_reconciled`` event (decision ``found`` / ``absent``) gives the evidence;
* ``s.book.unknown_outcomes`` counts it (``unknown_resolved_found``, ``unknown_proven_absent``): ``runner.status`` and
  the live flow's result show the counts;
* with ``order_monitoring.resend_absent`` (default off: the market may have moved), an order that ``call()``
  answered ``UNKNOWN`` in this run and that was proven absent is sent again, once, under a new client id
  (``orders.on_verdict``, a listener of the strategy's notices, sends it; ``resent`` below tells of it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..model import AssetInstance, Order, OrderStatus
from .notices import OrderUpdated

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.verdicts")


def decided(s: "Strategy", ai: AssetInstance, order: Order, new: OrderStatus, source: str, reason: str | None) -> None:
    """``order`` leaves ``unknown`` for ``new``: record, log, count, and re-send if configured (see the module)."""
    absent = new is OrderStatus.FAILED
    order.verdict = "absent" if absent else "found"
    s.book.count("unknown_proven_absent" if absent else "unknown_resolved_found")
    cid = order.client_order_id
    if absent:
        log.warning("order %s on %s: outcome was unknown; proven absent, never booked (%s): failed", cid, ai.symbol, reason)
    else:
        log.warning("order %s on %s: outcome was unknown; found on the exchange, %s (from %s)", cid, ai.symbol, new, source)
    s.sink.record(
        "order_reconciled",
        symbol=ai.symbol,
        client_order_id=cid,
        order_id=order.id,
        decision=order.verdict,
        status=str(new),
        reason=reason or f"reported {new} by {source}",
        source=source,
    )


def resent(s: "Strategy", ai: AssetInstance, old: Order, new: Order) -> None:
    """The re-send of ``old`` is booked as ``new`` (journaled and traced with ``resends``): the old order names it
    (``resent_as``), the trace and the log say so, and the strategy is told (another ``on_order_update`` of the
    old order; the new order's own updates follow)."""
    old.resent_as = new.client_order_id
    s.book.count("unknown_resent")
    log.warning(
        "order %s on %s was proven absent; re-sent once as %s (order_monitoring.resend_absent)",
        old.client_order_id,
        ai.symbol,
        new.client_order_id,
    )
    s.sink.record(
        "order_reconciled",
        symbol=ai.symbol,
        client_order_id=old.client_order_id,
        decision="resent",
        reason=f"proven absent; re-sent as {new.client_order_id}",
        resent_as=new.client_order_id,
    )
    s.notify(OrderUpdated(ai, old))
