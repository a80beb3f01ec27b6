"""Compaction merges segments, thins old market data, archives old events, atomically."""

from __future__ import annotations

import random
import time
from datetime import timedelta
from pathlib import Path

from planar_core.trace import EventTrace, read_trace
from planar_core.trace.columns import Columns
from planar_core.trace.compaction import compact_trace

from .killing import kill_midway


def synthetic(n: int, start_ns: int, step_ns: int, market_every: int = 2) -> Columns:
    events = []
    for i in range(n):
        kind = "ohlcv" if i % market_every == 0 else "order_placed"
        events.append(
            {
                "timestamp": start_ns + i * step_ns,
                "kind": kind,
                "symbol": "BTC/USDT",
                "client_order_id": f"c{i}",
                "price": 100.0 + i,
                "seq": i,
            }
        )
    return Columns.from_events(events)


def test_compaction_merges_thins_and_archives(tmp_path: Path) -> None:
    now = time.time_ns()
    day = 86_400 * 10**9
    with EventTrace(str(tmp_path)) as et:
        # 3 days of history, one event every 10 s, written as 60 small segments
        n, step = 3 * 8640, 10 * 10**9
        cols = synthetic(n, now - 3 * day, step)
        for a in range(0, n, n // 60):
            et.append_columns(cols.slice(a, min(n, a + n // 60)))
        et.record("order_placed", client_order_id="live-1")
        before = read_trace(et)
        report = compact_trace(
            et, target_rows=10_000, market_data_horizon=timedelta(days=1), downsample=timedelta(minutes=1), retention=timedelta(days=2)
        )
        after = read_trace(et)
    assert report.segments_before == 61 and report.segments_after == 2
    assert report.chunks_after < report.chunks_before and report.bytes_after < report.bytes_before
    old_md_before = int(((before["kind"] == "ohlcv") & (before["timestamp"].astype("int64") < now - day)).sum())
    old_md_after = int(((after["kind"] == "ohlcv") & (after["timestamp"].astype("int64") < now - day)).sum())
    assert old_md_after < old_md_before / 2  # one per minute instead of six
    assert (after["timestamp"].astype("int64") >= now - 2 * day).all()  # older events went to the archive
    assert report.archived > 0 and len(read_trace(str(tmp_path / "archive"))) == report.archived
    orders_before = set(
        before.loc[(before["kind"] == "order_placed") & (before["timestamp"].astype("int64") >= now - 2 * day), "client_order_id"]
    )
    assert orders_before == set(after.loc[after["kind"] == "order_placed", "client_order_id"])  # no order event lost
    assert after["timestamp"].is_monotonic_increasing


CRASHER = """
import sys, time
from datetime import timedelta
from planar_core.trace.compaction import compact_trace
print("start", flush=True)
compact_trace(sys.argv[1], target_rows=500, market_data_horizon=timedelta(seconds=0), downsample=None)
print("done", flush=True)
"""


def test_crash_during_compaction_leaves_the_old_trace(tmp_path: Path) -> None:
    rng = random.Random(7)
    for it in range(4):
        root = tmp_path / f"t{it}"
        with EventTrace(str(root)) as et:
            for i in range(25):
                for j in range(50):
                    et.record("ohlcv" if j % 2 else "order_placed", seq=i * 50 + j, symbol="X")
                et.checkpoint()
        expected = len(read_trace(str(root)))
        kill_midway(["-c", CRASHER, str(root)], rng, 0.6)
        df = read_trace(str(root))
        seqs = list(df["payload"].map(lambda p: p["seq"]))
        intents = [s for s in seqs if s % 2 == 0]
        assert intents == list(range(0, 1250, 2))  # every order event, once, in order
        assert len(df) == expected  # the old trace whole, or the compacted one whole (market data is not traced here)
