"""Run a strategy's logic until a duration elapses, a stop is requested, or the strategy halts.

The host subscribes to the engine's notices (closed bars, order updates, fills), queues them as they happen
and calls the logic's callbacks one at a time, in order, on the event loop: a closed candle reaches
``on_bar`` as soon as the exchange's kline says so, not on the next tick. ``on_tick`` runs every
``tick_interval`` only if the logic defines it. Every callback is isolated (``_invoke``). The logic is handed
the strategy's context (runner/context.py), never the engine; assets, orders and fills as read-only views. Plain
asyncio: the Prefect flow wraps this, and so can any other supervisor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..config import check_logic
from ..engine.notices import BarClosed, EngineEvent, Filled, OrderUpdated
from ..engine.strategy import Strategy
from ..logic import Logic
from ..model.pnl import Totals
from ..model.types import Json
from ..model.views import AssetView, OrderView, TradeView
from .context import LiveContext
from .params import ParamsFollower

log = logging.getLogger("planar.runner")
# call() answered UNKNOWN; then the verdicts: found on the exchange, proven absent (failed), re-sent (resend_absent)
UNKNOWN_COUNTS = ("unknown_answered", "unknown_resolved_found", "unknown_proven_absent", "unknown_resent")
ErrorPolicy = Literal["log", "halt", "fail"]


def load_logic(spec: str, params: object = None, base: Path | None = None) -> Logic:
    """``"package.module:Class"`` or ``"path/to/file.py:Class"`` (looked for in ``base``, the config's folder, first)
    -> an instance with its ``Params`` validated (``ConfigError`` naming the field)."""
    return check_logic(spec, params if isinstance(params, dict) else {}, base).from_config(params)


def status(s: Strategy) -> Json:
    """What an operator wants to see: equity, PnL, open orders, watcher health, halt state, and what became of the
    orders ``call()`` answered UNKNOWN for (engine/verdicts.py)."""
    m = s.risk.metrics(s)
    st = s.state
    return {
        "strategy": s.name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "equity": round(m.equity, 2),
        "daily_pnl": round(m.daily_pnl, 2),
        "funding": round(sum(s.holdings.funding.by_symbol.values()), 8),  # in the equity (the wallet holds it); shown on its own too
        "drawdown": round(m.drawdown, 4),
        "exposure": round(m.total_exposure, 4),
        "open_orders": sum(len(ai.open_orders()) for ai in s.universe.values()),
        "open_positions": sum(len(ai.open_positions()) for ai in s.universe.values()),  # hedge mode: each side
        "trades": sum(len(ai.trades) for ai in s.universe.values()),
        **realized_status(s),
        "halted": st.halted,
        "halt_reason": st.halt_reason,
        **{k: s.book.unknown_outcomes[k] for k in UNKNOWN_COUNTS},
        "watchers": {k: str(v["mode"]) for k, v in s.watcher_health().items()},
    }


def realized_status(s: Strategy) -> Json:
    """Realised PnL (gross of fees, in each symbol's quote currency), fees in that currency, fills, round trips and
    win rate (round trips with a positive realised PnL), in total (the symbols quoted in the main currency: amounts
    of different currencies are never added) and per symbol; since the strategy's first fill (each position's basis
    keeps its running figures, and a restart restores them from the trace)."""
    main = s.config.main_currency
    per: dict[str, Totals] = {}
    for b in s.ledger.bases().values():
        row = per.setdefault(b.symbol, Totals())
        t = b.totals
        row.realized, row.fees, row.fills, row.trips, row.wins = (
            row.realized + t.realized,
            row.fees + t.fees,
            row.fills + t.fills,
            row.trips + t.trips,
            row.wins + t.wins,
        )
    total = Totals()
    for sym, row in per.items():
        ai = s.universe.get(sym)
        if ai is not None and ai.quote == main:
            total.realized, total.fees, total.fills, total.trips, total.wins = (
                total.realized + row.realized,
                total.fees + row.fees,
                total.fills + row.fills,
                total.trips + row.trips,
                total.wins + row.wins,
            )

    def figures(t: Totals) -> Json:
        return {
            "realized_pnl": round(t.realized, 8),
            "fees": round(t.fees, 8),
            "fills": t.fills,
            "round_trips": t.trips,
            "win_rate": round(t.wins / t.trips, 4) if t.trips else None,
        }

    return {**figures(total), "by_symbol": {sym: figures(per[sym]) for sym in sorted(per)}}


@dataclass
class RunResult:
    reason: str  # duration | stopped | halted
    ticks: int = 0
    errors: list[str] = field(default_factory=list)
    callbacks: Counter[str] = field(default_factory=Counter)  # callback name -> calls
    callback_errors: Counter[str] = field(default_factory=Counter)  # callback name -> exceptions
    final_status: Json = field(default_factory=dict)


class LogicError(Exception):
    """A logic callback raised and the config says ``logic_errors = "fail"``."""


class LogicHost:
    def __init__(self, s: Strategy, logic: Logic, policy: ErrorPolicy, result: RunResult) -> None:
        self.s, self.logic, self.policy, self.result = s, logic, policy, result
        self.ctx = LiveContext(s, logic.params)  # what the callbacks see
        self.queue: asyncio.Queue[EngineEvent] = asyncio.Queue()
        self.seen: Counter[tuple[str, str, str]] = Counter()  # (callback, exception type, where raised) -> times
        self.timeframes = tuple(s.config.timeframes)

    def listen(self, event: EngineEvent) -> None:
        self.queue.put_nowait(event)

    async def invoke(self, name: str, call: Coroutine[object, object, None]) -> None:
        """Run one callback: an exception is logged, recorded (``logic_error``) and counted; with policy ``halt``
        the strategy halts, with ``fail`` the run ends with ``LogicError``. Never lets it kill the engine."""
        self.result.callbacks[name] += 1
        try:
            await call
        except Exception as exc:
            self.result.callback_errors[name] += 1
            text = f"{type(exc).__name__}: {exc}"
            self.result.errors.append(f"{name}: {text}")
            self.log_error(name, exc, text)
            self.s.sink.record("logic_error", reason=text, callback=name, count=self.result.callback_errors[name])
            if self.policy == "halt" and not self.s.halted:
                self.s.halt(f"logic error in {name}: {text}")
            elif self.policy == "fail":
                raise LogicError(f"{name}: {text}") from exc

    def log_error(self, name: str, exc: Exception, text: str) -> None:
        """The traceback once per error (callback, type, line that raised); a repeat is one line, at the 2nd, 10th,
        100th, ... time, with its count (every occurrence is in the trace and in the run's counts)."""
        tb = exc.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"
        key = (name, type(exc).__name__, where)
        self.seen[key] += 1
        n = self.seen[key]
        if n == 1:
            log.error("strategy logic failed in %s", name, exc_info=exc)
        elif n == 2 or str(n).strip("0") == "1":
            log.error("strategy logic failed in %s again (%d times; traceback logged the first time): %s", name, n, text)

    async def dispatch(self, event: EngineEvent) -> None:
        if isinstance(event, BarClosed):
            await self.invoke(
                "on_bar", self.logic.on_bar(self.ctx, AssetView(event.ai, self.s.ids.owns, self.timeframes), event.timeframe, event.bar)
            )
        elif isinstance(event, OrderUpdated):  # also the verdict on an UNKNOWN answer (order.verdict)
            await self.invoke("on_order_update", self.logic.on_order_update(self.ctx, OrderView(event.order)))
        elif isinstance(event, Filled):
            # the fill reaches the logic with the balance and position that include it (engine/freshness.py):
            # wait for them (bounded); the events behind it wait too, so the order stays the order they happened in
            await self.s.fill_settled(event.ai, event.trade)
            await self.invoke("on_fill", self.logic.on_fill(self.ctx, OrderView(event.order), TradeView.of(event.trade, event.order)))


async def run(
    s: Strategy,
    logic: Logic,
    duration: float | None = None,
    tick_interval: float = 1.0,
    stop: asyncio.Event | None = None,
    on_status: Callable[[Json], Awaitable[None] | None] | None = None,
    status_every: float = 5.0,
    logic_errors: ErrorPolicy = "log",
    params_every: float = 5.0,
) -> RunResult:
    """Drive ``logic`` on a started strategy: ``on_start``, then events and ticks as they come, ``on_stop``."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration if duration else None
    result = RunResult("stopped")
    host = LogicHost(s, logic, logic_errors, result)
    follower = ParamsFollower(s, logic, host.ctx)
    follower.check()  # a restart keeps the params it was running with
    unlisten = s.hooks.listen(host.listen)
    ticking = logic.wants_ticks()
    next_tick = loop.time()
    next_status = loop.time()
    next_params = loop.time() + params_every
    stop_wait = asyncio.ensure_future(stop.wait())
    try:
        await host.invoke("on_start", logic.on_start(host.ctx))
        while True:
            if s.halted:
                result.reason = "halted"
                break
            now = loop.time()
            if deadline is not None and now >= deadline:
                result.reason = "duration"
                break
            if stop.is_set():
                break
            if now >= next_params:
                follower.check()
                next_params = loop.time() + params_every
            if on_status is not None and now >= next_status:
                out = on_status(status(s))
                if asyncio.iscoroutine(out):
                    await out
                next_status = loop.time() + status_every
            if ticking and now >= next_tick:
                await host.invoke("on_tick", logic.on_tick(host.ctx))
                result.ticks += 1
                next_tick = max(next_tick + tick_interval, loop.time())
                continue
            while not host.queue.empty():
                await host.dispatch(host.queue.get_nowait())
            wake = min(
                t
                for t in (next_tick if ticking else None, deadline, next_status if on_status else None, next_params, now + 1.0)
                if t is not None
            )
            get = asyncio.ensure_future(host.queue.get())
            done, _ = await asyncio.wait({get, stop_wait}, timeout=max(0.0, wake - loop.time()), return_when=asyncio.FIRST_COMPLETED)
            if get in done:
                await host.dispatch(get.result())
            else:
                get.cancel()
        while not host.queue.empty():  # what happened before the end still reaches the logic
            await host.dispatch(host.queue.get_nowait())
        await host.invoke("on_stop", logic.on_stop(host.ctx))
    finally:
        unlisten()
        stop_wait.cancel()
    result.final_status = status(s)
    return result
