"""The trace's files: the manifest, its segments and the write-ahead log, on a local path or any fsspec URL.

What a reader and a writer share: ``TraceFiles`` (paths, atomic writes, listing), ``Manifest`` and ``Segment``
(the committed state), ``write_segment``. The layout is described in ``store.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import zarr
from zarr.codecs import ZstdCodec
from zarr.core.buffer import NDBuffer, default_buffer_prototype
from zarr.core.common import JSON

from ..storage import Store
from .columns import NUMBERS, TEXT, Columns
from .legacy import read_v1_segment
from .schema import READABLE_VERSIONS, SCHEMA_VERSION


class TraceLockedError(RuntimeError):
    """Another process is writing this trace."""


class TraceClosedError(RuntimeError):
    """record() on a closed trace: the event would be buffered forever and never written."""


class TraceNotFoundError(FileNotFoundError):
    """A reader was pointed at a path that is not a trace."""


def account_id(exchange: str, api_key: str | None) -> str:
    """A stable, non-secret name for an exchange account (a hash of the key, never the key)."""
    digest = hashlib.sha256((api_key or "anonymous").encode()).hexdigest()[:12]
    return f"{exchange}-{digest}"


@dataclass
class Segment:
    name: str
    rows: int
    t_min: int
    t_max: int
    bytes: int = 0
    schema: int = SCHEMA_VERSION  # the layout of this segment's arrays: 1 (fixed-width strings) or 2 (typed columns)


@dataclass
class Manifest:
    schema_version: int = SCHEMA_VERSION
    segments: list[Segment] = field(default_factory=list)
    wal_consumed: int = -1  # WAL files with seq <= this are in segments
    generation: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {
                "schema_version": self.schema_version,
                "generation": self.generation,
                "wal_consumed": self.wal_consumed,
                "segments": [vars(s) for s in self.segments],
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        """A manifest of this version or an older one (whose segments keep their version until compaction
        rewrites them); a newer one is refused rather than misread."""
        d = json.loads(text)
        version = d.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise ValueError(f"trace schema version {version} is not supported (this version reads {sorted(READABLE_VERSIONS)})")
        segments = [Segment(**{"schema": version, **s}) for s in d["segments"]]  # version 1 listed no per-segment schema
        return cls(SCHEMA_VERSION, segments, d["wal_consumed"], d.get("generation", 0))


class TraceFiles(Store):
    """The files of a trace root, local or any fsspec URL (see ``storage.Store``); every write of shared state is
    atomic, and every manifest update a compare-and-swap."""

    def __init__(self, root: str, create: bool = True, fsync: bool = True) -> None:
        """``create=False`` (readers): the root must already be a trace; nothing is created.
        ``fsync``: local writes are fsynced (file, then directory after the rename) so they survive a power loss."""
        super().__init__(root, fsync=fsync)
        if not create:
            if not self.fs.isdir(self.path):
                raise TraceNotFoundError(
                    f"{self.root} is not a trace: " + ("it is a file" if self.fs.exists(self.path) else "no such directory")
                )
            if not self.fs.exists(f"{self.path}/manifest.json"):
                raise TraceNotFoundError(f"{self.root} is not a trace: no manifest.json")
            return
        self.makedirs("wal")
        self.makedirs("segments")

    def list_wal(self) -> list[int]:
        out = []
        for base in self.list("wal"):
            if base.endswith(".jsonl"):
                with contextlib.suppress(ValueError):
                    out.append(int(base[: -len(".jsonl")]))
        return sorted(out)

    def du(self, rel: str) -> tuple[int, int]:
        """(bytes, files) under rel."""
        try:
            sizes = self.fs.du(f"{self.path}/{rel}", total=False)
        except FileNotFoundError:
            return 0, 0
        return int(sum(sizes.values())), len(sizes)

    def load_manifest(self) -> Manifest:
        raw = self.read("manifest.json")
        return Manifest.from_json(raw.decode()) if raw else Manifest()

    def update_manifest(self, change: Callable[[Manifest], None]) -> Manifest:
        """Read-modify-write of the manifest that cannot lose another process's update (the engine
        checkpointing, a compaction): ``Store.update``, so a compare-and-swap on object storage."""

        def edit(old: bytes | None) -> tuple[bytes, Manifest]:
            m = Manifest.from_json(old.decode()) if old else Manifest()
            change(m)
            m.generation += 1
            return m.to_json().encode(), m

        return self.update("manifest.json", edit)


def column(group: zarr.Group, name: str, rows: slice | tuple[slice, slice] = slice(None)) -> np.ndarray:
    """One array of a segment as a numpy array (``rows`` of it)."""
    return np.asarray(_array(group, name)[rows])


def open_segment(files: TraceFiles, seg: Segment) -> zarr.Group:
    return zarr.open_group(files.url(f"segments/{seg.name}"), mode="r")


# zstd at level 1: about the size of zarr's default (level 3) on these columns, a third faster to write, about twice
# as fast to read (measured on 1M synthetic events: 14.1 vs 14.2 MB, 191 vs 285 ms, 129 vs 243 ms)
COMPRESSOR = ZstdCodec(level=1)


def write_segment(files: TraceFiles, name: str, cols: Columns, chunk_rows: int | None = None) -> Segment:
    """One Zarr group holding a batch of events as schema-2 arrays (see docs/trace.md):
    ``timestamp`` (rows), ``codes`` (text columns x rows), ``numbers`` (numeric columns x rows), ``payload_end``,
    ``payload`` (NDJSON bytes) and ``dicts`` (the text columns' values, one per line, counted per column in the
    attribute ``dict_sizes``; a JSON document when a value holds a newline). The column names are
    in the group's attributes, so a reader maps them by name."""
    cols = cols.pruned()
    n = len(cols)
    attributes: dict[str, JSON] = {"schema_version": SCHEMA_VERSION, "text": list(TEXT), "numbers": list(NUMBERS)}
    values = [v for d in cols.dicts for v in d]
    if any("\n" in v for v in values):  # rare: such values need JSON's escapes
        dicts = np.frombuffer(json.dumps(cols.dicts, separators=(",", ":")).encode(), np.uint8)
    else:  # one value per line: split back at C speed (JSON parsing was a tenth of a 10M-event read)
        dicts = np.frombuffer("\n".join(values).encode(), np.uint8)
        attributes["dict_sizes"] = [len(d) for d in cols.dicts]
    group = zarr.open_group(files.url(f"segments/{name}"), mode="w", zarr_format=3, attributes=attributes)
    rows_chunk = max(1, min(n, chunk_rows or n))
    arrays = {
        "timestamp": cols.timestamp,
        "codes": cols.codes,
        "numbers": cols.numbers,
        "payload_end": cols.payload_end,
        "payload": cols.payload,
        "dicts": dicts,
    }
    for col, arr in arrays.items():
        if col in ("payload", "dicts"):
            chunks: tuple[int, ...] = (max(1, min(len(arr), 16 * 1024 * 1024)),)
        else:  # rows are the last axis
            chunks = (*arr.shape[:-1], rows_chunk)
        z = group.create_array(col, shape=arr.shape, dtype=arr.dtype, chunks=chunks, fill_value=0, compressors=COMPRESSOR)
        if arr.size:
            z[...] = arr
    nbytes = int(sum(a.nbytes for a in arrays.values()))
    return Segment(name, n, int(cols.timestamp[0]) if n else 0, int(cols.timestamp[-1]) if n else 0, nbytes, SCHEMA_VERSION)


