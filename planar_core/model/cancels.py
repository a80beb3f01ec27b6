"""A cancel's answer read as the report of the order it named (the strategy's cancels and both e-stops use it)."""

from __future__ import annotations

from dataclasses import replace

from .status import OrderStatus
from .venue import OrderReport


def as_cancelled(symbol: str, cid: str, report: OrderReport) -> OrderReport:
    """``report`` (a cancel's answer) as the report of the order named ``cid`` on ``symbol``: the answer may carry
    the cancel request's own client id (spot) and may not say the status (then: canceled)."""
    return replace(report, symbol=report.symbol or symbol, client_order_id=cid, status=report.status or OrderStatus.CANCELED)
