"""How a cancel names an order, and its answer read as the report of the order it named (the strategy's cancels
and both e-stops use them)."""

from __future__ import annotations

from dataclasses import replace

from .status import OrderStatus
from .types import AssetInstance, Order
from .venue import OrderRef, OrderReport


def cancel_target(ai: AssetInstance, order: Order) -> OrderRef:
    """How the exchange names ``order`` for a cancel: its id (futures conditional orders still waiting: the algo
    id), or its client id when the acknowledgement was lost."""
    waiting = ai.is_margin and order.type.is_conditional and not order.triggered
    return OrderRef(order.client_order_id, order.id, waiting)


def as_cancelled(symbol: str, cid: str, report: OrderReport) -> OrderReport:
    """``report`` (a cancel's answer) as the report of the order named ``cid`` on ``symbol``: the answer may carry
    the cancel request's own client id (spot) and may not say the status (then: canceled)."""
    return replace(report, symbol=report.symbol or symbol, client_order_id=cid, status=report.status or OrderStatus.CANCELED)
