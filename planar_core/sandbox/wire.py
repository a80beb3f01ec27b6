"""Binance JSON shapes for orders, fills, balances and positions (REST and streams)."""

from __future__ import annotations

from decimal import Decimal

from .accounts import Account, AlgoOrder, Fill, SandboxOrder
from .exchange import BRACKETS, SandboxExchange
from .fmt import Z8, px, qx, s
from .market_data import MarketSpec
from .order_lists import OrderList

# Binance's USDⓈ-M account lists every margin asset, held or not (zero here: only USDT margin is modelled)
OTHER_MARGIN_ASSETS = ("BTC", "ETH", "BNB", "USDC", "FDUSD")


def _spot_core(o: SandboxOrder) -> dict:
    """The fields every spot order answer carries, and Binance's "conditional fields in order responses" when they
    apply: stopPrice for the stop and take-profit types, icebergQty when one was sent, trailingDelta/trailingTime for
    trailing stops."""
    out: dict[str, object] = {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": o.order_list_id if o.order_list_id > 0 else -1,
        "clientOrderId": o.client_id,
        "price": s(o.price),
        "origQty": s(o.qty),
        "executedQty": s(o.filled),
        "origQuoteOrderQty": s(o.quote_qty) if o.quote_qty else Z8,
        "cummulativeQuoteQty": s(o.cum_quote),
        "status": o.status,
        "timeInForce": o.time_in_force,
        "type": o.type,
        "side": o.side,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }
    if o.stop_price:
        out["stopPrice"] = s(o.stop_price)
    if o.iceberg_qty:
        out["icebergQty"] = s(o.iceberg_qty)
    if o.trailing_delta:
        out["trailingDelta"] = o.trailing_delta
        out["trailingTime"] = o.trail_ms or -1  # -1 until the trailing stop is active and tracking
    out.update(_tags(o, "strategyId", "strategyType", "expiryReason"))
    return out


def _tags(o: SandboxOrder, strategy_id: str, strategy_type: str, expiry: str) -> dict[str, object]:
    """The fields an order carries only when they apply, under the names of the shape being built: its strategy id
    and type when they were sent, its expiry reason when it expired."""
    out: dict[str, object] = {}
    if o.strategy_id is not None:
        out[strategy_id] = o.strategy_id
    if o.strategy_type is not None:
        out[strategy_type] = o.strategy_type
    if o.status == "EXPIRED" and o.expiry_reason:
        out[expiry] = o.expiry_reason
    return out


def spot_order(o: SandboxOrder) -> dict:
    """``GET /api/v3/order``, ``openOrders``, ``allOrders``."""
    return {**_spot_core(o), "time": o.created_ms, "updateTime": o.updated_ms, "isWorking": o.working, "workingTime": o.working_ms}


def spot_order_result(o: SandboxOrder, fills: list[Fill], answer: str = "FULL") -> dict:
    """``POST /api/v3/order`` in the format ``newOrderRespType`` asked (spot_params.response_type): ACK the ids and
    the time; RESULT the order (no time/updateTime/isWorking); FULL that and the fills it made at once."""
    if answer == "ACK":
        return {
            "symbol": o.symbol,
            "orderId": o.order_id,
            "orderListId": o.order_list_id if o.order_list_id > 0 else -1,
            "clientOrderId": o.client_id,
            "transactTime": o.updated_ms,
        }
    out = {**_spot_core(o), "transactTime": o.updated_ms, "workingTime": o.working_ms}
    if answer == "FULL":
        out["fills"] = [
            {
                "price": s(f.price),
                "qty": s(f.qty),
                "commission": s(f.commission),
                "commissionAsset": f.commission_asset,
                "tradeId": f.trade_id,
            }
            for f in fills
        ]
    return out


def spot_cancel(o: SandboxOrder, client_id: str) -> dict:
    """``DELETE /api/v3/order``: the cancel request's own client id, the order's as ``origClientOrderId``."""
    return {**_spot_core(o), "origClientOrderId": o.client_id, "clientOrderId": client_id, "transactTime": o.updated_ms}


