"""A trace whose manifest.json cannot be read (issue 25, item 9): recovered from its copy when the copy provably
lists every committed segment (with a WARNING saying so), else a one-line error naming ``planar trace repair``,
which rebuilds the manifest from the segments present; every event is read back exactly once. The orphans a
repair must leave out are made by real processes killed at the commit step (a checkpoint, a compaction)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import fsspec
import pytest

from planar_core.storage import CorruptStateError
from planar_core.trace import EventTrace, TraceLockedError, read_trace
from planar_core.trace.files import TraceFiles, read_segment, write_segment

ORPHAN_CHECKPOINT = """
import os, sys
from planar_core.trace import EventTrace
et = EventTrace(sys.argv[1], checkpoint_every=10**9, checkpoint_interval=1e9, max_wal_files=10**9)
for i in range(int(sys.argv[2]), int(sys.argv[3])):
    et.record("order_placed", seq=i, symbol="X")  # durable: in a WAL file before record() returns
et.files.update_manifest = lambda change: os._exit(9)  # killed once its segment is written, before the manifest names it
et.checkpoint()
"""

KILLED_WRITER = """
import os, sys
from planar_core.trace import EventTrace
et = EventTrace(sys.argv[1], checkpoint_every=10**9, checkpoint_interval=1e9, max_wal_files=10**9)
for i in range(int(sys.argv[2]), int(sys.argv[3])):
    et.record("order_placed", seq=i, symbol="X")
