"""``planar trace repair``: a trace whose ``manifest.json`` cannot be read, made readable again without guessing.

The manifest lists the committed segments and how far the write-ahead log is consumed. When it is damaged, a
reader or a writer first tries its copy (``manifest.json.bak``, written just before each replace: see
``files.TraceFiles.recover_manifest``), and uses it only when it provably lists every committed segment.
Otherwise nothing opens the trace until this repair has run:

1. The trace's writer lock is taken (the engine must not be writing it).
2. If the manifest reads fine, nothing is done; if its copy recovers it safely, the copy is written back.
3. Otherwise the manifest is rebuilt from the segments present, each one read for its own rows and time range.
   Two segments may hold the same events: the orphan of an interrupted checkpoint and the segment the next
   writer made from the same WAL files (segments name the WAL files they consumed), or a compaction's sources
   and outputs (outputs name their sources: if every source is still there the compaction never committed and
   its outputs are left out; if some are gone it did, and the remaining sources are left out). A time overlap
   no such record explains (segments written before they recorded their origin) is not decided here: the
   repair refuses, naming the segments, until ``--drop NAME`` says which to leave out.
4. WAL files whose events all lie inside kept segments are consumed; those all newer than every kept segment
   are not; a WAL file in between stops the repair.

Nothing is deleted: a segment left out stays on disk, every decision is in the report (and printed by the
command), and the damaged manifest is kept beside the new one (``manifest.json.corrupt-<UTC time>``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise

from ..storage import CorruptStateError, ObjectLease, Store
from .files import (
    BACKUP,
    MANIFEST,
    Manifest,
    Segment,
    SegmentScan,
    TraceFiles,
    TraceLockedError,
    TraceNotFoundError,
    merged_ranges,
    scan_segment,
)
from .store import lock_local_writer


class RepairRefused(ValueError):
    """The repair cannot decide without the operator (the message says what to pass)."""


@dataclass
class RepairReport:
    root: str
    action: str  # "none" (the manifest reads fine), "copy" (recovered from its copy), "rebuilt", "dropped" (--drop)
    manifest: Manifest
    damage: str | None = None  # what was wrong with manifest.json
    left_out: dict[str, str] = field(default_factory=dict)  # segment -> why it is not listed
    set_aside: str | None = None  # where the damaged manifest was kept
    written: bool = False

    @property
    def events(self) -> int:
        return sum(s.rows for s in self.manifest.segments)

    def lines(self) -> list[str]:
        """What the command prints: one line per decision."""
        m = self.manifest
        head = {
            "none": f"{self.root}: {MANIFEST} reads fine (generation {m.generation}, {len(m.segments)} segments); nothing to repair",
            "copy": f"{self.root}: {MANIFEST}: {self.damage}; recovered from {BACKUP}",
            "rebuilt": f"{self.root}: {MANIFEST}: {self.damage}; rebuilt from the segments present",
            "dropped": f"{self.root}: {MANIFEST} reads fine; {self.damage} left out of it",
        }[self.action]
        out = [head]
        if self.action != "none":
            out.append(
                f"{'writes' if not self.written else 'wrote'} generation {m.generation}: {len(m.segments)} segments, "
                f"{self.events:,} events, WAL consumed through {m.wal_consumed}"
                + (f"; the damaged manifest kept as {self.set_aside}" if self.set_aside else "")
            )
        out += [f"left out (kept on disk): {name}: {why}" for name, why in sorted(self.left_out.items())]
        return out


def repair_manifest(root: str, drop: Iterable[str] = (), dry_run: bool = False, lease_ttl: float = 30.0) -> RepairReport:
    """Repair the manifest of the trace at ``root`` (see the module); ``drop``: segments to leave out where the
    repair cannot decide; ``dry_run``: decide and report, write nothing."""
    probe = Store(root)
    if not probe.fs.isdir(probe.path) or not any(probe.fs.exists(f"{probe.path}/{rel}") for rel in (MANIFEST, BACKUP, "segments")):
        raise TraceNotFoundError(f"{root} is not a trace: no {MANIFEST}, no {BACKUP} and no segments/")
    files = TraceFiles(root)
    with _writer(files, lease_ttl):
        raw = files.read(MANIFEST)
        if raw is None:
            if not files.list("segments") and files.read(BACKUP) is None:
                return RepairReport(files.root, "none", Manifest())
            damage = "missing"
        else:
            try:
                readable = Manifest.from_json(raw, files.url(MANIFEST))
            except CorruptStateError as exc:
                damage = exc.what
            else:
                report = _dropped(files.root, readable, set(drop))
                if report.action == "none":
                    return report
                damage = None
        if damage is not None:  # else: a readable manifest, segments dropped from it by name (--drop)
            try:
                m = files.recover_manifest(CorruptStateError(files.url(MANIFEST), damage, files.repair_remedy()))
                m.generation += 1
                report = RepairReport(files.root, "copy", m, damage)
            except CorruptStateError:  # the copy cannot stand in for it: rebuild from the segments
                report = _rebuild(files, set(drop), damage)
        if not dry_run:
            report.set_aside = files.set_aside(MANIFEST) if raw is not None else None
            data = report.manifest.to_json().encode()
            with files.lock(MANIFEST):  # what checkpoints and compaction take around their manifest updates
                files.write_atomic(BACKUP, data)
                files.write_atomic(MANIFEST, data)
            report.written = True
        return report


def _dropped(root: str, m: Manifest, drop: set[str]) -> RepairReport:
    """A readable manifest and segments named by ``--drop``: the manifest without them (a segment whose arrays are
    damaged fails every read of the trace; it said "nothing to repair" and ignored ``--drop``: an outside trial).
    The segments stay on disk; their events are no longer read."""
    gone = [seg for seg in m.segments if seg.name in drop]
    if not gone:
        return RepairReport(root, "none", m)
    kept = Manifest(m.schema_version, [seg for seg in m.segments if seg.name not in drop], m.wal_consumed, m.generation + 1)
    report = RepairReport(root, "dropped", kept, f"{len(gone)} segment(s) named by --drop")
    report.left_out = {seg.name: f"--drop: {seg.rows:,} events no longer read" for seg in gone}
    return report


@contextlib.contextmanager
def _writer(files: TraceFiles, lease_ttl: float) -> Iterator[None]:
    """The trace's writer lock for the repair (``TraceLockedError`` while an engine writes it)."""
    if files.conditional:
        lease = ObjectLease(files, "writer.lease", lease_ttl, TraceLockedError)
        lease.acquire()
        try:
            yield
        finally:
            lease.release()
    elif files.local:
        fd = lock_local_writer(files, "(planar trace repair)")
        try:
            yield
        finally:
            os.close(fd)
    else:
        yield


