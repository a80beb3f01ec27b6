"""Nothing above the exchange layer reaches ccxt or reads a raw exchange payload: the engine, risk, runner and
trace layers talk to an exchange only through the ``Venue`` protocol and its typed reports (model/venue.py)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ABOVE_THE_VENUE = ("engine", "risk", "runner", "trace")


def reaches(tree: ast.AST) -> list[tuple[int, str]]:
    """Where ``tree`` imports ccxt, uses an exchange client's ccxt object or its raw ``call``, or reads ``info``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if a.name.split(".")[0] == "ccxt"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ccxt":
            found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.ImportFrom) and node.level and node.module in ("exchange.client", "exchange.ccxt_venue"):
            found.append((node.lineno, f"imports the ccxt client ({node.module})"))
        elif isinstance(node, ast.Attribute) and node.attr in ("ex", "call"):
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else owner.id if isinstance(owner, ast.Name) else ""
            if name == "client":
                found.append((node.lineno, f"client.{node.attr}"))
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value == "info":
            found.append((node.lineno, '["info"]'))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value == "info"
        ):
            found.append((node.lineno, '.get("info")'))
    return found


def offenders() -> list[str]:
    out = []
    for layer in ABOVE_THE_VENUE:
        for path in sorted((ROOT / "planar_core" / layer).rglob("*.py")):
            out += [f"{path.relative_to(ROOT)}:{n}: {what}" for n, what in reaches(ast.parse(path.read_text()))]
    return out


def test_nothing_above_the_exchange_layer_reaches_ccxt_or_a_raw_payload() -> None:
    assert offenders() == []


def test_the_check_sees_each_kind_of_reach() -> None:
    code = (
        "import ccxt\n"
        "from ccxt.base import errors\n"
        "from ..exchange.client import ExchangeClient\n"
        "async def f(s, raw):\n"
        "    await s.client.call('fetch_order', lambda: s.client.ex.fetch_order('1'), 5)\n"
        "    return raw['info'], raw.get('info')\n"
    )
    kinds = [what for _, what in reaches(ast.parse(code))]
    assert kinds.count("client.call") == 1 and kinds.count("client.ex") == 1
    assert {"import ccxt", '["info"]', '.get("info")', "imports the ccxt client (exchange.client)"} <= set(kinds)
    assert any(k.startswith("from ccxt") for k in kinds)
