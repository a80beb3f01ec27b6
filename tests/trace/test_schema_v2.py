"""Schema 2: typed columns read vectorised, a trace written by version 1 read as it was, and migrated by
compaction."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planar_core.trace import EventTrace, read_trace, trace_tail
from planar_core.trace.analysis import analyze_trading_events
from planar_core.trace.columns import NUMBERS, TEXT, Columns
from planar_core.trace.compaction import compact_trace
from planar_core.trace.files import parse_dicts
from planar_core.trace.reading import extract_events_by_date, to_records

V1 = Path(__file__).parents[1] / "fixtures" / "trace-v1"  # written by the version-1 code (commit c994d15)


def v1_copy(tmp_path: Path) -> str:
    root = tmp_path / "trace"
    shutil.copytree(V1, root)
    return str(root)


def schemas(root: str) -> list[int]:
    return [s["schema"] if "schema" in s else 1 for s in json.loads((Path(root) / "manifest.json").read_text())["segments"]]


def test_typed_columns_round_trip(tmp_path: Path) -> None:
    events = [
        {
            "timestamp": 1,
            "kind": "order_placed",
            "client_order_id": "a",
            "side": "buy",
            "amount": 1.5,
            "expected_price": 10.0,
            "tif": "GTC",
        },
        {"timestamp": 2, "kind": "api_call", "endpoint": "create_order", "latency_ms": 3.0, "result": "ok", "code": None},
        {"timestamp": 3, "kind": "order_filled", "client_order_id": "a", "order_id": 77, "status": "closed", "filled": 1.5},
        {"timestamp": 4, "kind": "balance_updated", "payload": {"USDT": {"total": 5.0}}},
        {
            "timestamp": 5,
            "kind": "order_placed",
            "client_order_id": "b",
            "side": "sell",
            "amount": 2.0,
            "expected_price": 11.0,
            "tif": "IOC",
        },
        {"timestamp": 6, "kind": "x_new_kind", "flag": True},
        {"timestamp": 7, "kind": "x_new_kind", "flag": 1},
    ]
    cols = Columns.from_events(events)
    df = cols.frame()
    assert list(df.columns) == ["timestamp", *TEXT, *NUMBERS, "payload"]
    assert all(isinstance(df[c].dtype, pd.CategoricalDtype) for c in TEXT)
    assert df["order_id"].iloc[2] == "77" and pd.isna(df["order_id"].iloc[0])  # text, absent is missing (not "")
    assert df["filled"].iloc[2] == 1.5 and np.isnan(df["filled"].iloc[0])
    back = to_records(df)
    for sent, got in zip(events, back):
        want = {k: (str(v) if k in TEXT else v) for k, v in sent.items() if k != "timestamp"}
        assert {k: v for k, v in got.items() if k != "timestamp"} == want
    assert back[5]["flag"] is True and back[6]["flag"] == 1 and back[6]["flag"] is not True  # True and 1 kept apart
    assert cols.field("tif").tolist() == ["GTC", None, None, None, "IOC", None, None]
    assert cols.frame(payload=["balance_updated"])["payload"].tolist()[2:4] == [None, {"payload": {"USDT": {"total": 5.0}}}]


def test_a_version_1_trace_reads_as_it_was_written(tmp_path: Path) -> None:
    root = v1_copy(tmp_path)
    assert set(schemas(root)) == {1}
    df = read_trace(root)
    assert len(df) == 101
    orders = df[df["kind"] == "order_placed"]
    assert list(orders["client_order_id"]) == [f"v1-{i}" for i in range(20)]
    assert list(orders["expected_price"]) == [100.0 + i for i in range(20)]  # a payload field in v1, typed now
    fills = df[df["kind"] == "order_filled"]
    assert list(fills["status"].astype(str)) == ["closed"] * 20 and list(fills["order_id"]) == [str(1000 + i) for i in range(20)]
    calls = df[df["kind"] == "api_call"]
    assert list(calls["latency_ms"]) == [1.5 + i for i in range(20)] and set(calls["result"].astype(str)) == {"ok"}
    assert list(df.loc[df["kind"] == "some_future_kind", "payload"].map(lambda p: p["note"])) == ["kept by name"] * 20
    assert [p["seq"] for p in df["payload"]] == [i for i in range(20) for _ in range(5)] + [99]
    a = analyze_trading_events(root)
    assert a["orders"]["fill_rate"] == 100.0 and a["execution"]["trades"] == 20


def test_writing_onto_a_version_1_trace_then_compaction_migrates_it(tmp_path: Path) -> None:
    root = v1_copy(tmp_path)
    before = to_records(read_trace(root))
    with EventTrace(root) as et:  # a version-2 writer appends version-2 segments next to the old ones
        et.record("order_placed", client_order_id="v2-0", symbol="BTC/USDT", side="buy", amount=1.0, seq=100)
    assert set(schemas(root)) == {1, 2}
    mixed = to_records(read_trace(root))
    assert mixed[:-1] == before and mixed[-1]["client_order_id"] == "v2-0"
    report = compact_trace(root, target_rows=40, market_data_horizon=None)
    assert set(schemas(root)) == {2} and report.segments_after == 3
    assert to_records(read_trace(root)) == mixed  # the same events, event for event
    assert [r["seq"] for r in trace_tail(root, 3)] == [19, 99, 100]


def test_segments_read_back_as_written_in_both_dictionary_formats(tmp_path: Path) -> None:
    """Text values go through a segment's dictionary: one value per line, or a JSON document when a value holds a
    newline; several segments' dictionaries merge into one, and a window cut inside segments reads the same."""
    batches = [
        [
            {"timestamp": 1, "kind": "order_placed", "client_order_id": "a", "symbol": "BTC/USDT", "side": "buy", "amount": 1.0},
            {"timestamp": 2, "kind": "api_call", "endpoint": "create_order", "result": "", "latency_ms": 4.0},
        ],
        [
            {"timestamp": 3, "kind": "order_filled", "client_order_id": "a", "order_id": "7", "status": "closed", "tif": "GTC"},
            {"timestamp": 4, "kind": "api_call", "endpoint": "fetch_order", "result": "line one\nline two"},
        ],
        [{"timestamp": 5, "kind": "order_placed", "client_order_id": "b", "symbol": "ETH/USDT", "side": "sell", "amount": 2.0}],
    ]
    root = str(tmp_path / "trace")
    with EventTrace(root) as et:
        for batch in batches:
            et.append_columns(Columns.from_events(batch))
    manifest = json.loads((Path(root) / "manifest.json").read_text())
    formats = [
        "dict_sizes" in json.loads((Path(root) / "segments" / s["name"] / "zarr.json").read_text())["attributes"]
        for s in manifest["segments"]
    ]
    assert formats == [True, False, True]  # the segment with a newline in a value keeps JSON
    events = [e for batch in batches for e in batch]

    def plain(records: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "timestamp"} for r in records]

    assert plain(to_records(read_trace(root))) == plain(events)
    window = extract_events_by_date(root, pd.Timestamp(2, tz="UTC"), pd.Timestamp(5, tz="UTC"))
    assert plain(to_records(window)) == plain(events[1:4])
    typed = extract_events_by_date(root, pd.Timestamp(2, tz="UTC"), pd.Timestamp(5, tz="UTC"), payload=False)
    assert "payload" not in typed and typed["client_order_id"].tolist()[1] == "a" and typed["result"].tolist()[2] == "line one\nline two"


