"""Operating a strategy from Prefect when its engine dies (issue 27), on a real ``prefect server start`` with a
process work pool, two workers, the stop agent and the shipped automations, as an operator would:

A. a UI e-stop with the engine alive: timed, the artifact says what the engine cancelled, the live run's status
   artifact ends with the verified count, every e-stop run tagged;
B. a UI e-stop with the engine SIGKILLed: timed (the stop agent runs it, no process to start);
C. a breaker trip: the automation's e-stop run finds the config by the strategy's name (no path in the event) and
   completes; the live run and its clone are gone;
D. a SIGSTOPped engine: Prefect's zombie automation marks its run Crashed, the restart is refused by the engine's
   lease (no second engine), and the heartbeat watchdog's e-stop cancels its orders;
E. the engine and its worker SIGKILLed together: the zombie automation marks the run Crashed (which frees the
   deployment's slot), the crash-restart automation starts a new run on the other worker, which adopts the orders
   (no duplicate) and trades; the dead run's task runs are closed;
then the operator's guide's screenshots. Every deployment here comes from ``prefect deploy --all`` run in a clone, its
pull step cloning it again as on another host; each shipped example's own flow runs in
test_flows.py::test_each_example_runs_through_planar_run.

Every figure is printed (trigger -> last cancel, crash -> trading, heartbeat loss -> cancelled); none is asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.deployments import run_deployment

from deployments.automations import create_all
from deployments.local_server import PREFECT, snapshot_repository
from deployments.prefect_yaml import HEADER, document
from deployments.specs import specs

from ..conftest import wait_for
from .test_prefect_server import PLANAR, ROOT, Background, artifacts, engine_env, final_state, open_orders, runs_of, state_of, write_config

NAME = "ops"


def engine_pid(store: Path) -> int:
    return int(json.loads((store / NAME / "heartbeat.json").read_text())["pid"])


def parent_chain(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        chain.append(pid)
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return chain


async def running(run_id) -> bool:
    st = await state_of(run_id)
    return st is not None and st.is_running()


async def status_published(run_id) -> bool:
    """The first status artifact is published after the start-up sync: the engine trades."""
    return any(a.flow_run_id == run_id for a in await artifacts(f"{NAME}-status"))


async def new_runs(flow: str, before: set) -> list:
    return [r for r in await runs_of(flow) if r.id not in before]


def screenshots(base: str, pages: dict[str, tuple[str, str]], out: Path) -> None:
    """The operator's guide's pictures (docs/operations.md): each page of the real server's UI in headless Chromium
    (the system's, driven by Playwright), taken once the text it must show is there; copied into docs/img with
    PLANAR_UPDATE_SCREENSHOTS=1. Without Chromium (CI installs none) nothing is taken, and the test says so."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print("no Chromium: the UI screenshots were not taken")
        return
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        try:
            page = chromium.new_page(viewport={"width": 1440, "height": 1000}, color_scheme="light")
            for name, (path, shows) in pages.items():
                page.goto(f"{base}{path}")
                page.get_by_text(shows).first.wait_for(timeout=60_000)
                page.wait_for_load_state("networkidle")
                png = out / f"{name}.png"
                page.screenshot(path=str(png), full_page=True)
                if os.environ.get("PLANAR_UPDATE_SCREENSHOTS") == "1":
                    shutil.copy(png, ROOT / "docs" / "img" / png.name)
        finally:
            chromium.close()
    print(f"UI screenshots: {sorted(pages)} in {out}")


def deploy_repo(tmp_path: Path, sandbox, store: Path) -> Path:
    """A snapshot of the repository with the test strategy's config in its examples/ and prefect.yaml regenerated
    from them, as a user adds a strategy and redeploys."""
    repo = snapshot_repository(ROOT, tmp_path / "repo")
    write_config(
        repo / "examples", NAME, sandbox, store, risk={"max_daily_loss": 300}, dead_mans_switch={"heartbeat_s": 2}, logic_params={"n": 2}
    )
    doc = document(specs(repo / "examples", relative_to=repo))
    (repo / "prefect.yaml").write_text(HEADER.format(folder="examples") + yaml.safe_dump(doc, sort_keys=False, width=120))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "the ops strategy"], cwd=repo, check=True)
    return repo


