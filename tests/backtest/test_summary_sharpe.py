"""The backtest's Sharpe (``backtest/summary.sharpe``): daily returns over 24 h periods from the run's start, the
first from the initial equity, a partial last day left out. An outside researcher's trial: over two days every
trial scored about ±13.5 (the first day's return dropped, the final sample at the window's midnight end counted as
a third day of one minute), and the optimiser ranked on that noise."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from planar_core.backtest.summary import sharpe

START = pd.Timestamp("2026-12-01T00:00Z")


def series(points: dict[str, float]) -> pd.Series:
    return pd.Series(list(points.values()), index=pd.DatetimeIndex([pd.Timestamp(t) for t in points]))


def expected(values: list[float]) -> float:
    rets = pd.Series(values).pct_change().dropna()
    return float(rets.mean() / rets.std() * math.sqrt(365))


def test_two_whole_days_give_both_days_returns() -> None:
    eq = series(
        {"2026-12-01T00:01Z": 10_000.0, "2026-12-01T23:59Z": 9_856.197, "2026-12-02T23:59Z": 9_682.860, "2026-12-03T00:00Z": 9_683.2}
    )
    value = sharpe(eq, START, START + pd.Timedelta(days=2), 10_000.0)
    assert value == pytest.approx(expected([10_000.0, 9_856.197, 9_683.2]))
    assert abs(value) != pytest.approx(math.sqrt(365) / math.sqrt(2), rel=1e-3)  # not the old constant


def test_a_partial_day_is_left_out_and_under_two_days_there_is_none() -> None:
    eq = series({"2026-12-01T12:00Z": 10_100.0, "2026-12-02T12:00Z": 10_200.0, "2026-12-03T12:00Z": 10_150.0})
    assert sharpe(eq, START, START + pd.Timedelta(days=1, hours=23), 10_000.0) is None
    value = sharpe(eq, START, START + pd.Timedelta(days=2, hours=12), 10_000.0)
    assert value == pytest.approx(expected([10_000.0, 10_100.0, 10_200.0]))
