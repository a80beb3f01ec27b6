"""The trace keeps every order, fill, cancel and position event, and readers see consistent snapshots (issue 12:
defects 10, 17, 20). Each test failed before its fix."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from planar_core.trace import EventTrace, read_trace
from planar_core.trace.files import TraceClosedError, TraceFiles

KILL_AFTER_WRITING = """
import os, signal, sys
from planar_core.trace import EventTrace
et = EventTrace(sys.argv[1], flush_interval=3600)
for i in range(int(sys.argv[2])):
    et.record("trade_executed", client_order_id=f"c{i}", symbol="BTC/USDT", side="buy", amount=1.0, price=100.0 + i)
os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint: the events are only in the write-ahead log
"""


def test_fills_cancels_and_positions_are_durable_before_record_returns(tmp_path: Path) -> None:
    et = EventTrace(str(tmp_path), flush_interval=3600)
    et.record("trade_executed", client_order_id="c1", symbol="BTC/USDT", side="buy", amount=1.0, price=100.0)
    et.record("order_cancelled", client_order_id="c2", symbol="BTC/USDT", status="canceled")
    et.record("position_updated", payload={"BTC/USDT:USDT": {"contracts": 1.0}})
    et.record("order_unknown", client_order_id="c3", symbol="BTC/USDT", reason="timeout")
    seen = read_trace(str(tmp_path))  # a reader in another process would see the same files
    assert list(seen["kind"].astype(str)) == ["trade_executed", "order_cancelled", "position_updated", "order_unknown"]
    et.close()


def test_record_after_close_raises(tmp_path: Path) -> None:
    et = EventTrace(str(tmp_path))
    et.close()
    with pytest.raises(TraceClosedError):
        et.record("trade_executed", client_order_id="c1")


def test_a_restarted_writer_keeps_what_the_killed_one_left_in_the_log(tmp_path: Path) -> None:
    root = str(tmp_path / "t")
    r = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_WRITING, root, "7"],
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert r.returncode == -9, r.stderr.decode()[-500:]
    et = EventTrace(root)  # recovery: the leftover log becomes a segment before anything new is written
    et.record("order_placed", client_order_id="after", symbol="BTC/USDT", side="buy", amount=1.0)
    et.checkpoint()
    et.close()
    df = read_trace(root)
    assert sorted(df["client_order_id"]) == sorted([f"c{i}" for i in range(7)] + ["after"])


def test_a_reader_racing_a_checkpoint_misses_nothing(tmp_path: Path, monkeypatch) -> None:
    et = EventTrace(str(tmp_path), flush_interval=3600, checkpoint_every=10**9)
    for i in range(10):
        et.record("order_placed", client_order_id=f"c{i}", symbol="BTC/USDT", side="buy", amount=1.0)
    original = TraceFiles.list_wal
    raced = []

    def list_wal_after_a_checkpoint(self: TraceFiles) -> list[int]:
        if not raced:  # the reader has loaded the manifest; the writer checkpoints before it lists the log
            raced.append(True)
            et.checkpoint()
        return original(self)

    monkeypatch.setattr(TraceFiles, "list_wal", list_wal_after_a_checkpoint)
    df = read_trace(str(tmp_path))
    assert raced and len(df) == 10
    et.close()


def test_write_ahead_files_are_synced_with_their_directory(tmp_path: Path, monkeypatch) -> None:
    """The WAL is appended to an open file (durable against a process crash once record() returns) and synced by
    its committer thread: the file's data, and once the directory holding its new name, with no close needed."""
    synced: list[str] = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))[1])
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fdatasync(fd))[1])
    et = EventTrace(str(tmp_path), flush_interval=3600)
    synced.clear()
    et.record("order_placed", client_order_id="c1", symbol="BTC/USDT", side="buy", amount=1.0)
    wal = [str(tmp_path / "wal" / f"{seq:012d}.jsonl") for seq in et.files.list_wal()]
    assert len(wal) == 1
    deadline = time.monotonic() + 30
    while not (wal[0] in synced and str(tmp_path / "wal") in synced) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert wal[0] in synced and str(tmp_path / "wal") in synced, synced  # the file, then the directory holding its name
    et.close()
    et = EventTrace(str(tmp_path / "nosync"), flush_interval=3600, fsync=False)
    synced.clear()
    et.record("order_placed", client_order_id="c1", symbol="BTC/USDT", side="buy", amount=1.0)
    et.close()
    assert not [p for p in synced if "/wal" in p]


def test_a_reader_skips_the_line_the_writer_is_still_writing(tmp_path: Path) -> None:
    """The WAL is one file appended to while readers read it: the bytes after its last newline are a record not
    whole yet, never an error and never an event."""
    et = EventTrace(str(tmp_path), flush_interval=3600, checkpoint_every=10**9)
    et.record("order_placed", client_order_id="c1", symbol="BTC/USDT", side="buy", amount=1.0)
    (seq,) = et.files.list_wal()
    with open(tmp_path / "wal" / f"{seq:012d}.jsonl", "ab") as fh:  # what a reader can see mid-write
        fh.write(b'{"timestamp":1,"kind":"order_pla')
    assert list(read_trace(str(tmp_path))["client_order_id"]) == ["c1"]
    et._end_wal()
    et.close()
