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
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np
import pandas as pd
import zarr

from ..model.types import Json
from .columns import NUMBERS, TEXT, Columns
from .files import (
    Manifest,
    Segment,
    TraceFiles,
    column,
    open_segment,
    read_segment,
    read_segments_into,
    segment_dicts,
    segment_read,
    stored_names,
)

if TYPE_CHECKING:
    from .store import EventTrace

COLUMNS = ["timestamp", *TEXT, *NUMBERS, "payload"]
READ_THREADS = min(4, os.cpu_count() or 1)


def _files(et: EventTrace | TraceFiles | str) -> TraceFiles:
    if isinstance(et, TraceFiles):
        return et
    if isinstance(et, str):
        return TraceFiles(et, create=False)
    if not et.closed:
        et.sync()  # the writer's own view includes what it has buffered
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
        # whole lines only: the writer appends to its open file, and the line after the last newline may be
        # one it is still writing (or one a killed writer left torn)
        events.extend(json.loads(line) for line in raw.split(b"\n")[:-1] if line)
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


def to_records(df: pd.DataFrame) -> list[Json]:
    """Events as dicts, one per row: the typed fields an event has plus its payload's fields."""
    out = []
    names = [c for c in df.columns if c not in ("timestamp", "payload")]
    has_payload = "payload" in df.columns
    for row in df.itertuples(index=False):
        rec: Json = {"timestamp": row.timestamp}  # a pd.Timestamp: a datetime that keeps nanoseconds
        for name in names:
            v = getattr(row, name)
            if isinstance(v, str):
                rec[name] = v
            elif isinstance(v, float) and not np.isnan(v):
                rec[name] = v
        if has_payload and isinstance(row.payload, dict):
            rec.update(row.payload)
        out.append(rec)
    return out


def trace_tail(
    et: EventTrace | TraceFiles | str, n: int = 10, as_df: bool = False, kind: str | None = None, payload: bool = True
) -> pd.DataFrame | list[Json]:
    """The last ``n`` events (optionally of one kind). Reads only the newest WAL files and segments (and, with
    ``kind``, only the kind column of older ones)."""
    files = _files(et)
    df = consistent(files, lambda m: _tail(files, m, n, kind, payload)).frame(payload=payload)
    return df if as_df else to_records(df)


def _tail(files: TraceFiles, m: Manifest, n: int, kind: str | None, payload: bool) -> Columns:
    parts: list[Columns] = []
    wal = Columns.from_events(_wal_events(files, m))
    if kind is not None:
        wal = wal.take(wal.rows_of("kind", [kind]))
    parts.append(wal.slice(max(0, len(wal) - n), len(wal)))
    have = len(parts[0])
    for seg in reversed(m.segments):
        if have >= n:
            break
        if kind is None:
            part = read_segment(files, seg, max(0, seg.rows - (n - have)), payload=payload)
        else:
            part = _of_kind(files, seg, kind, n - have, payload)
        parts.insert(0, part)
        have += len(part)
    out = Columns.concat(parts)
    return out.slice(max(0, len(out) - n), len(out))


def _of_kind(files: TraceFiles, seg: Segment, kind: str, last: int, payload: bool) -> Columns:
    """The last ``last`` events of one kind in a segment: the kind codes first, then only the rows that match."""
    if seg.schema == 1:
        cols = read_segment(files, seg)
        cols = cols.take(cols.rows_of("kind", [kind]))
        return cols.slice(max(0, len(cols) - last), len(cols))
    with segment_read(files, seg):
        g = open_segment(files, seg)
        stored = stored_names(g.attrs)[0]
        kinds = segment_dicts(g)[stored.index("kind")]
        if kind not in kinds:
            return Columns.empty()
        rows = np.flatnonzero(column(g, "codes")[stored.index("kind")] == kinds.index(kind))[-last:]
    if not len(rows):
        return Columns.empty()
    cols = read_segment(files, seg, int(rows[0]), int(rows[-1]) + 1, payload=payload)
    return cols.take(rows - rows[0])


