"""The supervisor tells its observer when a task starts, crashes and restarts, and ends (one Prefect task run per
watcher is built on this)."""

from __future__ import annotations

import asyncio

from planar_core.engine.supervisor import Supervisor, TaskHealth

from ..conftest import wait_for


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str | None]] = []

    def started(self, health: TaskHealth) -> None:
        self.events.append(("started", health.name, None))

    def restarting(self, health: TaskHealth, error: BaseException) -> None:
        self.events.append(("restarting", health.name, str(error)))

    def ended(self, health: TaskHealth, error: BaseException | None) -> None:
        self.events.append(("ended", health.name, None if error is None else str(error)))


async def test_start_restarts_and_end_are_observed() -> None:
    rec = Recorder()
    sup = Supervisor(max_backoff=0.01, observer=rec)
    attempts = 0

    async def flaky(health: TaskHealth) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            raise ConnectionError(f"drop {attempts}")

    sup.start("w", flaky)
    await wait_for(lambda: not sup.running("w"))
    assert rec.events == [("started", "w", None), ("restarting", "w", "drop 1"), ("restarting", "w", "drop 2"), ("ended", "w", None)]


async def test_stopped_while_crashing_ends_with_the_error() -> None:
    rec = Recorder()
    sup = Supervisor(max_backoff=60, observer=rec)

    async def broken(health: TaskHealth) -> None:
        raise RuntimeError("always")

    sup.start("b", broken)
    await wait_for(lambda: len(rec.events) >= 2)
    await sup.stop("b")
    assert rec.events[-1] == ("ended", "b", "always")
    sup.start("quiet", lambda health: asyncio.sleep(60))
    await asyncio.sleep(0)
    await sup.stop("quiet")
    assert rec.events[-1] == ("ended", "quiet", None)


async def test_a_task_whose_awaited_future_is_cancelled_by_someone_else_is_restarted() -> None:
    """ccxt cancels the pending watch futures of a websocket client it closes (``reconnect`` closes them on
    purpose): a watcher awaiting one gets CancelledError without being cancelled itself, and must not end for good."""
    rec = Recorder()
    sup = Supervisor(max_backoff=0.01, observer=rec)
    futures: list[asyncio.Future[None]] = []

    async def watcher(health: TaskHealth) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        futures.append(fut)
        await fut

    sup.start("w", watcher)
    await wait_for(lambda: len(futures) == 1)
    futures[0].cancel()  # the client closed under it
    await wait_for(lambda: len(futures) == 2)  # restarted, watching again
    assert sup.running("w") and sup.health["w"].restarts == 1
    await sup.stop("w")
    assert rec.events[-1] == ("ended", "w", None)