def futures_order(o: SandboxOrder, spec: MarketSpec) -> dict:
    return {
        "orderId": o.order_id,
        "symbol": o.symbol,
        "status": o.status,
        "clientOrderId": o.client_id,
        "price": px(spec, o.price),
        "avgPrice": s(o.avg_price),
        "origQty": qx(spec, o.qty),
        "executedQty": qx(spec, o.filled),
        "cumQty": qx(spec, o.filled),
        "cumQuote": s(o.cum_quote),
        "timeInForce": o.time_in_force,
        "type": o.type,
        "reduceOnly": o.reduce_only,
        "closePosition": False,
        "side": o.side,
        "positionSide": o.position_side,
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": o.type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "time": o.created_ms,
        "updateTime": o.updated_ms,
    }


def spot_trade(f: Fill) -> dict:
    return {
        "symbol": f.symbol,
        "id": f.trade_id,
        "orderId": f.order_id,
        "orderListId": -1,
        "price": s(f.price),
        "qty": s(f.qty),
        "quoteQty": s(f.quote_qty),
        "commission": s(f.commission),
        "commissionAsset": f.commission_asset,
        "time": f.time_ms,
        "isBuyer": f.side == "BUY",
        "isMaker": f.is_maker,
        "isBestMatch": True,
    }


def futures_trade(f: Fill, spec: MarketSpec, position_side: str = "BOTH") -> dict:
    """``/fapi/v1/userTrades``' row of one fill; ``position_side``: its order's (LONG / SHORT in hedge mode)."""
    return {
        "symbol": f.symbol,
        "id": f.trade_id,
        "orderId": f.order_id,
        "side": f.side,
        "price": px(spec, f.price),
        "qty": qx(spec, f.qty),
        "realizedPnl": s(f.realized_pnl),
        "quoteQty": s(f.quote_qty),
        "commission": s(f.commission),
        "commissionAsset": f.commission_asset,
        "time": f.time_ms,
        "positionSide": position_side,
        "buyer": f.side == "BUY",
        "maker": f.is_maker,
    }


def spot_account(acct: Account, now: int) -> dict:
    return {
        "makerCommission": 10,
        "takerCommission": 10,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0", "seller": "0"},
        "canTrade": True,
        "canWithdraw": acct.can_withdraw,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": now,
        "accountType": "SPOT",
        "balances": [{"asset": a, "free": s(b[0]), "locked": s(b[1])} for a, b in sorted(acct.spot.items())],
        "permissions": ["SPOT"],
        "uid": abs(hash(acct.api_key)) % 10**9,
    }


def sides(acct: Account) -> tuple[str, ...]:
    """The position sides an account reports per symbol: BOTH in one-way mode, LONG and SHORT in hedge mode."""
    return ("LONG", "SHORT") if acct.hedge_mode else ("BOTH",)


def position_row(ex: SandboxExchange, acct: Account, symbol: str, side: str, version: str) -> dict:
    """One row of ``positionRisk``: v2 lists leverage and margin type, v3 the margins and ``marginAsset``."""
    pos = ex.position(acct, symbol, side)
    spec = ex.markets[("linear", symbol)].spec
    mark = ex.mark(symbol)
    lev = ex.leverage_of(acct, symbol)
    notional = pos.amount * mark
    upnl = ex.unrealized(symbol, pos)
    im = abs(notional) / lev
    isolated = ex.isolated(acct, symbol)
    row = {
        "symbol": symbol,
        "positionSide": side,
        "positionAmt": qx(spec, pos.amount),
        "entryPrice": s(pos.entry_price),
        "breakEvenPrice": s(pos.entry_price),
        "markPrice": s(mark),
        "unRealizedProfit": s(upnl),
        "liquidationPrice": px(spec, ex.liquidation_price(acct, symbol, pos)),
        "isolatedMargin": s(pos.isolated_wallet + upnl if isolated and pos.amount else Decimal(0)),
        "notional": s(notional),
        "isolatedWallet": s(pos.isolated_wallet),
        "updateTime": pos.updated_ms,
    }
    if version == "v2":
        return {
            **row,
            "leverage": str(lev),
            "maxNotionalValue": str(max_notional(lev)),
            "marginType": "isolated" if isolated else "cross",
            "isAutoAddMargin": "false",
        }
    order_im = sum(
        (o.remaining * o.price / lev for o in acct.open_orders("linear", symbol) if not o.reduce_only and o.position_side == side),
        Decimal(0),
    )
    return {
        **row,
        "marginAsset": "USDT",
        "initialMargin": s(im + order_im),
        "maintMargin": s(ex.maint_margin(symbol, pos)),
        "positionInitialMargin": s(im),
        "openOrderInitialMargin": s(order_im),
        "adl": 0,
        "bidNotional": "0",
        "askNotional": "0",
    }


