"""History is in the engine before the logic starts, live and paper alike (it used to race the candle watchers:
paper's on_start met a KeyError where live found 99 closed candles)."""

from __future__ import annotations

import pytest

from planar_core.engine import Paper
from planar_core.engine import strategy as build
from planar_core.sandbox.server import SandboxServer


@pytest.mark.parametrize("mode", ["live", "paper"])
async def test_candles_are_loaded_when_start_returns(sandbox: SandboxServer, account, tmp_path, mode: str) -> None:
    s = build(
        f"hist{mode}",
        mode=Paper() if mode == "paper" else None,
        env={"EXCHANGE_API_KEY": account.api_key, "EXCHANGE_API_SECRET": account.api_secret},
        universe=["BTC/USDT", "ETH/USDT"],
        timeframes=["1m", "1s"],
        store_root=str(tmp_path),
        sandbox_endpoint={"url": sandbox.url, "ws_url": sandbox.ws_url},
        connection={"health_interval": 3600},
    )
    await s.start()
    try:  # no await between the start and the look: the watchers have not run yet
        for ai in s.universe.values():
            for tf in ("1m", "1s"):
                assert len(ai.candles(tf).closed) >= 90, (ai.symbol, tf, len(ai.candles(tf).closed))
    finally:
        await s.stop()
