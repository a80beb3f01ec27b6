"""Engines in a process of their own, for the tests that kill one (SIGKILL) and look at what the exchange and the
next run make of it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


async def engine_process(script: str, cfg: object) -> tuple[asyncio.subprocess.Process, bytes]:
    """Start ``tests/<script>`` with ``cfg`` as its JSON argument; answers the process and the first line it prints
    (what it placed), waited for up to 90 s (the start of a fresh interpreter and an engine)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "tests" / script),
        json.dumps(cfg),
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 90)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    return proc, line
