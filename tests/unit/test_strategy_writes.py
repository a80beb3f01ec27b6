"""Nothing outside ``Strategy`` writes its fields, and only the account book writes balances and positions.

``Strategy`` coordinates parts that own their state (docs/architecture.md, "The composition root"): a free
function changes state through the owning part's methods (``s.holdings.apply_positions``,
``s.gate.store_failed``, ``s.book...``), never by assigning or mutating a field of the strategy. This walks every
module of the engine and the orchestration (the sandbox aside) and lists each write that breaks the rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("planar_core", "flows", "tasks", "deployments")
MUTATORS = {"add", "update", "pop", "append", "clear", "discard", "setdefault", "extend", "remove", "popitem", "insert"}
# parts with methods of their own: calling them is how state changes (``s.state_store.update(...)`` is its method)
PARTS = {
    "state_store",
    "journal",
    "ids",
    "lease",
    "supervisor",
    "holdings",
    "book",
    "freshness",
    "ledger",
    "hooks",
    "venue",
    "sink",
    "gate",
}
# the one field a free function may fill: the universe, built by load_markets from the config's symbols
ALLOWED = {("planar_core/engine/sync.py", "universe")}
# position state of an asset: written only by the account book (model/types.py defines it)
ACCOUNT_FIELDS = {"positions", "margin_mode", "hedged", "leverage"}
ACCOUNT_OWNERS = {"planar_core/engine/account_book.py", "planar_core/model/types.py"}
# order state: an order's status, an asset's order map and fills, written only by the order book
ORDER_OWNERS = {"planar_core/engine/order_book.py", "planar_core/model/types.py"}
# the exchange's side, like the sandbox: the in-memory venues' ``orders`` are the exchange's book, not the strategy's
EXCHANGE_SIDE = {"planar_core/testing/venue.py", "planar_core/testing/exchange.py"}


def _is_strategy(node: ast.expr) -> bool:
    """``s``, ``strategy`` or ``self.s``: the names the engine's free functions and services give a strategy."""
    if isinstance(node, ast.Name):
        return node.id in ("s", "strategy")
    return isinstance(node, ast.Attribute) and node.attr == "s" and isinstance(node.value, ast.Name) and node.value.id == "self"


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return list(node.targets)
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return [node.target]
    return []


def writes(source: str, rel: str) -> list[str]:
    """Each write in ``source`` (module ``rel``) that the ownership rules forbid, as ``rel:line: what``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        for t in _targets(node):
            base = t.value if isinstance(t, ast.Subscript) else t
            if not isinstance(base, ast.Attribute):
                continue
            if _is_strategy(base.value) and rel != "planar_core/engine/strategy.py" and (rel, base.attr) not in ALLOWED:
                found.append((node.lineno, f"{rel}:{node.lineno}: writes s.{base.attr}"))
            elif base.attr in ACCOUNT_FIELDS and rel not in ACCOUNT_OWNERS and _is_asset_state(base.value):
                found.append((node.lineno, f"{rel}:{node.lineno}: writes .{base.attr} (the account book's)"))
            if rel not in ORDER_OWNERS and (
                (isinstance(t, ast.Attribute) and t.attr == "status" and _is_order(t.value))
                or (isinstance(t, ast.Subscript) and isinstance(t.value, ast.Attribute) and t.value.attr == "orders")
            ):
                found.append((node.lineno, f"{rel}:{node.lineno}: writes {ast.unparse(t)} (the order book's)"))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
            inner = node.func.value
            if isinstance(inner, ast.Attribute) and inner.attr in ("trades", "orders") and rel not in ORDER_OWNERS:
                if _is_order(inner.value) or _is_asset_state(inner.value):
                    found.append((node.lineno, f"{rel}:{node.lineno}: {ast.unparse(inner)}.{node.func.attr}() (the order book's)"))
            if isinstance(inner, ast.Attribute) and _is_strategy(inner.value) and inner.attr not in PARTS:
                if rel != "planar_core/engine/strategy.py" and (rel, inner.attr) not in ALLOWED:
                    found.append((node.lineno, f"{rel}:{node.lineno}: s.{inner.attr}.{node.func.attr}()"))
            elif (
                isinstance(inner, ast.Attribute)
                and inner.attr == "positions"
                and rel not in ACCOUNT_OWNERS
                and _is_asset_state(inner.value)
            ):
                found.append((node.lineno, f"{rel}:{node.lineno}: .positions.{node.func.attr}() (the account book's)"))
    return [what for _, what in sorted(found)]


def _is_order(node: ast.expr) -> bool:
    """An order: ``order``, ``o``, ``parent``, ``entry``, ``child``, or ``ai.orders[...]``."""
    if isinstance(node, ast.Name):
        return node.id in ("order", "o", "parent", "entry", "child")
    return isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "orders"


def _is_asset_state(node: ast.expr) -> bool:
    """An asset (``ai``, ``a``, ``asset``, ``s.universe[...]``) or one of its positions (``ai.position``,
    ``ai.position_of(side)``, ``ai.positions[side]``, a position ``p`` / ``pos``); a report's or an outcome's fields
    of the same name are not account state."""
    if isinstance(node, ast.Name):
        return node.id in ("ai", "a", "asset", "p", "pos", "position")
    if isinstance(node, ast.Subscript):
        return _is_asset_state(node.value) or (isinstance(node.value, ast.Attribute) and node.value.attr == "universe")
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Attribute) and node.func.attr == "position_of"
    return isinstance(node, ast.Attribute) and node.attr in ("position", "positions") and _is_asset_state(node.value)


def test_only_the_owners_write_the_strategy_s_state() -> None:
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("planar_core/sandbox/") or rel in EXCHANGE_SIDE:
                continue
            found += writes(path.read_text(), rel)
    assert found == []


def test_the_check_sees_each_kind_of_write() -> None:
    source = (
        "def f(s, ai, self):\n"
        "    s.balances['USDT'] = 1\n"
        "    s.ws_generation += 1\n"
        "    s.bracketed.add('x')\n"
        "    self.s.foreign_order_ids.add('y')\n"
        "    ai.positions[side] = p\n"
        "    ai.position.leverage = 3\n"
        "    ai.positions.clear()\n"
        "    order.status = new\n"
        "    ai.orders[cid] = order\n"
        "    order.trades.append(t)\n"
        "    ai.trades.append(t)\n"
        "    s.state_store.update(halted=True)\n"  # a part's own method: allowed
        "    s.holdings.set_leverage(ai, 3)\n"
    )
    assert [w.split(": ", 1)[1] for w in writes(source, "planar_core/engine/x.py")] == [
        "writes s.balances",
        "writes s.ws_generation",
        "s.bracketed.add()",
        "s.foreign_order_ids.add()",
        "writes .positions (the account book's)",
        "writes .leverage (the account book's)",
        ".positions.clear() (the account book's)",
        "writes order.status (the order book's)",
        "writes ai.orders[cid] (the order book's)",
        "order.trades.append() (the order book's)",
        "ai.trades.append() (the order book's)",
    ]
