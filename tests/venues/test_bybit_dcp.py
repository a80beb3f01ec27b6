"""The engine's dead-man's switch on Bybit: Disconnected Cancel All (DCP), spot and linear (issue 29, item 3).

Engines with the switch on keep their private connection subscribed to ``dcp.spot`` / ``dcp.future`` and set each
product's window from ``dead_mans_switch.countdown_s``. An engine SIGKILLed leaves its orders to the exchange, which
cancels them a window after the connection went; a restart within the window keeps them; a clean stop cannot
disarm DCP (Bybit has no call for it), so a stop longer than the window lets the exchange cancel them. The sandbox's
clock is moved past the window (``clock_offset_ms``) instead of waiting it out; every check is on the exchange's
own state (the admin snapshot, the DCP state) before anything resyncs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from planar_core.sandbox.accounts import Account
from planar_core.sandbox.bybit import BybitServer
from planar_core.trace import read_trace

from ..conftest import START_BALANCES, wait_for
from ..processes import engine_process

ROOT = Path(__file__).resolve().parents[2]
WINDOW_MS = 10_000
FAST = {"heartbeat_s": 1.0, "countdown_s": WINDOW_MS / 1000}
BOTH = {"SPOT", "DERIVATIVES"}


@pytest.fixture
def trader(bybit_sandbox: BybitServer) -> Account:
    return bybit_sandbox.ex.add_account(dict(START_BALANCES))


def common(server: BybitServer, tmp_path: Path) -> dict[str, Any]:
    return {
        "store_root": str(tmp_path / "store"),
        "sandbox_endpoint": {"url": server.url, "ws_url": server.ws_url},
        "connection": {"health_interval": 3600},
        "dead_mans_switch": FAST,
    }


def specs(server: BybitServer) -> list[dict[str, Any]]:
    """A spot strategy and a linear one, each with two buys resting below the market."""

    def bid(kind: str) -> float:
        (price, _), _ = server.ex.best_bid_ask(server.ex.markets[(kind, "BTCUSDT")])
        return float(price)

    spot, linear = bid("spot"), bid("linear")
    return [
        {"name": "dcpspot", "universe": ["BTC/USDT"], "orders": [_buy(0.01, spot * f) for f in (0.95, 0.96)]},
        {"name": "dcpperp", "universe": ["BTC/USDT:USDT"], "margin": True, "orders": [_buy(0.01, linear * f) for f in (0.98, 0.985)]},
    ]


def _buy(amount: float, price: float) -> dict[str, Any]:
    return {"type": "gtc", "side": "buy", "amount": amount, "price": round(price, 1)}


def open_cids(server: BybitServer, acct: Account) -> set[str]:
    return {o["client_order_id"] for o in server.ex.snapshot()["accounts"][acct.api_key]["open_orders"]}


def guarded(server: BybitServer, acct: Account) -> set[str]:
    """The account's products a live private connection subscribed to their dcp topic arms (the exchange's view)."""
    return {product for key, product in server.dcp.guarded if key == acct.api_key}


def dcp_conns(server: BybitServer, acct: Account) -> set[object]:
    """The account's live private connections subscribed to a dcp topic."""
    return {c for c in server.hub.conns if c.kind == "private" and acct.api_key in c.users and any(t.startswith("dcp.") for t in c.streams)}


async def later(server: BybitServer, ms: int) -> None:
    """The exchange's clock ``ms`` further ahead, and the DCP timers checked at the new time."""
    server.ex.faults.clock_offset_ms += ms
    target = server.ex.now_ms()
    await wait_for(lambda: server.dcp.checked_ms >= target, timeout=5)


async def lapse_after_the_window(server: BybitServer, acct: Account, orders: set[str]) -> None:
    """The connections are gone: the orders stay until the window has run (on the exchange's clock), then the
    exchange cancels every one of them, as DCP (``cancelType`` CancelByDCP)."""
    gone = server.ex.now_ms()
    try:
        await later(server, WINDOW_MS - 1_000)
        assert open_cids(server, acct) >= orders  # not before the window
        await later(server, 1_100)
        await wait_for(lambda: not open_cids(server, acct) & orders, timeout=5)
    finally:
        server.ex.faults.clock_offset_ms = 0
    rows = {o["client_order_id"]: o for o in server.ex.snapshot()["accounts"][acct.api_key]["orders"]}
    assert {rows[c]["status"] for c in orders} == {"CANCELED"}
    assert all(rows[c]["updated"] >= gone + WINDOW_MS for c in orders)
    assert {server.cancel_types.get(("order", rows[c]["order_id"])) for c in orders} == {"CancelByDCP"}


async def launch(server: BybitServer, acct: Account, tmp_path: Path) -> tuple[asyncio.subprocess.Process, dict[str, list[str]]]:
    """Both engines in one subprocess, their orders resting, their switches armed on the exchange."""
    cfg = {"env": env(acct), "common": common(server, tmp_path), "strategies": specs(server)}
    proc, line = await engine_process("venues/dcp_process.py", cfg)
    try:
        assert line.startswith(b"placed"), line
        placed: dict[str, list[str]] = json.loads(line.split(b" ", 1)[1])
        assert all(len(v) == 2 for v in placed.values()) and open_cids(server, acct) == {c for v in placed.values() for c in v}
        await wait_for(lambda: guarded(server, acct) == BOTH, timeout=30)
    except BaseException:
        await kill(server, acct, proc)
        raise
    return proc, placed


