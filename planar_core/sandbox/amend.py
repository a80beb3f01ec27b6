"""Amending a resting order in place (Bybit's ``POST /v5/order/amend``): a new price and/or quantity for an order
that is still open, with the same order id and client id.

The rules are the core's own (price filter and band, lot size, the spot lock, the futures margin of the order) and
execution is the matcher's: an amended buy priced at or above the best ask (a sell at or below the best bid) takes
liquidity at once, as a new order would; a post-only order that would take ends ``REJECTED`` instead (Bybit's
unified account: "you will directly receive orderStatus=Rejected").
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from . import errors as E
from . import filters
from .accounts import ZERO, Account, SandboxOrder

if TYPE_CHECKING:
    from .exchange import SandboxExchange


class QtyNotAboveFilled(Exception):
    """The new quantity would not leave anything to fill (the dialect answers with its own code)."""


def amend_order(ex: SandboxExchange, acct: Account, order: SandboxOrder, price: Decimal | None, qty: Decimal | None) -> None:
    """Give an open limit order a new ``price`` and/or total ``qty`` (None: unchanged), then let it trade if it now
    crosses the book. Raises the core's ``ApiError`` (filters, balance, margin) with the order untouched."""
    m = ex.markets[(order.kind, order.symbol)]
    spec = m.spec
    new_price = order.price if price is None else price
    new_qty = order.qty if qty is None else qty
    if price is not None:
        filters.check_price(spec, m.bounds, new_price)
        filters.check_band(spec, order.side, new_price, ex.band_reference(m))
    if qty is not None:
        if new_qty < spec.min_qty or new_qty > spec.max_qty or (new_qty - spec.min_qty) % spec.step_size != 0:
            raise E.filter_failure("LOT_SIZE")
        if new_qty <= order.filled:
            raise QtyNotAboveFilled()
    remaining = new_qty - order.filled
    if order.kind == "spot":
        _relock_spot(
            acct, order, spec.quote if order.side == "BUY" else spec.base, new_price * remaining if order.side == "BUY" else remaining
        )
    elif not order.reduce_only:
        lev = ex.leverage_of(acct, order.symbol)
        extra = (remaining * new_price - order.remaining * order.price) / lev
        if extra > 0 and extra > ex.futures_margins(acct)["available"]:
            raise E.margin_insufficient()
    order.price, order.qty = new_price, new_qty
    order.updated_ms = ex.now_ms()
    takes = ex._taker_levels(m, order)
    if takes and (order.type == "LIMIT_MAKER" or order.time_in_force == "GTX"):
        ex._close(acct, order, "REJECTED")
        return
    ex.emit(acct, order.kind, "order", {"order": order, "exec": "AMENDMENT"})
    if order.kind == "spot":
        ex.emit(acct, order.kind, "account", {"symbol": order.symbol})
    ex._execute(acct, m, order, takes, maker=False)


def _relock_spot(acct: Account, order: SandboxOrder, asset: str, need: Decimal) -> None:
    """Hold ``need`` of ``asset`` for the order instead of what it holds now; insufficient balance leaves it as it was."""
    bal = acct.balance(asset)
    held = order.locked if order.locked_asset == asset else ZERO
    if bal[0] + held < need:
        raise E.insufficient_balance()
    bal[0] += held - need
    bal[1] += need - held
    order.locked, order.locked_asset = need, asset
