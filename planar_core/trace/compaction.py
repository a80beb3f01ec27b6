"""Compaction: merge many small segments into few large ones, thin old market data, archive old events.

Atomic by construction: new segments are written first, then the manifest is
swapped in one write under the manifest lock; old segments are deleted only
after the swap. A crash at any point leaves either the old manifest (and some
orphan new segments nobody reads) or the new one. Segments the writer commits
while compaction runs are kept: the swap only replaces the segments it read.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import zarr

from ..model.types import Json
from .files import Manifest, Segment, TraceFiles, column, write_segment
from .schema import KIND_CODE, MARKET_DATA_KINDS
from .store import EventTrace

COLUMN_NAMES = ("timestamp", "kind", "symbol", "order_id", "client_order_id", "side", "amount", "price", "fee")


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


def _read_columns(files: TraceFiles, seg: Segment) -> dict[str, np.ndarray]:
    g = zarr.open_group(files.url(f"segments/{seg.name}"), mode="r")
    cols = {name: column(g, name) for name in COLUMN_NAMES}
    cols["payload_end"] = column(g, "payload_end")
    cols["payload"] = column(g, "payload")
    return cols


def _take(cols: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    out = {name: cols[name][mask] for name in COLUMN_NAMES}
    ends = cols["payload_end"]
    starts = np.concatenate([[0], ends[:-1]])
    keep_starts, keep_ends = starts[mask], ends[mask]
    lengths = keep_ends - keep_starts
    total = int(lengths.sum())
    out_starts = np.cumsum(lengths) - lengths
    # byte i of the output comes from: its row's source start + (i - its row's output start)
    idx = np.arange(total, dtype=np.int64) + np.repeat(keep_starts - out_starts, lengths)
    out["payload"] = cols["payload"][idx] if total else np.zeros(0, dtype=np.uint8)
    out["payload_end"] = np.cumsum(lengths).astype(np.int64)
    return out


def _slice(cols: dict[str, np.ndarray], a: int, b: int) -> dict[str, np.ndarray]:
    out = {name: cols[name][a:b] for name in COLUMN_NAMES}
    ends = cols["payload_end"]
    first = int(ends[a - 1]) if a > 0 else 0
    last = int(ends[b - 1]) if b > 0 else 0
    out["payload"] = cols["payload"][first:last]
    out["payload_end"] = ends[a:b] - first
    return out


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    out = {name: np.concatenate([p[name] for p in parts]) for name in (*COLUMN_NAMES, "payload")}
    offset = 0
    ends = []
    for p in parts:
        ends.append(p["payload_end"] + offset)
        offset += int(p["payload_end"][-1]) if len(p["payload_end"]) else 0
    out["payload_end"] = np.concatenate(ends).astype(np.int64) if ends else np.zeros(0, dtype=np.int64)
    return out


def _thin_market_data(cols: dict[str, np.ndarray], horizon_ns: int, every_ns: int | None) -> np.ndarray:
    """Keep mask: market-data events older than the horizon are dropped, or kept one per ``every_ns`` per symbol."""
    md_codes = [KIND_CODE[k] for k in MARKET_DATA_KINDS]
    old_md = np.isin(cols["kind"], md_codes) & (cols["timestamp"] < horizon_ns)
    keep = ~old_md
    if every_ns and old_md.any():
        idx = np.flatnonzero(old_md)
        bucket = cols["timestamp"][idx] // every_ns
        sym = cols["symbol"][idx]
        key = np.concatenate([bucket[:, None].view(np.uint8).reshape(len(idx), -1), sym], axis=1)
        _, first = np.unique(key[::-1], axis=0, return_index=True)  # the last event of each (bucket, symbol)
        keep[idx[len(idx) - 1 - first]] = True
    return keep


def compact_trace(
    et: EventTrace | TraceFiles | str,
    target_rows: int = 1_000_000,
    market_data_horizon: timedelta | None = timedelta(days=1),
    downsample: timedelta | None = timedelta(minutes=1),
    retention: timedelta | None = None,
) -> CompactionReport:
    """Rewrite the trace's segments: ``target_rows`` per segment (and per chunk), market data older than
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

    kept_parts: list[dict[str, np.ndarray]] = []
    archived_parts: list[dict[str, np.ndarray]] = []
    events_before = dropped = 0
    for seg in segs:
        cols = _read_columns(files, seg)
        events_before += len(cols["timestamp"])
        keep = _thin_market_data(cols, horizon_ns, every_ns)
        dropped += int((~keep).sum())
        to_archive = keep & (cols["timestamp"] < cutoff_ns)
        if to_archive.any():
            archived_parts.append(_take(cols, to_archive))
        kept_parts.append(_take(cols, keep & ~to_archive))

    new_segments: list[Segment] = []
    merged = _concat(kept_parts) if kept_parts else None
    if merged is not None and len(merged["timestamp"]):
        n = len(merged["timestamp"])
        for a in range(0, n, target_rows):
            part = _slice(merged, a, min(n, a + target_rows))
            name = f"{time.time_ns():020d}-c{uuid.uuid4().hex[:7]}"
            new_segments.append(write_segment(files, name, part, chunk_rows=target_rows))
    archived = 0
    if archived_parts:
        archive = TraceFiles(files.url("archive"))
        cols = _concat(archived_parts)
        archived = len(cols["timestamp"])
        seg = write_segment(archive, f"{time.time_ns():020d}-a{uuid.uuid4().hex[:7]}", cols, chunk_rows=target_rows)
        with archive.manifest_lock():
            am = archive.load_manifest()
            am.segments.append(seg)
            am.segments.sort(key=lambda s: s.t_min)
            archive.save_manifest(am)

    replaced = {s.name for s in segs}
    with files.manifest_lock():
        current = files.load_manifest()
        added_meanwhile = [s for s in current.segments if s.name not in replaced]
        files.save_manifest(
            Manifest(segments=new_segments + added_meanwhile, wal_consumed=current.wal_consumed, generation=current.generation)
        )
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
