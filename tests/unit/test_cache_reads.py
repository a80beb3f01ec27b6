"""The coalesced read of the venue's stream cache after stream events (engine/watchers.py ``CacheReads``): fewer
reads than events, yet every event still followed by a read at least ``delay`` after it (the messages an event
leaves in the cache may arrive just after it)."""

from __future__ import annotations

import asyncio

from planar_core.engine.watchers import CacheReads

DELAY = 0.01


async def test_each_event_is_followed_by_a_read_at_least_delay_after_it() -> None:
    loop = asyncio.get_running_loop()
    reads: list[float] = []
    done = asyncio.Event()

    def read() -> None:
        reads.append(loop.time())
        if len(reads) >= 2:
            done.set()

    later = CacheReads(read, DELAY)
    asks = [loop.time()]
    later.ask()
    await asyncio.sleep(DELAY / 2)  # a second event while the first read waits
    asks.append(loop.time())
    later.ask()
    later.ask()  # and a third at once: covered by the same reads
    asks.append(loop.time())
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.sleep(3 * DELAY)  # nothing more was asked: no further read comes
    assert len(reads) == 2, reads
    for at in asks:
        assert any(r >= at + DELAY for r in reads), (at, reads)


async def test_a_read_that_raises_still_reads_again_for_the_events_it_owes() -> None:
    loop = asyncio.get_running_loop()
    reads: list[float] = []
    done = asyncio.Event()

    def read() -> None:
        reads.append(loop.time())
        if len(reads) == 1:
            raise RuntimeError("first read fails")
        done.set()

    handler_calls: list[object] = []
    loop.set_exception_handler(lambda _loop, ctx: handler_calls.append(ctx.get("exception")))
    try:
        later = CacheReads(read, DELAY)
        later.ask()
        later.ask()
        await asyncio.wait_for(done.wait(), 5)
    finally:
        loop.set_exception_handler(None)
    assert len(reads) == 2
    assert isinstance(handler_calls[0], RuntimeError)
