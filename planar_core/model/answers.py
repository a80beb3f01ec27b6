"""What the strategy's actions other than ``call`` answer, as types: a cancel, a cancel of every order on an asset,
closing a position, setting leverage; and what the engine changed in an order before sending it.

Each answer says what is known and nothing more. A cancel or a leverage change the exchange did not answer is
``UNKNOWN``: it may have happened or not, and is never read as a refusal (money is never guessed). None of these
answers has a truth value: ``if await ctx.cancel(...)`` raises ``TypeError`` instead of reading an unknown outcome
as a no (or, as the untyped answers did, a refusal as a yes); read ``.cancelled`` / ``.applied`` / ``.outcome``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Generic, NoReturn, TypeVar

from .refusals import Refusal
from .status import OrderStatus
from .types import PositionSide

A = TypeVar("A")


def _no_truth(answer: object, read: str) -> NoReturn:
    raise TypeError(f"{type(answer).__name__} has no truth value: read {read}")


class CancelOutcome(StrEnum):
    """How a cancel of one order ended."""

    CANCELLED = "cancelled"  # the exchange confirmed it cancelled the order
    ALREADY_CLOSED = "already_closed"  # the exchange had it no longer open (filled, cancelled, expired meanwhile)
    NOT_FOUND = "not_found"  # not an order the strategy tracks on that asset: nothing was sent
    REFUSED = "refused"  # the exchange refused the cancel: the order is as it was (open, as far as is known)
    UNKNOWN = "unknown"  # no answer (timeout, 5xx, lost connection): it may be cancelled or not; the watchers say


@dataclass(frozen=True, slots=True)
class CancelAnswer:
    """``cancel``'s answer. ``status``: the order's status as the engine knows it after the call (None: not an order
    it tracks); for ``ALREADY_CLOSED`` how it ended when one look-up could tell (else still open until the watchers
    say). ``detail``: why it was not cancelled ("" when it was)."""

    outcome: CancelOutcome
    client_order_id: str
    status: OrderStatus | None = None
    detail: str = ""

    @property
    def cancelled(self) -> bool:
        """The exchange confirmed the cancel."""
        return self.outcome is CancelOutcome.CANCELLED

    @property
    def closed(self) -> bool:
        """The order is known to be no longer open (cancelled now, or it had ended before)."""
        return self.status is not None and self.status.is_final

    def __bool__(self) -> NoReturn:
        _no_truth(self, ".cancelled or .outcome (an unknown outcome is not a refusal)")


@dataclass(frozen=True, slots=True)
class CancelAllAnswer:
    """``cancel_all``'s answer, by client order id, for the strategy's orders that were open on ``symbol`` before
    the call. ``cancelled``: confirmed by the exchange; ``ended``: no longer open by other means (filled, expired,
    or cancelled without this call's confirmation, as the exchange's listing says); ``still_open``: open or of
    unknown outcome after the call, with why each was not cancelled (refused, no answer, not listed yet).
    ``verified``: the exchange's open orders were listed after the cancels (False: the listing failed, so
    ``still_open`` and ``ended`` are the engine's view before any confirmation)."""

    symbol: str
    cancelled: tuple[str, ...] = ()
    ended: tuple[str, ...] = ()
    still_open: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    verified: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "still_open", MappingProxyType(dict(self.still_open)))

    @property
    def count(self) -> int:
        """How many of the orders open before the call are no longer open."""
        return len(self.cancelled) + len(self.ended)

    @property
    def complete(self) -> bool:
        """Every order is known to be no longer open, as the exchange's listing confirmed."""
        return self.verified and not self.still_open

    def __bool__(self) -> NoReturn:
        _no_truth(self, ".count, .complete or .still_open")


@dataclass(frozen=True, slots=True)
class CloseAnswer(Generic[A]):
    """``close_position``'s answer: one order answer per position side that had something to close (the context's
    is a ``TradeView``, ``PENDING``, ``UNKNOWN`` or None, as ``call`` answers), and why a side's close was refused.
    No side at all: there was nothing to close (``nothing_to_close``), and nothing was sent."""

    symbol: str
    answers: Mapping[PositionSide, A] = field(default_factory=lambda: MappingProxyType({}))
    refusals: Mapping[PositionSide, Refusal] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "answers", MappingProxyType(dict(self.answers)))
        object.__setattr__(self, "refusals", MappingProxyType(dict(self.refusals)))

    @property
    def nothing_to_close(self) -> bool:
        return not self.answers

    @property
    def sides(self) -> tuple[PositionSide, ...]:
        return tuple(self.answers)

    def __getitem__(self, side: PositionSide | str) -> A:
        return self.answers[PositionSide(side)]

    def __bool__(self) -> NoReturn:
        _no_truth(self, ".nothing_to_close or .answers")


class LeverageOutcome(StrEnum):
    """How a leverage change ended."""

    APPLIED = "applied"  # the exchange set it
    REFUSED = "refused"  # refused locally (not flat, open orders, not futures, not a whole number) or by the exchange
    UNKNOWN = "unknown"  # the exchange did not answer: it may be set or not (the next positions read says)


@dataclass(frozen=True, slots=True)
class LeverageAnswer:
    """``update_leverage``'s answer: ``refusal`` says why when it was refused (typed reason, the sentence, the
    exchange's code); ``detail`` says why the outcome is unknown."""

    symbol: str
    leverage: int
    outcome: LeverageOutcome
    refusal: Refusal | None = None
    detail: str = ""

    @property
    def applied(self) -> bool:
        return self.outcome is LeverageOutcome.APPLIED

    def __bool__(self) -> NoReturn:
        _no_truth(self, ".applied, .outcome or .refusal")


def _changed(asked: float | None, sent: float | None) -> bool:
    if asked is None or sent is None:
        return asked is not sent
    return not math.isclose(asked, sent, rel_tol=1e-12, abs_tol=0.0)


@dataclass(frozen=True, slots=True)
class Adjustment:
    """What the engine changed in an order before sending it: the amount (risk sizing, then rounding down to the
    market's amount step) and the limit and trigger prices (rounded to the tick). ``notes`` say each change in
    words; ``str()`` joins them. An order sent exactly as asked has no adjustment (None)."""

    requested_amount: float
    amount: float
    requested_price: float | None = None
    price: float | None = None
    requested_trigger_price: float | None = None
    trigger_price: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def amount_changed(self) -> bool:
        return _changed(self.requested_amount, self.amount)

    @property
    def price_changed(self) -> bool:
        return _changed(self.requested_price, self.price) or _changed(self.requested_trigger_price, self.trigger_price)

    def __str__(self) -> str:
        return "; ".join(self.notes)


__all__ = ["Adjustment", "CancelAllAnswer", "CancelAnswer", "CancelOutcome", "CloseAnswer", "LeverageAnswer", "LeverageOutcome"]