@pytest.mark.timeout(900)  # five scenarios on a real server, about four minutes here
async def test_operating_from_prefect_when_engines_die(prefect_api, prefect_home, sandbox, tmp_path) -> None:
    acct = sandbox.ex.add_account({"USDT": 10_000, "BTC": 0.1, "ETH": 1})
    store = tmp_path / "store"
    repo = deploy_repo(tmp_path, sandbox, store)
    env = {**engine_env(prefect_api, prefect_home, acct), "PLANAR_GIT_URL": str(repo)}
    env.pop("PYTHONPATH")

    def prefect(*args: str) -> None:
        out = subprocess.run([PREFECT, "--no-prompt", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    for pool in ("planar", "planar-stop"):  # the stop flows' pool has no worker: the stop agent claims its runs
        await asyncio.to_thread(prefect, "work-pool", "create", pool, "--type", "process", "--overwrite")
    await asyncio.to_thread(prefect, "deploy", "--all")
    ids = await create_all(watchdog_s=50, zombie_s=35)  # every shipped automation, with windows short enough for a test
    workers = [
        Background([PREFECT, "worker", "start", "--pool", "planar", "--name", f"w{i}"], env, cwd=tmp_path, log=tmp_path / f"w{i}.log")
        for i in (1, 2)
    ]
    agent = Background([PLANAR, "stop-agent", "--configs", "examples"], env, cwd=repo, log=tmp_path / "agent.log")

    def logs() -> str:
        return "\n".join(p.output() for p in (*workers, agent))

    async def start_live() -> object:
        run = await run_deployment(f"live_strategy/{NAME}-live", timeout=0)
        await wait_for(lambda: len(open_orders(sandbox, acct)) == 2, timeout=180, interval=0.2)
        await wait_for(lambda: status_published(run.id), timeout=60, interval=0.2)
        return run

    async def rearm() -> None:
        run = await run_deployment(f"rearm/{NAME}-rearm", parameters={"reason": "checked", "by": "test"}, timeout=0)
        st = await final_state(run.id, timeout=120)
        assert st.is_completed(), (st, logs())

    async def estop_timed(deployment: str, **params: object) -> tuple[object, float]:
        """A click on the deployment's Run button: one POST create_flow_run, then the exchange is watched."""
        async with get_client() as client:
            dep = await client.read_deployment_by_name(deployment)
            t0 = time.perf_counter()
            run = await client.create_flow_run_from_deployment(dep.id, parameters=params)
            created = time.perf_counter() - t0
        await wait_for(lambda: open_orders(sandbox, acct) == [], timeout=60, interval=0.05)
        print(f"  ({deployment}: the API took {created:.2f}s to create the run)")
        return run, time.perf_counter() - t0

    try:
        assert agent.proc.poll() is None, agent.output()
        # A. engine alive: the engine cancels on its own connections; the e-stop run verifies and reports both parts
        live = await start_live()
        estop, alive_s = await estop_timed(f"emergency_stop/{NAME}-emergency-stop", reason="by hand, engine alive")
        print(f"UI e-stop, engine alive: trigger -> last cancel {alive_s:.2f}s")
        st = await final_state(estop.id, timeout=120)
        assert st.is_completed(), (st, logs())
        assert (await final_state(live.id)).is_cancelled()
        async with get_client() as client:
            fr = await client.read_flow_run(estop.id)
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[estop.id])))
        assert {"emergency-stop", f"strategy:{NAME}"} <= set(fr.tags) and any(t.startswith("account:binance-") for t in fr.tags), fr.tags
        assert sorted(t.name for t in tasks) == ["estop:BTC/USDT", "estop:ETH/USDT"]
        report = next(a for a in await artifacts(f"{NAME}-emergency-stop") if a.flow_run_id == estop.id).data
        assert "**CLEAN" in report and "{}" not in report
        by_engine = int(report.split("| orders cancelled by the running engine | ")[1].split(" ")[0])
        by_run = int(report.split("| orders cancelled by this run | ")[1].split(" ")[0])
        assert by_engine + by_run == 2, report  # who was first is a race; together, exactly what was open
        print(f"engine alive: the engine cancelled {by_engine}, the e-stop run {by_run}")
        status = next(a for a in await artifacts(f"{NAME}-status") if a.flow_run_id == live.id).data
        assert "after the emergency stop" in status and status.rstrip().endswith("| clean | True |"), status
        assert "| open_orders | 0 |" in status.split("after the emergency stop")[1]
        await rearm()

        # B. engine dead (SIGKILL; its worker lives and marks the run Crashed): the stop agent runs the e-stop at once
        live = await start_live()
        os.kill(engine_pid(store), signal.SIGKILL)
        estop, dead_s = await estop_timed("emergency_stop/emergency-stop", strategy=NAME, reason="by hand, engine dead")
        print(f"UI e-stop, engine dead: trigger -> last cancel {dead_s:.2f}s")
        assert (await final_state(estop.id, timeout=120)).is_completed(), logs()
        assert (await final_state(live.id, timeout=60)).type.value == "CRASHED"  # its worker saw the process die

        async def restart_of(crashed) -> list:
            return [r for r in await runs_of("live_strategy") if (r.parameters or {}).get("restart_of") == str(crashed.id)]

        await wait_for(lambda: restart_of(live), timeout=60, interval=0.25)  # the crash-restart automation
        st = await final_state((await restart_of(live))[0].id, timeout=180)
        # halted by the e-stop (or cancelled by it, when it was still waiting): a restart never trades through a stop
        assert (st.is_failed() and "re-arm" in st.message) or st.is_cancelled(), st
        assert open_orders(sandbox, acct) == []
        await rearm()

        # C. a breaker trip: the automation's e-stop names the strategy; its config is found in the deployment's folder
        live = await start_live()
        clone = Path(os.readlink(f"/proc/{engine_pid(store)}/cwd"))
        estops_before = {r.id for r in await runs_of("emergency_stop")}
        sandbox.ex.markets[("spot", "BTCUSDT")].shock = 0.5
        sandbox.hub.publish_now()
        st = await final_state(live.id, timeout=120)
        assert st.is_failed() and "Daily loss" in st.message, st
        await wait_for(lambda: new_runs("emergency_stop", estops_before), timeout=60, interval=0.25)
        breaker_estop = (await new_runs("emergency_stop", estops_before))[0]
        assert (await final_state(breaker_estop.id, timeout=120)).is_completed(), logs()
        assert "config_path" not in breaker_estop.parameters and breaker_estop.parameters["strategy"] == NAME
        assert open_orders(sandbox, acct) == []
        await wait_for(lambda: not clone.exists(), timeout=60, interval=0.25)  # the live run's clone is gone
        await rearm()

        # D. a frozen engine (SIGSTOP): Crashed by the zombie automation, its restart refused by the lease, its orders
        # cancelled by the heartbeat watchdog's e-stop
        live = frozen_run = await start_live()
        frozen = engine_pid(store)
        estops_before = {r.id for r in await runs_of("emergency_stop")}
        t0 = time.perf_counter()
        os.kill(frozen, signal.SIGSTOP)
        try:
            st = await final_state(live.id, timeout=120)
            assert st.type.value == "CRASHED" and "no heartbeat" in st.message, st
            await wait_for(lambda: open_orders(sandbox, acct) == [], timeout=120, interval=0.1)
            print(f"heartbeat lost (SIGSTOP) -> orders cancelled {time.perf_counter() - t0:.2f}s")
            watchdog = await new_runs("emergency_stop", estops_before)
            assert watchdog and "watchdog" in watchdog[0].parameters["reason"], watchdog
            await wait_for(lambda: restart_of(live), timeout=60, interval=0.25)
            restart = await restart_of(live)
            st = await final_state(restart[0].id, timeout=120)
            assert st.is_failed() and ("lease" in st.message or "halted" in st.message), st  # never a second engine
        finally:
            os.kill(frozen, signal.SIGKILL)
        await rearm()

        # E. engine and worker SIGKILLed together: zombie -> Crashed (slot freed) -> restart on the other worker,
        # which adopts the two orders and trades; the dead run's task runs are closed
        async with get_client() as client:
            for automation in await client.read_automations_by_name("planar: heartbeat lost -> emergency stop"):
                await client.pause_automation(automation.id)  # this scenario is about the restart, not the e-stop
        live = await start_live()
        orders_before = {o["order_id"] for o in open_orders(sandbox, acct)}
        chain = parent_chain(engine_pid(store))
        victim = next(w for w in workers if w.proc.pid in chain)
        runs_before = {r.id for r in await runs_of("live_strategy")}
        t0 = time.perf_counter()
        os.killpg(victim.proc.pid, signal.SIGKILL)
        for pid in chain[: chain.index(victim.proc.pid)]:  # the engine, in case it left the worker's process group
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        st = await final_state(live.id, timeout=180)
        assert st.type.value == "CRASHED", st
        crashed_s = time.perf_counter() - t0
        await wait_for(lambda: new_runs("live_strategy", runs_before), timeout=120, interval=0.25)
        restarted = (await new_runs("live_strategy", runs_before))[0]
        assert restarted.parameters["restart_of"] == str(live.id)
        await wait_for(lambda: status_published(restarted.id), timeout=180, interval=0.25)
        trading_s = time.perf_counter() - t0
        print(f"engine + worker SIGKILL -> Crashed {crashed_s:.1f}s -> new run trading {trading_s:.1f}s")
        assert {o["order_id"] for o in open_orders(sandbox, acct)} == orders_before  # adopted, none placed twice
        async with get_client() as client:
            left = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[live.id])))
        assert left and not [t.name for t in left if t.state is not None and t.state.is_running()]
        pages = {"live-run": (f"/runs/flow-run/{restarted.id}", restarted.name), "automations": ("/automations", "heartbeat lost")}
        estop, _ = await estop_timed(f"emergency_stop/{NAME}-emergency-stop", reason="end of test")
        assert (await final_state(estop.id, timeout=120)).is_completed()
        report = next(a for a in await artifacts(f"{NAME}-emergency-stop") if a.flow_run_id == estop.id)
        pages |= {
            "estop-run": (f"/runs/flow-run/{estop.id}", estop.name),
            "estop-artifact": (f"/artifacts/artifact/{report.id}", "orders cancelled by this run"),
            "crashed-run": (f"/runs/flow-run/{frozen_run.id}", frozen_run.name),
        }
        await asyncio.to_thread(screenshots, prefect_api.removesuffix("/api"), pages, tmp_path / "screens")

    finally:
        for proc in (agent, *workers):
            proc.stop()
        async with get_client() as client:
            for automation_id in ids:
                await client.delete_automation(automation_id)