def max_notional(leverage: int) -> int:
    """The largest position notional ``leverage`` allows (the cap of the last bracket still allowing it)."""
    return max((cap for _, cap, _, _, max_lev in BRACKETS if max_lev >= leverage), default=BRACKETS[0][1])


def futures_positions(ex: SandboxExchange, acct: Account, symbol: str | None, version: str) -> list[dict]:
    """``positionRisk``: v2 answers every symbol, v3 only those with a position or an open order (as Binance)."""
    rows = []
    for kind, sym in ex.markets:
        if kind != "linear" or (symbol and sym != symbol):
            continue
        for side in sides(acct):
            if version == "v3" and not ex.position(acct, sym, side).amount and not acct.open_orders("linear", sym):
                continue
            rows.append(position_row(ex, acct, sym, side, version))
    return rows


def futures_account(ex: SandboxExchange, acct: Account, now: int, version: str) -> dict:
    """``/fapi/v2/account`` and ``/fapi/v3/account``; their totals are the sums of their own positions."""
    mg = ex.futures_margins(acct)
    wallet, upnl, avail = mg["wallet"], mg["upnl"], mg["available"]
    im = mg["position_im"] + mg["order_im"]
    asset = {
        "asset": "USDT",
        "walletBalance": s(wallet),
        "unrealizedProfit": s(upnl),
        "marginBalance": s(wallet + upnl),
        "maintMargin": s(mg["maint"]),
        "initialMargin": s(im),
        "positionInitialMargin": s(mg["position_im"]),
        "openOrderInitialMargin": s(mg["order_im"]),
        "crossWalletBalance": s(ex.cross_wallet(acct)),
        "crossUnPnl": s(upnl),
        "availableBalance": s(avail),
        "maxWithdrawAmount": s(max(avail, Decimal(0))),
        "marginAvailable": True,
        "updateTime": now,
    }
    others = [{**dict.fromkeys(asset, Z8), "asset": a, "marginAvailable": True, "updateTime": 0} for a in OTHER_MARGIN_ASSETS]
    positions = []
    for (sym, side), pos in sorted(acct.positions.items()):
        if version == "v3" and not pos.amount:
            continue
        spec = ex.markets[("linear", sym)].spec
        lev = ex.leverage_of(acct, sym)
        notional = pos.amount * ex.mark(sym)
        row = {
            "symbol": sym,
            "positionSide": side,
            "positionAmt": qx(spec, pos.amount),
            "unrealizedProfit": s(ex.unrealized(sym, pos)),
            "initialMargin": s(abs(notional) / lev),
            "maintMargin": s(ex.maint_margin(sym, pos)),
            "updateTime": pos.updated_ms,
        }
        if version == "v3":
            row.update({"isolatedMargin": s(pos.isolated_wallet), "notional": s(notional), "isolatedWallet": s(pos.isolated_wallet)})
        else:
            row.update(
                {
                    "positionInitialMargin": s(abs(notional) / lev),
                    "openOrderInitialMargin": Z8,
                    "leverage": str(lev),
                    "isolated": ex.isolated(acct, sym),
                    "entryPrice": s(pos.entry_price),
                    "maxNotional": str(max_notional(lev)),
                    "bidNotional": "0",
                    "askNotional": "0",
                }
            )
        positions.append(row)
    if version == "v3":  # the v3 assets carry no marginAvailable
        asset.pop("marginAvailable")
        for row in others:
            row.pop("marginAvailable")
    out: dict[str, object] = {
        "totalInitialMargin": s(im),
        "totalMaintMargin": s(mg["maint"]),
        "totalWalletBalance": s(wallet),
        "totalUnrealizedProfit": s(upnl),
        "totalMarginBalance": s(wallet + upnl),
        "totalPositionInitialMargin": s(mg["position_im"]),
        "totalOpenOrderInitialMargin": s(mg["order_im"]),
        "totalCrossWalletBalance": s(ex.cross_wallet(acct)),
        "totalCrossUnPnl": s(upnl),
        "availableBalance": s(avail),
        "maxWithdrawAmount": s(max(avail, Decimal(0))),
        "assets": [asset, *others],
        "positions": positions,
    }
    if version == "v2":
        out = {
            "feeTier": 0,
            "feeBurn": False,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": acct.can_withdraw,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
            **out,
        }
    return out


