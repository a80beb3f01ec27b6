"""Supervised background tasks: a crashed watcher is restarted with backoff, logged and counted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Protocol

from ..model.health import TaskHealth

log = logging.getLogger("planar.engine.supervisor")


class TaskObserver(Protocol):
    """Told when a supervised task starts, restarts after a crash, and ends (an orchestrator shows each watcher as
    one long-lived unit: the Prefect flow makes one task run per watcher from these)."""

    def started(self, health: TaskHealth) -> None: ...

    def restarting(self, health: TaskHealth, error: BaseException) -> None: ...

    def ended(self, health: TaskHealth, error: BaseException | None) -> None: ...


@dataclass
class Supervisor:
    max_backoff: float = 30.0
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    health: dict[str, TaskHealth] = field(default_factory=dict)
    observer: TaskObserver | None = None
    oneshots: set[asyncio.Task[object]] = field(default_factory=set)

    def spawn(self, work: Coroutine[object, object, object]) -> None:
        """Run one short job in the background (a timed cancel): referenced until it ends, its failure logged."""
        task: asyncio.Task[object] = asyncio.ensure_future(work)
        self.oneshots.add(task)
        task.add_done_callback(self._oneshot_done)

    def _oneshot_done(self, task: asyncio.Task[object]) -> None:
        self.oneshots.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background job failed: %r", task.exception())

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
        last: BaseException | None = None  # the crash being backed off from, if stopped during the backoff
        if self.observer is not None:
            self.observer.started(health)
        try:
            while True:
                crash: Exception
                try:
                    await body(health)
                    last = None
                    return
                except asyncio.CancelledError as cancelled:
                    me = asyncio.current_task()
                    if me is None or me.cancelling():
                        raise  # stopped: our own cancellation
                    # a future the task awaited was cancelled by someone else (ccxt cancels the watches of a
                    # websocket client it closes): a crash like any other, not a reason to end for good
                    crash = ConnectionError(f"awaited work was cancelled under the task ({cancelled!r})")
                except Exception as exc:
                    crash = exc
                last = crash
                health.failed(crash)
                health.restarts += 1
                log.error("task %s crashed (%s); restart %d in %.1fs", name, health.last_error, health.restarts, backoff)
                if self.observer is not None:
                    self.observer.restarting(health, crash)
                await asyncio.sleep(backoff)
                last = None
                backoff = min(self.max_backoff, backoff * 2)
        finally:
            health.running = False
            if self.observer is not None:
                self.observer.ended(health, last)

    async def stop(self, name: str | None = None) -> None:
        """Stop one task, or every task and every one-shot job still running."""
        if name is None:
            for job in list(self.oneshots):
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await job
        names = [name] if name else list(self.tasks)
        for n in names:
            task = self.tasks.pop(n, None)
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
