"""Packages import only downward: planar_core (the engine) never imports Prefect or the orchestration packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABOVE = ("prefect", "flows", "tasks", "deployments", "bench")


def test_importing_every_planar_core_module_loads_nothing_from_above() -> None:
    code = ("import importlib, pkgutil, sys, planar_core\n"
            "for m in pkgutil.walk_packages(planar_core.__path__, 'planar_core.'):\n"
            "    if not m.name.endswith('__main__'):\n"
            "        importlib.import_module(m.name)\n"
            f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({ABOVE!r})))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_no_planar_core_source_names_a_package_above_it() -> None:
    """Lazy imports inside functions count too (the CLI once imported flows and Prefect inside its commands)."""
    offending = []
    for path in (ROOT / "planar_core").rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            words = line.strip().split()
            if len(words) >= 2 and words[0] in ("import", "from") and words[1].split(".")[0] in ABOVE:
                offending.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offending == []
