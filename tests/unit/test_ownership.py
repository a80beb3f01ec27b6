"""Whose order is it (issue 25): another Planar strategy's ids are recognised exactly, never claimed by a
strategy whatever its foreign-order policy, and the account-wide cancel is reachable only from the account e-stop."""

from __future__ import annotations

import ast
from pathlib import Path

from planar_core.exchange.client_ids import ClientOrderIds, claimed, identity_of, planar_identity

ROOT = Path(__file__).resolve().parents[2]


def test_planar_ids_are_told_from_ids_shaped_like_them(tmp_path: Path) -> None:
    mm, eth = ClientOrderIds(tmp_path / "a", "mm"), ClientOrderIds(tmp_path / "b", "mm-eth")
    long_name = ClientOrderIds(tmp_path / "c", "a-strategy-name-longer-than-twelve")
    for ids in (mm, eth, long_name):
        assert planar_identity(ids.next()) == ids.identity
    assert planar_identity(f"mm-{identity_of('mm-eth').rsplit('-', 1)[1]}-abc-1") is None  # mm's label, mm-eth's tag
    for foreign in ("web_8f2a", "x-R4BD3S82abc", "my-order1-abc-1", "by-hand-1", "", None, f"mm-{mm.epoch}-3"):
        assert planar_identity(foreign) is None, foreign


def test_another_strategys_order_is_never_claimed(tmp_path: Path) -> None:
    mm, eth = ClientOrderIds(tmp_path / "a", "mm"), ClientOrderIds(tmp_path / "b", "mm-eth")
    theirs, mine = eth.next(), mm.next()
    for adopt in (True, False):
        assert claimed(mm, mine, adopt) and not claimed(mm, theirs, adopt)
    assert claimed(mm, "by-hand-1", adopt_foreign=True) and not claimed(mm, "by-hand-1", adopt_foreign=False)


def test_the_account_wide_cancel_is_used_only_by_the_account_emergency_stop() -> None:
    """Binance's DELETE openOrders cancels every strategy's orders on a symbol: nothing on a strategy's paths may
    reach it (its ``cancel_all``, e-stop, brackets, grid, risk actions, flows, tasks)."""
    allowed = {"planar_core/exchange/client.py", "planar_core/risk/account_estop.py"}
    allowed.add("planar_core/model/venue.py")  # the Venue protocol declares it
    allowed |= {"planar_core/testing/venue.py", "planar_core/testing/exchange.py"}  # the in-memory venues implement it
    allowed.add("planar_core/exchange/ccxt_venue.py")  # the ccxt venue implements it
    # a strategy's e-stop, only when its config says the account is its own (risk.exclusive_account, off by default;
    # tests/risk/test_exclusive_estop.py shows the default leaving another's order open)
    allowed.add("planar_core/risk/estop.py")
    users = set()
    for folder in ("planar_core", "flows", "tasks", "deployments"):
        for path in (ROOT / folder).rglob("*.py"):
            if "sandbox" in path.parts:
                continue
            tree = ast.parse(path.read_text())
            names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | {
                n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            }
            if names & {"cancel_every_order", "cancel_all_orders"}:
                users.add(str(path.relative_to(ROOT)))
    assert users == allowed
