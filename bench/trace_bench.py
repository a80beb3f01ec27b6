"""Event trace benchmarks at scale: append, record() (market data and durable events), reads into pandas,
trace_tail, by-date extraction, the analysis, streaming compaction, replay. Each figure prints one JSON line with
its baseline measured in the same run (raw Zarr/numpy on the same arrays, or the minimal Python work).

    .venv/bin/python -m bench.trace_bench [--events 10000000] [--root DIR]

The synthetic trace looks like a live one: 40 % API calls, 30 % order events (about eight events per order:
intent, updates, fill, trades), 10 % balance updates with a payload, 10 % market data, 10 % other. Compaction runs in
a child process so its peak memory (max RSS) is its own. Past 20 M events the full read into one DataFrame is
replaced by a by-date read of a 10 M-event window (a whole 100 M-event frame does not fit in this machine's memory
twice, once for each side of the comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from planar_core.runner.heap import frozen_heap
from planar_core.trace import EventTrace, read_trace, trace_tail
from planar_core.trace.analysis import analyze_trading_events
from planar_core.trace.columns import NUMBERS, TEXT, Columns
from planar_core.trace.reading import extract_events_by_date, read_columns
from planar_core.trace.replay import replay_events

from .common import figure

KINDS = ["api_call", "order_placed", "order_updated", "order_filled", "trade_executed", "balance_updated", "ohlcv", "risk_metrics"]
SHARE = [0.40, 0.08, 0.08, 0.06, 0.08, 0.10, 0.10, 0.10]
SEGMENT_ROWS = 100_000


def synthetic(n: int, start_ns: int, first_order: int = 0, seed: int = 1, step_ns: int = 1_000) -> Columns:
    """``n`` events ``step_ns`` apart as ready columns, built vectorised (no per-event Python)."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(len(KINDS), n, p=SHARE).astype(np.int32)
    ordered = np.isin(kind, [1, 2, 3, 4])
    order = first_order + np.arange(n) // 8  # about eight order events per order
    codes = np.full((len(TEXT), n), -1, np.int32)
    codes[TEXT.index("kind")] = kind
    codes[TEXT.index("symbol")] = np.where(kind == 5, -1, rng.integers(0, 4, n))
    codes[TEXT.index("side")] = np.where(ordered, rng.integers(0, 2, n), -1)
    codes[TEXT.index("endpoint")] = np.where(kind == 0, rng.integers(0, 3, n), -1)
    codes[TEXT.index("result")] = np.where(kind == 0, (rng.random(n) < 0.01).astype(np.int32), -1)
    codes[TEXT.index("status")] = np.where(kind == 3, 0, np.where(kind == 2, 1, -1))
    ids = np.unique(order[ordered])
    local = np.searchsorted(ids, order)
    codes[TEXT.index("client_order_id")] = np.where(ordered, local, -1)
    codes[TEXT.index("order_id")] = np.where(ordered & (kind != 1), local, -1)
    trade_rows = np.flatnonzero(kind == 4)
    codes[TEXT.index("trade_id"), trade_rows] = np.arange(len(trade_rows))
    dicts: list[list[str]] = [[] for _ in TEXT]
    dicts[TEXT.index("kind")] = KINDS
    dicts[TEXT.index("symbol")] = ["BTC/USDT", "ETH/USDT", "BTC/USDT:USDT", "SOL/USDT"]
    dicts[TEXT.index("side")] = ["buy", "sell"]
    dicts[TEXT.index("endpoint")] = ["create_order", "fetch_order", "fetch_balance"]
    dicts[TEXT.index("result")] = ["ok", "NetworkError"]
    dicts[TEXT.index("status")] = ["closed", "open"]
    dicts[TEXT.index("client_order_id")] = [f"bench-k3x9-{i}" for i in ids]
    dicts[TEXT.index("order_id")] = [str(10**9 + i) for i in ids]
    dicts[TEXT.index("trade_id")] = [str(first_order * 8 + i) for i in range(len(trade_rows))]
    numbers = np.full((len(NUMBERS), n), np.nan)
    price = 100.0 + rng.standard_normal(n).cumsum() * 0.01
    numbers[NUMBERS.index("amount")] = np.where(ordered, 0.01 * rng.integers(1, 10, n), np.nan)
    numbers[NUMBERS.index("price")] = np.where(ordered | (kind == 6), price, np.nan)
    numbers[NUMBERS.index("expected_price")] = np.where(kind == 1, price * (1 + rng.normal(0, 1e-4, n)), np.nan)
    numbers[NUMBERS.index("fee")] = np.where(kind == 4, 0.001, np.nan)
    numbers[NUMBERS.index("filled")] = np.where(kind == 3, numbers[NUMBERS.index("amount")], np.nan)
    numbers[NUMBERS.index("latency_ms")] = np.where(kind == 0, rng.gamma(2.0, 3.0, n), np.nan)
    templates = [b"{}\n"] * len(KINDS)
    templates[5] = b'{"payload":{"USDT":{"free":1000.0,"used":0.0,"total":1000.0}}}\n'
    templates[7] = b'{"payload":{"equity":1000.0,"exposure":0.1}}\n'
    templates[1] = b'{"order_type":"limit","tif":"GTC"}\n'
    lengths = np.array([len(t) for t in templates], np.int64)[kind]
    ends = np.cumsum(lengths)
    blob = np.frombuffer(b"".join(templates), np.uint8)
    starts = np.concatenate([[0], np.cumsum([len(t) for t in templates])[:-1]])[kind]
    src = np.arange(int(ends[-1]), dtype=np.int64) + np.repeat(starts - (ends - lengths), lengths)
    ts = start_ns + np.arange(n, dtype=np.int64) * step_ns
    return Columns(ts, codes, dicts, numbers, ends, blob[src])


