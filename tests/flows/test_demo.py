"""The README's demo command, shortened: sandbox + live flow + tuning + compaction + report."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from flows.demo import run_demo


async def test_demo_runs_end_to_end(prefect_api, tmp_path: Path) -> None:
    out = io.StringIO()
    result = await run_demo(duration=8, trip_breaker=False, out_dir=str(tmp_path), console=Console(file=out, width=200))
    assert result["live"]["reason"] == "duration"
    assert Path(result["live"]["report"]).is_file() and Path(result["live"]["trace"], "manifest.json").is_file()
    text = out.getvalue()
    assert "demo session" in text and result["runs"]["live_strategy"] in text and "report.html" in text


async def test_demo_can_trip_the_breaker(prefect_api, tmp_path: Path) -> None:
    result = await run_demo(duration=10, trip_breaker=True, out_dir=str(tmp_path), console=Console(file=io.StringIO()))
    assert result["live"]["reason"] == "halted" and "Daily loss" in result["live"]["status"]["halt_reason"]
    assert result["live"]["status"]["open_orders"] == 0
