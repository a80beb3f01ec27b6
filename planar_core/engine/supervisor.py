"""Supervised background tasks: a crashed watcher is restarted with backoff, logged and counted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger("planar.engine.supervisor")


@dataclass
class TaskHealth:
    name: str
    mode: str = "starting"  # websocket | polling | ok | reconnecting | lost ...
    running: bool = False
    restarts: int = 0
    failures: int = 0
    last_error: str | None = None
    last_update: float | None = None  # time.time() of the last useful data

    def seen(self, mode: str | None = None) -> None:
        self.last_update = time.time()
        if mode:
            self.mode = mode

    def failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]


@dataclass
class Supervisor:
    max_backoff: float = 30.0
    tasks: dict[str, asyncio.Task] = field(default_factory=dict)
    health: dict[str, TaskHealth] = field(default_factory=dict)

    def start(self, name: str, body: Callable[[TaskHealth], Awaitable[None]]) -> TaskHealth:
        """Run ``body`` until it returns; restart it (with backoff) whenever it raises."""
        existing = self.tasks.get(name)
        if existing is not None and not existing.done():
            return self.health[name]
        health = self.health.setdefault(name, TaskHealth(name))
        health.running = True
        self.tasks[name] = asyncio.create_task(self._run(name, body, health), name=f"planar:{name}")
        return health

    def running(self, name: str) -> bool:
        task = self.tasks.get(name)
        return task is not None and not task.done()

    async def _run(self, name: str, body: Callable[[TaskHealth], Awaitable[None]], health: TaskHealth) -> None:
        backoff = 0.5
        health.running = True
        while True:
            try:
                await body(health)
                health.running = False
                return
            except asyncio.CancelledError:
                health.running = False
                raise
            except Exception as exc:
                health.failed(exc)
                health.restarts += 1
                log.error("task %s crashed (%s); restart %d in %.1fs", name, health.last_error, health.restarts, backoff)
                await asyncio.sleep(backoff)
                backoff = min(self.max_backoff, backoff * 2)

    async def stop(self, name: str | None = None) -> None:
        names = [name] if name else list(self.tasks)
        for n in names:
            task = self.tasks.pop(n, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
