"""A restart's look-up of placements older than its lookback (trace/unresolved.placed_records): found in the trace
or its archive, bounded below by the orders' creation, and whole when a checkpoint commits during the read."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from planar_core.trace import EventTrace, unresolved
from planar_core.trace.files import TraceFiles


def trace_with_a_placement(root: Path) -> EventTrace:
    et = EventTrace(str(root), fsync=False)
    et.record("order_placed", symbol="BTC/USDT", client_order_id="mine-1", order_type="trailing_stop", trailing_percent=1.0)
    et.flush()
    et.checkpoint()
    for _ in range(5):
        et.record("api_call", endpoint="x")
    et.flush()
    et.checkpoint()
    return et


def test_found_whole_when_a_checkpoint_commits_during_the_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    et = trace_with_a_placement(tmp_path)
    before = time.time_ns()
    real = unresolved._segment_parts
    reads = []

    def racing(files: TraceFiles, segs: list) -> list:  # another writer of the account's trace checkpoints meanwhile
        out = real(files, segs)
        reads.append(1)
        if len(reads) == 1:
            et.record("api_call", endpoint="y")
            et.flush()
            et.checkpoint()
        return out

    monkeypatch.setattr(unresolved, "_segment_parts", racing)
    found = unresolved.placed_records(et.files, ["mine-1"], before)
    assert len(reads) > 1 and [r["order_type"] for r in found] == ["trailing_stop"]


def test_the_read_stops_at_the_orders_creation(tmp_path: Path) -> None:
    et = trace_with_a_placement(tmp_path)
    before = time.time_ns()
    assert unresolved.placed_records(et.files, ["mine-1"], before, after_ns=before - 1) == []  # created after: not there
    assert [r["client_order_id"] for r in unresolved.placed_records(et.files, ["mine-1"], before, after_ns=0)] == ["mine-1"]