def read_segment(files: TraceFiles, seg: Segment, start: int = 0, stop: int | None = None, payload: bool = True) -> Columns:
    """Rows [start, stop) of a segment as Columns, whatever its schema version. ``payload=False`` leaves the
    payload out (not read: ``payloads()`` on the result refuses): the typed columns are all most reads need."""
    stop = seg.rows if stop is None else min(stop, seg.rows)
    if stop <= start:
        return Columns.empty()
    return Columns.laid_out([stop - start], lambda _, views: read_segment_into(files, seg, start, stop, views, payload))


def read_segment_into(files: TraceFiles, seg: Segment, start: int, stop: int, views: Columns, payload: bool = True) -> Columns:
    """Rows [start, stop) of a segment, the typed columns decoded straight into ``views`` (a slice of
    ``Columns.laid_out``'s arrays: no copy between Zarr's decoder and the result); returns the part with the
    segment's own dictionaries and, when asked, its payload."""
    if stop <= start:
        return views
    if seg.schema == 1:  # old traces only, until compaction rewrites them
        return views.filled_from(read_v1_segment(open_segment(files, seg), start, stop))
    g = open_segment(files, seg)
    rows = slice(start, stop)
    text, nums = stored_names(g)
    _read_by_name(g, "codes", rows, text, TEXT, -1, views.codes)
    _read_by_name(g, "numbers", rows, nums, NUMBERS, np.nan, views.numbers)
    _array(g, "timestamp").get_basic_selection(rows, out=_into(views.timestamp))
    named = dict(zip(text, segment_dicts(g)))
    dicts = [named.get(name, []) for name in TEXT]
    ends, blob = np.zeros(stop - start, np.int64), np.zeros(0, np.uint8)
    if payload:
        ends = column(g, "payload_end", slice(max(0, start - 1), stop))
        first = int(ends[0]) if start > 0 else 0
        ends = ends[1:] - first if start > 0 else ends
        blob = column(g, "payload", slice(first, first + int(ends[-1])))
    return Columns(views.timestamp, views.codes, dicts, views.numbers, ends, blob)