async def kill(server: BybitServer, acct: Account, proc: asyncio.subprocess.Process) -> None:
    """SIGKILL: no clean stop; the exchange sees the private connections go."""
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    await wait_for(lambda: not guarded(server, acct), timeout=10)


def env(acct: Account) -> dict[str, str]:
    return {"EXCHANGE_API_KEY": acct.api_key, "EXCHANGE_API_SECRET": acct.api_secret}


def record(tmp_path: Path, name: str) -> dict[str, Any]:
    """The strategy's heartbeat record (empty until its first beat)."""
    path = tmp_path / "store" / name / "heartbeat.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    return data


def armed_in_record(tmp_path: Path, name: str, product: str) -> bool:
    return record(tmp_path, name).get("armed") == [product]


@pytest.fixture
async def restart(bybit_sandbox: BybitServer, trader: Account, tmp_path: Path) -> AsyncIterator[Callable[[dict[str, Any]], Any]]:
    """Start one of ``specs``' strategies again in this process (same name, same store); stopped at the end."""
    from planar_core.engine import strategy as build

    made: list[Any] = []

    async def factory(spec: dict[str, Any], start: bool = True) -> Any:
        kwargs = {k: v for k, v in spec.items() if k not in ("name", "orders")}
        s = build(spec["name"], env=env(trader), exchange="bybit", **{**common(bybit_sandbox, tmp_path), **kwargs})
        made.append(s)
        if start:
            await s.start()
        return s

    yield factory
    for s in made:
        await s.stop()


async def test_a_killed_engine_leaves_its_spot_and_linear_orders_to_dcp(
    bybit_sandbox: BybitServer, trader: Account, tmp_path: Path
) -> None:
    """SIGKILLed engines (spot and linear, two resting orders each): Bybit cancels all four a window after their
    connections went, and not before."""
    proc, placed = await launch(bybit_sandbox, trader, tmp_path)
    try:
        key = trader.api_key
        assert bybit_sandbox.dcp.windows == {(key, "SPOT"): 10, (key, "DERIVATIVES"): 10}  # countdown_s, in whole seconds
        for name, product in (("dcpspot", "SPOT"), ("dcpperp", "DERIVATIVES")):  # the beat that armed it says so
            await wait_for(partial(armed_in_record, tmp_path, name, product), timeout=10)
            rec = record(tmp_path, name)
            assert (rec["switch"], rec["countdown_s"], rec["stopped"]) == ("connection", 10.0, False)
    finally:
        await kill(bybit_sandbox, trader, proc)
    mine = {c for v in placed.values() for c in v}
    assert open_cids(bybit_sandbox, trader) == mine  # still resting when the engines died: the window runs
    await lapse_after_the_window(bybit_sandbox, trader, mine)


