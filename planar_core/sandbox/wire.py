"""Binance JSON shapes for orders, fills, balances and positions (REST and streams)."""

from __future__ import annotations

from decimal import Decimal

from .accounts import Account, Fill, Position, SandboxOrder
from .exchange import SandboxExchange
from .market_data import MarketSpec


# Binance's USDⓈ-M account lists every margin asset, held or not (zero here: only USDT margin is modelled)
OTHER_MARGIN_ASSETS = ("BTC", "ETH", "BNB", "USDC", "FDUSD")
Z8 = "0.00000000"


def s(d: Decimal) -> str:
    """An amount of money (balances, fees, PnL, margins) and every spot number as Binance prints them: 8 decimals,
    always, so that two prices of one market have the same number of digits."""
    return f"{d:.8f}"


def px(spec: MarketSpec, d: Decimal) -> str:
    """A price of ``spec``'s market, padded to its fixed decimals (``MarketSpec.wire_price_places``)."""
    return f"{d:.{spec.wire_price_places}f}"


def qx(spec: MarketSpec, d: Decimal) -> str:
    """A quantity of ``spec``'s market, padded to its fixed decimals."""
    return f"{d:.{spec.wire_qty_places}f}"


def spot_order(o: SandboxOrder) -> dict:
    return {
        "symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_id,
        "price": s(o.price), "origQty": s(o.qty), "executedQty": s(o.filled), "cummulativeQuoteQty": s(o.cum_quote),
        "status": o.status, "timeInForce": o.time_in_force, "type": o.type, "side": o.side, "stopPrice": Z8,
        "icebergQty": Z8, "time": o.created_ms, "updateTime": o.updated_ms, "isWorking": o.is_open,
        "workingTime": o.created_ms, "origQuoteOrderQty": Z8, "selfTradePreventionMode": "NONE",
    }


def spot_order_result(o: SandboxOrder, fills: list[Fill]) -> dict:
    out = spot_order(o)
    out["transactTime"] = o.updated_ms
    out["fills"] = [{"price": s(f.price), "qty": s(f.qty), "commission": s(f.commission),
                     "commissionAsset": f.commission_asset, "tradeId": f.trade_id} for f in fills]
    return out


def futures_order(o: SandboxOrder, spec: MarketSpec) -> dict:
    return {
        "orderId": o.order_id, "symbol": o.symbol, "status": o.status, "clientOrderId": o.client_id,
        "price": px(spec, o.price), "avgPrice": px(spec, o.avg_price), "origQty": qx(spec, o.qty), "executedQty": qx(spec, o.filled),
        "cumQty": qx(spec, o.filled), "cumQuote": s(o.cum_quote), "timeInForce": o.time_in_force, "type": o.type,
        "reduceOnly": o.reduce_only, "closePosition": False, "side": o.side, "positionSide": "BOTH",
        "stopPrice": "0", "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": o.type,
        "priceMatch": "NONE", "selfTradePreventionMode": "NONE", "goodTillDate": 0,
        "time": o.created_ms, "updateTime": o.updated_ms,
    }


def spot_trade(f: Fill) -> dict:
    return {"symbol": f.symbol, "id": f.trade_id, "orderId": f.order_id, "orderListId": -1, "price": s(f.price),
            "qty": s(f.qty), "quoteQty": s(f.quote_qty), "commission": s(f.commission), "commissionAsset": f.commission_asset,
            "time": f.time_ms, "isBuyer": f.side == "BUY", "isMaker": f.is_maker, "isBestMatch": True}


def futures_trade(f: Fill, spec: MarketSpec) -> dict:
    return {"symbol": f.symbol, "id": f.trade_id, "orderId": f.order_id, "side": f.side, "price": px(spec, f.price),
            "qty": qx(spec, f.qty), "realizedPnl": s(f.realized_pnl), "quoteQty": s(f.quote_qty), "commission": s(f.commission),
            "commissionAsset": f.commission_asset, "time": f.time_ms, "positionSide": "BOTH", "buyer": f.side == "BUY",
            "maker": f.is_maker}


