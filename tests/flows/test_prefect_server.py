"""Every user path on a real Prefect server (issue 13): deployments served by ``planar serve``, runs triggered through
the API as the UI does, states, artifacts and automations read back. The work-pool path (prefect.yaml, workers, the
stop agent) is tests/flows/test_operations.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowFilter, FlowFilterName, LogFilter, LogFilterFlowRunId
from prefect.deployments import run_deployment
from prefect.states import Cancelling

from deployments.local_server import server_env

from ..conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
PLANAR = str(Path(sys.executable).with_name("planar"))


def open_orders(sandbox, account) -> list:
    return sandbox.ex.snapshot()["accounts"][account.api_key]["open_orders"]


async def state_of(run_id):
    async with get_client() as client:
        return (await client.read_flow_run(run_id)).state


async def final_state(run_id, timeout: float = 90):
    holder = {}

    async def done() -> bool:
        holder["s"] = await state_of(run_id)
        return holder["s"] is not None and holder["s"].is_final()

    await wait_for(done, timeout=timeout, interval=0.25)
    return holder["s"]


async def runs_of(flow_name: str) -> list:
    async with get_client() as client:
        return await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))


async def artifacts(key: str) -> list:
    async with get_client() as client:
        return await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


async def planar(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(PLANAR, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 180)
    return proc.returncode or 0, out.decode()


class Background:
    """A long-running command (planar serve, prefect worker), its output kept for the failure message."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path | None = None, log: Path | None = None) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=open(log, "w") if log else subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        return self.log.read_text()[-4000:] if self.log else ""

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def write_config(folder: Path, name: str, sandbox, store: Path, **extra) -> Path:
    cfg = {
        "name": name,
        "universe": ["BTC/USDT", "ETH/USDT"],
        "store_root": str(store),
        "sandbox_endpoint": {"url": sandbox.url, "ws_url": sandbox.ws_url},
        "rate_limits": {"weight_per_minute": 1_000_000, "orders_per_second": 1000},
        "connection": {"health_interval": 3600},
        "tick_interval": 0.2,
        "event_tracing": {"flush_interval": 0.5},
        "logic": "tests.flows.logic:RestingOrders",
        "logic_params": {"n": 2},
    }
    cfg.update(extra)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(cfg))
    return path


def engine_env(prefect_api: str, prefect_home: Path, account) -> dict[str, str]:
    return {
        **server_env(prefect_home, prefect_api),
        "EXCHANGE_API_KEY": account.api_key,
        "EXCHANGE_API_SECRET": account.api_secret,
        "PYTHONPATH": str(ROOT),
    }


