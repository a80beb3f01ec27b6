"""One ccxt.pro binance client per strategy, wrapped with timeouts, pacing, tracing and error mapping.

Every REST call goes through ``ExchangeClient.call``: it waits for the weight
guard, bounds the call with its timeout, records an ``api_call`` event
(operation, latency, result class), reads the used-weight header, maps
ccxt's exception to the engine's typed errors, validates the answer's shape
and retries transient failures with exponential backoff when (and only when)
the operation is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from ..config import StrategyConfig
from ..model.sink import EventSink, MemorySink
from ..model.stamp import Stamp
from ..model.types import Json
from ..model.venue import OrderRef
from .answers_first import AnswersFirst
from .binance import BINANCE, NotSent
from .budget import SEND_DEADLINE, Pacer
from .ccxt_types import CcxtExchange
from .dialect import Dialect, DialectClient
from .errors import ClockSkew, ExchangeOpError, MalformedResponse, RateLimited
from .limiter import OrderPacer, RequestWindow, WeightGuard, WindowSpent, urgent

log = logging.getLogger("planar.exchange")
CANCEL_CONCURRENCY = 32  # cancel requests of one cancel_orders in flight at once
T = TypeVar("T")
Validator = Callable[[object], bool]


@dataclass(frozen=True)
class CancelTarget:
    """One order to cancel, named as the exchange knows it (the engine's former name of ``model.venue.OrderRef``,
    kept for callers of ``ExchangeClient.cancel_orders`` until they move to the ``Venue``)."""

    client_order_id: str
    order_id: str | None = None  # None: its acknowledgement was lost; it is named by its client id
    waiting_trigger: bool = False  # a futures conditional order still waiting in the Algo Service


@dataclass
class CancelResult:
    """What the exchange said about each order of a ``cancel_orders`` (by client order id), in ccxt's raw terms
    (``CcxtVenue.cancel_orders`` answers ``model.venue.CancelResult`` with reports)."""

    cancelled: dict[str, Json] = field(default_factory=dict)  # confirmed: the exchange's record of the order
    not_open: set[str] = field(default_factory=set)  # the exchange has no open order by that name (closed, never booked, not visible yet)
    unconfirmed: dict[str, str] = field(default_factory=dict)  # no word either way (why): the next listing tells
    refused: set[str] = field(default_factory=set)  # of the unconfirmed: the exchange answered with a refusal (not a lost answer)
    requests: int = 0


def is_balance(x: object) -> bool:
    """A parsed balance: its exchange answer, and numbers. A margin wallet may be negative (a cross liquidation
    past bankruptcy leaves a debt: an outside trial saw every read of one refused as malformed, and the engine kept
    the equity from before the loss); ``is_spot_balance`` refuses that on spot."""
    if not (isinstance(x, dict) and isinstance(x.get("info"), (dict, list)) and x.get("info")):
        return False
    return all(v is None or isinstance(v, (int, float)) for k in ("free", "total") for v in (x.get(k) or {}).values())


def is_spot_balance(x: object) -> bool:
    """A parsed balance with no negative amount (an exchange never owes a spot account)."""
    return is_balance(x) and isinstance(x, dict) and all(v is None or v >= 0 for k in ("free", "total") for v in (x.get(k) or {}).values())


def is_order(x: object) -> bool:
    return isinstance(x, dict) and x.get("id") is not None and x.get("symbol") is not None


def is_list(x: object) -> bool:
    return isinstance(x, list)


def guard_ccxt_logs(secrets: list[str]) -> None:
    """ccxt logs every request's headers (the API key among them) at DEBUG: keep its loggers at
    INFO and put a redactor on them, whatever level the application runs at."""
    from ..alerts.redact import RedactingFilter, Redactor

    flt = RedactingFilter(Redactor(secrets))
    names = ["ccxt"] + [n for n in logging.root.manager.loggerDict if n.startswith("ccxt.")]
    for name in names:
        lg = logging.getLogger(name)
        if lg.level == logging.NOTSET or lg.level < logging.INFO:
            lg.setLevel(logging.INFO)
        lg.addFilter(flt)


class ExchangeClient:
    """The wire client: one ccxt exchange (the simulated one too: sim/venue.py) with the engine's request policies. ``venue`` is
    the venue's dialect (what ccxt leaves to the exchange); ``CcxtVenue`` builds the ``Venue`` protocol on it."""

    def __init__(
        self, cfg: StrategyConfig, sink: EventSink | None = None, exchange: CcxtExchange = None, dialect: Dialect | None = None
    ) -> None:
        self.cfg = cfg
        self.sink: EventSink = sink if sink is not None else MemorySink()
        if dialect is None:  # the registry (open_venue) passes the venue's dialect; built directly: Binance's
            if cfg.exchange != BINANCE.name:
                raise ValueError(f"ExchangeClient for {cfg.exchange!r}: build it through exchange.registry.open_venue")
            dialect = BINANCE
        self.venue: Dialect = dialect
        self.name: str = dialect.name  # the venue's registry name
        if exchange is None:
            if cfg.mode == "paper":  # a keyed client must never stand for paper: its private calls would reach the account
                raise ValueError("a paper venue is built by engine.parts.engine_venue (sim/paper.py), not by the exchange layer")
            exchange = self.venue.build(cfg)
        self.ex = exchange
        self.ex._trace = self.sink  # ccxt's hooks record into the engine's trace
        self._seq = itertools.count(1)  # one order for user-stream messages, REST requests and fills (model/stamp.py)
        if isinstance(exchange, DialectClient):  # the dialect's client stamps stream messages with our counter
            exchange.planar_seq = self.next_seq
        guard_ccxt_logs(cfg.credentials.secret_values())
        self.guard = WeightGuard(cfg.rate_limits.weight_per_minute)
        self.window = RequestWindow(cfg.rate_limits.requests_per_minute)
        self.orders = OrderPacer(cfg.rate_limits.orders_per_second, cfg.rate_limits.burst_allowance)
        self.trace_api_calls = True
        self.last_batch_count = 0
        self.in_flight = 0  # requests sent and not yet answered (tests and the fault harness wait for 0)
        self._rng = random.Random()
        self.pacer: Pacer | None = exchange.pacer if isinstance(exchange, DialectClient) else None  # the host's request budgets

    def next_seq(self) -> int:
        """The next number of the engine's one order of account reports (model/stamp.py)."""
        return next(self._seq)

    @contextlib.contextmanager
    def urgent(self) -> Iterator[None]:
        """The block is an emergency stop (``Venue.urgent``): its requests pass the engine's own request cap
        (``limiter.urgent``), and the user stream waits for their answers (answers_first.py holds it, as it does
        around each order request on its own)."""
        held = self.ex.answer_first() if isinstance(self.ex, AnswersFirst) else contextlib.nullcontext()
        with urgent(), held:
            yield

    def stamp_of(self, raw: object) -> Stamp | None:
        """Where a parsed user-stream report stands (its arrival on the wire, the exchange's time, the currencies
        it carries); None when it did not come from the stream (REST, paper)."""
        return self.venue.stamp_of(raw)

    def snapshot_time(self, raw: object) -> int | None:
        """The exchange's time of the state a REST balance answer shows (None: it does not say)."""
        return self.venue.snapshot_time(raw)

    def position_time(self, raw: object) -> int | None:
        """The exchange's time of a REST position's last change (None: it does not say)."""
        return self.venue.position_time(raw)

    @property
    def markets(self) -> dict[str, Json]:
        """ccxt's markets by unified symbol (empty before load_markets)."""
        markets: dict[str, Json] = self.ex.markets or {}
        return markets

    async def close(self) -> None:
        await self.ex.close()

    async def call(
        self,
        op: str,
        fn: Callable[[], Awaitable[T]],
        timeout: float,
        *,
        idempotent: bool = True,
        retries: int = 3,
        validate: Validator | None = None,
    ) -> T:
        """Run one exchange operation with the engine's policies; raises ExchangeOpError."""
        attempt = 0
        while True:
            await self.guard.wait()
            try:  # a request that must not be sent late (an order: idempotent=False) waits at most half its time
                await self.window.acquire(None if idempotent else timeout / 2)
            except WindowSpent as spent:  # nothing was sent: a refusal, like the host budget's
                self._trace(op, time.perf_counter(), "RateLimited", None)
                raise RateLimited(f"{op} not sent: {spent}, longer than it may wait (rate_limits.requests_per_minute)") from None
            started = time.perf_counter()
            self.in_flight += 1
            deadline = SEND_DEADLINE.set(time.monotonic() + timeout)  # a wait for budget leaves the request its time
            try:
                async with asyncio.timeout(timeout):  # no extra task per request, unlike wait_for
                    result = await fn()
                if validate is not None and not validate(result):
                    raise MalformedResponse(f"{op}: unexpected response shape: {str(result)[:200]}")
            except (TimeoutError, Exception) as raw:
                err = self.venue.map_error(
                    raw if not isinstance(raw, asyncio.TimeoutError) else TimeoutError(f"{op} timed out after {timeout}s")
                )
                self._trace(op, started, type(err).__name__, err.code)
                not_sent = raw if isinstance(raw, NotSent) else None  # the host's budget is spent: nothing was sent
                if isinstance(err, RateLimited) and not_sent is None:  # the exchange's 429/418: this process holds
                    self.guard.observe_rate_limit(self._retry_after(), attempt)
                if isinstance(err, ClockSkew):
                    await self.measure_clock()
                if not err.transient or not idempotent or attempt >= retries:
                    raise err from (raw if not isinstance(raw, ExchangeOpError) else None)
                attempt += 1
                delay = min(5.0, 0.1 * 2**attempt) * (0.5 + self._rng.random())
                if not_sent is not None:  # only this request waits (a process-wide hold would stall orders behind reads)
                    delay = max(delay, min(5.0, not_sent.retry_after))
                level = logging.INFO if not_sent is not None else logging.WARNING
                log.log(level, "%s failed (%s), retry %d/%d in %.2fs", op, type(err).__name__, attempt, retries, delay)
                await asyncio.sleep(delay)
                continue
            finally:
                self.in_flight -= 1
                SEND_DEADLINE.reset(deadline)
            self._trace(op, started, "ok", None)
            self.guard.observe_used(self.venue.used_weight(self.ex.last_response_headers), hold=self.pacer is None)
            return result

    @property
    def dialect(self) -> Dialect:
        """The venue's dialect (``venue``'s clearer name)."""
        return self.venue

    def by_client_id(self, client_order_id: str, waiting_trigger: bool = False) -> Json:
        """ccxt params naming an order by its client order id (for fetch_order / cancel_order with id None);
        ``waiting_trigger``: a futures conditional order that has not triggered yet."""
        return self.venue.by_client_id(client_order_id, waiting_trigger)

    def supports(self, order_type: str, market_type: str = "spot") -> bool:
        """Whether the venue takes this order type (an ``OrderType`` value) on this market type."""
        return order_type in self.venue.caps.order_types

    def order_books(self, contract: bool) -> list[Json]:
        """ccxt params for each book of open orders to read or cancel: futures conditional orders waiting for their
        trigger are a book of their own on Binance (the Algo Service)."""
        return self.venue.order_books(contract)

    async def open_orders(self, symbol: str, timeout: float, retries: int = 3) -> list[Json]:
        """ccxt's open orders on ``symbol`` (``open_order_rows``), for callers not yet on the ``Venue``."""
        return await self.open_order_rows(symbol, timeout, retries)

    async def order_history(self, symbol: str, timeout: float, since: int | None = None, limit: int | None = None) -> list[Json]:
        """ccxt's order history of ``symbol`` (``order_history_rows``), for callers not yet on the ``Venue``."""
        return await self.order_history_rows(symbol, timeout, since, limit)

    async def cancel_orders(
        self, symbol: str, targets: Sequence[CancelTarget | OrderRef], timeout: float, retries: int = 3
    ) -> CancelResult:
        """``cancel_order_rows``, for callers not yet on the ``Venue``."""
        return await self.cancel_order_rows(symbol, targets, timeout, retries)

    async def account_open_orders(self, market_type: str, timeout: float, retries: int = 1) -> list[Json]:
        """ccxt's open orders of the account (``account_open_order_rows``), for callers not yet on the ``Venue``."""
        return await self.account_open_order_rows(market_type, timeout, retries)

    async def open_order_rows(self, symbol: str, timeout: float, retries: int = 3) -> list[Json]:
        """Every open order on ``symbol``, from each of its books (futures: the conditional orders waiting too)."""
        contract = bool(self.markets.get(symbol, {}).get("contract"))
        out: list[Json] = []
        for params in self.order_books(contract):
            out += await self.call(
                "fetch_open_orders",
                partial(self.ex.fetch_open_orders, symbol, None, None, {**params, **self.venue.listing_params}),
                timeout,
                retries=retries,
                validate=is_list,
            )
        return out

    async def order_history_rows(self, symbol: str, timeout: float, since: int | None = None, limit: int | None = None) -> list[Json]:
        """Order history of ``symbol`` (every book): since a time, or the last ``limit`` orders."""
        contract = bool(self.markets.get(symbol, {}).get("contract"))
        out: list[Json] = []
        for params in self.order_books(contract):
            for method in self.venue.history_methods:
                fetch = getattr(self.ex, method)
                listing = {**params, **self.venue.listing_params}
                out += await self.call(method, partial(fetch, symbol, since, limit, listing), timeout, validate=is_list)
        return out

    async def cancel_order_rows(
        self, symbol: str, targets: Sequence[CancelTarget | OrderRef], timeout: float, retries: int = 3
    ) -> CancelResult:
        """Cancel these orders, and only these, each named by its exchange id (or its client id when the
        acknowledgement was lost). Where the venue takes a batch (USD-M: ten a request) the book orders go in
        batches (a batch of one is a single cancel); everything else, and the futures conditional orders still
        waiting in the Algo Service, one request each. The requests run concurrently (at most ``CANCEL_CONCURRENCY`` at once), each paced by ``call``'s
        weight guard and request window. Never raises: what the exchange did not confirm is said per order."""
        contract = bool(self.markets.get(symbol, {}).get("contract"))
        size = self.venue.caps.batch_cancel.get("swap" if contract else "spot", 0)
        result = CancelResult()
        singles: list[CancelTarget | OrderRef] = []
        by_id: list[CancelTarget | OrderRef] = []
        by_cid: list[CancelTarget | OrderRef] = []
        for t in targets:
            (singles if size < 2 or (contract and t.waiting_trigger) else by_id if t.order_id is not None else by_cid).append(t)
        gate = asyncio.Semaphore(CANCEL_CONCURRENCY)

        async def one(t: CancelTarget | OrderRef) -> None:
            async with gate:
                await self._cancel_one(symbol, contract, t, timeout, retries, result)

        async def batch(chunk: list[CancelTarget | OrderRef]) -> None:
            async with gate:
                await self._cancel_batch(symbol, chunk, timeout, retries, result)

        chunks = [group[i : i + size] for group in (by_id, by_cid) for i in range(0, len(group), max(1, size))]
        # a batch of one is a single cancel: its answer says "not open" as an error the adapter reads (Bybit's batch
        # answer keeps that in retExtInfo, which ccxt drops: the order would be left unconfirmed, not looked up)
        singles += [c[0] for c in chunks if len(c) == 1]
        chunks = [c for c in chunks if len(c) > 1]
        await asyncio.gather(*(one(t) for t in singles), *(batch(c) for c in chunks))
        return result

    async def _cancel_one(
        self, symbol: str, contract: bool, t: CancelTarget | OrderRef, timeout: float, retries: int, result: CancelResult
    ) -> None:
        from .errors import OrderNotFound, PermanentError

        waiting = contract and t.waiting_trigger
        if t.order_id is not None:
            params = self.venue.trigger_params(contract, waiting)
        else:
            params = self.venue.by_client_id(t.client_order_id, waiting)
        result.requests += 1
        try:
            raw = await self.call("cancel_order", partial(self.ex.cancel_order, t.order_id, symbol, params), timeout, retries=retries)
        except OrderNotFound:  # closed meanwhile, never booked, or not visible yet
            result.not_open.add(t.client_order_id)
        except ExchangeOpError as err:
            result.unconfirmed[t.client_order_id] = f"{type(err).__name__}: {err}"[:300]
            if isinstance(err, PermanentError):
                result.refused.add(t.client_order_id)
        else:
            result.cancelled[t.client_order_id] = raw if isinstance(raw, dict) else {}

    async def _cancel_batch(
        self, symbol: str, chunk: list[CancelTarget | OrderRef], timeout: float, retries: int, result: CancelResult
    ) -> None:
        """One batch cancel. The answer names each order it cancelled; an id it does not name met an error there
        (ccxt drops those entries: not open, or anything else), so it stays unconfirmed for the next listing."""
        from .errors import OrderNotFound, PermanentError

        ids = [t.order_id for t in chunk if t.order_id is not None]
        params: Json = {} if ids else {"clientOrderIds": [t.client_order_id for t in chunk]}
        result.requests += 1
        try:
            raws = await self.call(
                "cancel_orders", partial(self.ex.cancel_orders, ids, symbol, params), timeout, retries=retries, validate=is_list
            )
        except OrderNotFound as err:  # an answer of one entry, an error (ccxt raises it): said of that one order
            for t in chunk:
                if len(chunk) == 1:
                    result.not_open.add(t.client_order_id)
                else:
                    result.unconfirmed[t.client_order_id] = f"{type(err).__name__}: {err}"[:300]
            return
        except ExchangeOpError as err:
            for t in chunk:
                result.unconfirmed[t.client_order_id] = f"{type(err).__name__}: {err}"[:300]
                if isinstance(err, PermanentError):
                    result.refused.add(t.client_order_id)
            return
        by_cid = {t.client_order_id: t for t in chunk}
        by_oid = {t.order_id: t for t in chunk if t.order_id is not None}
        for raw in raws:
            if not isinstance(raw, dict):
                continue
            hit = by_cid.get(str(raw.get("clientOrderId"))) or by_oid.get(str(raw.get("id")))
            if hit is not None:
                result.cancelled[hit.client_order_id] = raw
        for t in chunk:
            if t.client_order_id not in result.cancelled:
                result.unconfirmed[t.client_order_id] = "the batch answer did not confirm it"

    async def cancel_every_order_rows(self, symbol: str, timeout: float, retries: int = 3) -> list[Json]:
        """ACCOUNT-WIDE: cancel every open order on ``symbol`` in each of its books, whoever placed it (Binance's
        DELETE openOrders / allOpenOrders / algoOpenOrders; Bybit's cancel-all, on spot once per kind of order). Only the account emergency stop and the e-stop of a
        strategy whose account is its own (``risk.exclusive_account``) may call this: a strategy cancels its own orders by id (``cancel_orders``). A book with nothing open is not an error. The books
        are cancelled at once; answers the orders the answers name (ccxt's parse of them)."""
        from .errors import OrderNotFound

        contract = bool(self.markets.get(symbol, {}).get("contract"))

        async def book(params: Json) -> list[Json]:
            try:
                answer = await self.call("cancel_all_orders", partial(self.ex.cancel_all_orders, symbol, params), timeout, retries=retries)
            except OrderNotFound:  # nothing open there (Binance -2011)
                return []
            return [r for r in answer if is_order(r)] if isinstance(answer, list) else []

        rows = await asyncio.gather(*(book(params) for params in self.venue.cancel_all_books(contract)))
        return [r for part in rows for r in part]

    async def account_open_order_rows(self, market_type: str, timeout: float, retries: int = 1) -> list[Json]:
        """Every open order of the account on ``market_type`` ("spot" or "swap"), on every symbol and in each book
        (USD-M: the conditional orders waiting in the Algo Service too). For the account emergency stop."""
        out: list[Json] = []
        for params in self.order_books(market_type == "swap"):
            out += await self.call(
                "fetch_open_orders",
                partial(self.ex.fetch_open_orders, None, None, None, {**params, **self.venue.listing_params, "type": market_type}),
                timeout,
                retries=retries,
                validate=is_list,
            )
        return out

    def switch_scope(self, symbol: str) -> str | None:
        """The exchange-side dead-man's switch that covers ``symbol`` (USDⓈ-M: its own ``countdownCancelAll``; Bybit:
        the DCP product, spot or derivatives, of the whole account); None: none does."""
        market = self.markets.get(symbol)
        return self.venue.switch_scope(market) if market else None

    async def arm_switch(self, scope: str, window_ms: int, timeout: float, retries: int = 3) -> int:
        """Arm the switch ``scope`` again, with the usual retries (re-arming is idempotent); returns the window the
        exchange applies (ms). One switch per account and scope: the last engine to arm it sets its window."""
        return await self.call("arm_switch", lambda: self.venue.arm_switch(self.ex, scope, window_ms), timeout, retries=retries)

    async def disarm_switch(self, scope: str, timeout: float, retries: int = 3) -> None:
        """Stop the switch ``scope`` (a clean stop); ``InvalidOrder`` where the venue has no request that stops it."""
        await self.call("disarm_switch", lambda: self.venue.disarm_switch(self.ex, scope), timeout, retries=retries)

    def closed_through(self, symbol: str, timeframe: str) -> int | None:
        """Opening time of the newest candle the exchange said is final (None: the venue does not say)."""
        return self.venue.closed_through(self.ex, symbol, timeframe)

    async def can_withdraw(self, timeout: float) -> bool | None:
        """Whether the API key may withdraw funds (None: the venue does not tell)."""
        if not self.venue.caps.api_permissions:
            return None
        return await self.call("api_restrictions", lambda: self.venue.can_withdraw(self.ex), timeout)

    async def check_user_stream(self) -> None:
        """After a private websocket failed: if ccxt still holds a futures listen key the exchange no longer knows
        (it expired after missed keepalives), drop it so the next watch call creates a new one instead of
        reconnecting with the dead key forever."""
        opts = self.ex.options.get("linear")
        if not isinstance(opts, dict) or not opts.get("listenKey"):
            return
        try:
            await self.call("keepalive_listen_key", lambda: self.ex.fapiPrivatePutListenKey(), self.cfg.timeouts.market_data, retries=1)
        except ExchangeOpError as err:
            if err.code == -1125 or "listenKey" in str(err):
                self.ex.options["linear"] = {**opts, "listenKey": None, "lastAuthenticatedTime": 0}
                self.sink.record("reconnect", attempt=0, result="listen key expired; a new one is created on the next watch")
                log.warning("futures listen key expired; the user stream re-authenticates")

    async def measure_clock(self) -> None:
        """Measure the offset between the exchange's clock and ours again (after a -1021 timestamp refusal);
        ccxt signs every request with local time minus this offset."""
        try:
            async with asyncio.timeout(self.cfg.timeouts.market_data):
                offset = await self.ex.load_time_difference()
            self.sink.record("api_call", endpoint="load_time_difference", result="ok", offset_ms=offset)
            log.warning("clock offset to the exchange re-measured: %s ms", offset)
        except Exception as exc:  # the next refusal measures again
            log.warning("could not measure the clock offset: %s", exc)

    def _retry_after(self) -> float | None:
        headers = self.ex.last_response_headers or {}
        raw = headers.get("Retry-After") or headers.get("retry-after")
        try:
            return float(raw) if raw is not None else None
        except ValueError:
            return None

    def _trace(self, op: str, started: float, result: str, code: int | None) -> None:
        if self.trace_api_calls:
            self.sink.record("api_call", endpoint=op, latency_ms=(time.perf_counter() - started) * 1000, result=result, code=code)

    async def batch(self, operations: list[tuple[str, Callable[[], Awaitable[object]], int]], timeout: float) -> list[object]:
        """Run many operations (op, fn, weight) in batches of at most a tenth of the
        minute's weight budget; batches run concurrently inside, one after another outside, and
        ccxt's throttle plus the weight guard pace them. Errors are returned in place, not raised."""
        budget = max(1, self.cfg.rate_limits.weight_per_minute // 10)
        batches: list[list[tuple[str, Callable[[], Awaitable[object]], int]]] = []
        current: list[tuple[str, Callable[[], Awaitable[object]], int]] = []
        weight = 0
        for op in operations:
            if current and weight + op[2] > budget:
                batches.append(current)
                current, weight = [], 0
            current.append(op)
            weight += op[2]
        if current:
            batches.append(current)
        self.last_batch_count = len(batches)
        results: list[object] = []
        for group in batches:
            out = await asyncio.gather(*(self.call(name, fn, timeout) for name, fn, _ in group), return_exceptions=True)
            results.extend(out)
        return results
