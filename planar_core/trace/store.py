"""EventTrace: an append-only event log on Zarr v3 with a write-ahead log for order intents.

Layout under the trace root (a local directory or any fsspec URL)::

    manifest.json           committed state: segments (name, rows, t_min, t_max), WAL files consumed
    segments/<n>/           one Zarr group per checkpoint or compaction: columnar arrays (see schema.py)
    wal/<seq>.jsonl         small immutable files of events not yet in a segment
    archive/                the same layout, for events past retention (compaction)
    writer.lock             held by the one writer for its lifetime (local roots)

Why this shape: a Zarr array cannot be grown atomically, so nothing is ever
grown. A checkpoint writes a new segment and then replaces ``manifest.json``
(one atomic rename / one object PUT); a crash before that leaves an orphan
segment nobody reads. Order intents cannot wait for a checkpoint, so each
flush writes the buffered events as one immutable WAL file (tmp + rename):
cheap, durable across a process kill, and all-or-nothing. Readers take the
manifest, its segments, and the WAL files it has not consumed, in order.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import operator
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import numpy as np

from ..append_log import AppendLog
from ..model.json import integer
from ..model.types import Json
from ..storage import ObjectLease, naming
from .columns import Columns
from .files import MANIFEST, Manifest, Segment, TraceClosedError, TraceFiles, TraceLockedError, write_segment
from .reading import extract_events_by_date, read_trace, to_records
from .schema import DURABLE_KINDS, MARKET_DATA_KINDS

log = logging.getLogger("planar.trace")


def _values(shape: tuple[str, ...], rows: list[dict[str, object]]) -> list[list[object]]:
    """Buffered market data of one shape ((kind, field names...) -> the calls' kwargs plus ``timestamp`` and
    ``kind``) column by column (timestamp, kind, fields...), each extracted in C by an itemgetter."""
    return [list(map(operator.itemgetter(name), rows)) for name in ("timestamp", "kind", *shape[1:])]


class CheckpointFailed(OSError):
    """A background checkpoint failed (its cause chained): an ``OSError``, so that a ``GuardedSink`` halts on it
    whatever the cause (a full disk, an object store's error, an event its encoder refused)."""

    def __init__(self, root: str, cause: BaseException) -> None:
        super().__init__(f"trace {root}: a checkpoint failed: {type(cause).__name__}: {cause}")
        self.__cause__ = cause


def lock_local_writer(files: TraceFiles, purpose: str = "") -> int:
    """Take a local trace's ``writer.lock`` (an flock, released when the descriptor closes or the process dies) or
    raise ``TraceLockedError`` naming its holder; returns the descriptor."""
    path = f"{files.path}/writer.lock"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        with open(path, errors="replace") as fh:  # the holder's own words; only shown, never parsed
            holder = " ".join(fh.read().split())[:200] or "another process"
        raise TraceLockedError(f"trace {files.root} is being written by {holder}; one writer per trace") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}{' ' + purpose if purpose else ''}".encode())
    except OSError as exc:  # a full disk: the lock must not stay held by a descriptor nobody closes (an outside
        os.close(fd)  # trial: the flow's retry in this process was then told another writer held the trace)
        raise OSError(exc.errno, exc.strerror, path) from exc
    return fd


