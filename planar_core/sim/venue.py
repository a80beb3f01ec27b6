"""``SimVenue``: the simulated venue of paper trading and backtests, with the sandbox's matching rules.

One implementation serves both modes. The account, the order books, the matching, fees, filters, price bands,
conditional orders, OCO lists, margin, funding and liquidation are the sandbox exchange's (``sandbox/exchange.py``),
kept in this process; requests reach it through the same path as live (``CcxtVenue`` -> ccxt -> the sandbox's
Binance handlers, ``sim/local.py``; a plain spot order without the wire's steps, ``create_order``), so paper and
backtest accept and refuse exactly what live accepts and refuses.
What differs is where prices and time come from:

* **backtest**: the driver sets each symbol's price as it walks a candle (``set_price``) and moves the clock
  (``clock_ms``); every price it sets runs the matching (resting limit orders, triggers, liquidations);
* **paper**: prices come from the exchange's public market data (the driver feeds the last prices the same way).

The user stream is built from the exchange's own events: each order, fill, account and conditional-order event is
turned into the report the engine would get (USDⓈ-M: parsed by ccxt and the dialect from the exchange's answer
shapes, as a REST answer is; spot: built from the records with ccxt's rules, ``spot_reports.py``) and delivered after the request that caused it has been answered: to a connected engine by
``loop.call_soon`` (the backtest: ``pending`` counts those not delivered yet), else to the ``watch_*`` calls (paper,
where the engine's watchers read them).

Market data (tickers, candles) is the driver's: ``set_price`` and ``add_candles``; the sandbox's generated price
paths are never read.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Protocol, TypeVar

from ..config import StrategyConfig
from ..exchange.binance import BINANCE
from ..exchange.ccxt_venue import CcxtVenue
from ..exchange.client import Validator
from ..exchange.endpoints import point_at_sandbox
from ..exchange.errors import ExchangeOpError, MalformedResponse
from ..exchange.limiter import OrderPacer
from ..exchange.requests import order_args
from ..model.sink import EventSink
from ..model.stamp import Stamp
from ..model.types import Json
from ..model.venue import AssetBalance, BalanceReport, FillReport, MarketType, OrderReport, PlaceOrder, PositionReport, Ticker
from ..sandbox import fmt, wire
from ..sandbox.accounts import Account, AlgoOrder, Fill, SandboxOrder
from ..sandbox.book import BookModel
from ..sandbox.exchange import Market, SandboxExchange
from ..sandbox.market_data import MarketSpec, PathLibrary, default_markets
from ..sandbox.order_lists import OrderList
from ..sandbox.server import SandboxServer
from . import spot_reports
from .local import BASE_URL, LocalBinance

T = TypeVar("T")
SIM_KEY = "sim"
CANDLES_KEPT = 1000  # candles per symbol and timeframe ``ohlcv`` answers from (ccxt's usual page)  # the simulated account's key: nothing is signed, nothing travels


_Message = OrderReport | BalanceReport | list[PositionReport]


class StreamTarget(Protocol):
    """Where a connected venue delivers its user stream (the engine: ``Strategy``)."""

    def apply_order(self, report: OrderReport, source: str = ...) -> object: ...
    def apply_trade(self, fill: FillReport) -> object: ...
    def apply_balance(self, report: BalanceReport, stamp: Stamp | None = ...) -> None: ...
    def apply_positions(self, reports: Sequence[PositionReport], complete: bool = ..., stamp: Stamp | None = ...) -> None: ...


class _Unpaced(OrderPacer):
    """No order pace: the simulated exchange has no rate limits."""

    async def acquire(self) -> float:
        return 0.0


@dataclass
class _Stream:
    """Reports waiting for a ``watch_*`` call (paper mode)."""

    items: list[object] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, item: object) -> None:
        self.items.append(item)
        self.ready.set()

    async def take(self) -> list[object]:
        await self.ready.wait()
        out, self.items = self.items, []
        self.ready.clear()
        return out


@dataclass(frozen=True)
class SimSettings:
    """The simulated exchange's parameters (fees as fractions of a fill's value; the book model's spread and depth)."""

    taker_fee: float = 0.001
    maker_fee: float = 0.001
    futures_taker_fee: float = 0.0005
    futures_maker_fee: float = 0.0002
    spread_bps: float = 2.0
    level_notional: float = 50_000.0


