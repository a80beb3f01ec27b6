"""The simulated venue's spot user-stream reports, built from the exchange's own order and fill records.

Live, an order update is the exchange's JSON read by ccxt (``parse_order``, ``safe_order``) and then by the dialect
(``exchange/reports.py``). A backtest sends one such update per order event and one per fill, tens of thousands a
year, and building the wire dict to have ccxt read it back was the largest part of a simulated fill's cost. These
build the same reports directly, with ccxt's own rules where a figure is derived: every amount and price as the
wire prints it (8 decimals) read as a float, the average as ccxt's ``Precise`` divides the quote total by the filled
amount, the market price of a market order its average, ccxt's unified order types and time in force, the stop
orders' trigger phase from ``isWorking``. ``tests/backtest/test_sim_parity.py`` compares them, event by event, with
ccxt's parse of the wire shapes over orders of every spot type; USDⓈ-M reports still go through ccxt.
"""

from __future__ import annotations

from dataclasses import replace
from operator import attrgetter
from typing import Protocol

from ccxt.base.precise import Precise

from ..exchange.dialect import Dialect
from ..exchange.reports import PHASES, STATUSES, order_type
from ..model.types import Json, Side
from ..model.venue import Fee, FillReport, OrderReport
from ..sandbox.accounts import Fill, SandboxOrder
from ..sandbox.fmt import s


class CcxtReading(Protocol):
    """ccxt's own tables of the venue (its exchange object): the status and the unified order type it reads."""

    def parse_order_status(self, status: str | None, /) -> str | None: ...
    def parse_order_type_by_market(self, type: str | None, market_type: str | None, /) -> str | None: ...


TAKE_PROFIT_TYPES = ("take_profit", "take_profit_market", "take_profit_limit")
SIDES = {"BUY": Side.BUY, "SELL": Side.SELL}


def _nonzero(text: str) -> float | None:
    """ccxt's ``omit_zero`` then ``parse_number``: None for a zero."""
    value = float(text)
    return value if value else None


def order_report(o: SandboxOrder, symbol: str, ccxt: CcxtReading, dialect: Dialect) -> OrderReport:
    """What the engine reads from a spot order's stream update, as ccxt (its tables: ``ccxt``) and ``dialect`` read
    the order's wire shape."""
    status = ccxt.parse_order_status(o.status)
    kind = o.type.lower()
    unified = ccxt.parse_order_type_by_market(kind, "spot") or kind
    tif: str | None = o.time_in_force or None
    if tif == "GTX":
        tif = "PO"
    post_only = kind == "limit_maker" or tif == "PO"
    trigger = _nonzero(s(o.stop_price)) if o.stop_price else None
    if tif is None:  # ccxt's safe_order fills it in
        if trigger is None and unified == "market":
            tif = "IOC"
        if post_only:
            tif = "PO"
    filled_s = s(o.filled)
    cost_s = s(o.cum_quote)
    average = None
    if Precise.string_gt(filled_s, "0"):
        average = float(Precise.string_div(cost_s, Precise.string_mul(filled_s, "1")))
    price = _nonzero(s(o.price))
    if price is None and unified == "market":
        price = average
    filled = float(filled_s)
    amount = _nonzero(s(o.qty))
    if amount is None and status == "closed":
        amount = filled
    traded = status == "closed" or (status == "open" and filled > 0)  # ccxt's lastTradeTimestamp is set
    shape: Json = {
        "type": unified,
        "triggerPrice": trigger,
        "takeProfitPrice": trigger if kind in TAKE_PROFIT_TYPES else None,
        "price": price,
        "postOnly": post_only,
        "timeInForce": tif,
    }
    cid = o.client_id
    # the dialect's own readings of what ccxt leaves in the payload: a forced close, a stop's trigger phase
    raw: Json = {"clientOrderId": cid, "info": {"type": o.type, "isWorking": o.working}}
    forced = dialect.forced_close(raw)
    phase = dialect.trigger_phase(raw)
    return OrderReport(
        symbol=symbol,
        id=str(o.order_id),
        client_order_id=cid or None,
        status=STATUSES.get(status),
        side=SIDES.get(o.side),
        type=None if forced else order_type(shape),
        amount=amount,
        filled=filled,
        price=price,
        average=average,
        trigger_price=trigger,
        post_only=post_only,
        time_in_force=tif,
        timestamp=o.created_ms,
        updated=o.updated_ms or (0 if traded else None),
        trigger_phase=PHASES.get(phase) if phase else None,
        forced_close="adl" if forced == "adl" else "liquidation" if forced else None,
        cost=float(cost_s),
    )


def fill_report(f: Fill, symbol: str, client_order_id: str) -> FillReport:
    """What the engine reads from a spot fill (the execution's trade), as ccxt's ``parse_trade`` and the dialect
    read it."""
    return FillReport(
        symbol=symbol,
        id=str(f.trade_id),
        order_id=str(f.order_id),
        client_order_id=client_order_id or None,
        side=Side.BUY if f.side == "BUY" else Side.SELL,
        amount=float(s(f.qty)),
        price=float(s(f.price)),
        timestamp=f.time_ms,
        fee=Fee(float(s(f.commission)), f.commission_asset or None),
        taker=not f.is_maker,
    )


def answer_report(o: SandboxOrder, answer: Json, symbol: str, ccxt: CcxtReading, dialect: Dialect) -> OrderReport:
    """What the engine reads from the answer to a new spot order (``POST /api/v3/order``, FULL) as ccxt and the
    dialect read it: the order as its stream update reads (``order_report``), but stamped at its ``workingTime``
    (ccxt's first time field in that answer: -1 for a stop order not yet working), no trigger phase (the answer has
    no ``isWorking``), and the fills it lists with only what they carry (no order id, side, time or maker flag), in
    the order ccxt's ``parse_trades`` sorts them: by time, which they lack, then by id as text."""
    working = answer.get("workingTime")
    stamp = working if isinstance(working, int) else o.updated_ms
    fills = answer.get("fills")
    listed = [_answer_fill(f, symbol) for f in fills if isinstance(f, dict)] if isinstance(fills, list) else []
    return replace(
        order_report(o, symbol, ccxt, dialect), timestamp=stamp, trigger_phase=None, fills=tuple(sorted(listed, key=attrgetter("id")))
    )


def _answer_fill(f: Json, symbol: str) -> FillReport:
    fee, asset = f.get("commission"), f.get("commissionAsset")
    return FillReport(
        symbol=symbol,
        id=str(f.get("tradeId")),
        order_id=None,
        client_order_id=None,
        side=None,
        amount=float(str(f.get("qty"))),
        price=float(str(f.get("price"))),
        timestamp=None,
        fee=Fee(float(str(fee)), str(asset) if asset else None) if fee is not None else None,
        taker=None,
    )
