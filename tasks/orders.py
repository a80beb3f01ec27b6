"""The e-stop flow's per-symbol task runs: cancel the strategy's own orders on one symbol, verify by listing, close
its position, retried by Prefect until the exchange confirms it. The flow opens the strategy once (halted, loaded)
and lends it to its task runs under a key, so every symbol starts at once without loading the exchange again."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State

from planar_core.engine.strategy import Strategy
from planar_core.exchange.errors import ExchangeOpError
from planar_core.model.types import Json
from planar_core.risk.estop import EStopReport, settle_symbol


@dataclass
class Lent:
    """A loaded strategy lent to an e-stop run's task runs, and each symbol's report (the latest attempt's)."""

    strategy: Strategy
    loaded: bool  # False: the exchange could not be reached to load it; the first task run that can, loads it
    reports: dict[str, EStopReport] = field(default_factory=dict)
    recorded: dict[str, set[str]] = field(default_factory=dict)  # its orders its record leaves open (risk.estop.recorded_open)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def ready(self) -> str | None:
        """Loaded from the exchange (once, whichever task run gets there first); why not, when it cannot be."""
        async with self.lock:
            if not self.loaded:
                try:
                    await self.strategy.load()
                except ExchangeOpError as err:
                    return f"the exchange cannot be reached ({err})"
                self.loaded = True
        return None


_LENT: dict[str, Lent] = {}


@contextlib.contextmanager
def lend(s: Strategy, loaded: bool) -> Iterator[tuple[str, Lent]]:
    """``s`` reachable by the task runs of this process under a key (task parameters stay plain values)."""
    key = uuid.uuid4().hex
    _LENT[key] = lent = Lent(s, loaded)
    try:
        yield key, lent
    finally:
        _LENT.pop(key, None)


@task(task_run_name="estop:{symbol}", retries=2, retry_delay_seconds=[1, 3], cache_policy=NO_CACHE)
async def estop_symbol(symbol: str, key: str, close: bool, reason: str, budget_s: float) -> Json | State[Json]:
    """Cancel the strategy's open orders on ``symbol`` (by id; other strategies' orders stay), list again until none
    of them is open, and close its position with ``close``. Not settled is a returned Failed state, which Prefect
    retries like an exception (cancelling what is already cancelled does nothing), without a traceback for an
    outcome that is expected."""
    lent = _LENT[key]
    why = await lent.ready()
    if why is not None:
        return Failed(message=f"{symbol}: {why}")
    earlier = lent.reports.get(symbol)
    report = await settle_symbol(lent.strategy, symbol, budget_s, close, reason, lent.recorded.get(symbol))
    if earlier is not None:  # what the earlier attempts cancelled and found gone stays counted
        report.cancelled_later += earlier.cancelled
        report.of(symbol).orders.already_gone += earlier.already_gone
    lent.reports[symbol] = report
    if not report.clean:
        return Failed(message=f"{symbol}: {report.summary()}")
    return report.as_dict()


async def estop_symbol_state(symbol: str, key: str, close: bool, reason: str, budget_s: float) -> State[Json | State[Json]]:
    """``estop_symbol`` run as a task run of the calling flow, answering its final State (Failed when the symbol is
    still not settled after the retries) instead of raising."""
    run = estop_symbol(symbol, key, close, reason, budget_s, return_state=True)
    # Prefect's overload for a task called with return_state=True gives State[T] even for an async task, whose call
    # is in fact a coroutine that resolves to that State
    state: State[Json | State[Json]] = await run  # type: ignore[misc]
    return state
