"""Compaction's peak memory stays at its window only when glibc serves the window's large arrays as their own
mappings (``compaction.map_large_allocations``): with glibc's dynamic threshold, freeing one large block raises the
threshold to its size, the next windows come from the heap, and the freed ones fragment it (bench/trace_bench.py:
463 MB instead of 369 MB at 10 M events, 512 MB instead of 399 MB at 100 M). glibc marks a chunk served by its own
mapping in the size word before it (bit 2, IS_MMAPPED); each check runs in a fresh interpreter."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
import numpy as np
from planar_core.trace.compaction import map_large_allocations
if sys.argv[1] == "map":
    assert map_large_allocations()
freed = np.ones(2_000_000 // 8)
del freed  # glibc's dynamic threshold rises to a block this large once it is freed
window = np.ones(2_000_000 // 8)
print("mapped" if ctypes.c_size_t.from_address(window.ctypes.data - 8).value & 2 else "heap")
"""


def probe(mode: str) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_large_arrays_are_their_own_mappings_once_asked() -> None:
    assert probe("default") == "heap"  # what fragmented the heap
    assert probe("map") == "mapped"
