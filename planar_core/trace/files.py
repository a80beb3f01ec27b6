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
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import fsspec
import numpy as np
import zarr

from .schema import SCHEMA_VERSION


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
        d = json.loads(text)
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"trace schema version {d.get('schema_version')} is not supported (expected {SCHEMA_VERSION})")
        return cls(d["schema_version"], [Segment(**s) for s in d["segments"]], d["wal_consumed"], d.get("generation", 0))


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


def column(group: zarr.Group, name: str, rows: slice = slice(None)) -> np.ndarray:
    """One column of a segment as a numpy array (``rows`` of it)."""
    arr = group[name]
    if not isinstance(arr, zarr.Array):
        raise ValueError(f"segment column {name!r} is not an array")
    return np.asarray(arr[rows])


def write_segment(files: TraceFiles, name: str, cols: dict[str, np.ndarray], chunk_rows: int | None = None) -> Segment:
    """One Zarr group holding a batch of events as columns."""
    n = len(cols["timestamp"])
    group = zarr.open_group(files.url(f"segments/{name}"), mode="w", zarr_format=3, attributes={"schema_version": SCHEMA_VERSION})
    rows_chunk = max(1, min(n, chunk_rows or n))
    for col, arr in cols.items():
        if col == "payload":
            chunks: tuple[int, ...] = (max(1, min(len(arr), 4 * 1024 * 1024)),)
        else:
            chunks = (rows_chunk, *arr.shape[1:])
        z = group.create_array(col, shape=arr.shape, dtype=arr.dtype, chunks=chunks, fill_value=0)
        if arr.size:
            z[...] = arr
    ts = cols["timestamp"]  # rows, bounds and the schema version live in the manifest entry
    nbytes = int(sum(a.nbytes for a in cols.values()))
    return Segment(name, n, int(ts[0]) if n else 0, int(ts[-1]) if n else 0, nbytes)
