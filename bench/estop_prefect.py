"""E-stop through Prefect on a real server: trigger (one ``create_flow_run`` of the served e-stop deployment, as
the UI's Run button does) -> the last order cancelled on the sandbox.

Each case in a block of rounds, in the same run:
* served (``planar serve`` with its stop agent), engine alive: the live engine sees the e-stop run appear and cancels
  on its own connections;
* served, engine dead: the engine's process is SIGKILLed; the stop agent runs the flow in its warm process;
* worker (``prefect deploy --all`` onto a process pool, a worker, ``planar stop-agent``), engine alive and dead;
* engine dead, runner only (the baseline, the path before the stop agent): ``planar serve --no-stop-agent``; the
  runner (polling every second here, 10 s by default) starts the flow in a new process.

    .venv/bin/python -m bench.estop_prefect [--rounds 5] [--database sqlite|postgres] [--paths serve,worker]

On SQLite (Prefect's default) the server answers a create with 503 when its write collides with another
connection's (SQLITE_BUSY on upgrading a read transaction); Prefect's client, and so the CLI and this bench, retries
after 2 s, then 4 s. Each round says how many such retries its trigger met. ``--database postgres`` runs the server on
a fresh database of Debian's PostgreSQL cluster (``apt-get install postgresql``), the production setting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from deployments.local_server import prefect_server, server_env

from .common import figure, median, sandbox_process

if TYPE_CHECKING:
    from uuid import UUID

    from prefect.client.orchestration import PrefectClient

PLANAR = str(Path(sys.executable).with_name("planar"))


async def open_orders(http: aiohttp.ClientSession, info: dict) -> int:
    async with http.get(f"{info['url']}/admin/snapshot") as r:
        snap = await r.json()
    return len(snap["accounts"][info["api_key"]]["open_orders"])


async def until(predicate, timeout: float = 120.0, every: float = 0.02) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(every)


class Retries(logging.Handler):
    """Counts the Prefect client's retries (a 503 from a busy SQLite server, a dropped connection)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0
        self.why: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "Another attempt will be made" in record.getMessage():
            self.count += 1
            exc = record.exc_info[1] if record.exc_info else None
            self.why.append(f"{type(exc).__name__}: {exc}" if exc else record.getMessage().split(".")[0])


RETRIES = Retries()


async def one_round(http: aiohttp.ClientSession, info: dict, store: Path, kill_engine: bool) -> float:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    async with get_client() as client:
        state = json.loads((store / "bench" / "state.json").read_text()) if (store / "bench" / "state.json").exists() else {}
        if state.get("halted"):
            rearm = await run_deployment("rearm/bench-rearm", parameters={"reason": "bench round", "by": "bench"}, timeout=120)
            assert rearm.state is not None and rearm.state.is_completed(), rearm.state
        live = await run_deployment("live_strategy/bench-live", timeout=0)
        await until(lambda: _at_least(http, info, 2))
        await until(lambda: _status_published(client, live.id))  # past its start-up: trading, as an operator finds it
        if kill_engine:
            lease = next((store / "leases").glob("*--bench.lock"))
            await until(lambda: _has_text(lease))
            os.kill(json.loads(lease.read_text())["pid"], signal.SIGKILL)
            await until(lambda: _final(client, live.id))  # its worker or runner marked it Crashed: the death is seen
        dep = await client.read_deployment_by_name("emergency_stop/bench-emergency-stop")
        retried = RETRIES.count
        t0 = time.perf_counter()
        estop = await client.create_flow_run_from_deployment(dep.id, parameters={"reason": "bench"})
        created = time.perf_counter() - t0
        await until(lambda: _none_open(http, info))
        took = time.perf_counter() - t0
        print(
            f"  round: the API created the run in {created:.2f}s ({RETRIES.count - retried} client retries"
            f"{': ' + '; '.join(RETRIES.why[retried:]) if RETRIES.count > retried else ''}); last cancel at {took:.2f}s",
            file=sys.stderr,
            flush=True,
        )
        await until(lambda: _final(client, live.id))
        await until(lambda: _final(client, estop.id))  # its halt is written: the next round re-arms first
    return took


