"""``planar run`` without PREFECT_API_URL (flows/prefect_api.py): the first run starts the local Prefect server in
the background and reports to it; the next run reuses it (no server start on the path to its first order); both
runs are in that server afterwards; a pid file left by a dead server does not block the start; a wrong symbol is
answered while the server is still starting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.filters import FlowFilter, FlowFilterName

from deployments.local_server import free_port
from flows.prefect_api import healthy

from .test_prefect_server import ROOT, write_config


def local_env(home: Path, port: int, account) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}  # no API configured: the user's case
    return {
        **env,
        "PREFECT_HOME": str(home),
        "PREFECT_UI_ENABLED": "false",
        "PLANAR_PREFECT_PORT": str(port),
        "EXCHANGE_API_KEY": account.api_key,
        "EXCHANGE_API_SECRET": account.api_secret,
        "PYTHONPATH": str(ROOT),
    }


async def planar(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flows", *args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    return int(proc.returncode or 0), out.decode(), err.decode()


def stop_server(home: Path) -> None:
    pid_file = home / "server.pid"
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.killpg(int(pid_file.read_text()), signal.SIGTERM)


async def test_the_first_run_starts_the_local_server_and_the_next_reuses_it(sandbox, tmp_path: Path) -> None:
    account = sandbox.ex.add_account({"USDT": 10_000, "BTC": 0.1, "ETH": 1})
    home, port = tmp_path / "prefect-home", free_port()
    home.mkdir()
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    (home / "server.pid").write_text(str(dead.pid))  # a server that died left its pid file: Prefect would refuse
    env = local_env(home, port, account)
    config = write_config(tmp_path / "cfg", "localsrv", sandbox, tmp_path / "store")
    url = f"http://127.0.0.1:{port}/api"
    try:
        code, out, err = await planar(env, "run", str(config), "--duration", "2")
        assert code == 0, out[-2000:] + err[-3000:]
        assert f"started a local Prefect server at http://127.0.0.1:{port}" in err, err[-2000:]
        pid = int((home / "server.pid").read_text())
        assert pid != dead.pid and healthy(url)  # it stays for the next runs
        code, out, err = await planar(env, "run", str(config), "--duration", "2")
        assert code == 0, out[-2000:] + err[-3000:]
        assert "local Prefect server" not in err and int((home / "server.pid").read_text()) == pid  # reused
        async with PrefectClient(api=url) as client:
            runs = await client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["live_strategy"])))
        assert sorted(r.state_type.value for r in runs if r.state_type) == ["COMPLETED", "COMPLETED"], runs
    finally:
        stop_server(home)


async def test_a_wrong_symbol_is_answered_while_the_server_starts(sandbox, tmp_path: Path) -> None:
    account = sandbox.ex.add_account({"USDT": 10_000})
    home, port = tmp_path / "prefect-home", free_port()
    env = local_env(home, port, account)
    del env["EXCHANGE_API_SECRET"]  # said at once too: only where it may still be found waits for the server
    config = write_config(tmp_path / "cfg", "typo", sandbox, tmp_path / "store", universe=["BTC/USDT", "ETH/USTD"])
    try:
        code, out, err = await planar(env, "run", str(config), "--duration", "2")
        assert code == 2, out + err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert "started a local Prefect server" in lines[0] and len(lines) == 3, err
        assert lines[1].startswith("planar: credentials: EXCHANGE_API_SECRET not in the environment"), err
        assert lines[2] == "error: universe.1.symbol: 'ETH/USTD' is not a market on binance", err
        assert "Flow run" not in out + err  # said before any flow run
    finally:
        stop_server(home)