def sim_specs(extra: Sequence[MarketSpec] = ()) -> list[MarketSpec]:
    """The market specifications the simulated exchange lists: those given, then the sandbox's own."""
    out = list(extra)
    have = {(s.kind, s.symbol) for s in out}
    out.extend(s for s in default_markets() if (s.kind, s.symbol) not in have)
    return out


class SimVenue(CcxtVenue):
    """The simulated venue (module docstring). ``clock_ms``: the simulated exchange's time (backtest: simulated;
    paper: the machine's)."""

    def __init__(
        self,
        cfg: StrategyConfig,
        sink: EventSink | None = None,
        *,
        clock_ms: Callable[[], int] | None = None,
        settings: SimSettings | None = None,
        specs: Sequence[MarketSpec] = (),
    ) -> None:
        self.settings = settings or SimSettings()
        self.clock_ms = clock_ms
        self.prices: dict[tuple[str, str], float] = {}  # (kind, market id) -> the last price set
        self.cash = cfg.initial_cash if cfg.initial_cash is not None else 10_000.0
        self.cfg_main = cfg.main_currency
        self.leverage = max(1, int(cfg.default_leverage))
        self.history_kept = cfg.history_kept
        self._open_exchange(specs)
        conf: Json = {
            "apiKey": SIM_KEY,
            "secret": SIM_KEY,
            "options": {
                "defaultType": "swap" if cfg.margin else "spot",
                "fetchMarkets": {"types": ["spot", "linear"]},
                "warnOnFetchOpenOrdersWithoutSymbol": False,
            },
            "enableRateLimit": False,
        }
        client = point_at_sandbox(LocalBinance(conf, self.server, self.account), BASE_URL, BASE_URL.replace("http", "ws", 1))
        # the venue's own view of its config: a live exchange (the simulated one has every order type live has);
        # paper mode is the engine's business, not this adapter's
        super().__init__(cfg.model_copy(update={"mode": "live"}), sink, client, BINANCE)
        self.name = "sim"
        self.caps = replace(BINANCE.caps, countdown_cancel=frozenset())
        self.orders = _Unpaced(1.0, 1)
        self.trace_api_calls = False  # no network: an API call is a function call (the trace keeps orders and fills)
        self.target: StreamTarget | None = None
        self.pending = 0  # stream reports scheduled for the connected engine and not delivered yet
        self.failures: list[BaseException] = []  # what delivering a report raised (the driver re-raises it)
        self.candles: dict[tuple[str, str], list[list[float]]] = defaultdict(list)  # (symbol, timeframe) -> rows given
        self.closed: dict[tuple[str, str], int] = {}  # (symbol, timeframe) -> open time of the newest closed candle
        self._streams: dict[str, _Stream] = defaultdict(_Stream)
        self._ids: dict[tuple[str, str], str] = {}  # (kind, market id) -> unified symbol, once the markets load
        self.direct = True  # plain spot orders skip ccxt's HTTP steps (``create_order``); False: every order through ccxt

    def _open_exchange(self, specs: Sequence[MarketSpec]) -> None:
        """The simulated exchange, listing ``specs`` (then the sandbox's own markets), with one funded account."""
        st = self.settings
        self.core = SandboxExchange(
            specs=sim_specs(specs),
            paths=PathLibrary(data_dir=None),
            book=BookModel(spread_bps=st.spread_bps, level_notional=st.level_notional),
            taker_fee=Decimal(repr(st.taker_fee)),
            maker_fee=Decimal(repr(st.maker_fee)),
            futures_taker_fee=Decimal(repr(st.futures_taker_fee)),
            futures_maker_fee=Decimal(repr(st.futures_maker_fee)),
            default_leverage=self.leverage,
            price_source=self._price,
            clock_ms=self.clock_ms,
            history_kept=self.history_kept,
        )
        self.account: Account = self.core.add_account({self.cfg_main: Decimal(repr(float(self.cash)))}, SIM_KEY, SIM_KEY)
        self.server = SandboxServer(self.core)  # its request handlers only: never started, no socket
        self.core.listeners.append(self._on_event)
        self._open: set[tuple[str, int]] = set()  # (event kind, id) of what rests on the exchange
        if isinstance(getattr(self, "ex", None), LocalBinance):
            self.ex.local_server, self.ex.local_account = self.server, self.account

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
        """One operation on the simulated exchange: a function call, so no pacing, no timeout and nothing transient
        to retry; a refusal is mapped to the same typed error as live (the dialect reads ccxt's exception)."""
        try:
            result = await fn()
        except Exception as raw:
            raise self.venue.map_error(raw) from None
        finally:
            if self.pending:  # the stream's messages arrive before the answer, as on loopback (the sandbox writes them first)
                await asyncio.sleep(0)
        if validate is not None and not validate(result):
            raise MalformedResponse(f"{op}: unexpected response shape: {str(result)[:200]}")
        return result

    async def create_order(self, order: PlaceOrder, timeout: float) -> OrderReport:
        """A spot order of the plain endpoint without ccxt's HTTP steps and its parse of the answer (``place_spot``:
        ccxt's own request, the sandbox's handler, ccxt's error table; ``spot_reports.answer_report``: the figures
        ccxt reads from that answer, from the exchange's records); anything else as live sends it. Tested against
        the full path, order by order (tests/backtest/test_sim_parity.py)."""
        kind, params = order_args(self.venue, order, self._contract(order.symbol))
        ex = self.ex
        if not self.direct or not isinstance(ex, LocalBinance) or not ex.plain_spot(order.symbol, params):
            return await super().create_order(order, timeout)

        async def place() -> OrderReport:
            answer = await ex.place_spot(order.symbol, kind, order.side.value, order.amount, order.price, params)
            if not isinstance(answer.get("fills"), list):  # not the FULL answer answer_report reads: ccxt reads it
                return self.parse.order(ex.parse_order(answer, ex.market(order.symbol)))
            # read at the answer's instant, before ``call`` lets the stream's reports (and what they start) run
            o = self.account.orders[int(str(answer["orderId"]))]
            return spot_reports.answer_report(o, answer, order.symbol, ex, self.parse.dialect)

        await self.orders.acquire()
        return await self.call("create_order", place, timeout, idempotent=False, retries=0)

    # ------------------------------------------------------------------ the driver's side
    def connect(self, target: StreamTarget) -> None:
        """Deliver the user stream to ``target`` (the engine) instead of the ``watch_*`` calls."""
        self.target = target

    def _market(self, symbol: str) -> Market:
        m = self.markets[symbol]
        return self.core.markets[("linear" if m.get("contract") else "spot", str(m["id"]))]

    def set_price(self, symbol: str, price: float, match: bool = True) -> int:
        """The last price of ``symbol`` moves to ``price``; ``match``: run the exchange's matching at it (triggers,
        resting orders, funding, liquidations). Returns the fills it made."""
        m = self._market(symbol)
        self.prices[m.key] = float(price)
        if not self.at_stake():
            self.core.pass_funding()  # a funding time met flat is passed: the next position pays only from the next
            return 0
        if not match:
            return 0
        with self.core.at_one_instant():
            return self.core.match_resting()

    def clock_reached(self) -> None:
        """The backtest's clock reached a candle's close: a funding time passed on the way is settled on what is held
        (before the candle's orders trade at that time), or passed when nothing is at stake."""
        if not self.at_stake():
            self.core.pass_funding()
            return
        with self.core.at_one_instant():
            self.core.funding_at_clock()

    def has_open_orders(self) -> bool:
        """Whether anything rests on the exchange (kept from its events: the account keeps every order it ever had)."""
        return bool(self._open)

    def at_stake(self) -> bool:
        """Whether a price move can change anything on the exchange: an order rests, or a futures position is open
        (funding, margin calls and liquidation follow the price)."""
        return bool(self._open) or any(p.amount for p in self.account.positions.values())

    def resting_levels(self, symbol: str) -> list[float]:
        """The prices at which something of ``symbol`` would happen: resting limit prices and waiting triggers (the
        backtest's price walk stops at each, so an order fills or triggers where the path crosses it)."""
        m = self._market(symbol)
        out: list[float] = []
        half = self.core.book.spread_bps / 20_000  # a limit fills once the book around the path crosses its price:
        for o in self.account.orders.open():  # a buy when the ask (path + half the spread) is at or under it
            if (o.kind, o.symbol) == m.key:
                if not o.working and o.stop_price > 0:
                    out.append(float(o.stop_price))
                elif o.price > 0:
                    buy = o.side == "BUY"
                    out.append(float(o.price) / (1 + half) * (1 - 1e-12) if buy else float(o.price) / (1 - half) * (1 + 1e-12))
        for a in self.account.algo_orders.values():
            if a.is_open and ("linear", a.symbol) == m.key and a.trigger_price > 0:
                out.append(float(a.trigger_price))
        if m.key[0] == "linear":  # a position's liquidation price: Binance liquidates as the mark crosses it, not at
            for (sym, _), pos in self.account.positions.items():  # the candle's extreme (a cross wallet went negative)
                if sym == m.key[1] and pos.amount:
                    liq = float(self.core.liquidation_price(self.account, sym, pos))
                    if liq > 0:  # just past it, so that the margin check at that stop finds it reached
                        out.append(liq * (1 - 1e-9) if pos.amount > 0 else liq * (1 + 1e-9))
        return out

    def add_candles(self, symbol: str, timeframe: str, rows: list[list[float]], closed_through: int | None) -> None:
        """Candles of the market data (history or live): what ``ohlcv`` answers, and the newest closed one."""
        held = self.candles[(symbol, timeframe)]
        held.extend(rows)
        if len(held) > 2 * CANDLES_KEPT:  # a year of candles streams through: keep what ``ohlcv`` may be asked for
            del held[:-CANDLES_KEPT]
        if closed_through is not None:
            self.closed[(symbol, timeframe)] = closed_through

    def _price(self, m: Market) -> float:
        price = self.prices.get(m.key)
        if price is None:
            raise ExchangeOpError(f"sim: no price for {m.spec.symbol} yet")
        return price

    # ------------------------------------------------------------------ market data: the driver's, never the sandbox's paths
    async def load_markets(self, timeout: float) -> Mapping[str, Json]:
        markets = await super().load_markets(timeout)
        for symbol, m in markets.items():
            self._ids[("linear" if m.get("contract") else "spot", str(m.get("id")))] = symbol
        return markets

    async def server_time(self, timeout: float) -> int:
        return self.core.now_ms()

    async def tickers(self, symbols: Sequence[str], timeout: float) -> dict[str, Ticker]:
        return {s: await self.ticker(s, timeout) for s in symbols if self._market(s).key in self.prices}

    async def ticker(self, symbol: str, timeout: float) -> Ticker:
        m = self._market(symbol)
        last = self.prices.get(m.key)
        if last is None:
            raise ExchangeOpError(f"sim: no price for {symbol} yet")
        (bid, _), (ask, _) = self.core.best_bid_ask(m)
        return Ticker(symbol, last, float(bid), float(ask), self.core.now_ms())

    async def ohlcv(self, symbol: str, timeframe: str, limit: int, timeout: float) -> list[list[float]]:
        return [list(r) for r in self.candles.get((symbol, timeframe), [])[-limit:]]

    def closed_through(self, symbol: str, timeframe: str) -> int | None:
        return self.closed.get((symbol, timeframe))

    def switch_scope(self, symbol: str) -> str | None:
        return None  # the orders live in this process: no exchange-side dead-man's switch

    async def can_withdraw(self, timeout: float) -> bool | None:
        return False

    async def measure_clock(self) -> None:
        return None

    async def check_user_stream(self) -> None:
        return None

    async def reset_streams(self) -> None:
        return None

    async def close(self) -> None:
        return None  # nothing to close: no socket was opened

    # ------------------------------------------------------------------ the user stream
    def _symbol(self, kind: str, market_id: str) -> str:
        return self._ids[(kind, market_id)]

    def _arrived(self, item: _Message) -> _Message:
        """The report as it arrives on the stream: its place in the sequence is taken now, after the request that
        caused it was answered (live: when the message arrives on the wire); its time is the exchange's."""
        now = self.core.now_ms()
        if isinstance(item, OrderReport):
            stamp = Stamp(self.next_seq(), item.updated if item.updated is not None else now)
            return replace(item, fills=tuple(replace(f, stamp=stamp) for f in item.fills), stamp=stamp)
        if isinstance(item, BalanceReport):
            return replace(item, stamp=Stamp(self.next_seq(), item.time_ms, frozenset(item.assets)))
        stamp = Stamp(self.next_seq(), now)
        return [replace(p, stamp=stamp) for p in item]

    def _order_report(self, kind: str, o: SandboxOrder, fill: Fill | None) -> OrderReport:
        """An order's stream update, with the fill it reports: spot built from the records (``spot_reports``: the
        figures ccxt reads, without the wire dict and ccxt's parse), USDⓈ-M through ccxt's parse of the wire shape."""
        symbol = self._symbol(kind, o.symbol)
        if kind == "spot":
            report = spot_reports.order_report(o, symbol, self.ex, self.parse.dialect)
            return report if fill is None else replace(report, fills=(spot_reports.fill_report(fill, symbol, o.client_id),))
        market = self.markets[symbol]
        spec = self.core.markets[(kind, o.symbol)].spec
        report = self.parse.order(self.ex.parse_order(wire.futures_order(o, spec), market))
        if fill is not None:
            trade = wire.futures_trade(fill, spec, o.position_side)
            # the user stream's execution names its order's client id (``c``), which the REST trade shape lacks: live
            # reads it there (the dialect's ``fill_client_id``), and the engine finds the order by it instead of
            # searching every order it holds by the exchange's id
            trade["c"] = o.client_id
            return replace(report, fills=(self.parse.fill(self.ex.parse_trade(trade, market)),))
        return report

    def _algo_report(self, algo: AlgoOrder) -> OrderReport:
        symbol = self._symbol("linear", algo.symbol)
        spec = self.core.markets[("linear", algo.symbol)].spec
        raw = wire.algo_order(algo, spec, self.account.fills)
        return self.parse.order(self.ex.parse_order(raw, self.markets[symbol]))

    def _balance_report(self, kind: str, assets: Sequence[str]) -> BalanceReport:
        """The stream's account update after a change: spot, of the assets it touched (``_spot_update``); futures,
        the wallet through ccxt's parse of the wire shape."""
        now = self.core.now_ms()
        if kind == "spot":
            return self._spot_update(assets, now)
        raw = self.ex.parse_balance_custom(wire.futures_account(self.core, self.account, now, "v2"), "linear")
        return replace(self.parse.balance(raw, "swap", complete=False), time_ms=now)

    def _spot_update(self, assets: Sequence[str], now: int) -> BalanceReport:
        """Spot's account update (outboundAccountPosition) of the assets a change touched, zero included: the
        figures ccxt reads from its wire shape (each printed to 8 decimals; the total their exact sum), built
        without the wire dict and ccxt's parse (a backtest sends one per fill; tests/backtest/test_sim_parity.py
        compares them with ccxt's parse of the same message)."""
        zero = AssetBalance(0.0, 0.0, 0.0)
        out: dict[str, AssetBalance] = {}
        for a in assets:
            held = self.account.spot.get(a)
            if held is None:
                out[a] = zero
                continue
            free, locked = fmt.s(held[0]), fmt.s(held[1])
            out[a] = AssetBalance(float(free), float(locked), float(Decimal(free) + Decimal(locked)))
        return BalanceReport(market_type="spot", assets=out, complete=False, time_ms=now)

    def _position_reports(self, market_id: str) -> list[PositionReport]:
        symbol = self._symbol("linear", market_id)
        rows = wire.futures_positions(self.core, self.account, market_id, "v2")
        market = self.markets[symbol]
        return self.parse.positions([self.ex.parse_position_risk(r, market) for r in rows])

    def _on_event(self, acct: Account, kind: str, event: str, payload: dict[str, object]) -> None:
        if acct is not self.account:
            return
        self._track(event, payload)
        if not self._ids:
            return
        if event == "order":
            o, fill = payload["order"], payload.get("fill")
            assert isinstance(o, SandboxOrder) and (fill is None or isinstance(fill, Fill))
            self._send(self._order_report(kind, o, fill))
        elif event == "algo":
            algo = payload["algo"]
            assert isinstance(algo, AlgoOrder)
            self._send(self._algo_report(algo))
        elif event == "list":
            olist, orders = payload["list"], payload["orders"]
            assert isinstance(olist, OrderList) and isinstance(orders, list)
            for o in orders:
                self._send(self._order_report(kind, o, None))
        elif event == "account":
            market_id = payload["symbol"]
            assert isinstance(market_id, str)
            spec = self.core.markets[(kind, market_id)].spec
            report = self._balance_report(kind, [spec.base, spec.quote])
            if payload.get("reason") == "FUNDING_FEE":  # as live reads ACCOUNT_UPDATE's reason: the engine books it
                report = replace(report, funding=True)
            self._send(report)
            if kind == "linear":
                self._send(self._position_reports(market_id))

    def _track(self, event: str, payload: dict[str, object]) -> None:
        """The orders and conditional orders open on the exchange, from its events."""
        if event in ("order", "algo"):
            o = payload.get("order", payload.get("algo"))
            if isinstance(o, SandboxOrder | AlgoOrder):
                key = (event, o.order_id if isinstance(o, SandboxOrder) else o.algo_id)
                if o.is_open:
                    self._open.add(key)
                else:
                    self._open.discard(key)
        elif event == "list":
            orders = payload.get("orders")
            for o in orders if isinstance(orders, list) else []:
                if isinstance(o, SandboxOrder):
                    (self._open.add if o.is_open else self._open.discard)(("order", o.order_id))

    def _send(self, item: _Message) -> None:
        """After the request being answered: to the connected engine (one per loop step, in order), else to the
        watchers' streams."""
        if self.target is not None:
            self.pending += 1
            asyncio.get_running_loop().call_soon(self._deliver, item)
            return
        item = self._arrived(item)  # paper: the watchers take it after the request was answered
        if isinstance(item, OrderReport):
            for key in (item.symbol, None):  # a watcher per symbol, or one for every symbol
                self._streams[f"orders:{key}"].put(item)
                for f in item.fills:
                    self._streams[f"fills:{key}"].put(f)
        elif isinstance(item, BalanceReport):
            self._streams[f"balance:{item.market_type}"].put(item)
        else:
            self._streams["positions"].put(item)

    def _deliver(self, item: _Message) -> None:
        self.pending -= 1
        target = self.target
        if target is None or self.failures:
            return
        item = self._arrived(item)
        try:
            if isinstance(item, OrderReport):
                for fill in item.fills:  # the trade stream (live: ccxt's watch_my_trades), then the order's update
                    target.apply_trade(fill)
                target.apply_order(item, source="websocket")
            elif isinstance(item, BalanceReport):
                target.apply_balance(item)
            else:
                target.apply_positions(item)
        except Exception as exc:  # the driver raises it: a bug must not pass as a quiet run
            self.failures.append(exc)

    async def watch_orders(self, symbol: str | None = None) -> list[OrderReport]:
        return [r for r in await self._streams[f"orders:{symbol}"].take() if isinstance(r, OrderReport)]

    async def watch_fills(self, symbol: str | None = None) -> list[FillReport]:
        return [r for r in await self._streams[f"fills:{symbol}"].take() if isinstance(r, FillReport)]

    async def watch_balance(self, market_type: MarketType) -> BalanceReport:
        rows = [r for r in await self._streams[f"balance:{market_type}"].take() if isinstance(r, BalanceReport)]
        return rows[-1]

    async def watch_positions(self, symbols: Sequence[str] | None = None) -> list[PositionReport]:
        out: list[PositionReport] = []
        for batch in await self._streams["positions"].take():
            if isinstance(batch, list):
                out.extend(p for p in batch if isinstance(p, PositionReport) and (symbols is None or p.symbol in symbols))
        return out

    def cached_order_updates(self, symbol: str) -> list[OrderReport]:
        return []

    def cached_fills(self, symbol: str, last: int) -> list[FillReport]:
        return []

    def cached_balance(self, market_type: MarketType) -> BalanceReport | None:
        return None

    def cached_positions(self) -> list[PositionReport]:
        return []
