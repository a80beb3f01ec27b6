"""The start-up sync asks the exchange only what it needs (issue 31, item 3).

* after a clean stop with nothing unresolved, a start lists the account's open orders once and no asset's history
  or trades, whatever the universe's size;
* after a clean stop, an asset with something unresolved is listed: a resting order is adopted again, an order the
  trace left open and that was cancelled while the engine was down is learned;
* after an unclean stop in another boot of the machine (a power loss), every asset's history is listed: an order
  carrying the strategy's own client id that the journal never recorded is found even when it is no longer open;
* after a process crash in this boot (SIGKILL), the journal and the trace hold all the run wrote: only the assets
  with something unresolved are listed, and what happened to them while the engine was down is learned;
* the trace's restart index (codes only) says what the dict-per-row read said: the last basis per asset, the
  orders still open when the trace ends.

Requests are counted from the engine's own ``api_call`` events (one per REST request) of the start.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from planar_core.engine import strategy as build
from planar_core.engine.strategy import Strategy
from planar_core.model import OrderType, Side
from planar_core.model.sink import MemorySink
from planar_core.sandbox import Limits, SandboxExchange, SandboxServer
from planar_core.sandbox.accounts import Account
from planar_core.sandbox.market_data import default_markets, synthetic_markets
from planar_core.trace.reading import read_columns
from planar_core.trace.unresolved import read_index
from tests.conftest import make_client, wait_for

SYNTHETIC = 12
UNIVERSE = ["BTC/USDT", "ETH/USDT", "LTC/USDT", "XRP/USDT"] + [f"SYN{i}/USDT" for i in range(SYNTHETIC)]


@pytest.fixture
async def wide() -> AsyncIterator[SandboxServer]:
    """A sandbox listing 16+ spot markets, limits out of the way."""
    ex = SandboxExchange(seed=11, specs=default_markets() + synthetic_markets(SYNTHETIC))
    ex.limiter.limits = Limits(weight_per_minute=1_000_000, orders_per_10s=100_000)
    async with SandboxServer(ex) as server:
        yield server


@pytest.fixture
def quote_only(wide: SandboxServer) -> Account:
    """An account holding only the quote currency: no asset's balance differs from an empty basis."""
    return wide.ex.add_account({"USDT": Decimal(100_000)})


def engine(server: SandboxServer, acct: Account, root: str, **overrides: Any) -> Strategy:
    return build("boot", **settings(server, acct, root, **overrides))


def settings(server: SandboxServer, acct: Account, root: str, **overrides: Any) -> dict[str, Any]:
    overrides.setdefault("universe", UNIVERSE)
    return dict(
        env={"EXCHANGE_API_KEY": acct.api_key, "EXCHANGE_API_SECRET": acct.api_secret},
        store_root=root,
        sandbox_endpoint={"url": server.url, "ws_url": server.ws_url},
        rate_limits={"weight_per_minute": 1_000_000, "orders_per_second": 1000, "burst_allowance": 1000},
        connection={"health_interval": 3600},
        dead_mans_switch={"enabled": False},
        **overrides,
    )


def mark_clean(s: Strategy) -> None:
    """The first run stopped cleanly: its journal says so."""
    assert s.journal.clean_stop


def after_a_power_loss(server: SandboxServer, acct: Account, root: str, first: Strategy) -> Strategy:
    """The engine that starts after this: the run after ``first`` (which stopped cleanly) began in another boot of
    the machine and lost power after its first intent was written but before it was synced, leaving its synced
    "start" record as the journal's last word."""
    with open(first.journal.path, "ab") as fh:  # type: ignore[union-attr]
        fh.write(b'{"t":1,"kind":"start","boot":"a-boot-before-the-power-loss"}\n')
    s = engine(server, acct, root)
    assert not s.journal.clean_stop and not s.journal.complete
    return s


async def start_counting(s: Strategy) -> dict[str, int]:
    """Start ``s``; the REST requests of its start by endpoint (the trace's ``api_call`` events)."""
    since = time.time_ns()
    await s.start(watchers=False)
    s.sink.flush()
    files = getattr(s.sink, "files", None)
    assert files is not None
    out: dict[str, int] = {}
    for e in read_columns(files, since, kind="api_call", payload=False).text("endpoint").astype(str):
        out[e] = out.get(e, 0) + 1
    return out


async def first_run(server: SandboxServer, acct: Account, root: str) -> Strategy:
    s = engine(server, acct, root)
    await s.start(watchers=False)
    return s


