"""Scale-out, run once on this machine: a Prefect server on PostgreSQL, a process work pool, two workers, the
deployments from ``prefect.yaml`` (cloned by the workers, as on other hosts), and a live run, an e-stop and a
scheduled run that must all complete. Writes what happened to ``deployments/scale_out_result.json``.

Needs Debian's ``postgresql`` package (``apt-get install postgresql``; the script starts the cluster and creates
the role and database). Steps, as docs/orchestration.md gives them for real hosts:

    .venv/bin/python -m deployments.scale_out
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from planar_core.model.json import obj

from .local_server import PREFECT, prefect_server, server_env, snapshot_repository
from .specs import ROOT

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.objects import FlowRun, State

DB_URL = "postgresql+asyncpg://planar:planar@127.0.0.1:5432/prefect"


def ensure_postgres() -> str:
    """Start the Debian cluster and create the role and database (idempotent); returns the server version."""
    subprocess.run(["service", "postgresql", "start"], check=True, capture_output=True)
    psql = ["runuser", "-u", "postgres", "--", "psql", "-v", "ON_ERROR_STOP=1", "-tAc"]
    if subprocess.run(psql + ["SELECT 1 FROM pg_roles WHERE rolname='planar'"], capture_output=True, text=True).stdout.strip() != "1":
        subprocess.run(psql + ["CREATE ROLE planar LOGIN PASSWORD 'planar'"], check=True)
    if subprocess.run(psql + ["SELECT 1 FROM pg_database WHERE datname='prefect'"], capture_output=True, text=True).stdout.strip() != "1":
        subprocess.run(psql + ["CREATE DATABASE prefect OWNER planar"], check=True)
    return subprocess.run(psql + ["SHOW server_version"], capture_output=True, text=True, check=True).stdout.strip()


async def final(client: PrefectClient, run_id: UUID, timeout: float = 300) -> tuple[FlowRun, State[object]]:
    """The flow run and its state once that state is final; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        fr = await client.read_flow_run(run_id)
        if fr.state is not None and fr.state.is_final():
            return fr, fr.state
        if time.monotonic() > deadline:
            raise TimeoutError(f"flow run {run_id} still {fr.state}")
        await asyncio.sleep(0.5)


async def exercise(config: Path, workers: list[str]) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.deployments import arun_deployment

    params = {"strategy": "scaled", "config_path": str(config)}
    out: dict[str, object] = {}
    async with get_client() as client:
        live = await arun_deployment("live_strategy/ma_cross-live", parameters={**params, "duration": 8}, timeout=0)
        _, state = await final(client, live.id)
        out["live"] = {"state": state.type.value, "message": state.message}
        t0 = time.monotonic()
        estop = await arun_deployment("emergency_stop/emergency-stop", parameters={**params, "reason": "scale-out check"}, timeout=0)
        _, state = await final(client, estop.id)
        out["emergency_stop"] = {"state": state.type.value, "trigger_to_final_state_s": round(time.monotonic() - t0, 1)}
        rearm = await arun_deployment(
            "rearm/ma_cross-rearm", parameters={**params, "reason": "scale-out check", "by": "scale_out"}, timeout=0
        )
        _, state = await final(client, rearm.id)
        out["rearm"] = {"state": state.type.value}
        when = datetime.now(UTC) + timedelta(seconds=10)
        scheduled = await arun_deployment("daily_reset/ma_cross-daily-reset", parameters=params, scheduled_time=when, timeout=0)
        done, state = await final(client, scheduled.id)
        out["scheduled_daily_reset"] = {
            "state": state.type.value,
            "scheduled_for": when.isoformat(),
            "started": done.start_time.isoformat() if done.start_time else None,
        }
        runs = await client.read_flow_runs()
        out["workers"] = workers
        out["flow_run_process_pids"] = sorted({str(r.infrastructure_pid) for r in runs if r.infrastructure_pid})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="Prefect on PostgreSQL with two workers, exercised once")
    ap.add_argument("--result", type=Path, default=ROOT / "deployments" / "scale_out_result.json")
    args = ap.parse_args()
    from planar_core.sandbox.process import sandbox_process

    pg = ensure_postgres()
    with tempfile.TemporaryDirectory() as tmp, sandbox_process("--balance", "USDT=20000,BTC=0.2,ETH=3") as info:
        home = Path(tmp) / "prefect"
        repo = snapshot_repository(ROOT, Path(tmp) / "repo")
        config = Path(tmp) / "scaled.json"
        config.write_text(
            json.dumps(
                {
                    "name": "scaled",
                    "universe": ["BTC/USDT", "ETH/USDT"],
                    "store_root": str(Path(tmp) / "store"),
                    "sandbox_endpoint": {"url": info["url"], "ws_url": info["ws_url"]},
                    "tick_interval": 0.5,
                    "logic": "planar_core.strategies.ma_cross:MACross",
                }
            )
        )
        with prefect_server(home, database_url=DB_URL) as api:
            os.environ["PREFECT_API_URL"] = api
            env = {
                **server_env(home, api, DB_URL),
                "PLANAR_GIT_URL": str(repo),
                "EXCHANGE_API_KEY": info["api_key"],
                "EXCHANGE_API_SECRET": info["api_secret"],
            }
            for cmd in (
                ["work-pool", "create", "planar", "--type", "process", "--overwrite"],
                ["work-pool", "create", "planar-stop", "--type", "process", "--overwrite"],  # the stop agent's
                ["deploy", "--all"],
            ):
                subprocess.run([PREFECT, "--no-prompt", *cmd], cwd=repo, env=env, check=True, capture_output=True)
            names = ["worker-a", "worker-b"]
            procs = [
                subprocess.Popen(
                    [PREFECT, "worker", "start", "--pool", "planar", "--type", "process", "--name", n],
                    env=env,
                    cwd=tmp,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
                for n in names
            ]
            procs.append(  # e-stops and re-arms (the planar-stop pool), from the repository root as documented
                subprocess.Popen(
                    [str(Path(sys.executable).with_name("planar")), "stop-agent", "--configs", "examples"],
                    env=env,
                    cwd=repo,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            try:
                result = asyncio.run(exercise(config, names))
            finally:
                for p in procs:
                    os.killpg(p.pid, signal.SIGTERM)
                for p in procs:
                    p.wait(timeout=60)
    import prefect

    record = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "prefect": prefect.__version__,
        "postgresql": pg,
        "database_url": DB_URL.replace(":planar@", ":***@"),
        **result,
    }
    args.result.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    ok = all(obj(result[k]).get("state") == "COMPLETED" for k in ("live", "emergency_stop", "rearm", "scheduled_daily_reset"))
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
