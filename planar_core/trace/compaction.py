"""Compaction: merge many small segments into few large ones, thin old market data, archive old events, and
rewrite version-1 segments as version 2 (the schema migration).

Streaming: segments are read in windows of ``target_rows`` rows and written out as soon as a full segment's
worth is kept, so memory is bounded by about two windows whatever the trace's size.

Atomic by construction: new segments are written first, then the manifest is swapped in one write under the
manifest lock; old segments are deleted only after the swap. A crash at any point leaves either the old manifest
(and some orphan new segments nobody reads) or the new one. Segments the writer commits while compaction runs are
kept: the swap only replaces the segments it read.
"""

from __future__ import annotations

import ctypes
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from zarr.core.common import JSON

from ..model.types import Json
from .columns import TEXT, Columns
from .files import MANIFEST, Manifest, Segment, TraceFiles, read_segment, write_segment
from .schema import MARKET_DATA_KINDS
from .store import EventTrace


@dataclass
class CompactionReport:
    bytes_before: int
    bytes_after: int
    chunks_before: int
    chunks_after: int
    segments_before: int
    segments_after: int
    events_before: int
    events_after: int
    dropped_market_data: int
    archived: int
    seconds: float

    def as_dict(self) -> Json:
        return dict(vars(self))


class _Thinning:
    """Which old market-data events survive: with ``every_ns``, the first of each (symbol, kind, time bucket),
    carried across windows so the result does not depend on where a window ends; without it, none."""

    def __init__(self, horizon_ns: int, every_ns: int | None) -> None:
        self.horizon_ns, self.every_ns = horizon_ns, every_ns
        self.last_bucket: dict[tuple[str, str], int] = {}

    def keep(self, cols: Columns) -> np.ndarray:
        old_md = cols.rows_of("kind", MARKET_DATA_KINDS) & (cols.timestamp < self.horizon_ns)
        keep = ~old_md
        if not self.every_ns or not old_md.any():
            return keep
        idx = np.flatnonzero(old_md)
        kinds, symbols = cols.codes[TEXT.index("kind"), idx], cols.codes[TEXT.index("symbol"), idx]
        group = kinds.astype(np.int64) * (len(cols.dicts[TEXT.index("symbol")]) + 1) + symbols + 1
        bucket = cols.timestamp[idx] // self.every_ns
        order = np.lexsort((idx, group))  # by series, in time within each
        g, b = group[order], bucket[order]
        first = np.ones(len(g), bool)
        first[1:] = g[1:] != g[:-1]
        previous = np.empty_like(b)
        previous[1:] = b[:-1]
        for at in np.flatnonzero(first):  # one per series in this window: carried in from the last window
            previous[at] = self.last_bucket.get(self._series(cols, kinds[order[at]], symbols[order[at]]), -1)
        last = np.append(np.flatnonzero(first)[1:] - 1, len(g) - 1)
        for at in last:
            self.last_bucket[self._series(cols, kinds[order[at]], symbols[order[at]])] = int(b[at])
        keep[idx[order[b != previous]]] = True
        return keep

    @staticmethod
    def _series(cols: Columns, kind: int, symbol: int) -> tuple[str, str]:
        return cols.dicts[TEXT.index("kind")][kind], cols.dicts[TEXT.index("symbol")][symbol] if symbol >= 0 else ""


