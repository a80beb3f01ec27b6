"""The trace's files: the manifest, its segments and the write-ahead log, on a local path or any fsspec URL.

What a reader and a writer share: ``TraceFiles`` (paths, atomic writes, listing), ``Manifest`` and ``Segment``
(the committed state), ``write_segment``. The layout is described in ``store.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import zarr
import zarr.api.asynchronous
from zarr import AsyncArray, AsyncGroup
from zarr.abc.codec import BytesBytesCodec
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.core.buffer import default_buffer_prototype
from zarr.core.common import JSON
from zarr.core.indexing import BasicIndexer
from zarr.core.sync import sync

from ..storage import CorruptStateError, Store, json_object
from .columns import NUMBERS, TEXT, Columns
from .legacy import read_v1_segment
from .schema import READABLE_VERSIONS, SCHEMA_VERSION

MANIFEST = "manifest.json"
BACKUP = "manifest.json.bak"  # a copy of the manifest, written just before each replace of manifest.json
REPAIR = "run 'planar trace repair' on this trace to rebuild it from the segments present"
log = logging.getLogger("planar.trace")


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
    def from_json(cls, text: str | bytes, where: str = "manifest.json", remedy: str = REPAIR) -> "Manifest":
        """A manifest of this version or an older one (whose segments keep their version until compaction
        rewrites them); a newer one is refused rather than misread (``ValueError``). One that cannot be read
        (not JSON, fields missing or of the wrong type) is ``CorruptStateError`` naming ``where``."""
        raw = text.encode() if isinstance(text, str) else text
        d = json_object(raw, where, remedy)
        version = d.get("schema_version")
        if isinstance(version, int) and version not in READABLE_VERSIONS:
            raise ValueError(f"trace schema version {version} is not supported (this version reads {sorted(READABLE_VERSIONS)})")
        try:
            if version not in READABLE_VERSIONS:
                raise TypeError(f"schema_version {version!r}")
            listed = d["segments"]
            if not isinstance(listed, list):
                raise TypeError("segments is not a list")
            segments = [Segment(**{"schema": version, **s}) for s in listed]  # version 1 listed no per-segment schema
            for seg in segments:
                if not isinstance(seg.name, str) or not all(isinstance(x, int) for x in (seg.rows, seg.t_min, seg.t_max, seg.schema)):
                    raise TypeError(f"segment {seg.name!r} has fields of the wrong type")
            wal_consumed, generation = d["wal_consumed"], d.get("generation", 0)
            if not isinstance(wal_consumed, int) or not isinstance(generation, int):
                raise TypeError("wal_consumed or generation is not a number")
        except (KeyError, TypeError) as exc:
            what = f"no {exc.args[0]!r} field" if isinstance(exc, KeyError) else str(exc)
            raise CorruptStateError(where, f"unexpected content: {what} ({len(raw)} bytes)", remedy) from None
        return cls(SCHEMA_VERSION, segments, wal_consumed, generation)


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
            if not self.fs.exists(f"{self.path}/{MANIFEST}") and not self.fs.exists(f"{self.path}/{BACKUP}"):
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

    # ------------------------------------------------------------- the manifest
    def repair_remedy(self) -> str:
        return f"run 'planar trace repair --root {self.root}' to rebuild it from the segments present (--dry-run shows what it keeps)"

    def load_manifest(self) -> Manifest:
        """The committed manifest. One that cannot be read is recovered from its copy when the copy is provably
        complete (WARNING); otherwise ``CorruptStateError`` naming ``planar trace repair``."""
        return self.manifest_of(self.read(MANIFEST))[0]

    def update_manifest(self, change: Callable[[Manifest], None]) -> Manifest:
        """Read-modify-write of the manifest that cannot lose another process's update (the engine
        checkpointing, a compaction): ``Store.update``, so a compare-and-swap on object storage. The new version is
        first written to ``manifest.json.bak``, so a copy never older than the manifest survives if the manifest is
        later damaged. An unreadable manifest recovered from its copy is set aside (``manifest.json.corrupt-<time>``)
        before it is replaced."""

        def edit(old: bytes | None) -> tuple[bytes, Manifest]:
            m, recovered = self.manifest_of(old)
            if recovered is not None and old is not None:
                self.set_aside(MANIFEST)
            change(m)
            m.generation += 1
            data = m.to_json().encode()
            self.write_atomic(BACKUP, data)
            return data, m

        return self.update(MANIFEST, edit)

    def manifest_of(self, raw: bytes | None) -> tuple[Manifest, CorruptStateError | None]:
        """The manifest in ``raw`` (the bytes of manifest.json, None if absent), and what was wrong with it when it
        had to be recovered from its copy."""
        if raw is None:
            if self.read(BACKUP) is None and not self.list("segments"):
                return Manifest(), None  # a new trace
            err = CorruptStateError(self.url(MANIFEST), "missing, though the trace has segments or a manifest copy", self.repair_remedy())
            return self.recover_manifest(err), err
        try:
            return Manifest.from_json(raw, self.url(MANIFEST), self.repair_remedy()), None
        except CorruptStateError as exc:
            return self.recover_manifest(exc), exc

    def recover_manifest(self, damaged: CorruptStateError) -> Manifest:
        """The manifest's copy, if it provably lists every committed segment: each segment it lists is present,
        and every segment it does not list holds only events inside the time covered by those it lists (an
        orphan of an interrupted checkpoint or compaction). Otherwise ``CorruptStateError`` with the repair
        remedy: nothing is recovered by guessing."""

        def refuse(why: str) -> CorruptStateError:
            return CorruptStateError(damaged.path, f"{damaged.what}; {why}", self.repair_remedy())

        raw = self.read(BACKUP)
        if raw is None:
            raise refuse(f"no copy ({BACKUP}) to recover it from")
        try:
            m = Manifest.from_json(raw, self.url(BACKUP))
        except CorruptStateError as exc:
            raise refuse(f"its copy {BACKUP} cannot be read either ({exc.what})") from None
        present = set(self.list("segments"))
        gone = [seg.name for seg in m.segments if seg.name not in present]
        if gone:
            raise refuse(f"its copy {BACKUP} lists {len(gone)} segment(s) that are gone ({', '.join(gone[:3])})")
        covered = merged_ranges(m.segments)
        listed = {seg.name for seg in m.segments}
        ignored = []
        for name in sorted(present - listed):
            try:
                seg = scan_segment(self, name).segment
            except Exception as exc:  # a partial write, or damage: what it holds cannot be known
                raise refuse(f"its copy {BACKUP} does not list segment {name}, which cannot be read ({type(exc).__name__})") from None
            if seg.rows and not any(a <= seg.t_min and seg.t_max <= b for a, b in covered):
                raise refuse(f"its copy {BACKUP} does not list segment {name} ({seg.rows} events), which may hold events it lacks")
            ignored.append(name)
        key = (bytes(damaged.what, "utf-8"), raw)
        if getattr(self, "_recovered_key", None) != key:
            self._recovered_key = key
            log.warning(
                "trace %s: %s: %s; recovered from its copy %s (generation %d, %d segments, %d events%s)",
                self.root,
                MANIFEST,
                damaged.what,
                BACKUP,
                m.generation,
                len(m.segments),
                sum(seg.rows for seg in m.segments),
                f"; {len(ignored)} orphan segment(s) whose events it covers left out: {', '.join(ignored)}" if ignored else "",
            )
        return m


@dataclass
class SegmentScan:
    """What a segment says of itself (the manifest's entry for it, rebuilt) and where its events came from
    (``wal``: the WAL files it consumed, first and last; ``replaces``: the segments a compaction wrote it from);
    segments written before these attributes existed say neither."""

    segment: Segment
    wal: tuple[int, int] | None
    replaces: list[str] | None


def scan_segment(files: TraceFiles, name: str) -> SegmentScan:
    """Read a segment's metadata from the segment itself (its first and last timestamps, its attributes)."""
    g = zarr.open_group(files.url(f"segments/{name}"), mode="r")
    attrs = g.attrs
    version = attrs.get("schema_version", 1)
    if version not in READABLE_VERSIONS:
        raise ValueError(f"segment {name}: schema version {version!r}")
    ts = g["timestamp"]
    if not isinstance(ts, zarr.Array):
        raise ValueError(f"segment {name}: timestamp is not an array")
    n = int(ts.shape[0])
    first, last = (int(np.asarray(ts[0])), int(np.asarray(ts[n - 1]))) if n else (0, 0)
    nbytes = sum(int(a.nbytes) for _, a in g.arrays())
    wal, replaces = attrs.get("wal"), attrs.get("replaces")
    return SegmentScan(
        Segment(name, n, first, last, nbytes, int(str(version))),
        (int(str(wal[0])), int(str(wal[1]))) if isinstance(wal, list) and len(wal) == 2 else None,
        [str(x) for x in replaces] if isinstance(replaces, list) else None,
    )


def merged_ranges(segments: Sequence[Segment]) -> list[tuple[int, int]]:
    """The time the segments cover, as disjoint [first, last] ranges (overlapping ones merged)."""
    out: list[tuple[int, int]] = []
    for seg in sorted((s for s in segments if s.rows), key=lambda s: s.t_min):
        if out and seg.t_min <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], seg.t_max))
        else:
            out.append((seg.t_min, seg.t_max))
    return out