def _rebuild(files: TraceFiles, drop: set[str], damage: str) -> RepairReport:
    backup: Manifest | None
    try:
        raw = files.read(BACKUP)
        backup = Manifest.from_json(raw, files.url(BACKUP)) if raw is not None else None
    except CorruptStateError:
        backup = None
    present = files.list("segments")
    unknown = sorted(drop - set(present))
    if unknown:
        raise RepairRefused(f"--drop {unknown[0]}: no such segment under {files.root}/segments")
    left_out = {name: "--drop" for name in drop}
    scans: dict[str, SegmentScan] = {}
    unreadable = []
    for name in present:
        if name in drop:
            continue
        try:
            scans[name] = scan_segment(files, name)
        except Exception as exc:  # a partial write or damage
            unreadable.append(f"{name} ({type(exc).__name__})")
    if unreadable:
        raise RepairRefused(
            f"{files.root}: segment(s) that cannot be read: {', '.join(unreadable)}; pass --drop NAME for each to leave it out "
            "(it stays on disk)"
        )
    _compactions(scans, left_out)
    _wal_copies(scans, left_out)
    kept = sorted((sc.segment for name, sc in scans.items() if name not in left_out), key=lambda s: (s.t_min, s.name))
    _time_overlaps(files, kept, backup, left_out)
    kept = [s for s in kept if s.name not in left_out]
    wal_consumed = _wal_consumed(files, kept, scans, backup)
    generation = (backup.generation if backup is not None else 0) + 1
    return RepairReport(files.root, "rebuilt", Manifest(segments=kept, wal_consumed=wal_consumed, generation=generation), damage, left_out)


