"""Bybit v5's answer shapes, built from the core's markets, orders, fills and accounts.

Numbers are strings, as Bybit prints them: prices with the market's tick decimals (``"60012.30"``), quantities with
its step decimals, money (balances, fees, PnL) without padding. Timestamps inside ``result`` are strings of
milliseconds (``"1672712468011"``); the envelope's ``time`` is an integer.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..accounts import ZERO, Account, Fill, SandboxOrder
from ..exchange import Market, SandboxExchange
from ..futures import Income
from ..market_data import MarketSpec

Json = dict[str, object]
STATUS = {"NEW": "New", "PARTIALLY_FILLED": "PartiallyFilled", "FILLED": "Filled", "REJECTED": "Rejected"}
SIDE = {"BUY": "Buy", "SELL": "Sell"}
POSITION_IDX = {"BOTH": 0, "LONG": 1, "SHORT": 2}

# Bybit's kline intervals (REST ``interval``, the ``kline.<interval>.<symbol>`` topic) -> their length in ms
KLINE_MS = {
    "1": 60_000,
    "3": 180_000,
    "5": 300_000,
    "15": 900_000,
    "30": 1_800_000,
    "60": 3_600_000,
    "120": 7_200_000,
    "240": 14_400_000,
    "360": 21_600_000,
    "720": 43_200_000,
    "D": 86_400_000,
    "W": 604_800_000,
}


def envelope(result: object, now: int) -> Json:
    return {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": now}


@dataclass(frozen=True)
class Success:
    """A handler's answer whose ``retMsg`` is ``"success"``, as some of Bybit's endpoints say (the DCP ones); ``bare``:
    ``{"retCode": 0, "retMsg": "success"}`` alone, as Bybit's example of set-DCP shows it."""

    result: object = None
    bare: bool = False


def money(d: Decimal) -> str:
    """An amount without padding or exponent (``"10000"``, ``"0.0006"``)."""
    out = format(d.normalize(), "f") if d else "0"
    return out


def price(spec: MarketSpec, d: Decimal) -> str:
    return f"{d:.{spec.price_precision}f}"


def qty(spec: MarketSpec, d: Decimal) -> str:
    return f"{d:.{spec.qty_precision}f}"


def fprice(m: Market, value: float) -> str:
    return price(m.spec, Decimal(repr(value)).quantize(m.spec.tick_size))


MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def name(spec: MarketSpec) -> str:
    """Bybit's name of a market: the core's, except a delivery contract: ``BTCUSDT_251226`` is ``BTCUSDT-26DEC25``."""
    if spec.contract_type == "PERPETUAL" or "_" not in spec.symbol:
        return spec.symbol
    pair, _, day = spec.symbol.partition("_")
    return f"{pair}-{day[4:6]}{MONTHS[int(day[2:4]) - 1]}{day[:2]}"


def is_future(spec: MarketSpec) -> bool:
    return spec.kind == "linear" and spec.contract_type != "PERPETUAL"


# ----------------------------------------------------------------- market data
def instrument(ex: SandboxExchange, m: Market) -> Json:
    spec = m.spec
    if spec.kind == "spot":
        return {
            "symbol": spec.symbol,
            "baseCoin": spec.base,
            "quoteCoin": spec.quote,
            "innovation": "0",
            "status": "Trading",
            "marginTrading": "none",
            "stTag": "0",
            "lotSizeFilter": {
                "basePrecision": money(spec.step_size),
                "quotePrecision": "0.00000001",
                "minOrderQty": money(spec.min_qty),
                "maxOrderQty": money(spec.max_qty),
                "minOrderAmt": money(spec.min_notional),
                "maxOrderAmt": "2000000",
            },
            "priceFilter": {"tickSize": money(spec.tick_size)},
            "riskParameters": {"priceLimitRatioX": "0.8", "priceLimitRatioY": "4"},
        }
    return {
        "symbol": name(spec),
        "contractType": "LinearFutures" if is_future(spec) else "LinearPerpetual",
        "status": "Trading",
        "baseCoin": spec.base,
        "quoteCoin": spec.quote,
        "launchTime": "1585526400000",
        "deliveryTime": str(spec.delivery_ms) if is_future(spec) else "0",
        "deliveryFeeRate": "",
        "priceScale": str(spec.price_precision),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "125.00", "leverageStep": "1"},
        "priceFilter": {
            "minPrice": price(spec, m.bounds.min_price),
            "maxPrice": price(spec, m.bounds.max_price),
            "tickSize": money(spec.tick_size),
        },
        "lotSizeFilter": {
            "maxOrderQty": qty(spec, spec.max_qty),
            "maxMktOrderQty": qty(spec, m.bounds.market_max_qty),
            "minOrderQty": qty(spec, spec.min_qty),
            "qtyStep": money(spec.step_size),
            "postOnlyMaxOrderQty": qty(spec, spec.max_qty),
            "minNotionalValue": money(spec.min_notional),
        },
        "unifiedMarginTrade": True,
        "fundingInterval": 0 if is_future(spec) else 480,
        "settleCoin": spec.quote,
        "copyTrading": "none",
        "upperFundingRate": "0.00375",
        "lowerFundingRate": "-0.00375",
        "isPreListing": False,
        "preListingInfo": None,
        "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.1"},
        "displayName": "",
    }


