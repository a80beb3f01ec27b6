"""HTTP front of the sandbox: Binance's REST routes, auth, limits, faults and the admin API.

Routes are a table of (method, path) -> handler so that every request goes
through the same pipeline: fault injection -> request weight -> auth ->
handler -> rate-limit headers. Admin routes (``/admin/*``) skip the pipeline
and only answer loopback clients.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aiohttp import web

from . import countdown, public, spot_params, wire
from . import errors as E
from .accounts import Account, AlgoOrder, SandboxOrder
from .exchange import BRACKETS, SandboxExchange
from .faults import Faults
from .limits import Limits, RateLimited, family_of, weight_of
from .order_lists import OrderList
from .streams import StreamHub
from .wire import s as s_

log = logging.getLogger("planar.sandbox")
SIGNATURE_RE = re.compile(r"&?signature=[^&]*")
Handler = Callable[["Ctx"], Awaitable[Any] | Any]


@dataclass
class Ctx:
    """One API request after parsing: merged params and the authenticated account."""

    request: web.Request
    params: dict[str, str]
    account: Account | None
    kind: str  # spot | linear (inverse | option: exchangeInfo only)
    orders_counted: bool = False  # a new-order request: its answer carries X-MBX-ORDER-COUNT-*


@dataclass(frozen=True)
class Route:
    handler: Handler
    kind: str
    auth: str  # none | key | signed


BATCH_CANCEL_MAX = 10


def batch_ids(params: dict[str, str]) -> tuple[list[str], str]:
    """The ids of ``DELETE /fapi/v1/batchOrders`` and how they name orders (``orderId`` / ``origClientOrderId``).

    Binance takes ``orderIdList`` (``[1234567,2345678]``) or ``origClientOrderIdList`` (``["id_1","id_2"]``), one of
    the two, at most ten ids; the parameter names are matched whatever their case (ccxt sends them in lower case)."""
    lists = {k.lower(): v for k, v in params.items() if k.lower() in ("orderidlist", "origclientorderidlist")}
    if not lists:
        raise E.mandatory("orderIdList")
    if len(lists) > 1:
        raise E.ApiError(400, -1128, "Combination of optional parameters invalid.")
    ((name, raw),) = lists.items()
    label = "orderIdList" if name == "orderidlist" else "origClientOrderIdList"
    try:
        ids = json.loads(raw)
    except ValueError:
        ids = None
    if not isinstance(ids, list) or not ids or len(ids) > BATCH_CANCEL_MAX or not all(isinstance(i, (int, str)) and str(i) for i in ids):
        raise E.ApiError(400, -1130, f"Data sent for parameter '{label}' is not valid.")
    if label == "orderIdList" and not all(str(i).isdigit() for i in ids):
        raise E.ApiError(400, -1130, f"Data sent for parameter '{label}' is not valid.")
    return [str(i) for i in ids], "orderId" if label == "orderIdList" else "origClientOrderId"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class SandboxServer:
    """The sandbox exchange served over HTTP and websockets on loopback."""

    def __init__(
        self, exchange: SandboxExchange, host: str = "127.0.0.1", port: int = 0, allow_non_loopback: bool = False, tick_s: float = 0.05
    ) -> None:
        if not is_loopback(host) and not allow_non_loopback:
            raise ValueError(f"refusing to bind the sandbox to non-loopback address {host!r} (pass allow_non_loopback=True)")
        self.ex = exchange
        self.host, self.port = host, port
        self.tick_s = tick_s
        self.hub = self._make_hub()
        self.routes: dict[tuple[str, str], Route] = {}
        self._register_routes()
        self.app = web.Application(middlewares=[self._pipeline], client_max_size=1024 * 1024)
        self.app.router.add_route("*", "/admin/{name}", self._admin)
        self.hub.add_routes(self.app)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []

    def _make_hub(self) -> StreamHub:
        """The websocket side of this dialect (another dialect's server overrides it)."""
        return StreamHub(self.ex)

    # ----------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    async def start(self) -> SandboxServer:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]
        self._tasks.append(asyncio.create_task(self._matcher(), name="sandbox-matcher"))
        self._tasks.append(asyncio.create_task(self.hub.run_market_streams(), name="sandbox-streams"))
        self._tasks.append(asyncio.create_task(self._ws_dropper(), name="sandbox-ws-dropper"))
        self._tasks.append(asyncio.create_task(self._key_expirer(), name="sandbox-listen-keys"))
        return self

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.hub.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SandboxServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _matcher(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                self._expire_timers()  # the dead-man's switches run whether matching is paused or not
                self.ex.match_resting()
            except Exception:  # pragma: no cover - a bug here must not kill the exchange
                log.exception("matcher tick failed")

    def _expire_timers(self) -> None:
        """The dead-man's switches of the dialect, on every matcher tick (Binance: USDⓈ-M ``countdownCancelAll``)."""
        countdown.expire(self.ex)

    async def _key_expirer(self) -> None:
        """Listen keys past their lifetime expire; connections past ``ws_max_age_s`` are cut."""
        while True:
            await asyncio.sleep(0.2)
            for key in list(self.hub.key_touched):
                if not self.hub.key_alive(key):
                    self.hub.expire_key(key, notify=True)
            try:
                await self.hub.cut_old_connections()
            except Exception:  # pragma: no cover - a bug here must not stop key expiry
                log.exception("cutting old websocket connections failed")

    async def _ws_dropper(self) -> None:
        while True:
            every = self.ex.faults.ws_drop_every_s
            await asyncio.sleep(every if every > 0 else 0.5)
            if self.ex.faults.ws_drop_every_s > 0:
                await self.hub.close_all()

    # ----------------------------------------------------------------- pipeline
    @web.middleware
    async def _pipeline(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.path.startswith("/admin/"):
            if not is_loopback(request.remote or ""):
                return web.json_response({"error": "admin API is loopback only"}, status=403)
            return await handler(request)
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await handler(request)
        faults = self.ex.faults
        rng = self.ex.rng
        delay = faults.delay_s(rng)
        if delay:
            await asyncio.sleep(delay)
        if faults.ban:
            return self._error(E.ApiError(418, -1003, "Way too much request weight used; IP banned."), retry_after=30)
        if faults.roll(rng, faults.timeout_rate):
            await asyncio.sleep(faults.hang_s)
            return self._error(E.ApiError(504, -1007, "Timeout waiting for response from backend server."))
        if faults.roll(rng, faults.error_rate):
            return web.Response(status=503, text="Service Unavailable")
        if faults.roll(rng, faults.rate_limit_rate):
            return self._error(E.ApiError(429, -1003, "Too many requests; injected fault."), retry_after=1)
        ip = request.remote or "?"
        now = self.ex.now_ms()
        family = family_of(request.path)  # weight is per IP and per API (spot, futures, sapi), never per key
        try:
            used = self.ex.limiter.charge(ip, family, weight_of(request.method, request.path, request.query), now)
        except RateLimited as exc:
            return self._error(exc, retry_after=exc.retry_after_s)
        response = await handler(request)
        if faults.answer_delay_ms:
            await asyncio.sleep(faults.answer_delay_ms / 1000)
        if faults.absurd_values and isinstance(response, web.Response) and response.status == 200 and response.body:
            response = self._absurd(request.path, bytes(response.body))  # type: ignore[arg-type]
        response.headers[self.ex.limiter.weight_header(family)] = str(used)
        if faults.roll(rng, faults.malformed_rate) and isinstance(response, web.Response) and response.body:
            body = bytes(response.body)  # type: ignore[arg-type]
            response.body = body[: max(1, len(body) // 2)]
        return response

    @staticmethod
    def _absurd(path: str, body: bytes) -> web.Response:
        """Well-formed JSON with impossible values: negative balances, zero prices."""
        data = json.loads(body)
        if path.endswith("/account") and isinstance(data, dict):
            for b in data.get("balances", []):
                b["free"] = "-" + b["free"].lstrip("-") if b["free"] != "0" else "-1"
        elif "ticker" in path:
            for row in data if isinstance(data, list) else [data]:
                for k in ("lastPrice", "price", "bidPrice", "askPrice", "openPrice", "highPrice", "lowPrice"):
                    if k in row:
                        row[k] = "0"
        return web.json_response(data)

    @staticmethod
    def _error(exc: E.ApiError, retry_after: int | None = None) -> web.Response:
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        return web.json_response(exc.body(), status=exc.status, headers=headers)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        route = self.routes.get((request.method, request.path))
        if route is None:
            if any(path == request.path for (_, path) in self.routes):
                return self._error(E.ApiError(405, -1000, f"Method {request.method} not allowed."))
            return self._error(E.ApiError(404, -1000, f"Unknown endpoint {request.path}."))
        body = (await request.text()) if request.can_read_body else ""
        params: dict[str, str] = {}
        if body:
            from urllib.parse import parse_qsl

            params.update(parse_qsl(body, keep_blank_values=True))
        params.update(request.query)  # Binance: a parameter sent in both, the query string's is used
        try:
            account = self._authenticate(request, route, params, body)
            ctx = Ctx(request, params, account, route.kind)
            with self.ex.at_one_instant():  # handlers do not await: the whole answer is priced at one instant
                result = route.handler(ctx)
                if asyncio.iscoroutine(result):
                    result = await result
        except E.ApiError as exc:
            return self._error(exc)
        if isinstance(result, web.StreamResponse):
            return result
        response = web.json_response(result)
        if ctx.orders_counted and ctx.account is not None:  # Binance: on successful order answers, one per interval
            response.headers.update(self.ex.limiter.order_headers(ctx.account.api_key, family_of(request.path), self.ex.now_ms()))
        return response

    def _authenticate(self, request: web.Request, route: Route, params: dict[str, str], body: str) -> Account | None:
        if route.auth == "none":
            return None
        key = request.headers.get("X-MBX-APIKEY", "")
        if not key:
            raise E.api_key_format()
        acct = self.ex.accounts.get(key)
        if acct is None or not self.ex.faults.private_api:
            raise E.bad_api_key()
        if route.auth == "key":
            return acct
        signature = params.pop("signature", None)
        if not signature:
            raise E.mandatory("signature")
        payload = SIGNATURE_RE.sub("", request.rel_url.raw_query_string) + SIGNATURE_RE.sub("", body)  # as sent (still percent-encoded)
        expected = hmac.new(acct.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):  # Binance: HMAC signatures are not case-sensitive
            raise E.bad_signature()
        spot = request.path.startswith("/api/")
        ts = _request_time(params.get("timestamp", ""), spot)
        window = _recv_window(params.get("recvWindow"), spot)
        now = self.ex.now_ms()
        if ts > now + 1000 or now - ts > window:
            raise E.bad_timestamp()
        return acct

    # ----------------------------------------------------------------- admin
    async def _admin(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body: dict = {}
        if request.method == "POST" and request.can_read_body:
            try:
                body = await request.json()
            except json.JSONDecodeError:
                return web.json_response({"error": "body must be JSON"}, status=400)
        try:
            if name == "faults":
                if request.method == "POST":
                    self.ex.faults = Faults.model_validate(body)
                return web.json_response(self.ex.faults.model_dump())
            if name == "limits":
                if request.method == "POST":
                    self.ex.limiter.limits = Limits.model_validate({**self.ex.limiter.limits.model_dump(), **body})
                    self.ex.limiter.banned_until.clear()
                return web.json_response(self.ex.limiter.limits.model_dump())
            if name == "rate_limits":  # refusals (429 by kind, 418), bans and the weight used now
                return web.json_response(self.ex.limiter.report(self.ex.now_ms()))
            if name == "snapshot":
                return web.json_response(self.ex.snapshot())
            if name == "accounts" and request.method == "POST":
                balances = {k: Decimal(str(v)) for k, v in (body.get("balances") or {"USDT": 10_000}).items()}
                acct = self.ex.add_account(balances, body.get("api_key"), body.get("api_secret"))
                acct.can_withdraw = bool(body.get("can_withdraw", False))
                return web.json_response({"api_key": acct.api_key, "api_secret": acct.api_secret})
            if name == "price" and request.method == "POST":
                m = self.ex.market(body.get("kind", "spot"), body.get("symbol"))
                factor = float(body.get("factor", 1.0))
                if not math.isfinite(factor) or factor <= 0:
                    return web.json_response({"error": f"factor must be a finite number > 0, got {body.get('factor')!r}"}, status=400)
                m.shock = factor
                if "basis_bps" in body:
                    m.basis_bps = float(body["basis_bps"])
                self.ex.match_resting()
                self.hub.publish_now()
                return web.json_response(
                    {
                        "symbol": m.spec.symbol,
                        "kind": m.spec.kind,
                        "price": self.ex.mid(m),
                        **({"mark": float(self.ex.mark(m.spec.symbol))} if m.spec.kind == "linear" else {}),
                    }
                )
            if name == "funding" and request.method == "POST":  # settle a funding period now (8 h of path time, on demand)
                m = self.ex.market("linear", body.get("symbol"))
                rate = body.get("rate")
                for acct in list(self.ex.accounts.values()):
                    self.ex.settle_funding(acct, m.spec.symbol, self.ex.now_ms(), None if rate is None else Decimal(str(rate)))
                return web.json_response({"symbol": m.spec.symbol, "settled": True})
            if name == "matching" and request.method == "POST":
                self.ex.matching_paused = bool(body.get("paused", False))
                return web.json_response({"paused": self.ex.matching_paused})
            if name == "book" and request.method == "POST":
                for field_name, value in body.items():
                    if not hasattr(self.ex.book, field_name):
                        return web.json_response({"error": f"unknown book field {field_name}"}, status=400)
                    setattr(self.ex.book, field_name, type(getattr(self.ex.book, field_name))(value))
                return web.json_response(vars(self.ex.book))
        except E.ApiError as exc:
            return web.json_response(exc.body(), status=exc.status)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"error": f"unknown admin endpoint {request.method} {name}"}, status=404)

    # ----------------------------------------------------------------- routes
    def _register_routes(self) -> None:
        ex = self.ex

        def add(method: str, path: str, handler: Handler, kind: str = "spot", auth: str = "none") -> None:
            self.routes[(method, path)] = Route(handler, kind, auth)

        for prefix, kind in (("/api/v3", "spot"), ("/fapi/v1", "linear")):
            add("GET", f"{prefix}/ping", lambda c: {}, kind)
            add("GET", f"{prefix}/time", lambda c: {"serverTime": ex.now_ms()}, kind)
            add("GET", f"{prefix}/exchangeInfo", lambda c: public.exchange_info(ex, c.kind), kind)
            add("GET", f"{prefix}/klines", lambda c: public.klines(ex, c.kind, c.params), kind)
            add("GET", f"{prefix}/depth", lambda c: public.depth(ex, c.kind, c.params), kind)
            add("GET", f"{prefix}/trades", lambda c: public.recent_trades(ex, c.kind, c.params), kind)
            add("GET", f"{prefix}/ticker/24hr", lambda c: public.per_symbol(ex, c.kind, c.params, public.ticker_24h), kind)
            add("GET", f"{prefix}/ticker/price", lambda c: public.per_symbol(ex, c.kind, c.params, public.price_ticker), kind)
            add("GET", f"{prefix}/ticker/bookTicker", lambda c: public.per_symbol(ex, c.kind, c.params, public.book_ticker), kind)
            add("POST", f"{prefix}/order", self._new_order, kind, "signed")
            add("GET", f"{prefix}/order", self._get_order, kind, "signed")
            add("DELETE", f"{prefix}/order", self._cancel_order, kind, "signed")
            add("GET", f"{prefix}/openOrders", self._open_orders, kind, "signed")
            add("GET", f"{prefix}/allOrders", self._all_orders, kind, "signed")
        add("GET", "/api/v3/aggTrades", lambda c: public.agg_trades(ex, "spot", c.params), "spot")
        add("GET", "/fapi/v1/aggTrades", lambda c: public.agg_trades(ex, "linear", c.params), "linear")
        add("GET", "/fapi/v1/fundingRate", lambda c: public.funding_rates(ex, c.params), "linear")
        add(
            "GET",
            "/fapi/v1/markPriceKlines",
            lambda c: [r[:5] + ["0", r[6], "0", 0, "0", "0", "0"] for r in public.klines(ex, "linear", c.params)],
            "linear",
        )
        add("GET", "/sapi/v1/system/status", lambda c: {"status": 0, "msg": "normal"}, "spot")
        add("GET", "/sapi/v1/asset/tradeFee", self._trade_fee, "spot", "signed")
        add("GET", "/sapi/v1/capital/config/getall", self._coins, "spot", "signed")
        add("GET", "/sapi/v1/margin/allPairs", lambda c: [], "spot", "key")  # no spot margin in the sandbox
        add("GET", "/sapi/v1/margin/isolated/allPairs", lambda c: [], "spot", "signed")  # nor isolated margin
        add("GET", "/sapi/v1/spot/delist-schedule", lambda c: [], "spot", "signed")
        add("GET", "/fapi/v1/openOrder", self._open_order, "linear", "signed")
        add("POST", "/fapi/v1/algoOrder", self._new_algo, "linear", "signed")
        add("GET", "/fapi/v1/algoOrder", self._get_algo, "linear", "signed")
        add("DELETE", "/fapi/v1/algoOrder", self._cancel_algo, "linear", "signed")
        add("GET", "/fapi/v1/openAlgoOrders", self._open_algos, "linear", "signed")
        add("GET", "/fapi/v1/allAlgoOrders", self._all_algos, "linear", "signed")
        add("DELETE", "/fapi/v1/algoOpenOrders", self._cancel_all_algos, "linear", "signed")
        add("GET", "/api/v3/avgPrice", self._avg_price, "spot")
        add("POST", "/api/v3/orderList/oco", lambda c: self._new_oco(c, legacy=False), "spot", "signed")
        add("POST", "/api/v3/order/oco", lambda c: self._new_oco(c, legacy=True), "spot", "signed")
        add("POST", "/api/v3/order/test", self._test_order, "spot", "signed")
        add("GET", "/api/v3/orderList", lambda c: self._list_json(c, ex.find_list(c.account, c.params)), "spot", "signed")  # type: ignore[arg-type]
        add("DELETE", "/api/v3/orderList", self._cancel_oco, "spot", "signed")
        add(
            "GET",
            "/api/v3/openOrderList",
            lambda c: [
                self._list_json(c, o)
                for o in c.account.order_lists.values()  # type: ignore[union-attr]
                if o.status == "EXECUTING"
            ],
            "spot",
            "signed",
        )
        add("GET", "/api/v3/allOrderList", lambda c: [self._list_json(c, o) for o in c.account.order_lists.values()], "spot", "signed")  # type: ignore[union-attr]
        add("GET", "/fapi/v1/positionSide/dual", lambda c: {"dualSidePosition": c.account.hedge_mode}, "linear", "signed")  # type: ignore[union-attr]
        add("POST", "/fapi/v1/positionSide/dual", self._position_side, "linear", "signed")
        add("GET", "/fapi/v1/multiAssetsMargin", lambda c: {"multiAssetsMargin": False}, "linear", "signed")
        add("GET", "/fapi/v1/income", self._income, "linear", "signed")
        add("GET", "/fapi/v1/symbolConfig", self._symbol_config, "linear", "signed")
        add(
            "GET",
            "/fapi/v1/accountConfig",
            lambda c: {
                "feeTier": 0,
                "canTrade": True,
                "canDeposit": True,
                "canWithdraw": False,
                "dualSidePosition": c.account.hedge_mode,  # type: ignore[union-attr]
                "updateTime": 0,
                "multiAssetsMargin": False,
                "tradeGroupId": -1,
            },
            "linear",
            "signed",
        )
        add("GET", "/fapi/v2/ticker/price", lambda c: public.per_symbol(ex, "linear", c.params, public.price_ticker), "linear")
        add("GET", "/fapi/v1/premiumIndex", lambda c: public.per_symbol(ex, "linear", c.params, public.premium_index), "linear")
        # COIN-M and options list nothing here; ccxt's load_markets asks for COIN-M's (and options' when enabled)
        add("GET", "/dapi/v1/exchangeInfo", lambda c: public.exchange_info(ex, "inverse"), "inverse")
        add("GET", "/eapi/v1/exchangeInfo", lambda c: public.exchange_info(ex, "option"), "option")
        add("DELETE", "/api/v3/openOrders", self._cancel_all)
        self.routes[("DELETE", "/api/v3/openOrders")] = Route(self._cancel_all, "spot", "signed")
        add("DELETE", "/fapi/v1/allOpenOrders", self._cancel_all, "linear", "signed")
        add("DELETE", "/fapi/v1/batchOrders", self._cancel_batch, "linear", "signed")
        add("POST", "/fapi/v1/countdownCancelAll", lambda c: countdown.arm(ex, c.account, c.params), "linear", "signed")  # type: ignore[arg-type]
        add("GET", "/api/v3/account", lambda c: wire.spot_account(c.account, ex.now_ms()), "spot", "signed")  # type: ignore[arg-type]
        add("GET", "/api/v3/myTrades", self._my_trades, "spot", "signed")
        add("GET", "/fapi/v1/userTrades", self._my_trades, "linear", "signed")
        for v in ("v2", "v3"):
            add("GET", f"/fapi/{v}/account", lambda c, v=v: wire.futures_account(ex, c.account, ex.now_ms(), v), "linear", "signed")  # type: ignore[misc]
            add("GET", f"/fapi/{v}/balance", lambda c: wire.futures_balance(ex, c.account, ex.now_ms()), "linear", "signed")  # type: ignore[arg-type]
            add(
                "GET",
                f"/fapi/{v}/positionRisk",
                lambda c, v=v: wire.futures_positions(  # type: ignore[misc]
                    ex, c.account, (c.params.get("symbol") or "").upper() or None, v
                ),
                "linear",
                "signed",
            )
        add("POST", "/fapi/v1/leverage", self._leverage, "linear", "signed")
        add("POST", "/fapi/v1/marginType", self._margin_type, "linear", "signed")
        add("GET", "/fapi/v1/leverageBracket", self._brackets, "linear", "signed")
        add("GET", "/sapi/v1/account/apiRestrictions", self._api_restrictions, "spot", "signed")
        for method in ("POST", "PUT", "DELETE"):
            add(method, "/api/v3/userDataStream", self._listen_key, "spot", "key")
            add(method, "/fapi/v1/listenKey", self._listen_key, "linear", "key")

    # ----------------------------------------------------------------- private handlers
    def _count_orders(self, c: Ctx, count: int) -> None:
        """Charge new orders to the account's order-rate intervals (per account, whatever the IP or key)."""
        assert c.account is not None
        self.ex.limiter.charge_order(c.account.api_key, family_of(c.request.path), c.request.remote or "?", self.ex.now_ms(), count)
        c.orders_counted = True

    def _format_order(self, kind: str, order: SandboxOrder) -> dict:
        return wire.spot_order(order) if kind == "spot" else wire.futures_order(order, self.ex.markets[(kind, order.symbol)].spec)

    async def _new_order(self, c: Ctx) -> Any:
        acct = c.account
        assert acct is not None
        self._count_orders(c, 1)
        if c.kind == "spot":
            otype = (c.params.get("type") or "").upper()
            spot_params.check(otype, c.params)
            answer = spot_params.response_type(otype, c.params)
        order, fills = self.ex.place_order(acct, c.kind, c.params)
        self._maybe_lose_ack(c)
        if c.kind == "spot":
            return wire.spot_order_result(order, fills, answer)
        return self._format_order(c.kind, order)

    def _test_order(self, c: Ctx) -> dict:
        """``POST /api/v3/order/test``: the order checked as ``POST /api/v3/order`` checks it, up to the matching
        engine (Binance: "creates and validates a new order but does not send it into the matching engine"), so no
        balance, no would-match and no order count; ``{}``, or the commission rates with ``computeCommissionRates``.
        Why: ccxt's ``create_order(..., params={"test": True})`` and other clients' dry runs call it; unserved, they
        met a 404 here and a validation on Binance."""
        assert c.account is not None
        otype = (c.params.get("type") or "").upper()
        spot_params.check(otype, c.params)
        spot_params.response_type(otype, c.params)
        wants_rates = (c.params.get("computeCommissionRates") or "false").lower()
        if wants_rates not in ("true", "false"):
            raise E.ApiError(400, -1130, "Invalid data sent for a parameter.")
        self.ex.place_order(c.account, "spot", c.params, validate_only=True)
        if wants_rates == "false":
            return {}
        zero = {"maker": "0.00000000", "taker": "0.00000000"}
        return {
            "standardCommissionForOrder": {"maker": s_(self.ex.maker_fee), "taker": s_(self.ex.taker_fee)},
            "specialCommissionForOrder": dict(zero),
            "taxCommissionForOrder": dict(zero),
            "discount": {"enabledForAccount": False, "enabledForSymbol": False, "discountAsset": "BNB", "discount": "0.00000000"},
        }

    def _get_order(self, c: Ctx) -> dict:
        return self._format_order(c.kind, self.ex.find_order(c.account, c.kind, c.params))  # type: ignore[arg-type]

    def _cancel_order(self, c: Ctx) -> dict:
        order = self.ex.cancel_order(c.account, c.kind, c.params)  # type: ignore[arg-type]
        if c.kind == "spot":
            return wire.spot_cancel(order, order.cancel_id)
        return self._format_order(c.kind, order)

    def _cancel_all(self, c: Ctx) -> Any:
        symbol = c.params.get("symbol")
        if not symbol:
            raise E.mandatory("symbol")
        orders = self.ex.cancel_all(c.account, c.kind, symbol)  # type: ignore[arg-type]
        if c.kind == "linear":
            return {"code": 200, "msg": "The operation of cancel all open order is done."}
        if not orders:
            raise E.ApiError(400, -2011, "Unknown order sent.")
        out: list[dict] = []  # an order list's legs answer as their list (rest-api.md's example), once
        lists: set[int] = set()
        for o in orders:
            if o.order_list_id <= 0:
                out.append(wire.spot_cancel(o, o.cancel_id))
            elif o.order_list_id not in lists:
                lists.add(o.order_list_id)
                out.append(self._list_json(c, c.account.order_lists[o.order_list_id], "cancelled"))  # type: ignore[union-attr]
        return out

    def _cancel_batch(self, c: Ctx) -> list[dict]:
        """``DELETE /fapi/v1/batchOrders``: up to ten orders named by ``orderIdList`` or ``origClientOrderIdList``
        (one of them, not both; JSON lists in the query string). The answer has one entry per id, in the order
        given: the cancelled order, or the error that id met (``-2011`` for an order that is not open)."""
        self.ex.market("linear", c.params.get("symbol"))
        ids, by = batch_ids(c.params)
        out: list[dict] = []
        for ref in ids:
            try:
                order = self.ex.cancel_order(c.account, "linear", {"symbol": c.params["symbol"], by: ref})  # type: ignore[arg-type]
                out.append(self._format_order("linear", order))
            except E.ApiError as exc:
                out.append(exc.body())
        return out

    def _open_orders(self, c: Ctx) -> list[dict]:
        symbol = c.params.get("symbol")
        if symbol:
            symbol = self.ex.market(c.kind, symbol).spec.symbol
        return [self._format_order(c.kind, o) for o in c.account.open_orders(c.kind, symbol) if self.ex.visible(o)]  # type: ignore[union-attr]

    def _all_orders(self, c: Ctx) -> list[dict]:
        m = self.ex.market(c.kind, c.params.get("symbol"))
        since = int(c.params.get("startTime") or 0)
        until = int(c.params.get("endTime") or 2**62)
        limit = int(c.params.get("limit") or 500)
        rows = [
            o
            for o in c.account.orders.values()  # type: ignore[union-attr]
            if o.kind == c.kind and o.symbol == m.spec.symbol and since <= o.created_ms <= until and self.ex.visible(o)
        ]
        return [self._format_order(c.kind, o) for o in rows[-limit:]]

    def _my_trades(self, c: Ctx) -> list[dict]:
        m = self.ex.market(c.kind, c.params.get("symbol"))
        if not self.ex.faults.user_trade_events:
            return []
        since = int(c.params.get("startTime") or 0)
        until = int(c.params.get("endTime") or 2**62)
        limit = int(c.params.get("limit") or 500)
        order_id = c.params.get("orderId")
        hidden = {o.order_id for o in c.account.orders.values() if not self.ex.visible(o)}  # type: ignore[union-attr]
        rows = [
            f
            for f in c.account.fills  # type: ignore[union-attr]
            if f.kind == c.kind
            and f.symbol == m.spec.symbol
            and since <= f.time_ms <= until
            and (order_id is None or str(f.order_id) == order_id)
            and f.order_id not in hidden
        ]
        if c.kind == "spot":
            return [wire.spot_trade(f) for f in rows[-limit:]]
        orders = c.account.orders  # type: ignore[union-attr]
        return [wire.futures_trade(f, m.spec, o.position_side if (o := orders.get(f.order_id)) else "BOTH") for f in rows[-limit:]]

    def _open_order(self, c: Ctx) -> dict:
        """Binance answers -2013 for an order that is no longer open (filled or cancelled), as for an unknown one."""
        order = self.ex.find_order(c.account, "linear", c.params)  # type: ignore[arg-type]
        if not order.is_open:
            raise E.order_not_found()
        return self._format_order("linear", order)

    # ----------------------------------------------------------------- spot OCO lists
    def _list_json(self, c: Ctx, olist: OrderList, reports: str = "") -> dict:
        return wire.order_list(olist, [c.account.orders[i] for i in olist.order_ids], reports)  # type: ignore[union-attr]

    def _new_oco(self, c: Ctx, legacy: bool) -> dict:
        acct = c.account
        assert acct is not None
        self._count_orders(c, 2)  # an OCO list is two orders on the unfilled-order count
        self.ex.market("spot", c.params.get("symbol"))
        return self._list_json(c, self.ex.place_oco(acct, c.params, legacy), "placed")

    def _cancel_oco(self, c: Ctx) -> dict:
        self.ex.market("spot", c.params.get("symbol"))
        return self._list_json(c, self.ex.cancel_list(c.account, c.params), "cancelled")  # type: ignore[arg-type]

    # ----------------------------------------------------------------- futures algo orders (conditional)
    def _algo_json(self, c: Ctx, algo: AlgoOrder) -> dict:
        return wire.algo_order(algo, self.ex.markets[("linear", algo.symbol)].spec, c.account.fills)  # type: ignore[union-attr]

    def _maybe_lose_ack(self, c: Ctx) -> None:
        self._maybe_lose_ack_of(c.request)

    def _maybe_lose_ack_of(self, request: web.Request) -> None:
        """The lost-acknowledgement fault: the order is booked; its answer never reaches the client (both dialects)."""
        if self.ex.faults.roll(self.ex.rng, self.ex.faults.lost_ack_rate):
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError()

    def _new_algo(self, c: Ctx) -> dict:
        acct = c.account
        assert acct is not None
        self._count_orders(c, 1)
        algo = self.ex.place_algo_order(acct, c.params)
        self._maybe_lose_ack(c)
        return wire.algo_order(algo, self.ex.markets[("linear", algo.symbol)].spec, query=False)

    def _cancel_algo(self, c: Ctx) -> dict:
        algo = self.ex.cancel_algo(c.account, c.params)  # type: ignore[arg-type]
        return {"algoId": algo.algo_id, "clientAlgoId": algo.client_algo_id, "code": "200", "msg": "success"}

    def _get_algo(self, c: Ctx) -> dict:
        algo = self.ex.find_algo(c.account, c.params)  # type: ignore[arg-type]
        if not self.ex.visible(algo):  # the invisibility fault hides new algo orders from queries like any order
            raise E.order_not_found()
        return self._algo_json(c, algo)

    def _open_algos(self, c: Ctx) -> list[dict]:
        symbol = c.params.get("symbol")
        sym = self.ex.market("linear", symbol).spec.symbol if symbol else None
        return [
            self._algo_json(c, a)
            for a in c.account.algo_orders.values()  # type: ignore[union-attr]
            if a.is_open and (sym is None or a.symbol == sym) and self.ex.visible(a)
        ]

    def _all_algos(self, c: Ctx) -> list[dict]:
        m = self.ex.market("linear", c.params.get("symbol"))
        since = int(c.params.get("startTime") or 0)
        until = int(c.params.get("endTime") or 2**62)
        limit = int(c.params.get("limit") or 100)
        rows = [
            a
            for a in c.account.algo_orders.values()  # type: ignore[union-attr]
            if a.symbol == m.spec.symbol and since <= a.created_ms <= until and self.ex.visible(a)
        ]
        return [self._algo_json(c, a) for a in rows[-limit:]]

    def _cancel_all_algos(self, c: Ctx) -> dict:
        if not c.params.get("symbol"):
            raise E.mandatory("symbol")
        self.ex.cancel_all_algo(c.account, c.params["symbol"])  # type: ignore[arg-type]
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def _avg_price(self, c: Ctx) -> dict:
        m = self.ex.market("spot", c.params.get("symbol"))
        return {"mins": 5, "price": s_(self.ex.average_price(m)), "closeTime": self.ex.now_ms()}

    def _position_side(self, c: Ctx) -> dict:
        dual = str(c.params.get("dualSidePosition", "")).lower()
        if dual not in ("true", "false"):
            raise E.mandatory("dualSidePosition")
        self.ex.set_position_mode(c.account, dual == "true")  # type: ignore[arg-type]
        return {"code": 200, "msg": "success"}

    def _trade_fee(self, c: Ctx) -> list[dict]:
        symbol = (c.params.get("symbol") or "").upper()
        return [
            {"symbol": sym, "makerCommission": s_(self.ex.maker_fee), "takerCommission": s_(self.ex.taker_fee)}
            for (kind, sym) in self.ex.markets
            if kind == "spot" and (not symbol or sym == symbol)
        ]

    def _coins(self, c: Ctx) -> list[dict]:
        acct = c.account
        assert acct is not None
        assets = sorted({m.spec.base for m in self.ex.markets.values()} | {m.spec.quote for m in self.ex.markets.values()} | set(acct.spot))
        out = []
        for a in assets:
            free, locked = acct.spot.get(a, [Decimal(0), Decimal(0)])
            net = {
                "network": a,
                "coin": a,
                "name": a,
                "isDefault": True,
                "depositEnable": True,
                "withdrawEnable": False,
                "depositDesc": "",
                "withdrawDesc": "sandbox: withdrawals disabled",
                "withdrawFee": "0",
                "withdrawMin": "0",
                "withdrawMax": "0",
                "withdrawIntegerMultiple": "0.00000001",
                "minConfirm": 1,
                "unLockConfirm": 0,
                "addressRegex": "",
                "memoRegex": "",
                "specialTips": "",
                "busy": False,
                "sameAddress": False,
            }
            out.append(
                {
                    "coin": a,
                    "name": a,
                    "depositAllEnable": True,
                    "withdrawAllEnable": False,
                    "free": s_(free),
                    "locked": s_(locked),
                    "freeze": "0",
                    "withdrawing": "0",
                    "ipoing": "0",
                    "ipoable": "0",
                    "storage": "0",
                    "isLegalMoney": False,
                    "trading": True,
                    "networkList": [net],
                }
            )
        return out

    def _income(self, c: Ctx) -> list[dict]:
        """Realized PnL and commission of every futures fill, funding fees and insurance clearance, oldest first."""
        acct = c.account
        assert acct is not None
        symbol = (c.params.get("symbol") or "").upper()
        kind = (c.params.get("incomeType") or "").upper()
        start = int(c.params.get("startTime") or 0)
        end = int(c.params.get("endTime") or 2**62)
        limit = max(1, min(int(c.params.get("limit") or 100), 1000))
        rows = []
        for f in acct.fills:
            if f.kind != "linear" or (symbol and f.symbol != symbol) or not start <= f.time_ms <= end:
                continue
            if f.realized_pnl:
                rows.append(
                    {
                        "symbol": f.symbol,
                        "incomeType": "REALIZED_PNL",
                        "income": s_(f.realized_pnl),
                        "asset": "USDT",
                        "info": str(f.trade_id),
                        "time": f.time_ms,
                        "tranId": f.trade_id * 10 + 1,
                        "tradeId": str(f.trade_id),
                    }
                )
            rows.append(
                {
                    "symbol": f.symbol,
                    "incomeType": "COMMISSION",
                    "income": s_(-f.commission),
                    "asset": f.commission_asset,
                    "info": str(f.trade_id),
                    "time": f.time_ms,
                    "tranId": f.trade_id * 10 + 2,
                    "tradeId": str(f.trade_id),
                }
            )
        for r in acct.income:
            if (not symbol or r.symbol == symbol) and start <= r.time_ms <= end:
                rows.append(
                    {
                        "symbol": r.symbol,
                        "incomeType": r.kind,
                        "income": s_(r.amount),
                        "asset": "USDT",
                        "info": r.kind,
                        "time": r.time_ms,
                        "tranId": r.tran_id,
                        "tradeId": "",
                    }
                )
        rows.sort(key=lambda r: (r["time"], r["tranId"]))
        if kind:
            rows = [r for r in rows if r["incomeType"] == kind]
        return rows[:limit]

    def _symbol_config(self, c: Ctx) -> list[dict]:
        acct = c.account
        assert acct is not None
        symbol = (c.params.get("symbol") or "").upper()
        return [
            {
                "symbol": sym,
                "marginType": "ISOLATED" if self.ex.isolated(acct, sym) else "CROSSED",
                "isAutoAddMargin": False,
                "leverage": self.ex.leverage_of(acct, sym),
                "maxNotionalValue": "1000000",
            }
            for (kind, sym) in self.ex.markets
            if kind == "linear" and (not symbol or sym == symbol)
        ]

    def _leverage(self, c: Ctx) -> dict:
        try:
            lev = int(c.params.get("leverage", ""))
        except ValueError:
            raise E.mandatory("leverage") from None
        symbol = (c.params.get("symbol") or "").upper()
        self.ex.set_leverage(c.account, symbol, lev)  # type: ignore[arg-type]
        return {"leverage": lev, "maxNotionalValue": "1000000", "symbol": symbol}

    def _margin_type(self, c: Ctx) -> dict:
        m = self.ex.market("linear", c.params.get("symbol"))
        mt = (c.params.get("marginType") or "").upper()
        if mt not in ("ISOLATED", "CROSSED"):
            raise E.ApiError(400, -4044, "The margin type is invalid.")
        self.ex.set_margin_type(c.account, m.spec.symbol, mt == "ISOLATED")  # type: ignore[arg-type]
        return {"code": 200, "msg": "success"}

    def _brackets(self, c: Ctx) -> list[dict]:
        symbol = (c.params.get("symbol") or "").upper()
        tiers = [
            {
                "bracket": i + 1,
                "initialLeverage": lev,
                "notionalCap": cap,
                "notionalFloor": floor,
                "maintMarginRatio": float(rate),
                "cum": float(cum),
            }
            for i, (floor, cap, rate, cum, lev) in enumerate(BRACKETS)
        ]
        return [{"symbol": sym, "brackets": tiers} for (kind, sym) in self.ex.markets if kind == "linear" and (not symbol or sym == symbol)]

    def _api_restrictions(self, c: Ctx) -> dict:
        acct = c.account
        assert acct is not None
        return {
            "ipRestrict": False,
            "createTime": self.ex.wall_anchor_ms,
            "enableReading": True,
            "enableSpotAndMarginTrading": True,
            "enableWithdrawals": acct.can_withdraw,
            "enableInternalTransfer": False,
            "enableMargin": False,
            "enableFutures": True,
            "permitsUniversalTransfer": False,
            "enableVanillaOptions": False,
        }

    def _listen_key(self, c: Ctx) -> dict:
        """Binance's listen keys: POST returns the account's active key (extending it) or a new one; PUT extends it
        (-1125 when there is none); DELETE closes it. A key expires ``listen_key_ttl_s`` after its last keepalive."""
        acct = c.account
        assert acct is not None
        hub, faults = self.hub, self.ex.faults
        now = self.ex.now_ms()
        active = [k for k in acct.listen_keys if hub.key_kind.get(k) == c.kind and hub.key_alive(k)]
        if c.request.method == "POST":
            key = active[0] if active else secrets.token_urlsafe(45)
            acct.listen_keys.add(key)
            hub.listen_keys[key] = acct
            hub.key_kind[key] = c.kind
            hub.key_touched[key] = now
            return {"listenKey": key}
        if c.request.method == "PUT" and faults.keepalive_failures > 0:
            faults.keepalive_failures -= 1
            raise E.ApiError(503, -1001, "Internal error; unable to process your request. Please try again.")
        wanted = c.params.get("listenKey")  # spot names the key; futures keeps the account's active one
        named = wanted if wanted is not None else (active[0] if active else None)
        if named is None or named not in active:
            raise E.ApiError(400, -1125, "This listenKey does not exist.")
        if c.request.method == "PUT":
            hub.key_touched[named] = now
        else:
            hub.expire_key(named, notify=False)
        return {}


def _request_time(text: str, spot: bool) -> float:
    """A signed request's ``timestamp`` in ms. Spot takes milliseconds or microseconds (Binance's "General API
    Information": a value of 16 digits or more is read as microseconds); USDⓈ-M documents milliseconds only."""
    try:
        ts = int(text)
    except ValueError:
        raise E.mandatory("timestamp") from None
    return ts / 1000 if spot and ts >= 10**15 else ts


def _recv_window(text: str | None, spot: bool) -> float:
    """``recvWindow`` in ms (5000 when absent): never above 60000 (-1102, as Binance answers); spot allows three
    decimals (microseconds), USDⓈ-M a whole number."""
    if not text:
        return 5000
    try:
        window = float(text) if spot and re.fullmatch(r"\d+(\.\d{1,3})?", text) else int(text)
    except ValueError:
        raise E.mandatory("recvWindow") from None
    if window > 60_000:
        raise E.ApiError(400, -1102, "'recvWindow' contains unexpected value. Cannot be greater than 60000.")
    return window
