"""The host's request budgets across real processes: one budget however many processes draw from it, a hold seen by
all, the exchange's counts raising the forecast, and a lock holder's death wedging nobody."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest

from planar_core.exchange import budget as B
from planar_core.exchange.budget import BudgetHeld, Budgets, Demand, Pacer

KEY, LIMITS = "127.0.0.1:1/api", {60_000: 600}
FROZEN = 1_800_000_000.0  # every process reads this clock: nothing expires while they compete


def demand(weight: int = 3, orders: int = 0) -> Demand:
    return Demand(KEY, weight, LIMITS, "acct/api" if orders else None, orders, {10_000: 10}, trade=True)


def _grab(directory: str | None, start: mp.synchronize.Barrier, out: mp.Queue, orders: int) -> None:
    """One process: reserve until refused, with the clock frozen; report how many went."""
    registry = Budgets(Path(directory)) if directory else Budgets(None)
    pacer = Pacer(registry, headroom=1.0, clock=lambda: FROZEN)

    async def run() -> int:
        n = 0
        start.wait()
        while True:
            try:
                await pacer.acquire(demand(orders=orders), max_wait=0)
            except BudgetHeld:
                return n
            n += 1

    out.put(asyncio.run(run()))


def compete(directory: str | None, processes: int = 5, orders: int = 0) -> list[int]:
    ctx = mp.get_context("fork")
    start, out = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_grab, args=(directory, start, out, orders)) for _ in range(processes)]
    for p in procs:
        p.start()
    got = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    return got


def test_five_processes_draw_from_one_weight_budget(tmp_path: Path) -> None:
    got = compete(str(tmp_path))
    assert sum(got) * 3 == 600  # the budget once, not five times: 200 requests of weight 3 between them


def test_new_orders_are_one_budget_per_account(tmp_path: Path) -> None:
    got = compete(str(tmp_path), orders=1)
    assert sum(got) == 10  # ten orders per 10 s for the account, whatever the number of processes


def test_a_hold_set_by_one_process_holds_the_others(tmp_path: Path) -> None:
    ctx = mp.get_context("fork")
    p = ctx.Process(target=lambda: Pacer(Budgets(tmp_path)).hold(KEY, LIMITS, 30.0))  # a 429 with Retry-After: 30
    p.start()
    p.join(timeout=30)
    pacer = Pacer(Budgets(tmp_path))
    with pytest.raises(BudgetHeld) as held:
        asyncio.run(pacer.acquire(demand(), max_wait=5))
    assert 25 < held.value.retry_after <= 30


def test_the_exchange_count_raises_the_forecast_never_lowers_it(tmp_path: Path) -> None:
    now = [FROZEN]
    pacer = Pacer(Budgets(tmp_path), headroom=1.0, clock=lambda: now[0])
    asyncio.run(pacer.acquire(demand(weight=100), max_wait=0))
    pacer.observe(KEY, LIMITS, {60_000: 550})  # the exchange saw more than this host reserved
    assert pacer.snapshot(KEY, LIMITS)["windows"][60_000]["used"] == 550  # type: ignore[index]
    pacer.observe(KEY, LIMITS, {60_000: 20})  # an answer that left before some reservations arrived
    assert pacer.snapshot(KEY, LIMITS)["windows"][60_000]["used"] == 550  # type: ignore[index]
    with pytest.raises(BudgetHeld):
        asyncio.run(pacer.acquire(demand(weight=51), max_wait=0))
    asyncio.run(pacer.acquire(demand(weight=50), max_wait=0))


def test_a_spent_window_frees_as_its_reservations_age(tmp_path: Path) -> None:
    now = [FROZEN]

    async def fake_sleep(seconds: float) -> None:
        now[0] += seconds

    pacer = Pacer(Budgets(tmp_path), headroom=1.0, clock=lambda: now[0], sleep=fake_sleep)

    async def run() -> float:
        for _ in range(200):
            await pacer.acquire(demand(), max_wait=0)
        return await pacer.acquire(demand(), max_wait=120)

    waited = asyncio.run(run())
    width, slack = B.geometry(60_000)
    assert 60 <= waited <= 60 + (slack + 2 * width) / 1000  # a minute (plus the slack), not sooner, not much later


def test_exchange_info_limits_replace_the_published_ones(tmp_path: Path) -> None:
    pacer = Pacer(Budgets(tmp_path), headroom=1.0, clock=lambda: FROZEN)
    pacer.learn(KEY, LIMITS, {10_000: 30})  # the exchange limits 10 s intervals, not minutes
    asyncio.run(pacer.acquire(demand(weight=30), max_wait=0))
    with pytest.raises(BudgetHeld):
        asyncio.run(pacer.acquire(demand(weight=1), max_wait=0))
    windows = pacer.snapshot(KEY, LIMITS)["windows"]
    assert windows[60_000]["limit"] is None and windows[10_000]["limit"] == 30  # type: ignore[index]


def _lock_forever(path: str, ready: mp.synchronize.Event) -> None:
    slab = B.Slab(Path(path))
    assert slab.try_lock()
    ready.set()
    time.sleep(3600)


def test_a_process_killed_while_holding_the_lock_wedges_nobody(tmp_path: Path) -> None:
    registry = Budgets(tmp_path)
    pacer = Pacer(registry, clock=lambda: FROZEN)
    path = registry.get(KEY, LIMITS).slab.path
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_lock_forever, args=(str(path), ready))
    holder.start()
    assert ready.wait(30)
    assert not registry.try_lock([registry.get(KEY, LIMITS)])  # held by the other process
    os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
    holder.join(timeout=30)
    asyncio.run(asyncio.wait_for(pacer.acquire(demand(), max_wait=0), 5))  # the kernel released its flock


def test_a_stopped_lock_holder_is_given_up_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(B, "LOCK_PATIENCE", 0.2)
    registry = Budgets(tmp_path)
    path = registry.get(KEY, LIMITS).slab.path
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    holder = ctx.Process(target=_lock_forever, args=(str(path), ready))
    holder.start()
    try:
        assert ready.wait(30)
        os.kill(holder.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        waited = asyncio.run(asyncio.wait_for(Pacer(registry, clock=lambda: FROZEN).acquire(demand(), max_wait=0), 5))
        assert waited == 0.0  # went on, paced by this process alone, rather than wait for a holder that never lets go
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
        holder.join(timeout=30)


def test_a_torn_or_foreign_file_starts_afresh(tmp_path: Path) -> None:
    registry = Budgets(tmp_path)
    path = registry.get(KEY, LIMITS).slab.path
    assert path is not None
    path.write_bytes(b"garbage" * 10)
    pacer = Pacer(Budgets(tmp_path), headroom=1.0, clock=lambda: FROZEN)
    asyncio.run(pacer.acquire(demand(weight=600), max_wait=0))
    assert pacer.snapshot(KEY, LIMITS)["windows"][60_000]["used"] == 600  # type: ignore[index]
