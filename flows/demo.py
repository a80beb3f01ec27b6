"""The README's demo: sandbox exchange + live strategy flow + trace + report, in under two minutes.

1. start the sandbox exchange on a free loopback port (real data from ../shared/data, generated otherwise),
   with an accelerated clock so the moving averages cross within seconds;
2. run the ``live_strategy`` flow with the bundled example (examples/ma_cross.toml) for ``duration`` seconds;
   with ``trip_breaker`` the sandbox drops BTC by 15 % halfway and the daily-loss breaker stops everything;
3. run ``auto_tune`` and ``compact_trace`` once;
4. print where the trace, the report and the Prefect runs are.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import tomllib
from pathlib import Path
from typing import TypedDict

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from planar_core.model.json import obj
from planar_core.model.types import Json
from planar_core.sandbox.process import sandbox_process

from .common import awaited, example_config

DEMO_BALANCES = "USDT=20000,BTC=0.2,ETH=3,LTC=20"


class DemoResult(TypedDict):
    """What the demo did: the live session's result, the tuning and compaction reports, the flow run ids."""

    live: Json
    tune: Json
    compaction: Json
    runs: dict[str, str]
    out: str
    seconds: float


def demo_config(out: Path, url: str, ws_url: str) -> Path:
    """The bundled example pointed at the sandbox at ``url`` / ``ws_url``, its store under ``out``."""
    cfg = tomllib.loads(example_config().read_text())
    cfg["sandbox_endpoint"] = {"url": url, "ws_url": ws_url}
    cfg["store_root"] = str(out / "store")
    path = out / "ma_cross.json"
    path.write_text(json.dumps(cfg, indent=1))  # JSON is YAML: load_config reads it
    return path


async def _trip_later(url: str, after: float) -> None:
    await asyncio.sleep(after)
    async with aiohttp.ClientSession() as http:
        await http.post(f"{url}/admin/price", json={"symbol": "BTCUSDT", "factor": 0.85})


async def run_demo(
    duration: float = 45.0, trip_breaker: bool = False, out_dir: str | None = None, console: Console | None = None
) -> DemoResult:
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    from .live import live_strategy
    from .scheduled import auto_tune, compact_trace

    console = console or Console()
    out = Path(out_dir or Path("demo-output") / time.strftime("%Y%m%dT%H%M%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with sandbox_process("--speed", "120", "--balance", DEMO_BALANCES) as info:
        console.print(f"[bold]sandbox exchange[/] {info['url']}  (pid {info['pid']})")
        url = str(info["url"])
        config = demo_config(out, url, str(info["ws_url"]))
        os.environ["PLANAR_DEMO_API_KEY"], os.environ["PLANAR_DEMO_API_SECRET"] = str(info["api_key"]), str(info["api_secret"])
        tripper = asyncio.create_task(_trip_later(url, duration / 2)) if trip_breaker else None
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeRemainingColumn(), console=console) as progress:
            bar = progress.add_task("live_strategy (ma_cross, 3 assets)", total=duration)
            run = asyncio.create_task(
                awaited(
                    live_strategy(
                        strategy="ma_cross", config_path=str(config), duration=duration, report_dir=str(out / "report"), return_state=True
                    )
                )
            )
            t0 = time.perf_counter()
            while not run.done():
                progress.update(bar, completed=min(duration, time.perf_counter() - t0))
                await asyncio.sleep(0.25)
            progress.update(bar, completed=duration)
        live_state = run.result()
        live = await live_state.aresult(raise_on_failure=False)  # a tripped breaker ends the run Failed (halted)
        if not isinstance(live, dict):  # the session never traded (a refused config or credentials)
            raise RuntimeError(f"the demo's live run ended {live_state.type.value} before its session: {live}")
        if tripper is not None:
            tripper.cancel()
        console.print("running auto_tune and compact_trace ...")
        tune_state = await auto_tune(strategy="ma_cross", days=1, config_path=str(config), return_state=True)
        compact_state = await compact_trace(strategy="ma_cross", config_path=str(config), return_state=True)
        tune, compaction = await tune_state.aresult(), await compact_state.aresult()
    st = obj(live["status"])
    summary = obj(live.get("summary"))  # the report's summary.json: the same figures as its tables and charts
    table = Table(title="demo session")
    table.add_column("what")
    table.add_column("value")
    for k in ("final_equity", "return", "max_drawdown", "realized_pnl", "fees", "trades", "round_trips", "win_rate"):
        table.add_row(k, str(summary.get(k)))
    for k in ("open_orders", "halted", "halt_reason"):
        table.add_row(k, str(st.get(k)))
    table.add_row("ended because", f"{live['ended']} (run {live_state.type.value})")
    table.add_row("auto_tune", str(tune["summary"]))
    table.add_row(
        "compaction",
        f"{compaction['segments_before']} -> {compaction['segments_after']} segments, "
        f"{compaction['bytes_before']:,} -> {compaction['bytes_after']:,} bytes",
    )
    console.print(table)
    api = PREFECT_API_URL.value()
    ui = PREFECT_UI_URL.value()
    runs = {
        "live_strategy": live_state.state_details.flow_run_id,
        "auto_tune": tune_state.state_details.flow_run_id,
        "compact_trace": compact_state.state_details.flow_run_id,
    }
    console.print(f"[bold]trace[/]   {live['trace']}   (planar trace tail --root {live['trace']})")
    console.print(
        f"[bold]report[/]  {live['report']}  (+ summary.json, trades.csv, round_trips.csv, symbols.csv, equity/drawdown/pnl/slippage/fill_latency .png)"
    )
    for name, rid in runs.items():
        where = (
            f"{ui}/runs/flow-run/{rid}"
            if ui and api
            else f"prefect flow-run inspect {rid}  (ephemeral API: set PREFECT_API_URL to keep runs)"
        )
        console.print(f"[bold]{name}[/] {where}")
    console.print(f"demo finished in {time.perf_counter() - started:.1f}s")
    return {
        "live": live,
        "tune": tune,
        "compaction": compaction,
        "runs": {k: str(v) for k, v in runs.items()},
        "out": str(out),
        "seconds": time.perf_counter() - started,
    }
