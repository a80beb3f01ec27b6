"""The import graph of ``planar_core``: packages import only downward, and no module imports itself back.

    python -m planar_core.tools.imports          # prints the package graph; exit 1 on a violation

Layers, lowest first (a package may import only packages of a lower layer)::

    model, sandbox  <-  alerts, logic, storage  <-  config, state  <-  exchange, trace  <-  risk  <-  engine
                    <-  runner  <-  strategies, cli, tools

Every ``import`` counts, at module level or inside a function (a lazy import is still a dependency), except
those under ``if TYPE_CHECKING:``: annotations only, never executed. Those are listed apart; the one upward
use they may make is naming the ``Strategy`` type (``engine.strategy``), which risk functions receive as an
argument (strategy code never does: its callbacks receive ``model.context.StrategyContext``).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS: dict[str, int] = {
    "model": 0,
    "sandbox": 0,
    "alerts": 1,
    "storage": 1,
    "logic": 1,
    "config": 2,
    "state": 2,
    "exchange": 3,
    "trace": 3,
    "risk": 4,
    "engine": 5,
    "runner": 6,
    "strategies": 7,
    "cli": 7,
    "tools": 7,
    "__main__": 8,
    "__init__": 8,
}
TYPING_ONLY_ALLOWED = {"planar_core.engine.strategy"}


@dataclass
class Graph:
    runtime: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # module -> modules
    typing: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        names = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix for a in node.names]
    out = []
    for n in names:
        while n and n not in known:  # planar_core.model.types.Json -> planar_core.model.types
            n = n.rpartition(".")[0]
        if n.startswith("planar_core") and n:
            out.append(n)
    return out


def build() -> Graph:
    files = {module_name(p): p for p in ROOT.rglob("*.py")}
    known = set(files)
    g = Graph()
    for module, path in files.items():
        tree = ast.parse(path.read_text())
        typing_nodes: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                for inner in node.body:
                    typing_nodes.update(id(n) for n in ast.walk(inner))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _targets(node, module, path.name == "__init__.py", known):
                    if target != module:
                        (g.typing if id(node) in typing_nodes else g.runtime)[module].add(target)
    return g


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def violations(g: Graph) -> list[str]:
    found = []
    for comp in cycles(g.runtime):
        found.append("cycle: " + " <-> ".join(comp))
    for module, targets in sorted(g.runtime.items()):
        for t in sorted(targets):
            a, b = package(module), package(t)
            if a != b and LAYERS.get(b, 99) >= LAYERS.get(a, -1):
                found.append(f"upward: {module} imports {t} ({a} is not above {b})")
    for module, targets in sorted(g.typing.items()):
        for t in sorted(targets):
            a, b = package(module), package(t)
            if a != b and LAYERS.get(b, 99) >= LAYERS.get(a, -1) and t not in TYPING_ONLY_ALLOWED:
                found.append(f"upward (annotation): {module} names {t}")
    return found


def package_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for module, targets in edges.items():
        for t in targets:
            if package(module) != package(t):
                out[package(module)].add(package(t))
    return out


def main() -> int:
    g = build()
    for pkg, deps in sorted(package_graph(g.runtime).items(), key=lambda kv: LAYERS.get(kv[0], 99)):
        print(f"{pkg:<11} -> {', '.join(sorted(deps, key=lambda d: LAYERS.get(d, 99)))}")
    typing_up = {
        f"{m} -> {t}"
        for m, ts in g.typing.items()
        for t in ts
        if LAYERS.get(package(t), 99) >= LAYERS.get(package(m), -1) and package(m) != package(t)
    }
    if typing_up:
        print("annotations only (TYPE_CHECKING):", *sorted(typing_up), sep="\n  ")
    problems = violations(g)
    for p in problems:
        print("VIOLATION", p)
    print("ok: no cycles, every package imports only downward" if not problems else f"{len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
