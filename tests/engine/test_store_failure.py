"""A store that cannot be written (a full disk: a small tmpfs; a read-only ``wal/``: a read-only bind mount) never
makes ``call()`` raise and never books a ghost: the order is refused before anything is sent, failed locally (none
left in ``intent``), the strategy halts with a critical alert naming the path and the error (a real webhook
receiver on loopback), and after the store is writable again a re-arm resumes trading. A fill that arrives while
the trace cannot be written is kept in memory, reaches the strategy, and is written once the store recovers.

Mounting needs root (the CI runs as root); without it these tests skip, saying why."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from planar_core.engine.notices import Filled
from planar_core.engine.store_guard import StoreUnwritable
from planar_core.model import PENDING, OrderStatus, OrderType, Side
from planar_core.state import StateStore

from ..conftest import wait_for
from ..test_alerts import Receiver
from .test_order_call import bid_ask, snapshot


def _mount(*args: str) -> None:
    try:
        subprocess.run(["mount", *args], check=True, capture_output=True, text=True)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"mount {' '.join(args)} is not permitted here: {getattr(exc, 'stderr', '') or exc}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


@pytest.fixture
def store_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs at the strategies' default store root (requested before strategy_factory: unmounted after)."""
    root = tmp_path / "store"
    root.mkdir()
    _mount("-t", "tmpfs", "-o", "size=16m", "tmpfs", str(root))
    try:
        yield root
    finally:
        _umount(root)