def column(group: zarr.Group, name: str, rows: slice | tuple[slice, slice] = slice(None)) -> np.ndarray:
    """One array of a segment as a numpy array (``rows`` of it)."""
    arr = group[name]
    if not isinstance(arr, zarr.Array):
        raise ValueError(f"segment column {name!r} is not an array")
    return np.asarray(arr[rows])


def open_segment(files: TraceFiles, seg: Segment) -> zarr.Group:
    with segment_read(files, seg):
        return zarr.open_group(files.url(f"segments/{seg.name}"), mode="r")


@contextlib.contextmanager
def segment_read(files: TraceFiles, seg: Segment) -> Iterator[None]:
    """A read of ``seg`` whose arrays cannot be read (a truncated chunk, a lost file) fails as a
    ``CorruptStateError`` naming the segment and the remedy. An outside trial: one damaged chunk made every read of
    the trace end in a 148-line traceback, "Zstd decompression error: invalid input data", the segment unnamed.
    (``reading.consistent`` still retries a read that a checkpoint or compaction raced: it looks at the manifest.)"""
    try:
        yield
    except (CorruptStateError, ConnectionError, TimeoutError, PermissionError, InterruptedError):
        raise  # a store that did not answer (object storage), or refused access, says nothing of the segment
    except Exception as exc:
        raise CorruptStateError(
            files.url(f"segments/{seg.name}"),
            f"segment {seg.name} ({seg.rows} events) cannot be read: {type(exc).__name__}: {exc}",
            f"`planar trace repair --root {files.root} --drop {seg.name}` leaves it out of the manifest (its events "
            "are then lost to every read; its files stay on disk)",
        ) from exc


