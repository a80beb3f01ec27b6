"""Planar's stall guard: a websocket that delivers nothing for ``stall_after`` seconds forces a fetch, counted in
the watcher's health; a stream that delivers keeps it quiet."""

from __future__ import annotations

import asyncio

from planar_core.engine.watchers import ws_or_poll
from planar_core.model.health import TaskHealth


async def drive(ws_delivers: bool, stall_after: float, run_for: float) -> tuple[TaskHealth, int]:
    health = TaskHealth("balance")
    polls = 0
    stop = asyncio.Event()

    async def ws_step() -> None:
        if ws_delivers:
            await asyncio.sleep(stall_after / 50)  # an update every fiftieth of the stall time
        else:
            await asyncio.Event().wait()  # silent, never failing

    async def poll_step() -> None:
        nonlocal polls
        polls += 1

    asyncio.get_running_loop().call_later(run_for, stop.set)
    await ws_or_poll(
        health,
        use_ws=True,
        ws_step=ws_step,
        poll_step=poll_step,
        interval=3600,
        fallback_s=3600,
        stop_when=stop.is_set,
        stall_after=stall_after,
    )
    return health, polls


async def test_a_silent_stream_is_fetched_after_stall_after() -> None:
    health, polls = await drive(ws_delivers=False, stall_after=0.05, run_for=0.5)
    assert health.stalls >= 2 and health.last_stall is not None
    assert polls >= health.stalls  # each stall fetched (plus the subscription's gap poll)


async def test_a_stream_that_delivers_is_not_stalled() -> None:
    health, _ = await drive(ws_delivers=True, stall_after=0.5, run_for=1.0)
    assert health.stalls == 0