TimeBound = datetime | str | int | pd.Timestamp | None
"""A window's bound: a datetime (naive: UTC), an ISO string, nanoseconds since the epoch, or None (open)."""


def _to_ns(x: datetime | str | int | pd.Timestamp) -> int:
    ts = pd.Timestamp(x)
    if ts.tzinfo is None:
        ts = ts.tz_localize(UTC)
    return int(ts.value)


def extract_events_by_date(
    et: EventTrace | TraceFiles | str, start: TimeBound = None, end: TimeBound = None, kind: str | None = None, payload: bool = True
) -> pd.DataFrame:
    """Events with start <= timestamp < end, found by binary search over segment bounds, then within segments.
    ``payload=False`` reads the typed columns only (the fast path: see docs/trace.md)."""
    return read_columns(et, start, end, kind, payload).frame(payload=payload)


def read_columns(
    et: EventTrace | TraceFiles | str, start: TimeBound = None, end: TimeBound = None, kind: str | None = None, payload: bool = True
) -> Columns:
    """What ``extract_events_by_date`` reads, before it becomes a DataFrame."""
    files = _files(et)
    return consistent(files, lambda m: _between(files, m, start, end, kind, payload))


def _between(files: TraceFiles, m: Manifest, start: TimeBound, end: TimeBound, kind: str | None, payload: bool) -> Columns:
    lo = _to_ns(start) if start is not None else -(2**63)
    hi = _to_ns(end) if end is not None else 2**63 - 1
    segs = m.segments
    first = bisect.bisect_left([s.t_max for s in segs], lo)
    wanted = [seg for seg in segs[first:] if seg.t_min < hi]

    def rows(seg: Segment) -> tuple[int, int]:
        if lo <= seg.t_min and seg.t_max < hi:
            return 0, seg.rows
        with segment_read(files, seg):
            ts = open_segment(files, seg)["timestamp"]
            if not isinstance(ts, zarr.Array):
                raise ValueError(f"segment {seg.name}: timestamp is not an array")
            return _search(ts, lo, seg.rows), _search(ts, hi, seg.rows)

    wal = Columns.from_events(_wal_events(files, m))
    if len(wal):
        wal = wal.take((wal.timestamp >= lo) & (wal.timestamp < hi))
    if kind is not None:  # few rows of many: each segment's are selected as it is read

        def of_kind(seg: Segment) -> Columns:
            part = read_segment(files, seg, *rows(seg), payload=payload)
            return part.take(part.rows_of("kind", [kind]))

        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            parts = list(pool.map(of_kind, wanted))
        return Columns.concat([*parts, wal.take(wal.rows_of("kind", [kind]))])
    # every segment decoded straight into its place in the result (see files.read_segments_into)
    spans = [(seg, *rows(seg)) for seg in wanted]

    def fill(views: list[Columns]) -> list[Columns]:
        return [*read_segments_into(files, spans, views[:-1], payload), views[-1].filled_from(wal)]

    return Columns.laid_out([b - a for _, a, b in spans] + [len(wal)], fill)


class _Column(Protocol):
    """A stored array as ``_search`` reads it (a Zarr array): its chunk shape and its rows."""

    @property
    def chunks(self) -> tuple[int, ...]: ...
    def __getitem__(self, selection: slice | int, /) -> object: ...


def _search(ts: _Column, value: int, rows: int) -> int:
    """First row with timestamp >= value: bisect over chunk boundaries, then inside one chunk."""
    chunk = ts.chunks[0]
    starts = list(range(0, rows, chunk))
    lo, hi = 0, len(starts)
    while lo < hi:  # the last chunk whose first timestamp is < value
        mid = (lo + hi) // 2
        if int(np.asarray(ts[starts[mid]])) < value:
            lo = mid + 1
        else:
            hi = mid
    c = max(0, lo - 1)
    block = np.asarray(ts[starts[c] : min(rows, starts[c] + chunk)])
    return starts[c] + int(np.searchsorted(block, value, side="left"))


def read_trace(et: EventTrace | TraceFiles | str, payload: bool = True) -> pd.DataFrame:
    """Every event, in order."""
    return extract_events_by_date(et, payload=payload)