# Each array's codec, measured on 1M synthetic events per 30 segments (decode speed on this project's 2-core VM; a
# typed read is mostly decoding): the typed arrays every read decodes take LZ4 inside Blosc, which decodes 2-3x
# faster than zstd for 1.4-1.6x the bytes; the bit shuffle groups the slowly changing high bits of codes and
# timestamps (codes 5.7x smaller at 2.3 GB/s, against zstd-1's 8.2x at 0.66 GB/s); numbers shuffle badly (NaN
# for absent values) and take plain LZ4 blocks (3.8x at 2.0 GB/s, against 5.9x at 0.98 GB/s). The payload and the
# dictionaries, read only when asked, keep zstd at level 1 (zarr's default level compresses no better on them and
# decodes half as fast).
CODECS: dict[str, BytesBytesCodec] = {
    "timestamp": BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=8),
    "codes": BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=4),
    "numbers": BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle", typesize=8),
    "payload_end": BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle", typesize=8),
    "payload": ZstdCodec(level=1),
    "dicts": ZstdCodec(level=1),
}


def write_segment(
    files: TraceFiles, name: str, cols: Columns, chunk_rows: int | None = None, provenance: Mapping[str, JSON] | None = None
) -> Segment:
    """One Zarr group holding a batch of events as schema-2 arrays (see docs/trace.md):
    ``timestamp`` (rows), ``codes`` (text columns x rows), ``numbers`` (numeric columns x rows), ``payload_end``,
    ``payload`` (NDJSON bytes) and ``dicts`` (the text columns' values, one per line, counted per column in the
    attribute ``dict_sizes``; a JSON document when a value holds a newline). The column names are
    in the group's attributes, so a reader maps them by name. ``provenance`` (attributes too): where the events
    came from (``wal``: the WAL files consumed; ``replaces``: a compaction's sources), so that a lost manifest can
    be rebuilt from the segments (``trace/repair.py``)."""
    cols = cols.pruned()
    n = len(cols)
    attributes: dict[str, JSON] = {"schema_version": SCHEMA_VERSION, "text": list(TEXT), "numbers": list(NUMBERS), **(provenance or {})}
    values = [v for d in cols.dicts for v in d]
    if any("\n" in v for v in values):  # rare: such values need JSON's escapes
        dicts = np.frombuffer(json.dumps(cols.dicts, separators=(",", ":")).encode(), np.uint8)
    else:  # one value per line: split back at C speed (JSON parsing was a tenth of a 10M-event read)
        dicts = np.frombuffer("\n".join(values).encode(), np.uint8)
        attributes["dict_sizes"] = [len(d) for d in cols.dicts]
    rows_chunk = max(1, min(n, chunk_rows or n))
    arrays = {
        "timestamp": cols.timestamp,
        "codes": cols.codes,
        "numbers": cols.numbers,
        "payload_end": cols.payload_end,
        "payload": cols.payload,
        "dicts": dicts,
    }

    async def write() -> None:  # the arrays at once, as a read does (one round trip to Zarr's loop, not twelve)
        group = await zarr.api.asynchronous.open_group(store=files.url(f"segments/{name}"), mode="w", zarr_format=3, attributes=attributes)

        async def one(col: str, arr: np.ndarray) -> None:
            if col in ("payload", "dicts"):
                chunks: tuple[int, ...] = (max(1, min(len(arr), 16 * 1024 * 1024)),)
            else:  # rows are the last axis
                chunks = (*arr.shape[:-1], rows_chunk)
            z = await group.create_array(col, shape=arr.shape, dtype=arr.dtype, chunks=chunks, fill_value=0, compressors=CODECS[col])
            if arr.size:
                await z.setitem(Ellipsis, arr)

        await asyncio.gather(*(one(col, arr) for col, arr in arrays.items()))

    sync(write())
    nbytes = int(sum(a.nbytes for a in arrays.values()))
    return Segment(name, n, int(cols.timestamp[0]) if n else 0, int(cols.timestamp[-1]) if n else 0, nbytes, SCHEMA_VERSION)


