"""A live engine's checkpoints are written on a thread of their own (``EventTrace(background=True)``): the recorder
(the event loop) goes on while a segment is encoded and written, a reader sees every event throughout, a failed
checkpoint loses nothing, and a process killed in the middle of one loses nothing either."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from planar_core.engine.store_guard import GuardedSink
from planar_core.trace import EventTrace, read_trace
from planar_core.trace import store as store_module
from planar_core.trace.files import TraceFiles
from planar_core.trace.store import CheckpointFailed

WAIT_S = 30.0  # the longest a step waits on the other thread (a failure, never a measurement)


def _record(sink: EventTrace | GuardedSink, first: int, n: int) -> None:
    for i in range(first, first + n):  # a durable kind: each record is one flush (one WAL append)
        sink.record("trade_executed", client_order_id=f"c{i}", symbol="BTC/USDT", side="buy", amount=1.0, price=100.0 + i)


def _guarded(root: Path, checkpoint_every: int = 100) -> tuple[EventTrace, GuardedSink, list[BaseException]]:
    """A live engine's trace (checkpoints in the background) behind its sink, and the failures the sink reports."""
    failures: list[BaseException] = []
    et = EventTrace(str(root), flush_interval=3600, checkpoint_every=checkpoint_every, background=True)
    return et, GuardedSink(et, on_failure=lambda where, exc: failures.append(exc)), failures


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


def _finished(et: EventTrace) -> None:
    with et._written:
        assert et._written.wait_for(lambda: not et.checkpointing, WAIT_S)


def test_a_failed_background_checkpoint_halts_once_and_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure waits on the trace until the engine's sink takes it on its own thread: the strategy halts once
    (``on_failure``), an order intent recorded meanwhile is not refused (it is on disk), and the events come back
    for the next checkpoint, ahead of the later ones."""
    gate = _Gate(store_module.write_segment, fail=1)
    monkeypatch.setattr(store_module, "write_segment", gate)
    et, sink, failures = _guarded(tmp_path)
    _record(sink, 0, 100)
    assert gate.entered.wait(WAIT_S)
    gate.opened.set()
    _finished(et)
    sink.durable("order_placed", client_order_id="c100", symbol="BTC/USDT", side="buy", amount=1.0, price=1.0)  # not refused
    assert [type(f) for f in failures] == [CheckpointFailed] and "No space left" in str(failures[0])
    sink.record("trade_executed", client_order_id="c101", symbol="BTC/USDT", side="buy", amount=1.0, price=1.0)
    assert len(failures) == 1  # once
    sink.check()  # re-arming: a checkpoint in the caller proves the segments can be written again
    sink.close()
    assert sum(s.rows for s in TraceFiles(str(tmp_path)).load_manifest().segments) == 102
    assert _ids(tmp_path) == [f"c{i}" for i in range(102)]
    assert not TraceFiles(str(tmp_path)).list_wal()


def test_an_encoder_error_is_a_store_failure_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only an OSError: whatever stops a background checkpoint halts the strategy (a ``CheckpointFailed``,
    an OSError with the cause chained), rather than checkpoints failing unseen while the WAL grows."""

    def refuse(*args: object, **kwargs: object) -> object:
        raise ValueError("an event the encoder cannot take")

    monkeypatch.setattr(store_module, "write_segment", refuse)
    et, sink, failures = _guarded(tmp_path)
    _record(sink, 0, 100)
    _finished(et)
    sink.flush()
    assert len(failures) == 1 and isinstance(failures[0], OSError) and isinstance(failures[0].__cause__, ValueError)
    with pytest.raises(OSError, match="ValueError"):
        sink.check()  # re-arming refused while it still fails
    monkeypatch.undo()
    sink.close()
    assert _ids(tmp_path) == [f"c{i}" for i in range(100)]