def build(root: str, n: int, span_days: float = 10.0) -> None:
    """A trace of ``n`` events spread evenly over the last ``span_days`` (so compaction's market-data horizon has
    days of old data to thin, as a live trace has), in segments of SEGMENT_ROWS, generated a segment at a time."""
    step = max(1, int(span_days * 86_400e9) // n)
    start = time.time_ns() - n * step - 10**9
    with EventTrace(root, fsync=False) as et:
        for a in range(0, n, SEGMENT_ROWS):
            m = min(SEGMENT_ROWS, n - a)
            et.append_columns(synthetic(m, start + a * step, first_order=a // 8, seed=a, step_ns=step))


def raw_read(root: str, start: int = 0, stop: int | None = None) -> int:
    """The baseline: the same typed arrays (timestamp, codes, numbers) of every segment, read with zarr into numpy
    and concatenated: what any reader of these arrays must at least do."""
    manifest = json.loads(Path(root, "manifest.json").read_text())
    parts: dict[str, list[np.ndarray]] = {"timestamp": [], "codes": [], "numbers": []}
    at = 0
    for seg in manifest["segments"]:
        a, b = max(start - at, 0), min(seg["rows"], (stop if stop is not None else 2**62) - at)
        at += seg["rows"]
        if b <= a:
            continue
        g = zarr.open_group(f"{root}/segments/{seg['name']}", mode="r")
        for name in parts:
            arr = g[name]
            assert isinstance(arr, zarr.Array)
            parts[name].append(np.asarray(arr[..., a:b]))
    merged = {name: np.concatenate(v, axis=-1) for name, v in parts.items()}
    return len(merged["timestamp"])


def timed(fn: object, repeat: int = 3) -> float:
    """Best of ``repeat`` wall times (the machine's noise only ever adds)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best


def bench_reads(root: str, n: int) -> list[dict]:
    rows = []
    if n <= 20_000_000:
        ours = timed(lambda: read_trace(root, payload=False), 2)
        raw = timed(lambda: raw_read(root), 2)
        rows.append(
            figure(
                f"read_trace(payload=False) of {n:,} events into pandas (events/s)",
                n / ours,
                n / raw,
                "raw zarr -> numpy, the same typed arrays (events/s)",
                goal=">= 5M/s, >= 50 % of raw",
                seconds=round(ours, 2),
            )
        )
        with_payload = timed(lambda: read_trace(root), 1)
        rows.append(figure(f"read_trace() with every payload parsed, {n:,} events (events/s)", n / with_payload, n / raw, "raw (as above)"))
    window = min(n, 10_000_000)
    df_all_ts = read_columns(root, None, None, payload=False).timestamp if n <= 20_000_000 else None
    lo_i = (n - window) // 2
    t_lo = pd.Timestamp(int(df_all_ts[lo_i]) if df_all_ts is not None else _ts_at(root, lo_i), tz="UTC")
    t_hi = pd.Timestamp(int(df_all_ts[lo_i + window - 1]) + 1 if df_all_ts is not None else _ts_at(root, lo_i + window - 1) + 1, tz="UTC")
    ours = timed(lambda: extract_events_by_date(root, t_lo, t_hi, payload=False), 2)
    raw = timed(lambda: raw_read(root, lo_i, lo_i + window), 2)
    rows.append(
        figure(
            f"extract_events_by_date of a {window:,}-event window in {n:,} (events/s)",
            window / ours,
            window / raw,
            "raw zarr -> numpy, the same rows (events/s)",
            goal=">= 5M/s, >= 50 % of raw",
        )
    )
    ours = timed(lambda: trace_tail(root, n=10_000, as_df=True), 3)
    raw = timed(lambda: raw_read(root, n - 10_000, n), 3)
    rows.append(
        figure(f"trace_tail(10000) at {n:,} events (ms)", ours * 1000, raw * 1000, "raw zarr, the last 10000 rows (ms)", goal="flat")
    )
    return rows


def _ts_at(root: str, i: int) -> int:
    manifest = json.loads(Path(root, "manifest.json").read_text())
    for seg in manifest["segments"]:
        if i < seg["rows"]:
            arr = zarr.open_group(f"{root}/segments/{seg['name']}", mode="r")["timestamp"]
            assert isinstance(arr, zarr.Array)
            return int(np.asarray(arr[i]))
        i -= seg["rows"]
    raise IndexError(i)


def bench_analysis(root: str, n: int) -> dict:
    t0 = time.perf_counter()
    a = analyze_trading_events(root)
    secs = time.perf_counter() - t0
    read_s = timed(lambda: read_columns(root, payload=False), 1)
    return figure(
        f"analyze_trading_events on {n:,} events (s)",
        secs,
        read_s,
        "reading the typed columns alone (s)",
        goal="< 5 s at 10M",
        orders=a["orders"]["total_orders"],
        fill_rate=round(a["orders"]["fill_rate"], 2),
        trades=a["execution"]["trades"],
    )


# peak memory: VmHWM of the child's own address space (ru_maxrss would carry the parent's peak over the fork)
COMPACT = """
import json, sys
from datetime import timedelta
from planar_core.trace.compaction import compact_trace, map_large_allocations
map_large_allocations()  # as the compaction flow task does
r = compact_trace(sys.argv[1], market_data_horizon=timedelta(days=1))  # the default window
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({**r.as_dict(), "max_rss_mb": hwm / 1024}))
"""


def bench_compaction(root: str, n: int) -> list[dict]:
    out = subprocess.run([sys.executable, "-c", COMPACT, root], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    rows = [
        figure(
            f"streaming compaction of {n:,} events in {r['segments_before']} segments (s)",
            r["seconds"],
            timed(lambda: raw_read(root, 0, min(n, 10_000_000)), 1) * n / min(n, 10_000_000),
            "raw zarr read of the same typed arrays (s)",
            goal="peak memory (VmHWM) <= 400 MB at 10M and 100M, horizon on",
            max_rss_mb=round(r["max_rss_mb"], 1),
            segments_after=r["segments_after"],
            bytes_before=r["bytes_before"],
            bytes_after=r["bytes_after"],
        )
    ]
    if n <= 20_000_000:
        ours = timed(lambda: read_trace(root, payload=False), 2)
        raw = timed(lambda: raw_read(root), 2)
        rows.append(
            figure(f"read_trace(payload=False) of the compacted {n:,} (events/s)", n / ours, n / raw, "raw zarr, same arrays (events/s)")
        )
    return rows


def bench_append(n: int) -> dict:
    cols = synthetic(n, time.time_ns())
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        with EventTrace(f"{d}/trace", fsync=False) as et:
            for a in range(0, n, SEGMENT_ROWS):
                et.append_columns(cols.slice(a, min(n, a + SEGMENT_ROWS)))
        ours = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i, a in enumerate(range(0, n, SEGMENT_ROWS)):  # the same arrays, same batches, as raw zarr groups
            part = cols.slice(a, min(n, a + SEGMENT_ROWS))
            g = zarr.open_group(f"{d}/raw/{i}", mode="w")
            for name in ("timestamp", "codes", "numbers", "payload_end", "payload"):
                arr = getattr(part, name)
                g.create_array(name, shape=arr.shape, dtype=arr.dtype, chunks=arr.shape, fill_value=0)[...] = arr
        raw = n / (time.perf_counter() - t0)
    return figure("trace append_columns (events/s)", ours, raw, "raw zarr arrays, same columns (events/s)", goal=">= 50 % of raw", n=n)


def bench_record(m: int) -> list[dict]:
    """record() of market data, best of three runs (this machine's noise only ever slows a run down)."""
    rows = []
    ours = base = 0.0
    with tempfile.TemporaryDirectory() as d:
        for trial in range(3):
            et = EventTrace(f"{d}/md{trial}", trace_market_data=True, checkpoint_every=100_000, checkpoint_interval=3600)
            t0 = time.perf_counter()
            for i in range(m):
                et.record("ohlcv", symbol="BTC/USDT", timeframe="1m", price=100.0 + i * 1e-4)
            et.close()
            ours = max(ours, m / (time.perf_counter() - t0))
            assert len(read_trace(f"{d}/md{trial}", payload=False)) == m
            sink: list[tuple[object, ...]] = []
            t0 = time.perf_counter()
            for i in range(m):
                sink.append((time.time_ns(), "ohlcv", "BTC/USDT", "1m", 100.0 + i * 1e-4))
            base = max(base, m / (time.perf_counter() - t0))
    rows.append(
        figure(
            "record() market data incl. checkpoints to Zarr (events/s)",
            ours,
            base,
            "appending the same values to a list (events/s)",
            goal=">= 500k/s",
            n=m,
        )
    )
    k = 2_000
    with tempfile.TemporaryDirectory() as d:
        et = EventTrace(f"{d}/one", checkpoint_every=10**9)
        t0 = time.perf_counter()
        for i in range(k):
            et.record("order_placed", client_order_id=f"c{i}", symbol="BTC/USDT", side="buy", amount=0.01, price=100.0)
        one = k / (time.perf_counter() - t0)
        et.close()
        et = EventTrace(f"{d}/grouped", checkpoint_every=10**9)
        t0 = time.perf_counter()
        for g in range(0, k, 10):
            with et.group():
                for i in range(g, g + 10):
                    et.record("order_placed", client_order_id=f"c{i}", symbol="BTC/USDT", side="buy", amount=0.01, price=100.0)
        grouped = k / (time.perf_counter() - t0)
        et.close()
    rows.append(
        figure(
            "record() durable order events, group commit of 10 (events/s)", grouped, one, "one WAL write + fsync per event (events/s)", n=k
        )
    )
    return rows


async def _stall(root: str, k: int, background: bool) -> float:
    """The longest the event loop was held (ms past a 1 ms sleep) while the ``k``-th durable event makes a
    checkpoint of ``k`` order events due and it is written."""
    et = EventTrace(root, checkpoint_every=k, checkpoint_interval=3600, background=background)
    for g in range(0, k - 1, 1000):
        with et.group():
            for i in range(g, min(k - 1, g + 1000)):
                et.record(  # an order event as the engine records one: its exchange answer in the payload
                    "order_placed",
                    client_order_id=f"c{i}",
                    symbol="BTC/USDT",
                    side="buy",
                    amount=0.01,
                    price=100.0 + i,
                    payload={"info": {"orderId": i, "status": "NEW", "type": "LIMIT", "timeInForce": "GTC", "origQty": "0.01"}},
                )
    worst, running = 0.0, True

    async def ticker() -> None:
        nonlocal worst
        while running:
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - t0 - 0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)
    worst = 0.0
    et.record("order_placed", client_order_id="last", symbol="BTC/USDT", side="buy", amount=0.01, price=1.0)
    while et.checkpointing:
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.02)
    running = False
    await task
    et.close()
    return worst * 1e3


def bench_checkpoint_stall(k: int = 50_000, rounds: int = 3) -> dict:
    """A live engine's checkpoint on its own thread against the same checkpoint in the recorder's (the event
    loop's) thread: each side in a block of ``rounds``, the median of each side's longest stall. The heap is frozen
    as the live flow freezes it (runner/heap.py): otherwise a full collection pass over this process's start-up
    objects, which the checkpoint's allocations set off, is most of what is measured."""
    stalls: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as d, frozen_heap():
        for background in (False, True):
            for r in range(rounds):
                stalls[background].append(asyncio.run(_stall(f"{d}/{background}-{r}", k, background)))
    return figure(
        f"longest event-loop stall while a checkpoint of {k:,} order events is written, on its own thread (ms)",
        statistics.median(stalls[True]),
        statistics.median(stalls[False]),
        "the same checkpoint written in the recorder's thread, as before (ms)",
        n=k,
    )


def bench_replay(n: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        build(f"{d}/trace", n)
        df = read_trace(f"{d}/trace")
        t0 = time.perf_counter()
        state = replay_events(df)
        secs = time.perf_counter() - t0
        read_s = timed(lambda: read_trace(f"{d}/trace"), 1)
    return figure(
        "replay (events/s)",
        len(df) / secs,
        len(df) / read_s,
        "reading the same trace with payloads into a DataFrame (events/s)",
        goal=">= 500k/s",
        n=len(df),
        orders=len(state.orders),
    )


def main() -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="size of the big trace (reads, analysis, compaction)")
    parser.add_argument("--root", default=None, help="where to build it (default: a temporary directory)")
    parser.add_argument("--span-days", type=float, default=10.0, help="the big trace's events spread over this many days")
    parser.add_argument("--only", choices=["compaction"], default=None, help="build the big trace and run only this part")
    args = parser.parse_args()
    n = args.events
    rows: list[dict] = []
    if args.only is None:
        rows.append(bench_append(min(n, 2_000_000)))
        rows += bench_record(1_000_000)
        rows.append(bench_checkpoint_stall())
        rows.append(bench_replay(min(n, 1_000_000)))
    with tempfile.TemporaryDirectory(dir=args.root) as d:
        root = f"{d}/trace"
        t0 = time.perf_counter()
        build(root, n, args.span_days)
        print(json.dumps({"built": n, "span_days": args.span_days, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
        if args.only is None:
            rows += bench_reads(root, n)
            if n <= 20_000_000:
                rows.append(bench_analysis(root, n))
        rows += bench_compaction(root, n)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"bench_process_max_rss_mb": round(rss, 1)}), flush=True)
    return rows


if __name__ == "__main__":
    main()
