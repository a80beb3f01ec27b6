"""Bybit v5's position and margin-mode endpoints: ``/v5/position/list``, ``set-leverage``, ``switch-mode``,
``trading-stop`` (the position's TP/SL), ``switch-isolated`` and ``/v5/account/set-margin-mode``.

The sandbox's account is a unified trading account (UTA 2.0: ``/v5/account/info`` says so), where Bybit sets
cross / isolated margin for the whole account (``set-margin-mode``: REGULAR_MARGIN, ISOLATED_MARGIN,
PORTFOLIO_MARGIN) and ``switch-isolated`` (per symbol) is for classic accounts only: the sandbox answers it as a
unified account would, 100028 "The API cannot be accessed by unified account users.".
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from .. import errors as E
from .amend import optional_decimal
from .conditional import TRIGGER_BY
from .errors import BybitError, illegal_category, params_error

if TYPE_CHECKING:
    from .rest import BybitServer, Call

MARGIN_MODES = ("REGULAR_MARGIN", "ISOLATED_MARGIN", "PORTFOLIO_MARGIN")


def switch_mode(server: BybitServer, c: Call) -> object:
    """``mode`` 0 (one-way) or 3 (hedge). The core keeps one position mode per account: a switch by symbol or by
    coin switches the account (Bybit switches that symbol, or every symbol settled in that coin)."""
    if c.category != "linear":
        raise illegal_category(c.category)
    if not c.params.get("symbol") and not c.params.get("coin"):
        raise params_error("params error: symbol or coin is required")
    if c.params.get("symbol"):
        server._market(c)
    mode = c.params.get("mode")
    if mode not in ("0", "3"):
        raise params_error("params error: mode invalid")
    try:
        server.ex.set_position_mode(c.acct, mode == "3")
    except E.ApiError as exc:
        if exc.code == -4059:
            raise BybitError(110025, "Position mode is not modified") from None
        if exc.code == -4068:
            raise BybitError(110024, "You have an existing position, so position mode cannot be switched") from None
        if exc.code == -4067:
            raise BybitError(110028, "Open orders exist, so you cannot change position mode") from None
        raise
    return {}


def position_list(server: BybitServer, c: Call) -> object:
    category = c.params.get("category", "")
    if category == "inverse":  # the sandbox has no inverse contracts (ccxt's watchPositions asks for both)
        return {"category": category, "list": [], "nextPageCursor": ""}
    if category != "linear":
        raise illegal_category(category)
    c.category = "linear"
    m = server._market(c, required=False)
    if m is None and not (c.params.get("settleCoin") or c.params.get("baseCoin")):
        raise params_error("params error: symbol, baseCoin or settleCoin is required")
    limit = server._int(c, "limit", 20, 1, 200)  # Bybit: "[1, 200]. Default: 20", a page at a time by its cursor
    sides = ("LONG", "SHORT") if c.acct.hedge_mode else ("BOTH",)
    rows = []
    for x in [m] if m is not None else server._markets("linear"):
        for side in sides:
            if m is None and not server.ex.position(c.acct, x.spec.symbol, side).amount:
                continue  # by settle coin: only the positions held; by symbol: the row even when flat
            rows.append(server.position_row(c.acct, x.spec.symbol, side))
    page, cursor = server._page(c, rows, limit)
    return {"category": "linear", "list": page, "nextPageCursor": cursor}


def set_leverage(server: BybitServer, c: Call) -> object:
    if c.category != "linear":
        raise illegal_category(c.category)
    m = server._market(c)
    assert m is not None
    buy, sell = c.params.get("buyLeverage", ""), c.params.get("sellLeverage", "")
    if not buy or not sell:
        raise params_error("params error: buyLeverage and sellLeverage are required")
    if buy != sell and not c.acct.hedge_mode:
        raise params_error("buy leverage must be equal to sell leverage in one-way mode")
    try:
        lev = Decimal(buy)
    except InvalidOperation:
        raise params_error("params error: buyLeverage invalid") from None
    if lev != lev.to_integral_value() or not 1 <= lev <= 125:
        raise BybitError(10001, "leverage invalid")
    if server.ex.leverage_of(c.acct, m.spec.symbol) == int(lev):
        raise BybitError(110043, "leverage not modified")
    server.ex.set_leverage(c.acct, m.spec.symbol, int(lev))
    return {}


def trading_stop(server: BybitServer, c: Call) -> object:
    """The position's TP/SL (``tpslMode`` Full; ``"0"`` cancels one). No position: 10001 "can not set tp/sl/ts for
    zero position"; the same levels again: 10001 "not modified"; a TP/SL on the wrong side of the price: 10001."""
    if c.category != "linear":
        raise illegal_category(c.category)
    m = server._market(c)
    assert m is not None
    if (c.params.get("tpslMode") or "Full") != "Full":
        raise params_error("params error: only tpslMode=Full is supported by the sandbox")
    for name in ("trailingStop", "activePrice"):
        if c.params.get(name) not in (None, "", "0"):
            raise params_error(f"params error: {name} is not supported by the sandbox")
    side = {"0": "BOTH", "1": "LONG", "2": "SHORT"}.get(c.params.get("positionIdx") or "0")
    if side is None or (side == "BOTH") == c.acct.hedge_mode:
        raise params_error("position idx not match position mode")
    tp, sl = optional_decimal(c, "takeProfit", zero_ok=True), optional_decimal(c, "stopLoss", zero_ok=True)
    if tp is None and sl is None:
        raise params_error("params error: takeProfit or stopLoss is required")
    symbol = m.spec.symbol
    pos = server.ex.position(c.acct, symbol, side)
    if not pos.amount:
        raise BybitError(10001, "can not set tp/sl/ts for zero position")
    now = server.conditional.position_tpsl(c.acct, symbol, side)
    current = {k: a.trigger_price for k, a in now.items()}
    wanted = {"TakeProfit": tp, "StopLoss": sl}
    changes = {k: v for k, v in wanted.items() if v is not None and v != current.get(k, Decimal(0))}
    if not changes:
        raise BybitError(10001, "not modified")
    long = pos.amount > 0
    for kind, price in changes.items():
        if not price:
            continue
        by = c.params.get("tpTriggerBy" if kind == "TakeProfit" else "slTriggerBy") or "LastPrice"
        if by not in TRIGGER_BY:
            raise params_error("params error: trigger by invalid")
        base = server.ex.mark(symbol) if by == "MarkPrice" else server.ex.last_price(m)
        above = (kind == "TakeProfit") == long
        if (price <= base) if above else (price >= base):
            side_name = "Buy" if long else "Sell"
            raise BybitError(
                10001, f"{kind}:{price} set for {side_name} position should be {'higher' if above else 'lower'} than base_price:{base}"
            )
    for kind, price in changes.items():
        by = c.params.get("tpTriggerBy" if kind == "TakeProfit" else "slTriggerBy") or "LastPrice"
        server.conditional.set_position_tpsl(c.acct, symbol, side, kind, price, by)
    return {}


