"""Bybit v5's errors: ``{"retCode": N, "retMsg": ..., "result": {}, "retExtInfo": {}, "time": ...}``.

Bybit answers business errors with HTTP 200 and a non-zero ``retCode`` (its error page lists HTTP 400/401/403/404/429
for transport-level refusals only: a banned IP gets 403 "access too frequent"). The codes, from Bybit's v5 error page
(bybit-exchange.github.io/docs/v5/error) and ccxt's ``bybit.exceptions`` table, which maps each to its class:

=======  ==============================================  =====================
retCode  meaning                                         ccxt raises
=======  ==============================================  =====================
10001    request parameter error                         BadRequest
10002    request time exceeds the time window range      InvalidNonce
10003    API key is invalid                              AuthenticationError
10004    error sign                                      AuthenticationError
10005    permission denied                               PermissionDenied
10006    too many visits (the per-UID API rate limit)    RateLimitExceeded
10016    server error                                    ExchangeError
10017    route not found                                 BadRequest
110001   order does not exist (derivatives)              OrderNotFound
110003   order price out of the permissible range        InvalidOrder
110007   available balance is insufficient              InsufficientFunds
110017   reduce-only rule not satisfied                  InvalidOrder
110024   existing position: position mode not switched   BadRequest
110025   position mode is not modified                   NoChange
110028   open orders: position mode not switched         BadRequest
110043   set leverage not modified                       BadRequest
110072   OrderLinkedID is duplicate                      InvalidOrder
110094   order notional below the lower limit            InvalidOrder
170131   balance insufficient (spot)                     InsufficientFunds
170134   order price decimal too long (spot)             InvalidOrder
170136   order quantity lower than the minimum (spot)    InvalidOrder
170140   order value below the lower limit (spot)        InvalidOrder
170141   duplicate clientOrderId (spot)                  InvalidOrder
170193   buy order price higher than the limit (spot)    InvalidOrder
170194   sell order price lower than the limit (spot)    InvalidOrder
170213   order does not exist (spot)                     OrderNotFound
170218   LIMIT-MAKER order rejected (post-only, spot)    InvalidOrder
=======  ==============================================  =====================

The core raises Binance-shaped errors (``..errors.ApiError``); ``translate`` turns each into the code Bybit gives for
the same refusal in that category.
"""

from __future__ import annotations

from .. import errors as E


class BybitError(Exception):
    """A refusal answered as Bybit does: HTTP ``status`` (200 for every business error) and retCode/retMsg."""

    def __init__(self, code: int, msg: str, status: int = 200) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status
        self.result: object = {}  # what the refusal's ``result`` carries (set-margin-mode's reasons)


def params_error(msg: str = "params error") -> BybitError:
    return BybitError(10001, msg)


def illegal_category(category: str) -> BybitError:
    return BybitError(10001, f"Illegal category {category!r}" if category else "params error: category is empty")


def order_not_found(kind: str) -> BybitError:
    if kind == "spot":
        return BybitError(170213, "Order does not exist.")
    return BybitError(110001, "order not exists or too late to cancel")


def duplicate_link_id(kind: str) -> BybitError:
    if kind == "spot":
        return BybitError(170141, "Duplicate clientOrderId.")
    return BybitError(110072, "OrderLinkedID is duplicate")


def translate(exc: E.ApiError, kind: str, side: str = "") -> BybitError:
    """The Bybit refusal for a core (Binance-shaped) error in category ``kind`` (spot | linear); ``side`` (BUY |
    SELL) picks spot's price-band code."""
    code, msg = exc.code, exc.msg
    spot = kind == "spot"
    if code == -1121:
        return BybitError(10001, "params error: symbol invalid")
    if code in (-2011, -2013):
        return order_not_found(kind)
    if code == -2010 and "insufficient" in msg:
        return BybitError(170131, "Insufficient balance.") if spot else BybitError(110007, "ab not enough for new order")
    if code == -2019:
        return BybitError(110007, "ab not enough for new order")
    if (code == -2010 and "Duplicate" in msg) or code == -4116:
        return duplicate_link_id(kind)
    if code == -2022:
        return BybitError(110017, "current position is zero, cannot fix reduce-only order qty")
    if code == -4164 or (code == -1013 and msg.endswith("NOTIONAL")):
        return (
            BybitError(170140, "Order value exceeded lower limit.")
            if spot
            else BybitError(110094, "Order notional value below the lower limit")
        )
    if (code == -1013 and msg.endswith("LOT_SIZE")) or code == -4005:
        return BybitError(170136, "Order quantity lower than the minimum.") if spot else BybitError(10001, "Qty invalid")
    if (code == -1013 and "PERCENT_PRICE" in msg) or code in (-4016, -4024):
        if not spot:
            return BybitError(110003, "Order price is out of permissible range")
        if side == "SELL":
            return BybitError(170194, "Sell order price cannot be lower than the limit.")
        return BybitError(170193, "Buy order price cannot be higher than the limit.")
    if code in (-1013, -4013):
        return BybitError(170134, "Order price has too many decimals.") if spot else BybitError(10001, "Price invalid")
    if code == -4061:
        return BybitError(10001, "position idx not match position mode")
    if code == -2025:
        return BybitError(10001, "The number of open orders exceeds the maximum limit allowed.")
    if code in (-1003, -1015):
        return BybitError(10006, "Too many visits!")
    return BybitError(10001, msg)
