"""Event trace benchmarks: append throughput vs raw zarr, trace_tail at growing sizes, replay, compaction.

Each figure prints one JSON line with its in-run baseline. Peak memory is tracemalloc's peak
(numpy buffers included) for that step.

    .venv/bin/python -m bench.trace_bench [--max-events 10000000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from datetime import timedelta

import numpy as np
import zarr

from planar_core.trace import EventTrace, read_trace, trace_tail
from planar_core.trace.compaction import compact_trace
from planar_core.trace.replay import replay_events
from planar_core.trace.schema import KIND_CODE, STRINGS, columns_from_events

from .common import figure


def columns(n: int, start_ns: int) -> dict[str, np.ndarray]:
    """n synthetic events as ready columns (vectorised; no payload)."""
    rng = np.random.default_rng(1)
    cols = {
        "timestamp": start_ns + np.arange(n, dtype=np.int64) * 1000,
        "kind": rng.choice([KIND_CODE["api_call"], KIND_CODE["order_placed"], KIND_CODE["trade_executed"]], n).astype(np.uint8),
        "side": rng.integers(0, 3, n).astype(np.int8),
    }
    for name, width in STRINGS.items():
        m = np.zeros((n, width), dtype=np.uint8)
        m[:, :7] = np.frombuffer(b"BTCUSDT", dtype=np.uint8)
        cols[name] = m
    for name in ("amount", "price", "fee"):
        cols[name] = rng.random(n)
    cols["payload_end"] = np.zeros(n, dtype=np.int64)
    cols["payload"] = np.zeros(0, dtype=np.uint8)
    return cols


def slice_cols(cols: dict[str, np.ndarray], a: int, b: int) -> dict[str, np.ndarray]:
    out = {k: v[a:b] for k, v in cols.items() if k != "payload"}
    out["payload"] = cols["payload"]
    return out


def bench_append(n: int, batch: int) -> list[dict]:
    cols = columns(n, time.time_ns())
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        with EventTrace(f"{d}/trace") as et:
            for a in range(0, n, batch):
                et.append_columns(slice_cols(cols, a, min(n, a + batch)))
        ours = n / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as d:  # peak memory in a separate pass: tracemalloc slows what it watches
        tracemalloc.start()
        with EventTrace(f"{d}/trace") as et:
            for a in range(0, min(n, 5 * batch), batch):
                et.append_columns(slice_cols(cols, a, min(n, a + batch)))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        t0 = time.perf_counter()  # the same columns, same batches, as raw zarr groups
        for i, a in enumerate(range(0, n, batch)):
            g = zarr.open_group(f"{d}/raw/{i}", mode="w")
            for name, arr in slice_cols(cols, a, min(n, a + batch)).items():
                z = g.create_array(name, shape=arr.shape, dtype=arr.dtype, chunks=(max(1, len(arr)), *arr.shape[1:]), fill_value=0)
                if arr.size:
                    z[...] = arr
        raw = n / (time.perf_counter() - t0)
    rows = [
        figure(
            "trace append_columns (events/s)",
            ours,
            raw,
            "raw zarr arrays, same columns (events/s)",
            goal=">= 1M/s, >= 50 % of raw",
            n=n,
            batch=batch,
            peak_mb=round(peak / 2**20, 1),
        )
    ]
    # the engine's path: record() one event at a time, flush, checkpoint
    m = min(n, 200_000)
    with tempfile.TemporaryDirectory() as d:
        et = EventTrace(f"{d}/trace", flush_interval=3600, max_buffer=50_000, checkpoint_every=10**9)
        t0 = time.perf_counter()
        for _ in range(m):
            et.record("api_call", endpoint="fetch_balance", latency_ms=1.0, result="ok")
        et.close()
        rec = m / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        _ = [{"timestamp": i, "kind": "api_call", "endpoint": "fetch_balance", "latency_ms": 1.0, "result": "ok"} for i in range(m)]
        base = m / (time.perf_counter() - t0)
    rows.append(
        figure(
            "trace record() per event incl. WAL + checkpoint (events/s)", rec, base, "building the same event dicts only (events/s)", n=m
        )
    )
    return rows


def bench_tail(sizes: list[int], segment_rows: int) -> list[dict]:
    rows = []
    base_ms = None
    for n in sizes:
        with tempfile.TemporaryDirectory() as d:
            with EventTrace(f"{d}/trace") as et:
                cols = columns(n, time.time_ns())
                for a in range(0, n, segment_rows):
                    et.append_columns(slice_cols(cols, a, min(n, a + segment_rows)))
                del cols
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                df = trace_tail(f"{d}/trace", n=10_000, as_df=True)
                times.append((time.perf_counter() - t0) * 1000)
            tracemalloc.start()
            trace_tail(f"{d}/trace", n=10_000, as_df=True)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            assert len(df) == min(10_000, n)
            ms = float(np.median(times))
            base_ms = base_ms or ms
            rows.append(
                figure(
                    f"trace_tail(10000) at {n:,} events (ms)",
                    ms,
                    base_ms,
                    f"trace_tail(10000) at {sizes[0]:,} events (ms)",
                    goal="flat",
                    peak_mb=round(peak / 2**20, 1),
                )
            )
    return rows


def bench_replay(n: int) -> dict:
    events = []
    t0_ns = time.time_ns()
    for i in range(n // 4):
        cid = f"c{i}"
        events += [
            {
                "timestamp": t0_ns + 4 * i,
                "kind": "order_placed",
                "client_order_id": cid,
                "symbol": "BTC/USDT",
                "side": "buy",
                "amount": 0.01,
                "price": 100.0,
            },
            {
                "timestamp": t0_ns + 4 * i + 1,
                "kind": "trade_executed",
                "client_order_id": cid,
                "symbol": "BTC/USDT",
                "side": "buy",
                "amount": 0.01,
                "price": 100.0,
                "trade_id": str(i),
            },
            {
                "timestamp": t0_ns + 4 * i + 2,
                "kind": "order_filled",
                "client_order_id": cid,
                "order_id": str(i),
                "symbol": "BTC/USDT",
                "status": "closed",
                "filled": 0.01,
            },
            {
                "timestamp": t0_ns + 4 * i + 3,
                "kind": "balance_updated",
                "payload": {"USDT": {"free": float(i), "used": 0.0, "total": float(i)}},
            },
        ]
    with tempfile.TemporaryDirectory() as d:
        with EventTrace(f"{d}/trace") as et:
            et.append_columns(columns_from_events(events))
        df = read_trace(f"{d}/trace")
        t0 = time.perf_counter()
        state = replay_events(df)
        secs = time.perf_counter() - t0
        tracemalloc.start()
        replay_events(df)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        t0 = time.perf_counter()
        read_trace(f"{d}/trace")
        read_s = time.perf_counter() - t0
    assert len(state.orders) == n // 4 and len(state.trades) == n // 4
    return figure(
        "replay (events/s)",
        len(df) / secs,
        len(df) / read_s,
        "reading the same trace into a DataFrame (events/s)",
        goal=">= 500k/s",
        n=len(df),
        peak_mb=round(peak / 2**20, 1),
    )


def bench_compaction(n: int, segments: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        root = f"{d}/trace"
        with EventTrace(root) as et:
            cols = columns(n, time.time_ns() - n * 1000)
            step = n // segments
            for a in range(0, n, step):
                et.append_columns(slice_cols(cols, a, min(n, a + step)))
            del cols
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report = compact_trace(root, target_rows=1_000_000, market_data_horizon=timedelta(days=1))
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        read_trace(root)
        read_s = time.perf_counter() - t0
    return figure(
        f"compaction of {n:,} events in {segments} segments (s)",
        report.seconds,
        read_s,
        "reading the compacted trace (s)",
        size_ratio=round(report.bytes_after / max(1, report.bytes_before), 3),
        chunks_before=report.chunks_before,
        chunks_after=report.chunks_after,
        bytes_before=report.bytes_before,
        bytes_after=report.bytes_after,
        process_max_rss_mb=round(max(rss0, rss1) / 1024, 1),
    )


def main() -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-events", type=int, default=10_000_000)
    args = parser.parse_args()
    big = args.max_events
    rows = bench_append(min(big, 2_000_000), 100_000)
    rows += bench_tail([s for s in (10_000, 1_000_000, 10_000_000) if s <= big], 100_000)
    rows.append(bench_replay(min(big, 1_000_000)))
    rows.append(bench_compaction(big, 100))
    return rows


if __name__ == "__main__":
    main()
