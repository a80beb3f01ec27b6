"""Packages import only downward: planar_core (the engine) never imports Prefect or the orchestration packages, and
the orchestration imports one way (deployments -> flows -> tasks -> planar_core), lazy imports included."""

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


def test_the_import_check_covers_the_whole_repository() -> None:
    """flows, tasks, deployments, tests and bench are in the graph, with their lazy imports (a task's helper once
    imported flows.common inside its functions) and their TYPE_CHECKING imports."""
    from planar_core.tools.imports import PACKAGES, build, source_files, top

    assert {top(m) for m in source_files()} == set(PACKAGES)
    g = build()
    assert "tasks.strategy" in g.runtime["tasks.account"]
    assert ("flows.cli", "flows.live") in g.lazy  # `planar run` imports the live flow inside its command
    assert "planar_core.engine.strategy" in g.typing["tasks.account"]


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_import_check_catches_tasks_importing_flows(tmp_path: Path) -> None:
    """At module level, inside a function, or under TYPE_CHECKING: tasks never import flows (flows import tasks)."""
    from planar_core.tools.imports import Graph, build, violations

    g = Graph()
    g.runtime["tasks.orders"] = {"flows.common"}
    assert violations(g) == ["upward: tasks.orders imports flows.common (tasks is not above flows)"]

    repo = _tree(
        tmp_path,
        {
            "tasks/__init__.py": "",
            "tasks/orders.py": "def settle():\n    from flows.common import build_strategy\n",
            "tasks/trace.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from flows.control import blank\n",
            "flows/__init__.py": "",
            "flows/common.py": "",
            "flows/control.py": "",
            "flows/emergency.py": "from tasks.orders import settle\n",
            "planar_core/__init__.py": "",
            "planar_core/cli.py": "def serve():\n    import prefect\n",
        },
    )
    found = violations(build(repo))
    assert "package cycle: flows <-> tasks" in found
    assert "upward: tasks.orders imports flows.common (inside a function) (tasks is not above flows)" in found
    assert "upward (annotation): tasks.trace names flows.control" in found
    assert "forbidden: planar_core.cli imports prefect (planar_core never imports prefect)" in found


def test_the_import_check_catches_a_cycle_through_a_lazy_import(tmp_path: Path) -> None:
    """Two modules of one package, one importing the other at module level and the other importing it back inside a
    function: a cycle all the same (it runs as soon as the function does)."""
    from planar_core.tools.imports import build, violations

    repo = _tree(
        tmp_path,
        {
            "flows/__init__.py": "",
            "flows/live.py": "from flows.control import EngineControl\n",
            "flows/control.py": "class EngineControl:\n    def stop(self):\n        from .live import live_strategy\n",
        },
    )
    found = violations(build(repo))
    assert "cycle: flows.control <-> flows.live" in found
    assert "cycle through lazy imports (inside functions): flows.control -> flows.live" in found
