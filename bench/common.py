"""Helpers shared by the benchmarks: a sandbox subprocess and figure printing."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from contextlib import contextmanager
from typing import Any, Iterator


@contextmanager
def sandbox_process(*args: str) -> Iterator[dict[str, Any]]:
    """``planar sandbox serve`` in its own process (so its CPU is not the engine's); yields its JSON line."""
    proc = subprocess.Popen([sys.executable, "-m", "planar_core", "sandbox", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
        info["pid"] = proc.pid
        yield info
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def figure(name: str, value: float, baseline: float, baseline_name: str, goal: str = "", **extra: Any) -> dict[str, Any]:
    row = {"figure": name, "value": round(value, 4), "baseline": round(baseline, 4), "baseline_name": baseline_name,
           "ratio": round(value / baseline, 3) if baseline else None, "goal": goal, **extra}
    print(json.dumps(row), flush=True)
    return row


def median(values: list[float]) -> float:
    return statistics.median(values)