def test_a_failing_store_is_retried_after_a_pause_not_on_every_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each attempt encodes the whole backlog: after a failure the next waits (1 s, doubling), instead of starting
    on every flush that finds the backlog still due (one per flush before: 150 attempts here)."""
    attempts: list[int] = []

    def refuse(*args: object, **kwargs: object) -> object:
        attempts.append(1)
        raise OSError(28, "No space left on device (injected)")

    monkeypatch.setattr(store_module, "write_segment", refuse)
    et = EventTrace(str(tmp_path), flush_interval=3600, checkpoint_every=50, background=True)
    for i in range(200):
        et.record("trade_executed", client_order_id=f"c{i}", symbol="BTC/USDT", side="buy", amount=1.0, price=1.0)
        _finished(et)
    assert 1 <= len(attempts) <= 5  # one per pause passed while recording (a second on a slow machine)
    monkeypatch.undo()
    et.close()
    assert _ids(tmp_path) == [f"c{i}" for i in range(200)]


def test_a_wal_file_that_cannot_be_removed_after_the_commit_is_not_written_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the manifest names the segment, the events are in it: a failure to remove the consumed WAL files must
    not give them back (the next checkpoint would write them a second time)."""
    real_remove = TraceFiles.remove

    def remove(self: TraceFiles, path: str) -> None:
        if path.startswith("wal/") and threading.current_thread() is not threading.main_thread():
            raise OSError(5, "Input/output error (injected)")
        real_remove(self, path)

    monkeypatch.setattr(TraceFiles, "remove", remove)
    et, sink, failures = _guarded(tmp_path)
    for i in range(150):
        _record(sink, i, 1)
        _finished(et)
    sink.close()
    assert _ids(tmp_path) == [f"c{i}" for i in range(150)]  # each once
    assert failures == []  # committed: nothing failed that matters
    assert not TraceFiles(str(tmp_path)).list_wal()  # close's checkpoint removed them


def test_a_thread_that_cannot_start_leaves_no_checkpoint_claimed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No thread (the process's limit reached): nothing was taken, the failure is reported, and ``close()`` does not
    wait forever for a checkpoint that never began."""

    class NoThread(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    et, sink, failures = _guarded(tmp_path)
    monkeypatch.setattr(store_module, "threading", SimpleNamespace(Thread=NoThread))  # the trace's threads only
    _record(sink, 0, 100)
    assert not et.checkpointing
    assert len(failures) == 1 and "can't start new thread" in str(failures[0])
    monkeypatch.undo()
    sink.close()  # in the caller
    assert _ids(tmp_path) == [f"c{i}" for i in range(100)]


KILLED_IN_A_CHECKPOINT = """
import os, signal, sys, threading
from planar_core.trace import EventTrace
from planar_core.trace.files import TraceFiles
real = TraceFiles.update_manifest
def update_manifest(self, *args):
    if threading.current_thread() is not threading.main_thread():  # the background checkpoint, its segment written
        os.kill(os.getpid(), signal.SIGKILL)
    return real(self, *args)
TraceFiles.update_manifest = update_manifest
et = EventTrace(sys.argv[1], flush_interval=3600, checkpoint_every=100, background=True)
for i in range(150):
    et.record("trade_executed", client_order_id=f"c{i}", symbol="BTC/USDT", side="buy", amount=1.0, price=100.0 + i)
et.sync()  # waits for the checkpoint, which kills the process before its manifest
print("not killed")
"""


@pytest.mark.parametrize("at", ["update_manifest", "remove"])
def test_a_process_killed_during_a_background_checkpoint_loses_nothing(tmp_path: Path, at: str) -> None:
    """Killed with the segment written and no manifest naming it (an orphan), or with the manifest committed and
    the consumed WAL files still there: the next writer finds every event once."""
    script = KILLED_IN_A_CHECKPOINT.replace("update_manifest", at)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stdout + done.stderr
    assert TraceFiles(str(tmp_path)).list("segments")
    EventTrace(str(tmp_path)).close()  # the next writer recovers the WAL
    assert _ids(tmp_path) == [f"c{i}" for i in range(150)]  # each once
