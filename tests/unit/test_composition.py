"""One composition root: ``Strategy`` is handed its parts (engine/parts.py) and builds none of them itself."""

from __future__ import annotations

import ast
from pathlib import Path

from planar_core.engine.parts import EngineParts

from .fake_venue import engine_on_fake

STRATEGY = Path(__file__).resolve().parents[2] / "planar_core" / "engine" / "strategy.py"
# what build_parts makes; the constructor must take it from its parts
BUILT_BY_THE_ROOT = {
    "open_venue",
    "Freshness",
    "AccountBook",
    "GuardedSink",
    "TradingGate",
    "OrderBook",
    "FillLedger",
    "Hooks",
    "RiskManager",
    "Heartbeat",
    "Twins",
    "StateStore",
    "ClientOrderIds",
    "intent_journal",
    "engine_lease",
    "Supervisor",
    "configured_alerts",
    "MemorySink",
    "SystemClock",
    "mkdir",
}


def called_in_init(source: str) -> set[str]:
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Strategy")
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    names = set()
    for node in ast.walk(init):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else "")
    return names


def test_the_strategy_constructor_builds_none_of_the_parts_the_root_builds() -> None:
    assert called_in_init(STRATEGY.read_text()) & BUILT_BY_THE_ROOT == set()


def test_the_check_sees_a_part_built_in_the_constructor() -> None:
    source = "class Strategy:\n    def __init__(self, config, parts):\n        self.state_store = StateStore(config.root)\n        config.store_path.mkdir()\n"
    assert called_in_init(source) & BUILT_BY_THE_ROOT == {"StateStore", "mkdir"}


def test_the_strategy_coordinates_exactly_the_parts_it_was_given() -> None:
    s, venue, clock = engine_on_fake()
    assert s.venue is venue and s.clock is clock
    assert s.venue.sink is s.sink  # the venue records its API calls through the engine's guarded sink
    assert s.state_store.on_unreadable == s.gate.persisted_unreadable
    assert set(EngineParts.__dataclass_fields__) == {
        "sink",
        "venue",
        "state_store",
        "ids",
        "journal",
        "lease",
        "supervisor",
        "alerts",
        "clock",
        "universe",
        "freshness",
        "holdings",
        "gate",
        "book",
        "ledger",
        "hooks",
        "risk",
        "heartbeat",
        "twins",
    }


def private_reaches(source: str) -> list[str]:
    """``s._field`` (a strategy's private state) used by a free function: the owning component's methods should."""
    return [
        f"{node.lineno}: s.{node.attr}"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "s" and node.attr.startswith("_")
    ]


def test_no_free_function_reaches_into_the_strategy_s_private_state() -> None:
    root = STRATEGY.parents[1]
    found = [
        f"{path.relative_to(root)}:{hit}"
        for layer in ("engine", "risk", "runner", "trace")
        for path in sorted((root / layer).rglob("*.py"))
        if path != STRATEGY
        for hit in private_reaches(path.read_text())
    ]
    assert found == []


def test_the_private_reach_check_sees_one() -> None:
    assert private_reaches("def f(s):\n    s._orphan_trades.pop('1')\n    s.ledger.claim('1')\n") == ["2: s._orphan_trades"]


def holders_of(target: object, parts: object) -> list[str]:
    """The parts (and their attributes, one level down, containers included) that keep ``target`` itself.
    Callbacks a part was handed (a subscription, a reader) are not keeping it: they are how the coordinator wires."""
    found = []
    for name, part in vars(parts).items():
        if part is target:
            found.append(name)
            continue
        for attr, value in getattr(part, "__dict__", {}).items():
            items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple, set, frozenset)) else (value,)
            if any(item is target for item in items):
                found.append(f"{name}.{attr}")
    return found


def test_no_part_keeps_the_strategy() -> None:
    s, _venue, _clock = engine_on_fake()
    given = {name: getattr(s, name) for name in EngineParts.__dataclass_fields__}  # the strategy keeps each under its name
    assert holders_of(s, _Namespace(given)) == []


def test_the_check_sees_a_part_that_keeps_the_strategy() -> None:
    s, _venue, _clock = engine_on_fake()
    s.risk.s = s  # type: ignore[attr-defined]  (what RiskManager(self) did)
    s.twins.owners = [s]  # type: ignore[attr-defined]
    assert holders_of(s, _Namespace({"risk": s.risk, "twins": s.twins})) == ["risk.s", "twins.owners"]


class _Namespace:
    def __init__(self, values: dict[str, object]) -> None:
        self.__dict__.update(values)