def ticker(ex: SandboxExchange, m: Market) -> Json:
    now = ex.now_ms()
    o, h, lo, c, v = ex.candle(m, now - 86_400_000, now)
    (bid, bq), (ask, aq) = ex.best_bid_ask(m)
    spec = m.spec
    row: Json = {
        "symbol": name(spec),
        "bid1Price": price(spec, bid),
        "bid1Size": qty(spec, bq),
        "ask1Price": price(spec, ask),
        "ask1Size": qty(spec, aq),
        "lastPrice": fprice(m, c),
        "prevPrice24h": fprice(m, o),
        "price24hPcnt": f"{c / o - 1:.4f}",
        "highPrice24h": fprice(m, h),
        "lowPrice24h": fprice(m, lo),
        "turnover24h": f"{v * c:.4f}",
        "volume24h": f"{v:.{spec.qty_precision}f}",
    }
    if spec.kind == "spot":
        row["usdIndexPrice"] = fprice(m, c)
        return row
    mark = ex.mark(spec.symbol)
    next_funding = now - now % 28_800_000 + 28_800_000
    row.update(
        {
            "indexPrice": fprice(m, c),
            "markPrice": price(spec, mark.quantize(spec.tick_size)),
            "prevPrice1h": fprice(m, ex.candle(m, now - 3_600_000, now - 3_599_000)[0]),
            "openInterest": "0",
            "openInterestValue": "0.00",
            "fundingRate": "0.0001",
            "nextFundingTime": str(next_funding),
            "predictedDeliveryPrice": "",
            "basisRate": "",
            "deliveryFeeRate": "",
            "deliveryTime": str(spec.delivery_ms) if is_future(spec) else "0",
            "basis": "",
            "preOpenPrice": "",
            "preQty": "",
            "curPreListingPhase": "",
            "fundingIntervalHour": "8",
            "fundingCap": "0.00375",
        }
    )
    return row


# ----------------------------------------------------------------- orders and fills
def order_fees(acct: Account, order: SandboxOrder) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for f in acct.fills:
        if f.order_id == order.order_id:
            out[f.commission_asset] = out.get(f.commission_asset, ZERO) + f.commission
    return out


def is_liquidation(o: SandboxOrder | None) -> bool:
    """The core's forced close of a position (its ``LIQUIDATION`` order)."""
    return o is not None and o.type == "LIQUIDATION"


def create_type(o: SandboxOrder | None) -> str:
    """Who made the order: the user, or, for the core's liquidation (the whole position closed by the liquidation
    engine, what is left of its margin to the insurance fund), Bybit's takeover ``CreateByTakeOver_PassThrough``.
    The core has no laddered liquidation (``CreateByLiq``) and no auto-deleveraging (``CreateByAdl_PassThrough``)."""
    return "CreateByTakeOver_PassThrough" if is_liquidation(o) else "CreateByUser"


def order_status(o: SandboxOrder) -> str:
    if o.status in ("CANCELED", "EXPIRED"):
        return "PartiallyFilledCanceled" if o.filled and o.kind == "spot" else "Cancelled"
    return STATUS.get(o.status, o.status.title())


