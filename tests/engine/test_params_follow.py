"""A running strategy follows its params store: a new version is applied between callbacks, traced and alerted; a
rollback by command restores the earlier params; a version that does not validate is refused; a restart keeps the
version in force."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from planar_core.model.context import StrategyContext
from planar_core.params_store import NothingToRollBack, ParamsStore
from planar_core.runner import load_logic, run
from planar_core.strategies.ma_cross import MACross

from ..conftest import wait_for


class Seen(MACross):
    """MACross that remembers the params its on_start saw."""

    at_start: tuple[int, int] | None = None

    async def on_start(self, ctx: StrategyContext) -> None:
        p = ctx.params
        assert isinstance(p, MACross.Params)
        self.at_start = (p.fast, p.slow)


def test_versions_propose_and_roll_back(tmp_path: Path) -> None:
    store = ParamsStore(str(tmp_path / "s"))
    assert store.current() is None
    with pytest.raises(NothingToRollBack):
        store.rollback()
    v1 = store.propose({"fast": 3, "slow": 9}, "optimize", "oos sharpe 1.2 > 0.9 + margin", {"oos": 1.2})
    v2 = store.propose({"fast": 4, "slow": 12}, "optimize", "again")
    assert (v1.version, v1.previous, v2.version, v2.previous) == (1, 0, 2, 1)
    v3 = store.rollback("worse live")
    assert (v3.version, v3.previous, v3.params, v3.source, v3.restores) == (3, 2, {"fast": 3, "slow": 9}, "rollback", 1)
    v4 = store.rollback()  # a second rollback steps one more change back: the config's logic_params
    assert (v4.params, v4.restores) == ({}, 0)
    assert [v.version for v in store.history()] == [1, 2, 3, 4] and store.current() == v4
    with pytest.raises(NothingToRollBack):  # nothing before the config's (it toggled back to v2's params)
        store.rollback()
    store2 = ParamsStore(str(tmp_path / "t"))
    store2.propose({"fast": 3}, "manual", "try")
    assert store2.rollback().params == {}  # back to the config's logic_params


def test_a_proposal_made_on_params_no_longer_in_force_is_not_written(tmp_path: Path) -> None:
    """Two optimisation runs at once both proposed the same change (v7, v8), the second's figures compared with
    params no longer in force, and a rollback then restored v7, the duplicate: the optimiser's params stayed (an
    outside trial). A proposal names the version its decision was based on."""
    from planar_core.params_store import StaleProposal

    store = ParamsStore(str(tmp_path / "s"))
    first = store.propose({"fast": 6, "slow": 28}, "optimize", "run A", based_on=0)
    with pytest.raises(StaleProposal, match="v0 then, v1 now"):
        store.propose({"fast": 6, "slow": 28}, "optimize", "run B", based_on=0)
    assert [v.version for v in store.history()] == [first.version]
    assert store.rollback().params == {}  # the operator's undo takes the change away


def test_a_refused_version_is_never_the_one_in_force(tmp_path: Path) -> None:
    """The engine refused v2 (its Params did not validate it) and kept v1; ``params show`` said v2 was in force and
    the scheduled optimisation compared with it, could not backtest it, and never proposed again (an outside
    trial). The engine marks it in the store; ``current`` and a rollback pass over it."""
    store = ParamsStore(str(tmp_path / "s"))
    store.propose({"fast": 3, "slow": 9}, "optimize", "v1")
    bad = store.propose({"fast": 12, "slow": 5}, "manual", "a mistake")
    store.refuse(bad.version, "fast (12) must be below slow (5)")
    now = store.current()
    assert now is not None and now.version == 1 and store.history()[-1].refused
    assert store.propose({"fast": 4, "slow": 9}, "optimize", "next", based_on=1).previous == 1
    assert store.rollback().params == {"fast": 3, "slow": 9}  # back past the refused one, to v1


async def test_a_running_strategy_applies_rolls_back_refuses_and_keeps_across_restarts(strategy_factory: Any, tmp_path: Path) -> None:
    name = "follow"
    params = {"fast": 5, "slow": 20}

    async def start() -> tuple[Any, Any, asyncio.Event, asyncio.Task[Any]]:
        s = await strategy_factory(name, universe=["BTC/USDT"], logic="tests.engine.test_params_follow:Seen", logic_params=params)
        logic = load_logic(s.config.logic, s.config.logic_params)
        stop = asyncio.Event()
        task = asyncio.create_task(run(s, logic, stop=stop, params_every=0.05, logic_errors="fail"))
        return s, logic, stop, task

    s, logic, stop, task = await start()
    store = ParamsStore(s.config.shared_root)
    store.propose({"fast": 3, "slow": 9}, "optimize", "oos sharpe 1.2 beats 0.9 by the margin")
    await wait_for(lambda: logic.params.fast == 3, timeout=10)
    assert logic.params.slow == 9
    (changed,) = s.sink.of("params_changed")
    assert changed["version"] == 1 and changed["payload"]["changed"] == {"fast": [5, 3], "slow": [20, 9]}

    root = str(Path(s.config.shared_root).parent)
    cmd = [sys.executable, "-m", "planar_core", "params", "rollback", name, "--root", root, "--reason", "live worse"]
    out = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    await wait_for(lambda: logic.params.fast == 5, timeout=10)  # the config's params again
    assert [e["source"] for e in s.sink.of("params_changed")] == ["optimize", "rollback"]

    store.propose({"fast": 30, "slow": 10}, "manual", "a mistake")  # fast must stay below slow: MACross refuses
    await wait_for(lambda: bool(s.sink.of("params_rejected")), timeout=10)
    assert (logic.params.fast, logic.params.slow) == (5, 20)
    await wait_for(lambda: bool(store.history()[-1].refused), timeout=10)  # marked: never "in force"
    now = store.current()
    assert now is not None and now.version == 2
    store.propose({"fast": 4, "slow": 16}, "optimize", "next week's")
    await wait_for(lambda: logic.params.fast == 4, timeout=10)
    stop.set()
    await asyncio.wait_for(task, 30)
    await s.stop()

    _s2, logic2, stop2, task2 = await start()  # a restart: the version in force before on_start
    await wait_for(lambda: logic2.at_start is not None, timeout=10)
    assert logic2.at_start == (4, 16)
    stop2.set()
    await asyncio.wait_for(task2, 30)
    nobody = [sys.executable, "-m", "planar_core", "params", "rollback", "nobody", "--root", root]
    bad = await asyncio.to_thread(subprocess.run, nobody, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_a_rollback_written_before_restores_existed_steps_back_too(tmp_path: Path) -> None:
    """A params.json written before this change: its rollback rows say nothing of what they restored, so a further
    rollback toggled back to the params rolled away (a review)."""
    import json

    store = ParamsStore(str(tmp_path / "s"))
    rows = [
        {"version": 1, "params": {"fast": 3, "slow": 9}, "source": "optimize", "reason": "", "at": "", "previous": 0, "details": {}},
        {"version": 2, "params": {"fast": 4, "slow": 12}, "source": "optimize", "reason": "", "at": "", "previous": 1, "details": {}},
        {"version": 3, "params": {"fast": 3, "slow": 9}, "source": "rollback", "reason": "", "at": "", "previous": 2, "details": {}},
    ]
    (tmp_path / "s").mkdir(parents=True, exist_ok=True)
    (tmp_path / "s" / "params.json").write_text(json.dumps({"versions": rows}))
    assert store.rollback().params == {}  # one more step back: the config's, not v2's again


def test_a_valid_version_before_a_refused_one_runs(tmp_path: Path) -> None:
    """v1 and a bad v2 written while the engine was down: it refused v2 and then ran the config's params while the
    store said v1 was in force (a review)."""
    from types import SimpleNamespace

    from planar_core.runner.params import ParamsFollower

    store = ParamsStore(str(tmp_path / "s"))
    store.propose({"fast": 3, "slow": 9}, "optimize", "good")
    store.propose({"fast": 30, "slow": 9}, "manual", "bad")
    events: list[tuple[str, dict[str, Any]]] = []
    s = SimpleNamespace(
        name="follow",
        config=SimpleNamespace(shared_root=str(tmp_path / "s"), logic_params={"fast": 5, "slow": 20}),
        sink=SimpleNamespace(record=lambda kind, **kw: events.append((kind, kw))),
        alert=lambda *a, **k: None,
    )
    logic = MACross(MACross.Params(fast=5, slow=20))
    ctx = SimpleNamespace(_set_params=lambda p: None)
    follower = ParamsFollower(s, logic, ctx)  # type: ignore[arg-type]
    applied = follower.check()
    assert applied is not None and applied.version == 1 and (logic.params.fast, logic.params.slow) == (3, 9)
    assert [k for k, _ in events] == ["params_rejected", "params_changed"] and store.history()[-1].refused
    assert follower.check() is None  # settled: nothing to apply again