def switch_isolated(server: BybitServer, c: Call) -> object:
    """Classic accounts only on Bybit; the sandbox's account is unified."""
    raise BybitError(100028, "The API cannot be accessed by unified account users.")


def set_margin_mode(server: BybitServer, c: Call) -> object:
    """``setMarginMode`` for the whole unified account: every linear symbol cross or isolated. Refused (3400045 "Set
    margin mode failed", the reasons in ``result.reasons``) while a position or an order is open; the mode it
    already has is accepted with no reasons (Bybit's own SDK tests expect success there)."""
    mode = c.params.get("setMarginMode") or ""
    if mode not in MARGIN_MODES:
        raise params_error("params error: setMarginMode invalid")
    acct = c.acct
    if mode == server.margin_modes.get(acct.api_key, "REGULAR_MARGIN"):
        return {"reasons": []}
    reasons = []
    if mode == "PORTFOLIO_MARGIN":
        reasons.append({"reasonCode": "3400000", "reasonMsg": "portfolio margin is not supported by the sandbox"})
    if any(True for _ in server.ex.open_positions(acct)):
        reasons.append({"reasonCode": "3400214", "reasonMsg": "Please close all positions before switching margin mode"})
    if acct.open_orders("linear") or any(a.is_open for a in acct.algo_orders.values()):
        reasons.append({"reasonCode": "3400210", "reasonMsg": "Please cancel all open orders before switching margin mode"})
    if reasons:
        raise FailedMarginMode(reasons)
    isolated = mode == "ISOLATED_MARGIN"
    for m in server._markets("linear"):
        try:
            server.ex.set_margin_type(acct, m.spec.symbol, isolated)
        except E.ApiError as exc:
            if exc.code != -4046:  # already so
                raise
    server.margin_modes[acct.api_key] = mode
    return {"reasons": []}


class FailedMarginMode(BybitError):
    def __init__(self, reasons: list[dict[str, str]]) -> None:
        super().__init__(3400045, "Set margin mode failed")
        self.result = {"reasons": reasons}