def order(acct: Account, spec: MarketSpec, o: SandboxOrder, market_unit: str = "") -> Json:
    """A row of ``/v5/order/realtime`` and ``/v5/order/history``."""
    fees = order_fees(acct, o)
    fee_total = sum(fees.values(), ZERO)
    tif = "PostOnly" if o.type == "LIMIT_MAKER" or o.time_in_force == "GTX" else "IOC" if o.is_market else o.time_in_force
    row: Json = {
        "orderId": str(o.order_id),
        "orderLinkId": o.client_id,
        "blockTradeId": "",
        "symbol": name(spec),
        "price": price(spec, o.price) if o.price else "0",
        "qty": qty(spec, o.qty),
        "side": SIDE[o.side],
        "isLeverage": "0" if o.kind == "spot" else "",
        "positionIdx": POSITION_IDX.get(o.position_side, 0),
        "orderStatus": order_status(o),
        "cancelType": "CancelByUser" if o.status == "CANCELED" else "UNKNOWN",
        "rejectReason": "EC_NoError",
        "avgPrice": money(o.avg_price.quantize(Decimal("1e-8"))) if o.filled else ("" if o.kind == "spot" else "0"),
        "leavesQty": qty(spec, o.remaining if o.is_open else ZERO),
        "leavesValue": money((o.remaining * o.price).quantize(Decimal("1e-8"))) if o.is_open and o.price else "0",
        "cumExecQty": qty(spec, o.filled),
        "cumExecValue": money(o.cum_quote.quantize(Decimal("1e-8"))),
        "cumExecFee": money(fee_total),
        "cumFeeDetail": {a: money(v) for a, v in fees.items()},
        "timeInForce": tif,
        "orderType": "Market" if o.is_market else "Limit",
        "stopOrderType": "",
        "orderIv": "",
        "marketUnit": market_unit,
        "triggerPrice": "0",
        "takeProfit": "0",
        "stopLoss": "0",
        "tpslMode": "" if o.kind == "spot" else "UNKNOWN",
        "ocoTriggerBy": "",
        "tpLimitPrice": "0",
        "slLimitPrice": "0",
        "tpTriggerBy": "",
        "slTriggerBy": "",
        "triggerDirection": 0,
        "triggerBy": "",
        "lastPriceOnCreated": "",
        "reduceOnly": o.reduce_only,
        "closeOnTrigger": False,
        "placeType": "",
        "smpType": "None",
        "smpGroup": 0,
        "smpOrderId": "",
        "createdTime": str(o.created_ms),
        "updatedTime": str(o.updated_ms or o.created_ms),
    }
    if o.kind == "spot":  # Bybit's spot rows carry no tpslMode (ccxt tells spot from contract rows by it)
        del row["tpslMode"]
    else:  # createType is linear/inverse only; ocoTriggerBy is spot's (OCO), absent from Bybit's linear rows
        row["createType"] = create_type(o)
        del row["ocoTriggerBy"]
    return row


def history_row(row: Json, category: str) -> Json:
    """An order row as ``/v5/order/history`` shows it: with the market-order slippage settings (none taken by the
    sandbox: Bybit's defaults) and, linear, ``extraFees`` (Bybit's recorded linear history rows carry it, empty)."""
    row.update(slippageToleranceType="UNKNOWN", slippageTolerance="0")
    if category == "linear":
        row["extraFees"] = ""
    return row


def execution(spec: MarketSpec, f: Fill, o: SandboxOrder | None, mark: Decimal | None, market_unit: str = "") -> Json:
    """A row of ``/v5/execution/list``; ``market_unit``: the spot market order's ``marketUnit`` ("" otherwise), as
    Bybit's recorded rows show it. Spot rows carry no ``createType`` (Bybit: "Spot, Option do not have this key"); a
    liquidation's fill is a ``BustTrade`` (also the ``execution`` topic's row)."""
    fee_rate = f.commission / (f.qty if f.commission_asset == spec.base else f.price * f.qty) if f.qty else ZERO
    row: Json = {
        "symbol": name(spec),
        "orderId": str(f.order_id),
        "orderLinkId": f.client_id,
        "side": SIDE[f.side],
        "orderPrice": price(spec, o.price) if o is not None and o.price else "0",
        "orderQty": qty(spec, o.qty) if o is not None else qty(spec, f.qty),
        "leavesQty": qty(spec, o.remaining) if o is not None and o.is_open else qty(spec, ZERO),
        "createType": create_type(o),
        "orderType": "Market" if o is not None and o.is_market else "Limit",
        "stopOrderType": "",
        "execFee": money(f.commission),
        "feeCurrency": f.commission_asset,
        "execId": str(f.trade_id),
        "execPrice": price(spec, f.price),
        "execQty": qty(spec, f.qty),
        "execType": "BustTrade" if is_liquidation(o) else "Trade",
        "execValue": money((f.price * f.qty).quantize(Decimal("1e-8"))),
        "execTime": str(f.time_ms),
        "isMaker": f.is_maker,
        "feeRate": money(fee_rate.quantize(Decimal("1e-6"))),
        "tradeIv": "",
        "markIv": "",
        "markPrice": price(spec, mark.quantize(spec.tick_size)) if mark is not None else "",
        "indexPrice": "",
        "underlyingPrice": "",
        "blockTradeId": "",
        "closedSize": "",
        "marketUnit": market_unit,
        "seq": f.trade_id,
    }
    if spec.kind == "spot":
        del row["createType"]
    return row


