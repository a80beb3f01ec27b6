"""The exchange-side dead-man's switch (issue 25): a running futures engine keeps ``countdownCancelAll`` armed, so the
exchange cancels the resting orders of an engine that was killed; a live engine's orders stay; a clean stop
disarms; spot engines write the heartbeat record an orchestrator's watchdog reads. The exchange's own state is read
from the sandbox's admin snapshot."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from planar_core.model import OrderType, Side
from planar_core.sandbox import Faults
from planar_core.trace import read_trace

from ..conftest import wait_for
from ..processes import engine_process

ROOT = Path(__file__).resolve().parents[2]
FAST = {"heartbeat_s": 1.0, "countdown_s": 3.0}


def _open_on(sandbox: Any, key: str, market_id: str) -> set[str]:
    return {o["client_order_id"] for o in sandbox.ex.snapshot()["accounts"][key]["open_orders"] if o["symbol"] == market_id}


def _countdowns(sandbox: Any, key: str) -> dict[str, int]:
    return dict(sandbox.ex.snapshot()["accounts"][key]["countdowns"])


async def _below(sandbox: Any, fraction: float) -> float:
    """A buy price ``fraction`` of the mark: rests (futures limits stay within 5 % of the mark)."""
    return round(float(sandbox.ex.mark("BTCUSDT")) * fraction, 1)


async def test_sigkilled_futures_engine_leaves_no_open_orders(sandbox: Any, account: Any, tmp_path: Path) -> None:
    """A futures engine with two resting orders is SIGKILLed: no clean stop, no disarm. The countdown it kept armed
    (heartbeat 1 s, countdown 3 s) runs out on the exchange, which cancels them. Without the heartbeat they stay."""
    price = await _below(sandbox, 0.97)
    cfg = {
        "name": "dms",
        "env": {"EXCHANGE_API_KEY": account.api_key, "EXCHANGE_API_SECRET": account.api_secret},
        "universe": ["BTC/USDT:USDT"],
        "margin": True,
        "store_root": str(tmp_path / "store"),
        "sandbox_endpoint": {"url": sandbox.url, "ws_url": sandbox.ws_url},
        "rate_limits": {"weight_per_minute": 1_000_000, "orders_per_second": 1000, "burst_allowance": 1000},
        "connection": {"health_interval": 3600},
        "dead_mans_switch": FAST,
        "orders": [{"type": "gtc", "side": "buy", "amount": 0.01, "price": price}] * 2,
    }
    proc, line = await engine_process("orders/conditional_process.py", cfg)
    try:
        assert line.startswith(b"placed"), line
        placed = set(json.loads(line.split(b" ", 1)[1]))
        assert _open_on(sandbox, account.api_key, "BTCUSDT") == placed and len(placed) == 2
        await wait_for(lambda: "BTCUSDT" in _countdowns(sandbox, account.api_key), timeout=30)  # the engine armed it
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    killed_at = sandbox.ex.now_ms()
    assert _open_on(sandbox, account.api_key, "BTCUSDT") == placed  # still resting when the engine died
    await wait_for(lambda: not _open_on(sandbox, account.api_key, "BTCUSDT"), timeout=30)
    orders = {o["client_order_id"]: o for o in sandbox.ex.snapshot()["accounts"][account.api_key]["orders"]}
    assert {orders[c]["status"] for c in placed} == {"CANCELED"}
    assert all(orders[c]["updated"] >= killed_at for c in placed)  # cancelled by the exchange after the kill


async def test_a_live_engine_keeps_its_orders_past_several_countdowns_and_a_clean_stop_disarms(
    strategy_factory: Any, sandbox: Any, account: Any
) -> None:
    s = await strategy_factory("dmslive", universe=["BTC/USDT:USDT"], margin=True, dead_mans_switch=FAST)
    price = await _below(sandbox, 0.97)
    for _ in range(2):
        await s.call("BTC/USDT:USDT", OrderType.GTC, Side.BUY, amount=0.01, price=price, waitfor=0)
    mine = {o.client_order_id for o in s.universe["BTC/USDT:USDT"].open_orders()}
    await wait_for(lambda: _open_on(sandbox, account.api_key, "BTCUSDT") == mine, timeout=10)
    assert "BTCUSDT" in _countdowns(sandbox, account.api_key)
    start, beats = sandbox.ex.now_ms(), s.heartbeat.beats
    # four countdowns of exchange time and at least eight heartbeats later, the orders are still there
    await wait_for(lambda: sandbox.ex.now_ms() > start + 4 * 3000 and s.heartbeat.beats >= beats + 8, timeout=60)
    assert _open_on(sandbox, account.api_key, "BTCUSDT") == mine
    await s.stop()  # a clean stop leaves the orders open, and the exchange must not cancel them behind it
    assert _countdowns(sandbox, account.api_key) == {}
    stopped = sandbox.ex.now_ms()
    await wait_for(lambda: sandbox.ex.now_ms() > stopped + 2 * 3000, timeout=30)
    assert _open_on(sandbox, account.api_key, "BTCUSDT") == mine
    record = json.loads((Path(s.config.shared_root) / "heartbeat.json").read_text())
    assert record["stopped"] is True and record["pid"] == os.getpid()
    kinds = read_trace(s.sink.root)["kind"].astype(str).tolist()
    assert "heartbeat" in kinds and "countdown_disarmed" in kinds


async def test_a_spot_engine_writes_the_heartbeat_record_and_arms_nothing(strategy_factory: Any, sandbox: Any, account: Any) -> None:
    s = await strategy_factory("dmsspot", universe=["BTC/USDT"], dead_mans_switch={"heartbeat_s": 0.3, "countdown_s": 1.0})
    path = Path(s.config.shared_root) / "heartbeat.json"
    await wait_for(path.is_file, timeout=10)
    first = json.loads(path.read_text())
    assert first["pid"] == os.getpid() and first["stopped"] is False and first["armed"] == []
    assert first["next_by_ms"] == first["time_ms"] + 300
    await wait_for(lambda: json.loads(path.read_text())["time_ms"] > first["time_ms"], timeout=10)  # it beats
    assert _countdowns(sandbox, account.api_key) == {}  # spot has no countdown on the exchange


async def test_a_failing_heartbeat_is_retried_and_alerted_before_the_countdown_runs_out(
    strategy_factory: Any, sandbox: Any, account: Any, monkeypatch: Any
) -> None:
    """Every request answered 503: the heartbeat cannot re-arm; the countdown would run out while the engine is
    alive (cancelling its orders): a critical alert says so; once requests pass again it re-arms."""
    s = await strategy_factory("dmsfail", universe=["BTC/USDT:USDT"], margin=True, dead_mans_switch=FAST)
    alerts: list[tuple[str, str]] = []
    monkeypatch.setattr(s, "alert", lambda text, level="warning": alerts.append((level, text)))
    await wait_for(lambda: s.heartbeat.beats >= 1 and "BTCUSDT" in _countdowns(sandbox, account.api_key), timeout=10)
    sandbox.ex.faults = Faults(error_rate=1.0)
    try:
        await wait_for(lambda: any(level == "critical" and "dead-man's switch of BTC/USDT:USDT" in t for level, t in alerts), timeout=30)
    finally:
        sandbox.ex.faults = Faults()
    armed_after = sandbox.ex.now_ms()
    await wait_for(lambda: _countdowns(sandbox, account.api_key).get("BTCUSDT", 0) > armed_after, timeout=30)
    assert s.supervisor.health["heartbeat"].failures >= 1