async def test_clean_restart_lists_no_history_when_nothing_is_unresolved(wide: SandboxServer, quote_only: Account, tmp_path) -> None:
    root = str(tmp_path / "store")
    await (await first_run(wide, quote_only, root)).stop()
    s = engine(wide, quote_only, root)
    mark_clean(s)
    try:
        counts = await start_counting(s)
    finally:
        await s.stop()
    # one account-wide listing of the open orders; no history, no trades, for any of the 16 assets
    assert counts.get("fetch_open_orders") == 1, counts
    assert counts.get("fetch_orders", 0) == 0 and counts.get("fetch_my_trades", 0) == 0, counts


async def test_clean_restart_adopts_a_resting_order_listing_its_asset_only(wide: SandboxServer, quote_only: Account, tmp_path) -> None:
    root = str(tmp_path / "store")
    first = await first_run(wide, quote_only, root)
    ai = first.universe["SYN3/USDT"]
    price = first.venue.price_to_precision(ai.symbol, (ai.last_price or 1.0) * 0.5)
    await first.call(ai, OrderType.GTC, Side.BUY, amount=first.venue.amount_to_precision(ai.symbol, 20.0 / price), price=price, waitfor=0)
    (resting,) = [o.client_order_id for o in ai.open_orders()]
    await first.stop()
    s = engine(wide, quote_only, root)
    mark_clean(s)
    try:
        counts = await start_counting(s)
        order = s.universe["SYN3/USDT"].orders.get(resting)
        assert order is not None and order.status == "open", order
    finally:
        await s.stop()
    assert counts.get("fetch_open_orders") == 1, counts
    # the asset with the order: its history, listed once for the twin check and the sync; no other asset's
    assert counts.get("fetch_orders") == 1, counts


async def test_clean_restart_learns_an_order_cancelled_while_down(wide: SandboxServer, quote_only: Account, tmp_path) -> None:
    """The trace says the order was open when the run ended; it was cancelled while nothing watched (no fill: no
    balance moved), so only the trace's index can tell the sync to list its asset."""
    root = str(tmp_path / "store")
    first = await first_run(wide, quote_only, root)
    ai = first.universe["SYN5/USDT"]
    price = first.venue.price_to_precision(ai.symbol, (ai.last_price or 1.0) * 0.5)
    await first.call(ai, OrderType.GTC, Side.BUY, amount=first.venue.amount_to_precision(ai.symbol, 20.0 / price), price=price, waitfor=0)
    (order,) = ai.open_orders()
    await first.stop()
    raw = make_client(wide, quote_only)
    try:
        await raw.load_markets()
        await raw.cancel_order(order.id, ai.symbol)
    finally:
        await raw.close()
    s = engine(wide, quote_only, root)
    mark_clean(s)
    try:
        await s.start(watchers=False)
        learned = s.universe["SYN5/USDT"].orders.get(order.client_order_id)
        assert learned is not None and learned.status == "canceled", learned
    finally:
        await s.stop()


async def test_unclean_restart_finds_an_order_the_journal_never_recorded(wide: SandboxServer, quote_only: Account, tmp_path) -> None:
    """A power loss between the request and the journal's durable write: the exchange has an order with the
    strategy's own id that the journal lacks. It was cancelled since (not open: no account-wide listing shows it;
    no fill: no holding moved), so the start lists no history, and the history listing every other asset gets once
    the engine runs finds it (``startup_verified`` says so)."""
    root = str(tmp_path / "store")
    first = await first_run(wide, quote_only, root)
    cid = first.ids.next()  # the strategy's own id, never journaled
    await first.stop()
    raw = make_client(wide, quote_only)
    try:
        await raw.load_markets()
        last = (await raw.fetch_ticker("SYN7/USDT"))["last"]
        price = float(raw.price_to_precision("SYN7/USDT", last * 0.9))
        amount = float(raw.amount_to_precision("SYN7/USDT", 20.0 / price))
        placed = await raw.create_order("SYN7/USDT", "limit", "buy", amount, price, {"newClientOrderId": cid})
        await raw.cancel_order(placed["id"], "SYN7/USDT")
    finally:
        await raw.close()
    # of this store's epoch, unknown to the journal and the trace, but from the block the crashed run was issuing
    # from: the twin check adopts it (another engine's would be refused), and the sync's history listing finds it
    s = after_a_power_loss(wide, quote_only, root, first)
    try:
        counts = await start_counting(s)
        assert counts.get("fetch_orders", 0) == 0, counts  # nothing unresolved at the start: every asset deferred
        await wait_for(lambda: bool(s.sink.of("startup_verified")), timeout=30)
        found = s.universe["SYN7/USDT"].orders.get(cid)
        assert found is not None and found.status == "canceled", found
        (verified,) = s.sink.of("startup_verified")
        assert verified["assets"] == len(UNIVERSE) and verified["found"] == {"SYN7/USDT": [cid]}, verified
    finally:
        await s.stop()