def funding_execution(spec: MarketSpec, r: Income) -> Json:
    """A funding settlement as Bybit shows it: an execution with ``execType`` "Funding" (``/v5/execution/list`` and
    the ``execution`` topic), ``execFee`` what the account paid (negative: received), ``execId`` the settlement's
    id. The core keeps the payment only, so the position's size and the rate are not shown (``execQty`` and
    ``feeRate`` empty)."""
    return {
        "symbol": name(spec),
        "orderType": "UNKNOWN",
        "orderId": "",
        "orderLinkId": "",
        "stopOrderType": "UNKNOWN",
        "execTime": str(r.time_ms),
        "execType": "Funding",
        "execId": str(r.tran_id),
        "execFee": money(-r.amount),
        "feeCurrency": spec.quote,
        "feeRate": "",
        "execPrice": "",
        "execQty": "",
        "execValue": "",
        "markPrice": "",
        "indexPrice": "",
        "underlyingPrice": "",
        "side": "",
        "isMaker": False,
        "orderQty": "0",
        "orderPrice": "0",
        "leavesQty": "0",
        "closedSize": "0",
        "createType": "",
        "tradeIv": "",
        "markIv": "",
        "blockTradeId": "",
        "marketUnit": "",
        "seq": r.tran_id,
    }


# ----------------------------------------------------------------- positions and the unified account
def position(ex: SandboxExchange, acct: Account, symbol: str, side: str) -> Json:
    m = ex.markets[("linear", symbol)]
    spec = m.spec
    pos = ex.position(acct, symbol, side)
    mark = ex.mark(symbol)
    lev = ex.leverage_of(acct, symbol)
    size = abs(pos.amount)
    value = size * pos.entry_price
    im = size * mark / lev
    realized = sum((f.realized_pnl for f in acct.fills if f.kind == "linear" and f.symbol == symbol), ZERO)
    liq = ex.liquidation_price(acct, symbol, pos)
    return {
        "positionIdx": POSITION_IDX[side],
        "riskId": 1,
        "riskLimitValue": "2000000",
        "symbol": name(spec),
        "side": "" if not pos.amount else "Buy" if pos.amount > 0 else "Sell",
        "size": qty(spec, size),
        "avgPrice": money(pos.entry_price.quantize(Decimal("1e-8"))) if pos.amount else "0",
        "positionValue": money(value.quantize(Decimal("1e-8"))),
        "tradeMode": 1 if ex.isolated(acct, symbol) else 0,
        "autoAddMargin": 0,
        "positionStatus": "Normal",
        "leverage": str(lev),
        "markPrice": price(spec, mark.quantize(spec.tick_size)),
        "liqPrice": price(spec, liq.quantize(spec.tick_size)) if pos.amount and liq else "",
        "bustPrice": "",
        "positionIM": money(im.quantize(Decimal("1e-8"))),
        "positionMM": money(ex.maint_margin(symbol, pos).quantize(Decimal("1e-8"))),
        "positionBalance": money(pos.isolated_wallet.quantize(Decimal("1e-8")))
        if ex.isolated(acct, symbol)
        else money(im.quantize(Decimal("1e-8"))),
        "takeProfit": "0",
        "stopLoss": "0",
        "trailingStop": "0",
        "sessionAvgPrice": "",
        "delta": "",
        "gamma": "",
        "vega": "",
        "theta": "",
        "unrealisedPnl": money(ex.unrealized(symbol, pos).quantize(Decimal("1e-8"))),
        "curRealisedPnl": money(realized.quantize(Decimal("1e-8"))),
        "cumRealisedPnl": money(realized.quantize(Decimal("1e-8"))),
        "adlRankIndicator": 2 if pos.amount else 0,
        "createdTime": str(pos.updated_ms or ex.wall_anchor_ms),
        "updatedTime": str(pos.updated_ms or ex.wall_anchor_ms),
        "seq": pos.updated_ms,
        "isReduceOnly": False,
        "mmrSysUpdatedTime": "",
        "leverageSysUpdatedTime": "",
        "tpslMode": "Full",  # the only mode the sandbox takes (trading-stop, attached TP/SL)
    }


