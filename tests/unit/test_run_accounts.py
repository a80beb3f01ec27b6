"""Which flow runs are this engine's: strategy names are not unique across accounts (a desk's ``grid`` and a test
account's ``grid``), so an e-stop request and a zombie live run are matched by the account their config trades,
not the name alone (flows/control.py ``run_account``, ``aimed_at``). An outside trial: a test account's ``grid``
got the desk's live run marked Crashed (its engine stopped, its orders unmanaged), and the desk's e-stop of
``grid`` stopped the test account's engine too."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from flows.control import aimed_at, run_account


def account_config(folder: Path, key: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "grid.toml"
    path.write_text(f'name = "grid"\nuniverse = ["BTC/USDT"]\n[credentials]\napi_key = "{key}"\napi_secret = "s-{key}"\n')
    return path


def request(**params: Any) -> Any:
    return SimpleNamespace(parameters={"strategy": "grid", **params})


def test_a_request_is_aimed_by_the_account_its_config_trades(tmp_path: Path) -> None:
    desk, test = account_config(tmp_path / "desk", "desk-key"), account_config(tmp_path / "test", "test-key")
    desk_account = run_account({"config_path": str(desk)}, "grid")
    assert desk_account is not None and desk_account != run_account({"config_path": str(test)}, "grid")
    assert run_account({"configs_dir": str(tmp_path / "desk")}, "grid") == desk_account  # a deployment's folder
    engine = cast(Any, SimpleNamespace(name="grid", account=desk_account))
    assert aimed_at(request(config_path=str(desk)), engine)
    assert not aimed_at(request(config_path=str(test)), engine)  # the test account's stop: not this engine's
    assert aimed_at(request(account=desk_account), engine) and not aimed_at(request(account="binance-other"), engine)
    assert aimed_at(request(config_path=str(tmp_path / "gone.toml")), engine)  # cannot be told: stopped, never missed
    assert not aimed_at(SimpleNamespace(parameters={"strategy": "grid-2", "config_path": str(desk)}), engine)


def test_a_request_naming_only_the_strategy_stops_the_engine(tmp_path: Path) -> None:
    """``planar emergency-stop NAME`` without a config: nothing says the request's account here, so the engine of
    that name takes it (a config built from the environment alone gave a definite, wrong account, and the engine
    skipped the stop: found by the review)."""
    desk = account_config(tmp_path / "desk", "desk-key")
    engine = cast(Any, SimpleNamespace(name="grid", account=run_account({"config_path": str(desk)}, "grid")))
    assert run_account({}, "grid") is None
    assert aimed_at(request(), engine) and aimed_at(request(config_path=None, configs_dir="None"), engine)


def test_a_restart_run_that_never_started_does_not_count_against_the_budget(monkeypatch: Any) -> None:
    """The crash-restart budget counts restart runs that ran (this one included), not those an e-stop cancelled
    before they started (an outside operator trial: "4 crash restarts within the hour" after 2)."""
    import asyncio
    from datetime import UTC, datetime
    from uuid import uuid4

    import flows.live as live

    now = datetime.now(UTC)

    def run(started: bool) -> Any:
        return SimpleNamespace(
            id=uuid4(), parameters={"strategy": "grid", "restart_of": "x"}, created=now, start_time=now if started else None
        )

    runs = [run(True), run(True), run(False), run(False)]

    async def fake_live_runs(strategy: str, states: Any = None) -> list[Any]:
        return runs

    monkeypatch.setattr(live, "live_runs", fake_live_runs)
    assert asyncio.run(live.restarts_within_hour("grid")) == 2


def test_the_estop_flow_cancels_only_the_live_runs_of_the_account_it_stopped(tmp_path: Path, monkeypatch: Any) -> None:
    """The e-stop flow's run cancel list: the desk's stop of ``grid`` cancelled the test account's live run too (the
    review of the account-matching change); a run whose account cannot be told is cancelled (never missed)."""
    import asyncio

    import flows.emergency as emergency

    desk, test = account_config(tmp_path / "desk", "desk-key"), account_config(tmp_path / "test", "test-key")
    runs = [
        SimpleNamespace(id="desk-run", parameters={"strategy": "grid", "config_path": str(desk)}),
        SimpleNamespace(id="test-run", parameters={"strategy": "grid", "config_path": str(test)}),
        SimpleNamespace(id="blind-run", parameters={"strategy": "grid"}),
    ]

    async def live_runs(strategy: str) -> list[Any]:
        return runs

    monkeypatch.setattr(emergency, "live_runs", live_runs)
    desk_account = run_account({"config_path": str(desk)}, "grid")
    aimed = asyncio.run(emergency.aimed_live_runs("grid", desk_account))
    assert [r.id for r in aimed] == ["desk-run", "blind-run"]
    assert [r.id for r in asyncio.run(emergency.aimed_live_runs("grid", None))] == ["desk-run", "test-run", "blind-run"]
