"""Entry points that run in a process of their own: the emergency stop from a fresh process, and the check of a
config's symbols against the exchange before anything slow starts.

They build a Strategy through the composition root (``engine.strategy.strategy_from_config``) and drive the
risk layer's operations on it; the engine itself never starts here (no watchers)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from ..config import StrategyConfig, load_config
from ..engine.strategy import Strategy, strategy_from_config
from ..engine.sync import check_universe
from ..exchange.errors import ExchangeOpError
from ..risk.estop import EStopReport, conclude, emergency_stop, pause
from ..sim.paper import public_venue


async def emergency_stop_standalone(
    config: "StrategyConfig | str",
    reason: str,
    close_positions: bool | None = None,
    env: dict[str, str] | None = None,
    secrets_provider: Callable[[str], str | None] | None = None,
) -> EStopReport:
    """The e-stop from a fresh process: build the strategy from its config and credentials, no watchers, no engine.

    The trace is the account's; if a live engine still holds its writer lock, the e-stop writes its events to
    the strategy's side trace instead of waiting for it."""
    cfg = config if isinstance(config, StrategyConfig) else load_config(config, env=env)
    s, deadline, unreachable = await open_for_estop(cfg, reason, env, secrets_provider)
    try:
        if unreachable is not None:
            return unreachable
        return await emergency_stop(s, reason, close_positions, budget_s=max(1.0, deadline - asyncio.get_running_loop().time()))
    finally:
        await s.stop()


async def open_for_estop(
    cfg: StrategyConfig, reason: str, env: dict[str, str] | None = None, secrets_provider: Callable[[str], str | None] | None = None
) -> tuple[Strategy, float, EStopReport | None]:
    """The first steps of a standalone e-stop: the strategy built and halted (whatever the exchange does, nothing new
    is traded), then loaded from the exchange, retried until ``risk.estop_budget_s`` runs out. Answers the strategy
    (the caller stops it), the loop time the budget ends, and, when the exchange could not be reached at all, the
    concluded report saying every symbol is unverified. The e-stop flow runs the symbols as task runs of its own
    after this; ``emergency_stop_standalone`` runs them all at once."""
    s = strategy_from_config(cfg, secrets_provider=secrets_provider, env=env)
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + cfg.risk.estop_budget_s
    try:
        s.halt(reason, by_emergency_stop=True)
        attempt = 0
        while True:
            try:
                await s.load()
                if cfg.margin:  # the account's position mode, as the engine's start reads it: hedge closes by side
                    try:
                        hedged = await s.venue.position_mode(cfg.timeouts.position_sync)
                    except ExchangeOpError:  # not answered: the configured mode (the engine's start sets it so)
                        hedged = cfg.position_mode == "hedge"
                    for ai in s.universe.values():
                        s.holdings.set_hedged(ai, hedged)
                return s, deadline, None
            except ExchangeOpError as err:
                if loop.time() + pause(attempt) >= deadline:
                    symbols = [a.symbol for a in cfg.universe]
                    why = f"could not reach the exchange: {err}"[:300]
                    report = EStopReport.unreachable(reason, symbols, why, seconds=time.perf_counter() - started)
                    return s, deadline, conclude(s, report, reason)
                await asyncio.sleep(pause(attempt))
                attempt += 1
    except BaseException:
        await s.stop()
        raise


async def check_markets(cfg: StrategyConfig) -> None:
    """The universe's symbols against the exchange's markets (public data: no credentials, no store, no lease):
    ``ConfigError`` naming the field. ``planar run`` asks it while the local Prefect server starts, so a typo in a
    symbol is answered in a second, not after the server is up. An exchange that cannot be reached is not an
    answer: the run's own start asks again and says what it found."""
    venue = public_venue(cfg)  # keyless, whatever the mode: markets are public
    try:
        markets = await venue.load_markets(cfg.timeouts.market_data * 4)
    except ExchangeOpError:
        return
    finally:
        await venue.close()
    check_universe(cfg, markets)