def futures_balance(ex: SandboxExchange, acct: Account, now: int) -> list[dict]:
    mg = ex.futures_margins(acct)
    usdt = {
        "accountAlias": "sandbox",
        "asset": "USDT",
        "balance": s(mg["wallet"]),
        "crossWalletBalance": s(mg["wallet"]),
        "crossUnPnl": s(mg["upnl"]),
        "availableBalance": s(mg["available"]),
        "maxWithdrawAmount": s(max(mg["available"], Decimal(0))),
        "marginAvailable": True,
        "updateTime": now,
    }
    return [
        usdt,
        *(
            {**dict.fromkeys(usdt, "0"), "accountAlias": "sandbox", "asset": a, "marginAvailable": True, "updateTime": 0}
            for a in OTHER_MARGIN_ASSETS
        ),
    ]


def execution_report(o: SandboxOrder, exec_type: str, f: Fill | None, now: int) -> dict:
    """Spot user-stream ``executionReport``, with Binance's conditional fields when they apply (user-data-stream.md):
    ``d``/``D`` for trailing stops, ``j``/``J`` when a strategy id/type was sent, ``W`` once the order works on the
    book, ``eR`` when it expired. On a cancel, ``c`` is the cancel request's own client id and ``C`` the order's."""
    cancelled = exec_type == "CANCELED"
    out: dict[str, object] = {
        "e": "executionReport",
        "E": now,
        "s": o.symbol,
        "c": (o.cancel_id or o.client_id) if cancelled else o.client_id,
        "S": o.side,
        "o": o.type,
        "f": o.time_in_force,
        "q": s(o.qty),
        "p": s(o.price),
        "P": s(o.stop_price),
        "F": s(o.iceberg_qty),
        "g": o.order_list_id if o.order_list_id > 0 else -1,
        "C": o.client_id if cancelled else "",
        "x": exec_type,
        "X": o.status,
        "r": "NONE",
        "i": o.order_id,
        "l": s(f.qty) if f else Z8,
        "z": s(o.filled),
        "L": s(f.price) if f else Z8,
        "n": s(f.commission) if f else "0",
        "N": f.commission_asset if f else None,
        "T": f.time_ms if f else o.updated_ms,
        "t": f.trade_id if f else -1,
        "I": o.order_id,
        "w": o.working and o.is_open,
        "m": f.is_maker if f else False,
        "M": False,
        "O": o.created_ms,
        "Z": s(o.cum_quote),
        "Y": s(f.quote_qty) if f else Z8,
        "Q": s(o.quote_qty) if o.quote_qty else Z8,
        "V": "EXPIRE_MAKER",
    }
    if o.working_ms >= 0:
        out["W"] = o.working_ms
    if o.trailing_delta:
        out["d"] = o.trailing_delta
        if o.trail_ms:
            out["D"] = o.trail_ms
    out.update(_tags(o, "j", "J", "eR"))
    return out