def read_segment(files: TraceFiles, seg: Segment, start: int = 0, stop: int | None = None, payload: bool = True) -> Columns:
    """Rows [start, stop) of a segment as Columns, whatever its schema version. ``payload=False`` leaves the
    payload out (not read: ``payloads()`` on the result refuses): the typed columns are all most reads need."""
    stop = seg.rows if stop is None else min(stop, seg.rows)
    if stop <= start:
        return Columns.empty()
    return Columns.laid_out([stop - start], lambda views: read_segments_into(files, [(seg, start, stop)], views, payload))


# segments decoded at once by one read: enough to keep both cores and the I/O busy, few enough that the compressed
# bytes in flight stay small
READ_AHEAD = 8


def read_segments_into(
    files: TraceFiles, spans: Sequence[tuple[Segment, int, int]], views: Sequence[Columns], payload: bool
) -> list[Columns]:
    """Rows [start, stop) of each segment, the typed columns decoded straight into its ``views`` (slices of
    ``Columns.laid_out``'s arrays: nothing is copied between Zarr's decoder and the result); returns each part with
    its segment's own dictionaries and, when asked, its payload.

    Every segment's arrays are read in one asynchronous gather on Zarr's event loop, so decoding runs on its
    thread pool, both cores busy; read one array at a time through Zarr's blocking API, each call costs a
    round trip to that loop (about 2 ms: a 100-segment read spent more time there than decoding)."""

    current = [i for i, (seg, a, b) in enumerate(spans) if seg.schema != 1 and b > a]

    async def all_of() -> list[Columns]:
        gate = asyncio.Semaphore(READ_AHEAD)
        return list(await asyncio.gather(*(_read_into(files, *spans[i], views[i], payload, gate) for i in current)))

    parts = list(views)  # an empty span is its (empty) view
    for i, part in zip(current, sync(all_of())):
        parts[i] = part
    for i, (seg, a, b) in enumerate(spans):
        if seg.schema == 1 and b > a:  # old traces only, until compaction rewrites them: Zarr's blocking API, here
            # (from the loop's thread pool, blocked readers could hold every thread the decoding needs)
            with segment_read(files, seg):
                parts[i] = views[i].filled_from(read_v1_segment(open_segment(files, seg), a, b))
    return parts


async def _read_into(
    files: TraceFiles, seg: Segment, start: int, stop: int, views: Columns, payload: bool, gate: asyncio.Semaphore
) -> Columns:
    async with gate:
        with segment_read(files, seg):
            return await _decode_into(files, seg, start, stop, views, payload)