async def test_unclean_restart_reads_trades_only_where_a_fill_is_unexplained(wide: SandboxServer, quote_only: Account, tmp_path) -> None:
    """After a power loss, the asset whose holding moved (a market order with our id the journal lacks) is listed
    before the start, with its trades from that order's creation on; the others once the engine runs."""
    root = str(tmp_path / "store")
    first = await first_run(wide, quote_only, root)
    cid = first.ids.next()
    await first.stop()
    raw = make_client(wide, quote_only)
    try:
        await raw.load_markets()
        last = (await raw.fetch_ticker("SYN2/USDT"))["last"]
        amount = float(raw.amount_to_precision("SYN2/USDT", 20.0 / last))
        await raw.create_order("SYN2/USDT", "market", "buy", amount, None, {"newClientOrderId": cid})
    finally:
        await raw.close()
    s = after_a_power_loss(wide, quote_only, root, first)
    try:
        counts = await start_counting(s)
        ai = s.universe["SYN2/USDT"]
        order = ai.orders.get(cid)
        assert order is not None and order.status == "closed", order
        assert [t.client_order_id for t in ai.trades if not t.emulated] == [cid], ai.trades
    finally:
        await s.stop()
    assert counts.get("fetch_orders") == 1, counts  # the asset whose holding moved; the others after the start
    assert counts.get("fetch_my_trades") == 1, counts  # one window, one asset


async def test_a_process_crash_in_this_boot_lists_only_what_it_left_unresolved(
    wide: SandboxServer, quote_only: Account, tmp_path: Path
) -> None:
    """An engine process killed (SIGKILL) with a resting order on SYN3 and a filled one on SYN5; the resting order is
    cancelled by hand while it is down. The restart trusts the journal and the trace the killed process wrote (this
    boot of the machine kept them): the order is learned cancelled, and only SYN3's history is listed, not the 16
    assets' an unclean stop used to cost."""
    root = str(tmp_path / "store")
    await (await first_run(wide, quote_only, root)).stop()  # a first, clean run: the epoch, the journal
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("crash_process.py")),
        json.dumps({"name": "boot", **settings(wide, quote_only, root)}),
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)  # type: ignore[union-attr]
        assert line.startswith(b"resting "), line
        resting = line.split()[1].decode()
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    raw = make_client(wide, quote_only)
    try:
        await raw.load_markets()
        (order,) = await raw.fetch_open_orders("SYN3/USDT")
        assert order["clientOrderId"] == resting
        await raw.cancel_order(order["id"], "SYN3/USDT")
    finally:
        await raw.close()
    s = engine(wide, quote_only, root)
    assert not s.journal.clean_stop and s.journal.complete
    try:
        counts = await start_counting(s)
        learned = s.universe["SYN3/USDT"].orders.get(resting)
        assert learned is not None and learned.status == "canceled", learned
    finally:
        await s.stop()
    assert counts.get("fetch_orders") == 1, counts  # SYN3's; SYN5's fill is in the trace, its balance as the basis says


async def test_clean_restart_lists_a_futures_asset_whose_position_moved_while_down(
    sandbox: SandboxServer, account: Account, tmp_path
) -> None:
    """Nothing open, nothing in the journal, the trace's orders all ended: only the position (opened while the
    engine was down, by hand) says the asset changed. It is listed, the order adopted and its fill booked."""
    root = str(tmp_path / "store")
    perp = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    first = engine(sandbox, account, root, universe=perp, margin=True)
    await first.start(watchers=False)
    await first.stop()
    raw = make_client(sandbox, account)
    try:
        await raw.load_markets()
        placed = await raw.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
    finally:
        await raw.close()
    s = engine(sandbox, account, root, universe=perp, margin=True)
    mark_clean(s)
    try:
        counts = await start_counting(s)
        ai = s.universe["BTC/USDT:USDT"]
        assert ai.position.contracts == pytest.approx(0.01)
        assert [t.order_id for t in ai.trades if not t.emulated] == [placed["id"]], ai.trades
    finally:
        await s.stop()
    assert counts.get("fetch_orders") == 2, counts  # BTC's two books (orders, conditional orders); not ETH's


