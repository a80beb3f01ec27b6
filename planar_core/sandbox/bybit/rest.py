"""Bybit v5's REST dialect over the sandbox's one exchange core.

``BybitServer`` shares with the Binance dialect (``..server.SandboxServer``) the core, the matcher, the admin API
(``/admin/*``: faults, snapshot, accounts, price, matching, book) and the websocket connection machinery; it has its
own route table and pipeline: faults -> IP limit -> auth (X-BAPI-*) -> per-UID limit -> handler -> headers, every
answer in Bybit's envelope ``{"retCode", "retMsg", "result", "retExtInfo", "time"}``.

Bybit's parameters are translated into the core's (Binance-shaped) ones here, and the core's errors into Bybit's
retCodes (``errors.translate``); the core is not forked.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TypeVar

from aiohttp import web

from .. import errors as E
from .. import public
from ..accounts import Account, AlgoOrder, SandboxOrder
from ..exchange import Market, SandboxExchange
from ..server import SandboxServer, is_loopback
from ..streams import StreamHub
from . import amend, dcp, positions, wire
from .conditional import Conditional
from .dcp import Dcp
from .errors import BybitError, duplicate_link_id, illegal_category, order_not_found, params_error, translate
from .limits import BybitLimiter
from .wire import KLINE_MS

Params = dict[str, str]
Handler = Callable[["Call"], Awaitable[object] | object]
T = TypeVar("T")
LINK_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
UNNAMED = ":"  # the prefix of the core's client id of an order placed without orderLinkId
TIME_IN_FORCE = {"GTC": "GTC", "IOC": "IOC", "FOK": "FOK", "POSTONLY": "PostOnly"}
EXECUTION_WINDOW_MS = 7 * 86_400_000  # /v5/execution/list: startTime..endTime at most 7 days


@dataclass
class Call:
    """One request after parsing: its parameters (as strings), category and account."""

    request: web.Request
    params: Params
    account: Account | None
    category: str  # spot | linear ("" where the endpoint takes none)
    body: object = None  # a POST's JSON body as sent (lists of requests stay lists)

    @property
    def acct(self) -> Account:
        assert self.account is not None
        return self.account


@dataclass(frozen=True)
class Extended:
    """A result with a ``retExtInfo`` of its own (the batch endpoints' per-request outcomes)."""

    result: object
    ext: dict[str, object]


@dataclass(frozen=True)
class Route:
    handler: Handler
    signed: bool
    category: str = "required"  # required | optional | none


def as_params(data: object) -> Params:
    """A JSON body's fields as the strings a query string would carry (``true``/``false`` for booleans)."""
    if not isinstance(data, dict):
        raise params_error("params error: the body must be a JSON object")
    out: Params = {}
    for k, v in data.items():
        if isinstance(v, bool):
            out[str(k)] = "true" if v else "false"
        elif v is not None:
            out[str(k)] = str(v)
    return out


class BybitServer(SandboxServer):
    """The sandbox exchange speaking Bybit v5 (REST under ``/v5``; websockets in ``streams.py``)."""

    def __init__(
        self, exchange: SandboxExchange, host: str = "127.0.0.1", port: int = 0, allow_non_loopback: bool = False, tick_s: float = 0.05
    ) -> None:
        self.bybit_limiter = BybitLimiter()
        self.bybit_routes: dict[tuple[str, str], Route] = {}
        self.market_units: dict[int, str] = {}  # spot market order id -> marketUnit it was placed with
        self.margin_modes: dict[str, str] = {}  # api key -> the unified account's margin mode (set-margin-mode)
        self.dcp = Dcp()  # Disconnected Cancel All: windows, guarding connections, timers (dcp.py)
        self.cancel_types: dict[tuple[str, int], str] = {}  # ("order" | "algo", id) -> cancelType other than CancelByUser
        super().__init__(exchange, host, port, allow_non_loopback, tick_s)
        self.conditional = Conditional(self)

    def _make_hub(self) -> StreamHub:
        from .streams import BybitHub

        return BybitHub(
            self.ex,
            self.order_row,
            algo_row=lambda a, x: self.conditional.algo_row(a, x),
            position_row=self.position_row,
            on_guard=lambda live: self.dcp.refresh(live, self.ex.now_ms()),
        )

    def _expire_timers(self) -> None:
        super()._expire_timers()
        dcp.expire(self)

    # ----------------------------------------------------------------- pipeline
    @staticmethod
    def _answer(result: object, now: int, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response(wire.envelope(result, now), status=status, headers=headers)

    def _refusal(self, exc: BybitError, headers: dict[str, str] | None = None) -> web.Response:
        body = {"retCode": exc.code, "retMsg": exc.msg, "result": exc.result, "retExtInfo": {}, "time": self.ex.now_ms()}
        return web.json_response(body, status=exc.status, headers=headers)

    @web.middleware
    async def _pipeline(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path.startswith("/admin/"):
            if not is_loopback(request.remote or ""):
                return web.json_response({"error": "admin API is loopback only"}, status=403)
            return await handler(request)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        faults, rng = self.ex.faults, self.ex.rng
        delay = faults.delay_s(rng)
        if delay:
            await asyncio.sleep(delay)
        if faults.ban:
            return web.Response(status=403, text="access too frequent")
        if faults.roll(rng, faults.timeout_rate):
            await asyncio.sleep(faults.hang_s)
            return self._refusal(BybitError(10000, "Server Timeout", status=504))
        if faults.roll(rng, faults.error_rate):
            return web.Response(status=503, text="Service Unavailable")
        if faults.roll(rng, faults.rate_limit_rate):
            return self._refusal(BybitError(10006, "Too many visits!"))
        if not self.bybit_limiter.charge_ip(request.remote or "?", self.ex.now_ms()):
            return web.Response(status=403, text="access too frequent")
        response = await handler(request)
        if faults.answer_delay_ms:
            await asyncio.sleep(faults.answer_delay_ms / 1000)
        if faults.roll(rng, faults.malformed_rate) and isinstance(response, web.Response) and response.body:
            body = bytes(response.body)  # type: ignore[arg-type]
            response.body = body[: max(1, len(body) // 2)]
        return response

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        route = self.bybit_routes.get((request.method, request.path))
        if route is None:
            if any(path == request.path for (_, path) in self.bybit_routes):
                return self._refusal(BybitError(10017, "request method is invalid", status=200))
            return self._refusal(BybitError(10017, f"route not found: {request.path}", status=404))
        body = (await request.text()) if request.can_read_body else ""
        headers: dict[str, str] = {}
        try:
            params: Params = dict(request.query)
            data: object = None
            if request.method == "POST" and body:
                try:
                    data = json.loads(body)
                except json.JSONDecodeError:
                    raise params_error("params error: the body is not JSON") from None
                params.update(as_params(data))
            account = self._bybit_auth(request, route, body) if route.signed else None
            category = self._category(route, params)
            if account is not None:
                allowed, headers = self.bybit_limiter.charge_uid(account.api_key, request.path, category, self.ex.now_ms())
                if not allowed:
                    raise BybitError(10006, "Too many visits!")
            call = Call(request, params, account, category, data)
            with self.ex.at_one_instant() as now:
                try:
                    result = route.handler(call)
                    if asyncio.iscoroutine(result):
                        result = await result
                except E.ApiError as exc:
                    raise translate(exc, category or "linear", (params.get("side") or "").upper()) from None
        except BybitError as exc:
            return self._refusal(exc, headers)
        if isinstance(result, wire.Success):
            success = {"retCode": 0, "retMsg": "success"}
            body_out = success if result.bare else {**wire.envelope(result.result, now), **success}
            return web.json_response(body_out, headers=headers)
        if isinstance(result, Extended):
            body_out = {**wire.envelope(result.result, now), "retExtInfo": result.ext}
            return web.json_response(body_out, headers=headers)
        return self._answer(result, now, headers=headers)

    def _category(self, route: Route, params: Params) -> str:
        if route.category == "none":
            return ""
        category = params.get("category", "")
        if category in ("spot", "linear"):
            return category
        if route.category == "optional" and not category:
            return ""
        raise illegal_category(category)

    def _bybit_auth(self, request: web.Request, route: Route, body: str) -> Account:
        """Bybit's HMAC: hex HMAC-SHA256 of timestamp + api key + recv window + (GET: the query string as sent;
        POST: the body), in X-BAPI-SIGN; the timestamp must satisfy server - recv_window <= timestamp < server + 1000."""
        key = request.headers.get("X-BAPI-API-KEY", "")
        acct = self.ex.accounts.get(key) if key else None
        if acct is None:
            raise BybitError(10003, "API key is invalid.")
        if not self.ex.faults.private_api:
            raise BybitError(10005, "Permission denied, please check your API key permissions.")
        stamp = request.headers.get("X-BAPI-TIMESTAMP", "")
        window_text = request.headers.get("X-BAPI-RECV-WINDOW") or "5000"
        try:
            ts, window = int(stamp), int(window_text)
        except ValueError:
            raise BybitError(10002, "invalid request, please check your server timestamp or recv_window param") from None
        payload = stamp + key + window_text + (body if request.method == "POST" else request.rel_url.raw_query_string)
        expected = hmac.new(acct.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-BAPI-SIGN", "")):
            raise BybitError(10004, f"error sign! origin_string[{payload}]")
        now = self.ex.now_ms()
        if not now - window <= ts < now + 1000:
            raise BybitError(
                10002,
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{ts}],server_timestamp[{now}],recv_window[{window}]",
            )
        return acct

    # ----------------------------------------------------------------- routes
    def _register_routes(self) -> None:
        def add(method: str, path: str, handler: Handler, signed: bool = False, category: str = "required") -> None:
            self.bybit_routes[(method, path)] = Route(handler, signed, category)

        ex = self.ex
        add(
            "GET",
            "/v5/market/time",
            lambda c: {"timeSecond": str(ex.now_ms() // 1000), "timeNano": str(ex.now_ms() * 1_000_000)},
            category="none",
        )
        add("GET", "/v5/market/instruments-info", self._instruments, category="none")
        add("GET", "/v5/market/tickers", self._tickers)
        add("GET", "/v5/market/orderbook", self._orderbook)
        add("GET", "/v5/market/kline", self._kline)
        add("GET", "/v5/market/recent-trade", self._recent_trades)
        add("GET", "/v5/market/funding/history", self._funding_history)
        add("GET", "/v5/user/query-api", self._query_api, signed=True, category="none")
        add("GET", "/v5/account/info", self._account_info, signed=True, category="none")
        add("GET", "/v5/asset/coin/query-info", self._coin_info, signed=True, category="none")
        add("GET", "/v5/account/wallet-balance", self._wallet_balance, signed=True, category="none")
        add("GET", "/v5/account/fee-rate", self._fee_rate, signed=True, category="optional")
        add("POST", "/v5/order/create", self._create, signed=True)
        add("POST", "/v5/order/amend", lambda c: amend.amend(self, c), signed=True)
        add("POST", "/v5/order/cancel", self._cancel, signed=True)
        add("POST", "/v5/order/cancel-all", self._cancel_all_orders, signed=True)
        add("POST", "/v5/order/cancel-batch", self._cancel_batch_orders, signed=True)
        add("POST", "/v5/position/switch-mode", lambda c: positions.switch_mode(self, c), signed=True)
        add("GET", "/v5/order/realtime", self._realtime, signed=True)
        add("GET", "/v5/order/history", self._history, signed=True)
        add("GET", "/v5/execution/list", self._executions, signed=True)
        add("GET", "/v5/position/list", lambda c: positions.position_list(self, c), signed=True, category="none")
        add("POST", "/v5/position/set-leverage", lambda c: positions.set_leverage(self, c), signed=True)
        add("POST", "/v5/position/trading-stop", lambda c: positions.trading_stop(self, c), signed=True)
        add("POST", "/v5/position/switch-isolated", lambda c: positions.switch_isolated(self, c), signed=True)
        add("POST", "/v5/account/set-margin-mode", lambda c: positions.set_margin_mode(self, c), signed=True, category="none")
        add("POST", "/v5/order/disconnected-cancel-all", lambda c: dcp.set_window(self, c), signed=True, category="none")
        add("GET", "/v5/account/query-dcp-info", lambda c: dcp.query(self, c), signed=True, category="none")

    # ----------------------------------------------------------------- helpers
    def _market(self, c: Call, required: bool = True) -> Market | None:
        symbol = (c.params.get("symbol") or "").upper()
        if not symbol:
            if required:
                raise params_error("params error: symbol is empty")
            return None
        m = self.by_name.get((c.category, symbol))
        if m is None:
            raise params_error("params error: symbol invalid")
        return m

    @property
    def by_name(self) -> dict[tuple[str, str], Market]:
        """Markets by (category, Bybit's name)."""
        return {(m.spec.kind, wire.name(m.spec)): m for m in self.ex.markets.values()}

    def _markets(self, category: str) -> list[Market]:
        return [m for (kind, _), m in self.ex.markets.items() if kind == category]

    @staticmethod
    def _int(c: Call, name: str, default: int, low: int, high: int) -> int:
        raw = c.params.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(str(raw))
        except ValueError:
            raise params_error(f"params error: {name} invalid") from None
        return min(max(value, low), high)  # Bybit clamps (ccxt's own validators send limit=12000 to it)

    # ----------------------------------------------------------------- market data
    def _instruments(self, c: Call) -> object:
        category = c.params.get("category", "")
        if category in ("inverse", "option"):  # the sandbox lists none (ccxt asks for both in load_markets)
            return {"category": category, "list": [], "nextPageCursor": ""}
        if category not in ("spot", "linear"):
            raise illegal_category(category)
        if c.params.get("status") and c.params["status"] != "Trading":
            return {"category": category, "list": [], "nextPageCursor": ""}
        symbol = (c.params.get("symbol") or "").upper()
        rows = [wire.instrument(self.ex, m) for m in self._markets(category) if not symbol or wire.name(m.spec) == symbol]
        return {"category": category, "list": rows, "nextPageCursor": ""}

    def _tickers(self, c: Call) -> object:
        m = self._market(c, required=False)
        markets = [m] if m is not None else self._markets(c.category)
        return {"category": c.category, "list": [wire.ticker(self.ex, x) for x in markets]}

    def _orderbook(self, c: Call) -> object:
        m = self._market(c)
        assert m is not None
        limit = self._int(c, "limit", 1 if c.category == "spot" else 25, 1, 200 if c.category == "spot" else 500)
        bids, asks = public.book_levels(self.ex, m)
        now = self.ex.now_ms()
        spec = m.spec
        return {
            "s": wire.name(spec),
            "b": [[wire.price(spec, p), wire.qty(spec, q)] for p, q in bids[:limit]],
            "a": [[wire.price(spec, p), wire.qty(spec, q)] for p, q in asks[:limit]],
            "ts": now,
            "u": now,
            "seq": now,
            "cts": now,
        }

    def _kline(self, c: Call) -> object:
        """Candles newest first, as Bybit lists them: up to ``limit`` (200, at most 1000) within [start, end]."""
        m = self._market(c)
        assert m is not None
        step = KLINE_MS.get(c.params.get("interval", ""))
        if step is None:
            raise params_error("params error: invalid interval")
        limit = self._int(c, "limit", 200, 1, 1000)
        now = self.ex.now_ms()
        last = now - now % step
        end = self._int(c, "end", 0, 0, 2**62)
        if end:
            last = min(last, end - end % step)
        start = self._int(c, "start", 0, 0, 2**62)
        first = max(last - (limit - 1) * step, start - start % step + (step if start % step else 0)) if start else last - (limit - 1) * step
        if start:
            last = min(last, first + (limit - 1) * step)
        listed = self.ex.listed_ms(m)
        first = max(first, listed + -listed % step)  # nothing before the market's listing (exchange.listed_ms)
        rows = []
        for open_ms in range(last, first - 1, -step):
            o, h, lo, cl, v = self.ex.candle(m, open_ms, min(open_ms + step, now + 1))
            rows.append(
                [
                    str(open_ms),
                    wire.fprice(m, o),
                    wire.fprice(m, h),
                    wire.fprice(m, lo),
                    wire.fprice(m, cl),
                    f"{v:.{m.spec.qty_precision}f}",
                    f"{v * (o + cl) / 2:.4f}",
                ]
            )
        return {"category": c.category, "symbol": wire.name(m.spec), "list": rows}

    def _recent_trades(self, c: Call) -> object:
        m = self._market(c)
        assert m is not None
        limit = self._int(c, "limit", 60 if c.category == "spot" else 500, 1, 60 if c.category == "spot" else 1000)
        rows = public.recent_trades(self.ex, m.spec.kind, {"symbol": m.spec.symbol, "limit": str(limit)})
        out = [
            {
                "execId": str(r["id"]),
                "symbol": wire.name(m.spec),
                "price": wire.fprice(m, float(str(r["price"]))),
                "size": wire.qty(m.spec, Decimal(str(r["qty"]))),
                "side": "Sell" if r["isBuyerMaker"] else "Buy",
                "time": str(r["time"]),
                "isBlockTrade": False,
                "isRPITrade": False,
                "seq": str(r["id"]),
            }
            for r in reversed(rows)
        ]
        return {"category": c.category, "list": out}

    def _funding_history(self, c: Call) -> object:
        if c.category != "linear":
            raise illegal_category(c.category)
        m = self._market(c)
        assert m is not None
        limit = self._int(c, "limit", 200, 1, 200)
        params = {"symbol": m.spec.symbol, "limit": str(limit)}
        for ours, theirs in (("startTime", "startTime"), ("endTime", "endTime")):
            if c.params.get(theirs):
                params[ours] = c.params[theirs]
        rows = public.funding_rates(self.ex, params)
        out = [
            {"symbol": wire.name(m.spec), "fundingRate": "0.0001", "fundingRateTimestamp": str(r["fundingTime"])} for r in reversed(rows)
        ]
        return {"category": "linear", "list": out}

    # ----------------------------------------------------------------- account
    def _query_api(self, c: Call) -> object:
        acct = c.acct
        created = self.ex.wall_anchor_ms
        return {
            "id": str(abs(hash(acct.api_key)) % 10**8),
            "note": "sandbox",
            "apiKey": acct.api_key,
            "readOnly": 0,
            "secret": "",
            "permissions": {
                "ContractTrade": ["Order", "Position"],
                "Spot": ["SpotTrade"],
                "Wallet": ["AccountTransfer"] + (["Withdraw"] if acct.can_withdraw else []),
                "Options": [],
                "Derivatives": [],
                "CopyTrading": [],
                "BlockTrade": [],
                "Exchange": [],
                "NFT": [],
                "Affiliate": [],
                "Earn": [],
            },
            "ips": ["*"],
            "type": 1,
            "deadlineDay": -1,
            "expiredAt": "",
            "createdAt": str(created),
            "unified": 0,
            "uta": 1,
            "userID": abs(hash(acct.api_key)) % 10**8,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": "",
            "isMaster": True,
            "parentUid": "0",
            "kycLevel": "LEVEL_DEFAULT",
            "kycRegion": "",
        }

    def _account_info(self, c: Call) -> object:
        return {
            "marginMode": self.margin_modes.get(c.acct.api_key, "REGULAR_MARGIN"),
            "updatedTime": str(self.ex.wall_anchor_ms),
            "unifiedMarginStatus": 6,  # UTA 2.0 Pro
            "dcpStatus": "OFF",
            "timeWindow": 10,
            "smpGroup": 0,
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
        }

    def _coin_info(self, c: Call) -> object:
        coins = sorted({m.spec.base for m in self.ex.markets.values()} | {m.spec.quote for m in self.ex.markets.values()})
        wanted = c.params.get("coin")
        rows = []
        for coin in coins:
            if wanted and coin != wanted.upper():
                continue
            free = c.acct.spot.get(coin, [Decimal(0), Decimal(0)])[0]
            chain = {
                "chainType": coin,
                "confirmation": "1",
                "withdrawFee": "0",
                "depositMin": "0",
                "withdrawMin": "0",
                "chain": coin,
                "chainDeposit": "1",
                "chainWithdraw": "0",  # the sandbox takes no withdrawals
                "minAccuracy": "8",
                "withdrawPercentageFee": "0",
                "contractAddress": "",
                "safeConfirmNumber": "1",
            }
            rows.append({"name": coin, "coin": coin, "remainAmount": wire.money(free), "chains": [chain]})
        return {"rows": rows}

    def _wallet_balance(self, c: Call) -> object:
        account_type = c.params.get("accountType", "")
        if account_type != "UNIFIED":
            raise BybitError(10001, "accountType only support UNIFIED." if account_type else "params error: accountType is empty")
        coins = {x.strip().upper() for x in (c.params.get("coin") or "").split(",") if x.strip()}
        return wire.wallet_balance(self.ex, c.acct, coins or None)

    def _fee_rate(self, c: Call) -> object:
        if not c.category:
            raise illegal_category("")
        m = self._market(c, required=False)
        ex = self.ex
        taker, maker = (ex.taker_fee, ex.maker_fee) if c.category == "spot" else (ex.futures_taker_fee, ex.futures_maker_fee)
        rows = [
            {"symbol": wire.name(x.spec), "baseCoin": "", "takerFeeRate": wire.money(taker), "makerFeeRate": wire.money(maker)}
            for x in ([m] if m is not None else self._markets(c.category))
        ]
        return {"category": c.category, "list": rows}

    # ----------------------------------------------------------------- orders
    def _core_params(self, c: Call, m: Market) -> Params:
        """Bybit's create-order parameters as the core's (Binance-shaped) ones."""
        p = c.params
        spot = c.category == "spot"
        side = {"Buy": "BUY", "Sell": "SELL"}.get(p.get("side", ""))
        if side is None:
            raise params_error("params error: side invalid" if p.get("side") else "params error: side is empty")
        otype = p.get("orderType", "")
        if otype not in ("Market", "Limit"):
            raise params_error("params error: orderType invalid" if otype else "params error: orderType is empty")
        conditional = p.get("triggerPrice") not in (None, "", "0")
        order_filter = p.get("orderFilter") or "Order"
        if order_filter not in ("Order", "StopOrder", "tpslOrder") or (order_filter != "Order" and not spot):
            raise params_error("params error: orderFilter invalid")
        if order_filter != "Order" and not conditional:
            raise params_error("params error: triggerPrice is required for orderFilter " + order_filter)
        if p.get("isLeverage") not in (None, "", "0"):
            raise params_error("params error: spot margin (isLeverage=1) is not supported by the sandbox")
        tif = (
            TIME_IN_FORCE.get((p.get("timeInForce") or "").upper(), "") if p.get("timeInForce") else ("GTC" if otype == "Limit" else "IOC")
        )
        if not tif:
            raise params_error("params error: timeInForce invalid")
        out: Params = {"symbol": m.spec.symbol, "side": side}
        qty = p.get("qty", "")
        if not qty:
            raise params_error("params error: qty is empty")
        self._decimal(qty, "qty")
        if otype == "Limit":
            if not p.get("price"):
                raise params_error("params error: price is empty")
            self._decimal(p["price"], "price")
            out["price"] = p["price"]
            if tif == "PostOnly":
                out["type"] = "LIMIT_MAKER" if spot else "LIMIT"
                if not spot:
                    out["timeInForce"] = "GTX"
            else:
                out.update(type="LIMIT", timeInForce=tif)
            out["quantity"] = qty
        else:
            out["type"] = "MARKET"
            unit = p.get("marketUnit") or ("quoteCoin" if spot and side == "BUY" else "baseCoin")
            if unit not in ("baseCoin", "quoteCoin") or (unit == "quoteCoin" and not spot):
                raise params_error("params error: marketUnit invalid")
            out["quoteOrderQty" if unit == "quoteCoin" else "quantity"] = qty
        reduce_only = (p.get("reduceOnly") or "false").lower()
        if reduce_only == "true" and not (spot and conditional):  # ccxt sends it with a spot stopLossPrice/takeProfitPrice
            if spot:
                raise params_error("params error: reduceOnly is for derivatives only")
            out["reduceOnly"] = "true"
        idx = p.get("positionIdx") or "0"
        if spot and idx != "0":
            raise params_error("params error: positionIdx invalid")
        if not spot:
            side_of = {"0": "BOTH", "1": "LONG", "2": "SHORT"}.get(idx)
            if side_of is None:
                raise params_error("params error: positionIdx invalid")
            out["positionSide"] = side_of
            if side_of != "BOTH" and reduce_only == "true":
                out.pop("reduceOnly")  # hedge mode: the closing side says it (the core refuses reduceOnly there)
        link = p.get("orderLinkId") or ""
        if link:
            if len(link) > 36 or not set(link) <= LINK_ID_CHARS:
                raise params_error("params error: orderLinkId invalid")
            if (c.category, link) in c.acct.by_client_id or (
                c.category == "linear" and any(a.client_algo_id == link for a in c.acct.algo_orders.values())
            ):  # Bybit: unique among every order of the account, not only open ones
                raise duplicate_link_id(c.category)
            out["newClientOrderId"] = link
        return out

    @staticmethod
    def _decimal(text: str, name: str) -> Decimal:
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise params_error(f"params error: {name} invalid") from None
        if not value.is_finite() or value <= 0:
            raise params_error(f"params error: {name} invalid")
        return value

    def _create(self, c: Call) -> object:
        m = self._market(c)
        assert m is not None
        params = self._core_params(c, m)
        params.setdefault("newClientOrderId", UNNAMED + secrets.token_hex(8))  # Bybit shows orderLinkId "" for these
        if c.params.get("triggerPrice") not in (None, "", "0"):
            bybit_id, link = self.conditional.place(c, m, params)
            self._maybe_lose_ack_of(c.request)
            return {"orderId": str(bybit_id), "orderLinkId": link}
        attached = self.conditional.attach(c, m, params)
        try:
            order, _ = self.ex.place_order(c.acct, c.category, params)
        except E.ApiError as exc:
            if exc.code == -2010 and "take" in exc.msg:
                raise BybitError(170218 if c.category == "spot" else 10001, "PostOnly order would take liquidity") from None
            raise
        if order.is_market and c.category == "spot":
            self.market_units[order.order_id] = "quoteCoin" if "quoteOrderQty" in params else "baseCoin"
        if attached is not None:
            self.conditional.meta[order.order_id] = attached
            if order.filled:  # filled at once: the fill event came before the TP/SL was known
                self.conditional.on_attached_fill(c.acct, order)
        self._maybe_lose_ack_of(c.request)
        return {"orderId": str(order.order_id), "orderLinkId": self.link_id(order)}

    @staticmethod
    def link_id(o: SandboxOrder) -> str:
        """An order placed without ``orderLinkId`` shows ``""``, as on Bybit (the core names it ``:<hex>``, a name
        Bybit's charset keeps clients from choosing); so does the exchange's own liquidation order (the core's
        ``autoclose-*``)."""
        return "" if wire.is_liquidation(o) else BybitServer.link_id_of(o.client_id)

    @staticmethod
    def link_id_of(client_id: str) -> str:
        return "" if client_id.startswith(UNNAMED) else client_id

    def _find(self, c: Call) -> SandboxOrder:
        m = self._market(c)
        assert m is not None
        order: SandboxOrder | None = None
        if c.params.get("orderId"):
            try:
                order = c.acct.orders.get(int(c.params["orderId"]))
            except ValueError:
                order = None
            if order is None or order.algo_id:  # a triggered conditional order goes by its own id, not its order's
                order = self.conditional.triggered(c.acct, c.params["orderId"]) if c.category == "linear" else None
        elif c.params.get("orderLinkId"):
            order = c.acct.by_client_id.get((c.category, c.params["orderLinkId"]))
        else:
            raise params_error("params error: orderId or orderLinkId is required")
        if order is None or order.kind != c.category or order.symbol != m.spec.symbol or not self.ex.visible(order):
            raise order_not_found(c.category)
        return order

    def _cancel(self, c: Call) -> object:
        waiting = self._waiting(c)
        if waiting is not None:
            self.ex.cancel_algo(c.acct, {"algoId": str(waiting.algo_id)})
            return {"orderId": str(waiting.algo_id), "orderLinkId": self.link_id_of(waiting.client_algo_id)}
        order = self._find(c)
        if not order.is_open:
            raise order_not_found(c.category)
        self.ex.cancel_order(c.acct, c.category, {"symbol": order.symbol, "orderId": str(order.order_id)})
        return {"orderId": str(order.algo_id or order.order_id), "orderLinkId": self.link_id(order)}

    def _waiting(self, c: Call) -> AlgoOrder | None:
        """The linear conditional order still waiting that the request names, if any."""
        if c.category != "linear":
            return None
        m = self._market(c)
        algo = self.conditional.waiting(c.acct, c.params.get("orderId"), c.params.get("orderLinkId"))
        return algo if algo is not None and m is not None and algo.symbol == m.spec.symbol else None

    def _cancel_all_orders(self, c: Call) -> object:
        """``orderFilter``: spot cancels its plain orders unless asked for ``StopOrder`` or ``tpslOrder``; linear every
        kind unless asked for ``Order`` or ``StopOrder`` alone (Bybit's defaults)."""
        m = self._market(c, required=False)
        if m is None and c.category == "linear" and not (c.params.get("settleCoin") or c.params.get("baseCoin")):
            raise params_error("params error: symbol, baseCoin or settleCoin is required")
        flt = c.params.get("orderFilter") or ("Order" if c.category == "spot" else None)
        if flt not in (None, "Order", "StopOrder", "tpslOrder", "OcoOrder", "BidirectionalTpslOrder") or (
            c.category == "linear" and flt not in (None, "Order", "StopOrder")
        ):
            raise params_error(f"params error: orderFilter {flt} invalid")
        symbol = m.spec.symbol if m is not None else None
        return {"list": self.cancel_everything(c.acct, c.category, symbol=symbol, order_filter=flt), "success": "1"}

    def cancel_everything(
        self, acct: Account, category: str, cancel_type: str = "", symbol: str | None = None, order_filter: str | None = None
    ) -> list[dict[str, str]]:
        """What cancel-all cancels in a category (one symbol, or all): the open orders and, linear, the conditional
        orders still waiting (not a position's TP/SL); their ``{"orderId", "orderLinkId"}`` rows. ``cancel_type``:
        the ``cancelType`` they show when not ``CancelByUser`` (recorded before the cancels, whose events carry it).
        ``order_filter``: only the orders of that kind (``Order``, ``StopOrder``, ``tpslOrder``); None: every kind."""
        symbols = [symbol] if symbol is not None else [x.spec.symbol for x in self._markets(category)]
        done: list[SandboxOrder] = []
        rows: list[dict[str, str]] = []
        for sym in symbols:
            targets = [
                o
                for o in acct.open_orders(category, sym)
                if order_filter is None or self.conditional.matches_filter(order_filter, o.algo_id or o.order_id)
            ]
            if cancel_type:
                for o in targets:
                    self.cancel_types[("order", o.order_id)] = cancel_type
            if order_filter is None:
                done.extend(self.ex.cancel_all(acct, category, sym))
            else:
                for o in targets:
                    if o.is_open:  # (not the other leg of a list cancelled a moment ago)
                        self.ex.cancel_order(acct, category, {"symbol": sym, "orderId": str(o.order_id)})
                        done.append(o)
            if category == "linear" and order_filter in (None, "StopOrder"):  # the conditional orders still waiting
                for algo in [a for a in acct.algo_orders.values() if a.is_open and a.symbol == sym]:
                    if self.conditional.matches_filter("StopOrder", algo.algo_id) and not self.conditional.is_position_tpsl(algo):
                        if cancel_type:
                            self.cancel_types[("algo", algo.algo_id)] = cancel_type
                        self.ex.cancel_algo(acct, {"algoId": str(algo.algo_id)})
                        rows.append({"orderId": str(algo.algo_id), "orderLinkId": self.link_id_of(algo.client_algo_id)})
        return [{"orderId": str(o.algo_id or o.order_id), "orderLinkId": self.link_id(o)} for o in done] + rows

    def _cancel_batch_orders(self, c: Call) -> Extended:
        """Up to 20 (spot 10) orders, each by ``orderId`` or ``orderLinkId``: a ``result.list`` row per cancelled
        order and a ``retExtInfo.list`` outcome per request, in the order given (Bybit's batch answer)."""
        requests = c.body.get("request") if isinstance(c.body, dict) else None
        most = 10 if c.category == "spot" else 20
        if not isinstance(requests, list) or not requests or len(requests) > most:
            raise params_error(f"params error: request must hold 1 to {most} orders")
        rows: list[object] = []
        outcomes: list[object] = []
        for item in requests:
            one = Call(c.request, as_params(item), c.account, c.category)
            try:
                rows.append({"category": c.category, **self._cancel_one(one)})
            except BybitError as exc:
                rows.append({"category": c.category, "symbol": one.params.get("symbol", ""), "orderId": "", "orderLinkId": ""})
                outcomes.append({"code": exc.code, "msg": exc.msg})
                continue
            outcomes.append({"code": 0, "msg": "OK"})
        return Extended({"list": rows}, {"list": outcomes})

    def _cancel_one(self, one: Call) -> dict[str, str]:
        """One request of a batch cancel, found as ``/v5/order/cancel`` finds it (a linear conditional order still
        waiting included): its ``symbol``/``orderId``/``orderLinkId`` row."""
        waiting = self._waiting(one)
        if waiting is not None:
            self.ex.cancel_algo(one.acct, {"algoId": str(waiting.algo_id)})
            spec = self.ex.markets[("linear", waiting.symbol)].spec
            return {"symbol": wire.name(spec), "orderId": str(waiting.algo_id), "orderLinkId": self.link_id_of(waiting.client_algo_id)}
        order = self._find(one)
        if not order.is_open:
            raise order_not_found(one.category)
        self.ex.cancel_order(one.acct, one.category, {"symbol": order.symbol, "orderId": str(order.order_id)})
        spec = self.ex.markets[(order.kind, order.symbol)].spec
        return {"symbol": wire.name(spec), "orderId": str(order.algo_id or order.order_id), "orderLinkId": self.link_id(order)}

    def order_row(self, acct: Account, o: SandboxOrder) -> dict[str, object]:
        spec = self.ex.markets[(o.kind, o.symbol)].spec
        row = wire.order(acct, spec, o, self.market_units.get(o.order_id, ""))
        row["orderLinkId"] = self.link_id(o)
        if o.status == "CANCELED" and ("order", o.order_id) in self.cancel_types:
            row["cancelType"] = self.cancel_types[("order", o.order_id)]
        if o.algo_id:  # placed by a linear conditional order's trigger: Bybit shows one order, under the conditional's id
            algo = acct.algo_orders[o.algo_id]
            row["orderId"] = str(o.algo_id)
            self.conditional.decorate(row, spec, self.conditional.meta.get(o.algo_id), algo.trigger_price)
        else:
            self.conditional.decorate(row, spec, self.conditional.meta.get(o.order_id), o.stop_price)
            if not o.working:
                row["orderStatus"] = "Untriggered" if o.is_open else "Deactivated"
        return row

    def position_row(self, acct: Account, symbol: str, side: str) -> dict[str, object]:
        row = wire.position(self.ex, acct, symbol, side)
        spec = self.ex.markets[("linear", symbol)].spec
        for kind, algo in self.conditional.position_tpsl(acct, symbol, side).items():
            row["takeProfit" if kind == "TakeProfit" else "stopLoss"] = wire.price(spec, algo.trigger_price)
        return row

    def _order_row(self, c: Call, o: SandboxOrder) -> dict[str, object]:
        return self.order_row(c.acct, o)

    def _realtime(self, c: Call) -> object:
        """Open orders (every kind by default, as for a unified account; ``orderFilter`` Order / StopOrder /
        tpslOrder picks one); an order named by orderId/orderLinkId whatever its status; ``openOnly=1``: recent
        closed ones."""
        m = self._market(c, required=False)
        named = c.params.get("orderId") or c.params.get("orderLinkId")
        if m is None and c.category == "linear" and not (c.params.get("settleCoin") or c.params.get("baseCoin")) and not named:
            raise params_error("params error: symbol, baseCoin or settleCoin is required")
        limit = self._int(c, "limit", 20, 1, 50)
        if named:
            return {"category": c.category, "list": self._named(c, m)[:limit], "nextPageCursor": ""}
        if c.params.get("openOnly") in ("1", "2"):
            orders = [
                o
                for o in reversed(c.acct.orders.values())
                if not o.is_open and o.kind == c.category and (m is None or o.symbol == m.spec.symbol)
            ][:500]
            algos = []
        else:
            orders = list(reversed(c.acct.open_orders(c.category, m.spec.symbol if m else None)))
            algos = [a for a in reversed(c.acct.algo_orders.values()) if a.is_open] if c.category == "linear" else []
        rows, cursor = self._page(c, self._rows(c, m, orders, algos), limit)
        return {"category": c.category, "list": rows, "nextPageCursor": cursor}

    @staticmethod
    def _page(c: Call, rows: list[T], limit: int) -> tuple[list[T], str]:
        """One page of ``rows`` from the request's ``cursor``, and the cursor of the next page ("" on the last):
        Bybit pages its order and execution listings by an opaque cursor, ``limit`` rows at a time."""
        raw = str(c.params.get("cursor") or "")
        try:
            start = int(raw.removeprefix("page_")) if raw else 0
        except ValueError:
            raise params_error("params error: cursor invalid") from None
        page = rows[start : start + limit]
        return page, f"page_{start + limit}" if start + limit < len(rows) else ""

    def _rows(self, c: Call, m: Market | None, orders: list[SandboxOrder], algos: list[AlgoOrder]) -> list[dict[str, object]]:
        """Order rows (orders, then linear conditional orders that placed none), filtered by symbol and orderFilter."""
        flt = c.params.get("orderFilter")
        rows = []
        for o in orders:
            if self.ex.visible(o) and (not flt or self.conditional.matches_filter(flt, o.algo_id or o.order_id)):
                rows.append(self._order_row(c, o))
        for a in algos:
            if (m is None or a.symbol == m.spec.symbol) and not a.actual_order_id and self.ex.visible(a):
                if not flt or self.conditional.matches_filter(flt, a.algo_id):
                    rows.append(self.conditional.algo_row(c.acct, a))
        return rows

    def _named(self, c: Call, m: Market | None) -> list[dict[str, object]]:
        """The order an orderId / orderLinkId names, whatever its status (ccxt's fetch_order)."""
        order_id, link = c.params.get("orderId"), c.params.get("orderLinkId")
        if c.category == "linear":
            algo = next(
                (
                    a
                    for a in c.acct.algo_orders.values()
                    if (order_id and str(a.algo_id) == order_id) or (link and a.client_algo_id == link)
                ),
                None,
            )
            if algo is not None and (m is None or algo.symbol == m.spec.symbol):
                actual = c.acct.orders.get(algo.actual_order_id) if algo.actual_order_id else None
                return [self._order_row(c, actual) if actual is not None else self.conditional.algo_row(c.acct, algo)]
        if m is None:  # the order names its market
            found = next((o for o in c.acct.orders.values() if str(o.order_id) == order_id or o.client_id == link), None)
            c.params["symbol"] = wire.name(self.ex.markets[(found.kind, found.symbol)].spec) if found is not None else ""
        try:
            return [self._order_row(c, self._find(c))]
        except BybitError:
            return []

    def _history(self, c: Call) -> object:
        m = self._market(c, required=False)
        limit = self._int(c, "limit", 20, 1, 50)
        start = self._int(c, "startTime", 0, 0, 2**62)
        end = self._int(c, "endTime", 2**62, 0, 2**62)
        status = c.params.get("orderStatus")
        order_id, link = c.params.get("orderId"), c.params.get("orderLinkId")
        orders = [
            o
            for o in reversed(c.acct.orders.values())
            if o.kind == c.category
            and (m is None or o.symbol == m.spec.symbol)
            and start <= o.created_ms <= end
            and (not order_id or str(o.algo_id or o.order_id) == order_id)
            and (not link or o.client_id == link)
        ]
        algos = [
            a
            for a in reversed(c.acct.algo_orders.values())
            if c.category == "linear"
            and not a.actual_order_id
            and start <= a.created_ms <= end
            and (not order_id or str(a.algo_id) == order_id)
            and (not link or a.client_algo_id == link)
        ]
        rows, cursor = self._page(c, [r for r in self._rows(c, m, orders, algos) if not status or r["orderStatus"] == status], limit)
        return {"category": c.category, "list": [wire.history_row(r, c.category) for r in rows], "nextPageCursor": cursor}

    def _window(self, c: Call) -> tuple[int, int]:
        """``startTime``..``endTime`` of an execution listing, as Bybit reads them: at most 7 days; only a start: the
        7 days from it; only an end: the 7 days up to it; neither: the last 7 days."""
        start = self._int(c, "startTime", -1, 0, 2**62)
        end = self._int(c, "endTime", -1, 0, 2**62)
        if start >= 0 and end >= 0:
            if end - start > EXECUTION_WINDOW_MS:
                raise params_error("params error: The time range between startTime and endTime cannot exceed 7 days")
            return start, end
        if start >= 0:
            return start, start + EXECUTION_WINDOW_MS
        end = end if end >= 0 else self.ex.now_ms()
        return end - EXECUTION_WINDOW_MS, end

    def _executions(self, c: Call) -> object:
        m = self._market(c, required=False)
        limit = self._int(c, "limit", 50, 1, 100)
        start, end = self._window(c)
        if c.params.get("execType") == "Funding":
            fundings, cursor = self._page(c, self._fundings(c, m, start, end), limit)
            return {"category": c.category, "list": fundings, "nextPageCursor": cursor}
        if c.params.get("execType") not in (None, "", "Trade") or not self.ex.faults.user_trade_events:
            return {"category": c.category, "list": [], "nextPageCursor": ""}
        order_id = c.params.get("orderId")
        hidden = {o.order_id for o in c.acct.orders.values() if not self.ex.visible(o)}
        rows = [
            f
            for f in reversed(c.acct.fills)
            if f.kind == c.category
            and (m is None or f.symbol == m.spec.symbol)
            and start <= f.time_ms <= end
            and (not order_id or order_id in (str(f.order_id), str(getattr(c.acct.orders.get(f.order_id), "algo_id", ""))))
            and f.order_id not in hidden
        ]
        rows, cursor = self._page(c, rows, limit)
        out = []
        for f in rows:
            spec = self.ex.markets[(f.kind, f.symbol)].spec
            o = c.acct.orders.get(f.order_id)
            unit = self.market_units.get(f.order_id, "") if f.kind == "spot" else ""
            row = wire.execution(spec, f, o, self.ex.mark(f.symbol) if f.kind == "linear" else None, unit)
            if o is not None:
                row["orderLinkId"] = self.link_id(o)
                if o.algo_id:
                    row["orderId"] = str(o.algo_id)
            out.append(row)
        return {"category": c.category, "list": out, "nextPageCursor": cursor}

    def _fundings(self, c: Call, m: Market | None, start: int, end: int) -> list[dict[str, object]]:
        """``execType=Funding`` (ccxt's fetchFundingHistory): the core's funding settlements in the window, newest
        first (``wire.funding_execution``), paged like every execution listing."""
        if c.category != "linear":
            return []
        return [
            wire.funding_execution(self.ex.markets[("linear", r.symbol)].spec, r)
            for r in reversed(c.acct.income)
            if r.kind == "FUNDING_FEE" and (m is None or r.symbol == m.spec.symbol) and start <= r.time_ms <= end
        ]