def spot_account(acct: Account, now: int) -> dict:
    return {
        "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0, "sellerCommission": 0,
        "commissionRates": {"maker": "0.00100000", "taker": "0.00100000", "buyer": "0", "seller": "0"},
        "canTrade": True, "canWithdraw": acct.can_withdraw, "canDeposit": True, "brokered": False,
        "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now, "accountType": "SPOT",
        "balances": [{"asset": a, "free": s(b[0]), "locked": s(b[1])} for a, b in sorted(acct.spot.items())],
        "permissions": ["SPOT"], "uid": abs(hash(acct.api_key)) % 10**9,
    }


def position_row(ex: SandboxExchange, acct: Account, symbol: str, pos: Position) -> dict:
    m = ex.markets[("linear", symbol)]
    spec = m.spec
    mark = Decimal(repr(ex.mid(m)))
    lev = ex.leverage_of(acct, symbol)
    notional = pos.amount * mark
    upnl = ex.unrealized(acct, symbol, pos)
    im = abs(notional) / lev
    return {
        "symbol": symbol, "positionSide": "BOTH", "positionAmt": qx(spec, pos.amount), "entryPrice": px(spec, pos.entry_price),
        "breakEvenPrice": px(spec, pos.entry_price), "markPrice": px(spec, mark), "unRealizedProfit": s(upnl), "unrealizedProfit": s(upnl),
        "liquidationPrice": "0", "leverage": str(lev), "maxNotionalValue": "1000000", "marginType": acct.margin_type.get(symbol, "cross"),
        "isolatedMargin": "0", "isAutoAddMargin": "false", "notional": s(notional), "isolatedWallet": "0",
        "initialMargin": s(im), "maintMargin": s(abs(notional) * Decimal("0.004")), "positionInitialMargin": s(im),
        "openOrderInitialMargin": "0", "adl": 0, "bidNotional": "0", "askNotional": "0", "updateTime": pos.updated_ms,
    }


def futures_positions(ex: SandboxExchange, acct: Account, symbol: str | None = None) -> list[dict]:
    rows = []
    for (kind, sym) in ex.markets:
        if kind != "linear" or (symbol and sym != symbol):
            continue
        rows.append(position_row(ex, acct, sym, acct.positions.get(sym, Position())))
    return rows


def futures_account(ex: SandboxExchange, acct: Account, now: int) -> dict:
    mg = ex.futures_margins(acct)
    wallet, upnl, avail = mg["wallet"], mg["upnl"], mg["available"]
    im = mg["position_im"] + mg["order_im"]
    asset = {"asset": "USDT", "walletBalance": s(wallet), "unrealizedProfit": s(upnl), "marginBalance": s(wallet + upnl),
             "maintMargin": "0", "initialMargin": s(im), "positionInitialMargin": s(mg["position_im"]),
             "openOrderInitialMargin": s(mg["order_im"]), "crossWalletBalance": s(wallet), "crossUnPnl": s(upnl),
             "availableBalance": s(avail), "maxWithdrawAmount": s(max(avail, Decimal(0))), "marginAvailable": True, "updateTime": now}
    others = [{**dict.fromkeys(asset, "0"), "asset": a, "marginAvailable": True, "updateTime": 0} for a in OTHER_MARGIN_ASSETS]
    return {
        "totalInitialMargin": s(im), "totalMaintMargin": "0", "totalWalletBalance": s(wallet), "totalUnrealizedProfit": s(upnl),
        "totalMarginBalance": s(wallet + upnl), "totalPositionInitialMargin": s(mg["position_im"]),
        "totalOpenOrderInitialMargin": s(mg["order_im"]), "totalCrossWalletBalance": s(wallet), "totalCrossUnPnl": s(upnl),
        "availableBalance": s(avail), "maxWithdrawAmount": s(max(avail, Decimal(0))), "canTrade": True, "canWithdraw": acct.can_withdraw,
        "canDeposit": True, "updateTime": now, "feeTier": 0, "multiAssetsMargin": False,
        "assets": [asset, *others], "positions": [r for r in futures_positions(ex, acct) if Decimal(r["positionAmt"])],
    }


