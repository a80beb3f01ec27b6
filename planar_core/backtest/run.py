"""A strategy over history on a simulated clock: the same ``Logic``, engine, risk checks and trace as live.

The engine is a real ``Strategy`` composed as every engine is (``build_parts``) with the simulated venue
(``sim/venue.py``: the sandbox exchange's rules, in process), a Zarr trace stamped with simulated time and a clock
that moves only when the history does. The logic is called by the runner's own host (``runner/host.py``): the same
context, views and order of notices as live. For each candle time, in order:

1. every symbol's price walks its candle (``walk.py``: open -> low/high -> high/low -> close, stopping at every
   resting order's price and trigger), the exchange matching at each stop (and, with a futures position open,
   settling funding and checking margin there); fills reach the engine and the logic (``on_order_update``,
   ``on_fill``) as they happen, at the time they happen;
2. the clock moves to the candle's close and the candles close together: ``on_bar`` runs for each, then whatever
   it caused (a market order fills at once against the book around the close, as on the sandbox);
3. the engine's timers that are due on the simulated clock run: the risk monitor (``risk.monitor_interval``:
   metrics, equity in the trace) and ``on_tick`` (``tick_interval``, at candle closes).

The daily-loss and drawdown breakers are armed as live arms them: evaluated on every price and balance update, on
the simulated day (the day-start equity resets at each simulated UTC midnight). A trip runs the emergency stop,
which halts the strategy, and the run ends there (``result.reason`` "halted").

History before ``start`` (at least ``warmup`` candles) is loaded before ``on_start``, as live loads its history.
Deterministic: nothing reads the machine's clock or a random number, so the same inputs give the same trace.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import math
import time
from collections import deque
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..config import StrategyConfig
from ..engine.margin import apply_position_mode
from ..engine.notices import BarClosed, EngineEvent
from ..engine.parts import build_parts
from ..engine.strategy import Strategy, trace_root
from ..engine.sync import sync_prices
from ..exchange.client_ids import ClientOrderIds
from ..logic import Logic
from ..model import AssetInstance
from ..runner.heap import frozen_heap
from ..runner.host import ErrorPolicy, LogicError, LogicHost, RunResult, load_logic
from ..sim.venue import SimSettings, SimVenue
from ..sim.walk import knots, price_at, walk
from ..trace import EventTrace
from .higher import Buckets, higher_timeframes
from .source import CandleError, Candles, Row, SymbolCandles, merged

MAX_STEPS = 1_000_000  # notices one settle may handle before the run is told it never settles
CHECKPOINT_EVENTS = 10_000  # a segment per 10 000 events: the memory a checkpoint takes stays the same over a year
COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
# closed orders and trades an asset keeps in memory in a backtest when the config does not say (live keeps 5 000): a
# year of orders passes in minutes, and at 5 000 a 3-symbol year's memory grew by about 2 KB an order until each
# asset held 10 000 (a 100-asset universe: up to 2 GB); at 500 it is the same after a month as after a year
BACKTEST_HISTORY_KEPT = 500
TIMEFRAME_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def timeframe_ms(timeframe: str) -> int:
    return int(timeframe[:-1]) * TIMEFRAME_MS[timeframe[-1]]


def warmup_span_ms(cfg: StrategyConfig, warmup: int) -> int:
    """How far before the start the warm-up history reaches: ``warmup`` candles of the longest timeframe the
    config declares (each is built from the first's candles: backtest/higher.py)."""
    longest, base = max(timeframe_ms(tf) for tf in cfg.timeframes), timeframe_ms(cfg.timeframes[0])
    return warmup * longest + (longest - base)  # and the part of a longest candle a start inside one leaves out


class SimClock:
    """The engine's clock in a backtest: it moves only when the driver moves it (wall and monotonic alike)."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def time(self) -> float:
        return self.ms / 1000

    def monotonic(self) -> float:
        return self.ms / 1000


def _stops(n: int, sym: str, points: list[tuple[int, float]], levels: list[float], done: int) -> Iterator[tuple[int, int, str, float]]:
    """``sym``'s walk (``walk``) past its first ``done`` points, each stop as (time, ``n``, symbol, price): the
    order ``heapq.merge`` puts the symbols' stops in."""
    for at, price in itertools.islice(walk(points, levels), done, None):
        yield at, n, sym, price


@dataclass
class BacktestRun:
    """What a run did: where its trace is, how many candles it processed and how long it took."""

    config: StrategyConfig
    trace_root: str
    bars: int  # candle events processed after the warm-up (one per symbol and candle time)
    warmup_bars: int
    seconds: float  # wall time of the simulation (loading the data excluded)
    start_ms: int | None
    end_ms: int | None
    initial_equity: float
    final_equity: float
    result: RunResult
    errors: list[str] = field(default_factory=list)
    first_ms: int | None = None  # open time of the first candle after the warm-up
    last_ms: int | None = None  # close time of the last candle processed
    gaps: list[tuple[str, int, int, int]] = field(default_factory=list)  # walked over: (symbol, before, after, missing)

    @property
    def bars_per_s(self) -> float:
        return self.bars / self.seconds if self.seconds > 0 else 0.0


def backtest_config(cfg: StrategyConfig, store_root: Path, params: Mapping[str, object] | None = None) -> StrategyConfig:
    """The live config as a backtest runs it: its own store (trace, state), the logic's params with ``params`` over
    them, no fsync (a simulation has nothing to lose in a crash), no exchange-side countdown, orders answered
    without waiting on the wall clock (``timeouts.waitfor`` 0.05 s: a market order's fill arrives at once), no
    order watchers polling the exchange (its stream, in process, carries every report before the next step), and
    ``BACKTEST_HISTORY_KEPT`` closed orders an asset in memory unless the config sets ``history_kept``."""
    data = cfg.model_dump(mode="python")
    if "history_kept" not in cfg.model_fields_set:
        data["history_kept"] = BACKTEST_HISTORY_KEPT
    data["store_root"] = str(store_root)
    data["logic_params"] = {**(cfg.logic_params or {}), **dict(params or {})}
    tracing = dict(data.get("event_tracing") or {})
    tracing.update(enabled=True, fsync=False, root=None, flush_interval=3600.0, trace_api_calls=False)
    data["event_tracing"] = tracing
    data["timeouts"] = {**(data.get("timeouts") or {}), "waitfor": 0.05}
    data["order_monitoring"] = {**(data.get("order_monitoring") or {}), "enabled": False}  # the simulated stream misses nothing
    for secret in ("api_key", "api_secret", "passphrase"):
        data.get("credentials", {}).pop(secret, None)
    out = StrategyConfig.model_validate(data)
    out._config_dir = cfg.config_dir  # a logic file beside the config is still found
    return out


class Backtest:
    """One run (module docstring): ``await Backtest(cfg, data).run()``."""

    def __init__(
        self,
        cfg: StrategyConfig,
        data: Mapping[str, Candles],
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        warmup: int = 100,
        settings: SimSettings | None = None,
        logic: Logic | None = None,
        errors: ErrorPolicy = "log",
    ) -> None:
        self.cfg = cfg
        self.symbols = [a.symbol for a in cfg.universe]
        self.timeframe = cfg.timeframes[0]
        self.step = timeframe_ms(self.timeframe)
        self.higher = higher_timeframes(cfg.timeframes, self.step, {tf: timeframe_ms(tf) for tf in cfg.timeframes})
        self.buckets = {(sym, tf): Buckets(span, self.step) for sym in self.symbols for tf, span in self.higher.items()}
        self.reach = max([1, *(span // self.step for span in self.higher.values())])  # base candles per longest candle
        missing = [sym for sym in self.symbols if sym not in data]
        if missing:
            raise CandleError(f"no candles for {missing}")
        self.streams = {sym: SymbolCandles(sym, data[sym]) for sym in self.symbols}
        self.start_ms, self.end_ms, self.warmup = start_ms, end_ms, warmup
        heads = [int(st.head[0]) for st in self.streams.values() if st.head is not None]
        if not heads:
            raise CandleError(f"no candles for {self.symbols}")
        first = min(heads)
        self.clock = SimClock(first)
        self.trace = EventTrace(
            trace_root(cfg),
            flush_interval=cfg.event_tracing.flush_interval,
            trace_market_data=cfg.event_tracing.trace_market_data,
            trace_api_calls=False,
            fsync=False,
            clock_ns=lambda: self.clock.ms * 1_000_000,
            wal=False,
            checkpoint_every=CHECKPOINT_EVENTS,
        )
        seq = Path(cfg.shared_root) / ClientOrderIds.NAME
        if not seq.exists():  # a fixed epoch: the same inputs give the same client order ids (the live default is the time)
            seq.parent.mkdir(parents=True, exist_ok=True)
            seq.write_text(json.dumps({"epoch": "bt", "next_block": 0}))
        self.venue = SimVenue(cfg, self.trace, clock_ms=lambda: self.clock.ms, settings=settings)
        parts = build_parts(cfg, sink=self.trace, venue=self.venue, clock=self.clock, alerts=None)
        parts.state_store.exclusive = True  # the run's own store: nobody else writes its state
        self.s = Strategy(cfg, parts)
        self.venue.connect(self.s)
        self.logic = logic if logic is not None else load_logic(cfg.logic or "", cfg.logic_params, cfg.config_dir)
        self.result = RunResult("duration")
        self.host = LogicHost(self.s, self.logic, errors, self.result)
        self._quiet = False
        self.gaps: list[tuple[str, int, int, int]] = []  # (symbol, candle before, candle after, candles missing)
        self._warmed: dict[str, int] = {}  # each symbol's last warm-up candle
        self._first: int | None = None
        self._last: int | None = None

    def _listen(self, event: EngineEvent) -> None:
        if self._quiet and isinstance(event, BarClosed):
            return
        self.host.listen(event)

    async def settle(self) -> None:
        """Run until nothing is left: the engine's notices reach the callbacks one at a time, in order; the
        exchange's stream reports are delivered; the engine's one-shot jobs (exits after a fill, cancels) end."""
        s, host, venue = self.s, self.host, self.venue
        for _ in range(MAX_STEPS):
            if venue.failures:
                raise venue.failures[0]
            if not host.queue.empty():
                await host.dispatch(host.queue.get_nowait())
                continue
            if venue.pending:
                await asyncio.sleep(0)
                continue
            jobs = set(s.supervisor.oneshots)
            if jobs:
                await asyncio.wait(jobs, return_when=asyncio.FIRST_COMPLETED)
                continue
            await asyncio.sleep(0)
            if host.queue.empty() and not venue.pending and not s.supervisor.oneshots:
                return
        raise RuntimeError(f"the strategy did not settle in {MAX_STEPS} steps: do its callbacks answer each other without end?")

    async def run(self) -> BacktestRun:
        s, clock = self.s, self.clock
        unlisten = s.hooks.listen(self._listen)
        started = time.perf_counter()
        bars = warm = 0
        initial = final = math.nan
        try:
            await s.load()
            if s.config.margin:
                await apply_position_mode(s)
            groups = merged(self.streams)
            pending, warm = self._warm_up(groups)
            start = pending[0] if pending is not None else clock.ms
            clock.ms = max(clock.ms, start)
            await s.fetch_balances()
            if s.config.margin:
                await s.fetch_positions()
            await sync_prices(s)
            initial = (await s.risk.monitor_once(s)).equity  # the trace's first equity: the starting one
            s.run_driven()  # running, without watchers (the venue's stream is the only source): breakers armed
            await self._invoke("on_start", self.logic.on_start(self.host.ctx))
            await self.settle()
            with frozen_heap():
                bars = await self._loop(itertools.chain([pending] if pending is not None else [], groups))
            await self._invoke("on_stop", self.logic.on_stop(self.host.ctx))
            await self.settle()
            final = (await s.risk.monitor_once(s)).equity
        finally:
            unlisten()
            elapsed = time.perf_counter() - started
            await s.stop()
            self.trace.close()
        return BacktestRun(
            self.cfg,
            self.trace.root,
            bars,
            warm,
            elapsed,
            self.start_ms,
            self.end_ms,
            initial,
            final,
            self.result,
            list(self.result.errors),
            self._first,
            self._last,
            list(self.gaps),
        )

    async def _invoke(self, name: str, call: Coroutine[object, object, None]) -> None:
        try:
            await self.host.invoke(name, call)
        except LogicError as exc:
            raise (exc.__cause__ or exc) from None

    def _warm_up(self, groups: Iterator[tuple[int, list[tuple[str, Row]]]]) -> tuple[tuple[int, list[tuple[str, Row]]] | None, int]:
        """Candles before the start (``start_ms``; without it, the first ``warmup`` candle times), loaded closed and
        without callbacks, the last ``warmup`` of each symbol kept (live loads its history the same way). Returns the
        first candle time after them (None: the history ends there) and the candles read."""
        s, venue, tf = self.s, self.venue, self.timeframe
        # enough base candles for ``warmup`` whole candles of the longest timeframe, wherever the history begins
        extra = self.reach - 1
        kept: dict[str, deque[Row]] = {sym: deque(maxlen=max(self.warmup, 1) * self.reach + extra) for sym in self.symbols}
        read = 0
        first: tuple[int, list[tuple[str, Row]]] | None = None
        for n, (ts, rows) in enumerate(groups):
            if (self.start_ms is not None and ts >= self.start_ms) or (self.start_ms is None and n >= self.warmup * self.reach + extra):
                first = (ts, rows)
                break
            for sym, row in rows:
                kept[sym].append(row)
                read += 1
        self._warmed = {sym: int(rows_kept[-1][0]) for sym, rows_kept in kept.items() if rows_kept}  # for the gap count
        self._quiet = True
        try:
            for sym, rows_kept in kept.items():
                if rows_kept:
                    history = list(rows_kept)[-max(self.warmup, 1) :]
                    venue.add_candles(sym, tf, history, int(history[-1][0]))
                    s.apply_ohlcv(s.asset(sym), tf, history, closed_through=int(history[-1][0]))
                    venue.set_price(sym, history[-1][4], match=False)
                    for higher in self.higher:  # the longer timeframes' history, from the same candles
                        built = self.buckets[(sym, higher)].history(rows_kept)[-max(self.warmup, 1) :]
                        if built:
                            venue.add_candles(sym, higher, built, int(built[-1][0]))
                            s.apply_ohlcv(s.asset(sym), higher, built, closed_through=int(built[-1][0]))
                else:  # no history: the price its first candle opens at
                    head = self.streams[sym].head
                    if head is not None:
                        venue.set_price(sym, head[1], match=False)
        finally:
            self._quiet = False
        return first, read

    async def _loop(self, groups: Iterable[tuple[int, list[tuple[str, Row]]]]) -> int:
        s, clock = self.s, self.clock
        assets = {sym: s.asset(sym) for sym in self.symbols}
        monitor_every = int(s.config.risk.monitor_interval * 1000)
        next_monitor = clock.ms
        ticking = self.logic.wants_ticks()
        next_tick = clock.ms
        tick_every = int(s.config.tick_interval * 1000)
        bars = 0
        end = self.end_ms
        seen = dict(self._warmed)  # each symbol's last candle: a later one more than a step after it is a gap
        step = self.step
        last = None
        for ts, rows in groups:
            if end is not None and ts >= end:
                break
            last = ts
            for sym, _ in rows:
                prev = seen.get(sym)
                if prev is not None and ts - prev > step:
                    self.gaps.append((sym, prev, ts, (ts - prev) // step - 1))
                seen[sym] = ts
            if s.halted:
                self.result.reason = "halted"
                break
            with s.group():  # the candle's events written once (a simulation has no crash to survive)
                bars += await self._candle(ts, rows, assets)
            if s.risk.estop_pending:  # a breaker tripped on this candle's prices: its emergency stop ends, then the run
                await s.risk.wait_estop()
                await self.settle()
                self.result.reason = "halted"
                break
            if ticking and clock.ms >= next_tick:
                self.result.ticks += 1
                await self._invoke("on_tick", self.logic.on_tick(self.host.ctx))
                await self.settle()
                next_tick = clock.ms + tick_every
            if clock.ms >= next_monitor:
                await s.risk.monitor_once(s)
                next_monitor = clock.ms + monitor_every
        for sym, at in seen.items():  # a symbol whose data ends before the others' (the run walked on without it)
            if last is not None and at < last:
                self.gaps.append((sym, at, last + step, (last - at) // step))
        return bars

    async def _advance(self, ms: int) -> None:
        """Move the clock to ``ms``, running the engine's timers due on the way, each at its own time (a limit
        order's expiry before the price that would have filled it)."""
        s, clock = self.s, self.clock
        while (due := s.timers.next_due_ms()) is not None and due <= ms:
            clock.ms = max(clock.ms, due)
            s.timers.run_due()
            await self.settle()
        clock.ms = max(clock.ms, ms)

    async def _walk(self, paths: dict[str, list[tuple[int, float]]]) -> None:
        """The symbols' prices along their ``paths`` together, in time order (ties: the universe's order), stopping
        at every level where something rests, the exchange matching at each stop. Whatever a stop caused (a fill, a
        trigger, funding) reaches the engine then, at its time; and since that may change the levels of any symbol
        (a position a stop opened has a liquidation price, the logic may place an order), the rest of every path is
        walked again from that point with the levels of now. Why together: walked one symbol after another, the
        second's stops came after the first's whole candle, the clock already at its end."""
        venue = self.venue
        reached: dict[str, tuple[int, float]] = {}  # each symbol's last point set in this candle
        left = {sym: (path, 0) for sym, path in paths.items()}  # the points still to walk, and how many of them are done
        while left:
            stops = heapq.merge(
                *(_stops(n, sym, points, venue.resting_levels(sym), done) for n, (sym, (points, done)) in enumerate(left.items()))
            )
            for at, _, sym, price in stops:
                await self._advance(at)
                venue.set_price(sym, price)
                reached[sym] = (at, price)
                if venue.pending:
                    break
            else:
                return
            for other, path in paths.items():  # every symbol where it is now, before anyone reacts: an order placed
                if reached.get(other, (-1, 0.0))[0] < at:  # now meets only the prices that come after it
                    reached[other] = (at, price_at(path, at))
                    venue.set_price(other, reached[other][1])
            await self.settle()
            left = {}
            for sym, path in paths.items():
                last = reached[sym]
                rest = [last, *((t, p) for t, p in path if t > last[0])]
                if len(rest) > 1:
                    left[sym] = (rest, 1)

    async def _candle(self, ts: int, rows: list[tuple[str, Row]], assets: Mapping[str, AssetInstance]) -> int:
        """One candle time: each symbol's price walks its candle (matching at each stop), then they close together;
        returns the candles closed."""
        s, venue, clock, tf, step = self.s, self.venue, self.clock, self.timeframe, self.step
        if venue.at_stake():  # a position without orders is walked too: liquidation and funding follow the path
            await self._walk({sym: knots(ts, step, row[1], row[2], row[3], row[4]) for sym, row in rows})
        else:
            for sym, row in rows:
                venue.set_price(sym, row[4], match=False)
        await self._advance(ts + step)
        venue.clock_reached()  # funding at 00/08/16 UTC is settled before the candles close and the logic trades
        if venue.pending:
            await self.settle()
        self._first = ts if self._first is None else self._first
        self._last = clock.ms
        with s.hooks.prices_together(s):  # the candles of one time close together: the account is valued once
            for sym, row in rows:
                venue.add_candles(sym, tf, [row], ts)
                s.apply_ohlcv(assets[sym], tf, [row], closed_through=ts)
                for higher in self.higher:  # the longer timeframes' candles this one ends (backtest/higher.py)
                    for built in self.buckets[(sym, higher)].add(row):
                        venue.add_candles(sym, higher, [built], int(built[0]))
                        s.apply_ohlcv(assets[sym], higher, [built], closed_through=int(built[0]))
        await self.settle()
        return len(rows)
