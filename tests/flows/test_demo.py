"""The README's demo command, shortened: sandbox + live flow + tuning + compaction + report."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from flows.demo import run_demo
from planar_core.trace.reading import read_trace


async def test_demo_runs_end_to_end(prefect_api, tmp_path: Path) -> None:
    out = io.StringIO()
    result = await run_demo(duration=8, trip_breaker=False, out_dir=str(tmp_path), console=Console(file=out, width=200))
    assert result["live"]["reason"] == "duration"
    assert Path(result["live"]["report"]).is_file() and Path(result["live"]["trace"], "manifest.json").is_file()
    text = out.getvalue()
    assert "demo session" in text and result["runs"]["live_strategy"] in text and "report.html" in text
    # one set of numbers: the table's final equity is the report's, the equity chart's last point, the trace's last equity
    summary = result["live"]["summary"]
    report = Path(result["live"]["report"]).parent
    df = read_trace(result["live"]["trace"])
    traced = [p["payload"]["equity"] for p in df.loc[df["kind"] == "risk_metrics", "payload"]]
    assert summary["final_equity"] == pd.read_csv(report / "equity.csv")["equity"].iloc[-1] == pytest.approx(traced[-1])
    assert "final_equity" in text and str(summary["final_equity"]) in text
    trades = pd.read_csv(report / "trades.csv")
    assert (
        summary["realized_pnl"]
        == pytest.approx(trades["realized_pnl"].sum())
        == pytest.approx(pd.read_csv(report / "symbols.csv")["realized_pnl"].sum())
    )


async def test_demo_can_trip_the_breaker(prefect_api, tmp_path: Path) -> None:
    result = await run_demo(duration=10, trip_breaker=True, out_dir=str(tmp_path), console=Console(file=io.StringIO()))
    assert result["live"]["reason"] == "halted" and "Daily loss" in result["live"]["status"]["halt_reason"]
    assert result["live"]["status"]["open_orders"] == 0
