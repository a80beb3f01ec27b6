"""The repository's import graph: packages import only downward, and no module imports itself back.

    python -m planar_core.tools.imports          # prints the package graphs; exit 1 on a violation

The repository's packages, lowest first (a package may import only packages of a lower rank)::

    planar_core  <-  tasks  <-  flows  <-  deployments  <-  tests  <-  bench

so the engine never imports the orchestration, the tasks never import the flows, and the benchmarks may reuse the
tests' fault harness. ``planar_core`` never imports Prefect either. The one module allowed above its rank is the
``planar`` command line, ``flows/cli.py``: the composition root of every command, it reaches ``deployments`` inside
its ``serve``, ``deployments`` and ``automations`` commands (nothing in ``deployments`` imports it back).

Inside ``planar_core``, layers, lowest first (a package may import only packages of a lower layer)::

    model, sandbox  <-  alerts, logic, storage, append_log, scaffold  <-  config, state  <-  exchange, trace  <-  risk  <-  engine
                    <-  runner  <-  strategies, cli, tools, testing

Every ``import`` counts, at module level or inside a function (a lazy import is still a dependency, and a cycle
through one is still a cycle). Those under ``if TYPE_CHECKING:`` (annotations only, never executed) are kept
apart: they obey the packages' ranks like the others, but inside ``planar_core`` the one upward use they may make
is naming the ``Strategy`` type (``engine.strategy``), which risk functions receive as an argument (strategy code
never does: its callbacks receive ``model.context.StrategyContext``).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES: dict[str, int] = {"planar_core": 0, "tasks": 1, "flows": 2, "deployments": 3, "tests": 4, "bench": 5}
COMPOSITION_ROOTS: dict[str, set[str]] = {"flows.cli": {"deployments"}}  # module -> packages above it it may import
FORBIDDEN_EXTERNAL: dict[str, set[str]] = {"planar_core": {"prefect"}}  # package -> libraries it never imports
LAYERS: dict[str, int] = {
    "model": 0,
    "sandbox": 0,
    "alerts": 1,
    "storage": 1,
    "append_log": 1,  # a file opened once, appended to, group-committed (the trace's WAL, the intent journal)
    "logic": 1,
    "scaffold": 1,
    "config": 2,
    "state": 2,
    "params_store": 2,  # the strategy's Params versions (optimisation, rollback)
    "exchange": 3,
    "history": 4,  # market data: download (through the exchange layer's ccxt client), store, check, read
    "sim": 4,  # the simulated venue (paper, backtest): the sandbox's matching rules behind the Venue protocol
    "trace": 3,
    "risk": 4,
    "engine": 5,
    "runner": 6,
    "backtest": 7,  # a strategy over history on a simulated clock: engine + runner host + sim venue
    "strategies": 7,
    "optimize": 8,  # the strategy's Params searched by backtest
    "cli": 9,
    "tools": 7,
    "testing": 7,
    "__main__": 10,
    "__init__": 10,
}
TYPING_ONLY_ALLOWED = {"planar_core.engine.strategy"}


def _edges() -> defaultdict[str, set[str]]:
    return defaultdict(set)


@dataclass
class Graph:
    runtime: dict[str, set[str]] = field(default_factory=_edges)  # module -> modules it imports when it runs
    typing: dict[str, set[str]] = field(default_factory=_edges)  # module -> modules under TYPE_CHECKING
    external: dict[str, set[str]] = field(default_factory=_edges)  # module -> libraries (top-level names)
    lazy: set[tuple[str, str]] = field(default_factory=set)  # (module, target) imported inside a function


def module_name(path: Path, repo: Path = REPO) -> str:
    parts = list(path.relative_to(repo).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def top(module: str) -> str:
    """The repository package a module belongs to: ``flows.cli`` -> ``flows``."""
    return module.split(".")[0]


def package(module: str) -> str:
    """The ``planar_core`` package a module belongs to: ``planar_core.engine.orders`` -> ``engine``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> tuple[list[str], list[str]]:
    """The repository modules an import names, and the libraries (top-level names) it names."""
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
    inside: list[str] = []
    outside: list[str] = []
    for name in names:
        n = name
        while n and n not in known:  # planar_core.model.types.Json -> planar_core.model.types
            n = n.rpartition(".")[0]
        if n:
            inside.append(n)
        elif top(name) not in PACKAGES:
            outside.append(top(name))
    return inside, outside