class EventTrace:
    """The writer side; also the engine's EventSink. One writer per trace, enforced by ``writer.lock``."""

    def __init__(
        self,
        root: str,
        flush_interval: float = 60.0,
        max_buffer: int = 50_000,
        checkpoint_every: int = 50_000,
        checkpoint_interval: float = 300.0,
        max_wal_files: int = 500,
        trace_market_data: bool = False,
        trace_api_calls: bool = True,
        writer: bool = True,
        fsync: bool = True,
        lease_ttl: float = 30.0,
        clock_ns: Callable[[], int] = time.time_ns,
        wal: bool = True,
        background: bool = False,
    ) -> None:
        """``lease_ttl``: on object storage, how long the single-writer lease lasts without renewal (a dead
        writer's lease can be taken over after that long; see ``storage.ObjectLease``). ``clock_ns``: the events'
        time (a backtest's trace is stamped with simulated time, so its analysis reads the market's dates). ``wal``:
        False keeps flushed events in memory until the next checkpoint instead of writing a WAL file per flush (a
        simulation, which has no crash to survive: a backtest's orders would otherwise each write a file).
        ``background``: a checkpoint that falls due while events are recorded is encoded and written on a thread of
        its own (a live engine: the caller is its event loop, which a checkpoint of 50 000 events held for a third
        of a second); False: in the caller, as ``checkpoint()`` always is."""
        self.clock_ns = clock_ns
        self.wal = wal
        self.files = TraceFiles(str(root), fsync=fsync)
        self.root = self.files.root
        self.flush_interval = flush_interval
        self.max_buffer = max_buffer
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self.max_wal_files = max_wal_files
        self._wal_files = 0
        self._last_checkpoint = time.monotonic()
        self.trace_market_data = trace_market_data
        self.trace_api_calls = trace_api_calls
        self._buffer: list[Json] = []
        self._wal_pending: list[Json] = []  # in WAL files, not yet in a segment
        self._wal_from: int | None = None  # the first of those WAL files
        self._wal_log: tuple[int, AppendLog] | None = None  # local roots: the WAL file being appended to, and its seq
        # market data skips the WAL: the calls' kwargs, by shape ((kind, field names...)), until the next checkpoint
        self._market: dict[tuple[str, ...], list[dict[str, object]]] = {}
        self._market_rows = 0
        self._lock = threading.RLock()
        self.background = background
        self._writing = False  # a checkpoint is between taking its events and committing its segment
        self._written = threading.Condition(self._lock)  # ... and says so when it is done
        self._failed: CheckpointFailed | None = None  # a background checkpoint's failure, until taken (take_failure)
        self._retry_at = 0.0  # after a failed background checkpoint: none starts before this (monotonic seconds)
        self._backoff = 0.0
        self._last_ts = 0
        self._last_flush = time.monotonic()
        self._lock_fd: int | None = None
        # one writer per trace: an flock on a local root, a lease object on object storage
        self._lease = ObjectLease(self.files, "writer.lease", lease_ttl, TraceLockedError) if writer and self.files.conditional else None
        if writer and not self.files.local and not self.files.conditional:
            log.warning("trace %s: this store has no conditional writes; one writer per trace is not enforced", self.root)
        self._group = 0  # depth of group() blocks open
        self._group_due = False
        self.closed = False
        if writer:
            self._acquire_writer_lock()
            try:
                raw = self.files.read(MANIFEST)
                m, damaged = self.files.manifest_of(raw)  # unreadable: recovered from its copy, or CorruptStateError
                if raw is None or damaged is not None:  # a new trace's first manifest, or the recovered one written back
                    m = self.files.update_manifest(lambda m: None)
                self._wal_seq = max([m.wal_consumed, *self.files.list_wal()]) + 1
                self._last_ts = max((s.t_max for s in m.segments), default=0)
                self._recover(m)
            except BaseException as exc:
                self._release_writer_lock()
                if isinstance(exc, OSError) and (named := naming(exc, self.root)) is not None:
                    raise named from exc  # zarr's own writes name no path: a full disk would say nothing of where
                raise

    def _recover(self, m: Manifest) -> None:
        """A killed writer may have left WAL files no segment holds: move them into a segment before anything
        new is written, so no later checkpoint can mark them consumed without their events."""
        leftover = [seq for seq in self.files.list_wal() if seq > m.wal_consumed]
        events: list[Json] = []
        for seq in leftover:
            raw = self.files.read(f"wal/{seq:012d}.jsonl")
            for line in (raw or b"").decode().splitlines():
                with contextlib.suppress(json.JSONDecodeError):  # a torn line cannot exist (tmp + rename); be safe anyway
                    events.append(json.loads(line))
        if events:
            events.sort(key=lambda e: integer(e["timestamp"]))
            self._last_ts = max(self._last_ts, integer(events[-1]["timestamp"]))
            self._commit_segment(Columns.from_events(events), min(leftover), max(leftover))
            log.info("trace %s: recovered %d events from %d WAL files left by the previous writer", self.root, len(events), len(leftover))

    # ------------------------------------------------------------- locking
    def _acquire_writer_lock(self) -> None:
        if self._lease is not None:
            self._lease.acquire()
            return
        if self.files.local:
            self._lock_fd = lock_local_writer(self.files)

    # ------------------------------------------------------------- EventSink
    def record(self, kind: str, **fields: object) -> None:
        """Append one event. Durable kinds are written to the WAL before this returns (synced by its committer), unless inside
        ``group()``; market data is kept in memory, by shape, until the next checkpoint (it is the volume, and
        losing the last minutes of it in a crash loses nothing the exchange cannot give again)."""
        if self.closed:
            raise TraceClosedError(f"record({kind!r}) on the closed trace {self.root}")
        if kind in MARKET_DATA_KINDS:  # the hot path, inline: the call's own kwargs dict kept under its shape
            if not self.trace_market_data:
                return
            ts = self.clock_ns()
            with self._lock:
                if ts <= self._last_ts:
                    ts = self._last_ts + 1
                self._last_ts = ts
                shape = (kind, *fields)
                rows = self._market.get(shape)
                if rows is None:
                    rows = self._market[shape] = []
                fields["timestamp"], fields["kind"] = ts, kind
                rows.append(fields)
                self._market_rows += 1
                due = self._market_rows >= self.checkpoint_every or (  # the clock is read once every 1024 events
                    not self._market_rows & 1023 and time.monotonic() - self._last_checkpoint >= self.checkpoint_interval
                )
            if due:
                self._checkpoint_due()
            return
        if kind == "api_call" and not self.trace_api_calls:
            return
        ts = self.clock_ns()
        with self._lock:
            ts = max(ts, self._last_ts + 1)  # strictly increasing: the by-date search relies on it
            self._last_ts = ts
            self._buffer.append({"timestamp": ts, "kind": kind, **fields})
            due = (
                kind in DURABLE_KINDS or len(self._buffer) >= self.max_buffer or time.monotonic() - self._last_flush >= self.flush_interval
            )
            if due and self._group:  # inside group(): one flush when the group ends
                self._group_due, due = True, False
        if due:
            self.flush()

    @contextlib.contextmanager
    def group(self) -> Iterator[None]:
        """Group commit: the durable events recorded inside are flushed together, once, when the outermost group
        ends, before control goes back to whoever acts on them (one WAL write instead of one per event). Only for
        synchronous blocks: a group held across an await would defer other tasks' order intents too."""
        with self._lock:
            self._group += 1
        try:
            yield
        finally:
            with self._lock:
                self._group -= 1
                flush = self._group == 0 and self._group_due
                if flush:
                    self._group_due = False
            if flush:
                self.flush()

    def flush(self) -> None:
        """Make every buffered event durable (one WAL write); checkpoint into a segment when enough piled up."""
        with self._lock:
            self._write_buffer()
            due = (
                len(self._wal_pending) >= self.checkpoint_every
                or self._wal_files >= self.max_wal_files
                or (self._wal_pending and time.monotonic() - self._last_checkpoint >= self.checkpoint_interval)
            )
        if due:
            self._checkpoint_due()

    def _write_buffer(self) -> None:
        """The buffered events into the WAL (in memory without one), in line for the next checkpoint."""
        with self._lock:
            if self._buffer and not self.wal:
                self._wal_pending.extend(self._buffer)
                self._buffer = []
            elif self._buffer:
                data = "".join(json.dumps(e, separators=(",", ":"), default=str) + "\n" for e in self._buffer).encode()
                self._hold()
                seq = self._append_wal(data)
                if self._wal_from is None:
                    self._wal_from = seq
                self._wal_pending.extend(self._buffer)
                self._buffer = []
            self._last_flush = time.monotonic()

    def _append_wal(self, data: bytes) -> int:
        """Write one flush's events to the WAL; returns the WAL file's sequence number. A local root appends to the
        open log (one ``write``; its fdatasync is the committer thread's, append_log.py); object stores PUT one
        file per flush (nothing appends there). A failed append leaves its log behind: the next flush starts a
        new file, and the events stay in the buffer until one succeeds."""
        if not self.files.local:
            seq = self._wal_seq
            self._wal_seq += 1
            self.files.write_atomic(f"wal/{seq:012d}.jsonl", data)
            self._wal_files += 1
            return seq
        if self._wal_log is None:
            seq = self._wal_seq
            self._wal_seq += 1
            self._wal_files += 1
            os.makedirs(f"{self.files.path}/wal", exist_ok=True)
            self._wal_log = (seq, AppendLog(f"{self.files.path}/wal/{seq:012d}.jsonl", fsync=self.files.fsync))
        seq, log_ = self._wal_log
        try:
            log_.append(data)
        except OSError:
            self._wal_log = None
            log_.abandon()
            raise
        return seq

    def _end_wal(self) -> None:
        """The open WAL log synced and closed (a checkpoint consumes it; the next flush starts another)."""
        if self._wal_log is not None:
            _, log_ = self._wal_log
            self._wal_log = None
            log_.close()

    def _checkpoint_due(self) -> None:
        """A checkpoint fell due: written here, or (``background``) on a thread unless one is already writing (the
        events that piled up meanwhile wait for the next flush that finds one due) or one failed lately (retried
        after a pause that doubles, from 1 s to ``checkpoint_interval``: each attempt encodes the whole backlog)."""
        if not self.background:
            self.checkpoint()
            return
        with self._lock:
            if self._writing or self.closed or time.monotonic() < self._retry_at:
                return
            self._writing = True  # claimed here, so that no second thread starts before this one takes its events
        try:
            threading.Thread(target=self._background_checkpoint, name=f"trace-checkpoint {self.root}", daemon=True).start()
        except BaseException as exc:  # no thread (the process's limit): nothing was taken; the next due one retries
            self._background_failed(exc)
            with self._lock:
                self._writing = False
                self._written.notify_all()

    def _background_checkpoint(self) -> None:
        with contextlib.suppress(BaseException):  # recorded by ``_checkpoint`` before it released its claim
            self._checkpoint(claimed=True)

    def _background_failed(self, exc: BaseException) -> None:
        log.error("trace %s: a checkpoint failed (%s: %s); its events stay in the WAL for the next one", self.root, type(exc).__name__, exc)
        with self._lock:
            self._backoff = min(max(1.0, 2 * self._backoff), self.checkpoint_interval)
            self._retry_at = time.monotonic() + self._backoff
            if self._failed is None:  # the first of an episode: what the writer is told
                self._failed = exc if isinstance(exc, CheckpointFailed) else CheckpointFailed(self.root, exc)

    def take_failure(self) -> "CheckpointFailed | None":
        """A background checkpoint's failure not yet reported (and forget it): its owner (``GuardedSink``, on its
        own thread) halts on it. The events it held are not lost: back in line for the next checkpoint, and in
        the WAL meanwhile."""
        if self._failed is None:
            return None
        with self._lock:
            failed, self._failed = self._failed, None
            return failed

    @property
    def checkpointing(self) -> bool:
        """Whether a checkpoint is being written (a background one: its segment not committed yet)."""
        return self._writing

    def checkpoint(self) -> Segment | None:
        """Move WAL'd events and the buffered market data into a new Zarr segment, atomically with consuming the
        WAL files; after a background checkpoint still being written, if any. Returns the new segment (None:
        nothing was waiting)."""
        return self._checkpoint(claimed=False)

    def _checkpoint(self, claimed: bool) -> Segment | None:
        """The events are taken under the lock; they are encoded and written outside it (a background checkpoint
        leaves the recorder free meanwhile), and given back, ahead of any recorded since, if that fails."""
        with self._lock:
            if not claimed:
                while self._writing:
                    self._written.wait()
                self._writing = True
            try:
                self._write_buffer()
                events, market, market_rows = self._wal_pending, self._market, self._market_rows
                wal_from, upto = self._wal_from, (self._wal_seq - 1 if self.wal else None)
                if not events and not market_rows:
                    self._writing = False
                    self._written.notify_all()
                    return None
                self._wal_pending, self._market, self._market_rows, self._wal_from = [], {}, 0, None
                wal_log, self._wal_log = self._wal_log, None  # closed below: the next flush starts another file
                self._last_checkpoint = time.monotonic()
                wal_files, self._wal_files = self._wal_files, 0
            except BaseException as exc:
                if claimed:  # said before the claim is released: whoever waits for it finds the failure
                    self._background_failed(exc)
                self._writing = False
                self._written.notify_all()
                raise
        try:
            if wal_log is not None:
                wal_log[1].close()
            cols = Columns.concat(
                [
                    Columns.from_events(events),
                    Columns.from_columns({("timestamp", "kind", *shape[1:]): _values(shape, rows) for shape, rows in market.items()}),
                ]
            )
            if len(cols) and np.any(np.diff(cols.timestamp) < 0):
                cols = cols.take(np.argsort(cols.timestamp, kind="stable"))
            seg = self._commit_segment(cols, wal_from, upto)
            if claimed:
                with self._lock:
                    self._backoff, self._retry_at = 0.0, 0.0
            return seg
        except BaseException as exc:
            with self._lock:  # back in line, ahead of what came since, for the next checkpoint
                if claimed:  # said before the claim is released: whoever waits for it finds the failure
                    self._background_failed(exc)
                self._wal_pending[:0] = events
                for shape, rows in market.items():
                    self._market.setdefault(shape, [])[:0] = rows
                self._market_rows += market_rows
                self._wal_from = wal_from if wal_from is not None else self._wal_from
                self._wal_files += wal_files
            raise
        finally:
            with self._lock:
                self._writing = False
                self._written.notify_all()

    def sync(self) -> None:
        """Everything recorded so far, readable by a reader: buffered events flushed, a background checkpoint
        finished (committed, or failed with its events back in the WAL's line), buffered market data checkpointed."""
        with self._lock:
            self.flush()
            while self._writing:
                self._written.wait()
            if self._market_rows:
                self.checkpoint()

    def append_columns(self, cols: Columns) -> Segment:
        """Bulk append of ready-made columns (imports, benchmarks); bypasses the WAL, commits at once."""
        with self._lock:
            self.sync()
            ts = cols.timestamp
            if len(ts) and (int(ts[0]) <= self._last_ts or np.any(np.diff(ts) <= 0)):
                raise ValueError("append_columns: timestamps must be strictly increasing and after the trace's last event")
            seg = self._commit_segment(cols, None, None)
            if len(ts):
                self._last_ts = int(ts[-1])
            return seg

    def _commit_segment(self, cols: Columns, wal_from: int | None, wal_upto: int | None) -> Segment:
        """``cols`` as a new segment, then the manifest that names it (and marks the WAL files ``wal_from`` ..
        ``wal_upto`` consumed), then those files removed."""
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        # the WAL files it consumes, in the segment itself: a rebuilt manifest can tell its orphan from its copy
        consumed = wal_upto is not None and wal_from is not None and wal_from <= wal_upto
        seg = write_segment(self.files, name, cols, provenance={"wal": [wal_from, wal_upto]} if consumed else None)
        self._hold()

        def add(m: Manifest) -> None:
            m.segments.append(seg)
            if wal_upto is not None:
                m.wal_consumed = max(m.wal_consumed, wal_upto)

        try:
            self.files.update_manifest(add)
        except BaseException:
            if not self._listed(seg):
                raise
            log.warning(
                "trace %s: the manifest naming segment %s was written, though its update raised", self.root, seg.name, exc_info=True
            )
        # committed: from here nothing may give the events back (they would be written twice). A WAL file that
        # cannot be removed now is one the manifest marks consumed: no reader, nor the next writer, reads it, and
        # the next checkpoint removes it.
        if wal_upto is not None:
            try:
                for seq in self.files.list_wal():
                    if seq <= wal_upto:
                        self.files.remove(f"wal/{seq:012d}.jsonl")
            except Exception as exc:
                log.warning("trace %s: consumed WAL files not removed yet (%s)", self.root, exc)
        return seg

    def _listed(self, seg: Segment) -> bool:
        """Whether the committed manifest names ``seg`` (read again; False when it cannot be read)."""
        try:
            return any(s.name == seg.name for s in self.files.load_manifest().segments)
        except Exception:
            return False

    def close(self) -> None:
        """Flush and checkpoint everything, release the writer lock."""
        if self.closed:
            return
        with self._lock:
            self.flush()
            self.checkpoint()
            self._end_wal()
            self.closed = True
        self._release_writer_lock()

    def _hold(self) -> None:
        """Object storage: refuse to write unless the lease is still ours (a local root holds its flock)."""
        if self._lease is not None:
            self._lease.hold()

    def abandon(self) -> None:
        """Give the trace up without writing to it (the engine being built around it failed): release the writer
        lock, so a retry in this process is not refused as a second writer. What was recorded and flushed stays in
        WAL files, which the next writer recovers."""
        self.closed = True
        self._release_writer_lock()

    def _release_writer_lock(self) -> None:
        if self._lease is not None:
            self._lease.release()
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # ------------------------------------------------------------- convenience reads (tests, reports)
    def of(self, kind: str) -> list[Json]:
        """Every recorded event of one kind (flushes first)."""
        self.sync()
        return to_records(extract_events_by_date(self.files, kind=kind))

    @property
    def events(self) -> list[Json]:
        self.sync()
        return to_records(read_trace(self.files))

    def __enter__(self) -> "EventTrace":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EventTrace({self.root!r})"
