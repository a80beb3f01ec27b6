"""Helpers shared by the benchmarks: a sandbox subprocess, figure printing, and NautilusTrader's environment for the
head-to-heads (bench/nautilus_*.py run in it as files)."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from planar_core.sandbox.process import sandbox_process

# the rate limits a bench lifts so that the engine's own request budget never paces what it measures
UNPACED = {"weight_per_minute": 10_000_000, "requests_per_minute": 1_000_000, "orders_per_second": 100_000, "burst_allowance": 100_000}

__all__ = [
    "figure",
    "median",
    "nautilus_python",
    "nautilus_script",
    "nautilus_skipped",
    "pct",
    "sandbox_process",
]  # sandbox_process is re-exported for the benchmarks


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


def nautilus_python(given: str | None) -> tuple[str | None, str]:
    """The interpreter of an environment with nautilus_trader: ``given``, else ``<repo>/.venv-nautilus`` (made with
    python3.11 and pip from the package registry once, reused after). Returns it, or None and why not."""
    if given:
        return given, ""
    venv = Path(__file__).resolve().parents[1] / ".venv-nautilus"
    python = venv / "bin" / "python"
    try:
        if not python.exists():
            base = shutil.which("python3.11") or sys.executable
            print(f"creating {venv} with {base}", file=sys.stderr, flush=True)
            made = subprocess.run([base, "-m", "venv", str(venv)], stdout=sys.stderr, stderr=sys.stderr, timeout=600)
            if made.returncode != 0:
                return None, f"python3.11 -m venv {venv} failed"
        if subprocess.run([str(python), "-c", "import nautilus_trader"], capture_output=True, timeout=120).returncode != 0:
            print(f"installing nautilus_trader into {venv} (once)", file=sys.stderr, flush=True)
            pip = subprocess.run(
                [str(python), "-m", "pip", "install", "--progress-bar", "off", "nautilus_trader"],
                stdout=sys.stderr,
                stderr=sys.stderr,
                timeout=1800,
            )
            if pip.returncode != 0:
                return None, f"pip install nautilus_trader into {venv} failed (exit {pip.returncode})"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"no environment with nautilus_trader: {exc}"
    return str(python), ""


def nautilus_skipped(why: str, name: str = "nautilus_backtest") -> None:
    """The line a head-to-head prints instead of its figure when NautilusTrader could not run (the bench goes on)."""
    print(json.dumps({"figure": name, "skipped": why}), flush=True)


def nautilus_script(cmd: list[str], name: str, timeout: float) -> dict[str, Any] | None:
    """Run a bench/nautilus_*.py script (``cmd``: its interpreter, path and arguments) and return the JSON object on
    its last JSON line of stdout (NautilusTrader's own log may share stdout); on any failure, print the skip line
    with the reason and return None."""
    try:
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        nautilus_skipped(f"the script could not run: {exc}", name)
        return None
    if run.returncode != 0:
        nautilus_skipped(f"the script failed (exit {run.returncode}): {run.stderr.strip()[-300:]}", name)
        return None
    for line in reversed(run.stdout.strip().splitlines()):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            return row
    nautilus_skipped(f"the script printed no JSON: {run.stdout.strip()[-300:]}", name)
    return None
