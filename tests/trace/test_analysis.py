"""Execution analysis, bounded and reversible tuning, and the HTML/PNG report."""

from __future__ import annotations

import math
from datetime import UTC
from pathlib import Path

import pytest

from planar_core.model import OrderType, Side
from planar_core.trace import EventTrace
from planar_core.trace.analysis import TuningBounds, analyze_trading_events, optimize_from_events, revert_tuning, tuned_parameters
from planar_core.trace.report import write_report

from ..engine.test_order_call import bid_ask


def test_empty_trace_gives_nan_rates_not_errors(tmp_path: Path) -> None:
    with EventTrace(str(tmp_path)) as et:
        a = analyze_trading_events(et)
    assert a["orders"]["total_orders"] == 0 and math.isnan(a["orders"]["fill_rate"]) and math.isnan(a["orders"]["avg_order_size"])
    assert math.isnan(a["execution"]["avg_slippage"]) and a["timing"]["orders_by_hour"] == {}
    assert math.isnan(a["timing"]["api_latency_ms"][50])


def test_rates_slippage_and_latency(tmp_path: Path) -> None:
    with EventTrace(str(tmp_path)) as et:
        for i, (fill_price, filled) in enumerate([(101.0, True), (99.0, True), (None, False), (None, False)]):
            et.record("order_placed", client_order_id=f"c{i}", symbol="X", side="buy", amount=1.0 + i, expected_price=100.0)
            et.record("api_call", endpoint="create_order", latency_ms=2.0 * (i + 1), result="ok")
            if filled:
                et.record("trade_executed", client_order_id=f"c{i}", symbol="X", side="buy", amount=1.0 + i, price=fill_price)
                et.record("order_filled", client_order_id=f"c{i}", symbol="X", status="closed")
            else:
                et.record("order_cancelled", client_order_id=f"c{i}", symbol="X", status="canceled")
        a = analyze_trading_events(et)
    assert a["orders"]["fill_rate"] == 50.0 and a["orders"]["cancel_rate"] == 50.0
    assert a["orders"]["avg_order_size"] == 2.5 and a["orders"]["median_order_size"] == 2.5
    assert a["execution"]["avg_slippage"] == pytest.approx(0.0) and a["execution"]["median_slippage"] == pytest.approx(0.0)
    assert a["execution"]["avg_execution_time"] >= 0 and a["timing"]["api_latency_ms"][50] == pytest.approx(5.0)


