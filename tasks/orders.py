"""Per-symbol order tasks: the e-stop's cancel of the strategy's own orders (and close) on one symbol, retried by
Prefect until the exchange confirms it, for what the whole e-stop could not verify within its budget."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State

from planar_core.exchange.errors import ExchangeOpError
from planar_core.model.types import Json
from planar_core.risk.estop import settle_symbol

from . import Overrides
from .strategy import build_strategy


@task(task_run_name="settle:{symbol}", retries=2, retry_delay_seconds=[1, 3], cache_policy=NO_CACHE)
async def settle(
    strategy: str, symbol: str, close: bool, reason: str, config_path: str | None = None, overrides: Overrides = None
) -> Json | State[Json]:
    """Cancel the strategy's open orders on ``symbol`` (by id; other strategies' orders stay) and close its position
    with ``close``, until the exchange lists none of them; a retry is safe: cancelling what is already cancelled does nothing. Not settled is a returned Failed
    state, which Prefect retries like an exception, without a traceback for an outcome that is expected."""
    s = build_strategy(strategy, config_path, overrides=overrides)
    try:
        try:
            await s.load()
        except ExchangeOpError as err:
            return Failed(message=f"{symbol}: the exchange cannot be reached ({err})")
        report = await settle_symbol(s, symbol, s.config.risk.estop_budget_s, close, reason)
    finally:
        await s.stop()
    if not report.clean:
        return Failed(message=f"{symbol}: {report.summary()}")
    return report.as_dict()


async def settle_state(
    strategy: str, symbol: str, close: bool, reason: str, config_path: str | None = None, overrides: Overrides = None
) -> State[Json | State[Json]]:
    """``settle`` run as a task run of the calling flow, answering its final State (Failed when the symbol is still
    not settled after the retries) instead of raising."""
    run = settle(strategy, symbol, close, reason, config_path, overrides, return_state=True)
    # Prefect's overload for a task called with return_state=True gives State[T] even for an async task, whose call
    # is in fact a coroutine that resolves to that State
    state: State[Json | State[Json]] = await run  # type: ignore[misc]
    return state