def unified_coins(ex: SandboxExchange, acct: Account, only: set[str] | None = None) -> list[Json]:
    """The coins of the unified account. The core keeps spot balances and a USDT futures wallet apart; the futures
    wallet starts funded with the account's USDT (``Account.futures_deposit``), so USDT's unified wallet balance is
    the spot USDT plus what futures trading has added or taken since (realized PnL, fees, funding). Positions' and
    open linear orders' initial margin are USDT's ``totalPositionIM`` / ``totalOrderIM``; spot locks its ``locked``."""
    mg = ex.futures_margins(acct)
    rows: list[Json] = []
    for coin in sorted(acct.spot):
        if only and coin not in only:
            continue
        free, locked = acct.spot[coin]
        wallet = free + locked
        upnl = pos_im = ord_im = maint = ZERO
        if coin == "USDT":
            wallet += acct.futures_wallet - acct.futures_deposit
            upnl, pos_im, ord_im, maint = mg["upnl"], mg["position_im"], mg["order_im"], mg["maint"]
        if not wallet and not locked and not (only and coin in only):
            continue
        wallet = wallet.quantize(Decimal("1e-8"))  # Bybit prints money with at most 8 decimals
        upnl = upnl.quantize(Decimal("1e-8"))
        realized = sum((f.realized_pnl for f in acct.fills if f.kind == "linear"), ZERO) if coin == "USDT" else ZERO
        rows.append(
            {
                "coin": coin,
                "equity": money(wallet + upnl),
                "usdValue": money(wallet + upnl) if coin in ("USDT", "USDC") else "",
                "walletBalance": money(wallet),
                "locked": money(locked),
                "spotHedgingQty": "0",
                "borrowAmount": "0",
                "availableToWithdraw": "",
                "availableToBorrow": "",
                "accruedInterest": "0",
                "totalOrderIM": money(ord_im.quantize(Decimal("1e-8"))),
                "totalPositionIM": money(pos_im.quantize(Decimal("1e-8"))),
                "totalPositionMM": money(maint.quantize(Decimal("1e-8"))),
                "unrealisedPnl": money(upnl.quantize(Decimal("1e-8"))),
                "cumRealisedPnl": money(realized.quantize(Decimal("1e-8"))),
                "bonus": "0",
                "marginCollateral": True,
                "collateralSwitch": True,
            }
        )
    return rows


def wallet_balance(ex: SandboxExchange, acct: Account, only: set[str] | None = None) -> Json:
    coins = unified_coins(ex, acct, only)
    mg = ex.futures_margins(acct)
    usdt = next((c for c in coins if c["coin"] == "USDT"), None)
    wallet = Decimal(str(usdt["walletBalance"])) if usdt else ZERO
    im = mg["position_im"] + mg["order_im"]
    equity = wallet + mg["upnl"]
    return {
        "list": [
            {
                "accountType": "UNIFIED",
                "accountIMRate": money((im / equity).quantize(Decimal("1e-4"))) if equity > 0 else "0",
                "accountMMRate": money((mg["maint"] / equity).quantize(Decimal("1e-4"))) if equity > 0 else "0",
                "accountLTV": "0",
                "totalEquity": money(equity.quantize(Decimal("1e-8"))),
                "totalWalletBalance": money(wallet.quantize(Decimal("1e-8"))),
                "totalMarginBalance": money(equity.quantize(Decimal("1e-8"))),
                "totalAvailableBalance": money((equity - im).quantize(Decimal("1e-8"))),
                "totalPerpUPL": money(mg["upnl"].quantize(Decimal("1e-8"))),
                "totalInitialMargin": money(im.quantize(Decimal("1e-8"))),
                "totalMaintenanceMargin": money(mg["maint"].quantize(Decimal("1e-8"))),
                "coin": coins,
            }
        ]
    }
