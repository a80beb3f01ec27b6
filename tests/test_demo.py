"""The README's demo command runs end to end."""

from __future__ import annotations

import io

from rich.console import Console

from planar_core.demo import run_demo


async def test_demo_trades_and_prints_balances() -> None:
    out = io.StringIO()
    result = await run_demo(Console(file=out, width=120))
    assert [o["status"] for o in result["orders"]] == ["closed", "closed", "open"]
    assert result["balance"]["BTC"] > 0.5 and result["balance"]["ETH"] < 5
    assert "balances" in out.getvalue() and "BTC/USDT" in out.getvalue()
