"""Websocket side of the sandbox: market streams, the spot WebSocket-API user stream
and the futures listen-key user stream, laid out as ccxt.pro's binance expects:

* spot market streams     ``/stream/ws/<n>``   (SUBSCRIBE ``btcusdt@kline_1m`` ...)
* spot user data          ``/ws-api/v3``       (``userDataStream.subscribe.signature``)
* futures market streams  ``/fstream/market/ws/<n>``, ``/fstream/public/ws/<n>``
* futures user data       ``/fstream/private/ws?listenKey=...``

and as Binance documents them, for any other client (only the host changes):

* spot     ``/ws/<stream>`` (raw), ``/ws`` (SUBSCRIBE), ``/stream?streams=<a>/<b>`` (combined:
  ``{"stream": ..., "data": ...}``); a spot listen key as a stream name carries the account's events
* futures  the same under ``/fstream``: ``/fstream/ws/<stream>``, ``/fstream/ws``, ``/fstream/stream?streams=...``
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial

from aiohttp import WSMsgType, web

from . import public, wire
from .accounts import Account
from .exchange import Market, SandboxExchange

log = logging.getLogger("planar.sandbox.ws")


@dataclass(eq=False)
class Conn:
    ws: web.WebSocketResponse
    kind: str  # spot | linear
    streams: set[str] = field(default_factory=set)
    users: dict[str, int] = field(default_factory=dict)  # api key -> subscription id
    listen_key: str | None = None
    combined: bool = False  # /stream?streams=...: every message in a {"stream", "data"} envelope
    ws_api: bool = False  # the spot WebSocket API (user data as {"subscriptionId", "event"})
    connected_ms: int = 0
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(maxsize=10_000))

    def send(self, payload: object) -> None:
        try:
            self.queue.put_nowait(json.dumps(payload, separators=(",", ":")))
        except asyncio.QueueFull:  # a client that does not read loses messages, as on Binance
            log.warning("dropping websocket message: client queue full")


class StreamHub:
    """Owns every websocket connection and turns exchange events into stream messages."""

    def __init__(self, exchange: SandboxExchange, publish_every_s: float = 1.0) -> None:
        self.ex = exchange
        self.publish_every_s = publish_every_s
        self.conns: set[Conn] = set()
        self.listen_keys: dict[str, Account] = {}
        self.key_kind: dict[str, str] = {}  # listen key -> spot | linear
        self.key_touched: dict[str, float] = {}  # listen key -> exchange ms of its creation or last keepalive
        self._kline_open: dict[str, int] = {}  # kline stream -> open time of the candle last published
        self._prints_through: dict[str, int] = {}  # trade stream -> the time its prints were published through
        self._round_depth: dict[tuple[str, str], dict] = {}  # this round's diff per symbol, whatever the stream names
        self._wake = asyncio.Event()
        self._sub_ids = 0
        self._closing: set[asyncio.Future[bool]] = set()  # websocket closes in flight (referenced until done)
        exchange.listeners.append(self._on_exchange_event)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/stream/ws", self._market_spot)
        app.router.add_get("/stream/ws/{n}", self._market_spot)
        app.router.add_get("/fstream/{cat}/ws", self._futures)
        app.router.add_get("/fstream/{cat}/ws/{n}", self._futures)
        app.router.add_get("/ws-api/v3", self._ws_api)
        for prefix, kind in (("", "spot"), ("/fstream", "linear")):
            for path in ("/ws", "/ws/{stream}", "/stream"):
                app.router.add_get(prefix + path, partial(self._binance_layout, kind=kind))

    # ----------------------------------------------------------------- connections
    def _close_soon(self, conn: Conn) -> None:
        task = asyncio.ensure_future(conn.ws.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _serve(
        self,
        request: web.Request,
        conn_kind: str,
        on_text: Callable[[Conn, dict], None],
        account: Account | None = None,
        listen_key: str | None = None,
        ws: web.WebSocketResponse | None = None,
        streams: set[str] | None = None,
        users: dict[str, int] | None = None,
        combined: bool = False,
    ) -> web.WebSocketResponse:
        ws = ws or web.WebSocketResponse(heartbeat=None, autoping=True)
        await ws.prepare(request)
        conn = Conn(
            ws,
            conn_kind,
            streams=set(streams or ()),
            users=dict(users or {}),
            listen_key=listen_key,
            combined=combined,
            ws_api=on_text == self._on_ws_api,
            connected_ms=self.ex.now_ms(),
        )
        if account is not None:
            conn.users[account.api_key] = 0
        self.conns.add(conn)
        if conn.streams:
            self._wake.set()
        writer = asyncio.create_task(self._writer(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except json.JSONDecodeError:
                        conn.send({"error": {"code": 3, "msg": "Invalid JSON"}})
                        continue
                    on_text(conn, data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self.conns.discard(conn)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return ws

    async def _writer(self, conn: Conn) -> None:
        while True:
            text = await conn.queue.get()
            try:
                await conn.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    async def _market_spot(self, request: web.Request) -> web.WebSocketResponse:
        return await self._serve(request, "spot", self._on_subscribe)

    async def _futures(self, request: web.Request) -> web.WebSocketResponse:
        if request.match_info["cat"] == "private":
            key = request.query.get("listenKey", "")
            acct = self.listen_keys.get(key)
            if acct is None or not self.key_alive(key):
                return web.json_response({"code": -1125, "msg": "This listenKey does not exist."}, status=400)  # type: ignore[return-value]
            return await self._serve(request, "linear", lambda c, d: None, account=acct, listen_key=key)
        return await self._serve(request, "linear", self._on_subscribe)

    async def _ws_api(self, request: web.Request) -> web.WebSocketResponse:
        return await self._serve(request, "spot", self._on_ws_api)

    async def _binance_layout(self, request: web.Request, kind: str) -> web.WebSocketResponse:
        """Raw (``/ws/<stream>``), subscribe (``/ws``) and combined (``/stream?streams=a/b``) connections. A name that
        is a live listen key of this market kind subscribes to that account's user data."""
        combined = request.path.endswith("/stream")
        names = [n for n in (request.query.get("streams", "").split("/") if combined else [request.match_info.get("stream", "")]) if n]
        ws = web.WebSocketResponse(heartbeat=None, autoping=True)
        streams, users, key = set(), {}, None
        for name in names:
            acct = self.listen_keys.get(name)
            if acct is not None and self.key_kind.get(name) == kind and self.key_alive(name):
                users[acct.api_key], key = 0, name
            else:
                streams.add(name)
        return await self._serve(request, kind, self._on_subscribe, ws=ws, streams=streams, users=users, listen_key=key, combined=combined)

    def key_alive(self, key: str) -> bool:
        """A listen key lives ``listen_key_ttl_s`` after its last keepalive (Binance: 60 minutes)."""
        touched = self.key_touched.get(key)
        return touched is not None and self.ex.now_ms() - touched < self.ex.faults.listen_key_ttl_s * 1000

    def expire_key(self, key: str, notify: bool) -> None:
        """The key is gone: its streams get ``listenKeyExpired`` (when it expired, not when closed) and are cut."""
        acct = self.listen_keys.pop(key, None)
        self.key_touched.pop(key, None)
        self.key_kind.pop(key, None)
        if acct is not None:
            acct.listen_keys.discard(key)
        for conn in [c for c in self.conns if c.listen_key == key]:
            if notify:  # in the {"stream", "data"} envelope on a combined connection, as every event there
                event = {"e": "listenKeyExpired", "E": self.ex.now_ms(), "listenKey": key}
                conn.send({"stream": key, "data": event} if conn.combined else event)
            asyncio.get_running_loop().call_later(0.05, self._close_soon, conn)
            self.conns.discard(conn)

    def terminate_user_streams(self, conn: Conn, only: str | None = None) -> None:
        """The WS API's ``eventStreamTerminated`` for each user-data subscription of ``conn`` (``only``: the one with
        that id, if there is one), which then ends."""
        for key, sub_id in list(conn.users.items()):
            if only is None or str(sub_id) == only:
                conn.send({"subscriptionId": sub_id, "event": {"e": "eventStreamTerminated", "E": self.ex.now_ms()}})
                del conn.users[key]

    def _in_window(self, params: dict) -> bool:
        """A WS API request's ``timestamp`` (ms, or us from 16 digits) no more than 1 s ahead of the exchange's clock
        nor older than its ``recvWindow`` (5000 ms by default, 60000 at most)."""
        try:
            ts = int(params.get("timestamp", ""))
            window = min(float(params.get("recvWindow") or 5000), 60_000.0)
        except (TypeError, ValueError):
            return False
        ts_ms = ts / 1000 if ts >= 10**15 else ts
        now = self.ex.now_ms()
        return ts_ms <= now + 1000 and now - ts_ms <= window

    async def cut_old_connections(self) -> None:
        """Binance disconnects every websocket 24 hours after it connected (``ws_max_age_s``); WS-API user-data
        subscriptions get ``eventStreamTerminated`` first."""
        limit_ms = self.ex.faults.ws_max_age_s * 1000
        for conn in [c for c in self.conns if self.ex.now_ms() - c.connected_ms >= limit_ms]:
            if conn.ws_api:
                self.terminate_user_streams(conn)
                await asyncio.sleep(0)  # let the writer send it before the close
                await asyncio.wait_for(self._drain(conn), 1.0)
            self.conns.discard(conn)
            with contextlib.suppress(Exception):
                await conn.ws.close()

    @staticmethod
    async def _drain(conn: Conn) -> None:
        while not conn.queue.empty():
            await asyncio.sleep(0.01)

    async def close_all(self) -> None:
        for conn in list(self.conns):
            with contextlib.suppress(Exception):
                await conn.ws.close()
        self.conns.clear()

    # ----------------------------------------------------------------- requests
    def _on_subscribe(self, conn: Conn, data: dict) -> None:
        method = str(data.get("method", "")).upper()
        names = [str(x) for x in data.get("params") or []]
        if method == "SUBSCRIBE":
            conn.streams.update(names)
            self._wake.set()
        elif method == "UNSUBSCRIBE":
            conn.streams.difference_update(names)
        elif method == "LIST_SUBSCRIPTIONS":
            conn.send({"result": sorted(conn.streams), "id": data.get("id")})
            return
        conn.send({"result": None, "id": data.get("id")})

    def _on_ws_api(self, conn: Conn, data: dict) -> None:
        rid, method, params = data.get("id"), data.get("method"), dict(data.get("params") or {})
        if method == "userDataStream.subscribe.signature":
            acct = self.ex.accounts.get(str(params.get("apiKey", "")))
            sig = str(params.pop("signature", ""))
            if acct is None or not self.ex.faults.private_api:
                conn.send({"id": rid, "status": 401, "error": {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}})
                return
            payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
            expected = hmac.new(acct.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(sig.lower(), expected):
                conn.send({"id": rid, "status": 400, "error": {"code": -1022, "msg": "Signature for this request is not valid."}})
                return
            if not self._in_window(params):  # a signed request's timestamp within its recvWindow, as on REST
                msg = "Timestamp for this request is outside of the recvWindow."
                conn.send({"id": rid, "status": 400, "error": {"code": -1021, "msg": msg}})
                return
            self._sub_ids += 1
            conn.users[acct.api_key] = self._sub_ids
            conn.send({"id": rid, "status": 200, "result": {"subscriptionId": self._sub_ids}})
        elif method == "userDataStream.unsubscribe":
            conn.send({"id": rid, "status": 200, "result": {}})
            wanted = params.get("subscriptionId")  # that subscription, if it exists; without it, every one
            self.terminate_user_streams(conn, None if wanted is None else str(wanted))
        elif method == "ping":
            conn.send({"id": rid, "status": 200, "result": {}})
        elif method == "time":
            conn.send({"id": rid, "status": 200, "result": {"serverTime": self.ex.now_ms()}})
        else:
            conn.send({"id": rid, "status": 400, "error": {"code": -1100, "msg": f"Unsupported method {method!r} in the sandbox."}})

    # ----------------------------------------------------------------- user events
    def _on_exchange_event(self, acct: Account, kind: str, event: str, payload: dict) -> None:
        if self.ex.faults.paused_user_stream:
            return
        targets = [c for c in self.conns if c.kind == kind and acct.api_key in c.users]
        if not targets:
            return
        now = self.ex.now_ms()
        messages: list[dict] = []
        if event == "order":
            exec_type = payload["exec"]
            fill = payload.get("fill")
            if exec_type == "TRADE" and not self.ex.faults.user_trade_events:
                exec_type, fill = "CALCULATED", None  # an order update that carries no trade
            order = payload["order"]
            if kind == "spot":
                messages.append(wire.execution_report(order, exec_type, fill, now))
            else:
                messages.append(wire.order_trade_update(order, self.ex.markets[(kind, order.symbol)].spec, exec_type, fill, now))
        elif event == "margin_call":
            messages.append(wire.margin_call(self.ex, acct, payload["positions"], now))
        elif event == "list":
            messages.append(wire.list_status(payload["list"], payload["orders"], now))
        elif event == "algo":
            algo = payload["algo"]
            actual = acct.orders.get(algo.actual_order_id) if algo.actual_order_id else None
            messages.append(wire.algo_update(algo, self.ex.markets[(kind, algo.symbol)].spec, actual, now))
        elif event == "account":
            m = self.ex.markets[(kind, payload["symbol"])]
            if kind == "spot":
                messages.append(wire.outbound_account_position(acct, [m.spec.base, m.spec.quote], now))
            else:
                messages.append(wire.account_update(self.ex, acct, m.spec.symbol, now, payload.get("reason", "ORDER")))
        for conn in targets:
            sub_id = conn.users[acct.api_key]
            for msg in messages:
                if conn.listen_key is not None:  # a listen-key stream: the event itself (in the envelope when combined)
                    conn.send({"stream": conn.listen_key, "data": msg} if conn.combined else msg)
                elif conn.ws_api:  # the WS-API user data subscription
                    conn.send({"subscriptionId": sub_id, "event": msg})
                else:
                    conn.send(msg)

    # ----------------------------------------------------------------- market streams
    def publish_now(self) -> None:
        self._wake.set()

    async def run_market_streams(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.publish_every_s)
            self._wake.clear()
            try:
                self._publish_market()
            except Exception:  # pragma: no cover - keep streaming whatever happens
                log.exception("market stream publish failed")

    def _publish_market(self) -> None:
        now = self.ex.now_ms()
        cache: dict[str, list[object]] = {}
        self._round_depth = {}
        self.ex.depth_streamed = {
            (c.kind, n.partition("@")[0].upper()) for c in self.conns for n in c.streams if n.partition("@")[2].split("@")[0] == "depth"
        }
        conns = list(self.conns)
        # no order between connections, as on Binance: a client holding one book over two connections (ccxt does when
        # watchOrderBook and watchOrderBookForSymbols run together) must see each connection deliver an update first
        self.ex.rng.shuffle(conns)
        for conn in conns:
            for name in list(conn.streams):
                key = f"{conn.kind}:{name}"
                if key not in cache:
                    cache[key] = self._stream_events(conn.kind, name, now)
                if self.ex.faults.paused_market_stream:  # a stalled feed: what it would have said is lost
                    continue
                for event in cache[key]:
                    conn.send({"stream": name, "data": event} if conn.combined else event)

    def _stream_events(self, kind: str, name: str, now: int) -> list[object]:
        """The events of one stream at ``now``. A kline stream whose candle has rolled over first sends the
        finished candle once more with ``"x": true`` (Binance's closed-candle event), then the new one."""
        if name.startswith("!"):
            return self._all_market_events(kind, name, now)
        sym, _, channel = name.partition("@")
        if channel in ("trade", "aggTrade"):
            return self._print_events(kind, name, sym, channel, now)
        events: list[object] = []
        if "@kline_" in name:
            key = f"{kind}:{name}"
            step = public.interval_ms(kind, name.partition("@kline_")[2])
            open_ms = now - now % step if step else None
            previous = self._kline_open.get(key)
            if step and previous is not None and open_ms is not None and previous < open_ms:
                closed = self._stream_event(kind, name, previous + step - 1, closed=True)
                if closed is not None:
                    events.append(closed)
            if open_ms is not None:
                self._kline_open[key] = open_ms
        current = self._stream_event(kind, name, now)
        if current is not None:
            events.append(current)
        return events

    def _print_events(self, kind: str, name: str, sym: str, channel: str, now: int) -> list[object]:
        """The public prints (``public.prints``) made since the stream last published, each once: the same trades,
        times and ids as the REST ``trades`` / ``aggTrades`` lists (a new subscriber starts with the last second's)."""
        m: Market | None = self.ex.markets.get((kind, sym.upper()))
        if m is None:
            return []
        key = f"{kind}:{name}"
        out: list[object] = []
        for r in public.prints_since(self.ex, m, self._prints_through, key, now):
            ev = {"e": channel, "E": now, "s": m.spec.symbol, "p": r["price"], "q": r["qty"], "T": r["time"], "m": r["isBuyerMaker"]}
            if channel == "trade":
                out.append({**ev, "t": r["id"], "M": True})
                continue
            ev.update({"a": r["id"], "f": r["id"], "l": r["id"]})
            out.append({**ev, "M": True} if kind == "spot" else {**ev, "nq": r["qty"]})  # futures: the quantity without RPI orders
        return out

    def _stream_event(self, kind: str, name: str, now: int, closed: bool = False) -> dict | None:
        sym, _, channel = name.partition("@")
        m: Market | None = self.ex.markets.get((kind, sym.upper()))
        if m is None:
            return None
        symbol = m.spec.symbol
        if channel.startswith("kline_"):
            interval = channel[len("kline_") :]
            step = public.interval_ms(kind, interval)
            if step is None:
                return None
            open_ms = now - now % step
            o, h, lo, c, v = self.ex.candle(m, open_ms, now + 1)
            fmt = public._p
            return {
                "e": "kline",
                "E": self.ex.now_ms(),
                "s": symbol,
                "k": {
                    "t": open_ms,
                    "T": open_ms + step - 1,
                    "s": symbol,
                    "i": interval,
                    "f": 1,
                    "L": 2,
                    "o": fmt(m, o),
                    "c": fmt(m, c),
                    "h": fmt(m, h),
                    "l": fmt(m, lo),
                    "v": f"{v:.{m.spec.wire_qty_places}f}",
                    "n": max(1, int(v)),
                    "x": closed,
                    "q": f"{v * c:.8f}",
                    "V": f"{v / 2:.{m.spec.wire_qty_places}f}",
                    "Q": f"{v * c / 2:.8f}",
                    "B": "0",
                },
            }
        if channel == "bookTicker":
            (bid, bq), (ask, aq) = self.ex.best_bid_ask(m)
            sp = m.spec
            ev = {"u": now, "s": symbol, "b": wire.px(sp, bid), "B": wire.qx(sp, bq), "a": wire.px(sp, ask), "A": wire.qx(sp, aq)}
            if kind == "linear":
                ev.update({"e": "bookTicker", "E": now, "T": now})
            return ev
        if channel == "miniTicker":
            t = public.ticker_24h(self.ex, m)
            return {
                "e": "24hrMiniTicker",
                "E": now,
                "s": symbol,
                "c": t["lastPrice"],
                "o": t["openPrice"],
                "h": t["highPrice"],
                "l": t["lowPrice"],
                "v": t["volume"],
                "q": t["quoteVolume"],
            }
        if channel in ("depth", "depth@100ms", "depth@250ms", "depth@500ms", "depth@1000ms"):
            return self._depth_diff(kind, m, now)
        depth_n = channel.split("@", 1)[0]
        if depth_n in ("depth5", "depth10", "depth20"):
            n = int(depth_n[5:])
            published = self.ex.depth_published.get((kind, symbol))
            bids, asks = public.book_levels(self.ex, m)
            levels = {"b": public.levels(m.spec, bids[:n]), "a": public.levels(m.spec, asks[:n])}
            if kind == "spot":
                return {"lastUpdateId": published[0] if published else now, "bids": levels["b"], "asks": levels["a"]}
            u = published[0] if published else now
            return {"e": "depthUpdate", "E": now, "T": now, "s": symbol, "U": u, "u": u, "pu": u - 1, **levels}
        if channel in ("markPrice", "markPrice@1s") and kind == "linear":
            return self._mark_price(m, now)
        if channel == "ticker":
            t = public.ticker_24h(self.ex, m)
            ev = {
                "e": "24hrTicker",
                "E": now,
                "s": symbol,
                "p": t["priceChange"],
                "P": t["priceChangePercent"],
                "w": t["weightedAvgPrice"],
                "c": t["lastPrice"],
                "Q": t["lastQty"],
                "o": t["openPrice"],
                "h": t["highPrice"],
                "l": t["lowPrice"],
                "v": t["volume"],
                "q": t["quoteVolume"],
                "O": t["openTime"],
                "C": t["closeTime"],
                "F": 1,
                "L": t["lastId"],
                "n": t["count"],
            }
            if kind == "spot":  # spot's ticker adds the previous close and the book; futures' has neither (as its REST 24hr ticker)
                ev.update(x=t["prevClosePrice"], b=t["bidPrice"], B=t["bidQty"], a=t["askPrice"], A=t["askQty"])
            return ev
        return None

    def _depth_diff(self, kind: str, m: Market, now: int) -> dict:
        """Binance's diff-depth event: the levels that changed since the last published book (qty "0": gone), with
        ``U`` = the previous final update id + 1 and ``u`` its own; the REST snapshot serves the same published book."""
        key = (kind, m.spec.symbol)
        done = self._round_depth.get(key)
        if done is not None:
            return done
        bids, asks = public.book_levels(self.ex, m)
        prev = self.ex.depth_published.get(key)
        last_u, pb, pa = prev if prev is not None else (now - 1, [], [])
        u = max(now, last_u + 1)

        def changes(before: list, after: list) -> list[list[str]]:
            old, new = dict(before), dict(after)
            gone = [(p, Decimal(0)) for p in old if p not in new]
            return public.levels(m.spec, [(p, q) for p, q in after if old.get(p) != q] + gone)

        self.ex.depth_published[key] = (u, bids, asks)
        ev = {"e": "depthUpdate", "E": now, "s": m.spec.symbol, "U": last_u + 1, "u": u, "b": changes(pb, bids), "a": changes(pa, asks)}
        if kind == "linear":
            ev.update({"T": now, "pu": last_u})
        self._round_depth[key] = ev
        return ev

    def _mark_price(self, m: Market, now: int) -> dict:
        pi = public.premium_index(self.ex, m)
        return {
            "e": "markPriceUpdate",
            "E": now,
            "s": m.spec.symbol,
            "p": pi["markPrice"],
            "ap": pi["markPrice"],
            "i": pi["indexPrice"],
            "P": pi["estimatedSettlePrice"],
            "r": pi["lastFundingRate"],
            "T": pi["nextFundingTime"],
        }

    def _all_market_events(self, kind: str, name: str, now: int) -> list[object]:
        """``!miniTicker@arr``, ``!ticker@arr`` (one array per update), ``!bookTicker`` (an event per symbol),
        ``!markPrice@arr[@1s]`` (futures, one array)."""
        markets = [m for (k, _), m in self.ex.markets.items() if k == kind]
        channel = name[1:]
        if channel == "bookTicker":
            return [ev for m in markets if (ev := self._stream_event(kind, f"{m.spec.symbol.lower()}@bookTicker", now)) is not None]
        per = {"miniTicker@arr": "miniTicker", "ticker@arr": "ticker"}.get(channel)
        if per is not None:
            return [[ev for m in markets if (ev := self._stream_event(kind, f"{m.spec.symbol.lower()}@{per}", now)) is not None]]
        if channel in ("markPrice@arr", "markPrice@arr@1s") and kind == "linear":
            return [[self._mark_price(m, now) for m in markets]]
        return []
