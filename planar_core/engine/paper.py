"""Paper trading: live market data from the exchange, orders filled locally by the sandbox's
matching engine (same filters, book model, fees and partial-fill rules), no private request ever sent."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from ..exchange import errors as X
from ..model import AssetInstance, Order
from ..model.types import Json
from ..sandbox import errors as SE
from ..sandbox.accounts import Account, Fill, SandboxOrder
from ..sandbox.exchange import Market, SandboxExchange
from ..sandbox.market_data import MarketSpec, PathLibrary

if TYPE_CHECKING:
    from ..model import OrderRequest
    from .strategy import Strategy

STATUS = {"NEW": "open", "PARTIALLY_FILLED": "open", "FILLED": "closed", "CANCELED": "canceled", "EXPIRED": "expired", "REJECTED": "rejected"}


def _dec(x: object, default: str) -> Decimal:
    return Decimal(str(x)) if x not in (None, 0, 0.0) else Decimal(default)


def spec_from_ccxt(market: Json) -> MarketSpec:
    limits = market.get("limits") or {}
    return MarketSpec(market["id"], market["base"], market["quote"], "linear" if market.get("contract") else "spot",
                      _dec(market["precision"]["price"], "0.00000001"), _dec(market["precision"]["amount"], "0.00000001"),
                      _dec((limits.get("amount") or {}).get("min"), str(market["precision"]["amount"] or "0.00000001")),
                      _dec((limits.get("amount") or {}).get("max"), "1000000000"), _dec((limits.get("cost") or {}).get("min"), "0"),
                      None, "")


class PaperBroker:
    def __init__(self, s: "Strategy") -> None:
        self.s = s
        self.by_id: dict[str, AssetInstance] = {ai.market["id"] + ("L" if ai.is_margin else "S"): ai for ai in s.universe.values()}
        specs = [spec_from_ccxt(ai.market) for ai in s.universe.values()]
        self.ex = SandboxExchange(specs=specs, paths=PathLibrary(data_dir=None), price_source=self._price,
                                  default_leverage=s.config.default_leverage)
        cash = Decimal(str(s.config.initial_cash if s.config.initial_cash is not None else 10_000))
        self.acct: Account = self.ex.add_account({s.config.main_currency: cash})
        self.ex.listeners.append(self._on_event)

    def _ai(self, kind: str, symbol_id: str) -> AssetInstance:
        return self.by_id[symbol_id + ("L" if kind == "linear" else "S")]

    def _price(self, m: Market) -> float:
        ai = self._ai(m.spec.kind, m.spec.symbol)
        if not ai.last_price:
            raise X.InvalidOrder(f"paper: no live price for {ai.symbol} yet")
        return ai.last_price

    # ------------------------------------------------------------- orders
    def place(self, s: "Strategy", ai: AssetInstance, order: Order, req: "OrderRequest") -> Json:
        params = {"symbol": ai.market["id"], "side": req.side.value.upper(), "quantity": format(Decimal(str(req.amount)), "f"),
                  "newClientOrderId": order.client_order_id, "type": "MARKET" if req.price is None else "LIMIT"}
        if req.price is not None:
            params["price"] = format(Decimal(str(req.price)), "f")
            params["timeInForce"] = {"gtc": "GTC", "ioc": "IOC", "fok": "FOK", "post_only": "GTX"}[req.type.value]
        if req.reduce_only:
            params["reduceOnly"] = "true"
        try:
            placed, fills = self.ex.place_order(self.acct, "linear" if ai.is_margin else "spot", params)
        except SE.ApiError as err:
            raise _map(err) from None
        return self.order_dict(ai, placed, fills)

    def cancel(self, s: "Strategy", ai: AssetInstance, order: Order) -> bool:
        try:
            self.ex.cancel_order(self.acct, "linear" if ai.is_margin else "spot", {"symbol": ai.market["id"], "origClientOrderId": order.client_order_id})
            return True
        except SE.ApiError:
            return False

    def deliver(self, s: "Strategy") -> None:
        s.apply_balance(self.balance())

    def on_price(self, s: "Strategy", ai: AssetInstance) -> None:
        if self.acct.open_orders("linear" if ai.is_margin else "spot"):
            self.ex.match_resting()

    # ------------------------------------------------------------- state as ccxt shapes
    def order_dict(self, ai: AssetInstance, o: SandboxOrder, fills: list[Fill] | None = None) -> Json:
        return {"id": str(o.order_id), "clientOrderId": o.client_id, "symbol": ai.symbol, "side": o.side.lower(),
                "type": "market" if o.type == "MARKET" else "limit", "amount": float(o.qty), "price": float(o.price) or None,
                "filled": float(o.filled), "cost": float(o.cum_quote), "status": STATUS[o.status], "timestamp": o.created_ms,
                "reduceOnly": o.reduce_only, "trades": [self.trade_dict(ai, f) for f in fills or []]}

    def trade_dict(self, ai: AssetInstance, f: Fill) -> Json:
        return {"id": str(f.trade_id), "order": str(f.order_id), "clientOrderId": f.client_id, "symbol": ai.symbol,
                "side": f.side.lower(), "amount": float(f.qty), "price": float(f.price), "timestamp": f.time_ms,
                "fee": {"cost": float(f.commission), "currency": f.commission_asset}, "info": {"realizedPnl": str(f.realized_pnl)}}

    def balance(self) -> Json:
        out: Json = {"info": {"paper": True}, "free": {}, "used": {}, "total": {}}
        if any(ai.is_margin for ai in self.s.universe.values()):
            mg = self.ex.futures_margins(self.acct)
            cur = self.s.config.main_currency
            entry = {"free": float(mg["available"]), "used": float(mg["wallet"] - mg["available"]), "total": float(mg["wallet"])}
            out[cur] = entry
        else:
            for asset, (free, locked) in self.acct.spot.items():
                out[asset] = {"free": float(free), "used": float(locked), "total": float(free + locked)}
        for k in ("free", "used", "total"):
            out[k] = {a: v[k] for a, v in out.items() if isinstance(v, dict) and k in v and a not in ("info", "free", "used", "total")}
        return out

    def _on_event(self, acct: Account, kind: str, event: str, payload: dict) -> None:
        if event == "order":
            o: SandboxOrder = payload["order"]
            ai = self._ai(kind, o.symbol)
            fill = payload.get("fill")
            if fill is not None:
                self.s.apply_trade(self.trade_dict(ai, fill))
            self.s.apply_order(self.order_dict(ai, o))
        elif event == "account":
            self.s.apply_balance(self.balance())
            if kind == "linear":
                ai = self._ai(kind, payload["symbol"])
                pos = self.ex.position(acct, payload["symbol"])
                amount = float(pos.amount)
                self.s.apply_positions([{"symbol": ai.symbol, "contracts": abs(amount), "side": "short" if amount < 0 else "long",
                                         "entryPrice": float(pos.entry_price)}], complete=False)


def _map(err: SE.ApiError) -> X.ExchangeOpError:
    if err.code in (-2010, -2019) and "insufficient" in err.msg.lower():
        return X.InsufficientFunds(err.msg, err.code)
    if err.code == -1121:
        return X.BadSymbol(err.msg, err.code)
    return X.InvalidOrder(err.msg, err.code)
