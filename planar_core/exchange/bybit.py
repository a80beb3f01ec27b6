"""Everything Bybit-specific the engine relies on (v5 API, unified trading account): the dialect ``BybitDialect``,
read by the ccxt adapter (``exchange/ccxt_venue.py``) as Binance's is.

What the venue covers, and why the capability table says less than Binance's:

* Spot and USDT perpetuals (``linear``) on a unified account: market, limit GTC/IOC/FOK and post-only orders,
  cancels by ``orderLinkId``, leverage, the start-up sync, the e-stop. One wallet serves both categories, so a
  spot and a futures strategy on one account see the same coins (Bybit's design, not a sandbox shortcut).
* Margin mode: a unified account has one for the whole account (``/v5/account/set-margin-mode``); two strategies
  on one account asking for different modes switch it back and forth (the exchange refuses while positions or
  orders are open).
* Stop and take-profit orders (market and limit) on spot (``StopOrder``: nothing held until the trigger) and USDT
  perpetuals (with ``triggerDirection``); hedge mode on USDT perpetuals (``positionIdx`` 1/2).
* Exits attached to an entry are the engine's (two conditional orders under the strategy's ids, one cancelled
  when the other acts): Bybit has no order list, and its native TP/SL belongs to the position (no ``orderLinkId``;
  one per symbol in one-way mode), which two strategies sharing an account would overwrite.
* Trailing stops are the engine's (engine/trailing.py): a stop-market order whose trigger it moves with
  ``/v5/order/amend`` (``Capabilities.amend_trigger``). Bybit's own trails a position (``trading-stop``), not an order.
* Funding on USDT perpetuals: the ``Funding`` executions (``funding_history``, in Bybit's 7-day windows; the amount
  is what the account received, the reverse of ccxt's sign), announced by the execution topic; forced closes by
  ``createType`` (liquidation, takeover, auto-deleveraging); the account e-stop lists and cancels every kind of order
  (``cancel_all_books``, ``account_positions_params``).
* The engine's dead-man's switch is Bybit's Disconnected Cancel All (DCP), spot and linear: one switch per product
  (SPOT, DERIVATIVES) of the whole account, armed while a private websocket connection subscribed to its topic
  (``dcp.spot``, ``dcp.future``) lives; ``timeWindow`` after the last such connection goes, Bybit cancels every open
  order of the product. No request turns it off, so a clean stop cannot disarm it (``SwitchKind.CONNECTION``).
* Request pacing is the engine's own: ``rate_limits.requests_per_minute`` (every REST request) and
  ``orders_per_second`` (Bybit's per-UID limit for orders is 10/s on linear, 20/s on spot; the default, 10, fits
  both). Bybit's other per-endpoint limits (50/s for most reads) are not tracked; a refusal (10006, "Too many
  visits") is a ``RateLimited`` error, retried with backoff for reads, a refusal for an order (nothing was placed).
  The host's shared Binance-weight budgets (``budget.py``) and ``rate_limits.weight_per_minute`` do not apply.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Callable

import ccxt
import ccxt.pro as ccxtpro

from ..config import StrategyConfig
from ..model.json import num, opt_num
from ..model.stamp import Stamp
from ..model.types import Json
from ..model.venue import AssetBalance, Capabilities, SwitchKind
from . import errors as E
from .answers_first import AnswersFirst
from .dialect import STAMP_KEY, DialectClient, refined, stamp_in
from .endpoints import point_bybit_at_sandbox

_CODE_RE = re.compile(r'"retCode"\s*:\s*(-?\d+)')
# retCodes ccxt leaves generic -> the engine's typed errors
ERRORS: dict[int, type[E.ExchangeOpError]] = {
    110072: E.DuplicateOrder,  # orderLinkId duplicate (linear)
    170141: E.DuplicateOrder,  # (spot)
    110007: E.InsufficientFunds,
    110004: E.InsufficientFunds,
    110012: E.InsufficientFunds,
    170131: E.InsufficientFunds,
    10002: E.ClockSkew,
    110001: E.OrderNotFound,  # order does not exist (linear)
    170213: E.OrderNotFound,  # (spot)
    # the request may have been carried out: its outcome is unknown (an order is looked up by its orderLinkId) and a
    # retry may succeed. ccxt 4.5 makes 10000 and 10016 a plain ExchangeError and 170146 an InvalidOrder: an outside
    # trial saw a timed-out order booked "rejected" at once, and an e-stop give up on its first timeout
    10000: E.NetworkUncertain,  # Server Timeout
    10016: E.NetworkUncertain,  # internal server error, "please try again later"
    170146: E.NetworkUncertain,  # order creation timeout (spot)
}
# retCodes that say "already so": position mode, margin mode (isolated/cross), leverage. Not 3400045: "Set margin
# mode failed" (the account's mode is unchanged; its reasons say why, e.g. a position is open): read as "already
# so", the engine showed isolated while the exchange margined the position cross (an outside trial, 2 of 2)
ALREADY_SET = frozenset({110025, 110026, 110043})
# /v5/execution/list answers at most 7 days a request (a startTime alone: the 7 days from it)
EXECUTION_WINDOW_MS = 7 * 86_400_000
CLOCK_MARGIN_MS = 60_000  # how far the exchange's clock may run ahead of ours where a window must reach "now"
# pages of one window ccxt may follow (50 rows each); its default, 10, is 500 settlements: 3 days of ten symbols
# with hourly funding
FUNDING_PAGES = 100
POSITION_PAGES = 50  # pages of the position listing read before the answer is refused (10 000 rows at 200)
# cancel-all on spot cancels plain orders unless told a kind (orderFilter): the account e-stop names each kind
SPOT_CANCEL_BOOKS: tuple[Json, ...] = ({}, {"orderFilter": "StopOrder"}, {"orderFilter": "tpslOrder"})
# createType of the exchange's forced closes: laddered liquidation, the liquidation engine's takeover, auto-deleveraging
LIQUIDATION_TYPES = frozenset({"CreateByLiq", "CreateByLiquidate", "CreateByTakeover", "CreateByTakeOver_PassThrough"})
ADL_TYPES = frozenset({"CreateByAdl", "CreateByAdl_PassThrough"})


# Disconnected Cancel All: the private topic that arms each product, and Bybit's range of ``timeWindow`` (seconds)
DCP_TOPICS = {"SPOT": "dcp.spot", "DERIVATIVES": "dcp.future"}
DCP_WINDOW_S = (3, 300)
DCP_HASH = "planar-dcp:"  # ccxt subscription / message hash of the engine's DCP subscription (+ its topic)


def dcp_window_s(window_ms: int) -> int:
    """Bybit's ``timeWindow`` nearest to ``window_ms``: whole seconds, rounded up, within [3, 300]."""
    low, high = DCP_WINDOW_S
    return min(high, max(low, math.ceil(window_ms / 1000)))


