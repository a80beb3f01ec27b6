"""Which parameters a spot order (``POST /api/v3/order``) may carry, by type, and the answer format it asks for.

Why: Binance refuses a parameter an order type does not take ("Parameter 'timeInForce' sent when not required.",
-1106: the answer real Binance gives to a MARKET, LIMIT_MAKER or STOP_LOSS order with ``timeInForce``, and to a
STOP_LOSS with ``price``, as client libraries' issues record it). A sandbox that ignored them would let a client's
malformed order through here and see it refused on the exchange. The table is Binance's "additional mandatory
parameters based on order type" (rest-api.md, New order): each type takes its mandatory parameters, and no other of
the type-dependent ones. Only the top-level request is checked: an OCO builds its legs from its own parameters.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import errors as E

# the type-dependent parameters: each type takes those listed for it and refuses the others
_TAKES: dict[str, frozenset[str]] = {
    "LIMIT": frozenset({"timeInForce", "price", "quantity", "icebergQty"}),
    "MARKET": frozenset({"quantity", "quoteOrderQty"}),
    "STOP_LOSS": frozenset({"quantity", "stopPrice", "trailingDelta"}),
    "STOP_LOSS_LIMIT": frozenset({"timeInForce", "price", "quantity", "stopPrice", "trailingDelta", "icebergQty"}),
    "TAKE_PROFIT": frozenset({"quantity", "stopPrice", "trailingDelta"}),
    "TAKE_PROFIT_LIMIT": frozenset({"timeInForce", "price", "quantity", "stopPrice", "trailingDelta", "icebergQty"}),
    "LIMIT_MAKER": frozenset({"price", "quantity", "icebergQty"}),
}
_TYPED = frozenset().union(*_TAKES.values())
RESPONSE_TYPES = ("ACK", "RESULT", "FULL")
MIN_STRATEGY_TYPE = 1_000_000


def check(order_type: str, p: Mapping[str, str]) -> None:
    """Refuse a type-dependent parameter ``order_type`` does not take (-1106, Binance's wording), and a MARKET order
    given both ``quantity`` and ``quoteOrderQty`` (one or the other, Binance says). An unknown type is left to the
    order's own check (-1116)."""
    takes = _TAKES.get(order_type)
    if takes is None:
        return
    for name in sorted(_TYPED - takes):
        if p.get(name) not in (None, ""):
            raise E.ApiError(400, -1106, f"Parameter '{name}' sent when not required.")
    if order_type == "MARKET" and p.get("quantity") not in (None, "") and p.get("quoteOrderQty") not in (None, ""):
        raise E.ApiError(400, -1106, "Parameter 'quoteOrderQty' sent when not required.")
    strategy_type = p.get("strategyType")
    if strategy_type not in (None, ""):
        try:
            below = int(strategy_type) < MIN_STRATEGY_TYPE
        except ValueError:
            raise E.mandatory("strategyType") from None
        if below:
            raise E.ApiError(400, -1134, "strategyType was less than 1000000.")


def response_type(order_type: str, p: Mapping[str, str]) -> str:
    """The answer's format: ``newOrderRespType`` when given (-1136 for a value Binance does not know, as ccxt's table
    records it), else FULL for MARKET and LIMIT and ACK for every other type (Binance's default)."""
    wanted = p.get("newOrderRespType")
    if wanted in (None, ""):
        return "FULL" if order_type in ("MARKET", "LIMIT") else "ACK"
    if wanted.upper() not in RESPONSE_TYPES:
        raise E.ApiError(400, -1136, "Invalid newOrderRespType")
    return wanted.upper()
