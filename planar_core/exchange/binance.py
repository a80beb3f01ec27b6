"""Everything Binance-specific the engine relies on, behind one dialect (``BinanceDialect``), read by the ccxt adapter (``exchange/ccxt_venue.py``).

The engine speaks ccxt's unified API; what ccxt leaves to the exchange (how an order is named by its client
id, which error codes mean what, the weight header, the API-key permission endpoint, the kline "closed"
flag, the sandbox URLs) is here, with a capability table in the manner of freqtrade's per-exchange
``_ft_has``. A second exchange is a second module with its own dialect and one line in ``exchange/registry.py``, not an
edit of the engine.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import ccxt
import ccxt.pro as ccxtpro

from ..config import StrategyConfig
from ..model.json import num, opt_num
from ..model.stamp import Stamp
from ..model.types import Json
from ..model.venue import AssetBalance, Capabilities
from . import errors as E
from .answers_first import AnswersFirst
from .budget import BudgetHeld, Demand, Pacer, budgets
from .dialect import STAMP_KEY, DialectClient, refined, stamp_in
from .endpoints import point_at_sandbox
from .limiter import ccxt_rate_options

_CODE_RE = re.compile(r'"code"\s*:\s*(-?\d+)')
_USED_RE = re.compile(r"^X-(?:MBX-USED-WEIGHT|SAPI-USED-IP-WEIGHT)-(\d+)([SMHD])$", re.IGNORECASE)
_ORDERS_RE = re.compile(r"^X-MBX-ORDER-COUNT-(\d+)([SMHD])$", re.IGNORECASE)
UNIT_MS = {"S": 1000, "M": 60_000, "H": 3_600_000, "D": 86_400_000}
INTERVAL_MS = {"SECOND": 1000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}

# Binance's APIs, each with a weight budget of its own per IP (ccxt's section name -> API)
# the codes ccxt leaves generic -> the engine's typed errors
ERRORS: dict[int, type[E.ExchangeOpError]] = {
    -4116: E.DuplicateOrder,
    -2019: E.InsufficientFunds,
    -2022: E.InvalidOrder,
    -4164: E.InvalidOrder,
    -1013: E.InvalidOrder,
    -1021: E.ClockSkew,
    # an order list refused for its legs' types or sides of the last price (errors.md; ccxt 4.5 maps none of them)
    **dict.fromkeys((-1158, -1165, -1166, -1196, -1197, -1198, -1199), E.InvalidOrder),
}
API_PREFIXES = ("fapi", "dapi", "eapi", "sapi", "papi")
# ccxt's cost units per weight unit: ccxt scales every section to its 50 ms rateLimit (1200 units a minute): spot
# endpoints cost 0.2 per weight (6000 a minute), /sapi 0.1 per IP weight (12 000), the derivatives APIs 1 per weight
WEIGHT_PER_COST = {"api": 5.0, "sapi": 10.0, "papi": 5.0, "fapi": 1.0, "dapi": 1.0, "eapi": 1.0}
# where ccxt declares less than Binance documents (ccxt 4.5): (section, method, path) -> Binance's weight
WEIGHT_FLOOR = {
    ("public", "GET", "trades"): 25,
    **{(f"fapiPrivate{v}", "GET", p): 5 for v in ("V2", "V3") for p in ("account", "balance", "positionRisk")},
}
# Binance's published limits, used until exchangeInfo says (interval ms -> limit)
PUBLISHED_WEIGHT = {"api": {60_000: 6000}, "fapi": {60_000: 2400}, "dapi": {60_000: 2400}, "sapi": {60_000: 12_000}}
PUBLISHED_ORDERS = {"api": {10_000: 100, 86_400_000: 200_000}, "fapi": {10_000: 300, 60_000: 1200}, "dapi": {60_000: 1200}}
# new orders a request places ((api, method) -> ccxt path -> count; None: one per order of the batch)
NEW_ORDERS: dict[tuple[str, str], dict[str, int | None]] = {
    ("api", "POST"): {
        "order": 1,
        "order/oco": 2,
        "orderList/oco": 2,
        "orderList/oto": 2,
        "orderList/otoco": 3,
        "orderList/opo": 2,
        "orderList/opoco": 3,
        "sor/order": 1,
        "order/cancelReplace": 1,
    },
    ("fapi", "POST"): {"order": 1, "algoOrder": 1, "batchOrders": None},
    ("fapi", "PUT"): {"order": 1, "batchOrders": None},
}
# the user stream's events (held while an order request waits for its answer: answers_first.py)
USER_EVENTS = frozenset(
    {
        "executionReport",
        "orderReport",
        "listStatus",
        "outboundAccountPosition",
        "balanceUpdate",
        "externalLockUpdate",
        "ORDER_TRADE_UPDATE",
        "ALGO_UPDATE",
        "ACCOUNT_UPDATE",
        "TRADE_LITE",
    }
)
# requests that place or cancel orders: they may use the whole weight headroom (reads leave some for them)
TRADE_PATHS = frozenset(
    {
        "order",
        "order/oco",
        "orderList",
        "orderList/oco",
        "orderList/oto",
        "orderList/otoco",
        "orderList/opo",
        "orderList/opoco",
        "sor/order",
        "order/cancelReplace",
        "openOrders",
        "allOpenOrders",
        "batchOrders",
        "algoOrder",
        "algoOpenOrders",
        "countdownCancelAll",
    }
)


def api_of(section: str) -> str:
    """ccxt's API section ("public", "private", "fapiPrivateV2", "sapi" ...) -> Binance's API ("api", "fapi", ...)."""
    return next((p for p in API_PREFIXES if section.startswith(p)), "api")


def new_orders(api: str, method: str, path: str, params: Json) -> int:
    count = NEW_ORDERS.get((api, method), {}).get(path, 0)
    if count is not None:
        return count
    batch = params.get("batchOrders")
    if isinstance(batch, str):
        try:
            batch = json.loads(batch)
        except ValueError:
            return 1
    return len(batch) if isinstance(batch, list) else 1


def rate_counts(headers: dict[str, str] | None) -> tuple[dict[int, int], dict[int, int]]:
    """The exchange's counts from an answer's headers: (used weight, new orders) per interval in ms."""
    weight: dict[int, int] = {}
    orders: dict[int, int] = {}
    for name, value in (headers or {}).items():
        m = _USED_RE.match(name)
        target = weight
        if m is None:
            m, target = _ORDERS_RE.match(name), orders
        if m is not None:
            try:
                target[int(m.group(1)) * UNIT_MS[m.group(2).upper()]] = int(value)
            except ValueError:
                continue
    return weight, orders


def published_limits(rate_limits: object) -> tuple[dict[int, int], dict[int, int]]:
    """exchangeInfo's ``rateLimits`` -> (REQUEST_WEIGHT, ORDERS) limits per interval in ms (RAW_REQUESTS is not
    paced: every request has a weight of at least 1, and the weight limit binds first)."""
    weight: dict[int, int] = {}
    orders: dict[int, int] = {}
    for row in rate_limits if isinstance(rate_limits, list) else []:
        if not isinstance(row, dict):
            continue
        unit = INTERVAL_MS.get(str(row.get("interval")))
        try:
            span, limit = unit * int(row.get("intervalNum", 1)) if unit else 0, int(row.get("limit", 0))
        except (TypeError, ValueError):
            continue
        if span > 0 and limit > 0:
            {"REQUEST_WEIGHT": weight, "ORDERS": orders}.get(str(row.get("rateLimitType")), {})[span] = limit
    return weight, orders


def account_name(exchange: str, api_key: str | None) -> str:
    """An account's non-secret name, as ``engine.strategy.config_account`` (``trace.account_id``) spells it."""
    return f"{exchange}-{hashlib.sha256((api_key or 'anonymous').encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class Route:
    """Where one ccxt API section's requests draw from: the weight budget of its host and API, the order budget
    of the account on that API, and ccxt's cost-to-weight factor."""

    api: str
    weight_key: str
    orders_key: str
    factor: float


