"""One live engine per strategy and account; client order ids allocated under a lock (issue 13)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from planar_core.engine.lease import Lease, LeaseHeldError
from planar_core.exchange.client_ids import ClientOrderIds


async def test_a_second_engine_of_the_same_strategy_refuses_to_trade(strategy_factory) -> None:
    first = await strategy_factory("twin")
    second = await strategy_factory("twin", start=False)
    with pytest.raises(LeaseHeldError, match=f'"pid": {os.getpid()}'):
        await second.start()
    assert not second.running and first.lease.held
    other = await strategy_factory("other")  # another strategy on the same account is not blocked
    assert other.running
    await first.stop()
    third = await strategy_factory("twin")  # the lease is free once the first engine stopped
    assert third.running and third.lease.held


async def test_the_lease_of_a_killed_process_is_free_at_once(tmp_path: Path) -> None:
    path = tmp_path / "leases" / "acct--s.lock"
    code = (
        "import sys, time; from pathlib import Path; from planar_core.engine.lease import Lease; "
        f"Lease(Path({str(path)!r})).acquire('run-1'); print('held', flush=True); time.sleep(600)"
    )
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE)
    try:
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"held"
        lease = Lease(path)
        assert not lease.is_free()
        with pytest.raises(LeaseHeldError, match="run-1"):
            lease.acquire()
        os.kill(proc.pid, signal.SIGKILL)  # a zombie run: the process is gone, whatever Prefect still shows
        await proc.wait()
        assert lease.is_free()
        lease.acquire("run-2")
        assert lease.held and "run-2" in path.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_client_order_id_blocks_never_overlap_between_processes(tmp_path: Path) -> None:
    """Two allocators on one store (the engine and an e-stop closing positions) with small blocks: every id is
    distinct. Before the lock, the second reserved from its own counter and reissued the first one's ids."""
    a = ClientOrderIds(tmp_path, "s", block=3)
    b = ClientOrderIds(tmp_path, "s", block=3)
    ids = [x.next() for _ in range(20) for x in (a, b)]
    assert len(set(ids)) == len(ids) == 40