def test_every_entrypoint_loads_the_real_flow_in_a_fresh_interpreter() -> None:
    """As Prefect loads a deployment: the file entrypoint in a new process. flows/logging.py once shadowed the
    standard library there and the live deployment crashed on load."""
    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    entrypoints = sorted({d["entrypoint"] for d in doc["deployments"]})
    code = (
        "import sys; from prefect.flows import load_flow_from_entrypoint\n"
        "for ep in sys.argv[1:]:\n"
        "    f = load_flow_from_entrypoint(ep, use_placeholder_flow=False)\n"
        "    print(ep, f.name, f.fn.__code__.co_filename)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *entrypoints],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines())
    for ep in entrypoints:
        name, filename = lines[ep].split(" ", 1)
        assert name == ep.rsplit(":", 1)[1] and filename == str(ROOT / ep.split(":")[0])


def test_prefect_yaml_is_generated_from_the_configs_and_names_the_installed_prefect() -> None:
    import prefect

    from deployments.prefect_yaml import render

    assert (ROOT / "prefect.yaml").read_text() == render(), "prefect.yaml is stale: run `planar deployments write`"
    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert doc["prefect-version"] == prefect.__version__
    assert all(d["tags"] and "planar" in d["tags"] for d in doc["deployments"])
    assert "git_clone" in json.dumps(doc["pull"]) and "$PWD" not in json.dumps(doc)
    live = [d for d in doc["deployments"] if d["entrypoint"].endswith(":live_strategy")]
    assert live and all(d["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"} for d in live)


def test_deployments_are_generated_for_every_config_in_a_folder(tmp_path: Path) -> None:
    from deployments.specs import specs

    for name in ("alpha", "beta"):
        (tmp_path / f"{name}.json").write_text(json.dumps({"name": name, "universe": ["BTC/USDT"]}))
    names = {sp.name for sp in specs(tmp_path, relative_to=None)}
    for name in ("alpha", "beta"):
        assert {
            f"{name}-live",
            f"{name}-emergency-stop",
            f"{name}-rearm",
            f"{name}-daily-reset",
            f"{name}-auto-tune",
            f"{name}-resync",
            f"{name}-compact-trace",
        } <= names
    assert "emergency-stop" in names
    assert not any(n.endswith("-optimize") for n in names)  # no config enables the scheduled optimisation
    (tmp_path / "gamma.json").write_text(
        json.dumps(
            {
                "name": "gamma",
                "universe": ["BTC/USDT"],
                "optimization": {"enabled": True, "params": {"fast": "2:5"}, "schedule": "0 4 * * 0"},
            }
        )
    )
    (opt,) = [sp for sp in specs(tmp_path, relative_to=None) if sp.name.endswith("-optimize")]
    assert (opt.name, opt.cron, opt.entrypoint) == ("gamma-optimize", "0 4 * * 0", "flows/optimize.py:optimize_strategy")


async def test_served_deployments_live_estop_rearm_cancel_and_automations(prefect_api, prefect_home, sandbox, tmp_path) -> None:
    """planar serve; the live deployment trades; a second run is refused (concurrency 1); the e-stop deployment
    triggered by hand cancels every order and the live run ends Cancelled; re-arm; a cancel from the UI stops the
    engine cleanly (Cancelled, report written); planar automations twice leaves one automation each, and one
    breaker trip makes exactly one e-stop run, aimed at the strategy that tripped, whose live run ends Failed."""
    acct = sandbox.ex.add_account({"USDT": 10_000, "BTC": 0.1, "ETH": 1})
    configs = tmp_path / "configs"
    write_config(configs, "served", sandbox, tmp_path / "store", risk={"max_daily_loss": 300})
    optimization = {"enabled": True, "params": {"fast": "2,4"}, "method": "grid", "metric": "return", "days": 1}
    optimization.update(walk_forward="12h:6h", min_improvement=1e9)  # a search that never proposes: nothing to apply
    tuned = {"universe": ["BTC/USDT"], "timeframes": ["1m"], "logic": "planar_core.strategies.ma_cross:MACross"}
    write_config(configs, "tuned", sandbox, tmp_path / "tuned", **tuned, logic_params={"fast": 3, "slow": 10}, optimization=optimization)
    env = engine_env(prefect_api, prefect_home, acct)
    server = Background([PLANAR, "serve", "--configs", str(configs)], env, log=tmp_path / "serve.log")
    try:

        async def deployed() -> bool:
            async with get_client() as client:
                deps = await client.read_deployments()
            return {"served-live", "served-emergency-stop", "emergency-stop", "resync", "served-rearm", "tuned-optimize"} <= {
                d.name for d in deps
            }

        await wait_for(deployed, timeout=120, interval=0.5)
        # 1. the live deployment trades; a second run of it is cancelled while the first runs
        live = await run_deployment("live_strategy/served-live", timeout=0)
        await wait_for(lambda: len(open_orders(sandbox, acct)) >= 2, timeout=120, interval=0.2)
        assert (await state_of(live.id)).is_running()
        second = await run_deployment("live_strategy/served-live", timeout=0)
        assert (await final_state(second.id)).is_cancelled()

        async def explained() -> bool:  # by the stop agent in planar serve: the refusal names the run holding the slot
            st = await state_of(second.id)
            return st.is_cancelled() and (st.message or "").startswith("Refused:")

        await wait_for(explained, timeout=30, interval=0.2)
        async with get_client() as client:
            holder = await client.read_flow_run(live.id)
            logs = await client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[second.id])))
        message = (await state_of(second.id)).message or ""
        assert f"'{holder.name}' ({live.id}), Running" in message, message
        assert [entry.message for entry in logs] == [message]  # its page has a log line, not "no logs"
        # 2. e-stop by hand: every order cancelled, the live run ends Cancelled (not Completed)
        t0 = time.perf_counter()
        estop = await run_deployment("emergency_stop/served-emergency-stop", parameters={"reason": "by hand"}, timeout=0)
        await wait_for(lambda: open_orders(sandbox, acct) == [], timeout=60, interval=0.05)
        print(f"e-stop through the served deployment: trigger -> last cancel {time.perf_counter() - t0:.2f}s")
        ended = await final_state(live.id)
        assert ended.is_cancelled() and "emergency stop" in ended.message, ended
        assert (await final_state(estop.id)).is_completed()
        # halted: a new live run is refused, not green
        refused = await run_deployment("live_strategy/served-live", timeout=0)
        st = await final_state(refused.id)
        assert st.is_failed() and "re-arm" in st.message, st
        # 3. re-arm through its deployment (what the UI does)
        rearm = await run_deployment("rearm/served-rearm", parameters={"reason": "checked the account", "by": "test"}, timeout=0)
        assert (await final_state(rearm.id)).is_completed(), await state_of(rearm.id)
        # 4. a cancel from the UI: the runner SIGTERMs the engine, which stops cleanly and ends Cancelled
        live2 = await run_deployment("live_strategy/served-live", timeout=0)
        await wait_for(lambda: len(open_orders(sandbox, acct)) >= 2, timeout=120, interval=0.2)
        await wait_for(lambda: _running(live2.id), timeout=60, interval=0.2)
        async with get_client() as client:
            await client.set_flow_run_state(live2.id, Cancelling(message="cancelled from the UI"), force=True)
        st = await final_state(live2.id)
        assert st.is_cancelled(), st
        report = [a for a in await artifacts("served-report") if a.flow_run_id == live2.id]
        assert len(report) == 1 and "cancelled" in report[0].data
        assert len(open_orders(sandbox, acct)) == 2  # a plain cancel leaves orders resting, as configured
        # 5. automations: idempotent, and one breaker trip -> exactly one e-stop run aimed at this strategy
        for _ in range(2):
            code, out = await planar("automations", env=env)
            assert code == 0, out
        async with get_client() as client:
            assert len(await client.read_automations_by_name("planar: circuit breaker -> emergency stop")) == 1
        estops_before = {r.id for r in await runs_of("emergency_stop")}
        live3 = await run_deployment("live_strategy/served-live", timeout=0)
        await wait_for(lambda: _running(live3.id), timeout=60, interval=0.2)

        async def ticking() -> bool:  # the first status is published after start-up sync, with prices and balances
            return any(a.flow_run_id == live3.id for a in await artifacts("served-status"))

        await wait_for(ticking, timeout=60, interval=0.2)
        sandbox.ex.markets[("spot", "BTCUSDT")].shock = 0.5
        sandbox.hub.publish_now()
        st = await final_state(live3.id)
        assert st.is_failed() and "Daily loss" in st.message, st

        async def one_estop_run() -> bool:
            return len({r.id for r in await runs_of("emergency_stop")} - estops_before) >= 1

        await wait_for(one_estop_run, timeout=60, interval=0.5)
        first = next(r for r in await runs_of("emergency_stop") if r.id not in estops_before)
        ended = await final_state(first.id)
        assert ended.is_completed(), (ended, server.output())  # by then, duplicate triggers would have made their runs
        new = [r for r in await runs_of("emergency_stop") if r.id not in estops_before]
        assert len(new) == 1
        p = new[0].parameters
        # aimed by name and account; its config is found in the deployment's folder, not through a path in the event
        assert p["strategy"] == "served" and p["account"].startswith("binance-") and "config_path" not in p
        # 6. the scheduled optimisation: its deployment carries the config's schedule (weekly by default); a run of it
        # (what the schedule starts) downloads its own candles from the sandbox, searches, publishes trials and decision
        async with get_client() as client:
            dep = await client.read_deployment_by_name("optimize_strategy/tuned-optimize")
        assert [getattr(d.schedule, "cron", None) for d in dep.schedules] == ["0 3 * * 1"]
        opt = await run_deployment("optimize_strategy/tuned-optimize", timeout=0)
        st = await final_state(opt.id, timeout=180)
        assert st.is_completed(), (st, server.output())
        for key in ("tuned-optimization", "tuned-optimization-trials"):
            assert any(a.flow_run_id == opt.id for a in await artifacts(key)), key
    finally:
        server.stop()
    assert server.proc.returncode is not None


async def _running(run_id) -> bool:
    st = await state_of(run_id)
    return st is not None and st.is_running()


# The work-pool path (prefect deploy --all, workers, the stop agent, every example's live deployment) is
# tests/flows/test_operations.py.
