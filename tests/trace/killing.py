"""SIGKILL at a random moment: what the crash tests (local and S3, appending and compacting) share."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time


def run_and_kill(args: list[str], rng: random.Random, low: float, high: float) -> int:
    """Run ``python *args``, read its ``durable N`` lines until a random moment in [low, high) seconds, SIGKILL it;
    the last N it reported (-1: none)."""
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + rng.uniform(low, high)
    last = -1
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("durable"):
            last = int(line.split()[1])
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return last


def kill_midway(args: list[str], rng: random.Random, high: float) -> bool:
    """Run ``python *args`` until it prints ``start``, SIGKILL it a random moment in [0, high) seconds later; True when
    the kill landed before it printed ``done``."""
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().startswith("start")
    time.sleep(rng.uniform(0.0, high))  # a random moment of the run: the point of the test, not a wait for a condition
    os.kill(proc.pid, signal.SIGKILL)
    midway = proc.wait() == -signal.SIGKILL and "done" not in proc.stdout.read()
    proc.stdout.close()
    return midway