class _Imports(ast.NodeVisitor):
    """Every import of one module with where it stands: under ``if TYPE_CHECKING:``, inside a function."""

    def __init__(self) -> None:
        self.found: list[tuple[ast.Import | ast.ImportFrom, bool, bool]] = []  # (node, typing only, lazy)
        self._typing = 0
        self._functions = 0

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self._typing += 1
        for inner in node.body:
            self.visit(inner)
        self._typing -= 1
        for inner in node.orelse:
            self.visit(inner)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._functions += 1
        self.generic_visit(node)
        self._functions -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_Import(self, node: ast.Import) -> None:
        self.found.append((node, self._typing > 0, self._functions > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.found.append((node, self._typing > 0, self._functions > 0))


def source_files(repo: Path = REPO) -> dict[str, Path]:
    """Every Python module of the repository's packages, by module name."""
    return {module_name(p, repo): p for pkg in PACKAGES if (repo / pkg).is_dir() for p in sorted((repo / pkg).rglob("*.py"))}


def build(repo: Path = REPO) -> Graph:
    files = source_files(repo)
    known = set(files)
    g = Graph()
    for module, path in files.items():
        imports = _Imports()
        imports.visit(ast.parse(path.read_text(), filename=str(path)))
        for node, typing_only, lazy in imports.found:
            inside, outside = _targets(node, module, path.name == "__init__.py", known)
            g.external[module].update(outside)
            for target in inside:
                if target == module:
                    continue
                (g.typing if typing_only else g.runtime)[module].add(target)
                if lazy and not typing_only:
                    g.lazy.add((module, target))
    return g


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
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


def _rank_violation(module: str, target: str) -> str | None:
    """Why ``module`` may not depend on ``target`` across repository packages, or None when it may."""
    a, b = top(module), top(target)
    if a == b or PACKAGES.get(b, 99) < PACKAGES.get(a, -1) or b in COMPOSITION_ROOTS.get(module, set()):
        return None
    return f"{a} is not above {b}"


def _layer_violation(module: str, target: str) -> bool:
    """Inside planar_core: ``target``'s package is not of a lower layer than ``module``'s."""
    a, b = package(module), package(target)
    return top(module) == top(target) == "planar_core" and a != b and LAYERS.get(b, 99) >= LAYERS.get(a, -1)


def violations(g: Graph) -> list[str]:
    found = []
    for comp in cycles(g.runtime):
        found.append("cycle: " + " <-> ".join(comp))
        lazy = sorted(f"{m} -> {t}" for m, t in g.lazy if m in comp and t in comp)
        if lazy:
            found.append(f"cycle through lazy imports (inside functions): {', '.join(lazy)}")
    for comp in cycles(repository_graph(g)):
        found.append("package cycle: " + " <-> ".join(comp))
    for module, targets in sorted(g.runtime.items()):
        for t in sorted(targets):
            where = " (inside a function)" if (module, t) in g.lazy else ""
            why = _rank_violation(module, t)
            if why:
                found.append(f"upward: {module} imports {t}{where} ({why})")
            elif _layer_violation(module, t):
                found.append(f"upward: {module} imports {t}{where} ({package(module)} is not above {package(t)})")
    for module, targets in sorted(g.typing.items()):
        for t in sorted(targets):
            if _rank_violation(module, t) or (_layer_violation(module, t) and t not in TYPING_ONLY_ALLOWED):
                found.append(f"upward (annotation): {module} names {t}")
    for module, libraries in sorted(g.external.items()):
        for lib in sorted(libraries & FORBIDDEN_EXTERNAL.get(top(module), set())):
            found.append(f"forbidden: {module} imports {lib} ({top(module)} never imports {lib})")
    return found


def repository_graph(g: Graph) -> dict[str, set[str]]:
    """Repository package -> the repository packages it depends on (at run time or in annotations)."""
    out: dict[str, set[str]] = defaultdict(set)
    for edges in (g.runtime, g.typing):
        for module, targets in edges.items():
            for t in targets:
                if top(module) != top(t):
                    out[top(module)].add(top(t))
    return out


def package_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """``planar_core`` package -> the ``planar_core`` packages it imports."""
    out: dict[str, set[str]] = defaultdict(set)
    for module, targets in edges.items():
        for t in targets:
            if top(module) == top(t) == "planar_core" and package(module) != package(t):
                out[package(module)].add(package(t))
    return out


def main() -> int:
    g = build()
    for pkg, deps in sorted(repository_graph(g).items(), key=lambda kv: PACKAGES.get(kv[0], 99)):
        print(f"{pkg:<11} -> {', '.join(sorted(deps, key=lambda d: PACKAGES.get(d, 99)))}")
    print("planar_core:")
    for pkg, deps in sorted(package_graph(g.runtime).items(), key=lambda kv: LAYERS.get(kv[0], 99)):
        print(f"  {pkg:<11} -> {', '.join(sorted(deps, key=lambda d: LAYERS.get(d, 99)))}")
    typing_up = {
        f"{m} -> {t}"
        for m, ts in g.typing.items()
        for t in ts
        if top(m) == top(t) == "planar_core" and LAYERS.get(package(t), 99) >= LAYERS.get(package(m), -1) and package(m) != package(t)
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
