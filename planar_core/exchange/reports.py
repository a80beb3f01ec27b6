"""ccxt's unified answers turned into the domain's reports (model/venue.py).

ccxt already unifies most of an answer (status, amounts, prices, times); what it leaves in the raw payload
(``info``: whether an order is a conditional order's record and where its trigger stands, the order it placed, the
exchange's forced closes, futures wallets, the user-stream stamp, the position side) is read through the venue's
dialect (``exchange/binance.py``'s ``Dialect``). Nothing above this module reads a raw payload.

These run once per order update and per fill on the hot path: plain dataclass construction, no validation
library, no copies of the payload.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..model.json import opt_num
from ..model.status import FROM_CCXT, OrderStatus
from ..model.types import Json, OrderType, PositionSide, Side
from ..model.venue import (
    AssetBalance,
    BalanceReport,
    Fee,
    FillReport,
    FundingPayment,
    MarketType,
    OrderReport,
    PositionReport,
    Ticker,
    TriggerPhase,
)

if TYPE_CHECKING:
    from .dialect import Dialect

# keyed by object: a payload's value is looked up as it comes (an unknown or missing one maps to None)
SIDES: dict[object, Side] = {"buy": Side.BUY, "sell": Side.SELL}
STATUSES: dict[object, OrderStatus] = {k: v for k, v in FROM_CCXT.items()}
POSITION_SIDES: dict[object, PositionSide] = {"LONG": PositionSide.LONG, "SHORT": PositionSide.SHORT, "BOTH": PositionSide.BOTH}
CCXT_POSITION_SIDES: dict[object, PositionSide] = {"long": PositionSide.LONG, "short": PositionSide.SHORT}
PHASES = {"waiting": TriggerPhase.WAITING, "triggered": TriggerPhase.TRIGGERED}
TIME_IN_FORCE = {"IOC": OrderType.IOC, "FOK": OrderType.FOK}
NOT_CURRENCIES = frozenset({"info", "free", "used", "total", "timestamp", "datetime", "debt"})


def _str(x: object) -> str | None:
    if x is None or x == "":
        return None
    return x if isinstance(x, str) else str(x)


def _int(x: object) -> int | None:
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        return None
    try:
        v = float(x)
    except ValueError:
        return None
    return int(v) if math.isfinite(v) else None


def _bool(x: object) -> bool | None:
    return x if isinstance(x, bool) else None


def order_type(raw: Json) -> OrderType | None:
    """The engine's order type of a ccxt order (its unified type, trigger prices, post-only and time in force);
    None when the answer does not say (a cancel's short answer). ccxt writes a USD-M conditional order's type as
    "market"/"limit" and says take-profit by ``takeProfitPrice``."""
    kind = (_str(raw.get("type")) or "").lower()
    take = bool(raw.get("takeProfitPrice")) and not raw.get("stopLossPrice")
    if raw.get("triggerPrice") or raw.get("stopPrice") or "stop" in kind or "take_profit" in kind:
        limit = "market" not in kind and bool(opt_num(raw.get("price")))
        if "trailing" in kind:
            return OrderType.TRAILING_STOP
        if "take_profit" in kind or take:
            return OrderType.TAKE_PROFIT_LIMIT if limit else OrderType.TAKE_PROFIT_MARKET
        return OrderType.STOP_LIMIT if limit else OrderType.STOP_MARKET
    if not kind:
        return None
    if kind == "market":
        return OrderType.MARKET
    if raw.get("postOnly"):
        return OrderType.POST_ONLY
    return TIME_IN_FORCE.get(_str(raw.get("timeInForce")) or "", OrderType.GTC)


class ReportParser:
    """Turns one venue's ccxt answers into reports; ``dialect`` reads what ccxt left in the raw payload."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    # ------------------------------------------------------------------ orders and fills
    def fill(self, raw: Json) -> FillReport:
        """A ccxt trade (REST ``myTrades``, an order acknowledgement's fills, a user-stream execution)."""
        d = self.dialect
        info = raw.get("info")
        fee = raw.get("fee")
        fee_report = None
        if isinstance(fee, dict) and (fee.get("cost") is not None or fee.get("currency") is not None):
            fee_report = Fee(opt_num(fee.get("cost")) or 0.0, _str(fee.get("currency")))
        taker = raw.get("takerOrMaker")
        return FillReport(
            symbol=_str(raw.get("symbol")) or "",
            id=_str(raw.get("id")),
            order_id=_str(raw.get("order")),
            client_order_id=_str(raw.get("clientOrderId")) or d.fill_client_id(info),
            side=SIDES.get(raw.get("side")),
            amount=opt_num(raw.get("amount")) or 0.0,
            price=opt_num(raw.get("price")) or 0.0,
            timestamp=_int(raw.get("timestamp")),
            fee=fee_report,
            taker=None if taker is None else taker == "taker",
            realized_pnl=d.realized_pnl(info),
            stamp=d.stamp_of(raw),
        )

    def order(self, raw: Json) -> OrderReport:
        """A ccxt order (an acknowledgement, a look-up, a listing row, a cancel's answer, a stream update)."""
        d = self.dialect
        info = raw.get("info")
        forced = d.forced_close(raw)
        phase = d.trigger_phase(raw)
        side_name = d.position_side(info)
        trades = raw.get("trades")
        fills = tuple(self.fill(t) for t in trades if isinstance(t, dict)) if isinstance(trades, list) and trades else ()
        return OrderReport(
            symbol=_str(raw.get("symbol")) or "",
            id=_str(raw.get("id")),
            client_order_id=_str(raw.get("clientOrderId")),
            status=STATUSES.get(raw.get("status")),
            side=SIDES.get(raw.get("side")),
            type=None if forced else order_type(raw),
            amount=opt_num(raw.get("amount")),
            filled=opt_num(raw.get("filled")),
            price=opt_num(raw.get("price")),
            average=opt_num(raw.get("average")),
            trigger_price=opt_num(raw.get("triggerPrice")) or opt_num(raw.get("stopPrice")),
            trailing_percent=opt_num(raw.get("trailingPercent")),
            reduce_only=_bool(raw.get("reduceOnly")),
            post_only=_bool(raw.get("postOnly")),
            time_in_force=_str(raw.get("timeInForce")),
            position_side=POSITION_SIDES.get(side_name) if side_name else None,
            timestamp=_int(raw.get("timestamp")),
            updated=_int(raw.get("lastUpdateTimestamp")) or _int(raw.get("lastTradeTimestamp")),
            conditional=d.is_algo_record(raw),
            trigger_phase=PHASES.get(phase) if phase else None,
            triggered_order_id=d.triggered_order_id(raw),
            forced_close="adl" if forced == "adl" else "liquidation" if forced else None,
            reason=d.reject_reason(info),
            fills=fills,
            stamp=d.stamp_of(raw),
            cost=opt_num(raw.get("cost")),
        )

    def orders(self, raws: object) -> list[OrderReport]:
        return [self.order(r) for r in raws if isinstance(r, dict)] if isinstance(raws, list) else []

    def fills(self, raws: object) -> list[FillReport]:
        return [self.fill(r) for r in raws if isinstance(r, dict)] if isinstance(raws, list) else []

    # ------------------------------------------------------------------ account
    def balance(self, raw: Json, market_type: MarketType, complete: bool) -> BalanceReport:
        """A ccxt balance. ``complete``: a REST snapshot (a currency it does not list is zero); else a stream update,
        which lists only the currencies its message carried (ccxt's balance is its whole cache).

        Futures keep one meaning whatever the source: ``total`` is the wallet balance (ccxt's REST total is the
        margin balance), ``available`` the margin new orders may use when the answer says it (a stream update
        carries only the wallet)."""
        d = self.dialect
        stamp = None if complete else d.stamp_of(raw)
        assets: dict[str, AssetBalance] | None = d.futures_balances(raw) if market_type == "swap" else None
        if assets is None:
            assets = {}
            for cur, entry in raw.items():
                if cur in NOT_CURRENCIES or not isinstance(entry, dict) or entry.get("total") is None:
                    continue
                free, used, total = opt_num(entry.get("free")) or 0.0, opt_num(entry.get("used")) or 0.0, opt_num(entry["total"]) or 0.0
                # a futures account answered in ccxt's terms only (paper): free is the margin new orders may use
                assets[cur] = AssetBalance(free, used, total, free if market_type == "swap" else None)
        if stamp is not None and stamp.assets is not None:
            assets = {cur: a for cur, a in assets.items() if cur in stamp.assets}
        return BalanceReport(
            market_type=market_type,
            assets=assets,
            complete=complete,
            time_ms=d.snapshot_time(raw) if complete else (stamp.ms if stamp is not None else None),
            funding=d.reports_funding(raw),
            stamp=stamp,
        )

    def position(self, raw: Json) -> PositionReport:
        """A ccxt position (REST ``positionRisk``/``account``, or a user-stream ``ACCOUNT_UPDATE`` row)."""
        d = self.dialect
        info = raw.get("info")
        named = POSITION_SIDES.get(d.position_side(info) or "")
        hedged = named in (PositionSide.LONG, PositionSide.SHORT) or raw.get("hedged") is True
        side = CCXT_POSITION_SIDES.get(raw.get("side"))
        if side is None:  # ccxt reads the side from the size's sign: a flat row has none; a hedge side's row names its own
            side = named if named in (PositionSide.LONG, PositionSide.SHORT) else PositionSide.BOTH
        mode = raw.get("marginMode")
        return PositionReport(
            symbol=_str(raw.get("symbol")) or "",
            side=side,
            contracts=abs(opt_num(raw.get("contracts")) or 0.0),
            entry_price=opt_num(raw.get("entryPrice")),
            mark_price=opt_num(raw.get("markPrice")),
            unrealized_pnl=opt_num(raw.get("unrealizedPnl")),
            leverage=opt_num(raw.get("leverage")),
            margin_mode="cross" if mode == "cross" else "isolated" if mode == "isolated" else None,
            initial_margin=opt_num(raw.get("initialMargin")),
            isolated_wallet=opt_num(raw.get("collateral")) if mode == "isolated" else None,
            liquidation_price=opt_num(raw.get("liquidationPrice")),
            hedged=hedged,
            time_ms=d.position_time(raw),
            stamp=d.stamp_of(raw),
        )

    def positions(self, raws: object) -> list[PositionReport]:
        return [self.position(r) for r in raws if isinstance(r, dict)] if isinstance(raws, list) else []

    # ------------------------------------------------------------------ market data and income
    @staticmethod
    def ticker(raw: Json, symbol: str | None = None) -> Ticker:
        return Ticker(
            symbol=_str(raw.get("symbol")) or symbol or "",
            last=opt_num(raw.get("last")),
            bid=opt_num(raw.get("bid")),
            ask=opt_num(raw.get("ask")),
            timestamp=_int(raw.get("timestamp")),
        )

    def tickers(self, raws: object) -> dict[str, Ticker]:
        if not isinstance(raws, Mapping):
            return {}
        return {str(sym): self.ticker(t, str(sym)) for sym, t in raws.items() if isinstance(t, dict)}

    def funding(self, raw: Json) -> FundingPayment:
        """A ccxt funding history row (Binance's income history, ``FUNDING_FEE``; Bybit's ``Funding`` executions):
        ``amount`` is what the account received (< 0: paid), read by the dialect."""
        return FundingPayment(
            symbol=_str(raw.get("symbol")),
            amount=self.dialect.funding_received(raw) or 0.0,
            currency=_str(raw.get("code")),
            timestamp=_int(raw.get("timestamp")) or 0,
            id=_str(raw.get("id")),
        )
