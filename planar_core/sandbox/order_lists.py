"""Spot OCO order lists: two orders, one above and one below the market, where the first to fill or trigger
cancels the other (``POST /api/v3/orderList/oco``, and the older ``POST /api/v3/order/oco``).

A mixin of ``SandboxExchange``. As on Binance:
* a SELL list has its above leg a LIMIT_MAKER or take-profit and its below leg a stop-loss; a BUY list the other way
  round; the prices must bracket the last price (``-2010 The relationship of the prices for the orders is not correct.``);
* the legs share one lock of funds (the list's quantity of base for a SELL, the limit leg's quote for a BUY), held by
  the leg that books first;
* a fill or a trigger of one leg expires the other; cancelling either leg cancels the list; when both legs are done
  the list is ``ALL_DONE``; every change sends a ``listStatus`` event on the user stream.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal

from . import errors as E
from .accounts import Account, Fill, SandboxOrder

ABOVE_SELL = {"LIMIT_MAKER", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"}
BELOW_SELL = {"STOP_LOSS", "STOP_LOSS_LIMIT"}


@dataclass
class OrderList:
    list_id: int
    client_id: str
    symbol: str
    order_ids: list[int]
    created_ms: int
    status: str = "EXECUTING"  # listOrderStatus: EXECUTING | ALL_DONE
    updated_ms: int = 0
    legs_locked: bool = False  # while booking: the first leg holds the lock both legs share

    @property
    def status_type(self) -> str:
        return "EXEC_STARTED" if self.status == "EXECUTING" else "ALL_DONE"


class OrderLists:
    """OCO lists (mixed into ``SandboxExchange``)."""

    now_ms: Callable[[], int]
    emit: Callable[..., None]
    place_order: Callable[..., tuple[SandboxOrder, list[Fill]]]
    last_spot_price: Callable[[str | None], Decimal]
    _list_ids: Iterator[int]
    _order_ids: itertools.count[int]
    _placing_list: OrderList | None
    _close: Callable[..., None]
    _release_spot: Callable[[Account, SandboxOrder], None]
    _number: Callable[[dict[str, str], str], Decimal]
    _int: Callable[[dict[str, str], str], int]

    def place_oco(self, acct: Account, p: dict[str, str], legacy: bool) -> OrderList:
        """Book both legs or neither. ``legacy``: the parameters of ``/api/v3/order/oco`` (price, stopPrice,
        stopLimitPrice) instead of ``/api/v3/orderList/oco``'s above*/below*."""
        side = (p.get("side") or "").upper()
        if side not in ("BUY", "SELL"):
            raise E.ApiError(400, -1117, "Invalid side.") if side else E.mandatory("side")
        self._number(p, "quantity")
        above, below = (self._legacy_legs if legacy else self._legs)(p, side)
        if (side == "SELL" and (above["type"] not in ABOVE_SELL or below["type"] not in BELOW_SELL)) or (
            side == "BUY" and (above["type"] not in BELOW_SELL or below["type"] not in ABOVE_SELL)
        ):
            raise E.ApiError(400, -1158, "Order type not supported in OCO.")
        if not legacy:  # the older endpoint answers the legs' own refusals (-2010) instead
            self._legs_on_their_sides(side, (above, below), self.last_spot_price(p.get("symbol")))
        wanted = p.get("listClientOrderId")
        if wanted and any(o.client_id == wanted and o.status == "EXECUTING" for o in acct.order_lists.values()):
            # Binance: a list's client id is taken again only once the list holding it is done
            raise E.duplicate_order("spot")
        now = self.now_ms()
        olist = OrderList(
            next(self._list_ids), p.get("listClientOrderId") or f"sbxlist-{now}", (p.get("symbol") or "").upper(), [], now, updated_ms=now
        )
        limit_leg, stop_leg = (above, below) if side == "SELL" else (below, above)
        booked: list[SandboxOrder] = []
        self._placing_list = olist
        try:
            for leg in (limit_leg, stop_leg):  # the limit leg books (and locks) first; the stop leg shares its lock
                order, _ = self.place_order(acct, "spot", {"symbol": olist.symbol, "side": side, "quantity": p["quantity"], **leg})
                booked.append(order)
                olist.legs_locked = True
            if not self._prices_bracket(side, booked[0], booked[1]):
                raise E.ApiError(400, -2010, "The relationship of the prices for the orders is not correct.")
        except E.ApiError:
            for order in booked:  # the list is refused whole: the leg already booked never existed
                self._release_spot(acct, order)
                acct.orders.pop(order.order_id, None)
                acct.by_client_id.pop(("spot", order.client_id), None)
            raise
        finally:
            self._placing_list = None
        olist.order_ids = [o.order_id for o in (booked if side == "BUY" else booked[::-1])]  # below leg first, as Binance lists them
        acct.order_lists[olist.list_id] = olist
        for order in booked:
            order.order_list_id = olist.list_id
            self.emit(acct, "spot", "order", {"order": order, "exec": "NEW"})
        self.emit(acct, "spot", "list", {"list": olist, "orders": [acct.orders[i] for i in olist.order_ids]})
        self.emit(acct, "spot", "account", {"symbol": olist.symbol})  # the lock the legs share (outboundAccountPosition)
        return olist

    @staticmethod
    def _legs_on_their_sides(side: str, legs: tuple[dict[str, str], ...], last: Decimal) -> None:
        """Binance's own refusals of a list whose legs are on the wrong side of the last price (errors.md: -1165,
        -1166, -1196 to -1199): a sell list's limit maker and take-profit above it and its stop-loss below, a buy
        list the other way round. A leg whose price does not parse is left to its own check."""
        sell = side == "SELL"
        for leg in legs:
            kind = leg["type"]
            try:
                level = Decimal(leg["price"] if kind == "LIMIT_MAKER" else leg["stopPrice"])
            except (KeyError, ArithmeticError):
                continue
            if kind == "LIMIT_MAKER" and (level <= last if sell else level >= last):
                raise (
                    E.ApiError(400, -1166, "A limit order in a sell OCO must be above.")
                    if sell
                    else E.ApiError(400, -1165, "A limit order in a buy OCO must be below.")
                )
            if kind.startswith("TAKE_PROFIT") and (level <= last if sell else level >= last):
                raise (
                    E.ApiError(400, -1199, "A take profit order in a sell OCO must be above.")
                    if sell
                    else E.ApiError(400, -1198, "A take profit order in a buy OCO must be below.")
                )
            if kind.startswith("STOP_LOSS") and (level >= last if sell else level <= last):
                raise (
                    E.ApiError(400, -1197, "A stop loss order in a sell OCO must be below.")
                    if sell
                    else E.ApiError(400, -1196, "A stop loss order in a buy OCO must be above.")
                )

    def _prices_bracket(self, side: str, limit_leg: SandboxOrder, stop_leg: SandboxOrder) -> bool:
        if side == "SELL":
            return limit_leg.price > stop_leg.stop_price
        return limit_leg.price < stop_leg.stop_price

    @staticmethod
    def _legs(p: dict[str, str], side: str) -> tuple[dict[str, str], dict[str, str]]:
        legs = []
        for pos in ("above", "below"):
            leg = {"type": (p.get(f"{pos}Type") or "").upper()}
            if not leg["type"]:
                raise E.mandatory(f"{pos}Type")
            for name, key in (
                ("Price", "price"),
                ("StopPrice", "stopPrice"),
                ("TrailingDelta", "trailingDelta"),
                ("TimeInForce", "timeInForce"),
                ("ClientOrderId", "newClientOrderId"),
                ("IcebergQty", "icebergQty"),
            ):
                if p.get(f"{pos}{name}"):
                    leg[key] = p[f"{pos}{name}"]
            legs.append(leg)
        return legs[0], legs[1]

    @staticmethod
    def _legacy_legs(p: dict[str, str], side: str) -> tuple[dict[str, str], dict[str, str]]:
        limit = {"type": "LIMIT_MAKER", "price": p.get("price", "")}
        if p.get("limitClientOrderId"):
            limit["newClientOrderId"] = p["limitClientOrderId"]
        stop = {"type": "STOP_LOSS_LIMIT" if p.get("stopLimitPrice") else "STOP_LOSS", "stopPrice": p.get("stopPrice", "")}
        if p.get("stopLimitPrice"):
            if not p.get("stopLimitTimeInForce"):  # Binance: "If provided, stopLimitTimeInForce is required."
                raise E.mandatory("stopLimitTimeInForce")
            stop.update(price=p["stopLimitPrice"], timeInForce=p["stopLimitTimeInForce"])
        if p.get("stopClientOrderId"):
            stop["newClientOrderId"] = p["stopClientOrderId"]
        return (limit, stop) if side == "SELL" else (stop, limit)

    # ------------------------------------------------------------- one leg acts, the other goes
    def sibling_done(self, acct: Account, order: SandboxOrder, cancelled: bool) -> None:
        """``order`` of a list filled, triggered or was cancelled: the other leg expires (is cancelled with it)."""
        olist = acct.order_lists.get(order.order_list_id)
        if olist is None or olist.status != "EXECUTING":
            return
        olist.status, olist.updated_ms = "ALL_DONE", self.now_ms()
        for other_id in olist.order_ids:
            other = acct.orders[other_id]
            if other is not order and other.is_open:
                if cancelled:  # cancelled by the same request: its client id on both legs' reports
                    other.cancel_id = order.cancel_id
                self._close(acct, other, "CANCELED" if cancelled else "EXPIRED", "OCO_TRIGGER")
        self.emit(acct, "spot", "list", {"list": olist, "orders": [acct.orders[i] for i in olist.order_ids]})

    def find_list(self, acct: Account, p: dict[str, str]) -> OrderList:
        olist: OrderList | None = None
        if p.get("orderListId"):
            olist = acct.order_lists.get(self._int(p, "orderListId"))
        else:
            wanted = p.get("listClientOrderId") or p.get("origClientOrderId")
            if not wanted:
                raise E.mandatory("orderListId")
            olist = next((x for x in reversed(acct.order_lists.values()) if x.client_id == wanted), None)
        if olist is None:
            raise E.ApiError(400, -2013, "Order list does not exist.")
        return olist

    def cancel_list(self, acct: Account, p: dict[str, str]) -> OrderList:
        olist = self.find_list(acct, p)
        if olist.status != "EXECUTING":
            raise E.unknown_order()
        first = acct.orders[olist.order_ids[0]]
        first.cancel_id = p.get("newClientOrderId") or f"sbxcancel-{next(self._order_ids)}"
        self._close(acct, first, "CANCELED")
        self.sibling_done(acct, first, cancelled=True)  # its sibling goes with it, and the list is ALL_DONE
        return olist
