"""Run a strategy's logic until a duration elapses, a stop is requested, or the strategy halts.

Plain asyncio: the Prefect flow wraps this, and so can any other supervisor.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..model.types import Json

if TYPE_CHECKING:
    from .strategy import Strategy


log = logging.getLogger("planar.engine.runner")


class Logic(Protocol):
    """What the runner needs of a strategy's logic (a class named by ``logic`` in the config)."""

    async def on_tick(self, s: "Strategy") -> None: ...


def load_logic(spec: str, params: Json | None = None) -> Logic:
    """``"package.module:Class"`` -> an instance built with ``params``."""
    module, _, name = spec.partition(":")
    if not name:
        raise ValueError(f"logic: expected 'module:Class', got {spec!r}")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"logic: cannot load {spec!r}: {exc}") from None
    return cls(**(params or {}))


def status(s: "Strategy") -> Json:
    """What an operator wants to see: equity, PnL, open orders, watcher health, halt state."""
    m = s.risk.metrics()
    st = s.state
    return {"strategy": s.name, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "equity": round(m.equity, 2),
            "daily_pnl": round(m.daily_pnl, 2), "drawdown": round(m.drawdown, 4), "exposure": round(m.total_exposure, 4),
            "open_orders": sum(len(ai.open_orders()) for ai in s.universe.values()),
            "trades": sum(len(ai.trades) for ai in s.universe.values()), "halted": st.halted, "halt_reason": st.halt_reason,
            "watchers": {k: v["mode"] for k, v in s.watcher_health().items()}}


@dataclass
class RunResult:
    reason: str  # duration | stopped | halted
    ticks: int = 0
    errors: list[str] = field(default_factory=list)
    final_status: Json = field(default_factory=dict)


async def run(s: "Strategy", logic: Logic, duration: float | None = None, tick_interval: float = 1.0, stop: asyncio.Event | None = None,
              on_status: Callable[[Json], Awaitable[None] | None] | None = None, status_every: float = 5.0,
              fail_on_logic_error: bool = False) -> RunResult:
    """Tick the logic; a logic error is logged and counted (or, with ``fail_on_logic_error``, re-raised)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration if duration else None
    next_status = loop.time()
    result = RunResult("stopped")
    while True:
        if s.state.halted:
            result.reason = "halted"
            break
        if deadline is not None and loop.time() >= deadline:
            result.reason = "duration"
            break
        if stop.is_set():
            break
        try:
            await logic.on_tick(s)
        except Exception as exc:
            log.exception("strategy logic failed on tick %d", result.ticks)
            result.errors.append(f"{type(exc).__name__}: {exc}")
            if fail_on_logic_error:
                raise
        result.ticks += 1
        if on_status is not None and loop.time() >= next_status:
            out = on_status(status(s))
            if asyncio.iscoroutine(out):
                await out
            next_status = loop.time() + status_every
        timeout = tick_interval if deadline is None else max(0.0, min(tick_interval, deadline - loop.time()))
        try:
            await asyncio.wait_for(stop.wait(), timeout)
        except asyncio.TimeoutError:
            pass
    result.final_status = status(s)
    return result
