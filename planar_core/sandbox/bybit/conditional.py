"""Bybit v5's conditional orders and TP/SL over the core's conditional machinery.

* Linear ``triggerPrice`` + ``triggerDirection`` (1: triggers when the price rises to it, 2: when it falls; Bybit
  refuses a trigger already on the wrong side with 110092 / 110093): one of the core's algo orders (Binance's Algo
  Service: ``STOP[_MARKET]`` / ``TAKE_PROFIT[_MARKET]`` chosen from side and direction); Bybit's ``orderId`` is the
  algo id, and once triggered the order it placed is shown under that same id (``stopOrderType`` ``Stop``,
  ``orderStatus`` ``Untriggered`` -> ``Triggered``/``New``/``Filled``...; a cancelled waiting order is
  ``Deactivated``). ``triggerBy`` LastPrice / MarkPrice (IndexPrice: the core has no index; it watches the last
  price). ``reduceOnly`` and ``closeOnTrigger`` make the triggered order reduce-only.
* Spot ``orderFilter=StopOrder`` / ``tpslOrder`` with ``triggerPrice``: the core's spot conditional orders
  (``STOP_LOSS[_LIMIT]`` / ``TAKE_PROFIT[_LIMIT]``), same order id before and after the trigger; the direction is
  ``triggerDirection`` if sent, else the side of the last price the trigger is on, as Bybit decides it.
* Position TP/SL (``/v5/position/trading-stop``, and ``takeProfit``/``stopLoss`` attached to a linear order, which
  Bybit applies to the position when the order fills, ``tpslMode`` Full): the core's close-position algo orders
  (``TAKE_PROFIT_MARKET`` / ``STOP_MARKET`` with ``closePosition``), ``stopOrderType`` ``TakeProfit`` /
  ``StopLoss``, shown on the position's ``takeProfit``/``stopLoss``; cancelled when the position closes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from .. import errors as E
from ..accounts import ZERO, Account, AlgoOrder, Fill, SandboxOrder
from . import wire
from .errors import BybitError, params_error

if TYPE_CHECKING:
    from ..exchange import Market
    from .rest import BybitServer, Call, Params

TRIGGER_BY = {"LastPrice": "CONTRACT_PRICE", "MarkPrice": "MARK_PRICE", "IndexPrice": "CONTRACT_PRICE"}
POSITION_TPSL = ("TakeProfit", "StopLoss")


@dataclass
class Meta:
    """What Bybit shows of a conditional order that the core does not keep."""

    stop_order_type: str  # Stop | tpslOrder | TakeProfit | StopLoss ("" : an ordinary order with TP/SL attached)
    trigger_direction: int = 0
    trigger_by: str = "LastPrice"
    close_on_trigger: bool = False
    take_profit: Decimal = ZERO  # attached to a linear order: set on the position when it fills
    stop_loss: Decimal = ZERO
    tp_trigger_by: str = "LastPrice"
    sl_trigger_by: str = "LastPrice"


def _price(c: Call, name: str) -> Decimal | None:
    from .amend import optional_decimal

    return optional_decimal(c, name, zero_ok=True)


def _trigger_by(c: Call, name: str) -> str:
    value = c.params.get(name) or "LastPrice"
    if value not in TRIGGER_BY:
        raise params_error(f"params error: {name} invalid")
    return value


class Conditional:
    """The dialect's conditional-order state (``meta`` by Bybit order id) and handlers' helpers."""

    def __init__(self, server: BybitServer) -> None:
        self.server = server
        self.ex = server.ex
        self.meta: dict[int, Meta] = {}
        self.ex.listeners.append(self._on_event)

    # ----------------------------------------------------------------- placing
    def direction(self, c: Call, trigger: Decimal, current: Decimal, required: bool) -> int:
        raw = c.params.get("triggerDirection") or ""
        if raw not in ("1", "2"):
            if required or raw:
                raise params_error("params error: triggerDirection invalid")
            return 1 if trigger > current else 2
        return int(raw)

    def place(self, c: Call, m: Market, core: Params) -> tuple[int, str]:
        """A create request with ``triggerPrice``: (Bybit order id, orderLinkId)."""
        trigger = _price(c, "triggerPrice")
        assert trigger is not None
        trigger_by = _trigger_by(c, "triggerBy")
        side = core["side"]
        if c.category == "linear":
            current = self.ex.mark(m.spec.symbol) if trigger_by == "MarkPrice" else self.ex.last_price(m)
            direction = self.direction(c, trigger, current, required=True)
            if direction == 1 and trigger <= current:
                raise BybitError(110092, f"expect Rising, but trigger_price[{trigger}] <= current[{wire.price(m.spec, current)}]")
            if direction == 2 and trigger >= current:
                raise BybitError(110093, f"expect Falling, but trigger_price[{trigger}] >= current[{wire.price(m.spec, current)}]")
            return self._place_linear(c, m, core, trigger, direction, trigger_by)
        flt = c.params.get("orderFilter") or "Order"
        direction = self.direction(c, trigger, self.ex.last_price(m), required=False)
        stop = (direction == 1) == (side == "BUY")  # a buy that waits for a rise is a stop; for a fall, a take-profit
        base = "STOP_LOSS" if stop else "TAKE_PROFIT"
        if core.get("type") == "LIMIT_MAKER":
            raise params_error("params error: a conditional order cannot be PostOnly in the sandbox")
        if "quoteOrderQty" in core:
            raise params_error("params error: a conditional market buy takes marketUnit=baseCoin in the sandbox")
        core["type"] = base + ("_LIMIT" if core["type"] == "LIMIT" else "")
        core["stopPrice"] = str(trigger)
        # Bybit: a tpslOrder's assets "are occupied even before the order is triggered"; a StopOrder's "will not be
        # occupied until the price ... reaches the trigger price" (v5 create-order, orderFilter)
        order, _ = self.ex.place_order(c.acct, "spot", core, lock_at_trigger=flt != "tpslOrder")
        self.meta[order.order_id] = Meta("tpslOrder" if flt == "tpslOrder" else "Stop", direction, trigger_by)
        return order.order_id, self.server.link_id(order)

    def _place_linear(self, c: Call, m: Market, core: Params, trigger: Decimal, direction: int, trigger_by: str) -> tuple[int, str]:
        side = core["side"]
        stop = (direction == 1) == (side == "BUY")
        limit = core["type"] == "LIMIT"
        close_on_trigger = (c.params.get("closeOnTrigger") or "false").lower() == "true"
        algo_params = {
            "symbol": m.spec.symbol,
            "side": side,
            "algoType": "CONDITIONAL",
            "type": ("STOP" if stop else "TAKE_PROFIT") + ("" if limit else "_MARKET"),
            "quantity": core["quantity"],
            "triggerPrice": str(trigger),
            "workingType": TRIGGER_BY[trigger_by],
            "positionSide": core.get("positionSide", "BOTH"),
            "clientAlgoId": core["newClientOrderId"],
        }
        if limit:
            algo_params.update(price=core["price"], timeInForce=core["timeInForce"])
        if (core.get("reduceOnly") == "true" or close_on_trigger) and algo_params["positionSide"] == "BOTH":
            algo_params["reduceOnly"] = "true"
        algo = self.ex.place_algo_order(c.acct, algo_params)
        self.meta[algo.algo_id] = Meta("Stop", direction, trigger_by, close_on_trigger)
        return algo.algo_id, self.server.link_id_of(algo.client_algo_id)

    def move_trigger(self, c: Call, m: Market, target: AlgoOrder | SandboxOrder, trigger: Decimal) -> bool:
        """``/v5/order/amend`` with ``triggerPrice`` on a conditional order still waiting (a linear one: its algo
        order; a spot one: its order before the trigger); False when it is already there. A linear trigger moved to
        the wrong side of the price it watches is refused as at placement (110092 / 110093); a spot one triggers at
        the next price, as Bybit reads a spot trigger against its last price."""
        if isinstance(target, AlgoOrder):
            if trigger == target.trigger_price:
                return False
            meta = self.meta.get(target.algo_id)
            direction = meta.trigger_direction if meta is not None else 0
            current = self.ex.mark(m.spec.symbol) if meta is not None and meta.trigger_by == "MarkPrice" else self.ex.last_price(m)
            if direction == 1 and trigger <= current:
                raise BybitError(110092, f"expect Rising, but trigger_price[{trigger}] <= current[{wire.price(m.spec, current)}]")
            if direction == 2 and trigger >= current:
                raise BybitError(110093, f"expect Falling, but trigger_price[{trigger}] >= current[{wire.price(m.spec, current)}]")
            target.trigger_price, target.updated_ms = trigger, self.ex.now_ms()
            self.ex.emit(c.acct, "linear", "algo", {"algo": target})
            return True
        if trigger == target.stop_price:
            return False
        target.stop_price, target.updated_ms = trigger, self.ex.now_ms()
        self.ex.emit(c.acct, "spot", "order", {"order": target, "exec": "AMENDMENT"})
        return True

    def attach(self, c: Call, m: Market, core: Params) -> Meta | None:
        """``takeProfit``/``stopLoss`` on a linear order: checked against the order's price (Bybit: a buy's TP above
        it, its SL below), kept until the order fills."""
        tp, sl = _price(c, "takeProfit"), _price(c, "stopLoss")
        if not tp and not sl:
            return None
        if c.category != "linear":
            raise params_error("params error: takeProfit/stopLoss on a spot order are not supported by the sandbox")
        if (c.params.get("tpslMode") or "Full") != "Full":
            raise params_error("params error: only tpslMode=Full is supported by the sandbox")
        base = Decimal(core["price"]) if core.get("price") else self.ex.last_price(m)
        buy = core["side"] == "BUY"
        if tp and (tp <= base if buy else tp >= base):
            raise params_error(
                f"TakeProfit:{tp} set for {'Buy' if buy else 'Sell'} position should be {'higher' if buy else 'lower'} than base_price:{base}"
            )
        if sl and (sl >= base if buy else sl <= base):
            raise params_error(
                f"StopLoss:{sl} set for {'Buy' if buy else 'Sell'} position should be {'lower' if buy else 'higher'} than base_price:{base}"
            )
        return Meta(
            "",
            take_profit=tp or ZERO,
            stop_loss=sl or ZERO,
            tp_trigger_by=_trigger_by(c, "tpTriggerBy"),
            sl_trigger_by=_trigger_by(c, "slTriggerBy"),
        )

    # ----------------------------------------------------------------- position TP/SL
    def position_tpsl(self, acct: Account, symbol: str, side: str) -> dict[str, AlgoOrder]:
        """The open TP/SL of a position: "TakeProfit"/"StopLoss" -> its close-position algo order."""
        out: dict[str, AlgoOrder] = {}
        for algo in acct.algo_orders.values():
            meta = self.meta.get(algo.algo_id)
            if algo.is_open and meta and meta.stop_order_type in POSITION_TPSL and algo.symbol == symbol and algo.position_side == side:
                out[meta.stop_order_type] = algo
        return out

    def set_position_tpsl(self, acct: Account, symbol: str, side: str, kind: str, price: Decimal, trigger_by: str) -> None:
        """Replace the position's TP (kind "TakeProfit") or SL ("StopLoss") by one at ``price`` (0: none)."""
        old = self.position_tpsl(acct, symbol, side).get(kind)
        if old is not None:
            self.ex.cancel_algo(acct, {"algoId": str(old.algo_id)})
        if not price:
            return
        pos = self.ex.position(acct, symbol, side)
        closing = "SELL" if pos.amount > 0 else "BUY"
        take = kind == "TakeProfit"
        algo = self.ex.place_algo_order(
            acct,
            {
                "symbol": symbol,
                "side": closing,
                "algoType": "CONDITIONAL",
                "type": "TAKE_PROFIT_MARKET" if take else "STOP_MARKET",
                "triggerPrice": str(price),
                "workingType": TRIGGER_BY[trigger_by],
                "closePosition": "true",
                "positionSide": side,
                "clientAlgoId": ":" + secrets.token_hex(8),
            },
        )
        self.meta[algo.algo_id] = Meta(kind, 1 if take == (closing == "SELL") else 2, trigger_by, close_on_trigger=True)

    def is_position_tpsl(self, algo: AlgoOrder) -> bool:
        meta = self.meta.get(algo.algo_id)
        return meta is not None and meta.stop_order_type in POSITION_TPSL

    def on_attached_fill(self, acct: Account, order: SandboxOrder) -> None:
        """A linear order with TP/SL attached has filled (some): the position it opened takes them (tpslMode Full)."""
        meta = self.meta.get(order.order_id)
        if meta is None or meta.stop_order_type:
            return
        pos = self.ex.position(acct, order.symbol, order.position_side)
        if not pos.amount or self.ex.closes(order, pos):
            return
        for name, price, by in (("TakeProfit", meta.take_profit, meta.tp_trigger_by), ("StopLoss", meta.stop_loss, meta.sl_trigger_by)):
            if price:
                try:
                    self.set_position_tpsl(acct, order.symbol, order.position_side, name, price, by)
                except E.ApiError:
                    pass  # the price has passed the level meanwhile (the core refuses a trigger that would fire at once)

    def _on_event(self, acct: Account, kind: str, event: str, payload: dict[str, object]) -> None:
        if kind != "linear":
            return
        order = payload.get("order")
        if event == "order" and isinstance(order, SandboxOrder) and isinstance(payload.get("fill"), Fill):
            self.on_attached_fill(acct, order)
        elif event == "account":
            symbol = str(payload.get("symbol"))
            for side in ("BOTH", "LONG", "SHORT"):
                if not self.ex.position(acct, symbol, side).amount:
                    for algo in self.position_tpsl(acct, symbol, side).values():
                        self.ex.cancel_algo(acct, {"algoId": str(algo.algo_id)})

    # ----------------------------------------------------------------- finding and showing
    def waiting(self, acct: Account, algo_id: str | None, link_id: str | None) -> AlgoOrder | None:
        """A linear conditional order still waiting for its trigger, by Bybit's orderId or orderLinkId."""
        for algo in acct.algo_orders.values():
            if algo.is_open and ((algo_id and str(algo.algo_id) == algo_id) or (link_id and algo.client_algo_id == link_id)):
                return algo
        return None

    def triggered(self, acct: Account, algo_id: str) -> SandboxOrder | None:
        """The order a triggered linear conditional order placed, by the conditional order's id."""
        try:
            algo = acct.algo_orders.get(int(algo_id))
        except ValueError:
            return None
        return acct.orders.get(algo.actual_order_id) if algo is not None and algo.actual_order_id else None

    def algo_row(self, acct: Account, algo: AlgoOrder) -> dict[str, object]:
        """A linear conditional order that has not placed an order (yet): Untriggered, Deactivated, Rejected."""
        spec = self.ex.markets[("linear", algo.symbol)].spec
        meta = self.meta.get(algo.algo_id, Meta("Stop"))
        status = {"NEW": "Untriggered", "CANCELED": "Deactivated", "EXPIRED": "Deactivated"}.get(algo.status, "Rejected")
        core = SandboxOrder(
            algo.algo_id,
            algo.client_algo_id,
            algo.symbol,
            "linear",
            algo.side,
            "LIMIT" if algo.price else "MARKET",
            algo.time_in_force if algo.price else "GTC",
            algo.price,
            algo.qty,
            algo.created_ms,
            reduce_only=algo.reduce_only or algo.close_position,
            updated_ms=algo.updated_ms,
            position_side=algo.position_side,
        )
        row = wire.order(acct, spec, core)
        row.update(
            orderLinkId=self.server.link_id_of(algo.client_algo_id),
            orderStatus=status,
            cancelType=self.server.cancel_types.get(("algo", algo.algo_id), "CancelByUser") if status == "Deactivated" else "UNKNOWN",
            leavesQty=wire.qty(spec, algo.qty) if status == "Untriggered" else wire.qty(spec, ZERO),
            timeInForce=row["timeInForce"] if algo.price else "IOC",
        )
        self.decorate(row, spec, meta, algo.trigger_price)
        return row

    def decorate(self, row: dict[str, object], spec: object, meta: Meta | None, trigger: Decimal) -> None:
        """The conditional fields of an order row."""
        if meta is None:
            return
        from ..market_data import MarketSpec

        assert isinstance(spec, MarketSpec)
        if meta.stop_order_type:
            row.update(
                stopOrderType=meta.stop_order_type,
                triggerPrice=wire.price(spec, trigger),
                triggerDirection=meta.trigger_direction,
                triggerBy=meta.trigger_by,
                closeOnTrigger=meta.close_on_trigger,
            )
        if meta.take_profit:
            row.update(takeProfit=wire.price(spec, meta.take_profit), tpTriggerBy=meta.tp_trigger_by)
        if meta.stop_loss:
            row.update(stopLoss=wire.price(spec, meta.stop_loss), slTriggerBy=meta.sl_trigger_by)
        if meta.take_profit or meta.stop_loss:
            row["tpslMode"] = "Full"

    def matches_filter(self, order_filter: str, bybit_id: int) -> bool:
        meta = self.meta.get(bybit_id)
        kind = meta.stop_order_type if meta else ""
        if order_filter == "Order":
            return not kind
        if order_filter == "StopOrder":
            return kind in ("Stop", *POSITION_TPSL)
        if order_filter == "tpslOrder":
            return kind == "tpslOrder"
        return False
