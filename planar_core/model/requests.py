"""What a strategy asks the order call for, checked once when it is built.

``Strategy.call(ai, order_type, side, amount=..., price=..., ...)`` builds an ``OrderCall``; the engine's order path
(``engine.orders.call``) takes nothing else. Everything that can be judged without the market, the account or the
venue is judged here, at construction, and a wrong request raises ``InvalidOrderCall`` (its ``refusal`` says why,
in the words the trace has always used): a non-finite or non-positive amount, a limit type without a price, a
stop or take-profit without a trigger, a trailing stop without its percentage, a trigger or trailing distance on
a type that has none, exits attached to a conditional or reduce-only order, exchange parameters that would
replace what the checks approved. What needs the market (precision, limits), the account (cash, positions, hedge
mode) or the venue (the order types it offers, its trailing range) is checked by ``engine.orders.prepare``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .refusals import InvalidOrderCall, RefusalReason
from .types import OrderType, PositionSide, Side
from .venue import ConditionalKind, conditional_kind

if TYPE_CHECKING:
    from .types import Order

# Exchange parameters a caller may add. Everything else is refused: a parameter such as ``quantity``,
# ``price`` or ``newClientOrderId`` would replace what the local checks approved and what the journal holds.
ALLOWED_PARAMS = frozenset({"selfTradePreventionMode", "newOrderRespType", "workingType", "priceProtect"})


def bad_number(x: object, name: str) -> str | None:
    """Why ``x`` is no valid amount or price (None: it is a finite number > 0)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0:
        return f"invalid {name} {x!r}: must be a finite number > 0"
    return None


def params_refused(params: Mapping[str, object]) -> str | None:
    bad = sorted(k for k in params if k not in ALLOWED_PARAMS)
    if bad:
        return (
            f"exchange params {bad} refused: only {sorted(ALLOWED_PARAMS)} may be added; amount, price, side, type, "
            "time in force, reduce-only, trigger and trailing, position side and the client order id come from call()'s own checked "
            "arguments"
        )
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCall:
    """One order call, every option named. ``waitfor`` None: the config's ``timeouts.waitfor``. ``emergency``: the
    emergency stop's closing orders (a halt does not stop them, no sizing, no risk hook). ``parent``: the entry a
    bracket exit protects. ``resend_of``: the order, answered UNKNOWN and proven never booked, that this call sends
    again under a new client id (checked again locally, not sized again)."""

    type: OrderType
    side: Side
    amount: float
    price: float | None = None
    waitfor: float | None = None
    synced: bool = True
    reduce_only: bool = False
    trigger_price: float | None = None
    trailing_percent: float | None = None
    position_side: PositionSide = PositionSide.BOTH
    stop_loss: float | None = None
    take_profit: float | None = None
    params: Mapping[str, object] = field(default_factory=dict)
    emergency: bool = False
    parent: str | None = None
    resend_of: Order | None = None

    def __post_init__(self) -> None:
        try:
            set_ = object.__setattr__  # frozen: normalised once, here
            set_(self, "type", OrderType(self.type))
            set_(self, "side", Side(self.side))
            set_(self, "position_side", PositionSide(self.position_side))
        except ValueError as exc:
            raise InvalidOrderCall(str(exc)) from None
        reason = params_refused(self.params) or bad_number(self.amount, "amount") or self._price() or self._trigger() or self._brackets()
        if reason:
            raise InvalidOrderCall(reason)
        if not self.type.is_limit:
            set_(self, "price", None)  # a market or stop-market order carries no limit price
        set_(self, "params", dict(self.params))

    @property
    def conditional(self) -> ConditionalKind | None:
        return conditional_kind(self.type)

    @property
    def sized(self) -> bool:
        """Already sized by risk (a re-send): not scaled again."""
        return self.resend_of is not None

    def _price(self) -> str | None:
        if not self.type.is_limit:
            return None
        if self.price is None:
            return f"invalid price None: a {self.type.value} order needs a price"
        return bad_number(self.price, "price")

    def _trigger(self) -> str | None:
        kind = self.conditional
        if kind is None:
            if self.trigger_price is not None or self.trailing_percent is not None:
                return f"trigger_price / trailing_percent are for conditional order types, not {self.type.value}"
            return None
        if kind is ConditionalKind.TRAILING:
            tp = self.trailing_percent
            if isinstance(tp, bool) or not isinstance(tp, (int, float)) or not math.isfinite(tp) or tp <= 0:
                return f"invalid trailing_percent {tp!r}: a trailing_stop order needs a trailing percentage > 0"
            if self.trigger_price is not None:
                return bad_number(self.trigger_price, "trigger_price (activation price)")
            return None
        if self.trailing_percent is not None:
            return f"trailing_percent is for trailing_stop orders, not {self.type.value}"
        if self.trigger_price is None:
            return f"invalid trigger_price None: a {self.type.value} order needs a trigger price"
        return bad_number(self.trigger_price, "trigger_price")

    def _brackets(self) -> str | None:
        if self.stop_loss is None and self.take_profit is None:
            return None
        if self.type.is_conditional or self.reduce_only:
            return "stop_loss / take_profit attach to an entry: not to a conditional or reduce-only order"
        for name, px in (("stop_loss", self.stop_loss), ("take_profit", self.take_profit)):
            reason = bad_number(px, name) if px is not None else None
            if reason:
                return reason
        return None


__all__ = ["ALLOWED_PARAMS", "InvalidOrderCall", "OrderCall", "RefusalReason", "bad_number", "params_refused"]