os._exit(9)
"""

ORPHAN_COMPACTION = """
import os, sys
from planar_core.trace.compaction import compact_trace
from planar_core.trace.files import TraceFiles
files = TraceFiles(sys.argv[1])
files.update_manifest = lambda change: os._exit(9)  # killed once its outputs are written, before the swap
compact_trace(files, target_rows=7, market_data_horizon=None)
"""


def seqs(root: str) -> list[int]:
    return [int(p["seq"]) for p in read_trace(root)["payload"]]


def write(root: str, first: int, last: int, every: int = 10) -> None:
    with EventTrace(root) as et:
        for i in range(first, last):
            et.record("order_placed", seq=i, symbol="X")
            if (i + 1) % every == 0:
                et.checkpoint()


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=120)


def repair(root: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run("-m", "planar_core", "trace", "repair", "--root", root, *extra)


def test_a_damaged_manifest_is_recovered_from_its_copy(tmp_path: Path, caplog) -> None:
    root = str(tmp_path / "t")
    write(root, 0, 35)
    manifest = tmp_path / "t" / "manifest.json"
    truncate(manifest)
    caplog.set_level(logging.WARNING)
    assert seqs(root) == list(range(35))  # before: a bare JSONDecodeError
    said = [r.getMessage() for r in caplog.records if "recovered from its copy manifest.json.bak" in r.getMessage()]
    assert said and "manifest.json: not valid JSON (truncated?)" in said[0] and "4 segments, 35 events" in said[0]

    manifest.unlink()  # gone altogether: before, the next writer began an empty manifest and every event vanished
    write(root, 35, 40)  # the writer recovers it, writes it back, and goes on
    assert seqs(root) == list(range(40))
    assert manifest.is_file() and not list((tmp_path / "t").glob("manifest.json.corrupt-*"))  # nothing to keep: it was absent
    truncate(manifest)
    write(root, 40, 41)
    assert list((tmp_path / "t").glob("manifest.json.corrupt-*"))  # the damaged one kept beside the rewritten one
    assert seqs(root) == list(range(41))


def test_a_copy_that_lacks_a_segment_is_not_trusted(tmp_path: Path) -> None:
    root = str(tmp_path / "t")
    write(root, 0, 20)
    copy = tmp_path / "t" / "manifest.json.bak"
    older = copy.read_bytes()
    write(root, 20, 30)
    copy.write_bytes(older)  # a copy one commit behind (say, restored from a backup)
    truncate(tmp_path / "t" / "manifest.json")
    with pytest.raises(CorruptStateError) as err:
        read_trace(root)
    msg = str(err.value)
    assert "\n" not in msg and f"{root}/manifest.json" in msg and f"planar trace repair --root {root}" in msg
    assert "does not list segment" in msg
    out = repair(root)
    assert out.returncode == 0, out.stderr
    assert "rebuilt from the segments present" in out.stdout
    assert seqs(root) == list(range(30))


def test_repair_rebuilds_from_the_segments_every_event_once(tmp_path: Path) -> None:
    root = str(tmp_path / "t")
    write(root, 0, 30)
    killed = run("-c", ORPHAN_CHECKPOINT, root, "30", "40")  # an orphan: events 30..39, their WAL files still there
    assert killed.returncode == 9, killed.stderr
    write(root, 40, 50)  # the next writer makes a segment of those WAL files (the orphan's copy), then goes on
    killed = run("-c", ORPHAN_COMPACTION, root)  # outputs for every segment, never swapped in
    assert killed.returncode == 9, killed.stderr
    write(root, 50, 60)
    killed = run("-c", KILLED_WRITER, root, "60", "63")  # events a killed writer left in WAL files only
    assert killed.returncode == 9, killed.stderr
    expected = seqs(root)
    assert expected == list(range(63))
    segments = sorted(p.name for p in (tmp_path / "t" / "segments").iterdir())
    truncate(tmp_path / "t" / "manifest.json", 0.4)
    truncate(tmp_path / "t" / "manifest.json.bak", 0.0)

    with pytest.raises(CorruptStateError) as err:  # before: JSONDecodeError, and nothing to recover with
        read_trace(root)
    assert "\n" not in str(err.value) and f"planar trace repair --root {root}" in str(err.value)

    dry = repair(root, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "writes generation" in dry.stdout
    with pytest.raises(CorruptStateError):
        read_trace(root)  # a dry run writes nothing

    out = repair(root)
    assert out.returncode == 0, out.stderr
    left = [line for line in out.stdout.splitlines() if line.startswith("left out")]
    assert any("holds the events of WAL files" in line for line in left)  # the orphan checkpoint
    assert sum("compaction that never committed" in line for line in left) >= 2  # the compaction's outputs
    assert sorted(p.name for p in (tmp_path / "t" / "segments").iterdir()) == segments  # nothing deleted
    assert seqs(root) == expected  # every event exactly once, those still in WAL files too
    assert list((tmp_path / "t").glob("manifest.json.corrupt-*"))

    again = repair(root)
    assert again.returncode == 0 and "reads fine" in again.stdout


def test_repair_asks_which_segment_when_nothing_records_it(tmp_path: Path) -> None:
    root = str(tmp_path / "t")
    write(root, 0, 10)
    files = TraceFiles(root)
    seg = files.load_manifest().segments[0]
    orphan = "00000000000000000001-0ld0rfan"
    write_segment(files, orphan, read_segment(files, seg))  # the same events, no origin: an orphan from before the attributes
    truncate(tmp_path / "t" / "manifest.json", 0.0)
    truncate(tmp_path / "t" / "manifest.json.bak", 0.0)
    out = repair(root)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert seg.name in out.stderr and orphan in out.stderr and "--drop NAME" in out.stderr
    out = repair(root, "--drop", orphan)
    assert out.returncode == 0, out.stderr
    assert f"left out (kept on disk): {orphan}: --drop" in out.stdout
    assert seqs(root) == list(range(10))


def test_a_segment_whose_arrays_are_damaged_is_dropped_by_name(tmp_path: Path) -> None:
    """An outside crash trial truncated a segment's payload chunk: every read of the trace failed (a Zstd error), and
    ``planar trace repair --drop SEGMENT`` answered "reads fine; nothing to repair" with the manifest readable. The
    named segment now leaves the manifest (kept on disk); the rest of the trace reads again."""
    root = str(tmp_path / "t")
    write(root, 0, 30)
    files = TraceFiles(root)
    first, *_ = files.load_manifest().segments
    chunks = [
        p for p in (tmp_path / "t" / "segments" / first.name).rglob("*") if p.is_file() and p.stat().st_size > 64 and "payload" in str(p)
    ]
    assert chunks
    for chunk in chunks:
        truncate(chunk, 0.3)
    with pytest.raises(CorruptStateError, match=f"segment {first.name} .*cannot be read.*--drop {first.name}"):
        seqs(root)  # named, with the remedy (it was a bare "Zstd decompression error", the segment unnamed)
    for command in (["between", "2000-01-01", "2100-01-01"], ["tail", "-n", "100"]):  # the CLI: one line, exit 2
        out = run("-m", "planar_core", "trace", *command, "--root", root)
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert f"--drop {first.name}" in out.stderr
    assert "nothing to repair" in repair(root).stdout  # no --drop: nothing is decided for the operator
    out = repair(root, "--drop", first.name)
    assert out.returncode == 0, out.stderr
    assert f"left out (kept on disk): {first.name}: --drop" in out.stdout
    assert seqs(root) == list(range(10, 30)) and (tmp_path / "t" / "segments" / first.name).exists()


def test_repair_refuses_while_the_trace_is_written(tmp_path: Path) -> None:
    root = str(tmp_path / "t")
    write(root, 0, 5)
    truncate(tmp_path / "t" / "manifest.json")
    with EventTrace(root) as et:  # recovered from the copy; this writer holds the trace
        et.record("order_placed", seq=5)
        out = repair(root)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "being written by" in out.stderr
    bad = repair(str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and "is not a trace" in bad.stderr


# ------------------------------------------------------------------------------------------------ object storage
def test_on_object_storage_a_damaged_manifest_and_lease(s3_root: str, caplog) -> None:
    with EventTrace(s3_root, checkpoint_every=10) as et:
        for i in range(25):
            et.record("order_placed", seq=i)
    fs = fsspec.filesystem("s3")
    fs.pipe_file(f"{s3_root}/manifest.json", b'{"schema_version": 2, "generation": 3, "segm')
    fs.invalidate_cache()
    caplog.set_level(logging.WARNING)
    assert seqs(s3_root) == list(range(25))
    assert any("recovered from its copy" in r.getMessage() for r in caplog.records)

    fs.pipe_file(f"{s3_root}/writer.lease", b'{"owner": "h:1", "expi')  # a lease object nobody can read
    fs.invalidate_cache()
    with pytest.raises(CorruptStateError) as err:
        EventTrace(s3_root, lease_ttl=3.0)
    msg = str(err.value)
    assert "\n" not in msg and f"{s3_root}/writer.lease" in msg and "counts as held" in msg
    deadline = time.monotonic() + 30
    while True:  # once unchanged for a whole time to live, it is taken over like an expired lease
        try:
            et = EventTrace(s3_root, lease_ttl=3.0)
            break
        except (CorruptStateError, TraceLockedError):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    et.record("order_placed", seq=25)
    et.close()
    assert seqs(s3_root) == list(range(26))


def test_a_store_that_does_not_answer_is_not_called_a_damaged_segment(tmp_path: Path) -> None:
    """A review: the damaged-segment error also caught a timeout of object storage and told the operator to drop the
    segment (its events lost to every read). A store that did not answer, or refused access, is raised as it is."""
    from planar_core.trace.files import segment_read

    root = str(tmp_path / "t")
    write(root, 0, 10)
    files = TraceFiles(root)
    (seg,) = files.load_manifest().segments
    for transient in (ConnectionError("reset"), TimeoutError("no answer"), PermissionError(13, "denied")):
        with pytest.raises(type(transient)), segment_read(files, seg):
            raise transient
    with pytest.raises(CorruptStateError, match=f"--drop {seg.name}"), segment_read(files, seg):
        raise RuntimeError("Zstd decompression error: invalid input data")