async def test_a_restart_within_the_window_keeps_the_orders_and_a_clean_stop_lets_them_lapse(
    bybit_sandbox: BybitServer, trader: Account, tmp_path: Path, restart: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed, then restarted within the window: the restarted engines subscribe again, DCP stops; the exchange
    drops their connections: they reconnect and subscribe again; the orders stay past the time either window would
    have ended. A clean stop cannot disarm DCP: it says when the exchange will cancel
    (alert, trace, record); a stop longer than the window lets the exchange cancel them."""
    proc, placed = await launch(bybit_sandbox, trader, tmp_path)
    await kill(bybit_sandbox, trader, proc)
    gone = bybit_sandbox.ex.now_ms()
    engines = [await restart(spec) for spec in specs(bybit_sandbox)]
    await wait_for(lambda: guarded(bybit_sandbox, trader) == BOTH, timeout=10)
    assert bybit_sandbox.ex.now_ms() < gone + WINDOW_MS  # within the window
    mine = {c for v in placed.values() for c in v}
    for s in engines:  # the restarted engines adopted their orders, which the exchange still holds
        assert {o.client_order_id for ai in s.universe.values() for o in ai.open_orders()} == set(placed[s.name])
    assert open_cids(bybit_sandbox, trader) == mine
    before = dcp_conns(bybit_sandbox, trader)
    await bybit_sandbox.hub.close_all()  # the exchange drops every connection: the engines reconnect and subscribe again
    await wait_for(lambda: guarded(bybit_sandbox, trader) == BOTH and not dcp_conns(bybit_sandbox, trader) & before, timeout=10)
    try:
        await later(bybit_sandbox, WINDOW_MS + 1_000)  # past the end of the windows the kill and the drop started
        assert open_cids(bybit_sandbox, trader) == mine
    finally:
        bybit_sandbox.ex.faults.clock_offset_ms = 0

    alerts: list[tuple[str, str]] = []
    for s in engines:
        monkeypatch.setattr(s, "alert", lambda text, level="warning": alerts.append((level, text)))
        await s.stop()
    said = [(level, text) for level, text in alerts if "cannot be disarmed" in text]
    assert len(said) == 2 and all(level == "warning" and "this strategy's 2 among them" in text for level, text in said), alerts
    for s, product in zip(engines, ("SPOT", "DERIVATIVES"), strict=True):
        rec = record(tmp_path, s.name)
        assert rec["stopped"] is True and rec["armed"] == [] and set(rec["lapsing"]) == {product}
        trace = read_trace(s.sink.root)
        assert "switch_left_armed" in trace["kind"].astype(str).tolist()
    await wait_for(lambda: not guarded(bybit_sandbox, trader), timeout=10)
    assert open_cids(bybit_sandbox, trader) == mine  # the clean stop left them
    await lapse_after_the_window(bybit_sandbox, trader, mine)


async def test_an_account_without_dcp_runs_without_the_switch_and_says_so_once(
    bybit_sandbox: BybitServer, trader: Account, tmp_path: Path, restart: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bybit enables DCP per account and product (its account manager): on an account without it for SPOT,
    query-dcp-info does not list SPOT whatever was set. The engine then runs without the switch: one warning, no
    failed heartbeat, no critical alert, nothing claimed armed, no subscription."""
    bybit_sandbox.dcp.disabled.add((trader.api_key, "SPOT"))
    s = await restart(
        {"name": "nodcp", "universe": ["BTC/USDT"], "dead_mans_switch": {"heartbeat_s": 0.3, "countdown_s": 3.0}}, start=False
    )
    alerts: list[tuple[str, str]] = []
    monkeypatch.setattr(s, "alert", lambda text, level="warning": alerts.append((level, text)))
    await s.start()
    await wait_for(lambda: s.heartbeat.beats >= 4, timeout=10)
    assert [level for level, text in alerts if "dead-man's switch" in text] == ["warning"], alerts
    assert "no dead-man's switch for SPOT" in alerts[0][1] and "not enabled for SPOT" in alerts[0][1]
    assert s.supervisor.health["heartbeat"].failures == 0
    rec = record(tmp_path, "nodcp")
    assert (rec["armed"], rec["unavailable"], rec["switch"]) == ([], ["SPOT"], None)
    assert not guarded(bybit_sandbox, trader) and bybit_sandbox.dcp.infos(trader.api_key) == []
    assert len(s.sink.of("switch_unavailable")) == 1


def live_algos(server: BybitServer, acct: Account) -> set[str]:
    """The account's conditional orders the exchange holds (client ids)."""
    rows = server.ex.snapshot()["accounts"][acct.api_key]["algo_orders"]
    return {a["client_algo_id"] for a in rows if a["status"] == "NEW"}


async def test_exits_dcp_cancelled_while_the_engine_was_stopped_are_placed_again(
    bybit_sandbox: BybitServer, trader: Account, restart: Any
) -> None:
    """An outside margin trial (2 of 2): a bracketed linear position, a clean stop longer than the DCP window: the
    exchange cancelled the stop-loss and take-profit, and the restart recorded them cancelled and nothing else: the
    position ran without its stop. A stop that leaves the switch running records the exits due; the restart places
    what the exchange no longer has, at the same levels, for the position."""
    spec = {"name": "dcpexits", "universe": ["BTC/USDT:USDT"], "margin": True}
    s = await restart(spec)
    ai = s.universe["BTC/USDT:USDT"]
    await wait_for(lambda: "DERIVATIVES" in guarded(bybit_sandbox, trader) and ai.last_price, timeout=15)
    last = ai.last_price
    entry = await s.call(ai, "market", "buy", amount=0.01, stop_loss=round(last * 0.97, 1), take_profit=round(last * 1.03, 1), waitfor=5)
    assert entry is not None and entry.amount == 0.01
    await wait_for(lambda: len([o for o in ai.open_orders() if o.parent == entry.client_order_id and o.id]) == 2, timeout=10)
    first = {o.client_order_id: o.trigger_price for o in ai.open_orders() if o.parent == entry.client_order_id}
    assert live_algos(bybit_sandbox, trader) >= set(first)
    await s.stop()
    await wait_for(lambda: not guarded(bybit_sandbox, trader), timeout=10)
    try:
        await later(bybit_sandbox, WINDOW_MS + 1_000)
        await wait_for(lambda: not live_algos(bybit_sandbox, trader) & set(first), timeout=5)  # DCP cancelled them
    finally:
        bybit_sandbox.ex.faults.clock_offset_ms = 0
    again = await restart(spec)
    ai = again.universe["BTC/USDT:USDT"]
    placed = {o.client_order_id: o for o in ai.open_orders() if o.parent == entry.client_order_id and o.client_order_id not in first}
    assert sorted(o.trigger_price for o in placed.values()) == sorted(first.values())
    assert all(o.amount == pytest.approx(0.01) for o in placed.values())
    await wait_for(lambda: live_algos(bybit_sandbox, trader) >= set(placed), timeout=10)