def fill(root: Path) -> Path:
    """Write a file until the volume has no byte left (ENOSPC)."""
    path = root / "filler"
    with open(path, "wb", buffering=0) as fh:
        for size in (1 << 20, 4096, 1):
            chunk = b"\0" * size
            while True:
                try:
                    fh.write(chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return path


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook alert channel on loopback (tests/test_alerts.py's receiver)."""
    r = await Receiver().start()
    yield r
    assert r.runner is not None
    await r.runner.cleanup()


async def _alerting(strategy_factory, receiver: Receiver) -> object:
    return await strategy_factory(alerts={"webhook_url": f"{receiver.url}/hook", "dedupe_window_s": 0})


def _alerted(receiver: Receiver, *words: str) -> bool:
    return any("[critical]" in r["body"] and all(w in r["body"] for w in words) for r in receiver.requests)


def _check_refused(s, sandbox, account, before: set[str], booked: list[str]) -> object:
    """The refused order, checked: failed (never intent), not on the exchange (the admin snapshot first)."""
    ai = s.universe["BTC/USDT"]
    assert [o["client_order_id"] for o in snapshot(sandbox, account)["orders"]] == booked
    (refused,) = [o for cid, o in ai.orders.items() if cid not in before]
    assert refused.status is OrderStatus.FAILED
    assert not [o for a in s.universe.values() for o in a.orders.values() if o.status is OrderStatus.INTENT]
    return refused


async def test_disk_full_refuses_before_sending_halts_alerts_and_rearms(store_tmpfs, strategy_factory, sandbox, account, receiver) -> None:
    s = await _alerting(strategy_factory, receiver)
    ai = s.universe["BTC/USDT"]
    bid, _ = bid_ask(sandbox)
    assert await s.call(ai, OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.9, waitfor=0) is PENDING
    first = [o["client_order_id"] for o in snapshot(sandbox, account)["orders"]]
    # the trace's log is a file opened once and appended to: a record that fits in a block the file already has
    # is written even on a full disk (and is durable). A checkpoint closes it: the next record needs a new file
    s.sink.checkpoint()
    filler = fill(store_tmpfs)
    before = set(ai.orders)
    assert await s.call(ai, OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.91, waitfor=0) is None
    refused = _check_refused(s, sandbox, account, before, first)
    assert s.halted and "No space left on device" in (s.state.halt_reason or "")
    assert str(store_tmpfs) in (s.state.halt_reason or "")
    assert StateStore(s.config.shared_root).load().halted is False  # the state file could not take it: held in memory
    await wait_for(lambda: _alerted(receiver, "No space left on device", str(store_tmpfs)))
    assert await s.call(ai, OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.92, waitfor=0) is None  # halted
    with pytest.raises(StoreUnwritable, match="No space left on device"):
        s.rearm()  # refused while the store is still full
    assert s.halted
    filler.unlink()  # space returns: the held halt reaches the state file, then a re-arm resumes
    await wait_for(lambda: s.halted and StateStore(s.config.shared_root).load().halted)
    s.rearm()
    assert not s.halted and s.gate.store_error is None
    assert await s.call(ai, OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.93, waitfor=0) is PENDING
    assert len(snapshot(sandbox, account)["orders"]) == 2
    failed = [e for e in s.sink.of("order_failed") if e.get("client_order_id") == refused.client_order_id]
    assert failed and "not sent" in failed[-1]["reason"]  # written once the store took it: it closes the intent
    await s.alerts.stop()


async def test_read_only_wal_refuses_keeps_fills_and_rearms(strategy_factory, sandbox, account, receiver) -> None:
    s = await _alerting(strategy_factory, receiver)
    ai = s.universe["BTC/USDT"]
    bid, _ = bid_ask(sandbox)
    assert await s.call(ai, OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.995, waitfor=0) is PENDING
    (resting,) = ai.open_orders()
    fills: list[Filled] = []
    s.hooks.listen(lambda e: fills.append(e) if isinstance(e, Filled) else None)
    wal = Path(s.sink.root) / "wal"
    s.sink.checkpoint()  # the log file open now was opened through the old mount; the next one is made in the new
    _mount("--bind", str(wal), str(wal))
    try:
        _mount("-o", "remount,bind,ro", str(wal))
        before = set(ai.orders)
        assert await s.call(ai, OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.9, waitfor=0) is None
        refused = _check_refused(s, sandbox, account, before, [resting.client_order_id])
        assert "Read-only file system" in (s.state.halt_reason or "") and s.halted
        assert StateStore(s.config.shared_root).load().halted  # the state file is elsewhere: written
        assert refused.client_order_id not in s.journal.unresolved()  # the journal took the intent and its outcome
        await wait_for(lambda: _alerted(receiver, "Read-only file system", str(wal.parent)))
        # the resting order fills while the trace cannot be written: kept in memory, told, no watcher crashes
        sandbox.ex.markets[("spot", "BTCUSDT")].shock = 0.98
        sandbox.ex.match_resting()
        sandbox.ex.markets[("spot", "BTCUSDT")].shock = 1.0
        await wait_for(lambda: resting.status is OrderStatus.CLOSED and [f.order for f in fills] == [resting])
        assert resting.filled == pytest.approx(0.01)
        assert all(h["restarts"] == h["failures"] == 0 for h in s.watcher_health().values()), s.watcher_health()
        with pytest.raises(StoreUnwritable, match="Read-only file system"):
            s.rearm()
    finally:
        _umount(wal)
    s.rearm()
    assert not s.halted
    traded = [e for e in s.sink.of("trade_executed") if e["client_order_id"] == resting.client_order_id]
    assert traded and sum(float(e["amount"]) for e in traded) == pytest.approx(0.01)  # written once it could be
    assert await s.call(ai, OrderType.GTC, Side.BUY, amount=0.01, price=bid * 0.9, waitfor=0) is PENDING
    assert len(snapshot(sandbox, account)["orders"]) == 2
    await s.alerts.stop()


async def test_a_full_disk_at_start_up_names_its_path_and_a_retry_is_not_told_of_another_writer(
    store_tmpfs, strategy_factory, sandbox, account
) -> None:
    """An outside trial: `planar run` on a full disk failed with a bare "[Errno 28] No space left on device" (no path),
    and the flow's retry in the same process was told the trace "is being written by pid …" (its own first attempt:
    the writer lock's descriptor was never closed), sending the operator after a twin engine that did not exist."""
    from planar_core.config import load_config
    from planar_core.engine.strategy import strategy_from_config
    from planar_core.trace import TraceLockedError

    first = await strategy_factory()
    await first.stop()  # a store that has run before: its trace, its client-id block, its state
    cfg = load_config(None, **first.config.model_dump(exclude={"credentials"}))
    env = {"EXCHANGE_API_KEY": account.api_key, "EXCHANGE_API_SECRET": account.api_secret}
    fill(store_tmpfs)
    for attempt in range(2):  # the flow's retries run in the same process
        with pytest.raises(OSError) as raised:
            strategy_from_config(cfg, env=env)
        exc = raised.value
        assert not isinstance(exc, TraceLockedError), f"attempt {attempt}: {exc}"
        assert exc.errno == errno.ENOSPC, f"attempt {attempt}: {exc!r}"
        assert str(store_tmpfs) in str(exc), f"attempt {attempt} names no path: {exc}"