def _compactions(scans: dict[str, SegmentScan], left_out: dict[str, str]) -> None:
    """A compaction's outputs name their sources: all sources still there, it never committed (outputs out);
    some gone, it did (the remaining sources out)."""
    for name, sc in scans.items():
        if sc.replaces and all(r in scans for r in sc.replaces):
            left_out[name] = "output of a compaction that never committed (all its sources are present)"
    for name, sc in scans.items():
        if sc.replaces and name not in left_out:
            for src in sc.replaces:
                if src in scans and src not in left_out:
                    left_out[src] = f"replaced by the compaction that wrote {name} (not yet removed)"


def _wal_copies(scans: dict[str, SegmentScan], left_out: dict[str, str]) -> None:
    """Two segments made from the same WAL files: an interrupted checkpoint's orphan and the next writer's
    recovery of those files. Either holds their events; the larger one (the orphan also holds market data) stays."""
    walled = sorted(
        ((sc.wal, -sc.segment.rows, name) for name, sc in scans.items() if sc.wal is not None and name not in left_out),
        key=lambda x: (x[0][0], x[1]),
    )
    for i, (wal, _, name) in enumerate(walled):
        if name in left_out:
            continue
        for other_wal, _, other in walled[i + 1 :]:
            if other not in left_out and other_wal[0] <= wal[1] and wal[0] <= other_wal[1]:
                bigger, smaller = (name, other) if scans[name].segment.rows >= scans[other].segment.rows else (other, name)
                left_out[smaller] = f"holds the events of WAL files {wal[0]}..{wal[1]} again (a checkpoint's orphan); {bigger} kept"
                if smaller == name:
                    break


def _time_overlaps(files: TraceFiles, kept: list[Segment], backup: Manifest | None, left_out: dict[str, str]) -> None:
    """Events have strictly increasing timestamps, so committed segments never overlap in time: an overlap left is
    an orphan nothing recorded. The manifest's copy decides when it lists one side and covers the other;
    otherwise the operator does (``--drop``)."""
    listed = {s.name for s in backup.segments} if backup is not None else set()
    covered = merged_ranges([s for s in kept if s.name in listed])
    for a, b in pairwise(kept):
        if not (a.rows and b.rows) or b.t_min > a.t_max or a.name in left_out or b.name in left_out:
            continue
        for inside, outside in ((a, b), (b, a)):
            if inside.name in listed and outside.name not in listed and any(x <= outside.t_min and outside.t_max <= y for x, y in covered):
                left_out[outside.name] = f"not in {BACKUP}, and its events' time is covered by segments it lists (an orphan)"
                break
        else:
            raise RepairRefused(
                f"{files.root}: segments {a.name} ({a.rows} events) and {b.name} ({b.rows} events) overlap in time: one is an orphan "
                "of an interrupted checkpoint or compaction written before segments recorded their origin; pass --drop NAME for "
                "the one to leave out (it stays on disk)"
            )


def _wal_consumed(files: TraceFiles, kept: list[Segment], scans: dict[str, SegmentScan], backup: Manifest | None) -> int:
    """The last WAL file whose events are in kept segments; the ones after it hold events no segment has."""
    ranges = merged_ranges(kept)
    newest = max((s.t_max for s in kept if s.rows), default=-1)
    consumed, fresh = [], []
    for seq in files.list_wal():
        rel = f"wal/{seq:012d}.jsonl"
        try:
            stamps = [int(json.loads(line)["timestamp"]) for line in (files.read(rel) or b"").splitlines() if line.strip()]
        except (ValueError, KeyError, TypeError):
            raise RepairRefused(f"{files.url(rel)} cannot be read; move it out of wal/ if its events are not needed") from None
        if not stamps:
            continue
        if all(any(x <= t <= y for x, y in ranges) for t in stamps):
            consumed.append(seq)
        elif min(stamps) > newest:
            fresh.append(seq)
        else:
            raise RepairRefused(f"{files.url(rel)} holds events that are in no kept segment yet older than the newest kept one")
    if consumed and fresh and max(consumed) > min(fresh):
        raise RepairRefused(f"{files.root}: WAL file {min(fresh)} is not in any segment but {max(consumed)} after it is")
    names = {s.name for s in kept}
    recorded = [sc.wal[1] for name, sc in scans.items() if sc.wal is not None and name in names]
    base = max([*consumed, *recorded, backup.wal_consumed if backup is not None else -1, -1])
    return min(base, min(fresh) - 1) if fresh else base
