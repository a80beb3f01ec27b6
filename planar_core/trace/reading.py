"""Reading a trace: the last n events, events between two dates, everything as a DataFrame.

Readers never take a lock. A read is a consistent snapshot: it loads ``manifest.json``, reads the segments it
lists and the WAL files it has not consumed, then loads the manifest again; if a checkpoint or a compaction
committed in between (the generation changed, or a file vanished), the read starts over. Without the second
look, a reader that loaded the manifest before a checkpoint and listed the WAL after it would miss every
checkpointed event.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import zarr

from ..model.json import obj
from ..model.types import Json
from .files import Manifest, Segment, TraceFiles, column
from .schema import KINDS, SIDE_NAMES, STRINGS, decode_strings

if TYPE_CHECKING:
    from .store import EventTrace

COLUMNS = ["timestamp", "kind", "symbol", "order_id", "client_order_id", "side", "amount", "price", "fee", "payload"]
CORE_COLUMNS = frozenset(COLUMNS) - {"payload"}


def _files(et: EventTrace | TraceFiles | str) -> TraceFiles:
    if isinstance(et, TraceFiles):
        return et
    if isinstance(et, str):
        return TraceFiles(et, create=False)
    if not et.closed:
        et.flush()  # the writer's own view includes what it has buffered
    return et.files


class _Moved(Exception):
    """The trace changed under a read (a file of the snapshot vanished)."""


def _wal_events(files: TraceFiles, m: Manifest) -> list[Json]:
    events: list[Json] = []
    for seq in files.list_wal():
        if seq <= m.wal_consumed:
            continue
        raw = files.read(f"wal/{seq:012d}.jsonl")
        if raw is None:  # consumed by a checkpoint since we listed: the snapshot is stale, read again
            raise _Moved(f"wal/{seq}")
        events.extend(json.loads(line) for line in raw.decode().splitlines() if line)
    return events


T = TypeVar("T")


def consistent(files: TraceFiles, read: Callable[[Manifest], T], attempts: int = 20) -> T:
    """Run ``read(manifest)`` until no checkpoint or compaction committed while it ran."""
    for _ in range(attempts):
        m = files.load_manifest()
        try:
            out = read(m)
        except Exception:  # a segment or WAL file of this snapshot was removed meanwhile
            if files.load_manifest().generation == m.generation:
                raise
            continue
        if files.load_manifest().generation == m.generation:
            return out
    raise RuntimeError(f"trace {files.root} kept changing during {attempts} read attempts")


def _segment_frame(files: TraceFiles, seg: Segment, start: int = 0, stop: int | None = None) -> pd.DataFrame:
    stop = seg.rows if stop is None else stop
    g = zarr.open_group(files.url(f"segments/{seg.name}"), mode="r")
    if stop <= start:
        return pd.DataFrame(columns=COLUMNS)
    rows = slice(start, stop)
    ends = column(g, "payload_end", slice(max(0, start - 1), stop))
    first = 0 if start == 0 else int(ends[0])
    ends = ends[1:] if start > 0 else ends
    blob = bytes(column(g, "payload", slice(first, int(ends[-1])))) if len(ends) and int(ends[-1]) > first else b""
    offsets = np.concatenate([[0], ends - first]).astype(np.int64)
    payload = [json.loads(blob[offsets[i] : offsets[i + 1]]) if offsets[i + 1] > offsets[i] else {} for i in range(len(ends))]
    data: Json = {
        "timestamp": pd.to_datetime(column(g, "timestamp", rows), utc=True),
        "kind": pd.Categorical.from_codes(column(g, "kind", rows).astype(np.int16), categories=pd.Index(list(KINDS))),
    }
    for name in STRINGS:
        data[name] = decode_strings(column(g, name, rows))
    data["side"] = np.array([SIDE_NAMES[int(x)] for x in column(g, "side", rows)], dtype=object)
    for name in ("amount", "price", "fee"):
        data[name] = column(g, name, rows)
    data["payload"] = payload
    df = pd.DataFrame(data)
    other = df["kind"] == "other"
    if other.any():  # kinds this schema version does not list keep their name in the payload
        df["kind"] = df["kind"].astype(object)
        df.loc[other, "kind"] = [p.get("kind", "other") for p in df.loc[other, "payload"]]
    return df


def _events_frame(events: list[Json]) -> pd.DataFrame:
    if not events:
        return pd.DataFrame(columns=COLUMNS)
    rows = []
    for e in events:
        core = {c: e.get(c) for c in COLUMNS if c != "payload"}
        core["payload"] = {k: v for k, v in e.items() if k not in CORE_COLUMNS}
        rows.append(core)
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["timestamp"] = pd.to_datetime(df["timestamp"].astype("int64"), utc=True)
    for name in ("amount", "price", "fee"):
        df[name] = pd.to_numeric(df[name], errors="coerce").astype("float64")
    for name in STRINGS:
        df[name] = df[name].fillna("").astype(object)
    return df


def _finish(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        df = pd.DataFrame(columns=COLUMNS)
        df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
        return df
    df = pd.concat(frames, ignore_index=True)
    df["kind"] = df["kind"].astype(str).astype("category")
    return df


def to_records(df: pd.DataFrame) -> list[Json]:
    """The seed's event dicts: core columns plus the payload's fields, empty values dropped."""
    out = []
    for row in df.itertuples(index=False):
        rec: Json = {"timestamp": row.timestamp, "kind": str(row.kind)}  # a pd.Timestamp: a datetime that keeps nanoseconds
        for name in ("symbol", "order_id", "client_order_id", "side"):
            v = getattr(row, name)
            if isinstance(v, str) and v:
                rec[name] = v
        for name in ("amount", "price", "fee"):
            v = getattr(row, name)
            if v is not None and not (isinstance(v, float) and np.isnan(v)):
                rec[name] = float(v)
        rec.update(obj(row.payload))
        out.append(rec)
    return out


def trace_tail(et: EventTrace | TraceFiles | str, n: int = 10, as_df: bool = False, kind: str | None = None) -> pd.DataFrame | list[dict]:
    """The last ``n`` events (optionally of one kind). Reads only the newest WAL files and segments."""
    files = _files(et)
    return consistent(files, lambda m: _tail(files, m, n, as_df, kind))


def _tail(files: TraceFiles, m: Manifest, n: int, as_df: bool, kind: str | None) -> pd.DataFrame | list[dict]:
    frames: list[pd.DataFrame] = []
    wal = _events_frame(_wal_events(files, m))
    if kind is not None:
        wal = wal[wal["kind"] == kind]
    frames.insert(0, wal.tail(n))
    have = len(frames[0])
    for seg in reversed(m.segments):
        if have >= n:
            break
        if kind is None:
            part = _segment_frame(files, seg, max(0, seg.rows - (n - have)))
        else:  # filtering by kind may need the whole segment's kind column, read in blocks from the end
            part = _segment_frame(files, seg)
            part = part[part["kind"] == kind].tail(n - have)
        frames.insert(0, part)
        have += len(part)
    df = _finish(frames).tail(n).reset_index(drop=True)
    return df if as_df else to_records(df)


def _to_ns(x: datetime | str | int | pd.Timestamp) -> int:
    ts = pd.Timestamp(x)
    if ts.tzinfo is None:
        ts = ts.tz_localize(UTC)
    return int(ts.value)


def extract_events_by_date(et: EventTrace | TraceFiles | str, start: Any = None, end: Any = None, kind: str | None = None) -> pd.DataFrame:
    """Events with start <= timestamp < end, found by binary search over segment bounds, then within segments."""
    files = _files(et)
    return consistent(files, lambda m: _between(files, m, start, end, kind))


def _between(files: TraceFiles, m: Manifest, start: Any, end: Any, kind: str | None) -> pd.DataFrame:
    lo = _to_ns(start) if start is not None else -(2**63)
    hi = _to_ns(end) if end is not None else 2**63 - 1
    segs = m.segments
    first = bisect.bisect_left([s.t_max for s in segs], lo)
    frames = []
    for seg in segs[first:]:
        if seg.t_min >= hi:
            break
        g = zarr.open_group(files.url(f"segments/{seg.name}"), mode="r")
        ts = g["timestamp"]
        a = _search(ts, lo, seg.rows)
        b = _search(ts, hi, seg.rows)
        frames.append(_segment_frame(files, seg, a, b))
    wal = _events_frame(_wal_events(files, m))
    if len(wal):
        ns = wal["timestamp"].astype("int64")
        frames.append(wal[(ns >= lo) & (ns < hi)])
    df = _finish(frames)
    if kind is not None:
        df = df[df["kind"] == kind].reset_index(drop=True)
    return df


def _search(ts: Any, value: int, rows: int) -> int:
    """First row with timestamp >= value: bisect over chunk boundaries, then inside one chunk."""
    chunk = ts.chunks[0]
    starts = list(range(0, rows, chunk))
    lo, hi = 0, len(starts)
    while lo < hi:  # the last chunk whose first timestamp is < value
        mid = (lo + hi) // 2
        if int(ts[starts[mid]]) < value:
            lo = mid + 1
        else:
            hi = mid
    c = max(0, lo - 1)
    block = ts[starts[c] : min(rows, starts[c] + chunk)]
    return starts[c] + int(np.searchsorted(block, value, side="left"))


def read_trace(et: EventTrace | TraceFiles | str) -> pd.DataFrame:
    """Every event, in order."""
    return extract_events_by_date(et)
