"""SIGKILL of the engine process at random moments, then a plain restart: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from planar_core.sandbox import Faults

from ..conftest import venue_of, wait_for
from .harness import verify

pytestmark = pytest.mark.venues()  # venue-independent: every test here runs on Binance and Bybit (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[2]


async def test_sigkill_then_restart(strategy_factory, sandbox, account, tmp_path: Path) -> None:
    rng = random.Random(11)
    store = str(tmp_path / "store")
    cfg = {
        "name": "killme",
        "exchange": venue_of(sandbox),
        "env": {"EXCHANGE_API_KEY": account.api_key, "EXCHANGE_API_SECRET": account.api_secret},
        "universe": ["BTC/USDT", "ETH/USDT", "LTC/USDT"],
        "store_root": store,
        "sandbox_endpoint": {"url": sandbox.url, "ws_url": sandbox.ws_url},
        "rate_limits": {"weight_per_minute": 1_000_000, "orders_per_second": 1000, "burst_allowance": 1000},
        "connection": {"health_interval": 3600},
        "event_tracing": {"flush_interval": 0.5},
    }
    sandbox.ex.faults = Faults(lost_ack_rate=0.1, latency_jitter_ms=20)
    for _ in range(4):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "tests" / "faults" / "churn_process.py"),
            json.dumps(cfg),
            cwd=str(ROOT),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).startswith(b"started")  # type: ignore[union-attr]
        await asyncio.sleep(rng.uniform(0.3, 1.5))
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    sandbox.ex.faults = Faults()
    placed = len(sandbox.ex.snapshot()["accounts"][account.api_key]["orders"])
    assert placed > 10
    s = await strategy_factory(
        name="killme", store_root=store, universe=["BTC/USDT", "ETH/USDT", "LTC/USDT"], order_monitoring={"absent_after": 1.0}
    )
    # every intent of the killed processes settled by the exchange's word: found, or proven absent by look-ups
    await wait_for(lambda: s.journal.unresolved() == {}, timeout=15)
    result = await verify(s, sandbox, account)
    assert result["orders"] == placed
