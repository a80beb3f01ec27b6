"""``LogicTest``: a strategy's logic on the real engine, over an exchange kept in memory, driven from a test.

Unit-testing a strategy used to mean copying the engine's internals: a stub strategy, candles merged into its
buffers by hand, ``s.call`` replaced by a recorder. Each of those skips what the strategy will meet live: the
order path's checks and rounding, risk, the answers ``ctx.call`` gives, the order in which notices reach the
callbacks, the balance a fill comes with. ``LogicTest`` runs none of it by hand:

* the engine is a real ``Strategy``, composed as every engine is (``build_parts``) with an in-memory exchange
  (``ExchangeVenue``, testing/exchange.py: market orders fill at once at the last price, funds lock and move as an
  exchange moves them, every change arrives as the user stream would bring it), a memory trace and a clock that
  moves only when the test moves it (``TestClock``);
* the logic is called by the runner's own host (runner/host.py): the same context and read-only views, one
  callback at a time, in the order the engine's notices came, a fill held back until its balance is in;
* the test drives time: ``history`` (warm-up candles, no callback), ``bar`` / ``bars`` (the next closed candle:
  the clock and the last price move, ``on_bar`` runs, then whatever it caused), ``fill`` (the exchange executes a
  resting order), ``tick`` and ``stop``. Each driver returns when everything it caused has reached the logic.

By default an exception in a callback fails the test (``errors="raise"``: re-raised as it was raised). Live, the
engine logs it and goes on (``logic_errors``); ``errors="log"`` or ``"halt"`` runs the callbacks that way, and
``errors`` / ``callbacks`` say what happened.

No socket, no sleep: a test takes milliseconds. Nothing here imports pytest; any async test runner works.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Literal, TypeVar

from ..alerts import AlertDispatcher
from ..alerts.config import AlertConfig
from ..config import StrategyConfig
from ..engine.margin import apply_position_mode
from ..engine.notices import BarClosed, EngineEvent
from ..engine.parts import build_parts
from ..engine.strategy import Strategy
from ..engine.sync import sync_prices
from ..logic import Logic
from ..model import AssetInstance, Candle, Refusal, RefusalReason
from ..model.context import StrategyContext
from ..model.json import integer, opt_num, text
from ..model.sink import MemorySink
from ..model.types import Json
from ..model.venue import PlaceOrder
from ..model.views import OrderView, TradeView
from ..runner.host import ErrorPolicy, LogicError, LogicHost, RunResult
from .builders import candle, timeframe_ms
from .exchange import ExchangeVenue
from .venue import TestClock

L = TypeVar("L", bound=Logic)
ErrorMode = Literal["raise", "log", "halt"]
POLICY: dict[ErrorMode, ErrorPolicy] = {"raise": "fail", "log": "log", "halt": "halt"}
MAX_STEPS = 100_000  # notices and messages one driver may handle before the test is told it never settles
JOB_WAIT_S = 30.0  # the longest an engine job (exits, cancels) may take before the test is told


@dataclass(frozen=True)
class Refused:
    """An order the engine or the exchange refused, as the trace records it (``order_failed`` / ``risk_rejected``).

    ``client_order_id`` is None when nothing was booked (a local check or risk refused it before any request);
    set when the order was booked and then refused (the exchange said no, or its outcome was proven absent)."""

    kind: str  # "order_failed" (a local check or the exchange), "risk_rejected" (the risk manager)
    symbol: str
    reason: RefusalReason | None  # the typed reason (model/refusals.py); None on an event recorded without one
    detail: str  # the sentence the log and the trace carry
    side: str | None = None
    amount: float | None = None
    price: float | None = None
    client_order_id: str | None = None
    code: int | None = None  # the exchange's error code, when the exchange refused


class _Alerts(AlertDispatcher):
    """The alert channel of a test: every alert (the strategy's ``ctx.alert``, the engine's halts and breakers) is
    kept, in order, instead of being sent."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.received: list[tuple[str, str]] = []

    def submit(self, message: str, level: str = "info") -> bool:
        self.received.append((level.lower(), message))
        return True


