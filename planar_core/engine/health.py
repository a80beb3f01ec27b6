"""Connection health: a cheap periodic check; on failure, reconnect with exponential backoff,
re-sync the account, and after the last failed attempt hand over to the emergency-stop hook."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ..exchange.errors import ExchangeOpError
from .supervisor import TaskHealth
from .sync import resync

if TYPE_CHECKING:
    from .strategy import Strategy

log = logging.getLogger("planar.engine.health")


async def check(s: "Strategy") -> bool:
    try:
        await s.venue.server_time(s.config.timeouts.market_data)
        return True
    except ExchangeOpError as err:
        log.warning("health check failed: %s", err)
        return False


async def reconnect(s: "Strategy", sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> bool:
    cfg = s.config.connection
    for attempt in range(1, cfg.max_retries + 1):
        log.info("reconnection attempt %d/%d", attempt, cfg.max_retries)
        await sleep(cfg.retry_delay * 2 ** (attempt - 1))
        try:
            await s.reset_streams()  # the watchers resubscribe at once instead of falling back to polling
        except Exception as exc:
            log.warning("closing the websockets failed: %s", exc)
        if await check(s):
            try:
                await resync(s)
            except ExchangeOpError as err:
                log.warning("resync after reconnect failed: %s", err)
                continue
            s.sink.record("reconnect", attempt=attempt, result="ok")
            log.info("reconnected on attempt %d", attempt)
            return True
        s.sink.record("reconnect", attempt=attempt, result="failed")
    reason = f"Failed to reconnect to exchange after {cfg.max_retries} attempts"
    s.sink.record("error_occurred", reason=reason)
    log.error(reason)
    handler = s.hooks.connection_lost_handler()
    if handler is not None:
        await handler(s, reason)
    else:
        s.halt(reason)
    return False


def connection_monitor(s: "Strategy") -> Callable[[TaskHealth], Awaitable[None]]:
    async def body(health: TaskHealth) -> None:
        first = True
        while s.running:
            if not first:  # checked at once, then every interval: a status says "ok" from the first publish
                await asyncio.sleep(s.config.connection.health_interval)
            first = False
            if await check(s):
                health.seen("ok")
                continue
            health.mode = "reconnecting"
            if not await reconnect(s):
                health.mode = "lost"
                return
            health.seen("ok")

    return body