async def _decode_into(files: TraceFiles, seg: Segment, start: int, stop: int, views: Columns, payload: bool) -> Columns:
    """Rows [start, stop) of one segment decoded into ``views`` (``_read_into``, which names the segment if it fails)."""
    g = await zarr.api.asynchronous.open_group(store=files.url(f"segments/{seg.name}"), mode="r")
    text, nums = stored_names(g.attrs)
    rows = slice(start, stop)
    raw_dicts: np.ndarray
    raw_dicts, *_ = await asyncio.gather(
        _get(g, "dicts", slice(None)),
        _get(g, "codes", (slice(None), rows), _by_name(views.codes, text, TEXT, -1)),
        _get(g, "numbers", (slice(None), rows), _by_name(views.numbers, nums, NUMBERS, np.nan)),
        _get(g, "timestamp", rows, views.timestamp),
    )
    named = dict(zip(text, parse_dicts(raw_dicts.tobytes(), g.attrs.get("dict_sizes"))))
    ends, blob = np.zeros(stop - start, np.int64), np.zeros(0, np.uint8)
    if payload:
        ends = await _get(g, "payload_end", slice(max(0, start - 1), stop))
        first = int(ends[0]) if start > 0 else 0
        ends = ends[1:] - first if start > 0 else ends
        blob = await _get(g, "payload", slice(first, first + int(ends[-1])))
    return Columns(views.timestamp, views.codes, [named.get(name, []) for name in TEXT], views.numbers, ends, blob)


class _Reorder:
    """Where a read of a 2-D array goes when the segment's columns are not this version's: read whole, then each
    wanted column copied by name, ``fill`` where the segment lacks it (a later version may add columns)."""

    def __init__(self, out: np.ndarray, stored: list[str], wanted: tuple[str, ...], fill: float) -> None:
        self.out, self.stored, self.wanted, self.fill = out, stored, wanted, fill

    def take(self, got: np.ndarray) -> None:
        for j, name in enumerate(self.wanted):
            self.out[j] = got[self.stored.index(name)] if name in self.stored else self.fill


def _by_name(out: np.ndarray, stored: list[str], wanted: tuple[str, ...], fill: float) -> np.ndarray | _Reorder:
    return out if stored == list(wanted) else _Reorder(out, stored, wanted, fill)


async def _get(g: AsyncGroup, name: str, selection: slice | tuple[slice, slice], out: np.ndarray | _Reorder | None = None) -> np.ndarray:
    """``selection`` of one array of a segment; with ``out``, decoded into it (Zarr's ``out=`` is only on its
    internal selection call: zarr is pinned to 3.x in pyproject.toml)."""
    arr = await g.getitem(name)
    if not isinstance(arr, AsyncArray):
        raise ValueError(f"segment column {name!r} is not an array")
    if isinstance(out, np.ndarray):
        indexer = BasicIndexer(selection, arr.shape, arr.metadata.chunk_grid)
        await arr._get_selection(
            indexer, out=default_buffer_prototype().nd_buffer.from_numpy_array(out), prototype=default_buffer_prototype()
        )
        return out
    got = np.asarray(await arr.getitem(selection))
    if out is not None:
        out.take(got)
    return got


def stored_names(attrs: Mapping[str, object]) -> tuple[list[str], list[str]]:
    """The text and numeric column names a segment was written with (its attributes; a later version may add
    columns)."""
    text, nums = attrs.get("text", list(TEXT)), attrs.get("numbers", list(NUMBERS))
    if not isinstance(text, list) or not isinstance(nums, list):
        raise ValueError("segment attributes 'text' and 'numbers' must be lists of column names")
    return [str(t) for t in text], [str(x) for x in nums]


def segment_dicts(g: zarr.Group) -> list[list[str]]:
    """Each text column's values, in the stored column order."""
    return parse_dicts(column(g, "dicts").tobytes(), g.attrs.get("dict_sizes"))


def parse_dicts(raw: bytes, sizes: object) -> list[list[str]]:
    """A segment's ``dicts`` array: one value per line, ``sizes`` (its attribute ``dict_sizes``) per column; without
    sizes, a JSON document (segments written before the line format, or with a value holding a newline)."""
    if sizes is None:
        dicts: list[list[str]] = json.loads(raw)
        return dicts
    if not isinstance(sizes, list):
        raise ValueError("segment attribute 'dict_sizes' must be a list of counts")
    lines = raw.decode().split("\n") if sum(sizes) else []
    return [lines[a:b] for a, b in pairwise(np.cumsum([0, *sizes]).tolist())]