def order_trade_update(o: SandboxOrder, spec: MarketSpec, exec_type: str, f: Fill | None, now: int) -> dict:
    """Futures user-stream ``ORDER_TRADE_UPDATE``."""
    zero = Decimal(0)
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": now,
        "T": now,
        "o": {
            "s": o.symbol,
            "c": o.client_id,
            "S": o.side,
            "o": o.type,
            "f": o.time_in_force,
            "q": qx(spec, o.qty),
            "p": px(spec, o.price),
            "ap": s(o.avg_price),
            "sp": px(spec, zero),
            "x": exec_type,
            "X": o.status,
            "i": o.order_id,
            "l": qx(spec, f.qty if f else zero),
            "z": qx(spec, o.filled),
            "L": px(spec, f.price if f else zero),
            "N": f.commission_asset if f else "USDT",
            "n": s(f.commission if f else zero),
            "T": f.time_ms if f else o.updated_ms,
            "t": f.trade_id if f else 0,
            "b": "0",
            "a": "0",
            "m": f.is_maker if f else False,
            "R": o.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": o.type,
            "ps": o.position_side,
            "cp": False,
            "rp": s(f.realized_pnl if f else zero),
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_MAKER",
            "pm": "NONE",
            "gtd": 0,
            "er": "0",
        },
    }


def outbound_account_position(acct: Account, assets: list[str], now: int) -> dict:
    return {
        "e": "outboundAccountPosition",
        "E": now,
        "u": now,
        "B": [{"a": a, "f": s(acct.balance(a)[0]), "l": s(acct.balance(a)[1])} for a in assets],
    }


def account_update(ex: SandboxExchange, acct: Account, symbol: str, now: int, reason: str = "ORDER") -> dict:
    """Futures user-stream ``ACCOUNT_UPDATE``: the wallet and the positions of ``symbol`` (both sides in hedge mode).
    A funding fee on a cross position carries the balance only; on an isolated one, the balance and the positions it
    was paid on (Binance's "Event: Balance and Position Update")."""
    spec = ex.markets[("linear", symbol)].spec
    rows = []
    for side in sides(acct):
        pos = ex.position(acct, symbol, side)
        if reason == "FUNDING_FEE" and (not ex.isolated(acct, symbol) or not pos.amount):
            continue
        rows.append(
            {
                "s": symbol,
                "pa": qx(spec, pos.amount),
                "ep": s(pos.entry_price),
                "bep": s(pos.entry_price),
                "cr": s(pos.realized),
                "up": s(ex.unrealized(symbol, pos)),
                "mt": "isolated" if ex.isolated(acct, symbol) else "cross",
                "iw": s(pos.isolated_wallet),
                "ps": side,
            }
        )
    wallet = ex.futures_margins(acct)["wallet"]
    update: dict[str, object] = {"m": reason, "B": [{"a": "USDT", "wb": s(wallet), "cw": s(ex.cross_wallet(acct)), "bc": "0"}], "P": rows}
    return {"e": "ACCOUNT_UPDATE", "E": now, "T": now, "a": update}


def algo_order(a: AlgoOrder, spec: MarketSpec, fills: list[Fill] | None = None, query: bool = True) -> dict:
    """An order of the Algo Service: the answer of ``POST /fapi/v1/algoOrder`` (``query`` False) or of its queries
    (``GET algoOrder``, ``openAlgoOrders``, ``allAlgoOrders``: with the order the trigger placed)."""
    out: dict[str, object] = {
        "algoId": a.algo_id,
        "clientAlgoId": a.client_algo_id,
        "algoType": "CONDITIONAL",
        "orderType": a.type,
        "symbol": a.symbol,
        "side": a.side,
        "positionSide": a.position_side,
        "timeInForce": a.time_in_force,
        "quantity": qx(spec, a.qty),
        "algoStatus": a.status,
        "triggerPrice": px(spec, a.trigger_price),
        "price": px(spec, a.price),
        "icebergQuantity": None,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": a.working_type,
        "priceMatch": "NONE",
        "closePosition": a.close_position,
        "priceProtect": a.price_protect,
        "reduceOnly": a.reduce_only,
        "createTime": a.created_ms,
        "updateTime": a.updated_ms,
        "triggerTime": a.trigger_ms,
        "goodTillDate": 0,
    }
    if a.callback_rate:  # trailing stops only
        out.update(activatePrice=px(spec, a.trigger_price), callbackRate=str(a.callback_rate))
    if query:
        done = [f for f in fills or [] if a.actual_order_id and f.order_id == a.actual_order_id]
        qty = sum((f.qty for f in done), Decimal(0))
        avg = sum((f.price * f.qty for f in done), Decimal(0)) / qty if qty else Decimal(0)
        out.update(
            actualOrderId=str(a.actual_order_id) if a.actual_order_id else "",
            actualPrice=s(avg),
            actualType=("LIMIT" if a.price else "MARKET") if a.actual_order_id else "",
            actualQty=qx(spec, qty),
            tpOrderType="",
        )
    return out