class _Output:
    """Kept rows, written as segments of ``target_rows`` as soon as there are that many."""

    def __init__(self, files: TraceFiles, target_rows: int, tag: str, replaces: list[str] | None = None) -> None:
        self.files, self.target_rows, self.tag = files, target_rows, tag
        self.provenance: dict[str, JSON] | None = {"replaces": list(replaces)} if replaces is not None else None
        self.pending: list[Columns] = []
        self.rows = 0
        self.segments: list[Segment] = []

    def add(self, cols: Columns) -> None:
        if len(cols):  # pruned: a selection keeps its whole window's dictionaries alive, a kept part only its own
            self.pending.append(cols.pruned())
            self.rows += len(cols)
        while self.rows >= self.target_rows:
            self._write(self.target_rows)

    def finish(self) -> list[Segment]:
        if self.rows:
            self._write(self.rows)
        return self.segments

    def _write(self, rows: int) -> None:
        merged = Columns.concat(self.pending)
        self.pending = []  # the parts are in ``merged`` now: let them go before the write allocates its buffers
        name = f"{time.time_ns():020d}-{self.tag}{uuid.uuid4().hex[:7]}"
        self.segments.append(
            write_segment(self.files, name, merged.slice(0, rows), chunk_rows=self.target_rows, provenance=self.provenance)
        )
        rest = merged.slice(rows, len(merged))
        if len(rest):  # a copy, so the merged window is freed; pruned, or the dictionaries carried from one segment
            rest = rest.copy().pruned()  # to the next would gather every value the trace ever held
        self.pending, self.rows = ([rest] if len(rest) else []), len(rest)


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def map_large_allocations(threshold: int = 1 << 20) -> bool:
    """Have glibc serve allocations of at least ``threshold`` bytes with their own mappings, returned to the system
    when freed. Compaction holds a window of columns and frees it segment after segment; from the heap, the freed
    windows fragment it and the peak grows past the window (472 MB at 10 M events over 10 days, 373 MB with
    this). glibc's default threshold is dynamic: it grows to the largest block freed, which is what lets the heap
    fragment. Process-wide, so the compaction entry points call it (the flow task, the bench), not
    ``compact_trace`` itself. Returns False where there is no glibc (nothing changed)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


def compact_trace(
    et: EventTrace | TraceFiles | str,
    target_rows: int = 500_000,
    market_data_horizon: timedelta | None = timedelta(days=1),
    downsample: timedelta | None = timedelta(minutes=1),
    retention: timedelta | None = None,
) -> CompactionReport:
    """Rewrite the trace's segments: ``target_rows`` per segment (and per chunk; the window held in memory, so
    the peak is about 280 MB + 600 bytes per target row: 380 MB at the default), market data older than
    ``market_data_horizon`` downsampled to one event per ``downsample`` per symbol (dropped if None),
    events older than ``retention`` moved to ``archive/``."""
    started = time.perf_counter()
    files = et.files if isinstance(et, EventTrace) else (et if isinstance(et, TraceFiles) else TraceFiles(str(et)))
    if isinstance(et, EventTrace):
        et.checkpoint()
    old = files.load_manifest()
    bytes_before, chunks_before = files.du("segments")
    segs = list(old.segments)
    now_ns = time.time_ns()
    horizon_ns = now_ns - int(market_data_horizon.total_seconds() * 1e9) if market_data_horizon is not None else -(2**63)
    cutoff_ns = now_ns - int(retention.total_seconds() * 1e9) if retention is not None else -(2**63)
    every_ns = int(downsample.total_seconds() * 1e9) if downsample else None

    thinning = _Thinning(horizon_ns, every_ns)
    kept = _Output(files, target_rows, "c", [s.name for s in segs])  # the sources, named in each output (trace/repair.py)
    archive = TraceFiles(files.url("archive")) if retention is not None else None
    if archive is not None and archive.read(MANIFEST) is None:  # its manifest first: segments without one are a damaged trace
        archive.update_manifest(lambda m: None)
    archived_out = _Output(archive, target_rows, "a") if archive is not None else None
    events_before = dropped = archived = 0
    for seg in segs:
        for a in range(0, seg.rows, target_rows):
            cols = read_segment(files, seg, a, min(seg.rows, a + target_rows))
            events_before += len(cols)
            keep = thinning.keep(cols)
            dropped += int((~keep).sum())
            to_archive = keep & (cols.timestamp < cutoff_ns)
            if archived_out is not None and to_archive.any():
                archived_out.add(cols.take(to_archive))
                archived += int(to_archive.sum())
            kept.add(cols.take(keep & ~to_archive) if not keep.all() or to_archive.any() else cols)
    new_segments = kept.finish()
    if archive is not None and archived_out is not None and archived_out.finish():
        added = archived_out.segments

        def archive_them(am: Manifest) -> None:
            am.segments = sorted(am.segments + added, key=lambda s: s.t_min)

        archive.update_manifest(archive_them)

    replaced = {s.name for s in segs}

    def swap(current: Manifest) -> None:  # segments the writer committed meanwhile stay, after the new ones
        current.segments = new_segments + [s for s in current.segments if s.name not in replaced]

    files.update_manifest(swap)
    for name in replaced:
        files.remove(f"segments/{name}", recursive=True)
    bytes_after, chunks_after = files.du("segments")
    return CompactionReport(
        bytes_before,
        bytes_after,
        chunks_before,
        chunks_after,
        len(segs),
        len(new_segments),
        events_before,
        events_before - dropped - archived,
        dropped,
        archived,
        time.perf_counter() - started,
    )
