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
