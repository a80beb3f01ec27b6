"""E-stop through Prefect on a real server: trigger (one ``create_flow_run`` of the served e-stop deployment, as
the UI's Run button does) -> the last order cancelled on the sandbox.

Three paths, each in a block of rounds, against deployments served by ``planar serve`` in the same run:
* engine alive: the live engine sees the e-stop run appear and cancels on its own connections;
* engine dead, stop agent: the engine's process is SIGKILLed; the stop agent in ``planar serve`` runs the flow in its
  warm process;
* engine dead, runner only (the baseline, the path before the stop agent): ``planar serve --no-stop-agent``; the
  runner (polling every second here, 10 s by default) starts the flow in a new process.

    .venv/bin/python -m bench.estop_prefect [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from deployments.local_server import prefect_server, server_env

from .common import figure, median, sandbox_process

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
        if kill_engine:
            lease = next((store / "leases").glob("*--bench.lock"))
            await until(lambda: _has_text(lease))
            os.kill(json.loads(lease.read_text())["pid"], signal.SIGKILL)
        dep = await client.read_deployment_by_name("emergency_stop/bench-emergency-stop")
        t0 = time.perf_counter()
        await client.create_flow_run_from_deployment(dep.id, parameters={"reason": "bench"})
        created = time.perf_counter() - t0
        await until(lambda: _none_open(http, info))
        took = time.perf_counter() - t0
        print(f"  round: the API created the run in {created:.2f}s; last cancel at {took:.2f}s", file=sys.stderr, flush=True)

        async def final() -> bool:
            st = (await client.read_flow_run(live.id)).state
            return st is not None and st.is_final()

        await until(final)
    return took


async def _at_least(http: aiohttp.ClientSession, info: dict, n: int) -> bool:
    return await open_orders(http, info) >= n


async def _none_open(http: aiohttp.ClientSession, info: dict) -> bool:
    return await open_orders(http, info) == 0


async def _has_text(path: Path) -> bool:
    return bool(path.read_text().strip())


async def main(rounds: int) -> None:
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
        with prefect_server(home) as api:
            os.environ["PREFECT_API_URL"] = api
            env = {
                **server_env(home, api),
                "EXCHANGE_API_KEY": info["api_key"],
                "EXCHANGE_API_SECRET": info["api_secret"],
                "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            }
            async with aiohttp.ClientSession() as http:
                async with served(configs, env, agent=True):
                    engine = [await one_round(http, info, store, kill_engine=False) for _ in range(rounds)]
                    agent = [await one_round(http, info, store, kill_engine=True) for _ in range(rounds)]
                async with served(configs, env, agent=False):
                    runner = [await one_round(http, info, store, kill_engine=True) for _ in range(rounds)]
    for name, values in (("engine_alive", engine), ("engine_dead_stop_agent", agent)):
        figure(
            f"estop_via_deployment_{name}_s",
            median(values),
            median(runner),
            "engine dead, the runner's new process (no stop agent)",
            goal="<= 1 s alive, <= 3 s dead",
            rounds=rounds,
            values_s=[round(x, 3) for x in values],
            baseline_s=[round(x, 3) for x in runner],
        )


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
    asyncio.run(main(ap.parse_args().rounds))