def test_a_segment_with_other_columns_reads_by_name(tmp_path: Path) -> None:
    """A segment written by another version (a text column more, a number column fewer, in another order) reads
    by column name: the extra column is ignored, the missing one is absent (NaN), the others are unchanged."""
    import zarr

    events = [
        {"timestamp": 1, "kind": "order_placed", "client_order_id": "a", "side": "buy", "amount": 1.5, "latency_ms": 3.0},
        {"timestamp": 2, "kind": "order_filled", "client_order_id": "a", "order_id": "7", "filled": 1.5, "price": 10.0},
    ]
    root = str(tmp_path / "trace")
    with EventTrace(root) as et:
        et.append_columns(Columns.from_events(events))
    (seg,) = json.loads((Path(root) / "manifest.json").read_text())["segments"]
    g = zarr.open_group(str(Path(root) / "segments" / seg["name"]), mode="r+")
    codes, numbers = np.asarray(g["codes"][...]), np.asarray(g["numbers"][...])
    text = ["venue", *reversed(TEXT)]  # a column this version does not know, the others reversed
    nums = [n for n in NUMBERS if n != "latency_ms"][::-1]  # one this version has, missing
    dicts = [["binance"], *reversed(parse_dicts(bytes(np.asarray(g["dicts"][...])), g.attrs.get("dict_sizes")))]
    new_codes = np.vstack([np.zeros((1, codes.shape[1]), np.int32), codes[::-1]])
    new_numbers = np.stack([numbers[NUMBERS.index(n)] for n in nums])
    for name, arr in (("codes", new_codes), ("numbers", new_numbers)):
        del g[name]
        g.create_array(name, shape=arr.shape, dtype=arr.dtype, chunks=arr.shape)[...] = arr
    del g["dicts"]
    blob = np.frombuffer(json.dumps(dicts).encode(), np.uint8)
    g.create_array("dicts", shape=blob.shape, dtype=blob.dtype)[...] = blob
    g.attrs.update({"text": text, "numbers": nums})
    g.attrs.pop("dict_sizes", None)

    df = read_trace(root)
    assert "venue" not in df and np.isnan(df["latency_ms"]).all()
    want = [{k: v for k, v in e.items() if k not in ("timestamp", "latency_ms")} for e in events]
    assert [{k: v for k, v in r.items() if k not in ("timestamp", "latency_ms")} for r in to_records(df)] == want


def test_many_version_1_segments_read_at_once(tmp_path: Path) -> None:
    """Version-1 segments are read through Zarr's blocking API. Forty of them in one read must not be started from
    Zarr's own thread pool: blocked there, they would hold every thread the decoding they wait for needs. The read
    runs in a child process, so that a deadlock fails this test instead of stalling the suite."""
    root = Path(v1_copy(tmp_path))
    manifest = json.loads((root / "manifest.json").read_text())
    segments = []
    for copy in range(10):
        for seg in manifest["segments"]:
            name = f"{seg['name']}-{copy}"
            shutil.copytree(root / "segments" / seg["name"], root / "segments" / name)
            segments.append({**seg, "name": name})
    (root / "manifest.json").write_text(json.dumps({**manifest, "segments": segments}))
    read = "import sys; from planar_core.trace import read_trace; print(len(read_trace(sys.argv[1])))"
    try:
        out = subprocess.run([sys.executable, "-c", read, str(root)], capture_output=True, text=True, timeout=60, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail("the read of 40 version-1 segments is stuck (its readers hold the threads their decoding needs)")
    assert int(out.stdout) == 10 * sum(s["rows"] for s in manifest["segments"])
