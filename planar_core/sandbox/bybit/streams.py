"""Bybit v5's websockets over the sandbox's connection machinery (``..streams.StreamHub``: connections, writer,
``close_all``, the 24-hour cut and the ``ws_drop_every_s`` fault).

* ``/v5/public/spot``, ``/v5/public/linear``: ``{"op": "subscribe", "req_id", "args": [topics]}`` for
  ``tickers.<symbol>``, ``orderbook.<depth>.<symbol>`` (a snapshot, then deltas: the levels that changed, size "0"
  for a level gone), ``publicTrade.<symbol>`` and ``kline.<interval>.<symbol>`` (a candle that has rolled over is
  sent once more with ``"confirm": true``); published every second and at once after an admin price change.
* ``/v5/private``: ``{"op": "auth", "args": [api_key, expires, signature]}`` (hex HMAC-SHA256 of
  ``"GET/realtime" + expires``; ``expires`` in the future), then the ``order``, ``execution``, ``position`` and
  ``wallet`` topics, fed by the core's account events (``SandboxExchange.emit``; a funding settlement sends its
  ``Funding`` execution before the position and wallet updates), and ``dcp.future`` / ``dcp.spot`` /
  ``dcp.option``, which say nothing but arm Disconnected Cancel All while the connection lives (``dcp.py``).
* ``{"op": "ping"}``: public connections answer ``{"success": true, "ret_msg": "pong", "op": "ping", ...}``, the
  private one ``{"op": "pong", "args": [<ms>], ...}``, as Bybit does.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Callable
from decimal import Decimal
from functools import partial

from aiohttp import web

from .. import public
from ..accounts import Account, AlgoOrder, Fill, SandboxOrder
from ..exchange import Market, SandboxExchange
from ..streams import Conn, StreamHub
from . import wire
from .dcp import TOPICS as DCP_TOPICS
from .wire import KLINE_MS

OrderRow = Callable[[Account, SandboxOrder], dict[str, object]]
AlgoRow = Callable[[Account, AlgoOrder], dict[str, object]]
PositionRow = Callable[[Account, str, str], dict[str, object]]
OnGuard = Callable[[set[tuple[str, str]]], None]
DEPTHS = {"spot": (1, 50, 200), "linear": (1, 50, 200, 500)}
PRIVATE_TOPICS = ("order", "execution", "position", "wallet", *DCP_TOPICS)
Levels = dict[Decimal, Decimal]


class BybitHub(StreamHub):
    """The Bybit dialect's websockets: public market topics and the private account topics."""

    def __init__(
        self,
        exchange: SandboxExchange,
        order_row: OrderRow,
        algo_row: AlgoRow | None = None,
        position_row: PositionRow | None = None,
        on_guard: OnGuard | None = None,
    ) -> None:
        super().__init__(exchange)
        self.on_guard = on_guard  # told the (api key, DCP product) pairs guarded whenever a dcp subscription may change
        self.order_row = order_row
        self.algo_row = algo_row
        self.position_row = position_row or partial(wire.position, exchange)
        self.conn_ids: dict[Conn, str] = {}
        self._books: dict[tuple[Conn, str], tuple[Levels, Levels]] = {}  # the book each connection holds per topic
        self._prints_through: dict[str, int] = {}  # "<category>:publicTrade.<symbol>" -> time published through
        self._candle_open: dict[str, int] = {}  # "<category>:<kline topic>" -> open time of the candle last published

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v5/public/spot", partial(self._serve, conn_kind="spot", on_text=self._on_public))
        app.router.add_get("/v5/public/linear", partial(self._serve, conn_kind="linear", on_text=self._on_public))
        app.router.add_get("/v5/private", self._serve_private)

    async def _serve_private(self, request: web.Request) -> web.WebSocketResponse:
        try:
            return await self._serve(request, conn_kind="private", on_text=self._on_private)
        finally:  # the connection is gone: so are its dcp subscriptions
            self._guard_changed()

    def _guard_changed(self) -> None:
        """Tell DCP which (api key, product) pairs a live private connection subscribed to ``dcp.*`` guards now."""
        if self.on_guard is not None:
            live = {
                (key, DCP_TOPICS[t]) for c in self.conns if c.kind == "private" for key in c.users for t in c.streams if t in DCP_TOPICS
            }
            self.on_guard(live)

    def _conn_id(self, conn: Conn) -> str:
        if conn not in self.conn_ids:
            self.conn_ids[conn] = str(uuid.uuid4())
        return self.conn_ids[conn]

    # ----------------------------------------------------------------- requests
    def _reply(self, conn: Conn, data: dict[str, object], success: bool, msg: str = "") -> None:
        conn.send(
            {"success": success, "ret_msg": msg, "conn_id": self._conn_id(conn), "req_id": data.get("req_id", ""), "op": data.get("op")}
        )

    def _valid_public(self, kind: str, topic: str) -> bool:
        parts = topic.split(".")
        markets = {wire.name(m.spec) for (k, _), m in self.ex.markets.items() if k == kind}
        if len(parts) == 2 and parts[0] in ("tickers", "publicTrade"):
            return parts[1] in markets
        if len(parts) == 3 and parts[0] == "orderbook":
            return parts[1].isdigit() and int(parts[1]) in DEPTHS[kind] and parts[2] in markets
        if len(parts) == 3 and parts[0] == "kline":
            return parts[1] in KLINE_MS and parts[2] in markets
        return False

    def _on_public(self, conn: Conn, data: dict[str, object]) -> None:
        op = data.get("op")
        if op == "ping":
            self._reply(conn, data, True, "pong")
            return
        if op not in ("subscribe", "unsubscribe"):
            self._reply(conn, data, False, f"error:handler not found,op:{op}")
            return
        topics = [str(t) for t in data.get("args") or []]  # type: ignore[attr-defined]
        bad = [t for t in topics if not self._valid_public(conn.kind, t)]
        if bad:
            self._reply(conn, data, False, f"error:handler not found,topic:{bad[0]}")
            return
        if op == "subscribe":
            conn.streams.update(topics)
            self._wake.set()
        else:
            conn.streams.difference_update(topics)
            for t in topics:
                self._books.pop((conn, t), None)
        self._reply(conn, data, True, "subscribe" if conn.kind == "spot" and op == "subscribe" else "")

    def _on_private(self, conn: Conn, data: dict[str, object]) -> None:
        op = data.get("op")
        if op == "ping":
            conn.send({"req_id": data.get("req_id", ""), "op": "pong", "args": [str(self.ex.now_ms())], "conn_id": self._conn_id(conn)})
            return
        if op == "auth":
            args = data.get("args")
            if not isinstance(args, list) or len(args) != 3:
                self._reply(conn, data, False, "Params Error")
                return
            key, expires, signature = (str(a) for a in args)
            acct = self.ex.accounts.get(key)
            if acct is None or not self.ex.faults.private_api:
                self._reply(conn, data, False, "Invalid apikey")
                return
            expected = hmac.new(acct.api_secret.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, signature):
                self._reply(conn, data, False, f"error sign! origin_string[GET/realtime{expires}]")
                return
            if not expires.isdigit() or int(expires) <= self.ex.now_ms():
                self._reply(conn, data, False, "Params Error: request expired")
                return
            conn.users = {acct.api_key: 0}
            self._guard_changed()  # (a connection authenticated again may now guard another account)
            self._reply(conn, data, True)
            return
        if op not in ("subscribe", "unsubscribe"):
            self._reply(conn, data, False, f"error:handler not found,op:{op}")
            return
        if not conn.users:
            self._reply(conn, data, False, "Request not authorized")
            return
        topics = [str(t) for t in data.get("args") or []]  # type: ignore[attr-defined]
        bad = [t for t in topics if t not in PRIVATE_TOPICS]
        if bad:
            self._reply(conn, data, False, f"error:handler not found,topic:{bad[0]}")
            return
        if op == "subscribe":
            conn.streams.update(topics)
        else:
            conn.streams.difference_update(topics)
        if any(t in DCP_TOPICS for t in topics):
            self._guard_changed()
        self._reply(conn, data, True)

    # ----------------------------------------------------------------- account events
    def _on_exchange_event(self, acct: Account, kind: str, event: str, payload: dict[str, object]) -> None:
        if self.ex.faults.paused_user_stream:
            return
        targets = [c for c in self.conns if c.kind == "private" and acct.api_key in c.users]
        if not targets:
            return
        now = self.ex.now_ms()
        messages: list[tuple[str, list[dict[str, object]]]] = []
        if event == "order":
            order = payload["order"]
            assert isinstance(order, SandboxOrder)
            messages.append(("order", [{"category": kind, **self.order_row(acct, order)}]))
            fill = payload.get("fill")
            if isinstance(fill, Fill) and self.ex.faults.user_trade_events:
                spec = self.ex.markets[(kind, fill.symbol)].spec
                mark = self.ex.mark(fill.symbol) if kind == "linear" else None
                row = wire.execution(spec, fill, order, mark)
                shown = self.order_row(acct, order)
                row["orderLinkId"], row["orderId"] = shown["orderLinkId"], shown["orderId"]
                messages.append(("execution", [{"category": kind, "isLeverage": "0" if kind == "spot" else "", **row}]))
        elif event == "algo" and self.algo_row is not None:
            algo = payload["algo"]
            assert isinstance(algo, AlgoOrder)
            if not algo.actual_order_id:  # once it has placed its order, that order's events say the rest
                messages.append(("order", [{"category": kind, **self.algo_row(acct, algo)}]))
        elif event == "account":
            symbol = str(payload["symbol"])
            if payload.get("reason") == "FUNDING_FEE":
                messages.extend(self._funding_execution(acct, symbol))
            if kind == "linear":
                side_names = ("LONG", "SHORT") if acct.hedge_mode else ("BOTH",)
                rows = []
                for side in side_names:
                    row = self.position_row(acct, symbol, side)
                    row["entryPrice"] = row.pop("avgPrice")  # the stream names it entryPrice, REST avgPrice
                    rows.append({"category": "linear", "tpslMode": "Full", **row})
                messages.append(("position", rows))
            messages.append(("wallet", list(wire.wallet_balance(self.ex, acct)["list"])))  # type: ignore[call-overload]
        for topic, data in messages:
            for conn in targets:
                if topic in conn.streams:
                    conn.send({"id": f"{uuid.uuid4().hex[:8]}-{now}", "topic": topic, "creationTime": now, "data": data})

    def _funding_execution(self, acct: Account, symbol: str) -> list[tuple[str, list[dict[str, object]]]]:
        """A funding settlement's execution (``execType`` "Funding"), as Bybit sends one on the ``execution`` topic
        with the position and wallet updates of the settlement: the core's newest funding row of ``symbol``."""
        row = next((r for r in reversed(acct.income) if r.kind == "FUNDING_FEE" and r.symbol == symbol), None)
        if row is None:
            return []
        spec = self.ex.markets[("linear", symbol)].spec
        return [("execution", [{"category": "linear", **wire.funding_execution(spec, row)}])]

    # ----------------------------------------------------------------- market topics
    def _publish_market(self) -> None:
        now = self.ex.now_ms()
        live = set(self.conns)
        for held in [k for k in self._books if k[0] not in live]:
            del self._books[held]
        for conn in [c for c in self.conn_ids if c not in live]:
            del self.conn_ids[conn]
        cache: dict[str, list[dict[str, object]]] = {}
        conns = [c for c in self.conns if c.kind in ("spot", "linear")]
        self.ex.rng.shuffle(conns)
        for conn in conns:
            for topic in sorted(conn.streams):
                if topic.startswith("orderbook."):
                    if self.ex.faults.paused_market_stream:
                        continue
                    msg = self._book_message(conn, topic, now)
                    if msg is not None:
                        conn.send(msg)
                    continue
                key = f"{conn.kind}:{topic}"
                if key not in cache:
                    cache[key] = self._topic_messages(conn.kind, topic, now)
                if self.ex.faults.paused_market_stream:  # a stalled feed: what it would have said is lost
                    continue
                for msg in cache[key]:
                    conn.send(msg)

    def _market_of(self, kind: str, name: str) -> Market | None:
        return next((m for (k, _), m in self.ex.markets.items() if k == kind and wire.name(m.spec) == name), None)

    def _topic_messages(self, kind: str, topic: str, now: int) -> list[dict[str, object]]:
        parts = topic.split(".")
        m = self._market_of(kind, parts[-1])
        if m is None:
            return []
        if parts[0] == "tickers":
            data = wire.ticker(self.ex, m)
            return [{"topic": topic, "ts": now, "type": "snapshot", "cs": now, "data": data}]
        if parts[0] == "publicTrade":  # the prints made since the topic last published, each once (public.prints)
            key = f"{kind}:{topic}"
            trades = [
                {
                    "T": row["time"],
                    "s": wire.name(m.spec),
                    "S": "Sell" if row["isBuyerMaker"] else "Buy",
                    "v": wire.qty(m.spec, Decimal(str(row["qty"]))),
                    "p": wire.fprice(m, float(str(row["price"]))),
                    "L": "ZeroPlusTick",
                    "i": str(row["id"]),
                    "BT": False,
                    "RPI": False,
                    "seq": row["id"],
                }
                for row in public.prints_since(self.ex, m, self._prints_through, key, now)
            ]
            return [{"topic": topic, "type": "snapshot", "ts": now, "data": trades}] if trades else []
        if parts[0] == "kline":
            step = KLINE_MS[parts[1]]
            open_ms = now - now % step
            key = f"{kind}:{topic}"
            out = []
            previous = self._candle_open.get(key)
            if previous is not None and previous < open_ms:
                out.append(self._candle(m, topic, parts[1], previous, step, now, confirm=True))
            self._candle_open[key] = open_ms
            out.append(self._candle(m, topic, parts[1], open_ms, step, now, confirm=False))
            return out
        return []

    def _candle(self, m: Market, topic: str, interval: str, open_ms: int, step: int, now: int, confirm: bool) -> dict[str, object]:
        o, h, lo, c, v = self.ex.candle(m, open_ms, min(open_ms + step, now + 1))
        row = {
            "start": open_ms,
            "end": open_ms + step - 1,
            "interval": interval,
            "open": wire.fprice(m, o),
            "close": wire.fprice(m, c),
            "high": wire.fprice(m, h),
            "low": wire.fprice(m, lo),
            "volume": f"{v:.{m.spec.qty_precision}f}",
            "turnover": f"{v * (o + c) / 2:.4f}",
            "confirm": confirm,
            "timestamp": now,
        }
        return {"topic": topic, "data": [row], "ts": now, "type": "snapshot"}

    def _book_message(self, conn: Conn, topic: str, now: int) -> dict[str, object] | None:
        """A snapshot the first time, then the levels that changed since what this connection holds."""
        _, depth, name = topic.split(".")
        m = self._market_of(conn.kind, name)
        if m is None:
            return None
        n = int(depth)
        bids, asks = public.book_levels(self.ex, m)
        new_b, new_a = dict(bids[:n]), dict(asks[:n])
        held = self._books.get((conn, topic))
        self._books[(conn, topic)] = (new_b, new_a)
        spec = m.spec

        def rows(levels: list[tuple[Decimal, Decimal]]) -> list[list[str]]:
            return [[wire.price(spec, p), wire.qty(spec, q)] for p, q in levels]

        if held is None or n == 1:  # Bybit sends level 1 as snapshots only
            kind, b, a = "snapshot", rows(list(new_b.items())), rows(list(new_a.items()))
        else:
            old_b, old_a = held

            def delta(old: Levels, new: Levels) -> list[list[str]]:
                changed = [(p, q) for p, q in new.items() if old.get(p) != q]
                return rows(changed + [(p, Decimal(0)) for p in old if p not in new])

            kind, b, a = "delta", delta(old_b, new_b), delta(old_a, new_a)
        return {"topic": topic, "type": kind, "ts": now, "data": {"s": wire.name(spec), "b": b, "a": a, "u": now, "seq": now}, "cts": now}
