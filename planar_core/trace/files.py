"""The trace's files: the manifest, its segments and the write-ahead log, on a local path or any fsspec URL.

What a reader and a writer share: ``TraceFiles`` (paths, atomic writes, listing), ``Manifest`` and ``Segment``
(the committed state), ``write_segment``. The layout is described in ``store.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import fsspec
import numpy as np
import zarr
from zarr.core.common import JSON

from .columns import NUMBERS, TEXT, Columns
from .legacy import read_v1_segment
from .schema import READABLE_VERSIONS, SCHEMA_VERSION


class TraceLockedError(RuntimeError):
    """Another process is writing this trace."""


class TraceClosedError(RuntimeError):
    """record() on a closed trace: the event would be buffered forever and never written."""


class ConflictError(RuntimeError):
    """A conditional write on object storage lost: another process wrote the object first."""


def is_precondition_failure(exc: BaseException) -> bool:
    """s3fs reports a failed If-None-Match as FileExistsError and a failed If-Match as an OSError (412)."""
    text = str(exc).lower()
    return isinstance(exc, FileExistsError) or "pre-condition" in text or "precondition" in text


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


class TraceFiles:
    """File operations on a trace root, local or fsspec; every write of shared state is atomic."""

    def __init__(self, root: str, create: bool = True, fsync: bool = True) -> None:
        """``create=False`` (readers): the root must already be a trace; nothing is created.
        ``fsync``: local writes are fsynced (file, then directory after the rename) so they survive a power loss."""
        self.root = root.rstrip("/")
        self.fs, self.path = fsspec.core.url_to_fs(self.root)
        self.local = self.fs.protocol in ("file", ("file", "local")) or "file" in (
            self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        )
        self.fsync = fsync
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        # object stores whose conditional writes (If-None-Match / If-Match on PUT) this module uses: the lease and
        # the manifest's compare-and-swap. Elsewhere (memory://, plain HTTP) one writer is not enforced.
        self.conditional = bool(set(protocols) & {"s3", "s3a"})
        if not create:
            if not self.fs.isdir(self.path):
                raise TraceNotFoundError(
                    f"{self.root} is not a trace: " + ("it is a file" if self.fs.exists(self.path) else "no such directory")
                )
            if not self.fs.exists(f"{self.path}/manifest.json"):
                raise TraceNotFoundError(f"{self.root} is not a trace: no manifest.json")
            return
        self.fs.makedirs(f"{self.path}/wal", exist_ok=True)
        self.fs.makedirs(f"{self.path}/segments", exist_ok=True)

    def url(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def write_atomic(self, rel: str, data: bytes) -> None:
        target = f"{self.path}/{rel}"
        if self.local:
            tmp = f"{target}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(data)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, target)
            if self.fsync:  # the rename itself is durable only once the directory is
                fd = os.open(os.path.dirname(target), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        else:  # one PUT is atomic on object stores
            self.fs.pipe_file(target, data)

    def read(self, rel: str) -> bytes | None:
        try:
            return self.fs.cat_file(f"{self.path}/{rel}")
        except FileNotFoundError:
            return None

    def list_wal(self) -> list[int]:
        if not self.local:  # another process may have written since this process listed (fsspec caches listings)
            self.fs.invalidate_cache(f"{self.path}/wal")
        try:
            names = self.fs.ls(f"{self.path}/wal", detail=False)
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            base = str(n).rsplit("/", 1)[-1]
            if base.endswith(".jsonl"):
                with contextlib.suppress(ValueError):
                    out.append(int(base[: -len(".jsonl")]))
        return sorted(out)

    def remove(self, rel: str, recursive: bool = False) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(f"{self.path}/{rel}", recursive=recursive)

    def du(self, rel: str) -> tuple[int, int]:
        """(bytes, files) under rel."""
        try:
            sizes = self.fs.du(f"{self.path}/{rel}", total=False)
        except FileNotFoundError:
            return 0, 0
        return int(sum(sizes.values())), len(sizes)

    @contextlib.contextmanager
    def manifest_lock(self) -> Iterator[None]:
        """Short exclusive lock around read-modify-write of the manifest (writer vs compaction)."""
        if not self.local:
            yield
            return
        fd = os.open(f"{self.path}/manifest.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def load_manifest(self) -> Manifest:
        raw = self.read("manifest.json")
        return Manifest.from_json(raw.decode()) if raw else Manifest()

    def save_manifest(self, m: Manifest) -> None:
        m.generation += 1
        self.write_atomic("manifest.json", m.to_json().encode())

    # ------------------------------------------------------------- compare-and-swap (object storage)
    def read_versioned(self, rel: str) -> tuple[bytes | None, str | None]:
        """An object and its ETag. The ETag is read first: if the object changes in between, the data is newer
        than the ETag and a conditional write against it fails, which is the safe way round."""
        target = f"{self.path}/{rel}"
        self.fs.invalidate_cache(target)
        try:
            etag = str(self.fs.info(target).get("ETag") or "") or None
            return self.fs.cat_file(target), etag
        except FileNotFoundError:
            return None, None

    def write_if(self, rel: str, data: bytes, etag: str | None) -> str | None:
        """Write only if the object is still the version ``etag`` names (None: only if it does not exist); one
        conditional PUT. Returns the new ETag; raises ConflictError when another writer got there first."""
        target = f"{self.path}/{rel}"
        try:
            out = self.fs.pipe_file(target, data, mode="create") if etag is None else self.fs.pipe_file(target, data, IfMatch=etag)
        except OSError as exc:
            if is_precondition_failure(exc):
                raise ConflictError(f"{self.root}/{rel} was written by another process") from exc
            raise
        return str(out.get("ETag")) if isinstance(out, dict) and out.get("ETag") else None

    def update_manifest(self, change: Callable[[Manifest], None], attempts: int = 100) -> Manifest:
        """Read-modify-write of the manifest that cannot lose another process's update: under the local lock on a
        local root; on object storage, a conditional PUT against the version read, retried from a fresh read when
        another writer (the engine checkpointing, a compaction) committed in between."""
        if self.local or not self.conditional:
            with self.manifest_lock():
                m = self.load_manifest()
                change(m)
                self.save_manifest(m)
                return m
        for attempt in range(attempts):
            raw, etag = self.read_versioned("manifest.json")
            m = Manifest.from_json(raw.decode()) if raw else Manifest()
            change(m)
            m.generation += 1
            try:
                self.write_if("manifest.json", m.to_json().encode(), etag)
                return m
            except ConflictError:
                time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # back off; the other writer is done in one PUT
        raise ConflictError(f"{self.root}/manifest.json: {attempts} conflicting updates in a row")


def column(group: zarr.Group, name: str, rows: slice = slice(None)) -> np.ndarray:
    """One array of a segment as a numpy array (``rows`` of it)."""
    arr = group[name]
    if not isinstance(arr, zarr.Array):
        raise ValueError(f"segment column {name!r} is not an array")
    return np.asarray(arr[rows])


def open_segment(files: TraceFiles, seg: Segment) -> zarr.Group:
    return zarr.open_group(files.url(f"segments/{seg.name}"), mode="r")


def write_segment(files: TraceFiles, name: str, cols: Columns, chunk_rows: int | None = None) -> Segment:
    """One Zarr group holding a batch of events as schema-2 arrays (see docs/trace.md):
    ``timestamp`` (rows), ``codes`` (rows x text columns), ``numbers`` (rows x numeric columns), ``payload_end``,
    ``payload`` (NDJSON bytes) and ``dicts`` (the text columns' values, one JSON document). The column names are
    in the group's attributes, so a reader maps them by name."""
    n = len(cols)
    attributes: dict[str, JSON] = {"schema_version": SCHEMA_VERSION, "text": list(TEXT), "numbers": list(NUMBERS)}
    group = zarr.open_group(files.url(f"segments/{name}"), mode="w", zarr_format=3, attributes=attributes)
    rows_chunk = max(1, min(n, chunk_rows or n))
    dicts = np.frombuffer(json.dumps(cols.dicts, separators=(",", ":")).encode(), np.uint8)
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
        else:
            chunks = (rows_chunk, *arr.shape[1:])
        z = group.create_array(col, shape=arr.shape, dtype=arr.dtype, chunks=chunks, fill_value=0)
        if arr.size:
            z[...] = arr
    nbytes = int(sum(a.nbytes for a in arrays.values()))
    return Segment(name, n, int(cols.timestamp[0]) if n else 0, int(cols.timestamp[-1]) if n else 0, nbytes, SCHEMA_VERSION)


def read_segment(files: TraceFiles, seg: Segment, start: int = 0, stop: int | None = None, payload: bool = True) -> Columns:
    """Rows [start, stop) of a segment as Columns, whatever its schema version. ``payload=False`` leaves the
    payload out (every row's is then ``{}``): the typed columns are all most reads need."""
    stop = seg.rows if stop is None else min(stop, seg.rows)
    if seg.schema == 1:  # old traces only, until compaction rewrites them
        return read_v1_segment(open_segment(files, seg), start, stop)
    if stop <= start:
        return Columns.empty()
    g = open_segment(files, seg)
    rows = slice(start, stop)
    text, nums = stored_names(g)
    codes = _by_name(column(g, "codes", rows), text, TEXT, -1, np.int32)
    numbers = _by_name(column(g, "numbers", rows), nums, NUMBERS, np.nan, np.float64)
    named = dict(zip(text, segment_dicts(g)))
    dicts = [named.get(name, []) for name in TEXT]
    if payload:
        ends = column(g, "payload_end", slice(max(0, start - 1), stop))
        first = int(ends[0]) if start > 0 else 0
        ends = ends[1:] if start > 0 else ends
        blob = column(g, "payload", slice(first, int(ends[-1])))
        return Columns(column(g, "timestamp", rows), codes, dicts, numbers, ends - first, blob)
    n = stop - start
    return Columns(column(g, "timestamp", rows), codes, dicts, numbers, np.arange(3, 3 * n + 1, 3, dtype=np.int64), np.tile(EMPTY_LINE, n))


def stored_names(g: zarr.Group) -> tuple[list[str], list[str]]:
    """The text and numeric column names a segment was written with (a later version may add columns)."""
    text, nums = g.attrs.get("text", list(TEXT)), g.attrs.get("numbers", list(NUMBERS))
    if not isinstance(text, list) or not isinstance(nums, list):
        raise ValueError("segment attributes 'text' and 'numbers' must be lists of column names")
    return [str(t) for t in text], [str(x) for x in nums]


def segment_dicts(g: zarr.Group) -> list[list[str]]:
    """Each text column's values, in the stored column order."""
    dicts: list[list[str]] = json.loads(column(g, "dicts").tobytes())
    return dicts


EMPTY_LINE = np.frombuffer(b"{}\n", np.uint8)


def _by_name(arr: np.ndarray, stored: list[str], wanted: tuple[str, ...], fill: float, dtype: type[np.generic]) -> np.ndarray:
    """The stored columns in this version's order; a column the segment does not have is all ``fill``."""
    if stored == list(wanted):
        return arr
    out = np.full((len(arr), len(wanted)), fill, dtype=dtype)
    for j, name in enumerate(wanted):
        if name in stored:
            out[:, j] = arr[:, stored.index(name)]
    return out
