"""Execution analysis and tuning proposals (trace/analysis.py) on hand-made event frames: per-order counts, adverse
slippage by side, execution time, timing patterns, scoping by owner, and each tuning rule's threshold, direction and
bounds."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from planar_core.trace.analysis import (
    Analysis,
    TuningBounds,
    analyze_execution_quality,
    analyze_order_patterns,
    analyze_timing_patterns,
    propose,
    scope,
)
from planar_core.trace.columns import Columns

T = 1_700_000_000_000_000_000  # ns; 22:13:20 UTC
S = 1_000_000_000  # one second in ns


def frame(*events: dict[str, object]) -> pd.DataFrame:
    return Columns.from_events(list(events)).frame(payload=False)


def placed(cid: str, at: int, side: str = "buy", amount: float = 1.0, expected: float = 100.0) -> dict[str, object]:
    return {
        "timestamp": T + at * S,
        "kind": "order_placed",
        "client_order_id": cid,
        "side": side,
        "amount": amount,
        "expected_price": expected,
    }


def ev(kind: str, cid: str, at: int, **fields: object) -> dict[str, object]:
    return {"timestamp": T + at * S, "kind": kind, "client_order_id": cid, **fields}


# ------------------------------------------------------------------ order patterns
def test_rates_count_orders_not_events() -> None:
    df = frame(
        placed("a", 0, amount=1.0),
        placed("b", 1, amount=3.0),
        placed("c", 2, amount=8.0),
        ev("order_filled", "a", 3),
        ev("order_filled", "a", 4),  # the same fill recorded twice (a restart adopting it)
        ev("order_cancelled", "b", 5),
        ev("order_filled", "z", 6),  # an order placed before the window
    )
    o = analyze_order_patterns(df)
    assert (o["total_orders"], o["filled_orders"], o["cancelled_orders"]) == (3, 1, 1)
    assert o["fill_rate"] == pytest.approx(100 / 3) and o["cancel_rate"] == pytest.approx(100 / 3)
    assert (o["avg_order_size"], o["median_order_size"]) == (4.0, 3.0)


def test_an_order_filled_after_a_cancel_counts_as_filled_only() -> None:
    o = analyze_order_patterns(frame(placed("a", 0), ev("order_cancelled", "a", 1), ev("order_filled", "a", 2)))
    assert (o["filled_orders"], o["cancelled_orders"]) == (1, 0)


def test_without_orders_the_rates_are_nan_not_zero() -> None:
    o = analyze_order_patterns(frame({"timestamp": T, "kind": "api_call"}))
    assert o["total_orders"] == 0 and math.isnan(o["fill_rate"]) and math.isnan(o["avg_order_size"])


def test_triggers_forced_closes_and_funding_are_counted() -> None:
    df = frame(
        placed("a", 0),
        ev("order_triggered", "a", 1),
        ev("order_triggered", "a", 2),
        {"timestamp": T + 3 * S, "kind": "forced_close"},
        {"timestamp": T + 4 * S, "kind": "funding_paid", "amount": -1.5},
        {"timestamp": T + 5 * S, "kind": "funding_paid", "amount": 0.5},
    )
    o = analyze_order_patterns(df)
    assert (o["triggered_orders"], o["forced_closes"], o["funding"]) == (1, 1, -1.0)


# ------------------------------------------------------------------ execution quality
def test_slippage_is_adverse_for_both_sides_and_time_runs_from_the_intent() -> None:
    df = frame(
        placed("b", 0, "buy", expected=100.0),
        placed("s", 0, "sell", expected=100.0),
        ev("trade_executed", "b", 2, side="buy", price=101.0, amount=1.0),  # paid 1 % above
        ev("trade_executed", "s", 10, side="sell", price=99.5, amount=1.0),  # received 0.5 % below
    )
    q = analyze_execution_quality(df)
    assert q["trades"] == 2
    assert q["avg_slippage"] == pytest.approx((1.0 + 0.5) / 2)
    assert q["avg_execution_time"] == pytest.approx(6.0) and q["median_execution_time"] == pytest.approx(6.0)


def test_price_improvement_is_negative_slippage() -> None:
    q = analyze_execution_quality(frame(placed("s", 0, "sell", expected=100.0), ev("trade_executed", "s", 1, side="sell", price=102.0)))
    assert q["avg_slippage"] == pytest.approx(-2.0)


def test_trades_of_orders_placed_outside_the_window_are_left_out() -> None:
    q = analyze_execution_quality(frame(placed("a", 0), ev("trade_executed", "old", 1, side="buy", price=1.0)))
    assert q["trades"] == 0 and math.isnan(q["avg_slippage"])


# ------------------------------------------------------------------ timing
def test_orders_by_utc_hour_and_api_error_rate_and_latency() -> None:
    df = frame(
        placed("a", 0),
        placed("b", 3600),
        placed("c", 3601),
        {"timestamp": T + 1, "kind": "api_call", "result": "ok", "latency_ms": 10.0},
        {"timestamp": T + 2, "kind": "api_call", "result": "error", "latency_ms": 30.0},
        {"timestamp": T + 3, "kind": "api_call"},  # no result: not ok
        {"timestamp": T + 4, "kind": "api_call", "result": "ok", "latency_ms": 20.0},
    )
    t = analyze_timing_patterns(df)
    hour = (T // (3600 * S)) % 24
    assert t["orders_by_hour"] == {hour: 1, (hour + 1) % 24: 2}
    assert t["api_calls"] == 4 and t["api_error_rate"] == 50.0
    assert t["api_latency_ms"][50] == 20.0


def test_without_api_calls_the_error_rate_and_latencies_are_nan() -> None:
    t = analyze_timing_patterns(frame(placed("a", 0)))
    assert t["api_calls"] == 0 and math.isnan(t["api_error_rate"]) and math.isnan(t["api_latency_ms"][99])


# ------------------------------------------------------------------ scope
def test_scope_keeps_a_strategys_orders_and_the_events_of_no_order() -> None:
    df = frame(placed("mm-1", 0), placed("mm-eth-1", 1), {"timestamp": T + 2 * S, "kind": "balance_updated"})
    assert scope(df, lambda cid: cid.split("-")[1].isdigit())["kind"].tolist() == ["order_placed", "balance_updated"]
    assert len(scope(df, "mm-")) == 3  # a prefix is not an identity: mm-eth's orders come with it
    assert len(scope(df, None)) == 3


# ------------------------------------------------------------------ tuning
def analysis(slippage: float = math.nan, fill_rate: float = math.nan, execution_s: float = math.nan) -> Analysis:
    return {
        "orders": {"fill_rate": fill_rate},
        "execution": {"avg_slippage": slippage, "avg_execution_time": execution_s},
        "timing": {"orders_by_hour": {}, "api_calls": 0, "api_error_rate": math.nan, "api_latency_ms": {}},
        "raw_events": pd.DataFrame(),
        "payloads": lambda kinds: pd.Series([], dtype=object),
    }


def changes(a: Analysis, current: dict[str, object] | None = None, bounds: TuningBounds | None = None) -> dict[str, tuple[object, object]]:
    return {p.param: (p.old, p.new) for p in propose(a, current or {}, bounds or TuningBounds())}


def test_slippage_above_a_tenth_of_a_percent_turns_to_limit_orders() -> None:
    assert changes(analysis(slippage=0.1)) == {}  # at the threshold: nothing
    assert changes(analysis(slippage=0.11)) == {"prefer_limit_orders": (False, True), "limit_order_offset": (0.0, 0.05)}


def test_a_low_fill_rate_waits_longer_by_half_within_the_step() -> None:
    assert changes(analysis(fill_rate=80.0)) == {}
    assert changes(analysis(fill_rate=79.9)) == {"order_timeout": (60.0, 90.0)}
    assert changes(analysis(fill_rate=10.0), {"order_timeout": 500.0}) == {"order_timeout": (500.0, 600.0)}  # the bound


def test_a_low_fill_rate_with_limit_orders_reaches_further_through_the_market() -> None:
    got = changes(analysis(fill_rate=50.0), {"prefer_limit_orders": True, "limit_order_offset": 0.2})
    assert got == {"order_timeout": (60.0, 90.0), "limit_order_offset": (0.2, 0.25)}


def test_slow_execution_turns_large_orders_to_market_orders() -> None:
    assert changes(analysis(execution_s=30.0)) == {}
    assert changes(analysis(execution_s=31.0)) == {"use_market_orders_threshold": (0.0, 0.02)}


def test_no_change_when_the_value_is_already_at_its_bound() -> None:
    bounds = TuningBounds(order_timeout=(5.0, 60.0))
    assert changes(analysis(fill_rate=0.0), {"order_timeout": 60.0}, bounds) == {}


def test_a_change_never_exceeds_the_largest_step() -> None:
    bounds = TuningBounds(max_step=0.1, order_timeout=(5.0, 1000.0))
    assert changes(analysis(fill_rate=0.0), {"order_timeout": 100.0}, bounds) == {"order_timeout": (100.0, pytest.approx(110.0))}
