"""Packages import only downward: planar_core (the engine) never imports Prefect or the orchestration packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABOVE = ("prefect", "flows", "tasks", "deployments", "bench")


def test_importing_every_planar_core_module_loads_nothing_from_above() -> None:
    code = (
        "import importlib, pkgutil, sys, planar_core\n"
        "for m in pkgutil.walk_packages(planar_core.__path__, 'planar_core.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        f"print(sorted({{n.split('.')[0] for n in sys.modules}} & set({ABOVE!r})))\n"
    )
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


def test_the_import_graph_has_no_cycle_and_goes_only_downward() -> None:
    """``python -m planar_core.tools.imports`` as a test: model <- exchange/trace <- risk <- engine <- runner."""
    from planar_core.tools.imports import build, violations

    assert violations(build()) == []


def test_the_import_check_catches_a_cycle_and_an_upward_import() -> None:
    from planar_core.tools.imports import Graph, violations

    g = Graph()
    g.runtime["planar_core.risk.manager"] = {"planar_core.engine.strategy"}  # risk importing the engine back
    g.runtime["planar_core.engine.strategy"] = {"planar_core.risk.manager"}
    g.typing["planar_core.trace.replay"] = {"planar_core.engine.orders"}  # an annotation naming more than Strategy
    found = violations(g)
    assert "cycle: planar_core.engine.strategy <-> planar_core.risk.manager" in found
    assert any(v.startswith("upward: planar_core.risk.manager imports planar_core.engine.strategy") for v in found)
    assert any(v.startswith("upward (annotation): planar_core.trace.replay") for v in found)