async def _status_published(client: PrefectClient, run_id: UUID) -> bool:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    flt = ArtifactFilter(key=ArtifactFilterKey(any_=["bench-status"]), flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    return bool(await client.read_artifacts(artifact_filter=flt))


async def _final(client: PrefectClient, run_id: UUID) -> bool:
    st = (await client.read_flow_run(run_id)).state
    return st is not None and st.is_final()


async def _at_least(http: aiohttp.ClientSession, info: dict, n: int) -> bool:
    return await open_orders(http, info) >= n


async def _none_open(http: aiohttp.ClientSession, info: dict) -> bool:
    return await open_orders(http, info) == 0


async def _has_text(path: Path) -> bool:
    return bool(path.read_text().strip())


def fresh_postgres() -> str:
    """A new, empty database on the local cluster (started if needed): every run starts from nothing."""
    from deployments.scale_out import DB_URL, ensure_postgres

    ensure_postgres()
    psql = ["runuser", "-u", "postgres", "--", "psql", "-v", "ON_ERROR_STOP=1", "-tAc"]
    subprocess.run(psql + ["DROP DATABASE IF EXISTS prefect_bench WITH (FORCE)"], check=True, capture_output=True)
    subprocess.run(psql + ["CREATE DATABASE prefect_bench OWNER planar"], check=True, capture_output=True)
    return DB_URL.rsplit("/", 1)[0] + "/prefect_bench"


async def main(rounds: int, database: str, paths: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp, sandbox_process("--balance", "USDT=20000,BTC=0.2,ETH=3") as info:
        home, store, configs = Path(tmp) / "prefect", Path(tmp) / "store", Path(tmp) / "configs"
        configs.mkdir()
        (configs / "bench.json").write_text(
            json.dumps(
                {
                    "name": "bench",
                    "universe": ["BTC/USDT", "ETH/USDT"],
                    "store_root": str(store),
                    "sandbox_endpoint": {"url": info["url"], "ws_url": info["ws_url"]},
                    "tick_interval": 0.2,
                    "rate_limits": {"weight_per_minute": 1_000_000, "orders_per_second": 1000},
                    "logic": "tests.flows.logic:RestingOrders",
                    "logic_params": {"n": 2},
                }
            )
        )
        db_url = fresh_postgres() if database == "postgres" else None
        results: dict[str, list[float]] = {}
        with prefect_server(home, database_url=db_url) as api:
            os.environ["PREFECT_API_URL"] = api
            client_log = logging.getLogger("prefect.client")
            client_log.addHandler(RETRIES)
            client_log.setLevel(logging.DEBUG)
            env = {
                **server_env(home, api, database_url=db_url),
                "EXCHANGE_API_KEY": info["api_key"],
                "EXCHANGE_API_SECRET": info["api_secret"],
                "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            }
            async with aiohttp.ClientSession() as http:

                async def block(name: str, kill_engine: bool) -> None:
                    print(f"{name}:", file=sys.stderr, flush=True)
                    results[name] = [await one_round(http, info, store, kill_engine) for _ in range(rounds)]

                if "serve" in paths:
                    async with served(configs, env, agent=True):
                        await block("serve_engine_alive", kill_engine=False)
                        await block("serve_engine_dead_stop_agent", kill_engine=True)
                async with served(configs, env, agent=False):
                    await block("runner_only", kill_engine=True)
                if "worker" in paths:  # last: its deployments replace the served ones
                    async with on_pool(Path(tmp), configs, env):
                        await block("worker_engine_alive", kill_engine=False)
                        await block("worker_engine_dead_stop_agent", kill_engine=True)
    runner = results.pop("runner_only")
    for name, values in results.items():
        figure(
            f"estop_via_deployment_{name}_s",
            median(values),
            median(runner),
            "engine dead, the runner's new process (no stop agent)",
            goal="<= 1 s alive, <= 3 s dead",
            database=database,
            rounds=rounds,
            values_s=[round(x, 3) for x in values],
            baseline_s=[round(x, 3) for x in runner],
        )


def deploy_on_pool(tmp: Path, configs: Path, env: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """As docs/orchestration.md deploys: a clone of this repository with the bench's config and its prefect.yaml,
    ``prefect deploy --all`` onto process pools. Returns the clone and the environment its processes need."""
    import yaml

    from deployments.local_server import PREFECT, snapshot_repository
    from deployments.prefect_yaml import HEADER, document
    from deployments.specs import ROOT, STOP_POOL, specs

    repo = snapshot_repository(ROOT, tmp / "repo")
    (repo / "bench_configs").mkdir()
    shutil.copy(configs / "bench.json", repo / "bench_configs" / "bench.json")
    doc = document(specs(repo / "bench_configs", relative_to=repo))
    (repo / "prefect.yaml").write_text(HEADER.format(folder="bench_configs") + yaml.safe_dump(doc, sort_keys=False, width=120))
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "the bench's strategy"], cwd=repo, check=True)
    env = {**env, "PLANAR_GIT_URL": str(repo)}
    env.pop("PYTHONPATH")  # the worker's runs import from their clone
    for pool in ("planar", STOP_POOL):
        create = [PREFECT, "--no-prompt", "work-pool", "create", pool, "--type", "process", "--overwrite"]
        subprocess.run(create, env=env, check=True, capture_output=True)
    subprocess.run([PREFECT, "--no-prompt", "deploy", "--all"], cwd=repo, env=env, check=True, capture_output=True, timeout=300)
    return repo, env


@contextlib.asynccontextmanager
async def on_pool(tmp: Path, configs: Path, env: dict[str, str]) -> AsyncIterator[None]:
    """The worker path: the deployments on process pools, one worker (which clones the repository for each run, as
    on another host) and ``planar stop-agent``, until the block ends."""
    from deployments.local_server import PREFECT

    repo, env = await asyncio.to_thread(deploy_on_pool, tmp, configs, env)
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 - long-lived processes, started once per block, not awaited
            args, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        for args in ([PREFECT, "worker", "start", "--pool", "planar"], [PLANAR, "stop-agent", "--configs", "bench_configs"])
    ]
    try:
        yield
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)


@contextlib.asynccontextmanager
async def served(configs: Path, env: dict[str, str], agent: bool) -> AsyncIterator[None]:
    """``planar serve`` (with or without its stop agent) until the block ends; its deployments exist on entry."""
    from prefect.client.orchestration import get_client

    flag = "--stop-agent" if agent else "--no-stop-agent"
    serve = subprocess.Popen(  # noqa: ASYNC220 - a long-lived server process, started once per block, not awaited
        [PLANAR, "serve", "--configs", str(configs), flag],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    async def deployed() -> bool:
        async with get_client() as client:
            return len(await client.read_deployments()) >= 8

    try:
        await until(deployed, every=0.5)
        yield
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=60)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--paths", default="serve,worker", help="serve, worker or both (the runner-only baseline always runs)")
    args = ap.parse_args()
    asyncio.run(main(args.rounds, args.database, args.paths.split(",")))
