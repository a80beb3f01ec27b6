"""Helpers shared by the benchmarks: a sandbox subprocess and figure printing."""

from __future__ import annotations

import json
import statistics

from planar_core.sandbox.process import sandbox_process

__all__ = ["figure", "median", "pct", "sandbox_process"]  # sandbox_process is re-exported for the benchmarks


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def figure(name: str, value: float, baseline: float, baseline_name: str, goal: str = "", **extra: object) -> dict[str, object]:
    row = {
        "figure": name,
        "value": round(value, 4),
        "baseline": round(baseline, 4),
        "baseline_name": baseline_name,
        "ratio": round(value / baseline, 3) if baseline else None,
        "goal": goal,
        **extra,
    }
    print(json.dumps(row), flush=True)
    return row


def median(values: list[float]) -> float:
    return statistics.median(values)