# ------------------------------------------------------------------------------------------ the trace's restart index
def _events() -> list[dict[str, Any]]:
    t = 1_700_000_000_000_000_000

    def e(i: int, kind: str, **fields: Any) -> dict[str, Any]:
        return {"timestamp": t + i * 1_000_000_000, "kind": kind, **fields}

    def basis(sym: str, amount: float) -> dict[str, Any]:
        return {"symbol": sym, "position_side": "both", "lots": [[amount, 100.0, 0]], "trip": None, "totals": {}}

    return [
        e(0, "order_placed", symbol="A/USDT", client_order_id="mine-1"),
        e(1, "trade_executed", symbol="A/USDT", client_order_id="mine-1", trade_id="1", basis=basis("A/USDT", 1.0)),
        e(2, "order_filled", symbol="A/USDT", client_order_id="mine-1", status="closed"),
        e(3, "order_placed", symbol="B/USDT", client_order_id="mine-2"),
        e(4, "order_updated", symbol="B/USDT", client_order_id="mine-2", status="open"),
        e(5, "trade_executed", symbol="A/USDT", client_order_id="theirs-9", trade_id="2", basis=basis("A/USDT", 9.0)),
        e(6, "order_placed", symbol="C/USDT", client_order_id="mine-3"),
        e(7, "order_cancelled", symbol="C/USDT", client_order_id="mine-3", status="canceled"),
        e(8, "trade_executed", symbol="B/USDT", client_order_id="mine-2", trade_id="3", basis=basis("B/USDT", 2.0)),
        e(9, "ohlcv", symbol="A/USDT", price=1.0),
    ]


@pytest.mark.parametrize("on", ["memory", "trace"])
def test_restart_index_reads_what_the_rows_said(on: str, tmp_path) -> None:
    from planar_core.trace import EventTrace

    events = _events()
    source: Any = events
    if on == "trace":
        with EventTrace(str(tmp_path / "t"), fsync=False) as et:
            for i, ev in enumerate(events):
                et.record(ev["kind"], **{k: v for k, v in ev.items() if k not in ("kind", "timestamp")})
                if i in (2, 6):
                    et.checkpoint()  # several segments, read newest first
        from planar_core.trace.files import TraceFiles

        source = TraceFiles(str(tmp_path / "t"), create=False)
        since, until = 0, time.time_ns() + 10**12
    else:
        since, until = events[0]["timestamp"], events[-1]["timestamp"] + 1

    index = read_index(source, since, until, ["A/USDT", "B/USDT", "C/USDT", "D/USDT"], lambda cid: not cid.startswith("theirs"))
    assert index.open_orders == {"B/USDT": {"mine-2"}}  # its last event left it open; C's was cancelled
    assert {k: v["lots"][0][0] for k, v in index.bases.items()} == {("A/USDT", "both"): 1.0, ("B/USDT", "both"): 2.0}
    assert [r["trade_id"] for r in index.rows(("trade_executed",), ["A/USDT"])] == ["1", "2"]
    assert index.client_ids(("order_placed",)) == {"mine-1", "mine-2", "mine-3"}


async def test_memory_sink_start_still_syncs(wide: SandboxServer, quote_only: Account, tmp_path) -> None:
    """A strategy on a memory sink (no trace): the plan reads the sink's events, the start works."""
    s = build(
        "mem",
        env={"EXCHANGE_API_KEY": quote_only.api_key, "EXCHANGE_API_SECRET": quote_only.api_secret},
        store_root=str(tmp_path / "store"),
        sandbox_endpoint={"url": wide.url, "ws_url": wide.ws_url},
        rate_limits={"weight_per_minute": 1_000_000},
        connection={"health_interval": 3600},
        universe=UNIVERSE[:3],
        sink=MemorySink(),
    )
    try:
        await s.start(watchers=False)
        assert set(s.universe) == set(UNIVERSE[:3])
    finally:
        await s.stop()


async def test_a_first_run_says_so_instead_of_warning_of_an_unclean_stop(strategy_factory, caplog) -> None:
    """The very first start of a strategy on a store lists every asset's history (nothing vouches for the account),
    and says it is the first run: it warned "the previous run did not stop cleanly", of a run that never was."""
    import logging

    caplog.set_level(logging.INFO, logger="planar.engine.sync")
    s = await strategy_factory()
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "planar.engine.sync"]
    assert any("first run of this strategy" in m for _, m in lines)
    assert not any("did not stop cleanly" in m for _, m in lines)
    assert s.journal.new