def _reason(code: str | None) -> RefusalReason | None:
    try:
        return RefusalReason(code) if code is not None else None
    except ValueError:  # a code this version does not know (a trace written by a newer engine)
        return None


def _merge(base: Mapping[str, object], top: Mapping[str, object]) -> Json:
    """``top`` over ``base``, section by section (``{"risk": {"max_drawdown": 0.1}}`` keeps the other risk fields)."""
    out: Json = dict(base)
    for k, v in top.items():
        below = out.get(k)
        out[k] = _merge(below, v) if isinstance(v, Mapping) and isinstance(below, Mapping) else v
    return out


class LogicTest(Generic[L]):
    """A logic under test (module docstring). Use it as an async context manager, which starts it (markets,
    balances, prices, ``on_start``) and stops it (``on_stop``, then the engine's resources)::

        async with LogicTest(Dip, {"drop": 0.01}, symbols=["BTC/USDT"], balances={"USDT": 1_000}) as t:
            t.history("BTC/USDT", [100, 101, 100.5])
            await t.bar("BTC/USDT", close=98.0)
            (order,) = t.placed()

    or call ``await t.start()`` and ``await t.stop()`` yourself (a driver starts it if needed).

    ``logic``: the ``Logic`` class (``params`` is validated by its ``Params``, as ``logic_params`` is at load) or an
    instance (with its own params). ``symbols``: the universe; futures symbols (``BTC/USDT:USDT``) make a margin
    strategy unless ``margin`` says otherwise. ``balances``: the account's starting balances, all free (default:
    10 000 of the main currency; futures: the wallet). ``prices``: last prices before any candle (without one, a
    market order is refused as the engine refuses it live: no reference price). ``timeframes``: the config's
    (default: ``config["timeframes"]``, else the logic's ``Params.timeframe`` if it has one, else ``["1m"]``).
    ``hedged``: futures in hedge mode. ``config``: ``StrategyConfig`` fields over the test's defaults, merged
    section by section (``{"risk": {"max_daily_loss": 50}}``). ``errors``: what a callback's exception does
    (``"raise"``: fails the test; ``"log"`` / ``"halt"``: as ``logic_errors`` live). ``fee_rate``: the exchange's
    fee, a fraction of each fill's value. ``name``: the strategy's name (its client order ids carry it).

    The test's config differs from a live one in three things only: a temporary store, no event trace on disk
    (the trace events are kept in memory: ``events``), and ``timeouts.waitfor`` at 0.05 s (nothing fills on its own
    here, so waiting longer for a resting order changes no answer; a market order fills at once whatever it is).
    """

    def __init__(
        self,
        logic: type[L] | L,
        params: Mapping[str, object] | None = None,
        *,
        symbols: Sequence[str] = ("BTC/USDT",),
        balances: Mapping[str, float] | None = None,
        prices: Mapping[str, float] | None = None,
        timeframes: Sequence[str] | None = None,
        margin: bool | None = None,
        hedged: bool = False,
        config: Mapping[str, object] | None = None,
        errors: ErrorMode = "raise",
        fee_rate: float = 0.0,
        name: str = "test",
    ) -> None:
        if isinstance(logic, Logic):
            if params:
                raise TypeError("LogicTest: pass params with the Logic class; an instance has its own (logic.params)")
            self.logic: L = logic
        else:
            self.logic = logic(logic.Params.model_validate(dict(params or {})))
        if errors not in POLICY:
            raise ValueError(f"LogicTest: errors must be one of {list(POLICY)}, got {errors!r}")
        futures = [":" in s for s in symbols]
        if margin is None:
            if any(futures) and not all(futures):
                raise ValueError(f"LogicTest: {list(symbols)} mixes spot and futures symbols; a strategy trades one or the other")
            margin = bool(futures) and all(futures)
        overrides = dict(config or {})
        if timeframes is None and "timeframes" not in overrides:
            wanted = getattr(self.logic.params, "timeframe", None)
            timeframes = [wanted] if isinstance(wanted, str) else ["1m"]
        self._tmp = tempfile.TemporaryDirectory(prefix="planar-test-")
        cls = type(self.logic)
        base: Json = {
            "name": name,
            "universe": list(symbols),
            "margin": margin,
            "store_root": self._tmp.name,
            "event_tracing": {"enabled": False},
            "timeouts": {"waitfor": 0.05},
            "logic": f"{cls.__module__}:{cls.__qualname__}",
            "logic_params": self.logic.params.model_dump(),
            **({"timeframes": list(timeframes)} if timeframes is not None else {}),
            **({"position_mode": "hedge"} if hedged else {}),
        }
        try:
            cfg = StrategyConfig.model_validate(_merge(base, overrides))
        except Exception:
            self._tmp.cleanup()
            raise
        self.hedged = hedged = cfg.position_mode == "hedge"
        self.clock = TestClock()
        universe = [a.symbol for a in cfg.universe]
        self.venue = ExchangeVenue(universe, self.clock, hedged=hedged, default_leverage=cfg.default_leverage, fee_rate=fee_rate)
        self.sink = MemorySink()  # the trace, in memory: events() reads it
        self._alerts = _Alerts(AlertConfig(dedupe_window_s=0))
        self.strategy = Strategy(cfg, build_parts(cfg, sink=self.sink, venue=self.venue, clock=self.clock, alerts=self._alerts))
        """The engine itself: for what the context does not show. A test that reaches into it tests internals."""
        self.venue.connect(self.strategy)
        self.result = RunResult("stopped")
        self._host = LogicHost(self.strategy, self.logic, POLICY[errors], self.result)
        self._unlisten = self.strategy.hooks.listen(self._listen)
        self._balances = dict(balances) if balances is not None else {cfg.main_currency: 10_000.0}
        self._prices = dict(prices or {})
        self._waiting: list[tuple[str, list[Candle], str]] = []  # history given before start
        self._newest: dict[tuple[str, str], Candle] = {}  # (symbol, timeframe) -> the newest candle given
        self._quiet = False  # loading history: its closed candles are not announced
        self._started = False
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> LogicTest[L]:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        # a test that failed inside the block shows its own failure: on_stop is skipped, the resources are released
        await self.stop(callbacks=exc_type is None)

    async def start(self) -> None:
        """Load the markets, fund the account and read it back as the engine reads it at start-up (REST), take the
        prices, load the history given so far, then ``on_start`` (and what it caused). Once; later calls do nothing."""
        if self._started:
            return
        self._started = True
        s = self.strategy
        await s.load()
        if s.config.margin:
            await apply_position_mode(s)  # the engine's start-up step: one-way or hedge, as the config says
        self.venue.fund(s.config.market_type, self._balances)
        self.venue.prices.update(self._prices)
        await s.fetch_balances()
        if s.config.margin:
            await s.fetch_positions()
        await sync_prices(s)
        for symbol, rows, timeframe in self._waiting:
            self._load(symbol, rows, timeframe)
        self._waiting.clear()
        s.run_unwatched()  # as the engine is when the runner calls on_start: the breakers act (they wait for it)
        await self._invoke("on_start", self.logic.on_start(self.ctx))
        await self.settle()

    async def stop(self, callbacks: bool = True) -> None:
        """``on_stop`` (with ``callbacks``, if started), then the engine stops and its temporary store is removed.
        Once; later calls do nothing."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if callbacks and self._started:
                await self._invoke("on_stop", self.logic.on_stop(self.ctx))
                await self.settle()
        finally:
            self._unlisten()
            await self.strategy.stop()
            self._tmp.cleanup()

    # ------------------------------------------------------------------ driving
    def history(self, symbol: str, data: Sequence[float] | Sequence[Candle], timeframe: str | None = None) -> list[Candle]:
        """Warm-up candles: in ``ai.ohlcv[timeframe]`` (closed) with no callback, as the engine's history is at
        start-up. ``data``: closes (each candle opens at the previous close; the newest closes now, or they
        follow the candles given before) or ``Candle`` rows (placed at their own timestamps, after those given
        before). Before ``start`` it is kept and loaded at start, before ``on_start``. Returns the candles."""
        tf = self._timeframe(timeframe)
        rows = self._following(symbol, tf, data)
        if not rows:
            return rows
        self._newest[(symbol, tf)] = rows[-1]
        if self._started:
            self._load(symbol, rows, tf)
        else:
            self._waiting.append((symbol, rows, tf))
        return rows

    async def bar(
        self,
        symbol: str,
        close: float,
        *,
        open: float | None = None,  # the column's name, as Candle spells it
        high: float | None = None,
        low: float | None = None,
        volume: float = 1.0,
        timeframe: str | None = None,
    ) -> Candle:
        """The next candle of ``symbol`` closes: it opens one timeframe after the newest (at the previous close
        unless ``open`` says otherwise); the clock moves to its close and the last price to its ``close``;
        ``on_bar`` runs, then every order update and fill it caused (a market order fills at once). Returns the
        candle. ``timeframe``: default the config's first."""
        await self.start()
        tf = self._timeframe(timeframe)
        ai = self.strategy.asset(symbol)
        previous = self._newest.get((symbol, tf))
        step = timeframe_ms(tf)
        ts = previous.timestamp + step if previous is not None else (self.clock.ms // step) * step
        bar = candle(
            close, open=open if open is not None or previous is None else previous.close, high=high, low=low, volume=volume, timestamp=ts
        )
        self._newest[(symbol, tf)] = bar
        first = ai.candles(tf).closed_through is None  # the engine takes a series' first closed candle as history
        self._append(ai, tf, [bar])
        if first:
            self.strategy.notify(BarClosed(ai, tf, bar))
        await self.settle()
        return bar

    async def bars(self, symbol: str, closes: Iterable[float], timeframe: str | None = None) -> list[Candle]:
        """``bar`` for each close, in order (each one's callbacks and what they caused run before the next)."""
        return [await self.bar(symbol, c, timeframe=timeframe) for c in closes]

    async def fill(
        self, order: OrderView | str, amount: float | None = None, price: float | None = None, fee: float | None = None
    ) -> TradeView:
        """The exchange executes (part of) a resting order: ``amount`` (default: what is left) at ``price``
        (default: its limit, its trigger, else the last price), ``fee`` in the paying currency (default:
        ``fee_rate`` of its value). The engine learns it from the user stream: ``on_order_update`` and ``on_fill``
        run, with the balances (and positions) that include it. ``order``: a view (``placed()``) or a client order
        id. Returns the fill as the strategy sees it."""
        await self.start()
        view = self._order(order)
        if view.id is None:
            raise ValueError(f"order {view.client_order_id} has no exchange id ({view.status}): the exchange never acknowledged it")
        report = self.venue.execute(view.id, amount, price, fee)
        await self.settle()
        for trade in view.trades:
            if trade.trade_id == report.id:
                return trade
        raise RuntimeError(f"the fill {report.id} of {view.client_order_id} never reached the strategy")

    async def tick(self) -> None:
        """``on_tick`` once (live: every ``tick_interval`` seconds), then what it caused. The clock does not move
        (``advance`` moves it)."""
        await self.start()
        self.result.ticks += 1
        await self._invoke("on_tick", self.logic.on_tick(self.ctx))
        await self.settle()

    def advance(self, seconds: float) -> None:
        """Move the clock (``ctx.now()``) forward; nothing else happens."""
        if seconds < 0:
            raise ValueError("the clock moves forward only")
        self.clock.advance(seconds)

    async def settle(self) -> None:
        """Run until nothing is left: the engine's notices reach the callbacks one at a time, in order; the
        exchange's stream messages are delivered; the engine's background jobs (exits after a fill, cancels)
        end. The drivers call it; a test calls it after acting on the engine or the venue directly."""
        s = self.strategy
        for _ in range(MAX_STEPS):
            self._raise_failures()
            if not self._host.queue.empty():
                await self._dispatch(self._host.queue.get_nowait())
                continue
            if self.venue.pending:
                await asyncio.sleep(0)
                continue
            jobs = set(s.supervisor.oneshots)
            if jobs:
                done, _ = await asyncio.wait(jobs, timeout=JOB_WAIT_S, return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    raise RuntimeError(f"engine jobs still running after {JOB_WAIT_S}s: {sorted(map(repr, jobs))}")
                continue
            await asyncio.sleep(0)  # what the last step scheduled (call_soon) runs now
            if self._host.queue.empty() and not self.venue.pending and not s.supervisor.oneshots:
                self._raise_failures()
                return
        raise RuntimeError(f"the strategy did not settle in {MAX_STEPS} steps: do its callbacks answer each other without end?")

    # ------------------------------------------------------------------ what to assert on
    @property
    def ctx(self) -> StrategyContext:
        """The context the callbacks get (read-only views and the seven actions)."""
        return self._host.ctx

    def placed(self, symbol: str | None = None) -> list[OrderView]:
        """Every order the strategy placed (booked and sent: whatever became of it since), oldest first; the
        engine's exits (stop-loss / take-profit placed after an entry filled) included. Orders refused before
        any request are not here: ``refusals``."""
        out: list[OrderView] = []
        seen: set[str] = set()
        for ev in self.sink.of("order_placed"):
            cid, sym = text(ev.get("client_order_id")), text(ev.get("symbol"))
            if cid is None or sym is None or cid in seen or (symbol is not None and sym != symbol):
                continue
            seen.add(cid)
            order = self.strategy.asset(sym).orders.get(cid)
            if order is not None:
                out.append(OrderView(order))
        return out

    def open_orders(self, symbol: str | None = None) -> list[OrderView]:
        """The strategy's orders still open (``ctx.open_orders``)."""
        return self.ctx.open_orders(symbol)

    def trades(self, symbol: str | None = None) -> tuple[TradeView, ...]:
        """The strategy's fills (``ctx.trades``)."""
        return self.ctx.trades(symbol)

    @property
    def sent(self) -> list[PlaceOrder]:
        """The order requests that reached the exchange, as it received them (rounded amounts and prices)."""
        return [args[0] for args in self.venue.ops("create_order") if args and isinstance(args[0], PlaceOrder)]

    def refusals(self, symbol: str | None = None) -> list[Refused]:
        """Every refusal, in order: the engine's local checks and risk manager (nothing was booked: ``ctx.call``
        answered None) and the exchange's (the order was booked, then refused)."""
        out: list[Refused] = []
        for ev in self.sink.events:
            kind = text(ev.get("kind"))
            if kind not in ("order_failed", "risk_rejected"):
                continue
            sym = text(ev.get("symbol")) or ""
            if symbol is not None and sym != symbol:
                continue
            out.append(
                Refused(
                    kind=kind,
                    symbol=sym,
                    reason=_reason(text(ev.get("reason_code"))),
                    detail=text(ev.get("reason")) or "",
                    side=text(ev.get("side")),
                    amount=opt_num(ev.get("amount")),
                    price=opt_num(ev.get("price")),
                    client_order_id=text(ev.get("client_order_id")),
                    code=integer(ev.get("code")) if ev.get("code") is not None else None,
                )
            )
        return out

    @property
    def last_refusal(self) -> Refusal | None:
        """Why ``ctx.call`` last answered None (the engine's ``last_refusal``)."""
        return self.strategy.last_refusal

    @property
    def alerts(self) -> list[tuple[str, str]]:
        """Every alert sent, as (level, message): the strategy's ``ctx.alert`` and the engine's."""
        return list(self._alerts.received)

    def events(self, kind: str | None = None) -> list[Json]:
        """The trace's events (``order_placed``, ``trade_executed``, ``logic_error`` ...; docs/trace.md), in order."""
        return list(self.sink.events) if kind is None else self.sink.of(kind)

    @property
    def errors(self) -> list[str]:
        """The callbacks' exceptions as ``"on_bar: ValueError: ..."`` (with ``errors="log"`` or ``"halt"``)."""
        return list(self.result.errors)

    @property
    def callbacks(self) -> Counter[str]:
        """How many times each callback ran."""
        return Counter(self.result.callbacks)

    @property
    def halted(self) -> bool:
        return self.strategy.halted

    # ------------------------------------------------------------------ inside
    def _listen(self, event: EngineEvent) -> None:
        if self._quiet and isinstance(event, BarClosed):
            return
        self._host.listen(event)

    async def _invoke(self, name: str, call: Coroutine[object, object, None]) -> None:
        failure: BaseException | None = None
        try:
            await self._host.invoke(name, call)
        except LogicError as exc:  # errors="raise": the callback's own exception, raised outside the host's handler
            failure = exc.__cause__ or exc
        if failure is not None:
            raise failure

    async def _dispatch(self, event: EngineEvent) -> None:
        failure: BaseException | None = None
        try:
            await self._host.dispatch(event)
        except LogicError as exc:
            failure = exc.__cause__ or exc
        if failure is not None:
            raise failure

    def _raise_failures(self) -> None:
        if self.venue.failures:
            raise self.venue.failures[0]

    def _timeframe(self, timeframe: str | None) -> str:
        configured = self.strategy.config.timeframes
        tf = timeframe or configured[0]
        if tf not in configured:
            raise ValueError(f"timeframe {tf!r} is not one of the config's timeframes {configured} (LogicTest(timeframes=...))")
        timeframe_ms(tf)
        return tf

    def _following(self, symbol: str, tf: str, data: Sequence[float] | Sequence[Candle]) -> list[Candle]:
        """``data`` as candles after the newest one given for ``symbol`` on ``tf``."""
        step = timeframe_ms(tf)
        previous = self._newest.get((symbol, tf))
        given = [x for x in data if isinstance(x, Candle)]
        if given:
            if len(given) != len(data):
                raise TypeError("history: give closes or Candle rows, not both")
            rows = list(given)
        else:
            closes = [float(x) for x in data if not isinstance(x, Candle)]
            if previous is not None:
                first, open_ = previous.timestamp + step, previous.close
            else:
                first, open_ = (self.clock.ms // step) * step - len(closes) * step, None
            rows = []
            for i, close in enumerate(closes):
                rows.append(candle(close, open=open_, timestamp=first + i * step))
                open_ = close
        after = previous.timestamp if previous is not None else None
        for row in rows:
            if after is not None and row.timestamp <= after:
                raise ValueError(f"history: candle at {row.timestamp} is not after the one at {after} ({symbol} {tf})")
            after = row.timestamp
        return rows

    def _load(self, symbol: str, rows: list[Candle], tf: str) -> None:
        self._quiet = True
        try:
            self._append(self.strategy.asset(symbol), tf, rows)
        finally:
            self._quiet = False

    def _append(self, ai: AssetInstance, tf: str, rows: list[Candle]) -> None:
        """Candles as the exchange's kline stream delivers them, closed: the exchange's candles and last price
        move, the clock moves to the newest one's close, and the engine merges them (``apply_ohlcv``)."""
        data = [[float(x) for x in row] for row in rows]
        self.venue.candles.setdefault((ai.symbol, tf), []).extend(data)
        self.venue.prices[ai.symbol] = rows[-1].close
        end = (rows[-1].timestamp + timeframe_ms(tf)) / 1000
        if end > self.clock.now:
            self.clock.advance(end - self.clock.now)
        self.strategy.apply_ohlcv(ai, tf, data, closed_through=rows[-1].timestamp)

    def _order(self, order: OrderView | str) -> OrderView:
        if isinstance(order, OrderView):
            return order
        for view in self.placed():
            if view.client_order_id == order:
                return view
        raise ValueError(f"no order {order!r} among those the strategy placed: {[v.client_order_id for v in self.placed()]}")