def _array(g: zarr.Group, name: str) -> zarr.Array:
    arr = g[name]
    if not isinstance(arr, zarr.Array):
        raise ValueError(f"segment column {name!r} is not an array")
    return arr


def _into(view: np.ndarray) -> NDBuffer:
    """A numpy view as the ``out`` of a Zarr read: the chunks are decoded into it."""
    return default_buffer_prototype().nd_buffer.from_numpy_array(view)


def _read_by_name(g: zarr.Group, name: str, rows: slice, stored: list[str], wanted: tuple[str, ...], fill: float, out: np.ndarray) -> None:
    """The stored columns of a 2-D array in this version's order, into ``out``; a column the segment does not have
    is all ``fill`` (a later version may add columns, an older one lacks them)."""
    arr = _array(g, name)
    if stored == list(wanted):
        arr.get_basic_selection((slice(None), rows), out=_into(out))
        return
    got = np.asarray(arr[:, rows])
    for j, col in enumerate(wanted):
        out[j] = got[stored.index(col)] if col in stored else fill


def stored_names(g: zarr.Group) -> tuple[list[str], list[str]]:
    """The text and numeric column names a segment was written with (a later version may add columns)."""
    text, nums = g.attrs.get("text", list(TEXT)), g.attrs.get("numbers", list(NUMBERS))
    if not isinstance(text, list) or not isinstance(nums, list):
        raise ValueError("segment attributes 'text' and 'numbers' must be lists of column names")
    return [str(t) for t in text], [str(x) for x in nums]


def segment_dicts(g: zarr.Group) -> list[list[str]]:
    """Each text column's values, in the stored column order."""
    raw = column(g, "dicts").tobytes()
    sizes = g.attrs.get("dict_sizes")
    if sizes is None:  # a JSON document (segments written before the line format, or with a value holding a newline)
        dicts: list[list[str]] = json.loads(raw)
        return dicts
    if not isinstance(sizes, list):
        raise ValueError("segment attribute 'dict_sizes' must be a list of counts")
    lines = raw.decode().split("\n") if sum(sizes) else []
    bounds = np.cumsum([0, *sizes]).tolist()
    return [lines[a:b] for a, b in pairwise(bounds)]
