"""One long-lived Prefect task run per engine watcher (balance, positions, per-asset orders, OHLCV, health, risk
monitor, valuation, resolver): it starts when the watcher starts and ends when it ends, logs each crash and
restart, and ends Failed if the watcher was crashing when it stopped. The flow run's graph then shows the engine
as it runs. Never a task run per event or per order: the engine's supervisor calls this only when a watcher
starts, restarts or ends."""

from __future__ import annotations

import asyncio
import uuid

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from planar_core.engine.supervisor import TaskHealth

_QUEUES: dict[str, asyncio.Queue[tuple[str, str | None]]] = {}


class WatcherCrashed(RuntimeError):
    """The watcher was crashing (and being restarted) when the engine stopped."""


@task(name="watcher", task_run_name="watcher:{name}", cache_policy=NO_CACHE, retries=0)
async def watcher_run(name: str, key: str) -> dict[str, object]:
    """Lives as long as the engine's watcher ``name``; ``key`` names its in-process event queue."""
    logger = get_run_logger()
    queue = _QUEUES[key]
    restarts = 0
    logger.info("watcher %s started", name)
    try:
        while True:
            what, detail = await queue.get()
            if what == "restart":
                restarts += 1
                logger.warning("watcher %s crashed (%s); restart %d", name, detail, restarts)
                continue
            if detail is not None:
                raise WatcherCrashed(f"watcher {name} was crashing when it stopped: {detail} ({restarts} restarts)")
            logger.info("watcher %s ended after %d restarts", name, restarts)
            return {"watcher": name, "restarts": restarts}
    finally:
        _QUEUES.pop(key, None)


class WatcherRuns:
    """The engine supervisor's observer (handed to ``strategy_from_config``): one ``watcher_run`` per watcher."""

    def __init__(self) -> None:
        self.runs: list[asyncio.Task[object]] = []
        self._keys: dict[str, str] = {}

    def started(self, health: TaskHealth) -> None:
        key = uuid.uuid4().hex
        _QUEUES[key] = asyncio.Queue()
        self._keys[health.name] = key
        self.runs.append(asyncio.create_task(watcher_run(health.name, key), name=f"prefect-watcher:{health.name}"))

    def _put(self, health: TaskHealth, what: str, detail: str | None) -> None:
        queue = _QUEUES.get(self._keys.get(health.name, ""))
        if queue is not None:
            queue.put_nowait((what, detail))

    def restarting(self, health: TaskHealth, error: BaseException) -> None:
        self._put(health, "restart", f"{type(error).__name__}: {error}"[:300])

    def ended(self, health: TaskHealth, error: BaseException | None) -> None:
        self._put(health, "end", None if error is None else f"{type(error).__name__}: {error}"[:300])

    async def finish(self) -> None:
        """Wait for every watcher's task run to record how it ended (after the engine stopped its watchers)."""
        await asyncio.gather(*self.runs, return_exceptions=True)