def futures_balance(ex: SandboxExchange, acct: Account, now: int) -> list[dict]:
    mg = ex.futures_margins(acct)
    usdt = {"accountAlias": "sandbox", "asset": "USDT", "balance": s(mg["wallet"]), "crossWalletBalance": s(mg["wallet"]),
            "crossUnPnl": s(mg["upnl"]), "availableBalance": s(mg["available"]), "maxWithdrawAmount": s(max(mg["available"], Decimal(0))),
            "marginAvailable": True, "updateTime": now}
    return [usdt, *({**dict.fromkeys(usdt, "0"), "accountAlias": "sandbox", "asset": a, "marginAvailable": True, "updateTime": 0}
                    for a in OTHER_MARGIN_ASSETS)]


def execution_report(o: SandboxOrder, exec_type: str, f: Fill | None, now: int) -> dict:
    """Spot user-stream ``executionReport``."""
    return {
        "e": "executionReport", "E": now, "s": o.symbol, "c": o.client_id, "S": o.side, "o": o.type, "f": o.time_in_force,
        "q": s(o.qty), "p": s(o.price), "P": Z8, "F": Z8, "g": -1, "C": o.client_id if exec_type == "CANCELED" else "",
        "x": exec_type, "X": o.status, "r": "NONE", "i": o.order_id, "l": s(f.qty) if f else Z8, "z": s(o.filled),
        "L": s(f.price) if f else Z8, "n": s(f.commission) if f else "0", "N": f.commission_asset if f else None,
        "T": f.time_ms if f else o.updated_ms, "t": f.trade_id if f else -1, "I": o.order_id, "w": o.is_open,
        "m": f.is_maker if f else False, "M": False, "O": o.created_ms, "Z": s(o.cum_quote),
        "Y": s(f.quote_qty) if f else Z8, "Q": Z8, "W": o.created_ms, "V": "NONE",
    }


def order_trade_update(o: SandboxOrder, spec: MarketSpec, exec_type: str, f: Fill | None, now: int) -> dict:
    """Futures user-stream ``ORDER_TRADE_UPDATE``."""
    zero = Decimal(0)
    return {
        "e": "ORDER_TRADE_UPDATE", "E": now, "T": now,
        "o": {"s": o.symbol, "c": o.client_id, "S": o.side, "o": o.type, "f": o.time_in_force, "q": qx(spec, o.qty), "p": px(spec, o.price),
              "ap": px(spec, o.avg_price), "sp": px(spec, zero), "x": exec_type, "X": o.status, "i": o.order_id,
              "l": qx(spec, f.qty if f else zero), "z": qx(spec, o.filled), "L": px(spec, f.price if f else zero), "N": f.commission_asset if f else "USDT",
              "n": s(f.commission if f else zero), "T": f.time_ms if f else o.updated_ms, "t": f.trade_id if f else 0,
              "b": "0", "a": "0", "m": f.is_maker if f else False, "R": o.reduce_only, "wt": "CONTRACT_PRICE", "ot": o.type,
              "ps": "BOTH", "cp": False, "rp": s(f.realized_pnl if f else zero), "pP": False, "si": 0, "ss": 0,
              "V": "NONE", "pm": "NONE", "gtd": 0},
    }


def outbound_account_position(acct: Account, assets: list[str], now: int) -> dict:
    return {"e": "outboundAccountPosition", "E": now, "u": now,
            "B": [{"a": a, "f": s(acct.balance(a)[0]), "l": s(acct.balance(a)[1])} for a in assets]}


def account_update(ex: SandboxExchange, acct: Account, symbol: str, now: int) -> dict:
    pos = acct.positions.get(symbol, Position())
    spec = ex.markets[("linear", symbol)].spec
    mg = ex.futures_margins(acct)
    return {"e": "ACCOUNT_UPDATE", "E": now, "T": now,
            "a": {"m": "ORDER", "B": [{"a": "USDT", "wb": s(mg["wallet"]), "cw": s(mg["wallet"]), "bc": "0"}],
                  "P": [{"s": symbol, "pa": qx(spec, pos.amount), "ep": px(spec, pos.entry_price), "bep": px(spec, pos.entry_price), "cr": s(Decimal(0)),
                         "up": s(ex.unrealized(acct, symbol, pos)), "mt": "cross", "iw": "0", "ps": "BOTH"}]}}