def algo_update(a: AlgoOrder, spec: MarketSpec, actual: SandboxOrder | None, now: int) -> dict:
    """Futures user-stream ``ALGO_UPDATE``: the algo order's status; once triggered, its order in the matching engine."""
    return {
        "e": "ALGO_UPDATE",
        "T": now,
        "E": now,
        "o": {
            "caid": a.client_algo_id,
            "aid": a.algo_id,
            "at": "CONDITIONAL",
            "o": a.type,
            "s": a.symbol,
            "S": a.side,
            "ps": a.position_side,
            "f": a.time_in_force,
            "q": qx(spec, a.qty),
            "X": a.status,
            "ai": str(actual.order_id) if actual else "",
            "ap": s(actual.avg_price) if actual else s(Decimal(0)),
            "aq": qx(spec, actual.filled) if actual else qx(spec, Decimal(0)),
            "act": actual.type if actual else "0",
            "tp": px(spec, a.trigger_price),
            "p": px(spec, a.price),
            "V": "EXPIRE_MAKER",
            "wt": a.working_type,
            "pm": "NONE",
            "cp": a.close_position,
            "pP": a.price_protect,
            "R": a.reduce_only,
            "tt": a.trigger_ms,
            "gtd": 0,
            "rm": a.reason,
            "ia": bool(a.trail_ref),
        },
    }


def order_list(olist: OrderList, orders: list[SandboxOrder], reports: str = "") -> dict:
    """An OCO list: its status and legs, with ``orderReports`` (each leg's order) when it was just ``placed`` or
    ``cancelled``."""
    out: dict[str, object] = {
        "orderListId": olist.list_id,
        "contingencyType": "OCO",
        "listStatusType": olist.status_type,
        "listOrderStatus": olist.status,
        "listClientOrderId": olist.client_id,
        "transactionTime": olist.updated_ms,
        "symbol": olist.symbol,
        "orders": [{"symbol": o.symbol, "orderId": o.order_id, "clientOrderId": o.client_id} for o in orders],
    }
    if reports == "placed":
        out["orderReports"] = [{**_spot_core(o), "transactTime": o.updated_ms, "workingTime": o.working_ms} for o in orders]
    elif reports == "cancelled":
        out["orderReports"] = [
            {k: v for k, v in spot_cancel(o, o.cancel_id or o.client_id).items() if k != "selfTradePreventionMode"} for o in orders
        ]
    return out


def list_status(olist: OrderList, orders: list[SandboxOrder], now: int) -> dict:
    """Spot user-stream ``listStatus``."""
    return {
        "e": "listStatus",
        "E": now,
        "s": olist.symbol,
        "g": olist.list_id,
        "c": "OCO",
        "l": olist.status_type,
        "L": olist.status,
        "r": "NONE",
        "C": olist.client_id,
        "T": olist.updated_ms,
        "O": [{"s": o.symbol, "i": o.order_id, "c": o.client_id} for o in orders],
    }


def margin_call(ex: SandboxExchange, acct: Account, positions: list[tuple[str, str]], now: int) -> dict:
    """Futures user-stream ``MARGIN_CALL``: the cross wallet and the positions at risk."""
    rows = []
    for symbol, side in positions:
        pos = ex.position(acct, symbol, side)
        spec = ex.markets[("linear", symbol)].spec
        rows.append(
            {
                "s": symbol,
                "ps": side,
                "pa": qx(spec, pos.amount),
                "mt": "ISOLATED" if ex.isolated(acct, symbol) else "CROSSED",
                "iw": s(pos.isolated_wallet),
                "mp": s(ex.mark(symbol)),
                "up": s(ex.unrealized(symbol, pos)),
                "mm": s(ex.maint_margin(symbol, pos)),
            }
        )
    return {"e": "MARGIN_CALL", "E": now, "cw": s(ex.cross_wallet(acct)), "p": rows}
