"""The trace keeps every order, fill, cancel and position event, and readers see consistent snapshots (issue 12:
defects 10, 17, 20). Each test failed before its fix."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_write_ahead_files_are_fsynced_with_their_directory(tmp_path: Path, monkeypatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    et = EventTrace(str(tmp_path), flush_interval=3600)
    synced.clear()
    et.record("order_placed", client_order_id="c1", symbol="BTC/USDT", side="buy", amount=1.0)
    assert len(synced) >= 2  # the file, then the directory holding its new name
    et.close()
    et = EventTrace(str(tmp_path / "nosync"), flush_interval=3600, fsync=False)
    synced.clear()
    et.record("order_placed", client_order_id="c1", symbol="BTC/USDT", side="buy", amount=1.0)
    assert synced == []
    et.close()
