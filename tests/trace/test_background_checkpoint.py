"""A live engine's checkpoints are written on a thread of their own (``EventTrace(background=True)``): the recorder
(the event loop) goes on while a segment is encoded and written, a reader sees every event throughout, a failed
checkpoint loses nothing, and a process killed in the middle of one loses nothing either."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from planar_core.trace import EventTrace, read_trace
from planar_core.trace import store as store_module
from planar_core.trace.files import TraceFiles

WAIT_S = 30.0  # the longest a step waits on the other thread (a failure, never a measurement)


def _record(et: EventTrace, first: int, n: int) -> None:
    for i in range(first, first + n):  # a durable kind: each record is one flush (one WAL append)
        et.record("trade_executed", client_order_id=f"c{i}", symbol="BTC/USDT", side="buy", amount=1.0, price=100.0 + i)


def _ids(root: Path) -> list[str]:
    return list(read_trace(str(root))["client_order_id"].astype(str))


class _Gate:
    """``write_segment`` held on whatever thread calls it until the test opens the gate; which threads did."""

    def __init__(self, real: Callable[..., object], fail: int = 0) -> None:
        self.real, self.fail = real, fail
        self.entered, self.opened = threading.Event(), threading.Event()
        self.threads: list[threading.Thread] = []

    def __call__(self, *args: object, **kwargs: object) -> object:
        self.threads.append(threading.current_thread())
        if threading.current_thread() is not threading.main_thread():  # never hold the test's own thread
            self.entered.set()
            assert self.opened.wait(WAIT_S), "the test never opened the gate"
        if self.fail:
            self.fail -= 1
            raise OSError(28, "No space left on device (injected)")
        return self.real(*args, **kwargs)


def test_the_recorder_goes_on_while_a_checkpoint_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = _Gate(store_module.write_segment)
    monkeypatch.setattr(store_module, "write_segment", gate)
    et = EventTrace(str(tmp_path), flush_interval=3600, checkpoint_every=100, background=True)
    _record(et, 0, 100)  # the 100th flush finds a checkpoint due
    assert gate.entered.wait(WAIT_S), "no checkpoint was started"
    _record(et, 100, 50)  # recorded and durable while the segment is held: the recorder was not
    assert all(t is not threading.main_thread() for t in gate.threads), "the checkpoint ran on the recorder's thread"
    assert _ids(tmp_path) == [f"c{i}" for i in range(150)]  # a reader meanwhile: every event, from the WAL
    gate.opened.set()
    et.sync()  # waits for the checkpoint
    m = TraceFiles(str(tmp_path)).load_manifest()
    assert [s.rows for s in m.segments] == [100]
    assert _ids(tmp_path) == [f"c{i}" for i in range(150)]  # the segment's 100, then the WAL's 50
    et.close()
    assert _ids(tmp_path) == [f"c{i}" for i in range(150)]
    assert not TraceFiles(str(tmp_path)).list_wal()


def test_a_failed_background_checkpoint_is_raised_by_the_next_flush_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _Gate(store_module.write_segment, fail=1)
    monkeypatch.setattr(store_module, "write_segment", gate)
    et = EventTrace(str(tmp_path), flush_interval=3600, checkpoint_every=100, background=True)
    _record(et, 0, 100)
    assert gate.entered.wait(WAIT_S)
    gate.opened.set()
    with et._written:  # the failed checkpoint has given its events back
        assert et._written.wait_for(lambda: not et._writing, WAIT_S)
    with pytest.raises(OSError, match="No space left"):
        _record(et, 100, 1)  # recorded and durable; its flush says the store failed
    _record(et, 101, 99)  # the next checkpoint, due again, takes the first 100 back with those since
    et.close()
    assert sum(s.rows for s in TraceFiles(str(tmp_path)).load_manifest().segments) == 200
    assert _ids(tmp_path) == [f"c{i}" for i in range(200)]
    assert not TraceFiles(str(tmp_path)).list_wal()


KILLED_IN_A_CHECKPOINT = """
import os, signal, sys, threading
from planar_core.trace import EventTrace
from planar_core.trace.files import TraceFiles
real = TraceFiles.update_manifest
def update_manifest(self, change):
    if threading.current_thread() is not threading.main_thread():  # the background checkpoint, its segment written
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, change)
TraceFiles.update_manifest = update_manifest
et = EventTrace(sys.argv[1], flush_interval=3600, checkpoint_every=100, background=True)
for i in range(150):
    et.record("trade_executed", client_order_id=f"c{i}", symbol="BTC/USDT", side="buy", amount=1.0, price=100.0 + i)
et.sync()  # waits for the checkpoint, which kills the process before its manifest
print("not killed")
"""


def test_a_process_killed_during_a_background_checkpoint_loses_nothing(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", KILLED_IN_A_CHECKPOINT, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stdout + done.stderr
    assert TraceFiles(str(tmp_path)).list("segments")  # the orphan segment the kill left, named by no manifest
    EventTrace(str(tmp_path)).close()  # the next writer recovers the WAL
    assert _ids(tmp_path) == [f"c{i}" for i in range(150)]  # each once
