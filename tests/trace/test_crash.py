"""SIGKILL at random moments: the trace stays readable, holds every flushed event, never half a batch."""

from __future__ import annotations

import random
from pathlib import Path

from planar_core.trace import EventTrace, read_trace

from .killing import run_and_kill

WRITER = Path(__file__).with_name("crash_writer.py")


def test_sigkill_at_random_points_many_times(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    for iteration in range(12):
        root = tmp_path / f"t{iteration}"
        durable = run_and_kill([str(WRITER), str(root)], rng, 0.4, 1.2)
        df = read_trace(str(root))
        seqs = list(df["payload"].map(lambda p: p["seq"]))
        assert seqs == list(range(len(seqs))), f"iteration {iteration}: gap or duplicate"
        assert len(seqs) >= durable + 1, f"iteration {iteration}: lost flushed events ({len(seqs)} < {durable + 1})"
        assert df["timestamp"].is_monotonic_increasing
        with EventTrace(str(root)) as et:  # a restart takes over the lock and continues
            et.record("order_placed", seq=len(seqs))
        assert list(read_trace(str(root))["payload"].map(lambda p: p["seq"]))[-1] == len(seqs)