def account_name(api_key: str | None) -> str:
    return f"bybit-{hashlib.sha256((api_key or 'anonymous').encode()).hexdigest()[:12]}"


def _ms(value: object) -> int | None:
    try:
        ms = int(str(value))
    except (TypeError, ValueError):
        return None
    return ms if ms > 0 else None


USER_TOPICS = frozenset({"order", "stopOrder", "execution", "position", "wallet"})  # private topics (ccxt routes by prefix)
WS_TRADE_TOPICS = frozenset({"order.create", "order.amend", "order.cancel"})  # the WebSocket API's answers, not the stream
# REST requests that place, amend or cancel orders: the private topics wait for their answer (answers_first.py)
TRADE_PATHS = frozenset(
    {
        "v5/order/create",
        "v5/order/amend",
        "v5/order/cancel",
        "v5/order/cancel-all",
        "v5/order/create-batch",
        "v5/order/amend-batch",
        "v5/order/cancel-batch",
    }
)


class StrictBybit(DialectClient, AnswersFirst, ccxtpro.bybit):
    """ccxt.pro's bybit, except that an answer that starts like JSON but does not parse raises ``BadResponse``
    (ccxt would read it as empty: "nothing open"), the kline topic's ``confirm`` flag is kept, every row of a
    private message is stamped as it arrives (the engine's one order of account reports, model/stamp.py), and a
    private message that arrives while an order request waits for its answer is handled after it
    (``answers_first.py``)."""

    def __init__(self, config: Json) -> None:
        super().__init__(config)
        self.closed_klines: dict[tuple[str, str], int] = {}  # (symbol, timeframe) -> opening time of the newest closed kline
        self.planar_seq: Callable[[], int] = itertools.count(1).__next__  # the client's counter (ExchangeClient.next_seq)
        self.funding_seen = False  # a funding settlement came on the execution topic since the last wallet message

    # ----------------------------------------------------------------- answers first
    def user_event(self, message: object) -> Json | None:
        """A private topic's message (``order``, ``execution``, ``position``, ``wallet``, with or without a category
        suffix), as ccxt's ``handle_message`` routes it; the WebSocket trading answers (``order.create`` ...) and
        public topics pass."""
        if not isinstance(message, dict):
            return None
        topic = message.get("topic")
        if not isinstance(topic, str) or topic in WS_TRADE_TOPICS:
            return None
        return message if topic.split(".", 1)[0] in USER_TOPICS else None

    async def fetch2(
        self, path: str, api: str | list[str] = "public", method: str = "GET", params: Json | None = None, config: Json | None = None
    ) -> object:
        """Every REST request; one that places, amends or cancels orders keeps the private topics waiting until its
        answer is read (answers_first.py)."""
        params = {} if params is None else params
        config = {} if config is None else config
        if method == "GET" or path not in TRADE_PATHS:
            return await super().fetch2(path, api, method, params, config)
        with self.answer_first():
            return await super().fetch2(path, api, method, params, config)

    # ----------------------------------------------------------------- user-stream stamps
    def _stamp_rows(self, message: object, ms_field: str) -> None:
        """One stamp per message, put on each of its rows (each becomes the ``info`` of what ccxt parses)."""
        if not isinstance(message, dict):
            return
        rows = message.get("data")
        if not isinstance(rows, list):
            return
        seq = self.arrival_seq(message)
        for row in rows:
            if isinstance(row, dict) and STAMP_KEY not in row:
                row[STAMP_KEY] = {"seq": seq, "ms": _ms(row.get(ms_field)) or _ms(message.get("creationTime")), "assets": None}

    def handle_order(self, client: object, message: Json) -> None:
        self._stamp_rows(message, "updatedTime")
        super().handle_order(client, message)

    def handle_my_trades(self, client: object, message: Json) -> None:
        """Executions; a funding settlement among them (``execType`` "Funding", which ccxt drops: it is no trade)
        is noted for the wallet message that books it (``BybitDialect.reports_funding``)."""
        self._stamp_rows(message, "execTime")
        rows = message.get("data") if isinstance(message, dict) else None
        if isinstance(rows, list) and any(isinstance(r, dict) and r.get("execType") == "Funding" for r in rows):
            self.funding_seen = True
        super().handle_my_trades(client, message)

    def handle_positions(self, client: object, message: Json) -> None:
        self._stamp_rows(message, "updatedTime")
        super().handle_positions(client, message)

    def handle_balance(self, client: object, message: Json) -> None:
        """``wallet``: the coins it lists (the unified account's wallet rows), at the message's ``creationTime``;
        ``funding``: a funding settlement came on the execution topic since the last wallet message (Bybit's wallet
        message does not say why it was sent; the settlement's execution comes on its own topic)."""
        if isinstance(message, dict):
            accounts = message.get("data")
            for account in accounts if isinstance(accounts, list) else []:
                if isinstance(account, dict) and STAMP_KEY not in account:
                    rows = account.get("coin")
                    coins = [self.safe_currency_code(c.get("coin")) for c in rows if isinstance(c, dict)] if isinstance(rows, list) else []
                    account[STAMP_KEY] = {
                        "seq": self.arrival_seq(message),
                        "ms": _ms(message.get("creationTime")),
                        "assets": coins,
                        "funding": self.funding_seen,
                    }
                    self.funding_seen = False
        super().handle_balance(client, message)

    # ----------------------------------------------------------------- Disconnected Cancel All (DCP)
    async def keep_dcp(self, product: str, window_s: int) -> None:
        """Keep the account's DCP for ``product`` armed by this client: its private connection (the one the user
        stream watches use; opened if none is) subscribed to the product's topic. Returns at once while the
        subscription Bybit acknowledged on the live connection stands; on a new connection (the first call, or
        ccxt reconnected after the old one went) it sets the product's ``timeWindow`` first, then subscribes and
        waits for Bybit's acknowledgement. ccxt.pro has no watch for these topics (Bybit pushes nothing on them): the
        subscription is ccxt's own ``watch`` of the private URL, its acknowledgement read in
        ``handle_subscription_status``; a refused one rejects the wait (ccxt's ``handle_error_message``)."""
        topic = DCP_TOPICS[product]
        key = DCP_HASH + topic
        url = await self.get_url_by_market_type(None, True)
        client = self.client(url)
        held = client.subscriptions.get(key)
        if isinstance(held, dict) and held.get("acked"):
            if not client.closed():
                return
            raise ccxt.NetworkError(f"bybit: the private connection holding {topic} has closed")
        if held is None:
            await self.privatePostV5OrderDisconnectedCancelAll({"product": product, "timeWindow": window_s})
            await self._dcp_enabled(product)
        await self.authenticate(url)
        req_id = self.request_id()
        await self.watch(url, key, {"op": "subscribe", "req_id": req_id, "args": [topic]}, key, {"id": req_id, "topics": [topic]})

    async def _dcp_enabled(self, product: str) -> None:
        """Raises ``SwitchUnavailable`` unless ``/v5/account/query-dcp-info`` lists ``product`` ON: Bybit lists only the
        products its account manager enabled DCP for (an account without DCP: an empty list, whatever was set)."""
        answer = await self.privateGetV5AccountQueryDcpInfo()
        result = answer.get("result") if isinstance(answer, dict) else None
        infos = result.get("dcpInfos") if isinstance(result, dict) else None
        if not isinstance(infos, list):
            raise ccxt.BadResponse(f"bybit query-dcp-info: unexpected answer {str(answer)[:200]}")
        if not any(isinstance(i, dict) and i.get("product") == product and i.get("dcpStatus") == "ON" for i in infos):
            raise E.SwitchUnavailable(
                f"bybit: Disconnected Cancel All is not enabled for {product} on this account (query-dcp-info lists "
                f"{[i.get('product') for i in infos if isinstance(i, dict)]}); Bybit's account manager enables it"
            )

    def handle_subscription_status(self, client: object, message: Json) -> Json:
        """A private subscription's acknowledgement: one of the engine's DCP subscriptions is now in force on this
        connection (ccxt reads no private acknowledgement; a refusal never reaches here)."""
        subscriptions = getattr(client, "subscriptions", None)
        req_id = str(message.get("req_id"))
        for key, held in list(subscriptions.items()) if isinstance(subscriptions, dict) else []:
            if key.startswith(DCP_HASH) and isinstance(held, dict) and str(held.get("id")) == req_id:
                held["acked"] = True
                client.resolve(True, key)  # type: ignore[attr-defined]
        answer: Json = super().handle_subscription_status(client, message)
        return answer

    # ----------------------------------------------------------------- look-ups ccxt's bybit cannot make
    async def fetch_order(self, id: str | None, symbol: str | None = None, params: Json | None = None) -> Json:
        """An order by its ``orderId``, or by its ``orderLinkId`` alone (``id`` None: the acknowledgement with the
        order id was lost). ccxt's bybit puts ``orderId`` in the request whatever it is, so a look-up by client id
        would ask for ``orderId=None``, which names no order, and a booked order would read as absent. Without an
        id, the realtime listing is asked by ``orderLinkId`` alone (on a unified account it names an order of any
        status among the last 500, as ``fetch_order`` does)."""
        params = dict(params or {})
        if id is not None:
            return dict(await super().fetch_order(id, symbol, params))
        link = params.get("orderLinkId")
        if not isinstance(link, str) or not link:
            raise ccxt.ArgumentsRequired(f"{self.id} fetch_order needs an order id or params['orderLinkId']")
        query = self.omit(params, ["acknowledged"])
        rows = await self.fetch_open_orders(symbol, None, None, query)
        found = [r for r in rows if isinstance(r, dict) and r.get("clientOrderId") == link]
        if not found:  # Bybit: after a release or restart of its servers, ended orders are found in the history only
            rows = await self.fetch_canceled_and_closed_orders(symbol, None, None, query)
            found = [r for r in rows if isinstance(r, dict) and r.get("clientOrderId") == link]
        if not found:
            raise ccxt.OrderNotFound(f"{self.id} order with orderLinkId {link} not found")
        return dict(found[0])

    positions_page = 200  # rows a page of the position listing asks for (Bybit's most)

    async def fetch_positions(self, symbols: list[str] | None = None, params: Json | None = None) -> list[object]:
        """Positions of ``symbols``. Bybit lists the positions of one symbol, or every position held in a settle
        coin; ccxt's bybit refuses a list of more than one symbol, so a strategy trading two perpetuals could not
        read its positions at all. For several, every position held is read and those asked for kept (a symbol
        with no row is flat: the listing by settle coin names every position held)."""
        params = dict(params or {})
        if symbols:
            if len(symbols) == 1:
                return list(await super().fetch_positions(symbols, params))
            wanted = set(symbols)
            return [r for r in await self._every_position(params) if isinstance(r, dict) and r.get("symbol") in wanted]
        return await self._every_position(params)

    async def _every_position(self, params: Json) -> list[object]:
        """Every page of the listing by settle coin. Bybit answers ``positions_page`` rows at a time (ccxt asks for
        200, Bybit's most) with a cursor to the next page: one page missed every position past it, and an account's
        emergency stop would have left them open. ccxt's own ``paginate`` for positions wants a ``since`` the
        listing has not and gives up, so the cursor is followed here; past ``POSITION_PAGES`` pages the answer is
        refused, never cut short."""
        out: list[object] = []
        cursor = ""
        for _ in range(POSITION_PAGES):
            query = {"limit": self.positions_page, **params, **({"cursor": cursor} if cursor else {})}
            page = list(await super().fetch_positions(None, query))
            out += page
            first = page[0] if page and isinstance(page[0], dict) else {}
            info = first.get("info")
            cursor = str(info.get("nextPageCursor") or "") if isinstance(info, dict) else ""
            if not cursor:
                return out
        raise ccxt.BadResponse(f"bybit positions: more than {POSITION_PAGES} pages of {self.positions_page}")

    def handle_ohlcv(self, client: object, message: Json) -> None:
        topic = str(message.get("topic") or "")
        parts = topic.split(".")
        if len(parts) == 3:
            timeframe = self.find_timeframe(parts[1])
            market_type = "spot" if "spot" in str(getattr(client, "url", "")) else "contract"
            symbol = self.safe_symbol(parts[2], None, None, market_type)
            rows = message.get("data")
            for row in rows if isinstance(rows, list) else []:
                if isinstance(row, dict) and row.get("confirm") is True and isinstance(row.get("start"), int) and timeframe:
                    self.closed_klines[(symbol, timeframe)] = int(row["start"])
        super().handle_ohlcv(client, message)


