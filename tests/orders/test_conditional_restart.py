"""A SIGKILL of the engine between placing conditional orders and their trigger (some acknowledgements lost on
the way), the price moves while nothing runs, then a plain restart: every order is found by its client id,
known as triggered and filled exactly as the exchange did it, its trigger recorded once in the trace."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from planar_core.model import OrderStatus, OrderType
from planar_core.sandbox import Faults
from planar_core.trace import read_trace

from ..conftest import wait_for
from ..processes import engine_process
from .test_conditional import account_view, shock

ROOT = Path(__file__).resolve().parents[2]
FIVE = [  # every conditional type, each selling 0.01; prices are fractions of the price at placement
    {"type": "stop_market", "side": "sell", "amount": 0.01, "trigger_price": 0.99},
    {"type": "stop_limit", "side": "sell", "amount": 0.01, "price": 0.975, "trigger_price": 0.99},
    {"type": "take_profit_market", "side": "sell", "amount": 0.01, "trigger_price": 1.01},
    {"type": "take_profit_limit", "side": "sell", "amount": 0.01, "price": 1.005, "trigger_price": 1.01},
    {"type": "trailing_stop", "side": "sell", "amount": 0.01, "trailing_percent": 1.0},
]
CASES = {
    "spot": ("BTC/USDT", "spot", FIVE),
    "futures": (
        "BTC/USDT:USDT",
        "linear",
        [{**o, "reduce_only": True} for o in FIVE],  # against a long of 0.05 opened before the engine starts
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_conditionals_are_reconciled_after_a_sigkill_before_their_trigger(
    strategy_factory: Any, sandbox: Any, account: Any, client: Any, tmp_path: Path, case: str
) -> None:
    symbol, kind, orders = CASES[case]
    margin = kind == "linear"
    last = await shock(sandbox, "BTCUSDT", 1.0, kind)
    orders = [{k: round(v * last, 2) if k in ("price", "trigger_price") else v for k, v in o.items()} for o in orders]
    if margin:
        await client.create_order(symbol, "market", "buy", 0.05, None, {"type": "swap"})
    store = str(tmp_path / "store")
    common = {"universe": [symbol], "margin": margin, "store_root": store, "event_tracing": {"flush_interval": 0.2}}
    cfg = {
        "name": "kc",
        "env": {"EXCHANGE_API_KEY": account.api_key, "EXCHANGE_API_SECRET": account.api_secret},
        "sandbox_endpoint": {"url": sandbox.url, "ws_url": sandbox.ws_url},
        "rate_limits": {"weight_per_minute": 1_000_000, "orders_per_second": 1000, "burst_allowance": 1000},
        "connection": {"health_interval": 3600},
        "timeouts": {"order_placement": 1.0},  # a lost acknowledgement leaves the order unknown quickly
        "orders": orders,
        **common,
    }
    # every acknowledgement lost, new orders hidden from look-ups and the user stream held back: the killed engine
    # knows its orders only as intents whose outcome is unknown
    sandbox.ex.faults = Faults(lost_ack_rate=1.0, invisible_s=60, paused_user_stream=True)
    proc, line = await engine_process("orders/conditional_process.py", cfg)
    assert line.startswith(b"placed"), line
    assert set(json.loads(line.split(b" ", 1)[1]).values()) == {"unknown"}, line
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    sandbox.ex.faults = Faults()
    await shock(sandbox, "BTCUSDT", 1.02, kind)  # take-profits trigger, trailing stops trail
    await shock(sandbox, "BTCUSDT", 0.98, kind)  # stops trigger, trailing stops trigger

    s = await strategy_factory(name="kc", order_monitoring={"absent_after": 1.0}, **common)
    ai = s.universe[symbol]
    await wait_for(lambda: s.journal.unresolved() == {}, timeout=20)
    conditional = [o for o in ai.orders.values() if o.type.is_conditional]
    assert sorted(o.type.value for o in conditional) == sorted(o["type"] for o in orders if o["type"] != "market")
    view = account_view(sandbox, s)  # the exchange's word, before any re-sync
    algos = {a["client_algo_id"]: a for a in view["algo_orders"]}
    for o in conditional:
        await wait_for(lambda o=o: o.status is OrderStatus.CLOSED and o.trades, timeout=10)
        placed_id = algos[o.client_order_id]["actual_order_id"] if margin else int(o.id)  # type: ignore[arg-type]
        row = next(r for r in view["orders"] if r["order_id"] == placed_id)
        assert row["client_order_id"] == o.client_order_id and row["status"] == "FILLED"
        assert o.triggered and o.filled == pytest.approx(float(row["filled"])) == pytest.approx(0.01)
        assert sum(t.amount for t in o.trades) == pytest.approx(0.01)
    if margin:  # the five exits sold 0.05 in all
        await wait_for(lambda: not ai.position.contracts, timeout=10)
        assert "BTCUSDT" not in view["futures"]["positions"]
    await s.stop()
    df = read_trace(f"{store}/traces/{s.account}")
    df = df[df["kind"] == "order_triggered"]
    per_order = df["client_order_id"].value_counts()
    per_order = per_order[per_order > 0]  # a categorical column counts every id of the trace, 0 for the others
    assert set(per_order.index) == {o.client_order_id for o in conditional} and per_order.max() == 1
    assert OrderType.MARKET not in {o.type for o in conditional}
