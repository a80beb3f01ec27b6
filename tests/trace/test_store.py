"""Recording and reading the trace: tail, by date, dtypes, kinds, one writer, fsspec roots."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from planar_core.trace import EventTrace, TraceLockedError, extract_events_by_date, read_trace, reading, trace_tail


def fill(et: EventTrace, n: int, start: int = 0, checkpoint_every: int | None = None) -> None:
    for i in range(start, start + n):
        et.record(
            "order_placed" if i % 2 == 0 else "trade_executed",
            seq=i,
            symbol="ETH/USDT",
            client_order_id=f"c{i}",
            side="buy",
            amount=float(i),
            price=10.0 + i,
            fee=0.01,
        )
        if checkpoint_every and (i + 1) % checkpoint_every == 0:
            et.checkpoint()


def test_tail_as_records_and_dataframe(tmp_path: Path) -> None:
    with EventTrace(str(tmp_path)) as et:
        fill(et, 25, checkpoint_every=10)
        recs = trace_tail(et, n=3)
        assert [r["seq"] for r in recs] == [22, 23, 24] and recs[0]["kind"] == "order_placed" and recs[0]["amount"] == 22.0
        df = trace_tail(et, n=12, as_df=True)
        assert list(df["payload"].map(lambda p: p["seq"])) == list(range(13, 25))
        assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]" and df["amount"].dtype == "float64"
        assert df["timestamp"].is_monotonic_increasing
        assert trace_tail(et, n=2, kind="trade_executed")[-1]["seq"] == 23
    assert [r["seq"] for r in trace_tail(str(tmp_path), 2)] == [23, 24]  # after close, from the root


def test_tail_reads_only_the_newest_segments(tmp_path: Path, monkeypatch) -> None:
    with EventTrace(str(tmp_path)) as et:
        fill(et, 500, checkpoint_every=10)  # 50 segments
        opened = []
        real = reading.read_segment
        monkeypatch.setattr(reading, "read_segment", lambda files, seg, *a, **k: opened.append(seg.name) or real(files, seg, *a, **k))
        assert [r["seq"] for r in trace_tail(et, 15)] == list(range(485, 500))
        assert len(opened) == 2


def test_by_date_binary_searches_segments(tmp_path: Path, monkeypatch) -> None:
    with EventTrace(str(tmp_path)) as et:
        fill(et, 300, checkpoint_every=10)
        df = read_trace(et)
        t = df["timestamp"]
        start, end = t.iloc[123], t.iloc[131]
        opened = []
        real = reading.read_segment
        monkeypatch.setattr(reading, "read_segment", lambda files, seg, *a, **k: opened.append(seg.name) or real(files, seg, *a, **k))
        window = extract_events_by_date(et, start, end)
        assert list(window["payload"].map(lambda p: p["seq"])) == list(range(123, 131))
        assert len(opened) <= 2
        assert len(extract_events_by_date(et, datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC))) == 0
        later = extract_events_by_date(et, t.iloc[290], None)
        assert len(later) == 10


def test_market_data_only_when_enabled(tmp_path: Path) -> None:
    with EventTrace(str(tmp_path / "a")) as et:
        et.record("ohlcv", symbol="BTC/USDT", price=1.0)
        et.record("order_placed", symbol="BTC/USDT", client_order_id="x")
        assert [r["kind"] for r in trace_tail(et, 5)] == ["order_placed"]
    with EventTrace(str(tmp_path / "b"), trace_market_data=True) as et:
        et.record("ohlcv", symbol="BTC/USDT", price=1.0)
        assert trace_tail(et, 5)[0]["kind"] == "ohlcv"


def test_unknown_kinds_keep_their_name(tmp_path: Path) -> None:
    with EventTrace(str(tmp_path)) as et:
        et.record("custom_signal", value=3)
        et.checkpoint()
        assert trace_tail(et, 1)[0]["kind"] == "custom_signal"


def test_one_writer_per_trace_even_across_processes(tmp_path: Path) -> None:
    et = EventTrace(str(tmp_path))
    with pytest.raises(TraceLockedError, match="one writer per trace"):
        EventTrace(str(tmp_path))
    code = "import sys\nfrom planar_core.trace import EventTrace\ntry:\n EventTrace(sys.argv[1])\nexcept Exception as e:\n print(type(e).__name__)"
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "TraceLockedError"
    fill(et, 4)
    et.record("balance_updated", payload={"USDT": 1})  # buffered until the next flush
    assert len(read_trace(str(tmp_path))) == 4  # readers need no lock; order and fill events are flushed at once
    et.flush()
    assert len(read_trace(str(tmp_path))) == 5
    et.close()
    EventTrace(str(tmp_path)).close()  # released


def test_fsspec_url_root() -> None:
    root = "memory://planar-test/trace"
    with EventTrace(root) as et:
        fill(et, 30, checkpoint_every=10)
    df = read_trace(root)
    assert list(df["payload"].map(lambda p: p["seq"])) == list(range(30))


def test_intents_are_durable_before_the_request(tmp_path: Path) -> None:
    et = EventTrace(str(tmp_path), flush_interval=3600)
    et.record("api_call", endpoint="x")
    assert len(read_trace(str(tmp_path))) == 0  # buffered
    et.record("order_placed", client_order_id="c1")
    assert list(read_trace(str(tmp_path))["kind"].astype(str)) == ["api_call", "order_placed"]  # flushed with the intent
    et.close()


@pytest.mark.parametrize("root", ["local", "memory://planar-test/wal-files"])
def test_the_wal_file_count_counts_files_not_appends(tmp_path: Path, root: str) -> None:
    """A local root appends every flush to one open WAL file: its flushes do not count towards ``max_wal_files``
    (each checkpoint is a segment's fixed cost, paid on the flushing order's path). An object store writes one WAL
    file per flush: there the count bounds the files a restart reads."""
    where = str(tmp_path) if root == "local" else root
    with EventTrace(where, checkpoint_every=10**6, checkpoint_interval=1e9, max_wal_files=3) as et:
        for i in range(10):
            et.record("order_placed", client_order_id=f"c{i}")  # durable: one flush each
        segments = len(et.files.load_manifest().segments)
    assert segments == (0 if root == "local" else 3)
    assert list(read_trace(where)["client_order_id"].astype(str)) == [f"c{i}" for i in range(10)]
