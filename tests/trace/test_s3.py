"""The trace on an S3-compatible object store (a local moto server): writing, reading, compaction, the
single-writer lease, concurrent manifest updates, and SIGKILL mid-append and mid-compaction."""

from __future__ import annotations

import random
import time
from pathlib import Path

import fsspec
import pytest

from planar_core.trace import EventTrace, TraceLockedError, read_trace, trace_tail
from planar_core.trace.compaction import compact_trace
from planar_core.trace.files import Manifest, Segment, TraceFiles

from .killing import kill_midway, run_and_kill

WRITER = Path(__file__).with_name("crash_writer.py")


def seqs(root: str) -> list[int]:
    return [int(p["seq"]) for p in read_trace(root)["payload"]]


def open_when_free(root: str, deadline_s: float = 30.0, **kw: object) -> EventTrace:
    """A new writer, once the previous one's lease has expired (waited on, with a deadline)."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return EventTrace(root, **kw)  # type: ignore[arg-type]
        except TraceLockedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_trace_lives_in_the_bucket(s3_root: str) -> None:
    with EventTrace(s3_root, checkpoint_every=20) as et:
        for i in range(50):
            et.record("order_placed" if i % 5 == 0 else "api_call", seq=i, client_order_id=f"c{i}", endpoint="x", latency_ms=1.0)
        assert [r["seq"] for r in trace_tail(et, 3)] == [47, 48, 49]
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    names = {p.rsplit("/", 1)[-1] for p in fs.ls(s3_root)}
    assert {"manifest.json", "segments", "writer.lease"} <= names  # really on the object store
    assert seqs(s3_root) == list(range(50))
    report = compact_trace(s3_root, target_rows=30, market_data_horizon=None)
    assert report.segments_after == 2 and seqs(s3_root) == list(range(50))


def test_one_writer_on_object_storage(s3_root: str) -> None:
    first = EventTrace(s3_root, lease_ttl=2.0)
    with pytest.raises(TraceLockedError, match="is held by"):
        EventTrace(s3_root, lease_ttl=2.0)
    first.record("order_placed", seq=0)
    first.close()  # released: the next writer need not wait for expiry
    with EventTrace(s3_root, lease_ttl=2.0) as second:
        second.record("order_placed", seq=1)
    assert seqs(s3_root) == [0, 1]


def test_a_writer_that_lost_its_lease_stops_writing(s3_root: str) -> None:
    paused = EventTrace(s3_root, lease_ttl=1.0)
    paused.record("order_placed", seq=0)
    assert paused._lease is not None
    paused._lease.stop_renewing()  # plays a process frozen past its lease (GC pause, suspended VM)
    successor = open_when_free(s3_root, lease_ttl=5.0)
    successor.record("order_placed", seq=1)
    with pytest.raises(TraceLockedError, match="lost its lease"):
        paused.record("order_placed", seq=99)
    successor.close()
    assert seqs(s3_root) == [0, 1]  # the stale writer wrote nothing after losing the lease


def test_concurrent_manifest_updates_both_land(s3_root: str) -> None:
    """The writer adding a segment and a compaction swapping segments both read-modify-write the manifest. Here
    the second update lands between the first one's read and its write (the worst interleaving, made to happen):
    the first one's conditional write must fail and retry, so neither update is lost."""
    engine, compactor = TraceFiles(s3_root), TraceFiles(s3_root)
    engine.update_manifest(lambda m: None)
    interleaved: list[str] = []

    def add_a(m: Manifest) -> None:
        if not interleaved:
            interleaved.append("b")
            compactor.update_manifest(lambda mb: mb.segments.append(Segment("b", 1, 2, 2)))
        m.segments.append(Segment("a", 1, 1, 1))

    engine.update_manifest(add_a)
    assert sorted(s.name for s in engine.load_manifest().segments) == ["a", "b"]


def test_sigkill_mid_append_on_object_storage(s3_root: str) -> None:
    rng = random.Random(20261126)
    for iteration in range(3):
        root = f"{s3_root}/t{iteration}"
        durable = run_and_kill([str(WRITER), root, "30", "1.0"], rng, 0.3, 1.5)
        found = seqs(root)
        assert found == list(range(len(found))), f"iteration {iteration}: gap or duplicate"
        assert len(found) >= durable + 1, f"iteration {iteration}: lost flushed events ({len(found)} < {durable + 1})"
        with open_when_free(root, lease_ttl=1.0) as et:  # the dead writer's lease expires; a restart takes over
            et.record("order_placed", seq=len(found))
        assert seqs(root)[-1] == len(found)


COMPACTOR = """
import sys
from datetime import timedelta
from planar_core.trace.compaction import compact_trace
print("start", flush=True)
compact_trace(sys.argv[1], target_rows=60, market_data_horizon=timedelta(seconds=0), downsample=None)
print("done", flush=True)
"""


def test_sigkill_mid_compaction_on_object_storage(s3_root: str) -> None:
    rng = random.Random(7)
    mid_way = 0
    for iteration in range(2):
        root = f"{s3_root}/c{iteration}"
        with EventTrace(root) as et:
            for i in range(4):
                for j in range(40):
                    et.record("order_placed", seq=i * 40 + j, symbol="X")
                et.checkpoint()
        mid_way += kill_midway(["-c", COMPACTOR, root], rng, 2.0)  # compaction takes a few seconds on S3
        assert seqs(root) == list(range(160))  # the old trace whole, or the compacted one whole
        compact_trace(root, target_rows=60, market_data_horizon=None)  # and a later compaction finishes the job
        assert seqs(root) == list(range(160))
    assert mid_way  # at least one kill landed while the compaction ran
