"""Order status and the transitions an order may make.

Why a table: updates reach the engine from several sources (the order acknowledgement, websocket events, REST
polls, look-ups after a lost acknowledgement) and in any order. A stale "open" snapshot answered before a
websocket "closed" event must not reopen the order, so every update goes through ``legal`` and an illegal one is
ignored (and recorded by the caller). Filled amounts only grow, whatever the status: a late fill after a cancel
is legal.

``UNKNOWN`` is a state of its own: the request may or may not have reached the exchange (timeout, 5xx, dropped
connection, malformed answer, any exception after sending). Only the exchange's word moves an order out of it.
``FAILED`` means the exchange never booked it: refused before sending, or proven absent by look-ups.
"""

from __future__ import annotations

from enum import StrEnum


class OrderStatus(StrEnum):
    INTENT = "intent"  # journaled, request not answered yet
    UNKNOWN = "unknown"  # the request's outcome is not known; keep asking the exchange
    OPEN = "open"
    CLOSED = "closed"  # fully filled
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"  # the exchange refused it
    FAILED = "failed"  # never booked: refused locally before sending, or proven absent on the exchange

    @property
    def is_open(self) -> bool:
        """Possibly live on the exchange (so it counts for exposure and is cancelled by an e-stop)."""
        return self in (OrderStatus.INTENT, OrderStatus.UNKNOWN, OrderStatus.OPEN)

    @property
    def is_final(self) -> bool:
        return not self.is_open


_EXCHANGE_STATES = frozenset({OrderStatus.OPEN, OrderStatus.CLOSED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED})
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.INTENT: _EXCHANGE_STATES | {OrderStatus.UNKNOWN, OrderStatus.FAILED},
    OrderStatus.UNKNOWN: _EXCHANGE_STATES | {OrderStatus.FAILED},
    # a conditional order is open while it waits; its trigger's order can still be refused (REJECTED, with reason)
    OrderStatus.OPEN: frozenset({OrderStatus.CLOSED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED}),
    OrderStatus.CLOSED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    # proven absent, then found after all (the exchange's word wins; the caller records the contradiction)
    OrderStatus.FAILED: frozenset({OrderStatus.OPEN, OrderStatus.CLOSED, OrderStatus.CANCELED, OrderStatus.EXPIRED}),
}


def legal(old: OrderStatus, new: OrderStatus) -> bool:
    """True when ``old -> new`` is allowed; staying in the same status is always allowed."""
    return old == new or new in TRANSITIONS[old]


# ccxt's unified order statuses
FROM_CCXT: dict[str, OrderStatus] = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.CLOSED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}
