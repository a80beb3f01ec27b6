"""The ``Venue`` (model/venue.py) over ccxt: Binance spot and USDⓈ-M today (and the simulated exchange of paper and
backtests, sim/venue.py, behind the same calls).

Every request goes through ``ExchangeClient.call`` (pacing, retries with backoff, typed errors, the ``api_call``
trace); every answer is turned into the domain's reports (``exchange/reports.py``) and every request built from the
engine's terms (``exchange/requests.py``), so nothing above this layer sees ccxt or a raw payload.

``CcxtVenue`` is still an ``ExchangeClient`` while callers move over (issue 26): ``call``, ``ex`` and the dialect
(``venue``) keep working for them. Four methods of the client answered ccxt's raw dicts under the names the
protocol gives to reports (``open_orders``, ``order_history``, ``cancel_orders``, ``account_open_orders``); here
they answer reports, and the raw answers stay available as ``*_rows`` / ``cancel_order_rows``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from functools import partial

from ..config import StrategyConfig
from ..model.sink import EventSink
from ..model.types import Json, Side
from ..model.venue import (
    BalanceReport,
    CancelResult,
    Capabilities,
    FillReport,
    FundingPayment,
    MarketType,
    OrderRef,
    OrderReport,
    PlaceExitList,
    PlaceOrder,
    PositionReport,
    Ticker,
)
from .ccxt_types import CcxtExchange
from .client import ExchangeClient, is_balance, is_list, is_order, is_spot_balance
from .dialect import Dialect
from .errors import ExchangeOpError, MalformedResponse
from .reports import ReportParser
from .requests import exit_list_request, order_args, ref_params
from .trade_bars import BUILT, Row, TradeBars, history_candles, trade_rows

FILL_MEMO_MAX = 4096  # parsed stream fills kept by identity (the cache is re-read after every event)
ORDER_MEMO_MAX = 4096  # parsed stream orders kept by identity and fingerprint (several watchers read each update)
# what a cached order's state is, to tell a changed one: an update moves it to the cache's end with new values
_ORDER_MARK = ("status", "filled", "remaining", "price", "amount", "triggerPrice", "lastUpdateTimestamp", "lastTradeTimestamp")


RECENT_TRADES = 1000  # asked of a recent-trade list (Bybit answers up to 1 000 on linear, 60 on spot)
RECENT_TRADES_TIMEOUT_S = 10.0


def has_last_price(x: object) -> bool:
    last = x.get("last") if isinstance(x, dict) else None
    return isinstance(last, (int, float)) and not isinstance(last, bool) and last > 0


def is_dict(x: object) -> bool:
    return isinstance(x, dict)


class CcxtVenue(ExchangeClient):
    """A ccxt exchange as a ``Venue``. The venue's dialect (``self.venue``: Binance's parameters, error codes and
    payload fields) supplies what ccxt leaves to each exchange."""

    def __init__(
        self, cfg: StrategyConfig, sink: EventSink | None = None, exchange: CcxtExchange = None, dialect: Dialect | None = None
    ) -> None:
        super().__init__(cfg, sink, exchange, dialect)
        self.caps: Capabilities = self.venue.caps
        self.parse = ReportParser(self.venue)
        self._fill_memo: dict[int, tuple[Json, FillReport]] = {}
        self._order_memo: dict[int, tuple[Json, tuple[object, ...], OrderReport]] = {}
        self._cache_seen: dict[str, dict[object, tuple[object, ...]]] = {}  # by symbol: order id -> its state when last read
        self._bars: dict[tuple[str, str], TradeBars] = {}  # candles built from trades (trade_bars.py), per symbol and timeframe

    def _already_set(self, err: ExchangeOpError) -> bool:
        """The exchange said the change was already in place (its error code or message, per the dialect); never read
        from an answer that did not parse, whose text may hold those words without the exchange having said them."""
        return not isinstance(err, MalformedResponse) and self.venue.already_set(err)

    def _contract(self, symbol: str) -> bool:
        return bool(self.markets.get(symbol, {}).get("contract"))

    # ------------------------------------------------------------------ markets and time
    async def load_markets(self, timeout: float) -> Mapping[str, Json]:
        markets: Mapping[str, Json] = await self.call(
            "load_markets", lambda: self.ex.load_markets(), timeout, validate=lambda m: isinstance(m, dict) and bool(m)
        )
        return markets

    def amount_to_precision(self, symbol: str, amount: float) -> float:
        return float(self.ex.amount_to_precision(symbol, amount))

    def price_to_precision(self, symbol: str, price: float) -> float:
        return float(self.ex.price_to_precision(symbol, price))

    async def server_time(self, timeout: float) -> int:
        """The exchange's clock (ms); one attempt: it is the connection's health probe."""
        return int(await self.call("fetch_time", lambda: self.ex.fetch_time(), timeout, retries=0))

    async def tickers(self, symbols: Sequence[str], timeout: float) -> dict[str, Ticker]:
        raw = await self.call("fetch_tickers", lambda: self.ex.fetch_tickers(list(symbols)), timeout, validate=is_dict)
        return self.parse.tickers(raw)

    async def ticker(self, symbol: str, timeout: float) -> Ticker:
        """One symbol's ticker; an answer without a positive last price is malformed (retried, then
        ``MalformedResponse``): the order checks price an order by it."""
        raw = await self.call("fetch_ticker", lambda: self.ex.fetch_ticker(symbol), timeout, validate=has_last_price)
        return self.parse.ticker(raw, symbol)

    async def ohlcv(self, symbol: str, timeframe: str, limit: int, timeout: float) -> list[list[float]]:
        step = self._built(symbol, timeframe)
        if step is None:
            candles: list[list[float]] = await self.call(
                "fetch_ohlcv", lambda: self.ex.fetch_ohlcv(symbol, timeframe, limit=limit), timeout, validate=is_list
            )
            return candles
        return history_candles(await self._recent_trades(symbol, timeout), step, limit)

    def _built(self, symbol: str, timeframe: str) -> int | None:
        """The length (ms) of a timeframe the engine builds from trades on ``symbol``'s market: one the venue serves
        no candles of there (``Capabilities.served``)."""
        market_type: MarketType = "swap" if self._contract(symbol) else "spot"
        return BUILT.get(timeframe) if timeframe not in self.caps.served(market_type) else None

    async def _recent_trades(self, symbol: str, timeout: float) -> list[Row]:
        """The exchange's recent-trade list of ``symbol`` (as many as one request answers)."""
        trades = await self.call("fetch_trades", lambda: self.ex.fetch_trades(symbol, limit=RECENT_TRADES), timeout, validate=is_list)
        return trade_rows(trades)

    # ------------------------------------------------------------------ orders
    async def create_order(self, order: PlaceOrder, timeout: float) -> OrderReport:
        """Place one order, once (never retried here: the engine decides what an unknown outcome means). Waits for
        the account's order pace first."""
        kind, params = order_args(self.venue, order, self._contract(order.symbol))
        await self.orders.acquire()
        raw = await self.call(
            "create_order",
            lambda: self.ex.create_order(order.symbol, kind, order.side.value, order.amount, order.price, params),
            timeout,
            idempotent=False,
            retries=0,
            validate=is_order,
        )
        return self.parse.order(raw)

    async def create_exit_list(self, exit_list: PlaceExitList, timeout: float) -> list[OrderReport]:
        """Place a one-cancels-the-other exit list (spot), once; answers the report of each of its orders."""
        symbol = exit_list.symbol
        market = self.markets[symbol]
        ex = self.ex
        request = exit_list_request(
            self.venue,
            str(market["id"]),
            exit_list,
            ex.amount_to_precision(symbol, exit_list.amount),
            ex.price_to_precision(symbol, exit_list.take_profit),
            ex.price_to_precision(symbol, exit_list.stop),
        )
        await self.orders.acquire()
        answer = await self.call(
            "create_oco", lambda: self.venue.create_oco(ex, request), timeout, idempotent=False, retries=0, validate=is_dict
        )
        legs = answer.get("orderReports")
        return [self.parse.order(ex.parse_order(leg, market)) for leg in legs if isinstance(leg, dict)] if isinstance(legs, list) else []

    async def cancel_order(self, symbol: str, ref: OrderRef, timeout: float, retries: int = 3) -> OrderReport:
        params = ref_params(self.venue, ref, self._contract(symbol))
        raw = await self.call("cancel_order", partial(self.ex.cancel_order, ref.order_id, symbol, params), timeout, retries=retries)
        if not isinstance(raw, dict):
            return OrderReport(symbol, ref.order_id, ref.client_order_id, None)
        return self.parse.order(raw)

    async def amend_trigger(self, symbol: str, ref: OrderRef, side: Side, trigger_price: float, timeout: float) -> None:
        """Move a waiting conditional order's trigger (ccxt's ``edit_order`` with ``triggerPrice`` only: the amount
        and the price stay). The trigger is absolute, so a retry after a lost answer sets the same value; the
        exchange's "unchanged" then says it is already there."""
        params = {**ref_params(self.venue, ref, self._contract(symbol)), "triggerPrice": trigger_price}
        try:
            await self.call(
                "edit_order", partial(self.ex.edit_order, ref.order_id, symbol, "market", side.value, None, None, params), timeout
            )
        except ExchangeOpError as err:
            if not self._already_set(err):
                raise

    async def cancel_orders(  # type: ignore[override]  # ExchangeClient's answered raw dicts (callers moving over)
        self, symbol: str, refs: Sequence[OrderRef], timeout: float, retries: int = 3
    ) -> CancelResult:
        """Cancel exactly these orders, in as few requests as the venue allows (``cancel_order_rows``); never
        raises: what the exchange did not confirm is said per order."""
        rows = await self.cancel_order_rows(symbol, refs, timeout, retries)
        by_cid = {r.client_order_id: r for r in refs}
        cancelled: dict[str, OrderReport] = {}
        for cid, raw in rows.cancelled.items():
            ref = by_cid.get(cid)
            if raw:
                cancelled[cid] = self.parse.order(raw)
            else:
                cancelled[cid] = OrderReport(symbol, ref.order_id if ref is not None else None, cid, None)
        return CancelResult(cancelled, rows.not_open, rows.unconfirmed, rows.requests, refused=rows.refused)

    async def cancel_every_order(self, symbol: str, timeout: float, retries: int = 3) -> list[OrderReport]:
        """ACCOUNT-WIDE (see ``cancel_every_order_rows``): the reports of the orders the answers name."""
        return self.parse.orders(await self.cancel_every_order_rows(symbol, timeout, retries))

    async def fetch_order(self, symbol: str, ref: OrderRef, timeout: float, retries: int = 3) -> OrderReport:
        """The exchange's record of one order; raises ``OrderNotFound`` when it has none by that name."""
        params = ref_params(self.venue, ref, self._contract(symbol))
        raw = await self.call(
            "fetch_order", partial(self.ex.fetch_order, ref.order_id, symbol, params), timeout, retries=retries, validate=is_order
        )
        return self.parse.order(raw)

    async def open_orders(self, symbol: str, timeout: float, retries: int = 3) -> list[OrderReport]:  # type: ignore[override]
        return self.parse.orders(await self.open_order_rows(symbol, timeout, retries))

    async def account_open_orders(  # type: ignore[override]
        self, market_type: MarketType, timeout: float, retries: int = 1
    ) -> list[OrderReport]:
        return self.parse.orders(await self.account_open_order_rows(market_type, timeout, retries))

    async def order_history(  # type: ignore[override]
        self, symbol: str, timeout: float, since: int | None = None, limit: int | None = None
    ) -> list[OrderReport]:
        return self.parse.orders(await self.order_history_rows(symbol, timeout, since, limit))

    async def my_trades(
        self,
        symbol: str,
        timeout: float,
        since: int | None = None,
        until: int | None = None,
        limit: int | None = None,
        order_id: str | None = None,
    ) -> list[FillReport]:
        """Our fills on ``symbol``: since a time (up to ``until``), at most ``limit``, or those of one order."""
        params: Json = dict(self.venue.listing_params)
        if until is not None:
            params["until"] = until
        if order_id is not None:
            params.update(self.venue.order_trades_params(order_id))
        raw = await self.call("fetch_my_trades", partial(self.ex.fetch_my_trades, symbol, since, limit, params), timeout, validate=is_list)
        return self.parse.fills(raw)

    # ------------------------------------------------------------------ account
    async def balances(self, market_type: MarketType, timeout: float, retries: int = 3) -> BalanceReport:
        """A complete snapshot of the account section's balances (REST)."""
        params: Json = {"type": "swap"} if market_type == "swap" else {}
        valid = is_balance if market_type == "swap" else is_spot_balance
        raw = await self.call("fetch_balance", lambda: self.ex.fetch_balance(params), timeout, retries=retries, validate=valid)
        return self.parse.balance(raw, market_type, complete=True)

    async def positions(self, symbols: Sequence[str] | None, timeout: float, retries: int = 3) -> list[PositionReport]:
        """The futures positions of ``symbols``; None: every position of the account (the venue's params say which
        market type that is, whatever the client's default)."""
        wanted = list(symbols) if symbols is not None else None
        params: Json = dict(self.venue.account_positions_params) if wanted is None else {}
        raw = await self.call(
            "fetch_positions", lambda: self.ex.fetch_positions(wanted, params), timeout, retries=retries, validate=is_list
        )
        return self.parse.positions(raw)

    async def set_leverage(self, symbol: str, leverage: float, timeout: float) -> None:
        """Raises nothing when the leverage is already set (Bybit refuses an unchanged leverage; Binance does not)."""
        try:
            await self.call("set_leverage", partial(self.ex.set_leverage, leverage, symbol), timeout)
        except ExchangeOpError as err:
            if not self._already_set(err):
                raise

    async def set_margin_mode(self, symbol: str, mode: str, timeout: float) -> None:
        """Raises nothing when the mode is already set."""
        try:
            await self.call("set_margin_mode", partial(self.ex.set_margin_mode, mode, symbol), timeout)
        except ExchangeOpError as err:
            if not self._already_set(err):
                raise

    async def position_mode(self, timeout: float) -> bool:
        """Whether the account holds futures positions in hedge mode."""
        hedged: bool = await self.call("fetch_position_mode", lambda: self.venue.position_mode(self.ex), timeout)
        return hedged

    async def set_position_mode(self, hedged: bool, timeout: float) -> None:
        """Raises nothing when the mode is already set."""
        try:
            await self.call("set_position_mode", partial(self.ex.set_position_mode, hedged), timeout)
        except ExchangeOpError as err:
            if not self._already_set(err):
                raise

    async def funding_history(self, since: int | None, timeout: float) -> list[FundingPayment]:
        """Funding payments booked since ``since`` (every page and time window the venue answers in)."""
        raw = await self.call("fetch_funding_history", lambda: self.venue.funding_history(self.ex, since), timeout, validate=is_list)
        return [self.parse.funding(r) for r in raw if isinstance(r, dict)]

    # ------------------------------------------------------------------ streams
    async def watch_orders(self, symbol: str | None = None) -> list[OrderReport]:
        rows = await self.ex.watch_orders(symbol)
        return [self._order(r) for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []

    async def watch_fills(self, symbol: str | None = None) -> list[FillReport]:
        return [self._fill(t) for t in await self.ex.watch_my_trades(symbol) if isinstance(t, dict)]

    async def watch_balance(self, market_type: MarketType) -> BalanceReport:
        raw = await self.ex.watch_balance({"type": "swap"} if market_type == "swap" else {})
        return self._taken(self.parse.balance(raw, market_type, complete=False))

    def _taken(self, report: BalanceReport) -> BalanceReport:
        """A stream balance handed to the engine: the client's count of what the stream carried since starts again
        (``StrictBinance.balance_taken``; a client without one stamps each message alone)."""
        taken = getattr(self.ex, "balance_taken", None)
        if callable(taken) and not inspect.iscoroutinefunction(taken):  # a client's own, not an API method's stand-in
            taken()
        return report

    async def watch_positions(self, symbols: Sequence[str] | None = None) -> list[PositionReport]:
        return self.parse.positions(await self.ex.watch_positions(list(symbols) if symbols is not None else None))

    async def watch_ohlcv(self, symbol: str, timeframe: str) -> list[list[float]]:
        step = self._built(symbol, timeframe)
        if step is None:
            candles: list[list[float]] = await self.ex.watch_ohlcv(symbol, timeframe)
            return candles
        bars = self._bars.setdefault((symbol, timeframe), TradeBars(step))
        try:
            batch = trade_rows(await self.ex.watch_trades(symbol))
            if bars.needs_history(batch):  # what the stream may have missed: the exchange's list says (trade_bars.py)
                bars.add(await self._recent_trades(symbol, RECENT_TRADES_TIMEOUT_S))
                bars.joined = True
        except BaseException:
            bars.joined = False  # trades may be missed until the next watch joins the list again
            raise
        bars.add(batch)
        return [list(c) for c in bars.candles[-100:]]

    def closed_through(self, symbol: str, timeframe: str) -> int | None:
        if not self._built(symbol, timeframe):
            return super().closed_through(symbol, timeframe)
        bars = self._bars.get((symbol, timeframe))
        return bars.closed_through if bars is not None else None

    def cached_order_updates(self, symbol: str) -> list[OrderReport]:
        """The orders of ``symbol`` ccxt's stream cache changed since the last call (it keeps applying messages that
        arrive while no watch waits, and resolves nobody). ccxt's order cache moves an order to its end each time a
        message updates it, so the walk goes back from the end and stops at the first order of the symbol that has
        not changed since the last call: everything before it changed earlier, and was returned then. The cost
        follows what changed, not the cache's size (up to a thousand orders); only those rows are parsed."""
        cache = getattr(self.ex, "orders", None)
        if not cache:
            return []
        seen = self._cache_seen.setdefault(symbol, {})
        rows: list[Json] = []
        for row in reversed(cache):
            if not isinstance(row, dict) or row.get("symbol") != symbol:
                continue
            mark = tuple(row.get(k) for k in _ORDER_MARK)
            key = row.get("id")
            if seen.get(key) == mark:
                break
            seen[key] = mark
            rows.append(row)
        if len(seen) > 2 * len(cache) + 100:  # orders the cache evicted since: forget them
            held = {(r.get("id")) for r in cache if isinstance(r, dict) and r.get("symbol") == symbol}
            for key in [k for k in seen if k not in held]:
                del seen[key]
        rows.reverse()
        return [self._order(r) for r in rows]

    def cached_fills(self, symbol: str, last: int) -> list[FillReport]:
        trades = getattr(self.ex, "myTrades", None)
        if not trades:
            return []
        return [self._fill(t) for t in list(trades)[-last:] if isinstance(t, dict) and t.get("symbol") == symbol]

    def cached_balance(self, market_type: MarketType) -> BalanceReport | None:
        held = getattr(self.ex, "balance", None)
        latest = held.get(self.venue.balance_cache_key(market_type)) if isinstance(held, dict) else None
        if not isinstance(latest, dict) or not latest.get("info"):
            return None
        return self._taken(self.parse.balance(latest, market_type, complete=False))

    def cached_positions(self) -> list[PositionReport]:
        return self.parse.positions(self.venue.cached_position_rows(self.ex))

    def _order(self, raw: Json) -> OrderReport:
        """A stream order's report, parsed once per state of its cached row: each update reaches the asset's order
        watcher, the account-wide watch of the twin check and the cache read after the event, all the same row.

        ccxt keeps one dict per order in its cache and changes it in place: an update replaces every field, ``info``
        with the new message (a new object each time), and a fill of the order appends to its ``trades`` and changes
        its ``fee``. The fingerprint holds those: the ``info`` object itself (kept alive by the memo, so its identity
        cannot be reused), the ``trades`` list and its length, and the fields that tell an order's state apart
        (``_ORDER_MARK``); the fee is not part of an order report."""
        trades = raw.get("trades")
        info = raw.get("info")
        if not isinstance(info, dict):  # no message to tell one state from the next: parsed every time
            return self.parse.order(raw)
        state = tuple(raw.get(k) for k in _ORDER_MARK)  # the values too: an update that kept the message object
        mark = (info, trades, len(trades) if isinstance(trades, list) else -1, state)
        key = id(raw)
        hit = self._order_memo.get(key)
        if hit is not None and hit[0] is raw and hit[1][0] is info and hit[1][1] is trades and hit[1][2:] == mark[2:]:
            return hit[2]
        if len(self._order_memo) >= ORDER_MEMO_MAX:
            self._order_memo.clear()
        report = self.parse.order(raw)
        self._order_memo[key] = (raw, mark, report)
        return report

    def _fill(self, raw: Json) -> FillReport:
        """A stream fill's report, parsed once: the trade cache is read again after every event."""
        key = id(raw)
        hit = self._fill_memo.get(key)
        if hit is not None and hit[0] is raw:
            return hit[1]
        if len(self._fill_memo) >= FILL_MEMO_MAX:
            self._fill_memo.clear()
        report = self.parse.fill(raw)
        self._fill_memo[key] = (raw, report)
        return report

    # ------------------------------------------------------------------ connection
    async def reset_streams(self) -> None:
        """Close every websocket on purpose: pending watches fail, the next watch call subscribes again."""
        await self.ex.close_ws_clients()