class BybitDialect:
    """Bybit v5 spot and USDT perpetuals as the engine needs them (``exchange/dialect.py``'s ``Dialect``)."""

    name = "bybit"
    # ccxt has no fetch_orders for a unified account: its open orders and /v5/order/history together are every status
    history_methods: tuple[str, ...] = ("fetch_open_orders", "fetch_canceled_and_closed_orders")
    # Bybit answers its order and execution listings a page at a time (20 rows unless asked, 50 at most) with a
    # cursor to the next: without following it (ccxt's paginate, a param: as an option it recurses), the 21st open
    # order of a symbol would be unknown
    listing_params: Json = {"paginate": True}
    # every position of the account (the account e-stop): the USDT perpetuals, also from a client whose default market
    # type is spot (Bybit refuses a position listing of category spot; ccxt adds settleCoin USDT for linear)
    account_positions_params: Json = {"type": "swap", "subType": "linear"}
    caps = Capabilities(
        kline_closed_flag=True,  # the kline topic's ``confirm``
        api_permissions=True,  # /v5/user/query-api
        # stop / take-profit, market and limit, on spot (StopOrder) and USDT perpetuals
        order_types=frozenset(
            {"market", "gtc", "ioc", "fok", "post_only", "stop_market", "stop_limit", "take_profit_market", "take_profit_limit"}
        ),
        timeframes=frozenset({"1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "1w", "1M"}),
        batch_cancel={"spot": 10, "swap": 20},  # POST /v5/order/cancel-batch
        # a unified account's margin mode is the whole account's (/v5/account/set-margin-mode), not one symbol's
        margin_modes=frozenset({"cross", "isolated"}),
        hedge_mode=True,  # USDT perpetuals: /v5/position/switch-mode, positions on positionIdx 1 and 2
        # /v5/order/amend takes a new triggerPrice for a conditional order still waiting: the engine trails a stop
        # by moving it (Bybit's own trailing stop is a position's, not an order's)
        amend_trigger=frozenset({"spot", "swap"}),
        # Disconnected Cancel All: per product of the account, armed by a live subscribed connection, never turned off
        countdown_cancel=frozenset({"spot", "swap"}),
        switch=SwitchKind.CONNECTION,
    )

    def build(self, cfg: StrategyConfig, markets_type: str | None = None) -> StrictBybit:
        creds = cfg.credentials
        options: Json = {
            "defaultType": markets_type or ("swap" if cfg.margin else "spot"),
            "fetchMarkets": {"types": ["spot", "linear"]},
            "adjustForTimeDifference": True,
            "enableUnifiedAccount": True,  # the unified trading account, as Bybit opens every new account
            "enableUnifiedMargin": False,
            # fetch_order reads /v5/order/realtime, which knows an account's last 500 orders: ccxt asks to acknowledge
            # that (the start-up's history listing covers older ones)
            "fetchOrder": {"acknowledged": True},
        }
        conf: Json = {
            "timeout": int(max(cfg.timeouts.order_placement, cfg.timeouts.balance_sync) * 1000),
            "options": options,
            # paced by the engine's own request window and order pace (``rate_limits.requests_per_minute``,
            # ``orders_per_second``), not ccxt's throttle, whose single queue made an order wait behind candle reads
            "enableRateLimit": False,
        }
        if creds.api_key is not None:
            conf["apiKey"] = creds.api_key.get_secret_value()
        if creds.api_secret is not None:
            conf["secret"] = creds.api_secret.get_secret_value()
        exchange = StrictBybit(conf)
        if cfg.sandbox:
            ep = cfg.sandbox_endpoint
            if ep.url:
                point_bybit_at_sandbox(exchange, ep.url, ep.ws_url or ep.url.replace("http", "ws", 1))
            else:
                exchange.set_sandbox_mode(True)  # Bybit's testnet
        return exchange

    # ----------------------------------------------------------------- naming orders, building requests
    @staticmethod
    def by_client_id(client_order_id: str, waiting_trigger: bool = False) -> Json:
        """ccxt params naming an order by its ``orderLinkId`` (a conditional order keeps it, waiting or triggered)."""
        return {"orderLinkId": client_order_id}

    @staticmethod
    def trigger_params(contract: bool, waiting_trigger: bool) -> Json:
        return {}  # one book: a conditional order is cancelled and read like any other

    @staticmethod
    def conditional_params(
        trigger: str, contract: bool, trigger_price: float | None, trailing_percent: float | None, side: str, reference: float | None = None
    ) -> Json:
        """A stop or take-profit order: ``triggerPrice``, one order under one id before and after its trigger.

        * USDT perpetuals: with the direction the price must cross the trigger in (a stop sells when the price falls
          to it and buys when it rises; a take-profit the other way round): Bybit refuses a trigger already passed.
        * Spot: a conditional order (ccxt sends ``orderFilter=StopOrder``), which holds no funds until it triggers,
          so a stop-loss and a take-profit can both guard the same coins (the engine cancels the other when one
          acts). Bybit takes no direction on spot: it reads it from the side of its last price the trigger is on,
          which is why the engine refuses a trigger on the wrong side of the last price before sending.

        A trailing stop never reaches here: the engine trails a stop-market order itself (``amend_trigger``)."""
        if trigger not in ("stop", "take") or trigger_price is None:
            raise E.InvalidOrder(f"bybit: {trigger} orders are not offered on this venue")
        if not contract:
            return {"triggerPrice": trigger_price}
        falling = (trigger == "stop") == (side == "sell")
        return {"triggerPrice": trigger_price, "triggerDirection": "descending" if falling else "ascending"}

    @staticmethod
    def position_params(position_side: str) -> Json:
        """Hedge mode: ``positionIdx`` 1 is the long position, 2 the short one; a sell on 1 closes the long."""
        return {"positionIdx": 1 if position_side == "long" else 2}

    @staticmethod
    def oco_request(market_id: str, side: str, amount: str, take_profit: str, stop: str, above_cid: str, below_cid: str) -> Json:
        raise E.InvalidOrder("bybit has no one-cancels-the-other order list")

    @staticmethod
    async def create_oco(ex: StrictBybit, request: Json) -> Json:
        raise E.InvalidOrder("bybit has no one-cancels-the-other order list")

    @staticmethod
    def order_books(contract: bool) -> list[Json]:
        return [{}]

    @staticmethod
    def cancel_all_books(contract: bool) -> list[Json]:
        """ccxt params of each cancel-all the account e-stop sends per symbol: on linear one cancels every kind
        (conditional orders still waiting too); on spot one cancels plain orders only unless ``orderFilter`` names
        stops or TP/SL orders, so each is named (a unified account's open-order listing shows all three)."""
        return [{}] if contract else [dict(b) for b in SPOT_CANCEL_BOOKS]

    @staticmethod
    def order_trades_params(order_id: str) -> Json:
        return {"orderId": order_id}

    # ----------------------------------------------------------------- reading raw payloads
    @staticmethod
    def trigger_phase(raw: Json) -> str | None:
        """``Untriggered``: waiting; a conditional order (``stopOrderType`` set) in any live or done status of the
        order it became: triggered; ``Deactivated`` (cancelled while waiting) and plain orders: None."""
        info = raw.get("info")
        if not isinstance(info, dict):
            return None
        status = info.get("orderStatus")
        if status == "Untriggered":
            return "waiting"
        if info.get("stopOrderType") not in (None, "", "UNKNOWN") and status in ("Triggered", "New", "PartiallyFilled", "Filled"):
            return "triggered"
        return None

    @staticmethod
    def triggered_order_id(raw: Json) -> str | None:
        return None

    @staticmethod
    def is_algo_record(raw: Json) -> bool:
        return False

    @staticmethod
    def stamp_of(raw: object) -> Stamp | None:
        """The stamp ``StrictBybit`` put on the private message row a parsed report came from; a balance's ``info``
        is the message's ``data`` (a list of accounts)."""
        info = raw.get("info") if isinstance(raw, dict) else None
        if isinstance(info, list) and info and isinstance(info[0], dict):
            info = info[0]
        return stamp_in(info)

    @staticmethod
    def snapshot_time(raw: object) -> int | None:
        """The time of a wallet-balance answer (ccxt's ``timestamp``: the response's ``time``)."""
        ts = raw.get("timestamp") if isinstance(raw, dict) else None
        return ts if isinstance(ts, int) and ts > 0 else None

    @staticmethod
    def position_time(raw: object) -> int | None:
        info = raw.get("info") if isinstance(raw, dict) else None
        return _ms(info.get("updatedTime")) if isinstance(info, dict) else None

    @staticmethod
    def position_side(info: object) -> str | None:
        """One-way mode: ``positionIdx`` 0 is "BOTH" (1 and 2 would be hedge mode's long and short)."""
        idx = info.get("positionIdx") if isinstance(info, dict) else None
        return {"0": "BOTH", "1": "LONG", "2": "SHORT"}.get(str(idx)) if idx is not None else None

    @staticmethod
    def fill_client_id(info: object) -> str | None:
        cid = info.get("orderLinkId") if isinstance(info, dict) else None
        return cid if isinstance(cid, str) and cid else None

    @staticmethod
    def realized_pnl(info: object) -> float | None:
        return None  # Bybit's executions carry no realised PnL (closed-pnl is a separate listing)

    @staticmethod
    def reject_reason(info: object) -> str | None:
        """``rejectReason`` (EC_NoError when there is none) or ``cancelType`` of an order that ended."""
        if not isinstance(info, dict):
            return None
        reason = info.get("rejectReason")
        if isinstance(reason, str) and reason not in ("", "EC_NoError"):
            return reason
        return None

    @staticmethod
    def futures_balances(raw: Json) -> dict[str, AssetBalance] | None:
        """The unified wallet's coins (REST ``wallet-balance`` or the ``wallet`` topic): wallet balance, the
        margin orders and positions hold and what spot orders lock, and what new orders may use (the account's available balance, in USD
        terms, is given for the whole account; per coin Bybit says ``availableToWithdraw`` or nothing)."""
        info = raw.get("info")
        accounts: object = info
        if isinstance(info, dict):
            result = info.get("result")
            accounts = result.get("list") if isinstance(result, dict) else None
        if not isinstance(accounts, list):
            return None
        out: dict[str, AssetBalance] = {}
        for account in accounts:
            if not isinstance(account, dict):
                continue
            for c in account.get("coin") or []:
                if not isinstance(c, dict) or not isinstance(c.get("coin"), str):
                    continue
                wallet = num(c.get("walletBalance"))
                # one wallet for every kind of trading: what spot orders lock (``locked``) is as taken as margin
                held = num(c.get("totalOrderIM")) + num(c.get("totalPositionIM")) + num(c.get("locked"))
                out[c["coin"]] = AssetBalance(wallet - held, held, wallet, wallet - held)
        return out

    @staticmethod
    def reports_funding(raw: Json) -> bool:
        """A wallet message after a funding settlement's execution (``StrictBybit.handle_balance``'s mark): the
        engine then reads the settlements (``funding_history``). A settlement whose execution came after its wallet
        message is noted on the next one; the positions watcher's verification reads them anyway."""
        info = raw.get("info")
        if isinstance(info, list) and info and isinstance(info[0], dict):
            mark = info[0].get(STAMP_KEY)
            return isinstance(mark, dict) and mark.get("funding") is True
        return False

    @staticmethod
    async def funding_history(ex: StrictBybit, since: int | None) -> list[Json]:
        """The USDT perpetuals' funding settlements booked since ``since`` (ccxt's ``fetch_funding_history``:
        ``/v5/execution/list?execType=Funding``). Bybit answers at most 7 days a request, the 7 days from
        ``startTime`` when no end is given: an older ``since`` is read window by window up to now (else every
        settlement after the first week would stay unread), each window page by page (its cursor)."""
        now = int(ex.milliseconds())
        start = since if since is not None else now - EXECUTION_WINDOW_MS + CLOCK_MARGIN_MS
        rows: list[Json] = []
        while True:
            params: Json = {"type": "swap", "subType": "linear", "paginate": True, "paginationCalls": FUNDING_PAGES}
            last = now - start < EXECUTION_WINDOW_MS - CLOCK_MARGIN_MS  # this window reaches past now
            if not last:
                params["until"] = start + EXECUTION_WINDOW_MS - 1
            page = await ex.fetch_funding_history(None, start, None, params)
            if not isinstance(page, list):
                raise ccxt.BadResponse(f"bybit funding history: unexpected answer {str(page)[:200]}")
            rows += [r for r in page if isinstance(r, dict)]
            if last:
                return rows
            start += EXECUTION_WINDOW_MS

    @staticmethod
    def funding_received(raw: Json) -> float | None:
        """What the account received (< 0: paid) in a funding row: ccxt gives Bybit's ``execFee`` as the amount, what
        the account *paid* (negative: received), the opposite of Binance's income."""
        info = raw.get("info")
        fee = opt_num(info.get("execFee")) if isinstance(info, dict) else None
        return -fee if fee is not None else None

    @staticmethod
    def forced_close(raw: Json) -> str | None:
        """ "liquidation" or "adl" for the exchange's forced closes (``createType``: a laddered liquidation
        ``CreateByLiq``, the liquidation engine's takeover ``CreateByTakeOver_PassThrough``, auto-deleveraging
        ``CreateByAdl_PassThrough``)."""
        info = raw.get("info")
        kind = info.get("createType") if isinstance(info, dict) else None
        if kind in ADL_TYPES:
            return "adl"
        if kind in LIQUIDATION_TYPES:
            return "liquidation"
        return None

    def closed_through(self, ex: object, symbol: str, timeframe: str) -> int | None:
        closed = getattr(ex, "closed_klines", None)
        return closed.get((symbol, timeframe)) if isinstance(closed, dict) else None

    @staticmethod
    def balance_cache_key(market_type: str) -> str:
        return "unified"  # one wallet for spot and derivatives (ccxt's key: the wallet topic's accountType)

    @staticmethod
    def cached_position_rows(ex: object) -> list[Json]:
        held = getattr(ex, "positions", None)  # ccxt's ArrayCacheBySymbolBySide: a list
        return [r for r in held if isinstance(r, dict)] if isinstance(held, list) else []

    @staticmethod
    def used_weight(headers: dict[str, str] | None) -> int | None:
        return None  # Bybit counts requests per endpoint, not a weight (X-Bapi-Limit-Status)

    # ----------------------------------------------------------------- the account's switches
    @staticmethod
    def switch_scope(market: Json) -> str | None:
        """The DCP product whose switch covers the market: spot orders ``SPOT``, USDT perpetuals ``DERIVATIVES``
        (one switch for every symbol of the product on the account)."""
        if market.get("spot"):
            return "SPOT"
        if market.get("contract") and market.get("linear"):
            return "DERIVATIVES"
        return None

    async def arm_switch(self, ex: StrictBybit, scope: str, window_ms: int) -> int:
        """DCP of the product ``scope`` kept armed by the client's private connection (``StrictBybit.keep_dcp``),
        with Bybit's ``timeWindow`` nearest to ``window_ms`` (``dcp_window_s``). Bybit refusing the window or the
        topic (not a transient failure) means the account has no DCP there: ``SwitchUnavailable``."""
        window_s = dcp_window_s(window_ms)
        try:
            await ex.keep_dcp(scope, window_s)
        except Exception as exc:
            err = self.map_error(exc)
            if isinstance(err, E.PermanentError) and not isinstance(err, E.SwitchUnavailable):
                raise E.SwitchUnavailable(f"bybit refused Disconnected Cancel All for {scope}: {err}", err.code, exc) from exc
            raise err from exc
        return window_s * 1000

    @staticmethod
    async def disarm_switch(ex: StrictBybit, scope: str) -> None:
        raise E.InvalidOrder(
            f"bybit: Disconnected Cancel All ({scope}) cannot be turned off through the API; it lapses timeWindow after "
            "the account's last connection subscribed to its topic goes"
        )

    @staticmethod
    async def position_mode(ex: StrictBybit) -> bool:
        """Bybit keeps the mode per symbol (``positionIdx`` 1/2 on a hedge-mode position row, 0 one-way) and ccxt has
        no ``fetch_position_mode`` for it: the USDT perpetual rows the account has say; none: one-way, Bybit's
        default (an order in the wrong mode is refused, never misplaced)."""
        rows = await ex.fetch_positions(None, {"category": "linear", "settleCoin": "USDT"})
        if not isinstance(rows, list):
            raise ccxt.BadResponse(f"bybit positions: unexpected answer {str(rows)[:200]}")
        return any(isinstance(r, dict) and str((r.get("info") or {}).get("positionIdx")) in ("1", "2") for r in rows)

    @staticmethod
    async def can_withdraw(ex: StrictBybit) -> bool | None:
        """Whether the key's permissions include withdrawals (``/v5/user/query-api``: ``permissions.Wallet``)."""
        answer = await ex.privateGetV5UserQueryApi()
        result = answer.get("result") if isinstance(answer, dict) else None
        perms = result.get("permissions") if isinstance(result, dict) else None
        wallet = perms.get("Wallet") if isinstance(perms, dict) else None
        return "Withdraw" in wallet if isinstance(wallet, list) else None

    # ----------------------------------------------------------------- errors
    @staticmethod
    def error_code(exc: BaseException) -> int | None:
        m = _CODE_RE.search(str(exc))
        return int(m.group(1)) if m else None

    def refine_error(self, exc: BaseException) -> E.ExchangeOpError | None:
        return refined(exc, self.error_code(exc), ERRORS)

    def already_set(self, exc: BaseException) -> bool:
        text = str(exc)
        # "not modified" (modes, leverage); an amend to what the order already has: 10001 "The order remains unchanged"
        return self.error_code(exc) in ALREADY_SET or "not modified" in text or "remains unchanged" in text

    def map_error(self, exc: BaseException) -> E.ExchangeOpError:
        return E.map_error(exc, self.refine_error, self.error_code)


BYBIT = BybitDialect()