async def test_tuning_is_bounded_recorded_and_reversible(strategy_factory, sandbox, tmp_path: Path) -> None:
    s = await strategy_factory()
    bid, _ = bid_ask(sandbox)
    for i in range(4):  # four resting orders cancelled: fill rate 0 %
        await s.call("BTC/USDT", OrderType.GTC, Side.BUY, amount=0.01, price=bid * (0.9 - i / 100), waitfor=0)
    await s.cancel_all("BTC/USDT")
    before = tuned_parameters(s)
    result = optimize_from_events(s, days=1, bounds=TuningBounds(order_timeout=(5.0, 80.0)))
    changed = {p.param: p for p in result.applied}
    assert changed["order_timeout"].new == 80.0  # 60 * 1.5 = 90, clamped to the bound
    assert set(changed) == {"order_timeout"}  # limits are not preferred: the offset rule does not apply
    assert all("fill rate" in p.reason for p in result.applied)
    assert tuned_parameters(s)["order_timeout"] == 80.0  # persisted for the running engine to pick up
    recorded = [e for e in s.sink.of("config_changed") if e["change_id"] == result.change_id]
    assert {e["param"] for e in recorded} == set(changed)
    revert_tuning(s, result.change_id)
    assert tuned_parameters(s) == before
    with pytest.raises(KeyError):
        revert_tuning(s, result.change_id)
    report = write_report(analyze_trading_events(s), tmp_path / "report")
    html = report["html"].read_text()
    assert "fill_rate" in html and all(report[k].stat().st_size > 1000 for k in ("equity", "pnl", "slippage", "fill_latency"))
    assert report["equity"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_analysis_counts_orders_once_and_only_this_strategys(tmp_path: Path) -> None:
    """A restart re-records fills of adopted orders and the account's trace holds other strategies' orders: the
    report of one strategy's session counts its own orders placed in the window, once each (fill rate <= 100 %)."""
    from datetime import datetime

    with EventTrace(str(tmp_path)) as et:
        et.record("order_placed", client_order_id="other-e1-0", symbol="X", side="buy", amount=1.0, expected_price=100.0)
        et.record("order_filled", client_order_id="other-e1-0", symbol="X", status="closed")
        et.record("order_placed", client_order_id="old-e2-0", symbol="X", side="buy", amount=1.0, expected_price=100.0)
        session = datetime.now(UTC)
        for i in range(2):
            et.record("order_placed", client_order_id=f"me-e3-{i}", symbol="X", side="buy", amount=1.0, expected_price=100.0)
        et.record("trade_executed", client_order_id="me-e3-0", symbol="X", side="buy", amount=1.0, price=101.0)
        for _ in range(3):  # the same fill seen again after restarts
            et.record("order_filled", client_order_id="me-e3-0", symbol="X", status="closed")
        for i in range(4):  # orders of another strategy, and of an earlier session, filled now
            et.record("order_filled", client_order_id=f"other-e1-{i}", symbol="X", status="closed")
        et.record("order_filled", client_order_id="old-e2-0", symbol="X", status="closed")
        mine = analyze_trading_events(et, start=session, strategy="me-e3-")
        everything = analyze_trading_events(et)
    assert (mine["orders"]["total_orders"], mine["orders"]["filled_orders"], mine["orders"]["fill_rate"]) == (2, 1, 50.0)
    assert mine["execution"]["trades"] == 1
    assert everything["orders"]["fill_rate"] <= 100.0


def test_a_replaced_emulated_trade_is_not_counted(tmp_path: Path) -> None:
    """An emulated fill (from an order update) later explained by the real trade: one fill, not two."""
    with EventTrace(str(tmp_path)) as et:
        et.record("order_placed", client_order_id="c0", symbol="X", side="buy", amount=1.0, expected_price=100.0)
        et.record(
            "trade_executed", client_order_id="c0", symbol="X", side="buy", amount=1.0, price=100.0, trade_id="emu-c0-1-5", emulated=True
        )
        et.record(
            "trade_executed", client_order_id="c0", symbol="X", side="buy", amount=1.0, price=100.0, trade_id="77", replaces=["emu-c0-1-5"]
        )
        et.record("order_placed", client_order_id="c1", symbol="X", side="buy", amount=1.0, expected_price=100.0)
        et.record("trade_executed", client_order_id="c1", symbol="X", side="buy", amount=1.0, price=101.0, trade_id="78")
        a = analyze_trading_events(et)
    assert a["execution"]["trades"] == 2 and a["execution"]["avg_slippage"] == pytest.approx(0.5)


def test_a_strategys_analysis_counts_its_identity_exactly(tmp_path: Path) -> None:
    """The account's trace holds ``mm`` and ``mm-eth`` orders: ``mm``'s analysis counts every id that encodes its
    identity (this store's, another store root's epoch, the earlier id format of this store) and none of
    ``mm-eth``'s (issue 25)."""
    from types import SimpleNamespace

    from planar_core.exchange.client_ids import ClientOrderIds

    mm, eth = ClientOrderIds(tmp_path / "mm", "mm"), ClientOrderIds(tmp_path / "mm-eth", "mm-eth")
    ids = [mm.next(), f"{mm.identity}-zz9-0", f"mm-{mm.epoch}-7", eth.next(), eth.next()]
    with EventTrace(str(tmp_path / "trace")) as et:
        for cid in ids:
            et.record("order_placed", client_order_id=cid, symbol="X", side="buy", amount=1.0, expected_price=100.0)
        a = analyze_trading_events(SimpleNamespace(ids=mm, sink=et))
    assert a["orders"]["total_orders"] == 3
    assert set(a["raw_events"]["client_order_id"].astype(str)) == set(ids[:3])
