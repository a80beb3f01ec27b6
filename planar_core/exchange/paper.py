"""Paper trading behind ccxt's interface: live market data from the exchange, orders filled locally.

``PaperExchange`` answers the private half of ccxt's unified API (orders, trades, balances, positions, their
``watch_*`` streams) from a local account kept by the sandbox's matching engine (same filters, book model,
fees and partial-fill rules as the sandbox exchange), and hands the public half (markets, candles, tickers)
to a keyless ccxt client, whose answers also move the local prices. The engine talks to it through the same
``ExchangeClient`` as to a real exchange, with the same watchers, sync and resolver: it never learns which
mode it runs in. Without keys the public client cannot sign a private request, so nothing can reach the
exchange's account by mistake.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from decimal import Decimal
from typing import Any

from ..config import StrategyConfig
from ..model.types import Json
from ..sandbox import errors as SE
from ..sandbox.accounts import Account, Fill, SandboxOrder
from ..sandbox.exchange import Market, SandboxExchange
from ..sandbox.market_data import MarketSpec, PathLibrary
from . import errors as X
from .ccxt_types import CcxtExchange

STATUS = {
    "NEW": "open",
    "PARTIALLY_FILLED": "open",
    "FILLED": "closed",
    "CANCELED": "canceled",
    "EXPIRED": "expired",
    "REJECTED": "rejected",
}


def _dec(x: object, default: str) -> Decimal:
    return Decimal(str(x)) if x not in (None, 0, 0.0) else Decimal(default)


def spec_from_ccxt(market: Json) -> MarketSpec:
    limits = market.get("limits") or {}
    precision = market["precision"]
    assert isinstance(limits, dict) and isinstance(precision, dict)
    amount = limits.get("amount") or {}
    cost = limits.get("cost") or {}
    assert isinstance(amount, dict) and isinstance(cost, dict)
    return MarketSpec(
        str(market["id"]),
        str(market["base"]),
        str(market["quote"]),
        "linear" if market.get("contract") else "spot",
        _dec(precision["price"], "0.00000001"),
        _dec(precision["amount"], "0.00000001"),
        _dec(amount.get("min"), str(precision["amount"] or "0.00000001")),
        _dec(amount.get("max"), "1000000000"),
        _dec(cost.get("min"), "0"),
        None,
        "",
    )


def _map(err: SE.ApiError) -> X.ExchangeOpError:
    if err.code in (-2010, -2019) and "insufficient" in err.msg.lower():
        return X.InsufficientFunds(err.msg, err.code)
    if err.code in (-2011, -2013):
        return X.OrderNotFound(err.msg, err.code)
    if err.code == -1121:
        return X.BadSymbol(err.msg, err.code)
    return X.InvalidOrder(err.msg, err.code)


class _Stream:
    """What a ``watch_*`` call returns: the updates since the previous call, waiting for the first one."""

    def __init__(self) -> None:
        self.items: list[Json] = []
        self.ready = asyncio.Event()

    def put(self, item: Json) -> None:
        self.items.append(item)
        self.ready.set()

    async def take(self) -> list[Json]:
        await self.ready.wait()
        out, self.items = self.items, []
        self.ready.clear()
        return out


class PaperExchange:
    """A ccxt-shaped exchange: private calls answered locally, everything else delegated to ``public``."""

    def __init__(self, public: CcxtExchange, cfg: StrategyConfig) -> None:
        self.public = public
        self.cfg = cfg
        self.engine: SandboxExchange | None = None
        self.acct: Account | None = None
        self.prices: dict[str, float] = {}  # unified symbol -> last price seen through the public data
        self.by_id: dict[tuple[str, str], str] = {}  # (kind, exchange id) -> unified symbol
        self.streams: dict[str, _Stream] = defaultdict(_Stream)

    def __getattr__(self, name: str) -> Any:
        """The public half of ccxt's API, unchanged. A private endpoint this class does not answer locally is
        refused: a paper account never sends a request that acts on (or reads) a real account."""
        if name.startswith(("private", "sapi", "fapiPrivate", "dapiPrivate", "papi")):
            raise AttributeError(f"paper mode answers private calls locally; {name} is not one of them")
        return getattr(self.public, name)

    # ------------------------------------------------------------------ public data (moves the local prices)
    async def load_markets(self, *args: object, **kwargs: object) -> Json:
        markets: Json = await self.public.load_markets(*args, **kwargs)
        if self.engine is None:
            self._open_account(markets)
        return markets

    def _open_account(self, markets: Json) -> None:
        specs = []
        for asset in self.cfg.universe:
            m = markets.get(asset.symbol)
            if isinstance(m, dict):
                spec = spec_from_ccxt(m)
                specs.append(spec)
                self.by_id[(spec.kind, spec.symbol)] = asset.symbol
        self.engine = SandboxExchange(
            specs=specs, paths=PathLibrary(data_dir=None), price_source=self._price, default_leverage=self.cfg.default_leverage
        )
        cash = Decimal(str(self.cfg.initial_cash if self.cfg.initial_cash is not None else 10_000))
        self.acct = self.engine.add_account({self.cfg.main_currency: cash})
        self.engine.listeners.append(self._on_event)

    def _price(self, m: Market) -> float:
        symbol = self.by_id[(m.spec.kind, m.spec.symbol)]
        price = self.prices.get(symbol)
        if not price:
            raise X.InvalidOrder(f"paper: no live price for {symbol} yet")
        return price

    def _saw_price(self, symbol: str, price: object) -> None:
        if isinstance(price, (int, float)) and price > 0 and symbol in self.by_id.values():
            self.prices[symbol] = float(price)
            if self.engine is not None and self.acct is not None and any(o.is_open for o in self.acct.orders.values()):
                self.engine.match_resting()

    async def fetch_ohlcv(self, symbol: str, *args: object, **kwargs: object) -> list[list[float]]:
        candles: list[list[float]] = await self.public.fetch_ohlcv(symbol, *args, **kwargs)
        if candles:
            self._saw_price(symbol, candles[-1][4])
        return candles

    async def watch_ohlcv(self, symbol: str, *args: object, **kwargs: object) -> list[list[float]]:
        candles: list[list[float]] = await self.public.watch_ohlcv(symbol, *args, **kwargs)
        if candles:
            self._saw_price(symbol, candles[-1][4])
        return candles

    async def fetch_tickers(self, *args: object, **kwargs: object) -> Json:
        tickers: Json = await self.public.fetch_tickers(*args, **kwargs)
        for sym, t in tickers.items():
            if isinstance(t, dict):
                self._saw_price(sym, t.get("last"))
        return tickers

    async def fetch_ticker(self, symbol: str, *args: object, **kwargs: object) -> Json:
        t: Json = await self.public.fetch_ticker(symbol, *args, **kwargs)
        self._saw_price(symbol, t.get("last"))
        return t

    async def close(self) -> None:
        await self.public.close()

    # ------------------------------------------------------------------ the local account
    def _account(self) -> tuple[SandboxExchange, Account]:
        if self.engine is None or self.acct is None:
            raise X.ExchangeOpError("paper: markets not loaded yet")
        return self.engine, self.acct

    def _kind(self, symbol: str) -> tuple[str, str]:
        m = self.public.markets[symbol]
        return ("linear" if m.get("contract") else "spot"), str(m["id"])

    async def create_order(
        self, symbol: str, type: str, side: str, amount: float, price: float | None = None, params: Json | None = None
    ) -> Json:
        engine, acct = self._account()
        params = dict(params or {})
        kind, market_id = self._kind(symbol)
        p = {"symbol": market_id, "side": side.upper(), "quantity": format(Decimal(str(amount)), "f"), "type": type.upper()}
        cid = params.get("clientOrderId") or params.get("newClientOrderId")
        if cid:
            p["newClientOrderId"] = str(cid)
        if type == "limit" and price is not None:
            p["price"] = format(Decimal(str(price)), "f")
            if params.get("postOnly"):
                if kind == "spot":
                    p["type"] = "LIMIT_MAKER"
                else:
                    p["timeInForce"] = "GTX"
            else:
                p["timeInForce"] = str(params.get("timeInForce") or "GTC")
        if params.get("reduceOnly"):
            p["reduceOnly"] = "true"
        try:
            placed, fills = engine.place_order(acct, kind, p)
        except SE.ApiError as err:
            raise _map(err) from None
        return self._order(placed, fills)

    def _find(self, symbol: str, order_id: str | None, params: Json | None) -> SandboxOrder:
        engine, acct = self._account()
        kind, market_id = self._kind(symbol)
        p = {"symbol": market_id}
        cid = (params or {}).get("origClientOrderId")
        if cid:
            p["origClientOrderId"] = str(cid)
        if order_id is not None:
            p["orderId"] = str(order_id)
        try:
            return engine.find_order(acct, kind, p)
        except SE.ApiError as err:
            raise _map(err) from None

    async def cancel_order(self, id: str | None, symbol: str, params: Json | None = None) -> Json:
        engine, acct = self._account()
        o = self._find(symbol, id, params)
        kind, market_id = self._kind(symbol)
        try:
            return self._order(engine.cancel_order(acct, kind, {"symbol": market_id, "orderId": str(o.order_id)}))
        except SE.ApiError as err:
            raise _map(err) from None

    async def cancel_all_orders(self, symbol: str, params: Json | None = None) -> list[Json]:
        engine, acct = self._account()
        kind, market_id = self._kind(symbol)
        return [self._order(o) for o in engine.cancel_all(acct, kind, market_id)]

    async def fetch_order(self, id: str | None, symbol: str, params: Json | None = None) -> Json:
        return self._order(self._find(symbol, id, params))

    def _orders(self, symbol: str | None) -> list[SandboxOrder]:
        _, acct = self._account()
        wanted = self._kind(symbol) if symbol else None
        return [o for o in acct.orders.values() if wanted is None or (o.kind, o.symbol) == wanted]

    async def fetch_open_orders(self, symbol: str | None = None, *args: object, **kwargs: object) -> list[Json]:
        return [self._order(o) for o in self._orders(symbol) if o.is_open]

    async def fetch_orders(self, symbol: str | None = None, since: int | None = None, *args: object, **kwargs: object) -> list[Json]:
        return [self._order(o) for o in self._orders(symbol) if since is None or o.created_ms >= since]

    async def fetch_my_trades(self, symbol: str | None = None, since: int | None = None, *args: object, **kwargs: object) -> list[Json]:
        _, acct = self._account()
        wanted = self._kind(symbol) if symbol else None
        return [
            self._trade(f) for f in acct.fills if (wanted is None or (f.kind, f.symbol) == wanted) and (since is None or f.time_ms >= since)
        ]

    async def fetch_balance(self, params: Json | None = None) -> Json:
        return self._balance()

    async def fetch_positions(self, symbols: list[str] | None = None, params: Json | None = None) -> list[Json]:
        engine, acct = self._account()
        out = []
        for (kind, market_id), symbol in self.by_id.items():
            if kind == "linear" and (symbols is None or symbol in symbols):
                out.append(self._position(engine, acct, market_id, symbol))
        return out

    async def set_leverage(self, leverage: float, symbol: str, params: Json | None = None) -> Json:
        engine, acct = self._account()
        _, market_id = self._kind(symbol)
        return {"symbol": symbol, "leverage": engine.set_leverage(acct, market_id, int(leverage))}

    async def fetch_time(self, params: Json | None = None) -> int:
        return int(await self.public.fetch_time())

    # ------------------------------------------------------------------ streams
    async def watch_orders(self, symbol: str | None = None, *args: object, **kwargs: object) -> list[Json]:
        return await self.streams[f"orders:{symbol}"].take()

    async def watch_my_trades(self, symbol: str | None = None, *args: object, **kwargs: object) -> list[Json]:
        return await self.streams[f"trades:{symbol}"].take()

    async def watch_balance(self, params: Json | None = None) -> Json:
        updates = await self.streams["balance"].take()
        return updates[-1]

    async def watch_positions(self, symbols: list[str] | None = None, *args: object, **kwargs: object) -> list[Json]:
        return await self.streams["positions"].take()

    def _on_event(self, acct: Account, kind: str, event: str, payload: dict[str, Any]) -> None:
        engine = self.engine
        if engine is None:
            return
        if event == "order":
            o: SandboxOrder = payload["order"]
            symbol = self.by_id[(kind, o.symbol)]
            fill: Fill | None = payload.get("fill")
            if fill is not None:
                trade = self._trade(fill)
                self.streams[f"trades:{symbol}"].put(trade)
                self.streams["trades:None"].put(trade)
            order = self._order(o)
            self.streams[f"orders:{symbol}"].put(order)
            self.streams["orders:None"].put(order)
        elif event == "account":
            self.streams["balance"].put(self._balance())
            if kind == "linear":
                symbol = self.by_id[(kind, payload["symbol"])]
                self.streams["positions"].put(self._position(engine, acct, payload["symbol"], symbol))

    # ------------------------------------------------------------------ ccxt shapes
    def _order(self, o: SandboxOrder, fills: list[Fill] | None = None) -> Json:
        symbol = self.by_id[(o.kind, o.symbol)]
        return {
            "id": str(o.order_id),
            "clientOrderId": o.client_id,
            "symbol": symbol,
            "side": o.side.lower(),
            "type": "market" if o.type == "MARKET" else "limit",
            "amount": float(o.qty),
            "price": float(o.price) or None,
            "filled": float(o.filled),
            "cost": float(o.cum_quote),
            "status": STATUS[o.status],
            "timestamp": o.created_ms,
            "reduceOnly": o.reduce_only,
            "postOnly": o.type == "LIMIT_MAKER" or o.time_in_force == "GTX",
            "timeInForce": o.time_in_force,
            "trades": [self._trade(f) for f in fills or []],
        }

    def _trade(self, f: Fill) -> Json:
        return {
            "id": str(f.trade_id),
            "order": str(f.order_id),
            "clientOrderId": f.client_id,
            "symbol": self.by_id[(f.kind, f.symbol)],
            "side": f.side.lower(),
            "amount": float(f.qty),
            "price": float(f.price),
            "timestamp": f.time_ms,
            "fee": {"cost": float(f.commission), "currency": f.commission_asset},
            "info": {"realizedPnl": str(f.realized_pnl)},
        }

    def _position(self, engine: SandboxExchange, acct: Account, market_id: str, symbol: str) -> Json:
        pos = engine.position(acct, market_id)
        amount = float(pos.amount)
        return {
            "symbol": symbol,
            "contracts": abs(amount),
            "side": "short" if amount < 0 else "long",
            "entryPrice": float(pos.entry_price),
            "leverage": float(acct.leverage.get(market_id, engine.default_leverage)),
            "timestamp": engine.now_ms(),
        }

    def _balance(self) -> Json:
        engine, acct = self._account()
        out: Json = {"info": {"paper": True}}
        if any(kind == "linear" for kind, _ in self.by_id):
            mg = engine.futures_margins(acct)
            out[self.cfg.main_currency] = {
                "free": float(mg["available"]),
                "used": float(mg["wallet"] - mg["available"]),
                "total": float(mg["wallet"]),
            }
        else:
            for asset, (free, locked) in acct.spot.items():
                out[asset] = {"free": float(free), "used": float(locked), "total": float(free + locked)}
        for k in ("free", "used", "total"):
            out[k] = {a: v[k] for a, v in out.items() if isinstance(v, dict) and k in v and a not in ("info", "free", "used", "total")}
        return out
