"""Run ``planar sandbox serve`` as a child process (demo, benchmarks, tests that need isolation)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def sandbox_process(*args: str) -> Iterator[dict[str, Any]]:
    """Start the sandbox on a free loopback port; yields its JSON line (url, ws_url, api_key, api_secret, pid)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "planar_core", "sandbox", "serve", "--port", "0", *args], stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError(f"the sandbox exited with code {proc.wait()}")
        info = json.loads(line)
        info["pid"] = proc.pid
        yield info
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