class StrictBinance(DialectClient, AnswersFirst, ccxtpro.binance):
    """ccxt.pro's binance, except that an answer that starts like JSON but does not parse raises ``BadResponse``,
    the kline stream's "closed" flag (``k.x``, dropped by ccxt's unified candles) is kept, and every user-stream
    message is stamped as it arrives (``stamp``), and one that arrives while an order request waits for its answer
    is handled after it (``answers_first.py``).

    ccxt returns None for an unparsable body and its methods then parse an empty answer, so a truncated
    open-orders list reads as "nothing open" and an emergency stop would report clean with every order live."""

    def __init__(self, config: Json) -> None:
        super().__init__(config)
        self.closed_klines: dict[tuple[str, str], int] = {}  # (symbol, timeframe) -> opening time of the newest closed kline
        self.planar_seq: Callable[[], int] = itertools.count(1).__next__  # the client's counter (ExchangeClient.next_seq)
        self.pacer: Pacer | None = None  # the host's request budgets (BinanceDialect.build sets it); None: ccxt's throttle
        self.budget_account = account_name("binance", None)  # the order budget's account (never the key)
        self._routes: dict[tuple[str, str], Route] = {}
        self._carried: dict[object, tuple[object, set[str]]] = {}  # stream url -> (its connection, currencies it carried)

    def filter_by_symbol_since_limit(
        self, array: object, symbol: str | None = None, since: int | None = None, limit: int | None = None, tail: bool = False
    ) -> list[object]:
        """ccxt's result, found from the end: ``watch_orders(symbol)`` and ``watch_my_trades(symbol)`` answer the
        newest ``limit`` updates of the symbol (``newUpdates``), and ccxt scanned the whole cache (a thousand
        orders) for them on every message. The last ``limit`` entries of the symbol, in the cache's order, are the
        same list either way."""
        if not (tail and symbol is not None and since is None and limit and limit > 0 and isinstance(array, list)):
            return list(super().filter_by_symbol_since_limit(array, symbol, since, limit, tail))  # (limit 0: all of them)
        out: list[object] = []
        for entry in reversed(array):
            if isinstance(entry, dict) and entry.get("symbol") == symbol:
                out.append(entry)
                if len(out) >= limit:
                    break
        out.reverse()
        return out

    # ----------------------------------------------------------------- user-stream stamps
    # ccxt keeps the wire message as the ``info`` of the balance, order, trade and position it parses from it, and
    # resolves each ``watch_*`` separately: by the time the engine applies them, their order on the wire is lost.
    # The stamp keeps it (the sequence number), with the exchange's time of the event and the currencies an account
    # message carries (ccxt's balance is its whole cache, holding values from before any gap in the stream).
    def stamp(self, message: Json, ms_field: str, assets: list[str] | None = None) -> Json:
        held = message.get(STAMP_KEY)
        if isinstance(held, dict):
            return held
        ms = message.get(ms_field)
        mark: Json = {
            "seq": self.arrival_seq(message),  # its place on arrival, when it was held (answers_first.py)
            "ms": int(ms) if isinstance(ms, (int, float)) else None,
            "assets": assets,
        }
        message[STAMP_KEY] = mark
        return mark

    def user_event(self, message: object) -> Json | None:
        """The user-stream event in a message, unwrapped as ccxt's ``handle_message`` unwraps it (a combined stream's
        ``data``, the WebSocket API subscription's ``event``)."""
        if not isinstance(message, dict):
            return None
        event = message.get("data") if "stream" in message else message
        if isinstance(event, dict) and isinstance(event.get("event"), dict):
            event = event["event"]
        if isinstance(event, dict) and isinstance(event.get("data"), dict):
            event = event["data"]
        return event if isinstance(event, dict) and event.get("e") in USER_EVENTS else None

    def _codes(self, rows: object, field_name: str = "a") -> list[str]:
        return [self.safe_currency_code(r.get(field_name)) for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []

    def handle_order_update(self, client: object, message: Json) -> None:
        """``executionReport`` (spot), ``ORDER_TRADE_UPDATE`` / ``ALGO_UPDATE`` (USD-M: the order is under ``o``)."""
        if isinstance(message, dict):
            mark = self.stamp(message, "T")
            inner = message.get("o")
            if isinstance(inner, dict) and STAMP_KEY not in inner:
                t = inner.get("T")
                inner[STAMP_KEY] = {**mark, "ms": int(t) if isinstance(t, (int, float)) else mark["ms"]}
        super().handle_order_update(client, message)

    def handle_balance(self, client: object, message: Json) -> None:
        """``outboundAccountPosition`` (the assets it lists, at ``u``: the time of the account update),
        ``balanceUpdate`` / ``externalLockUpdate`` (one asset); ``ACCOUNT_UPDATE`` was stamped by its own handler."""
        if isinstance(message, dict) and STAMP_KEY not in message:
            if message.get("e") == "outboundAccountPosition":
                self.stamp(message, "u", self.carried(client, self._codes(message.get("B"))))
            elif isinstance(message.get("a"), str):
                self.stamp(message, "T", self.carried(client, [self.safe_currency_code(message["a"])]))
            else:
                self.stamp(message, "E")
        super().handle_balance(client, message)

    def carried(self, client: object, codes: list[str]) -> list[str]:
        """The currencies the account messages of this connection carried since the engine last took the balance
        (``balance_taken``), ``codes`` included: what of ccxt's balance cache the stream brought up to date that the
        engine has not applied yet. Why not the last message's alone: two messages back to back (a sale's BTC, then
        its USDT) resolve one watch, and the engine took only the second's currencies, so the first's change waited
        for the next read (up to 43 s in an outside trial) while the account was valued with the sale's cash and the
        coins still held: a false peak, then a false drawdown that tripped the breaker. Why not every currency the
        connection ever carried: messages lost in a gap leave cache values from before it (a later message about
        another currency must not bring them back); nor a new connection's (ccxt makes one after a drop)."""
        url = getattr(client, "url", None)
        held = self._carried.get(url)
        if held is None or held[0] is not client:
            held = self._carried[url] = (client, set())
        held[1].update(codes)
        return sorted(held[1])

    def balance_taken(self) -> None:
        """The engine took the balance cache (a watch's answer, or a read of the cache): what the stream carried
        until now is applied, and the next message's stamp names only what comes after."""
        for _, codes in self._carried.values():
            codes.clear()

    def handle_acount_update(self, client: object, message: Json) -> None:  # ccxt's spelling
        """USD-M ``ACCOUNT_UPDATE``: the wallet of the assets under ``a.B`` and the positions under ``a.P``, at ``T``
        (each position row is stamped too: it becomes the ``info`` of the position ccxt parses from it)."""
        if isinstance(message, dict):
            update = message.get("a")
            if not isinstance(update, dict):
                update = {}
            mark = self.stamp(message, "T", self.carried(client, self._codes(update.get("B"))))
            for row in update.get("P") or []:
                if isinstance(row, dict):
                    row[STAMP_KEY] = {**mark, "assets": None}
        super().handle_acount_update(client, message)

    def route(self, section: str) -> Route:
        base = str(self.urls["api"].get(section) or "")
        r = self._routes.get((section, base))
        if r is None:
            api = api_of(section)
            parts = urlsplit(base)
            port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
            host = f"{parts.hostname or '?'}:{port}"
            r = self._routes[(section, base)] = Route(api, f"{host}/{api}", f"{self.budget_account}/{api}", WEIGHT_PER_COST.get(api, 1.0))
        return r

    async def throttle(self, cost: object = None) -> object:
        """REST requests are paced by the host's budgets in ``fetch2`` (websocket messages keep ccxt's own throttle)."""
        if self.pacer is None:
            return await super().throttle(cost)
        return None

    async def fetch2(
        self, path: str, api: str | list[str] = "public", method: str = "GET", params: Json | None = None, config: Json | None = None
    ) -> object:
        """Every REST request (``_paced``); one that places or cancels orders keeps the user stream waiting until its
        answer is read (answers_first.py)."""
        if method == "GET" or path not in TRADE_PATHS:
            return await self._paced(path, api, method, params, config)
        with self.answer_first():
            return await self._paced(path, api, method, params, config)

    async def _paced(self, path: str, api: str | list[str], method: str, params: Json | None, config: Json | None) -> object:
        """Every REST request: reserve its weight (ccxt's declared cost, in Binance's weight units) and its new orders
        from the host's budgets before sending; after the answer, let the exchange's own counts correct them; after a
        429/418, hold every process of the host for its Retry-After."""
        params = {} if params is None else params
        config = {} if config is None else config
        pacer = self.pacer
        if pacer is None:
            return await super().fetch2(path, api, method, params, config)
        section = api if isinstance(api, str) else str(api[0])
        r = self.route(section)
        cost = float(self.calculate_rate_limiter_cost(api, method, path, params, config) or 0)
        weight = max(math.ceil(cost * r.factor - 1e-6), WEIGHT_FLOOR.get((section, method, path), 0))
        orders = new_orders(r.api, method, path, params)
        demand = Demand(
            r.weight_key,
            weight,
            PUBLISHED_WEIGHT.get(r.api, {}),
            r.orders_key if orders else None,
            orders,
            PUBLISHED_ORDERS.get(r.api, {}),
            trade=method != "GET" and path in TRADE_PATHS,
        )
        try:
            await pacer.acquire(demand)
        except BudgetHeld as held:
            raise NotSent(f"{self.id} {held}", held.retry_after) from None
        try:
            response = await super().fetch2(path, api, method, params, config)
        except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as exc:
            self._refused(r, str(exc), self.last_response_headers)
            raise
        used, counts = rate_counts(self.last_response_headers)
        pacer.observe(r.weight_key, demand.weight_defaults, used)
        if counts:
            pacer.observe(r.orders_key, demand.orders_defaults, counts)
        if path == "exchangeInfo" and isinstance(response, dict):
            weight_limits, order_limits = published_limits(response.get("rateLimits"))
            pacer.learn(r.weight_key, demand.weight_defaults, weight_limits)
            pacer.learn(r.orders_key, demand.orders_defaults, order_limits)
        return response

    def _refused(self, r: Route, text: str, headers: dict[str, str] | None) -> None:
        """A 429/418 seen by this process holds every process of the host: the IP's weight for the Retry-After
        (until a ban ends), or, for too many new orders (-1015, sent without Retry-After), the account's orders for
        the shortest order interval."""
        assert self.pacer is not None
        raw = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
        try:
            retry_after = float(raw) if raw is not None else None
        except ValueError:
            retry_after = None
        if "-1015" in text:
            spans = PUBLISHED_ORDERS.get(r.api, {10_000: 0})
            self.pacer.hold(r.orders_key, PUBLISHED_ORDERS.get(r.api, {}), retry_after or min(spans) / 1000)
        else:
            self.pacer.hold(r.weight_key, PUBLISHED_WEIGHT.get(r.api, {}), retry_after or 1.0)

    def handle_ohlcv(self, client: object, message: Json) -> None:
        kline = message.get("k")
        if isinstance(kline, dict) and kline.get("x") is True and isinstance(kline.get("t"), int):
            market_type = "spot" if self.is_spot_url(client) else "contract"
            symbol = self.safe_symbol(kline.get("s"), None, None, market_type)
            self.closed_klines[(symbol, self.find_timeframe(kline.get("i")))] = int(kline["t"])
        super().handle_ohlcv(client, message)


class NotSent(ccxt.RateLimitExceeded):
    """Refused before sending: the host's budget stays spent longer than the request may wait (mapped to
    ``RateLimited``, like a 429: nothing reached the exchange). ``retry_after``: seconds until it frees."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BinanceDialect:
    """Binance spot and USDⓈ-M futures as the engine needs them: what ccxt leaves to the exchange (parameters,
    error codes, the fields of its raw payloads). ``CcxtVenue`` reads it; nothing above the adapter does."""

    name = "binance"
    history_methods: tuple[str, ...] = ("fetch_orders",)  # allOrders: open and done
    listing_params: Json = {}  # Binance answers every open order at once; history by time window
    account_positions_params: Json = {}  # fetch_positions without a symbol reads USD-M (ccxt's default for it)
    client_id_param = "origClientOrderId"  # the parameter that names an order by its client id in fetch/cancel
    used_weight_header = "X-MBX-USED-WEIGHT-1M"  # response header with the weight used in the current minute
    caps = Capabilities(
        kline_closed_flag=True,
        api_permissions=True,
        order_types=frozenset(
            {
                "market",
                "gtc",
                "ioc",
                "fok",
                "post_only",
                "stop_market",
                "stop_limit",
                "take_profit_market",
                "take_profit_limit",
                "trailing_stop",
            }
        ),
        # spot trailingDelta 10-2000 basis points; USD-M callbackRate 0.1-10 %
        trailing_percent={"spot": (0.1, 20.0), "swap": (0.1, 10.0)},
        native_oco=frozenset({"spot"}),
        timeframes=frozenset({"1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"}),
        spot_only_timeframes=frozenset({"1s"}),  # USDⓈ-M klines start at 1m
        hedge_mode=True,
        margin_modes=frozenset({"isolated", "cross"}),
        batch_cancel={"swap": 10},  # USD-M DELETE /fapi/v1/batchOrders; spot has no batch cancel
        countdown_cancel=frozenset({"swap"}),  # USD-M countdownCancelAll
        trigger_books=frozenset({"swap"}),  # USD-M conditional orders wait in the Algo Service
    )

    def build(self, cfg: StrategyConfig, markets_type: str | None = None) -> StrictBinance:
        """A ccxt.pro binance configured from the strategy: credentials, limits, sandbox endpoint."""
        creds = cfg.credentials
        options: Json = {
            "defaultType": markets_type or ("swap" if cfg.margin else "spot"),
            "fetchMarkets": {"types": ["spot", "linear"]},
            "warnOnFetchOpenOrdersWithoutSymbol": False,
            "adjustForTimeDifference": True,
        }  # sign with the exchange's clock, measured at load_markets
        conf: Json = {
            "timeout": int(max(cfg.timeouts.order_placement, cfg.timeouts.balance_sync) * 1000),
            "options": options,
            **ccxt_rate_options(cfg.rate_limits),
        }
        if creds.api_key is not None:
            conf["apiKey"] = creds.api_key.get_secret_value()
        if creds.api_secret is not None:
            conf["secret"] = creds.api_secret.get_secret_value()
        if creds.passphrase is not None:
            conf["password"] = creds.passphrase.get_secret_value()
        exchange = StrictBinance(conf)
        limits = cfg.rate_limits
        exchange.budget_account = account_name(cfg.exchange, creds.api_key.get_secret_value() if creds.api_key is not None else None)
        exchange.pacer = Pacer(
            budgets(limits.shared_budget), headroom=limits.budget_headroom, weight_cap_per_minute=limits.weight_per_minute
        )
        if cfg.sandbox:
            ep = cfg.sandbox_endpoint
            if ep.url:
                point_at_sandbox(exchange, ep.url, ep.ws_url or ep.url.replace("http", "ws", 1))
            else:
                exchange.set_sandbox_mode(True)
        return exchange

    def by_client_id(self, client_order_id: str, waiting_trigger: bool = False) -> Json:
        """ccxt params that name an order by its client order id (fetch_order / cancel_order with id None).
        ``waiting_trigger``: a USD-M conditional order not triggered yet, which lives in the Algo Service under its
        ``clientAlgoId`` (once triggered, its order in the book carries the same client id)."""
        if waiting_trigger:
            return {"trigger": True, "clientAlgoId": client_order_id}
        return {self.client_id_param: client_order_id}

    @staticmethod
    def trigger_params(contract: bool, waiting_trigger: bool) -> Json:
        """ccxt params for fetch/cancel by exchange id of a conditional order still waiting (futures: the algo id)."""
        return {"trigger": True} if contract and waiting_trigger else {}

    @staticmethod
    def conditional_params(
        trigger: str,
        contract: bool,
        trigger_price: float | None,
        trailing_percent: float | None,
        side: str = "buy",
        reference: float | None = None,
    ) -> Json:
        """ccxt's unified parameters for a conditional order (``trigger``: "stop", "take", "trailing"; Binance infers
        the direction from the order type and side).

        ccxt turns them into spot ``STOP_LOSS[_LIMIT]`` / ``TAKE_PROFIT[_LIMIT]`` and USD-M ``STOP[_MARKET]`` /
        ``TAKE_PROFIT[_MARKET]`` / ``TRAILING_STOP_MARKET`` on the Algo Service. A spot trailing stop is
        ``trailingDelta`` on a stop-loss; with an activation price (``stopPrice``) on the far side of the market
        from a stop (a sell's above the ``reference`` price, a buy's below) on a take-profit, because Binance
        activates it when the type's own stop condition is met (its trailing-stop FAQ): a stop-loss sell with its
        activation above the market is refused as triggering at once (an outside trial)."""
        if trigger == "stop":
            return {"stopLossPrice": trigger_price}
        if trigger == "take":
            return {"takeProfitPrice": trigger_price}
        out: Json = {"trailingPercent": trailing_percent}
        if not contract:
            above = trigger_price is not None and reference is not None and trigger_price > reference
            beyond = above if side == "sell" else trigger_price is not None and reference is not None and trigger_price < reference
            out["stopLossOrTakeProfit"] = "takeProfit" if beyond else "stopLoss"
        if trigger_price is not None:
            out["trailingTriggerPrice"] = trigger_price
        return out

    @staticmethod
    def trigger_phase(raw: Json) -> str | None:
        """Where a conditional order stands: "waiting" for its trigger, "triggered" (its order is on the book or
        done), or None when the answer does not say (a plain order, or a cancel's short answer).

        USD-M conditional orders are Algo Service records (``algoStatus`` over REST, ``X`` in ``ALGO_UPDATE``) until
        they trigger; spot conditional orders say ``isWorking`` (REST) / ``w`` (user stream)."""
        info = raw.get("info")
        if not isinstance(info, dict):
            return None
        algo = info.get("algoStatus") if "algoId" in info else info.get("X") if "aid" in info else None
        if isinstance(algo, str):
            return "waiting" if algo == "NEW" else "triggered" if algo in ("TRIGGERING", "TRIGGERED", "FINISHED") else None
        working = info.get("isWorking", info.get("w"))
        if isinstance(working, bool) and str(info.get("type", info.get("o", ""))).startswith(("STOP_LOSS", "TAKE_PROFIT")):
            return "triggered" if working else "waiting"
        return None

    @staticmethod
    def triggered_order_id(raw: Json) -> str | None:
        """The id of the order a USD-M conditional order placed when it triggered."""
        info = raw.get("info")
        if not isinstance(info, dict):
            return None
        oid = info.get("actualOrderId", info.get("ai"))
        return str(oid) if oid not in (None, "", 0, "0") else None

    @staticmethod
    def is_algo_record(raw: Json) -> bool:
        info = raw.get("info")
        return isinstance(info, dict) and ("algoId" in info or "aid" in info)

    @staticmethod
    def position_params(position_side: str) -> Json:
        """Hedge mode: ``positionSide`` LONG / SHORT says which position an order opens or closes (Binance refuses
        reduce-only beside it)."""
        return {"positionSide": position_side.upper()}

    @staticmethod
    def oco_request(market_id: str, side: str, amount: str, take_profit: str, stop: str, above_cid: str, below_cid: str) -> Json:
        """``POST /api/v3/orderList/oco`` parameters of an exit list: a LIMIT_MAKER at the take-profit and a STOP_LOSS
        at the stop (a sell list has the limit above, a buy list below); the client ids go above, then below."""
        limit = {"Type": "LIMIT_MAKER", "Price": take_profit}
        stop_leg = {"Type": "STOP_LOSS", "StopPrice": stop}
        above, below = (limit, stop_leg) if side == "sell" else (stop_leg, limit)
        out: Json = {"symbol": market_id, "side": side.upper(), "quantity": amount, "newOrderRespType": "RESULT"}
        for pos, leg, cid in (("above", above, above_cid), ("below", below, below_cid)):
            out.update({f"{pos}{k}": v for k, v in leg.items()})
            out[f"{pos}ClientOrderId"] = cid
        return out

    @staticmethod
    async def create_oco(ex: StrictBinance, request: Json) -> Json:
        answer: Json = await ex.privatePostOrderListOco(request)
        return answer

    @staticmethod
    def stamp_of(raw: object) -> Stamp | None:
        """The stamp ``StrictBinance`` put on the user-stream message a parsed balance, order, trade or position came
        from (None: not from the stream, or not through StrictBinance)."""
        return stamp_in(raw.get("info") if isinstance(raw, dict) else None)

    @staticmethod
    def snapshot_time(raw: object) -> int | None:
        """The exchange's time of the account state a REST balance answer shows: spot's ``updateTime`` (ccxt's
        ``timestamp``), USD-M's newest asset ``updateTime``; None when it does not say."""
        if not isinstance(raw, dict):
            return None
        ts = raw.get("timestamp")
        if isinstance(ts, int) and ts > 0:
            return ts
        info = raw.get("info")
        rows = info.get("assets") if isinstance(info, dict) else info if isinstance(info, list) else None
        times = [r.get("updateTime") for r in rows or [] if isinstance(r, dict)]
        known = [int(t) for t in times if isinstance(t, (int, float)) and t > 0]
        return max(known) if known else None

    @staticmethod
    def position_time(raw: object) -> int | None:
        """The exchange's time of a REST position row (``updateTime``: its last change); None when it does not say."""
        info = raw.get("info") if isinstance(raw, dict) else None
        t = info.get("updateTime") if isinstance(info, dict) else None
        return int(t) if isinstance(t, (int, float)) and t > 0 else None

    @staticmethod
    def order_books(contract: bool) -> list[Json]:
        """USD-M conditional orders waiting for their trigger live in the Algo Service, a book of their own."""
        return [{}, {"trigger": True}] if contract else [{}]

    def cancel_all_books(self, contract: bool) -> list[Json]:
        """ccxt params of each cancel-all per symbol (the account e-stop): one per book."""
        return self.order_books(contract)

    @staticmethod
    def order_trades_params(order_id: str) -> Json:
        """ccxt params that restrict ``fetch_my_trades`` to one order's fills."""
        return {"orderId": order_id}

    @staticmethod
    def position_side(info: object) -> str | None:
        """The position side an order, fill or position names (hedge mode: "LONG"/"SHORT"; one-way: "BOTH")."""
        if not isinstance(info, dict):
            return None
        side = info.get("positionSide", info.get("ps"))
        return side if isinstance(side, str) else None

    @staticmethod
    def fill_client_id(info: object) -> str | None:
        """The client order id a user-stream fill carries (``c``) when ccxt's trade does not say it."""
        cid = info.get("c") if isinstance(info, dict) else None
        return cid if isinstance(cid, str) and cid else None

    @staticmethod
    def realized_pnl(info: object) -> float | None:
        """The PnL a futures fill realized (REST ``userTrades``' ``realizedPnl``), when the answer says."""
        pnl = info.get("realizedPnl") if isinstance(info, dict) else None
        if not pnl:
            return None
        try:
            return float(pnl)
        except (TypeError, ValueError):
            return None

    @staticmethod
    def reject_reason(info: object) -> str | None:
        """The exchange's word on why an order was refused or ended (``executionReport``'s ``r``), else None."""
        reason = info.get("r") if isinstance(info, dict) else None
        return reason if isinstance(reason, str) and reason not in ("", "NONE") else None

    @staticmethod
    def futures_balances(raw: Json) -> dict[str, AssetBalance] | None:
        """USDⓈ-M wallets from a balance's raw payload: REST (``/fapi/v2|v3/account`` assets, ``/fapi/v2/balance``
        rows) carries the wallet, the initial margin and the margin available for new orders; the user stream's
        ``ACCOUNT_UPDATE`` only the wallet (``wb``; ``available`` None). None: not a futures payload."""
        info = raw.get("info")
        rows = info.get("assets") if isinstance(info, dict) else info if isinstance(info, list) else None
        out: dict[str, AssetBalance] = {}
        if isinstance(rows, list):
            for r in rows:
                if isinstance(r, dict) and isinstance(r.get("asset"), str):
                    wallet = num(r.get("walletBalance", r.get("balance")))
                    available = num(r.get("availableBalance"))
                    out[r["asset"]] = AssetBalance(available, num(r.get("initialMargin")), wallet, available)
            return out
        if isinstance(info, dict) and info.get("e") == "ACCOUNT_UPDATE":
            update = info.get("a")
            for b in (update.get("B") if isinstance(update, dict) else None) or []:
                if isinstance(b, dict) and isinstance(b.get("a"), str):
                    wallet = num(b.get("wb"))
                    out[b["a"]] = AssetBalance(wallet, 0.0, wallet)
            return out
        return None

    @staticmethod
    def has_countdown(market: Json) -> bool:
        """Whether the market has an exchange-side dead-man's switch: USDⓈ-M futures ``countdownCancelAll``
        (spot has none)."""
        return bool(market.get("contract")) and bool(market.get("linear"))

    @staticmethod
    async def countdown_cancel_all(ex: StrictBinance, market_id: str, countdown_ms: int) -> Json:
        """``POST /fapi/v1/countdownCancelAll``: the exchange cancels the symbol's open orders ``countdown_ms`` after
        the last call (0 stops the timer); ccxt has it only as an implicit method. An answer about another symbol
        is malformed."""
        answer: Json = await ex.fapiPrivatePostCountdownCancelAll({"symbol": market_id, "countdownTime": countdown_ms})
        if not isinstance(answer, dict) or answer.get("symbol") != market_id:
            raise ccxt.BadResponse(f"countdownCancelAll: unexpected answer {str(answer)[:200]}")
        return answer

    def switch_scope(self, market: Json) -> str | None:
        """A USDⓈ-M symbol's switch is its own countdown, named by the unified symbol."""
        return str(market["symbol"]) if self.has_countdown(market) else None

    async def arm_switch(self, ex: StrictBinance, scope: str, window_ms: int) -> int:
        """The countdown of the symbol ``scope`` restarted at ``window_ms`` (applied as given)."""
        await self.countdown_cancel_all(ex, str(ex.market(scope)["id"]), window_ms)
        return window_ms

    async def disarm_switch(self, ex: StrictBinance, scope: str) -> None:
        """Countdown 0: the timer stops, nothing is cancelled."""
        await self.countdown_cancel_all(ex, str(ex.market(scope)["id"]), 0)

    @staticmethod
    def reports_funding(raw: Json) -> bool:
        """A balance update the exchange sent because a funding payment was booked (``ACCOUNT_UPDATE`` reason)."""
        info = raw.get("info")
        a = info.get("a") if isinstance(info, dict) else None
        return isinstance(a, dict) and a.get("m") == "FUNDING_FEE"

    @staticmethod
    async def funding_history(ex: StrictBinance, since: int | None) -> list[Json]:
        """USD-M funding payments since ``since`` (ccxt's income history, ``FUNDING_FEE``: 1000 rows a request)."""
        rows = await ex.fetch_funding_history(None, since, 1000)
        if not isinstance(rows, list):
            raise ccxt.BadResponse(f"binance funding history: unexpected answer {str(rows)[:200]}")
        return [r for r in rows if isinstance(r, dict)]

    @staticmethod
    def funding_received(raw: Json) -> float | None:
        """What the account received (< 0: paid): the income row's amount, as ccxt gives it."""
        return opt_num(raw.get("amount"))

    @staticmethod
    def forced_close(raw: Json) -> str | None:
        """ "liquidation" or "adl" when the order is the exchange's forced close of a position (Binance names them
        ``autoclose-*`` and ``adl_autoclose``; the order type is LIQUIDATION), else None."""
        cid = str(raw.get("clientOrderId") or "")
        info = raw.get("info")
        otype = info.get("o", info.get("type")) if isinstance(info, dict) else None
        if cid.startswith("adl_autoclose"):
            return "adl"
        if cid.startswith("autoclose-") or otype == "LIQUIDATION":
            return "liquidation"
        return None

    def closed_through(self, ex: object, symbol: str, timeframe: str) -> int | None:
        if not self.caps.kline_closed_flag:
            return None
        closed = getattr(ex, "closed_klines", None)
        return closed.get((symbol, timeframe)) if isinstance(closed, dict) else None

    @staticmethod
    async def position_mode(ex: StrictBinance) -> bool:
        info = await ex.fetch_position_mode()
        if not isinstance(info, dict):
            raise ccxt.BadResponse(f"binance position mode: unexpected answer {str(info)[:200]}")
        return bool(info.get("hedged"))

    async def can_withdraw(self, ex: StrictBinance) -> bool | None:
        """Whether the API key may withdraw (None: not readable)."""
        restrictions = await ex.sapiGetAccountApiRestrictions()
        return bool(restrictions.get("enableWithdrawals")) if isinstance(restrictions, dict) else None

    @staticmethod
    def balance_cache_key(market_type: str) -> str:
        return "linear" if market_type == "swap" else "spot"

    @staticmethod
    def cached_position_rows(ex: object) -> list[Json]:
        held = getattr(ex, "positions", None)
        cached = held.get("linear") if isinstance(held, dict) else None
        return [r for r in cached if isinstance(r, dict)] if cached else []

    def used_weight(self, headers: dict[str, str] | None) -> int | None:
        name = self.used_weight_header
        if not headers or name is None:
            return None
        raw = headers.get(name) or headers.get(name.lower())
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None

    @staticmethod
    def error_code(exc: BaseException) -> int | None:
        """Binance's numeric error code (ccxt puts the raw body in the message)."""
        m = _CODE_RE.search(str(exc))
        return int(m.group(1)) if m else None

    def refine_error(self, exc: BaseException) -> E.ExchangeOpError | None:
        """The codes ccxt leaves generic, mapped to the engine's typed errors (None: ccxt's class decides)."""
        code = self.error_code(exc)
        if code == -2010 and "Duplicate" in str(exc):  # -2010 is every new-order refusal; the text says which
            return E.DuplicateOrder(str(exc), code, exc)
        return refined(exc, code, ERRORS)

    def already_set(self, exc: BaseException) -> bool:
        """The exchange refused a margin-mode or position-mode change because that mode is already set."""
        return self.error_code(exc) in (-4046, -4059) or "No need to change" in str(exc)

    def map_error(self, exc: BaseException) -> E.ExchangeOpError:
        return E.map_error(exc, self.refine_error, self.error_code)


BINANCE = BinanceDialect()
BinanceVenue = BinanceDialect  # the former name (tests/unit/test_orders_state.py)
