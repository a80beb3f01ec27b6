"""Why an order was refused, as a type: ``call()`` answers ``None`` for a refusal (nothing was booked), and the
refusal itself says why in a form a program can branch on.

A ``Refusal`` carries a ``RefusalReason`` (what kind of refusal), the human sentence the trace and the log have
always carried (``detail``), and the exchange's own error code when the exchange refused (``code``). The
``order_failed`` and ``risk_rejected`` trace events carry the reason's value as ``reason_code`` next to the
free-text ``reason``; ``Strategy.last_refusal`` holds the latest refusal of the strategy's ``call()``, and an
order that was booked and then refused (by the exchange, or because its intent could not be journaled) keeps
its own in ``Order.refusal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RefusalReason(StrEnum):
    """The kinds of refusal the order path produces."""

    HALTED = "halted"  # the strategy is halted (by hand, an e-stop, a store failure)
    BREAKER = "breaker"  # halted by a tripped circuit breaker (daily loss, drawdown)
    CAPABILITY = "capability"  # the venue does not offer what was asked (an order type, hedge mode, a trailing range)
    INVALID_PARAMS = "invalid_params"  # the request itself is wrong (a number, a missing price, a bad combination)
    PRECISION = "precision"  # the amount or price rounds to nothing at the market's precision
    MARKET_LIMIT = "market_limit"  # below the market's minimum amount or cost, above its maximum price
    WOULD_TRIGGER = "would_trigger"  # a conditional order that would trigger at once (the exchange refuses it)
    PRICE_UNKNOWN = "price_unknown"  # no reference price: the exchange could not be asked, or answered none
    BALANCE_UNKNOWN = "balance_unknown"  # the balances the order is sized from could not be read (a spot close)
    INSUFFICIENT_FUNDS = "insufficient_funds"  # cash or margin does not cover it
    NOTHING_TO_REDUCE = "nothing_to_reduce"  # a reduce-only (or closing) order that does not reduce the position
    RISK_LIMIT = "risk_limit"  # a risk limit or the strategy's risk hook refused it
    VALUATION_INCOMPLETE = "valuation_incomplete"  # equity cannot be valued: risk-increasing orders are refused
    CHECK_FAILED = "check_failed"  # a local check raised (a bug): refused rather than sent unchecked
    MARGIN_SETUP = "margin_setup"  # the margin mode could not be set before the order
    STORE_UNWRITABLE = "store_unwritable"  # the intent or the id sequence could not be made durable
    STORE_UNREADABLE = "store_unreadable"  # the id sequence could not be read: no id is issued on a guess
    EXCHANGE_REFUSED = "exchange_refused"  # the exchange refused the order (``code``: its error code)
    RATE_LIMITED = "rate_limited"  # every attempt was refused before handling until the placement budget ran out
    PROVEN_ABSENT = "proven_absent"  # look-ups proved the order never booked, after every allowed attempt
    NOT_FLAT = "not_flat"  # a leverage change with a position or orders open on the asset (it changes only when flat)


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refusal: its kind, the sentence that explains it, the exchange's error code when it has one."""

    reason: RefusalReason
    detail: str
    code: int | None = None

    def __str__(self) -> str:
        return self.detail


class InvalidOrderCall(ValueError):
    """An order request that is wrong by itself (``model.requests.OrderCall``): its ``refusal`` says why."""

    def __init__(self, detail: str, reason: RefusalReason = RefusalReason.INVALID_PARAMS) -> None:
        super().__init__(detail)
        self.refusal = Refusal(reason, detail)
